import FoveaTensor

/// A labelled image set held in memory as bytes: sample after sample, each channels × height × width
/// (planar, row-major). IDX (MNIST family) and CIFAR datasets are such sets.
public protocol LabeledImages: Sendable {
    /// Number of samples.
    var count: Int { get }
    /// Channels, height and width of every image.
    var channels: Int { get }
    var height: Int { get }
    var width: Int { get }
    /// Number of classes; every label is in `0..<classCount`.
    var classCount: Int { get }
    /// `count × channels × height × width` bytes.
    var pixels: [UInt8] { get }
    /// One label per sample.
    var labels: [Int32] { get }
}

extension LabeledImages {
    /// Bytes per sample.
    public var sampleSize: Int { channels * height * width }

    /// Per-channel mean and standard deviation (n − 1, as torch's `.std()`) of the pixels scaled to [0, 1],
    /// computed exactly from histograms.
    public func channelStatistics() -> (mean: [Double], std: [Double]) {
        var histograms = [[Int]](repeating: [Int](repeating: 0, count: 256), count: channels)
        let plane = height * width
        pixels.withUnsafeBufferPointer { bytes in
            for sample in 0..<count {
                for channel in 0..<channels {
                    let base = sample * sampleSize + channel * plane
                    for i in 0..<plane { histograms[channel][Int(bytes[base + i])] += 1 }
                }
            }
        }
        var means: [Double] = [], deviations: [Double] = []
        for histogram in histograms {
            let total = Double(histogram.reduce(0, +))
            let mean = total > 0 ? histogram.enumerated().reduce(0.0) { $0 + Double($1.element) * Double($1.offset) / 255 } / total : 0
            let squares = histogram.enumerated().reduce(0.0) {
                let deviation = Double($1.offset) / 255 - mean
                return $0 + Double($1.element) * deviation * deviation
            }
            means.append(mean)
            deviations.append(total > 1 ? (squares / (total - 1)).squareRoot() : 0)
        }
        return (means, deviations)
    }

    /// The order in which to visit the samples in `epoch`: identity, or a Fisher–Yates shuffle
    /// drawn from `SeededGenerator(seed: seed, stream: epoch)`, so each epoch is reproducible alone.
    public func batchOrder(epoch: Int, seed: UInt64, shuffle: Bool) -> [Int] {
        epochOrder(count: count, epoch: epoch, seed: seed, shuffle: shuffle)
    }
}

/// The visiting order of `count` samples in `epoch`: identity, or a Fisher–Yates shuffle drawn from
/// `SeededGenerator(seed: seed, stream: epoch)`, so each epoch is reproducible on its own.
public func epochOrder(count: Int, epoch: Int, seed: UInt64, shuffle: Bool) -> [Int] {
    var order = Array(0..<count)
    guard shuffle, count > 1 else { return order }
    var generator = SeededGenerator(seed: seed, stream: UInt64(truncatingIfNeeded: epoch))
    for last in stride(from: count - 1, to: 0, by: -1) {
        order.swapAt(last, uniformIndex(below: UInt64(last + 1), using: &generator))
    }
    return order
}

/// An unbiased integer in `0..<bound` (Lemire's multiply-and-reject), spelled out rather than
/// `Int.random(in:using:)` so shuffles and augmentations never change with the standard library.
public func uniformIndex(below bound: UInt64, using generator: inout SeededGenerator) -> Int {
    let threshold = (0 &- bound) % bound
    while true {
        let product = generator.next().multipliedFullWidth(by: bound)
        if product.low >= threshold { return Int(product.high) }
    }
}
