import FoveaData
import FoveaTensor

extension TrainingOptions {
    /// The MixUp/CutMix policy of `--mixup`, `--cutmix`, `--mix-probability` and `--mix-switch-probability`, or nil
    /// when no batch can be mixed. Throws `TrainingError.invalidOption` for values out of range.
    public func batchMixing() throws -> BatchMixing? {
        let mixing: BatchMixing
        do {
            mixing = try BatchMixing(mixUpAlpha: mixUpAlpha, cutMixAlpha: cutMixAlpha, probability: mixProbability,
                                     switchProbability: mixSwitchProbability)
        } catch {
            throw TrainingError.invalidOption("\(error)")
        }
        return mixing.isEnabled ? mixing : nil
    }
}

/// The training inputs of batch `batch` (0-based) of `epoch`. When `mixing` mixes it — drawn from
/// `BatchMixing.generator(seed:epoch:batch:)`, so a resumed run draws the same — the mixed images and their soft
/// targets with `labelSmoothing` folded in; otherwise the batch as it is and no targets (the integer-label loss applies).
func mixedBatch(images: Tensor, labels: [Int32], mixing: BatchMixing?, classCount: Int, labelSmoothing: Float,
                seed: UInt64, epoch: Int, batch: Int) throws -> (images: Tensor, targets: Tensor?) {
    guard let mixing else { return (images, nil) }
    guard images.shape.count == 4 else {
        throw TensorError.shapeMismatch(operation: "batch mixing", expected: "(N, C, H, W) images", actual: images.shape)
    }
    var generator = BatchMixing.generator(seed: seed, epoch: epoch, batch: batch)
    let mix = mixing.draw(height: images.shape[2], width: images.shape[3], using: &generator)
    if mix == .none { return (images, nil) }
    let (mixed, targets) = try BatchMixing.apply(mix, images: images, labels: labels, classCount: classCount,
                                                 labelSmoothing: Double(labelSmoothing))
    return (mixed, targets)
}

/// The class of largest weight in each row of soft targets (N, K) — the first such class on ties: what a prediction
/// must equal to count as correct when the targets are mixed.
func dominantClasses(_ targets: Tensor) throws -> [Int32] {
    guard targets.shape.count == 2, targets.shape[1] > 0 else {
        throw TensorError.shapeMismatch(operation: "dominantClasses", expected: "(N, K) targets", actual: targets.shape)
    }
    let (rows, classes) = (targets.shape[0], targets.shape[1])
    return try targets.withPlainElements { weights in
        (0..<rows).map { row in
            var best = 0
            for k in 1..<classes where weights[row * classes + k] > weights[row * classes + best] { best = k }
            return Int32(best)
        }
    }
}
