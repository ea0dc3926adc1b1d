import CImageCodecs
import Foundation
import FoveaData
import FoveaTensor
import Testing

/// A PNG chunk: length, type, data, CRC-32 of type and data (zlib's, an independent implementation).
func pngChunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let body = Array(type.utf8) + data
    let crc = UInt32(body.withUnsafeBufferPointer { crc32(0, $0.baseAddress, UInt32($0.count)) })
    return bigEndian(UInt32(data.count)) + body + bigEndian(crc)
}

func bigEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) } }

/// Offset of the first chunk of `type` in a PNG file (its length field).
func chunkOffset(_ png: [UInt8], _ type: String) -> Int? {
    var offset = 8
    while offset + 8 <= png.count {
        let length = png[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
        if Array(png[(offset + 4)..<(offset + 8)]) == Array(type.utf8) { return offset }
        offset += 12 + length
    }
    return nil
}

@Suite("Damaged and hostile image files")
struct BadImageFileTests {
    /// The files, each with what its error must say; the directory they are in.
    static func makeFiles() throws -> (String, [(name: String, check: @Sendable (ImageError) -> Bool)]) {
        let directory = try scratchDirectory("bad-images")
        let rgb = texturedImage(width: 64, height: 48)
        let jpeg = encodeJPEG(rgb, width: 64, height: 48, format: TJPF_RGB, subsampling: TJSAMP_420)
        let png = encodePNG(rgb, width: 64, height: 48, format: 2)
        let idat = try #require(chunkOffset(png, "IDAT"))
        var badCRC = png
        badCRC[idat + 8 + 5] ^= 0x55  // a byte of the compressed data: the chunk's CRC no longer matches
        // A header claiming 10,000 × 10,000 pixels (more than the default limit of 89,478,485), then a few bytes of
        // image data (a zlib stream of one zero byte) where 300 MB would be needed.
        let ihdr = bigEndian(10_000) + bigEndian(10_000) + [8, 2, 0, 0, 0]
        let hugePNG = Array(png.prefix(8)) + pngChunk("IHDR", ihdr) + pngChunk("IDAT", [0x78, 0x9C, 0x63, 0, 0, 0, 1, 0, 1])
            + pngChunk("IEND", [])
        var hugeJPEG = jpeg
        let frame = try #require((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        // SOF0: marker, length (2), precision (1), height (2), width (2).
        for offset in [5, 7] { (hugeJPEG[frame + offset], hugeJPEG[frame + offset + 1]) = (0x27, 0x10) }
        try FileManager.default.createDirectory(atPath: directory + "/folder.jpg", withIntermediateDirectories: true)
        let files: [(String, [UInt8]?, @Sendable (ImageError) -> Bool)] = [
            ("truncated.jpg", Array(jpeg.prefix(jpeg.count / 2)), { if case .corrupt(_, "JPEG", _) = $0 { true } else { false } }),
            ("bad-crc.png", badCRC, { if case .corrupt(_, "PNG", _) = $0 { true } else { false } }),
            ("truncated-idat.png", Array(png.prefix(idat + 8 + 20)), { if case .corrupt(_, "PNG", _) = $0 { true } else { false } }),
            ("text.jpg", Array("This is not a JPEG.\n".utf8), { if case .unknownFormat = $0 { true } else { false } }),
            ("empty.png", [], { if case .empty = $0 { true } else { false } }),
            ("huge.png", hugePNG, { $0 == .tooManyPixels(path: directory + "/huge.png", width: 10_000, height: 10_000, limit: 89_478_485) }),
            ("huge.jpg", hugeJPEG, { $0 == .tooManyPixels(path: directory + "/huge.jpg", width: 10_000, height: 10_000, limit: 89_478_485) }),
            ("folder.jpg", nil, { if case .unreadable = $0 { true } else { false } }),
            ("sparse.jpg", nil, { if case let .unreadable(_, reason) = $0 { reason.contains("limit") } else { false } }),
            ("missing.png", nil, { if case .unreadable = $0 { true } else { false } }),
        ]
        for case let (name, bytes?, _) in files { _ = try writeFile(bytes, directory, name) }
        // A JPEG start followed by a hole: 1 GiB + 1 bytes long without using the disk, refused before it is read.
        let sparse = try writeFile(Array(jpeg.prefix(20)), directory, "sparse.jpg")
        guard truncate(sparse, off_t(ImageDecoder.fileSizeLimit + 1)) == 0 else {
            throw ImageError.unreadable(path: sparse, reason: "cannot make the sparse test file")
        }
        return (directory, files.map { ($0.0, $0.2) })
    }

    @Test("each bad file is a typed error naming it, from the decoder and from the fused pipeline, and later files decode")
    func typedErrors() throws {
        let (directory, files) = try Self.makeFiles()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let good = try writeFile(encodeJPEG(texturedImage(width: 30, height: 20), width: 30, height: 20, format: TJPF_RGB,
                                            subsampling: TJSAMP_420), directory, "good.jpg")
        let pipeline = try #require(ImagePipeline(transforms: [.resize(height: 8, width: 8)], shape: [3, 8, 8], mean: [0.5], std: [0.5]))
        for (name, check) in files {
            let path = directory + "/" + name
            for route in ["decoder", "pipeline"] {
                do {
                    if route == "decoder" {
                        _ = try ImageDecoder.decode(path: path)
                    } else {
                        var generator = SeededGenerator(seed: 0)
                        _ = try fusedPath(pipeline, path, augment: false, generator: &generator)
                    }
                    Issue.record("\(name) was accepted by the \(route)")
                } catch let error as ImageError {
                    #expect(check(error), "\(name), \(route): \(error)")
                    #expect(error.description.contains(path), "\(name), \(route): \(error.description)")
                }
                // The decoders recover: a good file right after a bad one on the same thread decodes.
                #expect(try ImageDecoder.decode(path: good).width == 30, "after \(name)")
            }
        }
    }

    @Test("the pixel limit is configurable: a smaller one rejects an ordinary image, from its header")
    func pixelLimit() throws {
        let directory = try scratchDirectory("pixel-limit")
        let path = try writeFile(encodePNG(texturedImage(width: 40, height: 30), width: 40, height: 30, format: 2), directory, "p.png")
        let pipeline = try #require(ImagePipeline(transforms: [], shape: [3, 30, 40], mean: [0.5], std: [0.5], pixelLimit: 1_199))
        var generator = SeededGenerator(seed: 0)
        #expect(throws: ImageError.tooManyPixels(path: path, width: 40, height: 30, limit: 1_199)) {
            try fusedPath(pipeline, path, augment: false, generator: &generator)
        }
        #expect(try ImageDecoder.decode(path: path, pixelLimit: 1_200).width == 40)
    }
}
