import CImageCodecs
import Foundation
@testable import FoveaData
import FoveaTensor
import Testing

/// An RGB test image with edges and texture in every channel, interleaved.
func texturedImage(width: Int, height: Int, seed: Int = 0) -> [UInt8] {
    var pixels: [UInt8] = []
    for y in 0..<height {
        for x in 0..<width {
            for c in 0..<3 { pixels.append(UInt8((x * 37 + y * 11 + c * 59 + ((x * y + seed) % 7) * 13) % 256)) }
        }
    }
    return pixels
}

/// Writes `bytes` to a new file in `directory` and returns its path.
func writeFile(_ bytes: [UInt8], _ directory: String, _ name: String) throws -> String {
    let path = directory + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// What the general path computes: decode, each transform in turn, a final resize to the shape, (p/255 − m)/s.
func generalPath(_ path: String, transforms: [ImageTransform], shape: [Int], augment: Bool, mean: [Float], std: [Float],
                 generator: inout SeededGenerator) throws -> [Float] {
    var image = try ImageDecoder.decode(path: path, channels: shape[0])
    for transform in transforms where augment || !transform.isRandom { image = transform.apply(image, generator: &generator) }
    if image.height != shape[1] || image.width != shape[2] { image = Resize.bilinear(image, height: shape[1], width: shape[2]) }
    let plane = shape[1] * shape[2]
    return image.pixels.enumerated().map { i, p in (Float(p) / 255 - mean[i / plane]) / std[i / plane] }
}

/// The fused path's output (NaN where it wrote nothing) and whether it handled the image.
func fusedPath(_ pipeline: ImagePipeline, _ path: String, augment: Bool, generator: inout SeededGenerator) throws -> ([Float], Bool) {
    var output = [Float](repeating: .nan, count: pipeline.shape.reduce(1, *))
    let handled = try output.withUnsafeMutableBufferPointer {
        try pipeline.load(path: path, augment: augment, generator: &generator, into: $0.baseAddress!)
    }
    return (output, handled)
}

/// One image file and transform sequence for the fused-versus-general comparison.
struct PipelineCase: CustomTestStringConvertible, Sendable {
    var name: String
    var file: String  // "jpeg420", "jpeg444", "png", "grey-jpeg"
    var width: Int
    var height: Int
    var transforms: [ImageTransform]
    var shape: [Int]
    var augment: Bool
    var testDescription: String { name }
}

@Suite("The fused image pipeline")
struct ImagePipelineTests {
    static let training: [ImageTransform] = [.randomResizedCrop(size: 24, scale: 0.08...1, ratio: (3.0 / 4)...(4.0 / 3)),
                                             .horizontalFlip(probability: 0.5)]
    static let cases: [PipelineCase] = [
        PipelineCase(name: "train, JPEG 4:2:0", file: "jpeg420", width: 61, height: 47, transforms: training, shape: [3, 24, 24], augment: true),
        PipelineCase(name: "train, tall PNG", file: "png", width: 30, height: 90, transforms: training, shape: [3, 24, 24], augment: true),
        PipelineCase(name: "train, grey JPEG as grey", file: "grey-jpeg", width: 50, height: 40, transforms: training, shape: [1, 24, 24], augment: true),
        PipelineCase(name: "train, grey JPEG as RGB", file: "grey-jpeg", width: 50, height: 40, transforms: training, shape: [3, 24, 24], augment: true),
        PipelineCase(name: "train transforms without augmentation", file: "jpeg444", width: 61, height: 47, transforms: training, shape: [3, 24, 24], augment: false),
        PipelineCase(name: "evaluation: shorter side, centre crop", file: "jpeg420", width: 61, height: 47,
                     transforms: [.resizeShorterSide(size: 27), .centerCrop(size: 24)], shape: [3, 24, 24], augment: false),
        PipelineCase(name: "centre crop of the source, then resize", file: "png", width: 61, height: 47,
                     transforms: [.centerCrop(size: 40), .resize(height: 20, width: 30)], shape: [3, 20, 30], augment: false),
        PipelineCase(name: "no transforms: resized to the shape", file: "png", width: 17, height: 13, transforms: [], shape: [3, 24, 24], augment: false),
        PipelineCase(name: "no transforms: already the shape", file: "jpeg444", width: 24, height: 24, transforms: [], shape: [3, 24, 24], augment: true),
        PipelineCase(name: "train with random erasing (acts later, on floats)", file: "jpeg420", width: 61, height: 47,
                     transforms: training + [.randomErasing(probability: 1, scale: 0.02...0.33, ratio: 0.3...3.3, randomValue: false)],
                     shape: [3, 24, 24], augment: true),
        PipelineCase(name: "an invalid transform is left out, as apply leaves it", file: "png", width: 61, height: 47,
                     transforms: [.randomResizedCrop(size: 24, scale: 0.5...1, ratio: 0.75...1.33), .horizontalFlip(probability: 1.5)],
                     shape: [3, 24, 24], augment: true),
    ]

    func write(_ kind: String, width: Int, height: Int, in directory: String) throws -> String {
        let rgb = texturedImage(width: width, height: height)
        switch kind {
        case "jpeg420": return try writeFile(encodeJPEG(rgb, width: width, height: height, format: TJPF_RGB, subsampling: TJSAMP_420),
                                             directory, "a.jpg")
        case "jpeg444": return try writeFile(encodeJPEG(rgb, width: width, height: height, format: TJPF_RGB, subsampling: TJSAMP_444),
                                             directory, "b.jpg")
        case "grey-jpeg":
            let grey = stride(from: 0, to: rgb.count, by: 3).map { rgb[$0] }
            return try writeFile(encodeJPEG(grey, width: width, height: height, format: TJPF_GRAY, subsampling: TJSAMP_GRAY),
                                 directory, "g.jpg")
        default: return try writeFile(encodePNG(rgb, width: width, height: height, format: 2), directory, "c.png")
        }
    }

    @Test("writes exactly the floats of decoding, transforming one by one and normalising", arguments: cases)
    func sameAsGeneralPath(_ example: PipelineCase) throws {
        let directory = try scratchDirectory("pipeline")
        let path = try write(example.file, width: example.width, height: example.height, in: directory)
        let (mean, std): ([Float], [Float]) = example.shape[0] == 1 ? ([0.45], [0.25]) : ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        let pipeline = try #require(ImagePipeline(transforms: example.transforms, shape: example.shape, mean: mean, std: std))
        var plans: [ResamplePlan] = []
        for seed in 0..<10 as Range<UInt64> {
            var a = SeededGenerator(seed: seed, stream: 3, 5), b = a, c = a
            let expected = try generalPath(path, transforms: example.transforms, shape: example.shape, augment: example.augment,
                                           mean: mean, std: std, generator: &a)
            let (fused, handled) = try fusedPath(pipeline, path, augment: example.augment, generator: &b)
            #expect(handled)
            #expect(fused == expected, "seed \(seed): \(zip(fused, expected).filter { $0 != $1 }.count) values differ")
            #expect(a == b, "the two paths drew different amounts of randomness")
            plans.append(try #require(ResamplePlan(example.transforms, augment: example.augment, height: example.height,
                                                   width: example.width, shape: (example.shape[1], example.shape[2]),
                                                   generator: &c)))
        }
        if example.augment && example.transforms.contains(.horizontalFlip(probability: 0.5)) {
            // The seeds exercise different windows and both flip states.
            #expect(Set(plans.map { "\($0.window)" }).count > 5 && Set(plans.map(\.flip)).count == 2)
        }
    }

    @Test("a centre crop larger than the image is left to the general path, nothing written")
    func fallback() throws {
        let directory = try scratchDirectory("pipeline-fallback")
        let path = try writeFile(encodePNG(texturedImage(width: 20, height: 16), width: 20, height: 16, format: 2), directory, "s.png")
        let pipeline = try #require(ImagePipeline(transforms: [.centerCrop(size: 24)], shape: [3, 24, 24], mean: [0.5], std: [0.5]))
        var generator = SeededGenerator(seed: 1)
        let (output, handled) = try fusedPath(pipeline, path, augment: false, generator: &generator)
        #expect(!handled && output.allSatisfy(\.isNaN))
        #expect(ImagePipeline(transforms: [.horizontalFlip(probability: 0.5), .centerCrop(size: 8)], shape: [3, 8, 8],
                              mean: [0.5], std: [0.5]) == nil, "a crop after a flip is not folded")
        #expect(ImagePipeline(transforms: Self.training + [.colorJitter(brightness: 0.4, contrast: 0, saturation: 0, hue: 0)],
                              shape: [3, 24, 24], mean: [0.5], std: [0.5]) == nil, "photometric transforms go the general way")
    }

    @Test("bilinear resizing equals PIL's byte for byte (RGB; shrinking, enlarging, after a crop)")
    func resizeMatchesPIL() {
        let (width, height) = (23, 17)
        let interleaved = texturedImage(width: width, height: height)
        let planar = (0..<(3 * width * height)).map { interleaved[($0 % (width * height)) * 3 + $0 / (width * height)] }
        let image = DecodedImage(channels: 3, height: height, width: width, pixels: planar)
        // Printed by PIL 13: Image.fromarray(a).resize((8, 6), Image.BILINEAR), planar.
        let shrunk: [UInt8] = [
            75, 154, 76, 135, 118, 94, 158, 69, 121, 159, 84, 163, 103, 131, 150, 83, 141, 137, 90, 154, 74, 148, 106, 94, 145,
            96, 121, 129, 98, 148, 97, 131, 140, 87, 134, 108, 111, 139, 94, 143, 141, 94, 162, 100, 143, 139, 108, 179, 127,
            133, 102, 149, 106, 137, 132, 102, 160, 106, 123, 145, 99, 162, 105, 130, 165, 102, 139, 138, 111, 164, 105, 153,
            142, 104, 162, 109, 147, 142, 118, 178, 103, 118, 155, 93, 162, 98, 135, 157, 121, 130, 141, 114, 146, 99, 140,
            136, 151, 92, 142, 120, 116, 151, 99, 153, 142, 103, 158, 109, 140, 116, 116, 149, 106, 110, 155, 89, 157, 108,
            120, 153, 111, 151, 181, 116, 197, 121, 163, 171, 115, 176, 171, 139, 190, 115, 192, 139, 89, 154, 84, 145, 115,
            109, 156, 80,
        ]
        #expect(Resize.bilinear(image, height: 6, width: 8).pixels == shrunk)
        // torchvision F.resized_crop(img, top 3, left 2, height 11, width 7, [6, 10]): 7 columns enlarged to 10, 11 rows
        // shrunk to 6.
        let cropped: [UInt8] = [
            160, 178, 198, 214, 164, 107, 50, 45, 80, 126, 173, 189, 187, 141, 70, 38, 48, 57, 106, 163, 173, 193, 202, 181,
            82, 43, 68, 78, 107, 138, 167, 149, 107, 30, 53, 90, 129, 108, 129, 164, 149, 123, 90, 60, 85, 108, 126, 123, 161,
            208, 135, 76, 42, 80, 99, 113, 124, 135, 131, 122, 219, 176, 116, 45, 61, 85, 109, 104, 139, 185, 149, 141, 116,
            66, 82, 97, 107, 116, 165, 222, 176, 159, 122, 56, 76, 102, 127, 137, 166, 197, 95, 81, 73, 83, 112, 149, 188,
            167, 188, 223, 35, 58, 86, 115, 144, 167, 185, 182, 145, 101, 63, 76, 101, 139, 158, 172, 183, 194, 131, 50, 132,
            89, 65, 97, 120, 144, 168, 163, 188, 222, 80, 72, 79, 118, 141, 156, 166, 175, 132, 76, 35, 55, 82, 108, 135, 161,
            186, 196, 168, 131, 85, 109, 132, 142, 171, 208, 247, 226, 132, 26, 94, 117, 145, 174, 203, 226, 244, 241, 163, 70,
            122, 135, 160, 198, 217, 231, 236, 160, 122, 109,
        ]
        let window = ImageTransform.crop(image, top: 3, left: 2, height: 11, width: 7)
        #expect(Resize.bilinear(window, height: 6, width: 10).pixels == cropped)
        // The fused resampler, reading the window in place from interleaved RGBX rows, gives the same bytes.
        var rgbx: [UInt8] = []
        for i in 0..<(width * height) { rgbx += interleaved[(i * 3)..<(i * 3 + 3)] + [255] }
        var fused = [UInt8](repeating: 0, count: 3 * 60)
        rgbx.withUnsafeBufferPointer { source in
            Resize.resample(source.baseAddress!, rowBytes: width * 4, bytesPerPixel: 4, top: 3, left: 2,
                            rows: Resize.taps(input: 11, output: 6, range: 0..<6),
                            columns: Resize.taps(input: 7, output: 10, range: 0..<10),
                            verticalFirst: Resize.verticalFirst(from: (11, 7), to: (6, 10)), buffers: ResampleBuffers()) { y, line in
                for x in 0..<10 { for c in 0..<3 { fused[c * 60 + y * 10 + x] = line[x * 4 + c] } }
            }
        }
        #expect(fused == cropped)
    }
}

/// The folder of torchvision exports, from `FOVEA_LOADER_PARITY_DIR`.
private let loaderParityDirectory = ProcessInfo.processInfo.environment["FOVEA_LOADER_PARITY_DIR"]

/// Decoding, RandomResizedCrop windows, flips and normalisation against torchvision on real JPEGs, from exports written
/// by `scripts/parity/export_torchvision_dataload.py` (each entry: an image, a window, a flip, torchvision's floats).
@Suite("Loader parity with torchvision", .enabled(if: loaderParityDirectory != nil, "set FOVEA_LOADER_PARITY_DIR to run"))
struct LoaderParityTests {
    struct Entry: Decodable {
        var path: String
        var top: Int, left: Int, height: Int, width: Int
        var flip: Bool
        var size: Int
        var tensor: String
    }

    @Test("the fused path writes torchvision's floats bit for bit")
    func sameFloats() throws {
        let directory = try #require(loaderParityDirectory)
        let manifest = try Data(contentsOf: URL(fileURLWithPath: directory + "/manifest.json"))
        let entries = try JSONDecoder().decode([Entry].self, from: manifest)
        #expect(!entries.isEmpty)
        var differing = 0
        for entry in entries {
            let shape = [3, entry.size, entry.size]
            let pipeline = try #require(ImagePipeline(transforms: [], shape: shape, mean: [0.485, 0.456, 0.406],
                                                      std: [0.229, 0.224, 0.225]))
            var output = [Float](repeating: .nan, count: shape.reduce(1, *))
            let plan = ResamplePlan(window: (entry.top, entry.left, entry.height, entry.width), resized: (entry.size, entry.size),
                                    output: (0, 0), flip: entry.flip)
            let handled = try output.withUnsafeMutableBufferPointer { buffer in
                try pipeline.load(path: entry.path, into: buffer.baseAddress!) { _, _ in plan }
            }
            let reference = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + entry.tensor)).withUnsafeBytes {
                Array($0.bindMemory(to: Float.self))
            }
            #expect(handled && reference.count == output.count)
            let mismatches = zip(output, reference).filter { $0.bitPattern != $1.bitPattern }.count
            if mismatches > 0 {
                differing += 1
                Issue.record("\(entry.path): \(mismatches) of \(output.count) values differ")
            }
        }
        print("loader parity: \(entries.count) images, \(differing) differ")
    }
}
