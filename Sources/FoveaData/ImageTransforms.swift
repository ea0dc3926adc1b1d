import Foundation
import FoveaTensor

/// Geometric transforms of decoded images, as torchvision's: each draws its random parameters from the
/// generator it is given, then applies a pure function (crop, resize, flip) of them.
public enum ImageTransform: Equatable, Sendable, Codable, CustomStringConvertible {
    /// A random window with area fraction in `scale` and aspect ratio in `ratio`, resized to size×size
    /// (Szegedy et al. 2015; torchvision RandomResizedCrop, ten tries then a centre crop).
    case randomResizedCrop(size: Int, scale: ClosedRange<Double>, ratio: ClosedRange<Double>)
    /// Resize so that the shorter side is `size`, keeping the aspect ratio (torchvision Resize(int)).
    case resizeShorterSide(size: Int)
    /// The central size×size window (torchvision CenterCrop).
    case centerCrop(size: Int)
    /// Resize to exactly height×width.
    case resize(height: Int, width: Int)
    /// Mirror left–right with probability `probability`.
    case horizontalFlip(probability: Double)

    /// Whether the transform is random (applied to training samples only); deterministic ones always run.
    public var isRandom: Bool {
        switch self {
        case .randomResizedCrop, .horizontalFlip: return true
        case .resizeShorterSide, .centerCrop, .resize: return false
        }
    }

    public var description: String {
        switch self {
        case let .randomResizedCrop(size, scale, ratio): return "random-resized-crop(\(size), scale \(scale), ratio \(ratio))"
        case let .resizeShorterSide(size): return "resize-shorter(\(size))"
        case let .centerCrop(size): return "center-crop(\(size))"
        case let .resize(height, width): return "resize(\(height)×\(width))"
        case let .horizontalFlip(probability): return "horizontal-flip(\(probability))"
        }
    }

    /// The transformed image.
    public func apply(_ image: DecodedImage, generator: inout SeededGenerator) -> DecodedImage {
        switch self {
        case let .randomResizedCrop(size, scale, ratio):
            let (top, left, height, width) = Self.randomWindow(image.height, image.width, scale, ratio, &generator)
            return Resize.bilinear(Self.crop(image, top: top, left: left, height: height, width: width), height: size, width: size)
        case let .resizeShorterSide(size):
            let (h, w) = (image.height, image.width)
            if h <= w { return Resize.bilinear(image, height: size, width: max(1, size * w / h)) }
            return Resize.bilinear(image, height: max(1, size * h / w), width: size)
        case let .centerCrop(size):
            let top = Int((Double(image.height - size) / 2).rounded()), left = Int((Double(image.width - size) / 2).rounded())
            return Self.crop(image, top: top, left: left, height: size, width: size)
        case let .resize(height, width):
            return Resize.bilinear(image, height: height, width: width)
        case let .horizontalFlip(probability):
            guard generator.nextDouble() < probability else { return image }
            let pixels = Augmentation.flip(image.pixels, channels: image.channels, height: image.height, width: image.width,
                                           horizontal: true)
            return DecodedImage(channels: image.channels, height: image.height, width: image.width, pixels: pixels)
        }
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
        var pixels = [UInt8](repeating: 0, count: image.channels * height * width)
        for c in 0..<image.channels {
            for y in 0..<height where y + top >= 0 && y + top < image.height {
                for x in 0..<width where x + left >= 0 && x + left < image.width {
                    pixels[(c * height + y) * width + x] = image.pixels[(c * image.height + y + top) * image.width + x + left]
                }
            }
        }
        return DecodedImage(channels: image.channels, height: height, width: width, pixels: pixels)
    }
}
