import CImageCodecs
import Foundation
import FoveaData
import Testing

/// Encodes interleaved 8-bit pixels as PNG with libpng's simplified writer (`format` as libpng's PNG_FORMAT_*).
func encodePNG(_ interleaved: [UInt8], width: Int, height: Int, format: UInt32, colormap: [UInt8]? = nil) -> [UInt8] {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    image.width = UInt32(width)
    image.height = UInt32(height)
    image.format = format
    if let colormap { image.colormap_entries = UInt32(colormap.count / 3) }
    var size = 0
    let map = colormap ?? [0]
    return map.withUnsafeBytes { mapBytes in
        let mapPointer = colormap == nil ? nil : mapBytes.baseAddress
        _ = png_image_write_to_memory(&image, nil, &size, 0, interleaved, 0, mapPointer)
        var output = [UInt8](repeating: 0, count: size)
        precondition(png_image_write_to_memory(&image, &output, &size, 0, interleaved, 0, mapPointer) != 0)
        return Array(output.prefix(size))
    }
}

/// Encodes interleaved pixels as JPEG with TurboJPEG.
func encodeJPEG(_ interleaved: [UInt8], width: Int, height: Int, format: TJPF, subsampling: TJSAMP, flags: Int32 = 0) -> [UInt8] {
    let handle = tjInitCompress()!
    defer { tjDestroy(handle) }
    var buffer: UnsafeMutablePointer<UInt8>?
    var size: UInt = 0
    precondition(tjCompress2(handle, interleaved, Int32(width), 0, Int32(height), Int32(format.rawValue), &buffer, &size,
                             Int32(subsampling.rawValue), 100, flags) == 0, String(cString: tjGetErrorStr2(handle)))
    defer { tjFree(buffer) }
    return Array(UnsafeBufferPointer(start: buffer, count: Int(size)))
}

@Suite("Image decoding")
struct ImageDecoderTests {
    let width = 6, height = 5
    var rgb: [UInt8] { (0..<(6 * 5 * 3)).map { UInt8(($0 * 29) % 256) } }
    var grey: [UInt8] { (0..<(6 * 5)).map { UInt8(($0 * 41) % 256) } }

    func planar(_ interleaved: [UInt8], _ channels: Int) -> [UInt8] {
        let plane = width * height
        return (0..<(channels * plane)).map { interleaved[($0 % plane) * channels + $0 / plane] }
    }

    @Test("PNG grey and RGB decode exactly, in both directions of channel conversion")
    func png() throws {
        let colour = try ImageDecoder.decode(encodePNG(rgb, width: width, height: height, format: 2), path: "rgb.png")
        #expect(colour == DecodedImage(channels: 3, height: height, width: width, pixels: planar(rgb, 3)))
        let grey1 = try ImageDecoder.decode(encodePNG(grey, width: width, height: height, format: 0), path: "g.png", channels: 1)
        #expect(grey1.pixels == grey)
        let grey3 = try ImageDecoder.decode(encodePNG(grey, width: width, height: height, format: 0), path: "g.png", channels: 3)
        #expect(grey3.pixels == grey + grey + grey)
    }

    @Test("16-bit, palette and alpha PNGs become 8-bit images")
    func pngVariants() throws {
        // 16-bit linear grey written from 8-bit values v·257 decodes back to v (up to libpng's sRGB rounding).
        let wide = grey.flatMap { value -> [UInt8] in
            let word = UInt16(value) * 257
            return withUnsafeBytes(of: word, Array.init)
        }
        let sixteen = try ImageDecoder.decode(encodePNG(wide, width: width, height: height, format: 4), path: "16.png", channels: 1)
        #expect(sixteen.width == width && sixteen.channels == 1 && sixteen.pixels.count == width * height)
        // Palette: four colours, indices cycling.
        let palette: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
        let indices = (0..<(width * height)).map { UInt8($0 % 4) }
        let mapped = try ImageDecoder.decode(encodePNG(indices, width: width, height: height, format: 2 | 8, colormap: palette),
                                             path: "p.png")
        #expect((0..<(width * height)).allSatisfy { i in
            (0..<3).allSatisfy { c in mapped.pixels[c * width * height + i] == palette[Int(indices[i]) * 3 + c] }
        })
        // RGBA with full opacity keeps the colours.
        let source = rgb
        var rgba: [UInt8] = []
        for i in 0..<(width * height) { rgba += Array(source[(i * 3)..<(i * 3 + 3)]) + [UInt8(255)] }
        #expect(try ImageDecoder.decode(encodePNG(rgba, width: width, height: height, format: 3), path: "a.png").pixels == planar(rgb, 3))
    }

    @Test("JPEG baseline, progressive, grey and CMYK decode close to the source", arguments: [0, 1, 2, 3])
    func jpeg(kind: Int) throws {
        let bytes: [UInt8]
        var expected = planar(rgb, 3)
        switch kind {
        case 0: bytes = encodeJPEG(rgb, width: width, height: height, format: TJPF_RGB, subsampling: TJSAMP_444)
        case 1: bytes = encodeJPEG(rgb, width: width, height: height, format: TJPF_RGB, subsampling: TJSAMP_444,
                                   flags: Int32(TJFLAG_PROGRESSIVE))
        case 2:
            bytes = encodeJPEG(grey, width: width, height: height, format: TJPF_GRAY, subsampling: TJSAMP_GRAY)
            expected = grey + grey + grey
        default:
            // CMYK stored Adobe-style (inverted); all-ink-off K (255) and C = 255 − R etc. reproduce RGB.
            let source = rgb
            var cmyk: [UInt8] = []
            for i in 0..<(width * height) { cmyk += Array(source[(i * 3)..<(i * 3 + 3)]) + [UInt8(255)] }
            bytes = encodeJPEG(cmyk, width: width, height: height, format: TJPF_CMYK, subsampling: TJSAMP_444)
        }
        let image = try ImageDecoder.decode(bytes, path: "x.jpg")
        #expect(image.channels == 3 && image.height == height && image.width == width)
        let worst = zip(image.pixels, expected).map { abs(Int($0) - Int($1)) }.max() ?? 0
        #expect(worst <= 12, "largest difference \(worst) for kind \(kind)")
    }

    @Test("damaged, empty, foreign and oversized files are typed errors naming the file")
    func badFiles() throws {
        let png = encodePNG(rgb, width: width, height: height, format: 2)
        let jpeg = encodeJPEG(rgb, width: width, height: height, format: TJPF_RGB, subsampling: TJSAMP_444)
        #expect(throws: ImageError.empty(path: "e.png")) { try ImageDecoder.decode([], path: "e.png") }
        #expect(throws: ImageError.unknownFormat(path: "t.jpg")) { try ImageDecoder.decode(Array("hello".utf8), path: "t.jpg") }
        for (bytes, name) in [(Array(png.prefix(png.count - 20)), "cut.png"), (Array(jpeg.prefix(jpeg.count / 2)), "cut.jpg"),
                              (Array(png.prefix(40)) + [UInt8](repeating: 7, count: 60), "junk.png"),
                              (Array(jpeg.prefix(30)) + [UInt8](repeating: 0, count: 50), "junk.jpg")] {
            do {
                _ = try ImageDecoder.decode(bytes, path: name)
                Issue.record("\(name) decoded")
            } catch let error as ImageError {
                #expect(error.description.contains(name))
            }
        }
        #expect(throws: ImageError.tooManyPixels(path: "big.png", width: width, height: height, limit: 10)) {
            try ImageDecoder.decode(png, path: "big.png", pixelLimit: 10)
        }
        #expect(throws: ImageError.tooManyPixels(path: "big.jpg", width: width, height: height, limit: 10)) {
            try ImageDecoder.decode(jpeg, path: "big.jpg", pixelLimit: 10)
        }
        #expect(throws: ImageError.self) { try ImageDecoder.decode(path: "/nonexistent/fovea.png") }
    }

    @Test("bilinear resize equals PIL's, grey, shrinking and enlarging")
    func resize() {
        var source: [UInt8] = []
        for y in 0..<7 { for x in 0..<9 { source.append(UInt8((x * 37 + y * 11) % 256)) } }
        let image = DecodedImage(channels: 1, height: 7, width: 9, pixels: source)
        // Printed by PIL 11 and 13 (Image.resize with BILINEAR, which antialiases when shrinking) for this image.
        let shrunk: [UInt8] = [40, 115, 181, 70, 64, 139, 185, 79, 88, 163, 160, 66]
        let down = Resize.bilinear(image, height: 3, width: 4).pixels
        #expect(down == shrunk)
        let grownFirstRow: [UInt8] = [0, 20, 46, 71, 97, 122, 148, 174, 199, 205, 54, 20, 40]
        let up = Resize.bilinear(image, height: 10, width: 13).pixels
        #expect(Array(up.prefix(13)) == grownFirstRow)
        #expect(Resize.bilinear(image, height: 7, width: 9) == image)
    }
}
