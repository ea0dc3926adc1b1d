import Foundation
import FoveaData
import FoveaTensor
import Testing

@Suite("Image transforms: exact identities, determinism, parameter ranges, errors")
struct TransformTests {
    /// An asymmetric 2×5×7 image whose bytes are all distinct and non-zero.
    let image = DecodedImage(channels: 2, height: 5, width: 7, pixels: (0..<70).map { UInt8($0 + 1) })
    func pixel(_ img: DecodedImage, _ c: Int, _ y: Int, _ x: Int) -> UInt8 { img.pixels[(c * img.height + y) * img.width + x] }

    @Test("a crop's pixels equal the source window, zero outside the image")
    func crop() {
        let cropped = Geometric.crop(image, top: -1, left: 2, height: 5, width: 7)
        for c in 0..<2 { for y in 0..<5 { for x in 0..<7 {
            let (sy, sx) = (y - 1, x + 2)
            #expect(pixel(cropped, c, y, x) == (sy >= 0 && sy < 5 && sx < 7 ? pixel(image, c, sy, sx) : 0))
        } } }
        #expect(Geometric.crop(image, top: 0, left: 0, height: 5, width: 7) == image)
    }

    @Test("a flip twice is the identity, and a flip mirrors", arguments: [true, false])
    func flip(horizontal: Bool) {
        let once = Geometric.flip(image, horizontal: horizontal)
        #expect(once != image)
        #expect(pixel(once, 1, 0, 0) == (horizontal ? pixel(image, 1, 0, 6) : pixel(image, 1, 4, 0)))
        #expect(Geometric.flip(once, horizontal: horizontal) == image)
    }

    @Test("rotating a square image by 90° permutes its indices; the identity affine is the identity",
          arguments: [Interpolation.nearest, .bilinear])
    func rotation(interpolation: Interpolation) {
        let square = DecodedImage(channels: 2, height: 5, width: 5, pixels: (0..<50).map { UInt8(3 * $0 + 7) })
        let rotated = Geometric.rotate(square, angle: 90, interpolation: interpolation, fill: 0)
        // Counter-clockwise: output (y, x) shows input (x, n−1−y).
        for c in 0..<2 { for y in 0..<5 { for x in 0..<5 { #expect(pixel(rotated, c, y, x) == pixel(square, c, x, 4 - y)) } } }
        #expect(Geometric.affine(image, angle: 0, translate: (0, 0), scale: 1, shear: (0, 0), interpolation: interpolation, fill: 9) == image)
        #expect(Geometric.rotate(image, angle: 360, interpolation: interpolation, fill: 0) == image)
    }

    @Test("a whole-pixel translation shifts the image and fills the uncovered band")
    func translation() {
        let shifted = Geometric.affine(image, angle: 0, translate: (2, -1), scale: 1, shear: (0, 0), interpolation: .nearest, fill: 200)
        for c in 0..<2 { for y in 0..<5 { for x in 0..<7 {
            let (sy, sx) = (y + 1, x - 2)
            #expect(pixel(shifted, c, y, x) == (sy < 5 && sx >= 0 ? pixel(image, c, sy, sx) : 200))
        } } }
    }

    @Test("nearest resize by an integer factor repeats pixels; centre crop of the whole image is the identity")
    func resizeAndCentre() {
        let doubled = Geometric.resizeNearest(image, height: 10, width: 14)
        for c in 0..<2 { for y in 0..<10 { for x in 0..<14 { #expect(pixel(doubled, c, y, x) == pixel(image, c, y / 2, x / 2)) } } }
        var generator = SeededGenerator(seed: 0)
        let square = Geometric.crop(image, top: 0, left: 0, height: 5, width: 5)
        #expect(ImageTransform.centerCrop(size: 5).apply(square, generator: &generator) == square)
    }

    @Test("colour identities: factor 1 changes nothing, hue shift 0 and grey of grey are fixed points")
    func colourIdentities() {
        let rgb = DecodedImage(channels: 3, height: 4, width: 6, pixels: (0..<72).map { UInt8(($0 * 37) % 256) })
        #expect(Photometric.adjustBrightness(rgb, factor: 1) == rgb)
        #expect(Photometric.adjustContrast(rgb, factor: 1) == rgb)
        #expect(Photometric.adjustSaturation(rgb, factor: 1) == rgb)
        #expect(Photometric.adjustSharpness(rgb, factor: 1) == rgb)
        #expect(Photometric.adjustBrightness(rgb, factor: 0).pixels.allSatisfy { $0 == 0 })
        let grey = Photometric.grayscale(rgb, outputChannels: 3)
        #expect(Photometric.adjustSaturation(grey, factor: 1.7) == grey)
        #expect(Photometric.posterize(rgb, bits: 8) == rgb && Photometric.solarize(rgb, threshold: 256) == rgb)
        #expect(Photometric.gaussianBlur(rgb, kernelSize: 1, sigma: 1) == rgb)
        // Hue: a pure red turns pure green after a third of a turn.
        let red = DecodedImage(channels: 3, height: 1, width: 1, pixels: [255, 0, 0])
        #expect(Photometric.adjustHue(red, shift: 1.0 / 3).pixels == [0, 255, 0])
        #expect(Photometric.adjustHue(red, shift: 0).pixels == [255, 0, 0])
    }

    static let randomTransforms: [ImageTransform] = [
        .randomCrop(padding: 2), .horizontalFlip(probability: 0.5), .verticalFlip(probability: 0.5),
        .rotation(degrees: -30...30, interpolation: .bilinear, fill: 0),
        .affine(degrees: -10...10, translateX: 0.2, translateY: 0.1, scale: 0.8...1.2, shearX: -10...10, shearY: 0...0,
                interpolation: .nearest, fill: 0),
        .colorJitter(brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1), .randomGrayscale(probability: 0.5),
        .gaussianBlur(kernelSize: 3, sigma: 0.1...2), .trivialAugmentWide, .randAugment(operations: 2, magnitude: 9),
        .randomResizedCrop(size: 6, scale: 0.08...1, ratio: 0.75...1.33),
    ]

    @Test("each random transform is a function of the generator state, and not a constant one", arguments: randomTransforms)
    func deterministic(_ transform: ImageTransform) throws {
        let bytes: [UInt8] = (0..<297).map { (i: Int) -> UInt8 in UInt8((i * 53 + i / 11 * 7) % 256) }
        let rgb = DecodedImage(channels: 3, height: 9, width: 11, pixels: bytes)
        var outputs = Set<[UInt8]>()
        for seed in 0..<12 as Range<UInt64> {
            var a = SeededGenerator(seed: seed), b = SeededGenerator(seed: seed)
            let first = transform.apply(rgb, generator: &a), second = transform.apply(rgb, generator: &b)
            #expect(first == second && a == b)
            outputs.insert(first.pixels)
        }
        #expect(outputs.count > 1, "\(transform) gave one output for 12 seeds")
        try transform.validate()
        // Codable round trip, as options are saved in checkpoints.
        let decoded = try JSONDecoder().decode(ImageTransform.self, from: JSONEncoder().encode(transform))
        #expect(decoded == transform)
    }

    @Test("augmentations saved by earlier checkpoints (the old Augmentation cases) still decode")
    func earlierCheckpoints() throws {
        let json = #"[{"randomCrop":{"padding":4}},{"horizontalFlip":{"probability":0.5}},{"verticalFlip":{"probability":0.25}}]"#
        let decoded = try JSONDecoder().decode([ImageTransform].self, from: Data(json.utf8))
        #expect(decoded == [.randomCrop(padding: 4), .horizontalFlip(probability: 0.5), .verticalFlip(probability: 0.25)])
    }

    @Test("drawn parameters stay within their configured ranges")
    func ranges() {
        var generator = SeededGenerator(seed: 7)
        var offsets = Set<[Int]>()
        for _ in 0..<400 {
            let (top, left) = ImageTransform.drawCropOffset(padding: 1, generator: &generator)
            offsets.insert([top, left])
            let p = ImageTransform.drawAffine(degrees: -10...20, translateX: 0.1, translateY: 0.3, scale: 0.9...1.1, shearX: -5...5,
                                              shearY: 2...3, height: 10, width: 20, generator: &generator)
            #expect((-10...20).contains(p.angle) && abs(p.translate.0) <= 2 && abs(p.translate.1) <= 3)
            #expect((0.9...1.1).contains(p.scale) && (-5...5).contains(p.shear.0) && (2...3).contains(p.shear.1))
            let jitter = ImageTransform.drawColorJitter(brightness: 0.5, contrast: 0, saturation: 2, hue: 0.2, generator: &generator)
            #expect(jitter.order.sorted() == [0, 1, 2, 3] && jitter.contrast == nil)
            #expect((0.5...1.5).contains(jitter.brightness ?? -1) && (0...3).contains(jitter.saturation ?? -1))
            #expect((-0.2...0.2).contains(jitter.hue ?? 9))
            let (operation, magnitude) = AutoAugmentOperation.draw(policy: .randAugment, bin: 30, height: 10, width: 20, generator: &generator)
            #expect(abs(magnitude) == operation.magnitude(bin: 30, policy: .randAugment, height: 10, width: 20))
            if let region = RandomErasing.drawRegion(height: 10, width: 20, probability: 1, scale: 0.02...0.33, ratio: 0.3...3.3,
                                                     generator: &generator) {
                let area = Double(region.2 * region.3)
                #expect(region.0 >= 0 && region.0 + region.2 <= 10 && region.1 >= 0 && region.1 + region.3 <= 20)
                #expect(area >= 1 && area <= 0.4 * 200)
            }
        }
        #expect(offsets.count == 9, "3 × 3 offsets, saw \(offsets.count)")
        // torchvision's bin tables: RandAugment rotate 0…30°, TrivialAugmentWide posterize 8…2 bits, solarize 255…0.
        #expect(AutoAugmentOperation.rotate.magnitude(bin: 30, policy: .randAugment, height: 1, width: 1) == 30)
        #expect(AutoAugmentOperation.posterize.magnitude(bin: 30, policy: .trivialAugmentWide, height: 1, width: 1) == 2)
        #expect(AutoAugmentOperation.posterize.magnitude(bin: 0, policy: .trivialAugmentWide, height: 1, width: 1) == 8)
        #expect(AutoAugmentOperation.solarize.magnitude(bin: 30, policy: .randAugment, height: 1, width: 1) == 0)
    }

    @Test("random erasing zeroes exactly the drawn rectangle in every channel")
    func erasing() {
        var sample = [Float](repeating: 1, count: 2 * 6 * 8)
        var generator = SeededGenerator(seed: 3)
        sample.withUnsafeMutableBufferPointer {
            RandomErasing.erase($0.baseAddress!, channels: 2, height: 6, width: 8, region: (1, 2, 3, 4), randomValue: false, generator: &generator)
        }
        for c in 0..<2 { for y in 0..<6 { for x in 0..<8 {
            #expect(sample[(c * 6 + y) * 8 + x] == ((1..<4).contains(y) && (2..<6).contains(x) ? 0 : 1))
        } } }
        #expect(RandomErasing.drawRegion(height: 6, width: 8, probability: 0, scale: 0.1...0.2, ratio: 0.5...2, generator: &generator) == nil)
    }

    static let invalid: [(ImageTransform, String)] = [
        (.randomCrop(padding: -1), "padding"), (.horizontalFlip(probability: 1.5), "probability"),
        (.colorJitter(brightness: -1, contrast: 0, saturation: 0, hue: 0), "brightness"),
        (.colorJitter(brightness: 0, contrast: 0, saturation: 0, hue: 0.6), "hue"),
        (.gaussianBlur(kernelSize: 4, sigma: 1...2), "kernelSize"), (.gaussianBlur(kernelSize: 3, sigma: 0...2), "sigma"),
        (.grayscale(outputChannels: 2), "outputChannels"), (.randAugment(operations: 2, magnitude: 31), "magnitude"),
        (.affine(degrees: 0...0, translateX: 2, translateY: 0, scale: 1...1, shearX: 0...0, shearY: 0...0, interpolation: .nearest, fill: 0), "translate"),
        (.affine(degrees: 0...0, translateX: 0, translateY: 0, scale: 1...1, shearX: -90...0, shearY: 0...0, interpolation: .nearest, fill: 0), "shearX"),
        (.randomErasing(probability: 0.5, scale: 0.1...2, ratio: 0.3...3.3, randomValue: false), "scale"),
        (.centerCrop(size: 0), "size"), (.randomResizedCrop(size: 8, scale: 0...1, ratio: 0.75...1.33), "scale"),
    ]

    @Test("invalid parameters are typed errors naming transform and parameter; apply leaves the image alone",
          arguments: 0..<invalid.count)
    func invalidParameters(_ index: Int) {
        let (transform, parameter) = Self.invalid[index]
        #expect(throws: TransformError.self) { try transform.validate() }
        do { try transform.validate() } catch let TransformError.invalidParameter(name, found, _) {
            #expect(name == transform.description && found == parameter)
        } catch { Issue.record("unexpected \(error)") }
        var generator = SeededGenerator(seed: 1)
        #expect(transform.apply(image, generator: &generator) == image)
    }
}
