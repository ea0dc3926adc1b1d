// EfficientNet — Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
// arXiv:1905.11946, Table 1 (B0) and Section 3.3 (compound scaling); MBConv from MobileNetV2
// (arXiv:1801.04381) with squeeze-excitation (arXiv:1709.01507) and stochastic depth (arXiv:1603.09382).
import Foundation
import FoveaNN
import FoveaTensor

/// Mobile inverted bottleneck with squeeze-excitation: 1×1 expansion (skipped for factor 1), k×k depthwise,
/// SE squeezing to a quarter of the block's input, 1×1 linear projection, all with SiLU; the residual branch
/// is dropped per sample with the block's stochastic-depth probability in training. Keys `block.N.*`.
public final class MBConv: ModeDependentLayer, RandomizedLayer {
    /// The block's layers.
    public let block: Sequential
    /// Probability of dropping the residual branch for a sample (training only).
    public let stochasticDepth: Float
    let residual: Bool
    /// True in training mode (stochastic depth active).
    public var isTraining = true
    /// Draws the stochastic-depth masks.
    public var generator: SeededGenerator

    /// Creates the block; `epsilon`/`momentum` configure its batch norms.
    public init(_ inputChannels: Int, _ outputChannels: Int, expansion: Int, kernel: Int, stride: Int,
                stochasticDepth: Float, epsilon: Float, momentum: Float, seed: UInt64) throws {
        let expanded = makeDivisible(Double(inputChannels * expansion))
        var layers: [Layer] = []
        if expanded != inputChannels {
            layers.append(try convNormActivation(inputChannels, expanded, kernelSize: 1, activation: .silu,
                                                 epsilon: epsilon, momentum: momentum))
        }
        layers.append(try convNormActivation(expanded, expanded, kernelSize: kernel, stride: stride, groups: expanded,
                                             activation: .silu, epsilon: epsilon, momentum: momentum))
        layers.append(try SqueezeExcitation(inputChannels: expanded, squeezeChannels: max(1, inputChannels / 4),
                                            activation: .silu))
        layers.append(try convNormActivation(expanded, outputChannels, kernelSize: 1, activation: nil,
                                             epsilon: epsilon, momentum: momentum))
        block = Sequential(layers)
        self.stochasticDepth = stochasticDepth
        residual = stride == 1 && inputChannels == outputChannels
        generator = SeededGenerator(seed: seed)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        if residual && !isTraining { return try block(x, adding: x) }
        let y = try block(x)
        guard residual else { return y }
        let kept = isTraining ? try dropSamples(y, probability: stochasticDepth, generator: &generator) : y
        return try kept + x
    }
}

/// EfficientNet B0–B7 as torchvision's `efficientnet_b0` … `efficientnet_b7` (B0: 5,288,548 parameters,
/// B4: 19,341,616, B7: 66,347,960 for 1,000 classes).
public final class EfficientNet: Layer {
    /// One row of Table 1: MBConv expansion, output channels, repeats, first stride, kernel size.
    public struct Stage: Sendable {
        /// Expansion factor, output channels, repeats, first stride, kernel size.
        public let expansion, channels, repeats, stride, kernel: Int
    }

    /// Table 1 (B0) stages 2–8.
    public static let stages: [Stage] = [
        Stage(expansion: 1, channels: 16, repeats: 1, stride: 1, kernel: 3),
        Stage(expansion: 6, channels: 24, repeats: 2, stride: 2, kernel: 3),
        Stage(expansion: 6, channels: 40, repeats: 2, stride: 2, kernel: 5),
        Stage(expansion: 6, channels: 80, repeats: 3, stride: 2, kernel: 3),
        Stage(expansion: 6, channels: 112, repeats: 3, stride: 1, kernel: 5),
        Stage(expansion: 6, channels: 192, repeats: 4, stride: 2, kernel: 5),
        Stage(expansion: 6, channels: 320, repeats: 1, stride: 1, kernel: 3),
    ]

    /// A compound-scaled variant: width and depth multipliers, input resolution and classifier dropout.
    public struct Variant: Sendable {
        /// Channel and repeat multipliers.
        public let width, depth: Double
        /// Input height and width.
        public let resolution: Int
        /// Dropout before the classifier.
        public let dropout: Float
        /// Batch norm uses TensorFlow's ε 0.001 and momentum 0.01 (B5–B7, as torchvision) instead of 1e-5 and 0.1.
        public let tensorFlowBatchNorm: Bool
        /// Batch norm ε and momentum of this variant.
        public var batchNorm: (epsilon: Float, momentum: Float) { tensorFlowBatchNorm ? (0.001, 0.01) : (1e-5, 0.1) }

        /// B0 … B7 in order.
        public static let all: [Variant] = [
            Variant(width: 1.0, depth: 1.0, resolution: 224, dropout: 0.2, tensorFlowBatchNorm: false),
            Variant(width: 1.0, depth: 1.1, resolution: 240, dropout: 0.2, tensorFlowBatchNorm: false),
            // torchvision evaluates its B2 weights at 288 (not the paper's 260); its 1.09 GFLOPS figure is at 288.
            Variant(width: 1.1, depth: 1.2, resolution: 288, dropout: 0.3, tensorFlowBatchNorm: false),
            Variant(width: 1.2, depth: 1.4, resolution: 300, dropout: 0.3, tensorFlowBatchNorm: false),
            Variant(width: 1.4, depth: 1.8, resolution: 380, dropout: 0.4, tensorFlowBatchNorm: false),
            Variant(width: 1.6, depth: 2.2, resolution: 456, dropout: 0.4, tensorFlowBatchNorm: true),
            Variant(width: 1.8, depth: 2.6, resolution: 528, dropout: 0.5, tensorFlowBatchNorm: true),
            Variant(width: 2.0, depth: 3.1, resolution: 600, dropout: 0.5, tensorFlowBatchNorm: true),
        ]
    }

    /// Stem, the seven MBConv stages (`features.1` … `features.7`) and the last 1×1 convolution.
    public let features: Sequential
    /// Dropout and the linear classifier.
    public let classifier: Sequential

    /// Creates a variant; stochastic depth rises linearly over the blocks from 0 to `stochasticDepth`.
    public init(_ variant: Variant, classCount: Int = 1000, inputChannels: Int = 3, stochasticDepth: Float = 0.2,
                seed: UInt64 = 0) throws {
        func scaledChannels(_ channels: Int) -> Int { makeDivisible(Double(channels) * variant.width) }
        func scaledRepeats(_ repeats: Int) -> Int { Int(ceil(Double(repeats) * variant.depth)) }
        let norm = variant.batchNorm
        var channels = scaledChannels(32)
        var layers: [Layer] = [try convNormActivation(inputChannels, channels, stride: 2, activation: .silu,
                                                      epsilon: norm.epsilon, momentum: norm.momentum)]
        let totalBlocks = Self.stages.reduce(0) { $0 + scaledRepeats($1.repeats) }
        var blockIndex = 0
        for stage in Self.stages {
            let output = scaledChannels(stage.channels)
            var blocks: [Layer] = []
            for index in 0..<scaledRepeats(stage.repeats) {
                blocks.append(try MBConv(channels, output, expansion: stage.expansion, kernel: stage.kernel,
                                         stride: index == 0 ? stage.stride : 1,
                                         stochasticDepth: stochasticDepth * Float(blockIndex) / Float(totalBlocks),
                                         epsilon: norm.epsilon, momentum: norm.momentum, seed: seed &+ UInt64(blockIndex + 1)))
                channels = output
                blockIndex += 1
            }
            layers.append(Sequential(blocks))
        }
        layers.append(try convNormActivation(channels, 4 * channels, kernelSize: 1, activation: .silu,
                                             epsilon: norm.epsilon, momentum: norm.momentum))
        features = Sequential(layers)
        classifier = Sequential([try Dropout(probability: variant.dropout, seed: seed), try Linear(4 * channels, classCount)])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        // In inference, the layers down to a quarter of the input's resolution run image by image (cache-resident).
        try classifier(adaptiveAvgPool2d(features(x, imageByImageDownTo: 4), outputSize: [1, 1], name: "EfficientNet.pool").flattened())
    }
}

extension ModelZoo {
    static let efficientNetEntries: [Entry] = EfficientNet.Variant.all.enumerated().map { index, variant in
        Entry(name: "efficientnet_b\(index)", family: "EfficientNet", inputSize: [3, variant.resolution, variant.resolution]) {
            try EfficientNet(variant, classCount: $0, inputChannels: $1)
        }
    }
}
