import Foundation
import FoveaTensor

/// Reading and writing the safetensors format (https://github.com/huggingface/safetensors).
///
/// Layout: an 8-byte little-endian header length N; N bytes of UTF-8 JSON mapping each tensor
/// name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the byte
/// buffer after the header) plus an optional `"__metadata__"` string map; then the buffer.
/// Reading enforces every rule the format states: the header is a JSON object starting with
/// `{`, offsets are in range, sizes agree with shapes, and tensors cover the buffer exactly,
/// without overlaps or holes. Fovea writes F32 only; it reads F32 and converts F64, F16, BF16,
/// and the integer and BOOL types to `Float` (integers above 2²⁴ round to the nearest Float,
/// which suits torchvision's `num_batches_tracked`). Every file Fovea writes carries a SHA-256 of its contents in
/// the metadata (`digestKey`), checked on reading, so a damaged byte is an error instead of different weights.
public enum SafeTensors {
    /// One named tensor: a row-major shape and its values.
    public struct Entry: Equatable, Sendable {
        /// The tensor's name, e.g. `layer1.0.conv1.weight`.
        public var name: String
        /// The dimensions, outermost first; `[]` is a scalar.
        public var shape: [Int]
        /// The elements in row-major order; their count is the product of `shape`.
        public var values: [Float]

        /// Creates an entry.
        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }

        /// The first NaN or infinite value and where it is, or nil: such weights or state give NaN answers.
        public var firstNonFinite: (index: Int, value: Float)? {
            values.firstIndex { !$0.isFinite }.map { ($0, values[$0]) }
        }
    }

    /// The largest file read (8 GiB; the zoo's largest model with the state of Adam is under 2).
    public static let maximumFileBytes = 8 << 30

    /// The longest header accepted: 4 MiB, below the reference implementation's 100 MB because parsing JSON takes
    /// about 80 bytes of memory per header byte here. The largest header Fovea writes (EfficientNet-B7's checkpoint with
    /// Adam's moments and an EMA, some 4,500 tensors) is about 0.5 MB.
    public static let maximumHeaderLength = 4 << 20

    /// Element sizes in bytes of every dtype the format defines.
    static let elementSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
        "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
    ]

    /// The metadata key of the SHA-256 that Fovea stores in every file it writes. It covers the rest of the header and
    /// the whole data buffer, so a damaged byte anywhere (a tensor value, a shape, a name, an option in the metadata)
    /// is found on reading. Files without it (written by other tools, or by Fovea before it kept one) are read as they are.
    public static let digestKey = "fovea_sha256"

    /// Serialises `entries` (stored in name order) and `metadata` as a safetensors file, with the SHA-256 of the
    /// contents under `digestKey` in the metadata.
    ///
    /// The header is padded with spaces so the data starts 8-byte aligned, as the reference writer does.
    /// - Throws: `SafeTensorsError.invalidTensor` for a duplicate or reserved name (`__metadata__`), a negative
    ///   dimension, or a value count that does not match the shape. A `digestKey` in `metadata` is replaced.
    public static func encode(_ entries: [Entry], metadata: [String: String] = [:]) throws -> [UInt8] {
        let sorted = entries.sorted { $0.name < $1.name }
        // A digest passed in (e.g. metadata read from another file) is replaced by this file's own.
        var metadata = metadata
        metadata[digestKey] = nil
        var layout: [SafeTensorsHeader.Tensor] = []
        var offset = 0
        var previous: String?
        for entry in sorted {
            if entry.name == previous { throw SafeTensorsError.invalidTensor(name: entry.name, reason: "the name appears twice") }
            if entry.name == "__metadata__" { throw SafeTensorsError.invalidTensor(name: entry.name, reason: "the name is reserved") }
            guard let count = elementCount(entry.shape), count == entry.values.count else {
                throw SafeTensorsError.invalidTensor(
                    name: entry.name, reason: "shape \(entry.shape) does not hold \(entry.values.count) values")
            }
            layout.append(.init(name: entry.name, dataType: "F32", shape: entry.shape, elementCount: count,
                                begin: offset, end: offset + 4 * count))
            offset += 4 * count
            previous = entry.name
        }
        // The digest is 64 hexadecimal digits whatever it is, so the header is laid out with a placeholder, the data
        // written after it, and the placeholder then overwritten in place: the tensors are never copied twice.
        var signed = metadata
        signed[digestKey] = String(repeating: "0", count: 64)
        var headerBytes = Array(header(layout, metadata: signed).utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(UInt8(ascii: " ")) }

        var output: [UInt8] = []
        output.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { output.append(contentsOf: $0) }
        output += headerBytes
        for entry in sorted {
            #if _endian(little)
            entry.values.withUnsafeBytes { output.append(contentsOf: $0) }
            #else
            for value in entry.values {
                withUnsafeBytes(of: value.bitPattern.littleEndian) { output.append(contentsOf: $0) }
            }
            #endif
        }
        let dataStart = 8 + headerBytes.count
        signed[digestKey] = output.withUnsafeBytes {
            digest(header: header(layout, metadata: metadata), data: UnsafeRawBufferPointer(rebasing: $0[dataStart...]))
        }
        let final = Array(header(layout, metadata: signed).utf8)
        output.replaceSubrange(8..<8 + final.count, with: final)
        return output
    }

    /// The JSON header for tensors laid out as `tensors` (in name order) with `metadata`, unpadded. Reading rebuilds
    /// it from a parsed header to check the digest, so it depends only on the values, never on the file's spelling.
    private static func header(_ tensors: [SafeTensorsHeader.Tensor], metadata: [String: String]) -> String {
        // Parts joined once: appending with a count check per tensor would be quadratic in a hostile 4 MiB header.
        var parts: [String] = []
        parts.reserveCapacity(tensors.count + 1)
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { jsonString($0.key) + ":" + jsonString($0.value) }
            parts.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        for tensor in tensors {
            parts.append(jsonString(tensor.name) + ":{\"dtype\":" + jsonString(tensor.dataType) + ",\"shape\":["
                + tensor.shape.map(String.init).joined(separator: ",")
                + "],\"data_offsets\":[\(tensor.begin),\(tensor.end)]}")
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// The SHA-256 of a header without its digest followed by the data buffer.
    private static func digest(header: String, data: UnsafeRawBufferPointer) -> String {
        var hash = SHA256()
        hash.update(header.utf8)
        hash.update(data)
        return hash.hexDigest()
    }

    /// Writes `entries` to `path` atomically: a temporary file is written, synced and renamed,
    /// so a crash leaves either the old file or the new one, never a torn one.
    public static func write(_ entries: [Entry], metadata: [String: String] = [:], to path: String) throws {
        try writeAtomically(encode(entries, metadata: metadata), to: path)
    }

    /// Reads and validates the safetensors file at `path`.
    public static func read(path: String) throws -> (entries: [String: Entry], metadata: [String: String]) {
        try decode(readFile(path: path), path: path)
    }

    /// Parses and validates a safetensors file held in `bytes`; `path` names it in errors.
    public static func decode(
        _ bytes: [UInt8], path: String
    ) throws -> (entries: [String: Entry], metadata: [String: String]) {
        guard bytes.count >= 8 else { throw SafeTensorsError.fileTooShort(path: path, byteCount: bytes.count) }
        let declared = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard declared <= UInt64(min(maximumHeaderLength, bytes.count - 8)) else {
            throw SafeTensorsError.headerTooLarge(path: path, headerLength: declared, available: bytes.count - 8)
        }
        let headerEnd = 8 + Int(declared)
        let header = try SafeTensorsHeader(bytes[8..<headerEnd], path: path)
        let bufferSize = bytes.count - headerEnd

        for tensor in header.tensors where tensor.end > bufferSize {
            throw SafeTensorsError.offsetsOutOfRange(
                path: path, name: tensor.name, begin: tensor.begin, end: tensor.end, bufferSize: bufferSize)
        }
        // The format requires the tensors to tile the buffer: sorted by offset, each must start
        // exactly where the previous one ended, and the last must end at the end of the file.
        var covered = 0
        var previous = ""
        for tensor in header.tensors.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            if tensor.begin < covered {
                throw SafeTensorsError.overlappingTensors(path: path, name: tensor.name, other: previous)
            }
            if tensor.begin > covered {
                throw SafeTensorsError.uncoveredBytes(path: path, begin: covered, end: tensor.begin)
            }
            covered = tensor.end
            previous = tensor.name
        }
        if covered < bufferSize { throw SafeTensorsError.uncoveredBytes(path: path, begin: covered, end: bufferSize) }

        if let stored = header.metadata[digestKey] {
            var unsigned = header.metadata
            unsigned[digestKey] = nil
            let computed = bytes.withUnsafeBytes {
                digest(header: Self.header(header.tensors, metadata: unsigned), data: UnsafeRawBufferPointer(rebasing: $0[headerEnd...]))
            }
            guard computed == stored else { throw SafeTensorsError.damaged(path: path, stored: stored, computed: computed) }
        }
        var entries: [String: Entry] = [:]
        bytes.withUnsafeBytes { raw in
            let buffer = UnsafeRawBufferPointer(rebasing: raw[headerEnd...])
            for tensor in header.tensors {
                let values = convert(buffer, from: tensor.begin, count: tensor.elementCount, dataType: tensor.dataType)
                entries[tensor.name] = Entry(name: tensor.name, shape: tensor.shape, values: values)
            }
        }
        return (entries, header.metadata)
    }

    /// The product of `shape`, or nil if a dimension is negative or the product overflows.
    static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard dimension >= 0, !overflow else { return nil }
            count = product
        }
        return count
    }

    /// Converts `count` little-endian elements of `dataType` starting at byte `begin` to Float.
    private static func convert(
        _ buffer: UnsafeRawBufferPointer, from begin: Int, count: Int, dataType: String
    ) -> [Float] {
        func load<T: FixedWidthInteger>(_: T.Type, _ index: Int) -> T {
            T(littleEndian: buffer.loadUnaligned(fromByteOffset: begin + index * MemoryLayout<T>.size, as: T.self))
        }
        #if _endian(little)
        if dataType == "F32" {  // The common case: a straight copy.
            return [Float](unsafeUninitializedCapacity: count) { values, initialized in
                UnsafeMutableRawBufferPointer(values).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: buffer[begin..<begin + 4 * count]))
                initialized = count
            }
        }
        #endif
        let element: (Int) -> Float
        switch dataType {
        case "F32": element = { Float(bitPattern: load(UInt32.self, $0)) }
        case "F64": element = { Float(Double(bitPattern: load(UInt64.self, $0))) }
        case "F16": element = { floatFromHalf(load(UInt16.self, $0)) }
        case "BF16": element = { Float(bitPattern: UInt32(load(UInt16.self, $0)) << 16) }
        case "I64": element = { Float(load(Int64.self, $0)) }
        case "U64": element = { Float(load(UInt64.self, $0)) }
        case "I32": element = { Float(load(Int32.self, $0)) }
        case "U32": element = { Float(load(UInt32.self, $0)) }
        case "I16": element = { Float(load(Int16.self, $0)) }
        case "U16": element = { Float(load(UInt16.self, $0)) }
        case "I8": element = { Float(load(Int8.self, $0)) }
        case "BOOL": element = { load(UInt8.self, $0) == 0 ? 0 : 1 }
        default: element = { Float(load(UInt8.self, $0)) }  // U8; the header rejected the rest.
        }
        return (0..<count).map(element)
    }

    /// IEEE 754 binary16 to Float, exact for every value including subnormals, infinities and NaN.
    static func floatFromHalf(_ bits: UInt16) -> Float {
        let sign: Float = bits & 0x8000 == 0 ? 1 : -1
        let exponent = Int(bits >> 10 & 0x1F)
        let fraction = UInt32(bits & 0x3FF)
        switch exponent {
        case 0: return sign * Float(fraction) * 0x1p-24
        case 0x1F: return Float(bitPattern: UInt32(bits & 0x8000) << 16 | 0x7F80_0000 | fraction << 13)
        default: return Float(bitPattern: UInt32(bits & 0x8000) << 16 | UInt32(exponent + 112) << 23 | fraction << 13)
        }
    }

    /// `text` as a JSON string literal.
    private static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let digits = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}

/// Reads the whole regular file at `path` (`RegularFile`), up to `SafeTensors.maximumFileBytes`.
private func readFile(path: String) throws -> [UInt8] {
    do throws(FileReadError) { return try RegularFile.contents(of: path, limit: SafeTensors.maximumFileBytes) } catch {
        throw SafeTensorsError.unreadableFile(path: path, reason: error.reason)
    }
}
