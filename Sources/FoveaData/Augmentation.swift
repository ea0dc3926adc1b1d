import FoveaTensor

/// A random training-time transformation of one image. Each draws its parameters from the generator it is
/// given, then applies a pure function of them, so a sample's augmentation depends only on
/// (seed, epoch, index) — what makes runs reproducible and resume exact.
public enum Augmentation: Equatable, Sendable, Codable, CustomStringConvertible {
    /// Zero-pad by `padding` on every side, then crop a random window of the original size
    /// (the CIFAR recipe of He et al. 2015; torchvision RandomCrop(size, padding)).
    case randomCrop(padding: Int)
    /// Mirror left–right with probability `probability` (torchvision RandomHorizontalFlip).
    case horizontalFlip(probability: Double)
    /// Mirror top–bottom with probability `probability` (torchvision RandomVerticalFlip).
    case verticalFlip(probability: Double)

    public var description: String {
        switch self {
        case let .randomCrop(padding): return "random-crop(pad \(padding))"
        case let .horizontalFlip(probability): return "horizontal-flip(\(probability))"
        case let .verticalFlip(probability): return "vertical-flip(\(probability))"
        }
    }

    /// Applies the augmentation to one planar C×H×W image in place.
    public func apply(_ image: inout [UInt8], channels: Int, height: Int, width: Int, generator: inout SeededGenerator) {
        switch self {
        case let .randomCrop(padding):
            // Window origin in padded coordinates: 0…2·padding on each axis.
            let top = uniformIndex(below: UInt64(2 * padding + 1), using: &generator) - padding
            let left = uniformIndex(below: UInt64(2 * padding + 1), using: &generator) - padding
            image = Self.crop(image, channels: channels, height: height, width: width, top: top, left: left)
        case let .horizontalFlip(probability):
            if generator.nextDouble() < probability { image = Self.flip(image, channels: channels, height: height, width: width, horizontal: true) }
        case let .verticalFlip(probability):
            if generator.nextDouble() < probability { image = Self.flip(image, channels: channels, height: height, width: width, horizontal: false) }
        }
    }

    /// The H×W window whose top-left corner is at (`top`, `left`) of the image, zero outside it.
    public static func crop(_ image: [UInt8], channels: Int, height: Int, width: Int, top: Int, left: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: image.count)
        for c in 0..<channels {
            for y in 0..<height {
                let sourceY = y + top
                guard sourceY >= 0 && sourceY < height else { continue }
                for x in 0..<width {
                    let sourceX = x + left
                    guard sourceX >= 0 && sourceX < width else { continue }
                    result[(c * height + y) * width + x] = image[(c * height + sourceY) * width + sourceX]
                }
            }
        }
        return result
    }

    /// The image mirrored left–right (`horizontal`) or top–bottom.
    public static func flip(_ image: [UInt8], channels: Int, height: Int, width: Int, horizontal: Bool) -> [UInt8] {
        var result = image
        for c in 0..<channels {
            for y in 0..<height {
                for x in 0..<width {
                    let (sourceY, sourceX) = horizontal ? (y, width - 1 - x) : (height - 1 - y, x)
                    result[(c * height + y) * width + x] = image[(c * height + sourceY) * width + sourceX]
                }
            }
        }
        return result
    }
}
