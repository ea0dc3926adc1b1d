import Foundation
import FoveaTensor

/// Per-image transforms of planar byte images (C×H×W), with torchvision's semantics, for in-memory and folder
/// datasets alike. Each random case draws its parameters from the generator it is given (the `draw…` functions),
/// then applies a pure function of them (`Geometric`, `Photometric`, `AutoAugmentOperation`), so a sample's
/// augmentation depends only on (seed, epoch, index) — what makes runs reproducible and resume exact.
public enum ImageTransform: Equatable, Sendable, Codable, CustomStringConvertible {
    /// A random window with area fraction in `scale` and aspect ratio in `ratio`, resized to size×size
    /// (Szegedy et al. 2015; torchvision RandomResizedCrop, ten tries then a centre crop).
    case randomResizedCrop(size: Int, scale: ClosedRange<Double>, ratio: ClosedRange<Double>)
    /// Resize so that the shorter side is `size`, keeping the aspect ratio (torchvision Resize(int), bilinear).
    case resizeShorterSide(size: Int)
    /// The central size×size window, zero-padded if the image is smaller (torchvision CenterCrop).
    case centerCrop(size: Int)
    /// Resize to exactly height×width, bilinear, antialiased when shrinking (torchvision Resize, antialias=True).
    case resize(height: Int, width: Int)
    /// Resize to exactly height×width by nearest neighbour (torchvision Resize with NEAREST on tensors).
    case resizeNearest(height: Int, width: Int)
    /// Mirror left–right with probability `probability` (torchvision RandomHorizontalFlip).
    case horizontalFlip(probability: Double)
    /// Mirror top–bottom with probability `probability` (torchvision RandomVerticalFlip).
    case verticalFlip(probability: Double)
    /// Zero-pad by `padding` on every side, then crop a random window of the original size
    /// (the CIFAR recipe of He et al. 2015; torchvision RandomCrop(size, padding)).
    case randomCrop(padding: Int)
    /// Rotate by an angle (degrees, counter-clockwise) uniform in `degrees`; uncovered pixels get `fill`
    /// (torchvision RandomRotation).
    case rotation(degrees: ClosedRange<Double>, interpolation: Interpolation, fill: UInt8)
    /// Rotation uniform in `degrees` (clockwise), translation up to ±translateX·width and ±translateY·height pixels,
    /// scale uniform in `scale`, shear (degrees) uniform in `shearX` and `shearY`, about the image centre
    /// (torchvision RandomAffine; a shear of ±s there is shearX −s…s, shearY 0…0).
    case affine(degrees: ClosedRange<Double>, translateX: Double, translateY: Double, scale: ClosedRange<Double>,
                shearX: ClosedRange<Double>, shearY: ClosedRange<Double>, interpolation: Interpolation, fill: UInt8)
    /// Brightness, contrast and saturation factors uniform in [max(0, 1 − x), 1 + x] and a hue shift in [−hue, hue],
    /// applied in a random order; 0 leaves that property alone (torchvision ColorJitter).
    case colorJitter(brightness: Double, contrast: Double, saturation: Double, hue: Double)
    /// Convert to grey luma with `outputChannels` (1 or 3) channels (torchvision Grayscale).
    case grayscale(outputChannels: Int)
    /// Convert to grey, keeping the channel count, with probability `probability` (torchvision RandomGrayscale).
    case randomGrayscale(probability: Double)
    /// Gaussian blur with an odd `kernelSize` and σ uniform in `sigma`, reflect padding (torchvision GaussianBlur).
    case gaussianBlur(kernelSize: Int, sigma: ClosedRange<Double>)
    /// One operation of 14 at a random magnitude of 31 bins (Müller & Hutter 2021; torchvision TrivialAugmentWide).
    case trivialAugmentWide
    /// `operations` random operations at magnitude bin `magnitude` of 31 (Cubuk et al. 2019; torchvision RandAugment).
    case randAugment(operations: Int, magnitude: Int)
    /// Random erasing of a rectangle with probability `probability` (see `RandomErasing`). It acts on the normalised
    /// Float sample, after every byte transform, so `apply` leaves the bytes unchanged.
    case randomErasing(probability: Double, scale: ClosedRange<Double>, ratio: ClosedRange<Double>, randomValue: Bool)

    /// Whether the transform is random (applied to training samples only); deterministic ones always run.
    public var isRandom: Bool {
        switch self {
        case .resizeShorterSide, .centerCrop, .resize, .resizeNearest, .grayscale: return false
        default: return true
        }
    }

    /// A short readable form, e.g. `rotation(-30.0…30.0°, nearest, fill 0)`.
    public var description: String {
        func range(_ r: ClosedRange<Double>) -> String { "\(r.lowerBound)…\(r.upperBound)" }
        switch self {
        case let .randomResizedCrop(size, scale, ratio): return "random-resized-crop(\(size), scale \(scale), ratio \(ratio))"
        case let .resizeShorterSide(size): return "resize-shorter(\(size))"
        case let .centerCrop(size): return "center-crop(\(size))"
        case let .resize(height, width): return "resize(\(height)×\(width))"
        case let .resizeNearest(height, width): return "resize-nearest(\(height)×\(width))"
        case let .horizontalFlip(probability): return "horizontal-flip(\(probability))"
        case let .verticalFlip(probability): return "vertical-flip(\(probability))"
        case let .randomCrop(padding): return "random-crop(pad \(padding))"
        case let .rotation(degrees, interpolation, fill): return "rotation(\(range(degrees))°, \(interpolation), fill \(fill))"
        case let .affine(degrees, translateX, translateY, scale, shearX, shearY, interpolation, fill):
            return "affine(\(range(degrees))°, translate \(translateX)×\(translateY), scale \(range(scale)), "
                + "shear \(range(shearX))° \(range(shearY))°, \(interpolation), fill \(fill))"
        case let .colorJitter(brightness, contrast, saturation, hue):
            return "color-jitter(brightness \(brightness), contrast \(contrast), saturation \(saturation), hue \(hue))"
        case let .grayscale(outputChannels): return "grayscale(\(outputChannels) channels)"
        case let .randomGrayscale(probability): return "random-grayscale(\(probability))"
        case let .gaussianBlur(kernelSize, sigma): return "gaussian-blur(\(kernelSize), σ \(range(sigma)))"
        case .trivialAugmentWide: return "trivial-augment-wide"
        case let .randAugment(operations, magnitude): return "randaugment(\(operations) ops, magnitude \(magnitude)/31)"
        case let .randomErasing(probability, scale, ratio, randomValue):
            return "random-erasing(\(probability), scale \(range(scale)), ratio \(range(ratio)), \(randomValue ? "noise" : "zero"))"
        }
    }

    /// The transformed image. A transform with invalid parameters (see `validate()`) leaves the image unchanged.
    public func apply(_ image: DecodedImage, generator: inout SeededGenerator) -> DecodedImage {
        guard problem == nil, image.height > 0, image.width > 0 else { return image }
        switch self {
        case let .randomResizedCrop(size, scale, ratio):
            let (top, left, height, width) = Self.randomWindow(image.height, image.width, scale, ratio, &generator)
            return Resize.bilinear(Geometric.crop(image, top: top, left: left, height: height, width: width), height: size, width: size)
        case let .resizeShorterSide(size):
            let (h, w) = (image.height, image.width)
            if h <= w { return Resize.bilinear(image, height: size, width: max(1, size * w / h)) }
            return Resize.bilinear(image, height: max(1, size * h / w), width: size)
        case let .centerCrop(size):
            return Geometric.crop(image, top: Geometric.centeredOffset(side: image.height, size: size),
                                  left: Geometric.centeredOffset(side: image.width, size: size), height: size, width: size)
        case let .resize(height, width): return Resize.bilinear(image, height: height, width: width)
        case let .resizeNearest(height, width): return Geometric.resizeNearest(image, height: height, width: width)
        case let .horizontalFlip(probability):
            return generator.nextDouble() < probability ? Geometric.flip(image, horizontal: true) : image
        case let .verticalFlip(probability):
            return generator.nextDouble() < probability ? Geometric.flip(image, horizontal: false) : image
        case let .randomCrop(padding):
            let (top, left) = Self.drawCropOffset(padding: padding, generator: &generator)
            return Geometric.crop(image, top: top, left: left, height: image.height, width: image.width)
        case let .rotation(degrees, interpolation, fill):
            let angle = Self.drawUniform(degrees, &generator)
            return Geometric.rotate(image, angle: angle, interpolation: interpolation, fill: fill)
        case let .affine(degrees, translateX, translateY, scale, shearX, shearY, interpolation, fill):
            let p = Self.drawAffine(degrees: degrees, translateX: translateX, translateY: translateY, scale: scale,
                                    shearX: shearX, shearY: shearY, height: image.height, width: image.width, generator: &generator)
            return Geometric.affine(image, angle: p.angle, translate: p.translate, scale: p.scale, shear: p.shear,
                                    interpolation: interpolation, fill: fill)
        case let .colorJitter(brightness, contrast, saturation, hue):
            let parameters = Self.drawColorJitter(brightness: brightness, contrast: contrast, saturation: saturation, hue: hue,
                                                  generator: &generator)
            return Self.colorJitter(image, parameters)
        case let .grayscale(outputChannels): return Photometric.grayscale(image, outputChannels: outputChannels)
        case let .randomGrayscale(probability):
            return generator.nextDouble() < probability ? Photometric.grayscale(image, outputChannels: image.channels) : image
        case let .gaussianBlur(kernelSize, sigma):
            return Photometric.gaussianBlur(image, kernelSize: kernelSize, sigma: Self.drawUniform(sigma, &generator))
        case .trivialAugmentWide:
            let (operation, magnitude) = AutoAugmentOperation.draw(policy: .trivialAugmentWide, bin: nil, height: image.height,
                                                                   width: image.width, generator: &generator)
            return operation.apply(image, magnitude: magnitude)
        case let .randAugment(operations, magnitude):
            var result = image
            for _ in 0..<operations {
                let (operation, signed) = AutoAugmentOperation.draw(policy: .randAugment, bin: magnitude, height: image.height,
                                                                    width: image.width, generator: &generator)
                result = operation.apply(result, magnitude: signed)
            }
            return result
        case .randomErasing: return image
        }
    }

    /// Throws `TransformError.invalidParameter` naming the transform and parameter if a value is out of range.
    public func validate() throws {
        if let (parameter, reason) = problem { throw TransformError.invalidParameter(transform: description, parameter: parameter, reason: reason) }
    }

    /// The first invalid parameter and why, or nil.
    var problem: (String, String)? {
        func positive(_ value: Int, _ name: String) -> (String, String)? {
            value >= 1 && value <= 1 << 16 ? nil : (name, "must be in 1…65536 (got \(value))")
        }
        func probability(_ p: Double) -> (String, String)? { (0...1).contains(p) ? nil : ("probability", "must be in [0, 1] (got \(p))") }
        func finite(_ r: ClosedRange<Double>, _ name: String) -> (String, String)? {
            r.lowerBound.isFinite && r.upperBound.isFinite ? nil : (name, "must be finite (got \(r))")
        }
        func positiveRange(_ r: ClosedRange<Double>, _ name: String) -> (String, String)? {
            r.lowerBound > 0 && r.upperBound.isFinite ? nil : (name, "must be a finite range of positive numbers (got \(r))")
        }
        switch self {
        case let .randomResizedCrop(size, scale, ratio):
            return positive(size, "size") ?? (scale.lowerBound > 0 && scale.upperBound <= 1 ? nil : ("scale", "must be within (0, 1] (got \(scale))"))
                ?? positiveRange(ratio, "ratio")
        case let .resizeShorterSide(size), let .centerCrop(size): return positive(size, "size")
        case let .resize(height, width), let .resizeNearest(height, width): return positive(height, "height") ?? positive(width, "width")
        case let .horizontalFlip(p), let .verticalFlip(p), let .randomGrayscale(p): return probability(p)
        case let .randomCrop(padding): return (0...4096).contains(padding) ? nil : ("padding", "must be in 0…4096 (got \(padding))")
        case let .rotation(degrees, _, _): return finite(degrees, "degrees")
        case let .affine(degrees, translateX, translateY, scale, shearX, shearY, _, _):
            if let problem = finite(degrees, "degrees") { return problem }
            if !(0...1).contains(translateX) || !(0...1).contains(translateY) {
                return ("translate", "fractions must be in [0, 1] (got \(translateX), \(translateY))")
            }
            if let problem = positiveRange(scale, "scale") { return problem }
            for (shear, name) in [(shearX, "shearX"), (shearY, "shearY")] where !(shear.lowerBound > -90 && shear.upperBound < 90) {
                return (name, "must be within (−90°, 90°) (got \(shear))")
            }
            return nil
        case let .colorJitter(brightness, contrast, saturation, hue):
            for (value, name) in [(brightness, "brightness"), (contrast, "contrast"), (saturation, "saturation")]
            where !(value >= 0 && value.isFinite) { return (name, "must be a finite number ≥ 0 (got \(value))") }
            return (0...0.5).contains(hue) ? nil : ("hue", "must be in [0, 0.5] (got \(hue))")
        case let .grayscale(outputChannels):
            return [1, 3].contains(outputChannels) ? nil : ("outputChannels", "must be 1 or 3 (got \(outputChannels))")
        case let .gaussianBlur(kernelSize, sigma):
            if kernelSize < 1 || kernelSize % 2 == 0 || kernelSize > 255 { return ("kernelSize", "must be odd, 1…255 (got \(kernelSize))") }
            return positiveRange(sigma, "sigma")
        case .trivialAugmentWide: return nil
        case let .randAugment(operations, magnitude):
            if !(0...16).contains(operations) { return ("operations", "must be in 0…16 (got \(operations))") }
            return (0..<AutoAugmentOperation.magnitudeBins).contains(magnitude) ? nil : ("magnitude", "must be in 0…30 (got \(magnitude))")
        case let .randomErasing(p, scale, ratio, _):
            return probability(p) ?? (scale.lowerBound >= 0 && scale.upperBound <= 1 ? nil : ("scale", "must be within [0, 1] (got \(scale))"))
                ?? positiveRange(ratio, "ratio")
        }
    }

    /// A uniform draw from `range`.
    static func drawUniform(_ range: ClosedRange<Double>, _ generator: inout SeededGenerator) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * generator.nextDouble()
    }

    /// RandomCrop's window origin relative to the unpadded image: each of (top, left) uniform in −padding…padding.
    public static func drawCropOffset(padding: Int, generator: inout SeededGenerator) -> (top: Int, left: Int) {
        let choices = UInt64(2 * max(0, padding) + 1)
        let top = uniformIndex(below: choices, using: &generator) - padding
        return (top, uniformIndex(below: choices, using: &generator) - padding)
    }

    /// The parameters RandomAffine draws for one image.
    public struct AffineParameters: Equatable, Sendable {
        /// Rotation in degrees, clockwise.
        public var angle: Double
        /// Whole-pixel translation (x, y): round(uniform(−t·size, t·size)).
        public var translate: (Int, Int)
        /// Scale factor about the centre.
        public var scale: Double
        /// Shear in degrees (x, y).
        public var shear: (Double, Double)
        /// Equal when every drawn value is.
        public static func == (a: Self, b: Self) -> Bool {
            a.angle == b.angle && a.translate == b.translate && a.scale == b.scale && a.shear == b.shear
        }
    }

    /// RandomAffine's draw: angle, translation, scale, then shear x and y, each uniform in its range.
    public static func drawAffine(degrees: ClosedRange<Double>, translateX: Double, translateY: Double, scale: ClosedRange<Double>,
                                  shearX: ClosedRange<Double>, shearY: ClosedRange<Double>, height: Int, width: Int,
                                  generator: inout SeededGenerator) -> AffineParameters {
        let angle = drawUniform(degrees, &generator)
        let dx = translateX * Double(width), dy = translateY * Double(height)
        let tx = Int(drawUniform(-dx...dx, &generator).rounded(.toNearestOrEven))
        let ty = Int(drawUniform(-dy...dy, &generator).rounded(.toNearestOrEven))
        let s = drawUniform(scale, &generator)
        return AffineParameters(angle: angle, translate: (tx, ty), scale: s,
                                shear: (drawUniform(shearX, &generator), drawUniform(shearY, &generator)))
    }

    /// The parameters ColorJitter draws for one image: an order of the four adjustments (0 brightness, 1 contrast,
    /// 2 saturation, 3 hue) and each factor, nil where the configured strength is 0.
    public struct ColorJitterParameters: Equatable, Sendable {
        /// The adjustments in the order they are applied.
        public var order: [Int]
        /// Brightness, contrast and saturation factors and the hue shift (turns).
        public var brightness: Double?, contrast: Double?, saturation: Double?, hue: Double?
        /// Parameters with the given order and factors (nil: that adjustment is skipped).
        public init(order: [Int] = [0, 1, 2, 3], brightness: Double? = nil, contrast: Double? = nil, saturation: Double? = nil,
                    hue: Double? = nil) {
            (self.order, self.brightness, self.contrast, self.saturation, self.hue) = (order, brightness, contrast, saturation, hue)
        }
    }

    /// ColorJitter's draw: a uniform permutation of the four adjustments, then each present factor.
    public static func drawColorJitter(brightness: Double, contrast: Double, saturation: Double, hue: Double,
                                       generator: inout SeededGenerator) -> ColorJitterParameters {
        var order = [0, 1, 2, 3]
        for i in stride(from: 3, to: 0, by: -1) { order.swapAt(i, uniformIndex(below: UInt64(i + 1), using: &generator)) }
        func factor(_ strength: Double) -> Double? {
            strength > 0 ? drawUniform(max(0, 1 - strength)...(1 + strength), &generator) : nil
        }
        let b = factor(brightness), c = factor(contrast), s = factor(saturation)
        let h = hue > 0 ? drawUniform(-hue...hue, &generator) : nil
        return ColorJitterParameters(order: order, brightness: b, contrast: c, saturation: s, hue: h)
    }

    /// `image` with the jitter's adjustments applied in its order.
    public static func colorJitter(_ image: DecodedImage, _ parameters: ColorJitterParameters) -> DecodedImage {
        var result = image
        for step in parameters.order {
            switch step {
            case 0: if let f = parameters.brightness { result = Photometric.adjustBrightness(result, factor: f) }
            case 1: if let f = parameters.contrast { result = Photometric.adjustContrast(result, factor: f) }
            case 2: if let f = parameters.saturation { result = Photometric.adjustSaturation(result, factor: f) }
            default: if let f = parameters.hue { result = Photometric.adjustHue(result, shift: f) }
            }
        }
        return result
    }

    /// The window (top, left, height, width) RandomResizedCrop draws.
    static func randomWindow(_ height: Int, _ width: Int, _ scale: ClosedRange<Double>, _ ratio: ClosedRange<Double>,
                             _ generator: inout SeededGenerator) -> (Int, Int, Int, Int) {
        let area = Double(height * width)
        let logRatio = (log(ratio.lowerBound), log(ratio.upperBound))
        for _ in 0..<10 {
            let target = area * (scale.lowerBound + (scale.upperBound - scale.lowerBound) * generator.nextDouble())
            let aspect = exp(logRatio.0 + (logRatio.1 - logRatio.0) * generator.nextDouble())
            let w = Int((target * aspect).squareRoot().rounded()), h = Int((target / aspect).squareRoot().rounded())
            if w > 0 && w <= width && h > 0 && h <= height {
                let top = uniformIndex(below: UInt64(height - h + 1), using: &generator)
                let left = uniformIndex(below: UInt64(width - w + 1), using: &generator)
                return (top, left, h, w)
            }
        }
        let inputRatio = Double(width) / Double(height)
        var (w, h) = (width, height)
        if inputRatio < ratio.lowerBound { h = Int((Double(w) / ratio.lowerBound).rounded()) }
        else if inputRatio > ratio.upperBound { w = Int((Double(h) * ratio.upperBound).rounded()) }
        return ((height - h) / 2, (width - w) / 2, h, w)
    }

    /// The window of `image` at (top, left) of the given size; parts outside the image are zero (as padding).
    static func crop(_ image: DecodedImage, top: Int, left: Int, height: Int, width: Int) -> DecodedImage {
        Geometric.crop(image, top: top, left: left, height: height, width: width)
    }
}

/// Why a transform cannot be used; names the transform and its parameter.
public enum TransformError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A parameter is out of range.
    case invalidParameter(transform: String, parameter: String, reason: String)
    /// The transforms turned a `expected`-channel sample into one of `found` channels (e.g. grayscale to 1 channel
    /// on a colour dataset), which the model's input cannot take.
    case channelCountChanged(transforms: String, expected: Int, found: Int)

    /// One sentence naming the transform and what is wrong.
    public var description: String {
        switch self {
        case let .invalidParameter(transform, parameter, reason): return "Transform \(transform): \(parameter) \(reason)."
        case let .channelCountChanged(transforms, expected, found):
            return "Transforms [\(transforms)] turn \(expected)-channel samples into \(found)-channel ones; the dataset needs \(expected)."
        }
    }
}
