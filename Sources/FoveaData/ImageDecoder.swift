import CImageCodecs
import Foundation
import FoveaTensor

/// A decoded 8-bit image: planar channels × height × width (1 = grey, 3 = RGB).
public struct DecodedImage: Equatable, Sendable {
    public var channels: Int
    public var height: Int
    public var width: Int
    /// `channels × height × width` bytes, channel after channel.
    public var pixels: [UInt8]

    /// Creates an image from planar bytes.
    public init(channels: Int, height: Int, width: Int, pixels: [UInt8]) {
        (self.channels, self.height, self.width, self.pixels) = (channels, height, width, pixels)
    }
}

/// Why an image file could not be decoded; every case names the file.
public enum ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    case unreadable(path: String, reason: String)
    case empty(path: String)
    case unknownFormat(path: String)
    case tooManyPixels(path: String, width: Int, height: Int, limit: Int)
    case corrupt(path: String, format: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "Cannot read image '\(path)': \(reason)."
        case let .empty(path): return "Image file '\(path)' is empty."
        case let .unknownFormat(path): return "'\(path)' is neither a JPEG nor a PNG file (checked by its first bytes)."
        case let .tooManyPixels(path, width, height, limit):
            return "Image '\(path)' claims \(width)×\(height) pixels, more than the limit of \(limit)."
        case let .corrupt(path, format, reason): return "\(format) file '\(path)' is damaged: \(reason)."
        }
    }
}

/// Decodes JPEG (through TurboJPEG: baseline, progressive, grey, CMYK) and PNG (through libpng's simplified API:
/// 8/16-bit, grey, palette, alpha) chosen by magic bytes. Both libraries report errors by return value here (each
/// catches its own `longjmp` inside the library), so a damaged file gives a typed error and never ends the process.
/// The pixel count is checked against the limit from the header, before any pixel memory is allocated.
///
/// JPEGs are decoded exactly as libjpeg-turbo's defaults (and so PIL) decode them: accurate integer IDCT and smooth
/// chroma upsampling, never the fast or DCT-scaled variants, so the pixels are the same as torchvision's.
public enum ImageDecoder {
    /// Default limit on width × height, as PIL's decompression-bomb guard.
    public static let defaultPixelLimit = 89_478_485
    /// Largest image file read into memory (1 GiB; a PNG of the default pixel limit at 16 bits per channel, stored
    /// without compression, stays below it).
    public static let fileSizeLimit = 1 << 30

    /// Reads and decodes the file at `path` as grey (`channels == 1`) or RGB (any other value).
    public static func decode(path: String, channels: Int = 3, pixelLimit: Int = defaultPixelLimit) throws -> DecodedImage {
        let buffers = DecodeBuffers.current
        let count = try readFile(path, into: buffers.file)
        let image = try decodeInterleaved(UnsafeRawBufferPointer(start: buffers.file.pointer, count: count), path: path,
                                          grey: channels == 1, pixelLimit: pixelLimit, buffers: buffers)
        defer { buffers.trim() }
        return image.planar()
    }

    /// Decodes bytes already in memory as grey (`channels == 1`) or RGB (any other value); `path` names them in errors.
    public static func decode(_ bytes: [UInt8], path: String, channels: Int = 3, pixelLimit: Int = defaultPixelLimit) throws -> DecodedImage {
        let buffers = DecodeBuffers.current
        defer { buffers.trim() }
        return try bytes.withUnsafeBytes { raw in
            try decodeInterleaved(raw, path: path, grey: channels == 1, pixelLimit: pixelLimit, buffers: buffers).planar()
        }
    }

    /// Reads the whole regular file at `path` (`RegularFile`) into `buffer` (grown as needed) and returns its length.
    static func readFile(_ path: String, into buffer: ReusableBuffer<UInt8>) throws -> Int {
        do throws(FileReadError) {
            let file = try RegularFile(path: path, limit: fileSizeLimit)
            // One byte more than the size: a file that grew since it was opened is read to its end all the same.
            var capacity = file.size + 1
            var length = 0
            while true {
                let pointer = buffer.reserve(capacity)
                let got = try file.read(into: pointer + length, count: capacity - length)
                if got == 0 { return length }
                length += got
                if length == capacity {
                    // Keep what was read while growing the buffer.
                    let kept = [UInt8](UnsafeBufferPointer(start: pointer, count: length))
                    capacity *= 2
                    kept.withUnsafeBufferPointer { buffer.reserve(capacity).update(from: $0.baseAddress!, count: length) }
                }
            }
        } catch {
            if case let .tooLarge(size, limit) = error {
                throw ImageError.unreadable(path: path, reason: "\(size) bytes, more than the \(limit)-byte limit for image files")
            }
            throw ImageError.unreadable(path: path, reason: error.reason)
        }
    }

    /// Decodes a JPEG or PNG into `buffers.pixels` as interleaved rows: one byte per pixel when `grey`, else four
    /// (R, G, B and an unused byte, so a pixel is one aligned 32-bit word for the resampler).
    static func decodeInterleaved(_ bytes: UnsafeRawBufferPointer, path: String, grey: Bool, pixelLimit: Int,
                                  buffers: DecodeBuffers) throws -> InterleavedImage {
        guard bytes.count > 0 else { throw ImageError.empty(path: path) }
        let jpegMagic: [UInt8] = [0xFF, 0xD8, 0xFF], pngMagic: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if bytes.starts(with: jpegMagic) { return try decodeJPEG(bytes, path, grey, pixelLimit, buffers) }
        if bytes.starts(with: pngMagic) { return try decodePNG(bytes, path, grey, pixelLimit, buffers) }
        throw ImageError.unknownFormat(path: path)
    }

    private static func decodeJPEG(_ bytes: UnsafeRawBufferPointer, _ path: String, _ grey: Bool, _ limit: Int,
                                   _ buffers: DecodeBuffers) throws -> InterleavedImage {
        guard let handle = buffers.jpegHandle() else {
            throw ImageError.corrupt(path: path, format: "JPEG", reason: "cannot start TurboJPEG")
        }
        let source = bytes.bindMemory(to: UInt8.self).baseAddress!, size = UInt(bytes.count)
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        // After an error TurboJPEG 2.1 leaves the decompressor mid-stream: the message is read, then the handle replaced.
        let message = { () -> String in
            defer { buffers.discardJPEGHandle() }
            return String(cString: tjGetErrorStr2(handle))
        }
        guard tjDecompressHeader3(handle, source, size, &width, &height, &subsampling, &colorspace) == 0 else {
            throw ImageError.corrupt(path: path, format: "JPEG", reason: message())
        }
        guard width > 0, height > 0 else { throw ImageError.corrupt(path: path, format: "JPEG", reason: "zero size") }
        guard Int(width) * Int(height) <= limit else {
            throw ImageError.tooManyPixels(path: path, width: Int(width), height: Int(height), limit: limit)
        }
        let (w, h) = (Int(width), Int(height))
        let cmyk = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let format = cmyk ? TJPF_CMYK : (grey ? TJPF_GRAY : TJPF_RGBX)
        let stride = cmyk ? 4 : (grey ? 1 : 4)
        let pixels = buffers.pixels.reserve(w * h * stride)
        let status = tjDecompress2(handle, source, size, pixels, width, Int32(w * stride), height, Int32(format.rawValue), 0)
        // TurboJPEG also reports a truncated stream (which it would pad with grey) by a nonzero status: an error here.
        if status != 0 { throw ImageError.corrupt(path: path, format: "JPEG", reason: message()) }
        if cmyk {
            // Adobe CMYK JPEGs store inverted values; R = C + K − 255 (clamped), as PIL converts them.
            for i in 0..<(w * h) {
                let p = pixels + i * 4, k = Int(p[3])
                for c in 0..<3 { p[c] = UInt8(max(0, Int(p[c]) + k - 255)) }
            }
            if grey {
                // ITU-R 601 luma, as PIL's convert("L"); written forwards over the four-byte pixels already read.
                for i in 0..<(w * h) {
                    let p = pixels + i * 4
                    let (r, g, b) = (Int(p[0]), Int(p[1]), Int(p[2]))
                    let luma: Int = (r * 299 + g * 587 + b * 114 + 500) / 1000
                    pixels[i] = UInt8(luma)
                }
                return InterleavedImage(width: w, height: h, bytesPerPixel: 1, pixels: pixels)
            }
        }
        return InterleavedImage(width: w, height: h, bytesPerPixel: stride, pixels: pixels)
    }

    /// Walks the chunks of a PNG before libpng sees it: every chunk must fit in the file (libpng allocates what a
    /// chunk's length claims before reading it, so a 53-byte file could ask for 2 GB). Returns a copy without the
    /// text chunks (tEXt, zTXt, iTXt: never used here, and zTXt/iTXt are compressed) when there are any, else nil.
    static func checkPNGChunks(_ bytes: UnsafeRawBufferPointer, path: String) throws -> [UInt8]? {
        func bad(_ reason: String) -> ImageError { .corrupt(path: path, format: "PNG", reason: reason) }
        let textChunks: Set<String> = ["tEXt", "zTXt", "iTXt"]
        var position = 8, kept: [Range<Int>] = [0..<8], stripped = false
        while position + 8 <= bytes.count {
            let length = bytes[position..<position + 4].reduce(0) { $0 << 8 | Int($1) }
            let type = String(decoding: bytes[position + 4..<position + 8], as: UTF8.self)
            let remaining = bytes.count - position - 12
            guard length <= 0x7FFF_FFFF, length <= remaining else {
                throw bad("chunk '\(type.prefix(4))' at byte \(position) claims \(length) bytes but the file has \(max(remaining, 0)) left")
            }
            let end = position + 12 + length
            if textChunks.contains(type) { stripped = true } else { kept.append(position..<end) }
            position = end
            if type == "IEND" { break }
        }
        // A file that ends inside a chunk header is left to libpng, which reports it as truncated.
        if position < bytes.count { kept.append(position..<bytes.count) }
        guard stripped else { return nil }
        var copy: [UInt8] = []
        copy.reserveCapacity(bytes.count)
        for range in kept { copy.append(contentsOf: bytes[range]) }
        return copy
    }

    private static func decodePNG(_ bytes: UnsafeRawBufferPointer, _ path: String, _ grey: Bool, _ limit: Int,
                                  _ buffers: DecodeBuffers) throws -> InterleavedImage {
        if let stripped = try checkPNGChunks(bytes, path: path) {
            return try stripped.withUnsafeBytes { try decodePNGChecked($0, path, grey, limit, buffers) }
        }
        return try decodePNGChecked(bytes, path, grey, limit, buffers)
    }

    private static func decodePNGChecked(_ bytes: UnsafeRawBufferPointer, _ path: String, _ grey: Bool, _ limit: Int,
                                         _ buffers: DecodeBuffers) throws -> InterleavedImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let message = { (image: inout png_image) -> String in
            withUnsafeBytes(of: &image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        guard png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count) != 0 else {
            let reason = message(&image)
            png_image_free(&image)
            throw ImageError.corrupt(path: path, format: "PNG", reason: reason)
        }
        let (w, h) = (Int(image.width), Int(image.height))
        guard w * h <= limit else {
            png_image_free(&image)
            throw ImageError.tooManyPixels(path: path, width: w, height: h, limit: limit)
        }
        // 16-bit, palette and alpha inputs are all converted to 8-bit grey or RGB; alpha is composited over black.
        image.format = grey ? 0 : 2  // PNG_FORMAT_GRAY, PNG_FORMAT_RGB (= PNG_FORMAT_FLAG_COLOR)
        let channels = grey ? 1 : 3
        let pixels = buffers.pixels.reserve(w * h * (grey ? 1 : 4))
        guard png_image_finish_read(&image, nil, pixels, 0, nil) != 0 else {
            let reason = message(&image)
            png_image_free(&image)
            throw ImageError.corrupt(path: path, format: "PNG", reason: reason)
        }
        if grey { return InterleavedImage(width: w, height: h, bytesPerPixel: 1, pixels: pixels) }
        // Three bytes per pixel → four, from the last pixel back so nothing is overwritten before it is read.
        for i in stride(from: w * h - 1, through: 0, by: -1) {
            let (r, g, b) = (pixels[i * channels], pixels[i * channels + 1], pixels[i * channels + 2])
            (pixels[i * 4], pixels[i * 4 + 1], pixels[i * 4 + 2], pixels[i * 4 + 3]) = (r, g, b, 255)
        }
        return InterleavedImage(width: w, height: h, bytesPerPixel: 4, pixels: pixels)
    }
}

/// A decoded image in reusable memory: interleaved rows of `bytesPerPixel` bytes per pixel (1: grey; 4: R, G, B and
/// an unused byte). Valid until the next decode with the same buffers.
struct InterleavedImage {
    var width: Int
    var height: Int
    var bytesPerPixel: Int
    var pixels: UnsafeMutablePointer<UInt8>

    /// A planar copy (1 or 3 channels).
    func planar() -> DecodedImage {
        let plane = width * height, channels = bytesPerPixel == 1 ? 1 : 3
        var output = [UInt8](repeating: 0, count: channels * plane)
        output.withUnsafeMutableBufferPointer { output in
            for c in 0..<channels {
                let destination = output.baseAddress! + c * plane
                for i in 0..<plane { destination[i] = pixels[i * bytesPerPixel + c] }
            }
        }
        return DecodedImage(channels: channels, height: height, width: width, pixels: output)
    }
}

/// A thread's reusable decoding memory: the file's bytes, the decoded pixels, the TurboJPEG handle and the resampler's
/// lines, so loading one image after another allocates (and page-faults) nothing new once the largest has been seen.
final class DecodeBuffers {
    let file = ReusableBuffer<UInt8>()
    let pixels = ReusableBuffer<UInt8>()
    let resample = ResampleBuffers()
    private var handle: tjhandle?

    /// The thread's TurboJPEG decompressor, created on first use.
    func jpegHandle() -> tjhandle? {
        if handle == nil { handle = tjInitDecompress() }
        return handle
    }

    /// Frees buffers grown past 64 MiB by an unusually large image, so a thread does not keep that much for good.
    func trim() {
        for buffer in [file, pixels, resample.intermediate] where buffer.capacity > 64 << 20 { buffer.release() }
    }

    /// Destroys the decompressor (after an error), so the next image starts from a fresh one.
    func discardJPEGHandle() {
        if let handle { tjDestroy(handle) }
        handle = nil
    }

    deinit { discardJPEGHandle() }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in if let pointer { Unmanaged<DecodeBuffers>.fromOpaque(pointer).release() } }
        return key
    }()

    /// The calling thread's buffers (freed when the thread ends).
    static var current: DecodeBuffers {
        if let pointer = pthread_getspecific(key) { return Unmanaged<DecodeBuffers>.fromOpaque(pointer).takeUnretainedValue() }
        let buffers = DecodeBuffers()
        pthread_setspecific(key, Unmanaged.passRetained(buffers).toOpaque())
        return buffers
    }
}
