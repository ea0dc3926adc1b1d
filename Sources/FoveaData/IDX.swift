import CImageCodecs
import FoveaTensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One IDX file of unsigned bytes: the format of MNIST, Fashion-MNIST, KMNIST and EMNIST.
///
/// An IDX file is a 4-byte magic number `00 00 <type> <rank>`, then `rank` big-endian `UInt32`
/// dimensions, then the elements in row-major order. Only type 0x08 (unsigned byte) is read,
/// because every dataset of the MNIST family uses it. Files may be gzip-compressed (`.gz`);
/// compression is detected from the content (bytes `1F 8B`), not from the file name.
public struct IDXFile: Equatable, Sendable {
    /// The dimensions from the header, outermost first (e.g. `[60000, 28, 28]`).
    public var dimensions: [Int]
    /// The elements in row-major order; `bytes.count` is the product of `dimensions`.
    public var bytes: [UInt8]

    /// The most bytes a file, compressed or decompressed, may hold (4 GiB): a guard against
    /// headers or gzip streams that would exhaust memory.
    public static let maximumByteCount = 1 << 32

    /// Creates a file from dimensions and row-major elements.
    public init(dimensions: [Int], bytes: [UInt8]) {
        self.dimensions = dimensions
        self.bytes = bytes
    }

    /// Reads and validates the IDX file at `path`, decompressing it first if it is gzip.
    ///
    /// - Throws: `DatasetError` naming `path`: `.unreadableFile`, `.tooLarge`, `.corruptGzip`, `.exceedsHeader`,
    ///   `.badMagic`, `.unsupportedDataType`, `.dimensionsTooLarge`, `.truncated` or `.sizeMismatch`.
    public static func read(path: String) throws -> IDXFile {
        try parse(readWholeFile(path: path, limit: byteLimit), path: path)
    }

    /// Room for the largest header (4 + 4 × 255 bytes) on top of the element limit.
    static let byteLimit = maximumByteCount + 1024

    /// Parses the contents of an IDX file, raw or gzip-compressed; `path` names it in errors.
    public static func parse(_ contents: [UInt8], path: String) throws -> IDXFile {
        let limit = byteLimit
        if Gzip.isCompressed(contents) {
            // The header, once decompressed, says how many bytes follow: decompression stops at the first byte past
            // them and memory is reserved for no more (a small file claiming or holding gigabytes takes no gigabytes).
            let decompressed = try Gzip.decompress(contents, path: path, limit: limit) { prefix in
                try header(prefix, path: path)?.total
            }
            return try decode(decompressed, path: path)
        }
        return try decode(contents, path: path)
    }

    /// What the header at the start of `prefix` declares: dimensions, header length and total file size; nil while
    /// `prefix` ends inside the header. Throws for a bad magic number, an unsupported type or dimensions too large.
    static func header(_ prefix: ArraySlice<UInt8>, path: String) throws -> (dimensions: [Int], length: Int, total: Int)? {
        let start = prefix.startIndex
        guard prefix.count >= 4 else { return nil }
        let magic = prefix[start..<start + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let knownTypes: Set<UInt8> = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]
        guard prefix[start] == 0, prefix[start + 1] == 0, knownTypes.contains(prefix[start + 2]) else {
            throw DatasetError.badMagic(path: path, found: magic)
        }
        guard prefix[start + 2] == 0x08 else {
            throw DatasetError.unsupportedDataType(path: path, code: prefix[start + 2])
        }
        let rank = Int(prefix[start + 3])
        let headerLength = 4 + 4 * rank
        guard prefix.count >= headerLength else { return nil }
        var dimensions: [Int] = []
        for axis in 0..<rank {
            let first = start + 4 + 4 * axis
            dimensions.append(Int(prefix[first..<first + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }))
        }
        var elementCount = 1
        for dimension in dimensions {
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= maximumByteCount else {
                throw DatasetError.dimensionsTooLarge(path: path, dimensions: dimensions)
            }
            elementCount = product
        }
        return (dimensions, headerLength, headerLength + elementCount)
    }

    /// Parses uncompressed IDX `contents`; `path` is only used in error messages.
    ///
    /// The byte counts in `.truncated` and `.sizeMismatch` are whole-file sizes, header included.
    public static func decode(_ contents: [UInt8], path: String) throws -> IDXFile {
        guard let (dimensions, headerLength, expected) = try header(contents[...], path: path) else {
            let needed = contents.count < 4 ? 4 : 4 + 4 * Int(contents[3])
            throw DatasetError.truncated(path: path, expectedBytes: needed, actualBytes: contents.count)
        }
        if contents.count < expected {
            throw DatasetError.truncated(path: path, expectedBytes: expected, actualBytes: contents.count)
        }
        if contents.count > expected {
            throw DatasetError.sizeMismatch(path: path, expectedBytes: expected, actualBytes: contents.count)
        }
        return IDXFile(dimensions: dimensions, bytes: Array(contents[headerLength...]))
    }

    /// The uncompressed IDX encoding of this file (type 0x08); the inverse of `decode`.
    ///
    /// Dimensions must each fit in a `UInt32` and there may be at most 255 of them.
    public func encoded() -> [UInt8] {
        var result: [UInt8] = [0, 0, 0x08, UInt8(truncatingIfNeeded: dimensions.count)]
        result.reserveCapacity(4 + 4 * dimensions.count + bytes.count)
        for dimension in dimensions {
            let value = UInt32(truncatingIfNeeded: dimension)
            result += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
        }
        return result + bytes
    }
}

/// Reads the whole regular file at `path` (`RegularFile`), as a `DatasetError` naming it on failure.
func readWholeFile(path: String, limit: Int) throws -> [UInt8] {
    do throws(FileReadError) { return try RegularFile.contents(of: path, limit: limit) } catch {
        if case .tooLarge = error { throw DatasetError.tooLarge(path: path, limitBytes: limit) }
        throw DatasetError.unreadableFile(path: path, reason: error.reason)
    }
}


/// Streaming gzip decompression through zlib, strict about truncation and trailing garbage.
enum Gzip {
    /// Whether `bytes` starts with the gzip magic number `1F 8B`.
    static func isCompressed(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// DEFLATE expands at most about 1032 : 1; a larger claim is a lie.
    static let maximumRatio = 1032

    /// Decompresses every gzip member of `input`, refusing output beyond `limit` bytes. `expectedSize`, given what
    /// has been decompressed so far, returns the whole output's size once it can tell (e.g. from a header); from
    /// then on exactly that much is reserved and one byte more is an error.
    static func decompress(_ input: [UInt8], path: String, limit: Int,
                           expectedSize: ((ArraySlice<UInt8>) throws -> Int?)? = nil) throws -> [UInt8] {
        func failure(_ reason: String) -> DatasetError { .corruptGzip(path: path, reason: reason) }
        var stream = z_stream()
        // 16 + MAX_WBITS asks zlib for a gzip wrapper (header and CRC-32 trailer), not zlib's own.
        guard inflateInit2_(&stream, 16 + MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw failure("zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }

        var output: [UInt8] = []
        var expected: Int?
        var limit = limit
        let chunkSize = 1 << 18
        let chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize)
        defer { chunk.deallocate() }

        return try input.withUnsafeBufferPointer { source -> [UInt8] in
            guard let base = source.baseAddress else { throw failure("the file is empty") }
            var fed = 0  // Bytes handed to zlib so far; fed in pieces because avail_in is 32-bit.
            while true {
                if stream.avail_in == 0 && fed < source.count {
                    let piece = min(source.count - fed, 1 << 30)
                    stream.next_in = UnsafeMutablePointer(mutating: base + fed)
                    stream.avail_in = uInt(piece)
                    fed += piece
                }
                stream.next_out = chunk
                stream.avail_out = uInt(chunkSize)
                let status = inflate(&stream, Z_NO_FLUSH)
                let produced = chunkSize - Int(stream.avail_out)
                guard output.count + produced <= limit else {
                    if let expected { throw DatasetError.exceedsHeader(path: path, expectedBytes: expected) }
                    throw DatasetError.tooLarge(path: path, limitBytes: limit)
                }
                output.append(contentsOf: UnsafeBufferPointer(start: chunk, count: produced))
                if expected == nil, let expectedSize, let size = try expectedSize(output[...]) {
                    guard size <= limit else { throw DatasetError.tooLarge(path: path, limitBytes: limit) }
                    guard size / maximumRatio <= input.count else {
                        throw failure("the header claims \(size) bytes, more than \(input.count) compressed bytes can hold")
                    }
                    (expected, limit) = (size, size)
                    // Reserved, not touched: the pages become resident only as data arrives.
                    output.reserveCapacity(size)
                }
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    let remaining = Int(stream.avail_in) + (source.count - fed)
                    if remaining == 0 { return output }
                    // Concatenated members are legal gzip (`cat a.gz b.gz`); anything else is not.
                    let next = source.count - remaining
                    guard remaining >= 2, source[next] == 0x1F, source[next + 1] == 0x8B else {
                        throw failure("\(remaining) bytes of unexpected data follow the end of the gzip stream")
                    }
                    guard inflateReset(&stream) == Z_OK else { throw failure("zlib could not be reset") }
                case Z_BUF_ERROR where stream.avail_in == 0 && fed == source.count:
                    throw failure("the stream is truncated after \(source.count) compressed bytes")
                case Z_DATA_ERROR:
                    let detail = stream.msg.map { String(cString: $0) } ?? "invalid compressed data"
                    throw failure(detail)
                case Z_MEM_ERROR:
                    throw failure("zlib ran out of memory")
                case Z_NEED_DICT:
                    throw failure("the stream needs a preset dictionary")
                default:
                    throw failure("zlib returned status \(status)")
                }
            }
        }
    }
}
