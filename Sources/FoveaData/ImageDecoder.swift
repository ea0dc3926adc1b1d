import CImageCodecs
import Foundation

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
/// 8/16-bit, grey, palette, alpha) chosen by magic bytes. Both libraries report errors by return value here, so a
/// damaged file gives a typed error and never ends the process. The pixel count is checked before any allocation.
public enum ImageDecoder {
    /// Default limit on width × height, as PIL's decompression-bomb guard.
    public static let defaultPixelLimit = 89_478_485

    /// Reads and decodes the file at `path` as grey (`channels == 1`) or RGB (`channels == 3`).
    public static func decode(path: String, channels: Int = 3, pixelLimit: Int = defaultPixelLimit) throws -> DecodedImage {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        return try decode([UInt8](data), path: path, channels: channels, pixelLimit: pixelLimit)
    }

    /// Decodes bytes already in memory; `path` names them in errors.
    public static func decode(_ bytes: [UInt8], path: String, channels: Int = 3, pixelLimit: Int = defaultPixelLimit) throws -> DecodedImage {
        precondition(channels == 1 || channels == 3, "decode to 1 or 3 channels")
        guard !bytes.isEmpty else { throw ImageError.empty(path: path) }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return try decodeJPEG(bytes, path, channels, pixelLimit) }
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return try decodePNG(bytes, path, channels, pixelLimit) }
        throw ImageError.unknownFormat(path: path)
    }

    private static func decodeJPEG(_ bytes: [UInt8], _ path: String, _ channels: Int, _ limit: Int) throws -> DecodedImage {
        guard let handle = tjInitDecompress() else { throw ImageError.corrupt(path: path, format: "JPEG", reason: "cannot start TurboJPEG") }
        defer { tjDestroy(handle) }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let message = { String(cString: tjGetErrorStr2(handle)) }
        guard tjDecompressHeader3(handle, bytes, UInt(bytes.count), &width, &height, &subsampling, &colorspace) == 0 else {
            throw ImageError.corrupt(path: path, format: "JPEG", reason: message())
        }
        guard width > 0, height > 0 else { throw ImageError.corrupt(path: path, format: "JPEG", reason: "zero size") }
        guard Int(width) * Int(height) <= limit else {
            throw ImageError.tooManyPixels(path: path, width: Int(width), height: Int(height), limit: limit)
        }
        let (w, h) = (Int(width), Int(height))
        let cmyk = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let format = cmyk ? TJPF_CMYK : (channels == 1 ? TJPF_GRAY : TJPF_RGB)
        let stride = cmyk ? 4 : channels
        var interleaved = [UInt8](repeating: 0, count: w * h * stride)
        let status = tjDecompress2(handle, bytes, UInt(bytes.count), &interleaved, width, 0, height, Int32(format.rawValue), 0)
        // TurboJPEG also reports a truncated stream (which it would pad with grey) by a nonzero status: an error here.
        if status != 0 { throw ImageError.corrupt(path: path, format: "JPEG", reason: message()) }
        if cmyk {
            // Adobe CMYK JPEGs store inverted values; R = C + K − 255 (clamped), as PIL converts them.
            var rgb = [UInt8](repeating: 0, count: w * h * 3)
            for i in 0..<(w * h) {
                let k = Int(interleaved[i * 4 + 3])
                for c in 0..<3 { rgb[i * 3 + c] = UInt8(max(0, Int(interleaved[i * 4 + c]) + k - 255)) }
            }
            return planar(rgb, 3, h, w, channels)
        }
        return planar(interleaved, channels, h, w, channels)
    }

    private static func decodePNG(_ bytes: [UInt8], _ path: String, _ channels: Int, _ limit: Int) throws -> DecodedImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let message = { (image: inout png_image) -> String in
            withUnsafeBytes(of: &image.message) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        }
        guard png_image_begin_read_from_memory(&image, bytes, bytes.count) != 0 else {
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
        image.format = channels == 1 ? 0 : 2  // PNG_FORMAT_GRAY, PNG_FORMAT_RGB (= PNG_FORMAT_FLAG_COLOR)
        var interleaved = [UInt8](repeating: 0, count: w * h * channels)
        guard png_image_finish_read(&image, nil, &interleaved, 0, nil) != 0 else {
            let reason = message(&image)
            png_image_free(&image)
            throw ImageError.corrupt(path: path, format: "PNG", reason: reason)
        }
        return planar(interleaved, channels, h, w, channels)
    }

    /// Interleaved H×W×C bytes → planar C×H×W, converting grey ↔ RGB to `wanted` channels.
    static func planar(_ interleaved: [UInt8], _ channels: Int, _ height: Int, _ width: Int, _ wanted: Int) -> DecodedImage {
        let plane = height * width
        var pixels = [UInt8](repeating: 0, count: wanted * plane)
        for i in 0..<plane {
            if channels == wanted {
                for c in 0..<channels { pixels[c * plane + i] = interleaved[i * channels + c] }
            } else if wanted == 1 {
                // ITU-R 601 luma, as PIL's convert("L").
                let (r, g, b) = (Int(interleaved[i * 3]), Int(interleaved[i * 3 + 1]), Int(interleaved[i * 3 + 2]))
                pixels[i] = UInt8((r * 299 + g * 587 + b * 114 + 500) / 1000)
            } else {
                for c in 0..<3 { pixels[c * plane + i] = interleaved[i] }
            }
        }
        return DecodedImage(channels: wanted, height: height, width: width, pixels: pixels)
    }
}
