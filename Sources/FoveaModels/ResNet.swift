// ResNet — He, Zhang, Ren & Sun 2015, "Deep residual learning for image recognition", arXiv:1512.03385,
// Fig. 5 and Table 1 (ImageNet models); with the stride on the 3×3 convolution of the bottleneck ("v1.5", as
// torchvision). ResNeXt — Xie et al. 2016, arXiv:1611.05431, Fig. 3(c) (grouped 3×3). Wide ResNet —
// Zagoruyko & Komodakis 2016, arXiv:1605.07146 (bottleneck width doubled).
import FoveaNN
import FoveaTensor

/// ResNet basic block — He et al. 2015, Fig. 5 (left): two 3×3 convolutions and an identity (or projection)
/// shortcut. Keys `conv1`, `bn1`, `conv2`, `bn2`, `downsample.0`, `downsample.1`.
public final class BasicBlock: Layer {
    /// Widening of the block's output over its inner width.
    public static let expansion = 1
    /// 3×3 convolution carrying the block's stride.
    public let conv1: Conv2D
    /// Batch norm after `conv1`.
    public let bn1: BatchNorm2D
    /// 3×3 convolution.
    public let conv2: Conv2D
    /// Batch norm after `conv2`.
    public let bn2: BatchNorm2D
    /// The shortcut when stride or width changes: a 1×1 conv + BN `Sequential` on ImageNet, a parameter-free
    /// zero-padding shortcut on CIFAR; `nil` for the identity.
    public let downsample: Layer?

    /// Creates a block from `inputChannels` to `outputChannels`; convolutions use `initializer`.
    public init(inputChannels: Int, outputChannels: Int, stride: Int = 1, downsample: Layer? = nil,
                initializer: Initializer = .kaimingNormal(fanOut: true)) throws {
        conv1 = try Conv2D(inputChannels, outputChannels, kernelSize: 3, stride: stride, padding: 1, bias: false,
                           initializer: initializer)
        bn1 = try BatchNorm2D(outputChannels)
        conv2 = try Conv2D(outputChannels, outputChannels, kernelSize: 3, padding: 1, bias: false, initializer: initializer)
        bn2 = try BatchNorm2D(outputChannels)
        self.downsample = downsample
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try conv1(x, normalizedBy: bn1, activation: .relu)
        return try conv2(y, normalizedBy: bn2, adding: downsample?(x) ?? x, activation: .relu)
    }
}

/// ResNet bottleneck block — He et al. 2015, Fig. 5 (right): 1×1 reduce, 3×3 (strided, optionally grouped
/// as in ResNeXt), 1×1 expand by 4, plus the shortcut. Keys `conv1`…`bn3`, `downsample.0`, `downsample.1`.
public final class Bottleneck: Layer {
    /// Widening of the block's output over its nominal width.
    public static let expansion = 4
    /// 1×1 reduction.
    public let conv1: Conv2D
    /// Batch norm after `conv1`.
    public let bn1: BatchNorm2D
    /// 3×3 convolution carrying the stride and the groups.
    public let conv2: Conv2D
    /// Batch norm after `conv2`.
    public let bn2: BatchNorm2D
    /// 1×1 expansion to `outputChannels`.
    public let conv3: Conv2D
    /// Batch norm after `conv3`.
    public let bn3: BatchNorm2D
    /// 1×1 conv + BN projection when stride or width changes; `nil` for the identity.
    public let downsample: Layer?

    /// Creates a bottleneck from `inputChannels` through `innerChannels` (split into `groups`) to `outputChannels`.
    public init(inputChannels: Int, innerChannels: Int, outputChannels: Int, stride: Int = 1, groups: Int = 1,
                downsample: Layer? = nil) throws {
        let initializer = Initializer.kaimingNormal(fanOut: true)
        conv1 = try Conv2D(inputChannels, innerChannels, kernelSize: 1, bias: false, initializer: initializer)
        bn1 = try BatchNorm2D(innerChannels)
        conv2 = try Conv2D(innerChannels, innerChannels, kernelSize: 3, stride: stride, padding: 1, groups: groups,
                           bias: false, initializer: initializer)
        bn2 = try BatchNorm2D(innerChannels)
        conv3 = try Conv2D(innerChannels, outputChannels, kernelSize: 1, bias: false, initializer: initializer)
        bn3 = try BatchNorm2D(outputChannels)
        self.downsample = downsample
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try conv2(conv1(x, normalizedBy: bn1, activation: .relu), normalizedBy: bn2, activation: .relu)
        return try conv3(y, normalizedBy: bn3, adding: downsample?(x) ?? x, activation: .relu)
    }
}

/// ResNet for ImageNet-sized images (He et al. 2015, Table 1): a 7×7 stride-2 stem with max pool, four stages
/// (`layer1`…`layer4`) at widths 64, 128, 256, 512, global average pool, `fc`.
public final class ResNet: Layer {
    /// 7×7 stride-2 stem convolution.
    public let conv1: Conv2D
    /// Batch norm after the stem.
    public let bn1: BatchNorm2D
    /// 3×3 stride-2 max pool after the stem.
    public let maxpool = MaxPool2D(kernelSize: 3, stride: 2, padding: 1)
    /// Stage 1 (stride 1, width 64).
    public let layer1: Sequential
    /// Stage 2 (stride 2, width 128).
    public let layer2: Sequential
    /// Stage 3 (stride 2, width 256).
    public let layer3: Sequential
    /// Stage 4 (stride 2, width 512).
    public let layer4: Sequential
    /// Global average pool.
    public let avgpool = AdaptiveAvgPool2D(outputSize: [1, 1])
    /// Classifier.
    public let fc: Linear

    /// Block type of a ResNet.
    public enum BlockKind: Sendable { case basic, bottleneck }

    /// A column of Table 1 plus the ResNeXt / wide-ResNet knobs.
    public struct Configuration: Sendable {
        /// Basic or bottleneck blocks.
        public var block: BlockKind
        /// Blocks in each of the four stages.
        public var blockCounts: [Int]
        /// Groups of the bottleneck's 3×3 convolution (ResNeXt's cardinality).
        public var groups: Int
        /// Channels per group at the first stage's nominal width of 64 (64 for plain ResNet).
        public var widthPerGroup: Int

        /// Describes a ResNet.
        public init(block: BlockKind, blockCounts: [Int], groups: Int = 1, widthPerGroup: Int = 64) {
            (self.block, self.blockCounts, self.groups, self.widthPerGroup) = (block, blockCounts, groups, widthPerGroup)
        }

        /// ResNet-18.
        public static let resnet18 = Configuration(block: .basic, blockCounts: [2, 2, 2, 2])
        /// ResNet-34.
        public static let resnet34 = Configuration(block: .basic, blockCounts: [3, 4, 6, 3])
        /// ResNet-50.
        public static let resnet50 = Configuration(block: .bottleneck, blockCounts: [3, 4, 6, 3])
        /// ResNet-101.
        public static let resnet101 = Configuration(block: .bottleneck, blockCounts: [3, 4, 23, 3])
        /// ResNet-152.
        public static let resnet152 = Configuration(block: .bottleneck, blockCounts: [3, 8, 36, 3])
        /// ResNeXt-50 (32×4d): 32 groups of 4 channels at the first stage.
        public static let resnext50_32x4d = Configuration(block: .bottleneck, blockCounts: [3, 4, 6, 3], groups: 32,
                                                          widthPerGroup: 4)
        /// Wide ResNet-50-2: bottleneck inner width doubled.
        public static let wide_resnet50_2 = Configuration(block: .bottleneck, blockCounts: [3, 4, 6, 3], widthPerGroup: 128)
    }

    /// Builds a ResNet with torchvision's initialisation (convolutions Kaiming-normal fan-out, batch norm 1/0,
    /// `fc` PyTorch's default).
    public init(_ configuration: Configuration, classCount: Int = 1000, inputChannels: Int = 3) throws {
        conv1 = try Conv2D(inputChannels, 64, kernelSize: 7, stride: 2, padding: 3, bias: false,
                           initializer: .kaimingNormal(fanOut: true))
        bn1 = try BatchNorm2D(64)
        let expansion = configuration.block == .basic ? BasicBlock.expansion : Bottleneck.expansion
        var channels = 64
        var stages: [Sequential] = []
        for (index, (count, width)) in zip(configuration.blockCounts, [64, 128, 256, 512]).enumerated() {
            var blocks: [Layer] = []
            for position in 0..<count {
                let stride = position == 0 && index > 0 ? 2 : 1
                let outputChannels = width * expansion
                var downsample: Layer?
                if stride != 1 || channels != outputChannels {
                    // Projection shortcut (option B of §3.3) only where the shape changes.
                    downsample = Sequential([
                        try Conv2D(channels, outputChannels, kernelSize: 1, stride: stride, bias: false,
                                   initializer: .kaimingNormal(fanOut: true)),
                        try BatchNorm2D(outputChannels),
                    ])
                }
                switch configuration.block {
                case .basic:
                    blocks.append(try BasicBlock(inputChannels: channels, outputChannels: outputChannels, stride: stride,
                                                 downsample: downsample))
                case .bottleneck:
                    let inner = width * configuration.widthPerGroup / 64 * configuration.groups
                    blocks.append(try Bottleneck(inputChannels: channels, innerChannels: inner, outputChannels: outputChannels,
                                                 stride: stride, groups: configuration.groups, downsample: downsample))
                }
                channels = outputChannels
            }
            stages.append(Sequential(blocks))
        }
        (layer1, layer2, layer3, layer4) = (stages[0], stages[1], stages[2], stages[3])
        fc = try Linear(channels, classCount)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let stem = try maxpool(conv1(x, normalizedBy: bn1, activation: .relu))
        let trunk = try layer4(layer3(layer2(layer1(stem))))
        return try fc(avgpool(trunk).flattened())
    }
}

extension ModelZoo {
    static let resNetEntries: [Entry] = {
        let configurations: [(String, ResNet.Configuration)] = [
            ("resnet18", .resnet18), ("resnet34", .resnet34), ("resnet50", .resnet50), ("resnet101", .resnet101),
            ("resnet152", .resnet152), ("wide_resnet50_2", .wide_resnet50_2), ("resnext50_32x4d", .resnext50_32x4d),
        ]
        // Five halvings take 32×32 to 1×1 before the global pool.
        return configurations.map { name, configuration in
            Entry(name: name, family: "ResNet", inputSize: [3, 224, 224], smallInputSize: [3, 32, 32]) {
                try ResNet(configuration, classCount: $0, inputChannels: $1)
            }
        }
    }()
}
