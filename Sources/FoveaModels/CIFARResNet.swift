// ResNet for CIFAR-10 — He, Zhang, Ren & Sun 2015, "Deep residual learning for image recognition",
// arXiv:1512.03385, §4.2 and Table 6: 6n+2 layers, a 3×3 convolution to 16 channels, three stages of n basic
// blocks at widths 16, 32, 64 (strides 1, 2, 2), global average pool, fully connected; identity shortcuts
// throughout, zero-padded where the width grows (option A), so the networks have no projection parameters.
import FoveaNN
import FoveaTensor

/// Option A shortcut (He et al. 2015, §3.3): keeps every second pixel in each direction and pads the missing
/// channels with zeros. A fixed 1×1 stride-2 convolution with a constant 0/1 weight does both in one primitive;
/// the weight is a plain tensor, not a `Parameter` or `Buffer`, so it is neither trained nor saved.
public final class ZeroPaddingShortcut: Layer {
    /// (outputChannels, inputChannels, 1, 1), 1 where output channel c copies input channel c, 0 elsewhere.
    let selection: Tensor
    let geometry: ConvolutionGeometry

    /// Creates a shortcut from `inputChannels` to `outputChannels` (at least as many) with spatial `stride`.
    public init(inputChannels: Int, outputChannels: Int, stride: Int) throws {
        guard outputChannels >= inputChannels, inputChannels > 0, stride > 0 else {
            throw TensorError.invalidArgument(operation: "ZeroPaddingShortcut",
                                              message: "cannot pad \(inputChannels) channels to \(outputChannels)")
        }
        var values = [Float](repeating: 0, count: outputChannels * inputChannels)
        for channel in 0..<inputChannels { values[channel * inputChannels + channel] = 1 }
        selection = try Tensor(shape: [outputChannels, inputChannels, 1, 1], values: values)
        geometry = ConvolutionGeometry(stride: [stride, stride])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try conv2d(x, weight: selection, geometry: geometry,
                   name: "ZeroPaddingShortcut(\(selection.shape[1])→\(selection.shape[0]))")
    }
}

/// ResNet-(6n+2) for 32×32 images (He et al. 2015, §4.2). Keys `conv1`, `bn1`, `layer1`…`layer3`, `fc`.
public final class CIFARResNet: Layer {
    /// 3×3 convolution to 16 channels.
    public let conv1: Conv2D
    /// Batch norm after `conv1`.
    public let bn1: BatchNorm2D
    /// Stage 1: n blocks at width 16, 32×32.
    public let layer1: Sequential
    /// Stage 2: n blocks at width 32, 16×16.
    public let layer2: Sequential
    /// Stage 3: n blocks at width 64, 8×8.
    public let layer3: Sequential
    /// Global average pool.
    public let avgpool = AdaptiveAvgPool2D(outputSize: [1, 1])
    /// Classifier.
    public let fc: Linear

    /// Widths of the three stages.
    public static let stageChannels = [16, 32, 64]

    /// How a block's shortcut matches a change of width and resolution (He et al. 2015, §3.3).
    public enum Shortcut: Sendable {
        /// Option A, the paper's CIFAR choice: subsample and zero-pad the channels; no parameters.
        case zeroPadding
        /// Option B: a strided 1×1 convolution and batch norm (`downsample.0`, `downsample.1`), as many
        /// re-implementations (and `../shared/bench/torch_anchor.py`) use.
        case projection
    }

    /// Builds the 6n+2-layer network with `blocksPerStage` = n. Convolutions use He et al.'s initialisation
    /// (N(0, 2/fan-in), the paper's reference [13]), batch norm 1/0, `fc` PyTorch's default.
    public init(blocksPerStage: Int, classCount: Int = 10, inputChannels: Int = 3, shortcut: Shortcut = .zeroPadding) throws {
        guard blocksPerStage > 0 else {
            throw TensorError.invalidArgument(operation: "CIFARResNet", message: "blocksPerStage \(blocksPerStage) must be positive")
        }
        let initializer = Initializer.kaimingNormal(fanOut: false)
        conv1 = try Conv2D(inputChannels, 16, kernelSize: 3, padding: 1, bias: false, initializer: initializer)
        bn1 = try BatchNorm2D(16)
        var channels = 16
        var stages: [Sequential] = []
        for (index, width) in Self.stageChannels.enumerated() {
            var blocks: [Layer] = []
            for position in 0..<blocksPerStage {
                let stride = position == 0 && index > 0 ? 2 : 1
                var downsample: Layer?
                if stride != 1 || channels != width {
                    switch shortcut {
                    case .zeroPadding:
                        downsample = try ZeroPaddingShortcut(inputChannels: channels, outputChannels: width, stride: stride)
                    case .projection:
                        downsample = Sequential([
                            try Conv2D(channels, width, kernelSize: 1, stride: stride, bias: false, initializer: initializer),
                            try BatchNorm2D(width),
                        ])
                    }
                }
                blocks.append(try BasicBlock(inputChannels: channels, outputChannels: width, stride: stride,
                                             downsample: downsample, initializer: initializer))
                channels = width
            }
            stages.append(Sequential(blocks))
        }
        (layer1, layer2, layer3) = (stages[0], stages[1], stages[2])
        fc = try Linear(channels, classCount)
    }

    /// Builds ResNet-`depth` for a depth of the form 6n+2 (20, 32, 44, 56, 110, 1202).
    public convenience init(depth: Int, classCount: Int = 10, inputChannels: Int = 3, shortcut: Shortcut = .zeroPadding) throws {
        guard depth >= 8, (depth - 2) % 6 == 0 else {
            throw TensorError.invalidArgument(operation: "CIFARResNet", message: "depth \(depth) is not 6n+2")
        }
        try self.init(blocksPerStage: (depth - 2) / 6, classCount: classCount, inputChannels: inputChannels, shortcut: shortcut)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let trunk = try layer3(layer2(layer1(conv1(x, normalizedBy: bn1, activation: .relu))))
        return try fc(avgpool(trunk).flattened())
    }
}

extension ModelZoo {
    static let cifarResNetEntries: [Entry] = [20, 32, 44, 56, 110, 1202].map { depth in
        Entry(name: "resnet\(depth)", family: "CIFARResNet", inputSize: [3, 32, 32], smallInputSize: [3, 32, 32]) {
            try CIFARResNet(depth: depth, classCount: $0, inputChannels: $1)
        }
    }
}
