// MobileNet v1 — Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
// Applications", arXiv:1704.04861, Fig. 3 and Table 1.
// MobileNet v2 — Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
// arXiv:1801.04381, Table 1 (block) and Table 2 (network).
// MobileNet v3 — Howard et al. 2019, "Searching for MobileNetV3", arXiv:1905.02244, Tables 1 and 2.
import FoveaNN
import FoveaTensor

// MARK: - MobileNet v1

/// A depthwise-separable convolution (Fig. 3 right): 3×3 depthwise conv-BN-ReLU, then 1×1 pointwise conv-BN-ReLU.
/// Keys `depthwise.{0,1}.*` and `pointwise.{0,1}.*`.
public final class DepthwiseSeparableConvolution: Layer {
    /// 3×3 depthwise convolution, batch norm, ReLU.
    public let depthwise: Sequential
    /// 1×1 pointwise convolution, batch norm, ReLU.
    public let pointwise: Sequential

    /// Creates the block; the stride is applied by the depthwise convolution.
    public init(_ inputChannels: Int, _ outputChannels: Int, stride: Int) throws {
        depthwise = try convNormActivation(inputChannels, inputChannels, stride: stride, groups: inputChannels)
        pointwise = try convNormActivation(inputChannels, outputChannels, kernelSize: 1)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try pointwise(depthwise(x)) }
}

/// MobileNet v1 (width 1.0, 4,231,976 parameters for 1,000 classes): a strided 3×3 convolution and thirteen
/// depthwise-separable blocks (`features.0` … `features.13`), global average pool and `classifier`.
public final class MobileNetV1: Layer {
    /// Table 1 after the first layer: (output channels, stride) of each depthwise-separable block.
    public static let blocks: [(channels: Int, stride: Int)] = [
        (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
    ]

    /// Stem and depthwise-separable blocks.
    public let features: Sequential
    /// Final classifier.
    public let classifier: Linear

    /// Creates MobileNet v1 for `classCount` classes.
    public init(classCount: Int = 1000, inputChannels: Int = 3) throws {
        var layers: [Layer] = [try convNormActivation(inputChannels, 32, stride: 2)]
        var channels = 32
        for block in Self.blocks {
            layers.append(try DepthwiseSeparableConvolution(channels, block.channels, stride: block.stride))
            channels = block.channels
        }
        features = Sequential(layers)
        classifier = try Linear(channels, classCount)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try classifier(adaptiveAvgPool2d(features(x, imageByImageDownTo: 4), outputSize: [1, 1], name: "MobileNetV1.pool").flattened())
    }
}

// MARK: - MobileNet v2

/// The inverted residual with linear bottleneck (Table 1): 1×1 expansion (ReLU6, skipped when the factor is 1),
/// 3×3 depthwise (ReLU6), 1×1 linear projection; identity shortcut when shape is kept. Keys `conv.N.*`.
public final class InvertedResidual: Layer {
    /// Expansion, depthwise, projection convolution and its batch norm.
    public let conv: Sequential
    let residual: Bool

    /// Creates the block with expansion factor `expansion`.
    public init(_ inputChannels: Int, _ outputChannels: Int, stride: Int, expansion: Int) throws {
        let hidden = inputChannels * expansion
        var layers: [Layer] = []
        if expansion != 1 { layers.append(try convNormActivation(inputChannels, hidden, kernelSize: 1, activation: .relu6)) }
        layers.append(try convNormActivation(hidden, hidden, stride: stride, groups: hidden, activation: .relu6))
        layers.append(try Conv2D(hidden, outputChannels, kernelSize: 1, bias: false))
        layers.append(try BatchNorm2D(outputChannels))
        conv = Sequential(layers)
        residual = stride == 1 && inputChannels == outputChannels
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try conv(x, adding: residual ? x : nil) }
}

/// MobileNet v2 as torchvision's `mobilenet_v2` (width 1.0: 3,504,872 parameters for 1,000 classes).
public final class MobileNetV2: Layer {
    /// One row of Table 2: expansion factor t, output channels c, repeats n, first stride s.
    public struct Stage: Sendable {
        /// t, c, n, s.
        public let expansion, channels, repeats, stride: Int
    }

    /// Table 2's bottleneck rows.
    public static let stages: [Stage] = [
        Stage(expansion: 1, channels: 16, repeats: 1, stride: 1), Stage(expansion: 6, channels: 24, repeats: 2, stride: 2),
        Stage(expansion: 6, channels: 32, repeats: 3, stride: 2), Stage(expansion: 6, channels: 64, repeats: 4, stride: 2),
        Stage(expansion: 6, channels: 96, repeats: 3, stride: 1), Stage(expansion: 6, channels: 160, repeats: 3, stride: 2),
        Stage(expansion: 6, channels: 320, repeats: 1, stride: 1),
    ]

    /// Stem, bottlenecks and last 1×1 convolution.
    public let features: Sequential
    /// Dropout and linear layers after global average pooling.
    public let classifier: Sequential

    /// Creates MobileNet v2 with width multiplier `width`.
    public init(classCount: Int = 1000, inputChannels: Int = 3, width: Double = 1, seed: UInt64 = 0) throws {
        var channels = makeDivisible(32 * width)
        let lastChannels = makeDivisible(1280 * max(1, width))
        var layers: [Layer] = [try convNormActivation(inputChannels, channels, stride: 2, activation: .relu6)]
        for stage in Self.stages {
            let output = makeDivisible(Double(stage.channels) * width)
            for index in 0..<stage.repeats {
                layers.append(try InvertedResidual(channels, output, stride: index == 0 ? stage.stride : 1,
                                                   expansion: stage.expansion))
                channels = output
            }
        }
        layers.append(try convNormActivation(channels, lastChannels, kernelSize: 1, activation: .relu6))
        features = Sequential(layers)
        classifier = Sequential([try Dropout(probability: 0.2, seed: seed), try Linear(lastChannels, classCount)])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        // In inference, the layers down to a quarter of the input's resolution run image by image (cache-resident).
        try classifier(adaptiveAvgPool2d(features(x, imageByImageDownTo: 4), outputSize: [1, 1], name: "MobileNetV2.pool").flattened())
    }
}

// MARK: - MobileNet v3

/// MobileNet v3's bottleneck (Fig. 4): optional 1×1 expansion, k×k depthwise, optional squeeze-excitation with a
/// hard-sigmoid gate, 1×1 linear projection; ReLU or hard-swish; batch norm ε 0.001, momentum 0.01. Keys `block.N.*`.
public final class MobileNetV3Block: Layer {
    /// The block's layers.
    public let block: Sequential
    let residual: Bool

    /// Creates the block from one row of Table 1 or 2.
    public init(_ row: MobileNetV3.Row, inputChannels: Int) throws {
        let activation: Activation = row.hardSwish ? .hardSwish : .relu
        let (epsilon, momentum): (Float, Float) = (0.001, 0.01)
        var layers: [Layer] = []
        if row.expandedChannels != inputChannels {
            layers.append(try convNormActivation(inputChannels, row.expandedChannels, kernelSize: 1, activation: activation,
                                                 epsilon: epsilon, momentum: momentum))
        }
        layers.append(try convNormActivation(row.expandedChannels, row.expandedChannels, kernelSize: row.kernel,
                                             stride: row.stride, groups: row.expandedChannels, activation: activation,
                                             epsilon: epsilon, momentum: momentum))
        if row.squeezeExcitation {
            layers.append(try SqueezeExcitation(inputChannels: row.expandedChannels,
                                                squeezeChannels: makeDivisible(Double(row.expandedChannels / 4)),
                                                hardGate: true))
        }
        layers.append(try convNormActivation(row.expandedChannels, row.outputChannels, kernelSize: 1, activation: nil,
                                             epsilon: epsilon, momentum: momentum))
        block = Sequential(layers)
        residual = row.stride == 1 && inputChannels == row.outputChannels
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try block(x, adding: residual ? x : nil) }
}

/// MobileNet v3 as torchvision's `mobilenet_v3_large` (5,483,032 parameters) and `mobilenet_v3_small` (2,542,856).
public final class MobileNetV3: Layer {
    /// One bottleneck row of Table 1 (large) or 2 (small).
    public struct Row: Sendable {
        /// Depthwise kernel size, expansion size, output channels.
        public let kernel, expandedChannels, outputChannels: Int
        /// Whether the block has SE, and hard-swish (else ReLU).
        public let squeezeExcitation, hardSwish: Bool
        /// Depthwise stride.
        public let stride: Int
    }

    /// The two published sizes.
    public enum Size: Sendable {
        case large, small

        /// The bottleneck rows (kernel, expansion size, output, SE, hard-swish, stride).
        public var rows: [Row] {
            typealias R = Row
            switch self {
            case .large: return [
                R(kernel: 3, expandedChannels: 16, outputChannels: 16, squeezeExcitation: false, hardSwish: false, stride: 1),
                R(kernel: 3, expandedChannels: 64, outputChannels: 24, squeezeExcitation: false, hardSwish: false, stride: 2),
                R(kernel: 3, expandedChannels: 72, outputChannels: 24, squeezeExcitation: false, hardSwish: false, stride: 1),
                R(kernel: 5, expandedChannels: 72, outputChannels: 40, squeezeExcitation: true, hardSwish: false, stride: 2),
                R(kernel: 5, expandedChannels: 120, outputChannels: 40, squeezeExcitation: true, hardSwish: false, stride: 1),
                R(kernel: 5, expandedChannels: 120, outputChannels: 40, squeezeExcitation: true, hardSwish: false, stride: 1),
                R(kernel: 3, expandedChannels: 240, outputChannels: 80, squeezeExcitation: false, hardSwish: true, stride: 2),
                R(kernel: 3, expandedChannels: 200, outputChannels: 80, squeezeExcitation: false, hardSwish: true, stride: 1),
                R(kernel: 3, expandedChannels: 184, outputChannels: 80, squeezeExcitation: false, hardSwish: true, stride: 1),
                R(kernel: 3, expandedChannels: 184, outputChannels: 80, squeezeExcitation: false, hardSwish: true, stride: 1),
                R(kernel: 3, expandedChannels: 480, outputChannels: 112, squeezeExcitation: true, hardSwish: true, stride: 1),
                R(kernel: 3, expandedChannels: 672, outputChannels: 112, squeezeExcitation: true, hardSwish: true, stride: 1),
                R(kernel: 5, expandedChannels: 672, outputChannels: 160, squeezeExcitation: true, hardSwish: true, stride: 2),
                R(kernel: 5, expandedChannels: 960, outputChannels: 160, squeezeExcitation: true, hardSwish: true, stride: 1),
                R(kernel: 5, expandedChannels: 960, outputChannels: 160, squeezeExcitation: true, hardSwish: true, stride: 1),
            ]
            case .small: return [
                R(kernel: 3, expandedChannels: 16, outputChannels: 16, squeezeExcitation: true, hardSwish: false, stride: 2),
                R(kernel: 3, expandedChannels: 72, outputChannels: 24, squeezeExcitation: false, hardSwish: false, stride: 2),
                R(kernel: 3, expandedChannels: 88, outputChannels: 24, squeezeExcitation: false, hardSwish: false, stride: 1),
                R(kernel: 5, expandedChannels: 96, outputChannels: 40, squeezeExcitation: true, hardSwish: true, stride: 2),
                R(kernel: 5, expandedChannels: 240, outputChannels: 40, squeezeExcitation: true, hardSwish: true, stride: 1),
                R(kernel: 5, expandedChannels: 240, outputChannels: 40, squeezeExcitation: true, hardSwish: true, stride: 1),
                R(kernel: 5, expandedChannels: 120, outputChannels: 48, squeezeExcitation: true, hardSwish: true, stride: 1),
                R(kernel: 5, expandedChannels: 144, outputChannels: 48, squeezeExcitation: true, hardSwish: true, stride: 1),
                R(kernel: 5, expandedChannels: 288, outputChannels: 96, squeezeExcitation: true, hardSwish: true, stride: 2),
                R(kernel: 5, expandedChannels: 576, outputChannels: 96, squeezeExcitation: true, hardSwish: true, stride: 1),
                R(kernel: 5, expandedChannels: 576, outputChannels: 96, squeezeExcitation: true, hardSwish: true, stride: 1),
            ]
            }
        }

        /// Width of the classifier's hidden layer.
        public var classifierChannels: Int { self == .large ? 1280 : 1024 }
    }

    /// Stem, bottlenecks and last 1×1 convolution.
    public let features: Sequential
    /// Dropout and linear layers after global average pooling.
    public let classifier: Sequential

    /// Creates MobileNet v3 of the given size.
    public init(_ size: Size, classCount: Int = 1000, inputChannels: Int = 3, seed: UInt64 = 0) throws {
        var channels = 16
        var layers: [Layer] = [try convNormActivation(inputChannels, channels, stride: 2, activation: .hardSwish,
                                                      epsilon: 0.001, momentum: 0.01)]
        for row in size.rows {
            layers.append(try MobileNetV3Block(row, inputChannels: channels))
            channels = row.outputChannels
        }
        let lastChannels = 6 * channels
        layers.append(try convNormActivation(channels, lastChannels, kernelSize: 1, activation: .hardSwish,
                                             epsilon: 0.001, momentum: 0.01))
        features = Sequential(layers)
        classifier = Sequential([try Linear(lastChannels, size.classifierChannels), HardSwish(),
                                 try Dropout(probability: 0.2, seed: seed), try Linear(size.classifierChannels, classCount)])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try classifier(adaptiveAvgPool2d(features(x, imageByImageDownTo: 4), outputSize: [1, 1], name: "MobileNetV3.pool").flattened())
    }
}

extension ModelZoo {
    static let mobileNetEntries: [Entry] = [
        Entry(name: "mobilenet_v1", family: "MobileNet", inputSize: [3, 224, 224]) { try MobileNetV1(classCount: $0, inputChannels: $1) },
        Entry(name: "mobilenet_v2", family: "MobileNet", inputSize: [3, 224, 224]) { try MobileNetV2(classCount: $0, inputChannels: $1) },
        Entry(name: "mobilenet_v3_small", family: "MobileNet", inputSize: [3, 224, 224]) {
            try MobileNetV3(.small, classCount: $0, inputChannels: $1)
        },
        Entry(name: "mobilenet_v3_large", family: "MobileNet", inputSize: [3, 224, 224]) {
            try MobileNetV3(.large, classCount: $0, inputChannels: $1)
        },
    ]
}
