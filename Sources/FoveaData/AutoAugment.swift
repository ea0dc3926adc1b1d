import Foundation
import FoveaTensor

/// The operations of TrivialAugmentWide (Müller & Hutter 2021) and RandAugment (Cubuk et al. 2019) with
/// torchvision's op list, 31-bin magnitude ranges, nearest interpolation and zero fill.
public enum AutoAugmentOperation: String, CaseIterable, Codable, Sendable {
    case identity, shearX, shearY, translateX, translateY, rotate, brightness, color, contrast, sharpness
    case posterize, solarize, autoContrast, equalize

    /// Which policy's magnitude ranges to use.
    public enum Policy: Sendable { case trivialAugmentWide, randAugment }

    /// Number of magnitude bins of both policies (torchvision's default).
    public static let magnitudeBins = 31

    /// Whether the magnitude is negated with probability ½.
    public var isSigned: Bool {
        switch self {
        case .shearX, .shearY, .translateX, .translateY, .rotate, .brightness, .color, .contrast, .sharpness: return true
        default: return false
        }
    }

    /// The magnitude of bin `bin` (0…30) for an image of height × width; 0 for operations without one.
    public func magnitude(bin: Int, policy: Policy, height: Int, width: Int) -> Double {
        let bins = Self.magnitudeBins, fraction = Double(min(max(bin, 0), bins - 1)) / Double(bins - 1)
        let wide = policy == .trivialAugmentWide
        switch self {
        case .identity, .autoContrast, .equalize: return 0
        case .shearX, .shearY: return fraction * (wide ? 0.99 : 0.3)
        case .translateX: return fraction * (wide ? 32 : 150.0 / 331.0 * Double(width))
        case .translateY: return fraction * (wide ? 32 : 150.0 / 331.0 * Double(height))
        case .rotate: return fraction * (wide ? 135 : 30)
        case .brightness, .color, .contrast, .sharpness: return fraction * (wide ? 0.99 : 0.9)
        case .posterize:
            // Bits fall from 8 to 2 (wide) or 4 in equal steps over the bins.
            let bitsDropped = wide ? 6.0 : 4.0
            return Double(8 - Int((Double(min(max(bin, 0), bins - 1)) / (Double(bins - 1) / bitsDropped)).rounded(.toNearestOrEven)))
        case .solarize: return 255 * (1 - fraction)
        }
    }

    /// `image` under the operation with a (signed) magnitude: torchvision's `_apply_op` with nearest interpolation and
    /// zero fill (shears about the top-left corner, translations by whole pixels truncated toward zero).
    public func apply(_ image: DecodedImage, magnitude: Double) -> DecodedImage {
        switch self {
        case .identity: return image
        case .shearX, .shearY:
            let degrees = atan(magnitude) * 180 / Double.pi
            return Geometric.affine(image, angle: 0, translate: (0, 0), scale: 1,
                                    shear: self == .shearX ? (degrees, 0) : (0, degrees), center: (0, 0),
                                    interpolation: .nearest, fill: 0)
        case .translateX, .translateY:
            let pixels = Int(magnitude.isFinite ? max(-1e6, min(1e6, magnitude)) : 0)
            return Geometric.affine(image, angle: 0, translate: self == .translateX ? (pixels, 0) : (0, pixels), scale: 1,
                                    shear: (0, 0), interpolation: .nearest, fill: 0)
        case .rotate: return Geometric.rotate(image, angle: magnitude, interpolation: .nearest, fill: 0)
        case .brightness: return Photometric.adjustBrightness(image, factor: 1 + magnitude)
        case .color: return Photometric.adjustSaturation(image, factor: 1 + magnitude)
        case .contrast: return Photometric.adjustContrast(image, factor: 1 + magnitude)
        case .sharpness: return Photometric.adjustSharpness(image, factor: 1 + magnitude)
        case .posterize: return Photometric.posterize(image, bits: Int(magnitude))
        case .solarize: return Photometric.solarize(image, threshold: magnitude)
        case .autoContrast: return Photometric.autocontrast(image)
        case .equalize: return Photometric.equalize(image)
        }
    }

    /// A uniformly drawn operation with its signed magnitude: bin `bin` if given (RandAugment), else a uniform bin
    /// (TrivialAugmentWide); signed operations are negated with probability ½.
    public static func draw(policy: Policy, bin: Int?, height: Int, width: Int,
                            generator: inout SeededGenerator) -> (AutoAugmentOperation, Double) {
        let operation = allCases[uniformIndex(below: UInt64(allCases.count), using: &generator)]
        let chosen = bin ?? uniformIndex(below: UInt64(magnitudeBins), using: &generator)
        var magnitude = operation.magnitude(bin: chosen, policy: policy, height: height, width: width)
        if operation.isSigned && uniformIndex(below: 2, using: &generator) == 1 { magnitude = -magnitude }
        return (operation, magnitude)
    }
}
