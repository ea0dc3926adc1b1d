import FoveaTensor

/// A rectangle of pixels: rows `top..<bottom`, columns `left..<right` (half-open; empty when either range is).
public struct PixelBox: Equatable, Sendable {
    public var top: Int, left: Int, bottom: Int, right: Int

    /// Creates a box from its half-open row and column ranges.
    public init(top: Int, left: Int, bottom: Int, right: Int) {
        (self.top, self.left, self.bottom, self.right) = (top, left, bottom, right)
    }

    /// Number of pixels inside.
    public var area: Int { max(bottom - top, 0) * max(right - left, 0) }
}

/// How one batch is mixed, as drawn by `BatchMixing.draw`; `BatchMixing.apply` turns it into images and targets.
///
/// Sample i is mixed with its partner, sample i − 1 (sample 0 with the last): the batch rolled by one, as
/// torchvision.transforms.v2 pairs them. The loader's shuffle makes the pairs random.
public enum BatchMix: Equatable, Sendable {
    /// The batch is left as it is.
    case none
    /// MixUp (Zhang et al. 2018, arXiv:1710.09412): every image becomes λ·own + (1 − λ)·partner, and so do the targets.
    case mixUp(lambda: Double)
    /// CutMix (Yun et al. 2019, arXiv:1905.04899): the box of every image is replaced by the partner's pixels; the
    /// targets weigh the partner by the box's share of the image.
    case cutMix(box: PixelBox)

    /// The weight of a sample's own label: λ for MixUp, the share of own pixels for CutMix, 1 when unmixed.
    public func ownWeight(height: Int, width: Int) -> Double {
        switch self {
        case .none: return 1
        case let .mixUp(lambda): return lambda
        case let .cutMix(box): return 1 - Double(box.area) / Double(height * width)
        }
    }
}

/// MixUp and CutMix as batch-level transforms with torchvision.transforms.v2 semantics, and timm's choice between
/// them: a batch is mixed with `probability`; when both are on, CutMix is chosen with `switchProbability`.
///
/// Drawing (`draw`) and applying (`apply`) are separate: the parameters come from an injected generator, the images
/// and targets are a pure function of them.
public struct BatchMixing: Equatable, Sendable {
    /// α of MixUp's Beta(α, α) for λ; 0 turns MixUp off.
    public let mixUpAlpha: Double
    /// α of CutMix's Beta(α, α) for λ; 0 turns CutMix off.
    public let cutMixAlpha: Double
    /// Probability that a batch is mixed at all.
    public let probability: Double
    /// Probability of CutMix rather than MixUp when both are on.
    public let switchProbability: Double
    private let mixUpDistribution: BetaDistribution?, cutMixDistribution: BetaDistribution?

    /// Creates the policy; throws `TensorError.invalidArgument` for a negative or infinite α or a probability outside [0, 1].
    public init(mixUpAlpha: Double = 0, cutMixAlpha: Double = 0, probability: Double = 1, switchProbability: Double = 0.5) throws {
        for (name, alpha) in [("MixUp α", mixUpAlpha), ("CutMix α", cutMixAlpha)] where !(alpha >= 0 && alpha.isFinite) {
            throw TensorError.invalidArgument(operation: "BatchMixing", message: "\(name) \(alpha) must be finite and ≥ 0 (0 = off)")
        }
        for (name, value) in [("probability", probability), ("switch probability", switchProbability)] where !(0...1).contains(value) {
            throw TensorError.invalidArgument(operation: "BatchMixing", message: "\(name) \(value) is outside [0, 1]")
        }
        (self.mixUpAlpha, self.cutMixAlpha, self.probability, self.switchProbability) =
            (mixUpAlpha, cutMixAlpha, probability, switchProbability)
        mixUpDistribution = try mixUpAlpha > 0 ? BetaDistribution(alpha: mixUpAlpha, beta: mixUpAlpha) : nil
        cutMixDistribution = try cutMixAlpha > 0 ? BetaDistribution(alpha: cutMixAlpha, beta: cutMixAlpha) : nil
    }

    /// Whether any batch can be mixed.
    public var isEnabled: Bool { (mixUpAlpha > 0 || cutMixAlpha > 0) && probability > 0 }

    /// The generator of batch `batch` (0-based) of `epoch`: a stream of its own, apart from every sample's
    /// augmentation stream (seed, epoch, index), so mixing is reproducible and a resumed run redraws it exactly.
    public static func generator(seed: UInt64, epoch: Int, batch: Int) -> SeededGenerator {
        SeededGenerator(seed: seed, stream: UInt64(truncatingIfNeeded: epoch), UInt64(truncatingIfNeeded: batch), streamTag)
    }

    /// Separates the batch streams from the per-sample streams that share (seed, epoch, number).
    static let streamTag: UInt64 = 0x6D69_7875_7063_7574

    /// Draws how to mix one batch of `height` × `width` images: first whether to mix (`probability`), then MixUp or
    /// CutMix (`switchProbability` when both are on), then λ ~ Beta(α, α), then CutMix's box (`cutMixBox`).
    public func draw(height: Int, width: Int, using generator: inout SeededGenerator) -> BatchMix {
        guard isEnabled, generator.nextDouble() < probability else { return .none }
        // The switch is drawn only when both are on.
        let useCutMix = cutMixDistribution != nil && (mixUpDistribution == nil || generator.nextDouble() < switchProbability)
        guard useCutMix, let cutMixDistribution else {
            return .mixUp(lambda: mixUpDistribution?.sample(using: &generator) ?? 1)
        }
        let lambda = cutMixDistribution.sample(using: &generator)
        // torchvision draws the centre's column first, then its row.
        let column = uniformIndex(below: UInt64(max(width, 1)), using: &generator)
        let row = uniformIndex(below: UInt64(max(height, 1)), using: &generator)
        return .cutMix(box: Self.cutMixBox(lambda: lambda, height: height, width: width, centerRow: row, centerColumn: column))
    }

    /// CutMix's box as torchvision computes it: half-sides ⌊½·√(1 − λ)·size⌋ around the centre, clipped to the image.
    /// The clipped box's area, not λ, sets the targets.
    public static func cutMixBox(lambda: Double, height: Int, width: Int, centerRow: Int, centerColumn: Int) -> PixelBox {
        let ratio = 0.5 * max(1 - lambda, 0).squareRoot()
        let halfHeight = Int(ratio * Double(height)), halfWidth = Int(ratio * Double(width))
        return PixelBox(top: max(centerRow - halfHeight, 0), left: max(centerColumn - halfWidth, 0),
                        bottom: min(centerRow + halfHeight, height), right: min(centerColumn + halfWidth, width))
    }

    /// The mixed images (N, C, H, W, plain layout) and soft targets (N, `classCount`) of a batch: one-hot labels mixed
    /// with the partner's by `mix.ownWeight`, then label-smoothed as (1 − ε)·t + ε/K.
    ///
    /// Throws `TensorError` when the images are not (N, C, H, W) with N = `labels.count` ≥ 1, a label is outside
    /// `0..<classCount`, ε is outside [0, 1), λ outside [0, 1] or the box outside the image.
    public static func apply(_ mix: BatchMix, images: Tensor, labels: [Int32], classCount: Int,
                             labelSmoothing: Double = 0) throws -> (images: Tensor, targets: Tensor) {
        guard images.shape.count == 4, images.shape[0] == labels.count, !labels.isEmpty else {
            throw TensorError.shapeMismatch(operation: "BatchMixing.apply", expected: "(\(labels.count), C, H, W) images, N ≥ 1",
                                            actual: images.shape)
        }
        let (height, width) = (images.shape[2], images.shape[3])
        let mixed: Tensor
        switch mix {
        case .none: mixed = try images.reordered(to: .plain)
        case let .mixUp(lambda): mixed = try mixUp(images, lambda: lambda)
        case let .cutMix(box): mixed = try cutMix(images, box: box)
        }
        let targets = try mixedTargets(labels: labels, ownWeight: mix.ownWeight(height: height, width: width),
                                       classCount: classCount, labelSmoothing: labelSmoothing)
        return (mixed, targets)
    }

    /// λ·x[i] + (1 − λ)·x[i − 1] for every sample i of (N, C, H, W) images; the result is plain.
    public static func mixUp(_ images: Tensor, lambda: Double) throws -> Tensor {
        guard images.shape.count == 4, images.shape[0] > 0 else {
            throw TensorError.shapeMismatch(operation: "BatchMixing.mixUp", expected: "(N, C, H, W) images, N ≥ 1", actual: images.shape)
        }
        guard (0...1).contains(lambda) else {
            throw TensorError.invalidArgument(operation: "BatchMixing.mixUp", message: "λ \(lambda) is outside [0, 1]")
        }
        let sampleSize = images.count / images.shape[0], count = images.count
        let result = Tensor.zeros(images.shape)
        let output = result.storage.pointer
        let own = Float(lambda), partner = Float(1 - lambda)
        try images.withPlainElements { x in
            for index in 0..<count {
                // The partner's element at the same place: one sample back, the first sample's is the last's.
                let partnerIndex = index >= sampleSize ? index - sampleSize : index + count - sampleSize
                output[index] = own * x[index] + partner * x[partnerIndex]
            }
        }
        return result
    }

    /// The images (N, C, H, W) with `box` of every sample i replaced by the same box of sample i − 1; the result is plain.
    public static func cutMix(_ images: Tensor, box: PixelBox) throws -> Tensor {
        guard images.shape.count == 4, images.shape[0] > 0 else {
            throw TensorError.shapeMismatch(operation: "BatchMixing.cutMix", expected: "(N, C, H, W) images, N ≥ 1", actual: images.shape)
        }
        let (n, channels, height, width) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        guard box.top >= 0, box.left >= 0, box.bottom <= height, box.right <= width else {
            throw TensorError.invalidArgument(operation: "BatchMixing.cutMix",
                                              message: "box rows \(box.top)..<\(box.bottom), columns \(box.left)..<\(box.right) "
                                                  + "lies outside the \(height)×\(width) image")
        }
        let result = try images.reordered(to: .plain).copy()
        guard box.area > 0 else { return result }
        let output = result.storage.pointer
        try images.withPlainElements { x in
            for sample in 0..<n {
                let partner = (sample + n - 1) % n
                for channel in 0..<channels {
                    for row in box.top..<box.bottom {
                        let ownRow = ((sample * channels + channel) * height + row) * width
                        let partnerRow = ((partner * channels + channel) * height + row) * width
                        for column in box.left..<box.right { output[ownRow + column] = x[partnerRow + column] }
                    }
                }
            }
        }
        return result
    }

    /// Soft targets (N, `classCount`): `ownWeight`·onehot(label i) + (1 − `ownWeight`)·onehot(label i − 1),
    /// then (1 − ε)·t + ε/K with ε = `labelSmoothing`.
    public static func mixedTargets(labels: [Int32], ownWeight: Double, classCount: Int, labelSmoothing: Double = 0) throws -> Tensor {
        let operation = "BatchMixing.mixedTargets"
        guard !labels.isEmpty, classCount > 0 else {
            throw TensorError.invalidArgument(operation: operation, message: "\(labels.count) labels, \(classCount) classes: need at least one of each")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classCount }) {
            throw TensorError.invalidArgument(operation: operation, message: "label \(labels[bad]) at index \(bad) outside 0..<\(classCount)")
        }
        guard (0...1).contains(ownWeight) else {
            throw TensorError.invalidArgument(operation: operation, message: "weight \(ownWeight) is outside [0, 1]")
        }
        guard (0..<1).contains(labelSmoothing) else {
            throw TensorError.invalidArgument(operation: operation, message: "label smoothing \(labelSmoothing) is outside [0, 1)")
        }
        let n = labels.count
        var weights = [Double](repeating: 0, count: n * classCount)
        for (sample, label) in labels.enumerated() {
            let partnerLabel = labels[(sample + n - 1) % n]
            weights[sample * classCount + Int(label)] += ownWeight
            weights[sample * classCount + Int(partnerLabel)] += 1 - ownWeight
        }
        let uniform = labelSmoothing / Double(classCount)
        return try Tensor(shape: [n, classCount], values: weights.map { Float((1 - labelSmoothing) * $0 + uniform) })
    }
}
