// VGG — Simonyan & Zisserman 2014, "Very deep convolutional networks for large-scale image recognition",
// arXiv:1409.1556, Table 1 (configurations A, B, D, E); batch-normalised variants after Ioffe & Szegedy 2015.
import FoveaNN
import FoveaTensor

/// VGG: five stages of 3×3 convolutions (padding 1, ReLU, optionally batch norm), each closed by a 2×2 max
/// pool, then three fully connected layers. Keys follow torchvision (`features.N.*`, `classifier.N.*`).
public final class VGG: Layer {
    /// The convolutional trunk.
    public let features: Sequential
    /// Adaptive average pool to 7×7 (the size a 224×224 image reaches), so smaller inputs fit the classifier.
    public let avgpool = AdaptiveAvgPool2D(outputSize: [7, 7])
    /// 4096, dropout, 4096, dropout, classes.
    public let classifier: Sequential

    /// A column of Table 1: how many 3×3 convolutions each of the five stages has.
    public struct Configuration: Sendable, Equatable {
        /// Convolutions per stage.
        public var convolutionsPerStage: [Int]
        /// Width of each stage.
        public var stageChannels: [Int] = [64, 128, 256, 512, 512]

        /// Describes a VGG trunk.
        public init(convolutionsPerStage: [Int], stageChannels: [Int] = [64, 128, 256, 512, 512]) {
            (self.convolutionsPerStage, self.stageChannels) = (convolutionsPerStage, stageChannels)
        }

        /// Configuration A, 11 weight layers.
        public static let vgg11 = Configuration(convolutionsPerStage: [1, 1, 2, 2, 2])
        /// Configuration B, 13 weight layers.
        public static let vgg13 = Configuration(convolutionsPerStage: [2, 2, 2, 2, 2])
        /// Configuration D, 16 weight layers.
        public static let vgg16 = Configuration(convolutionsPerStage: [2, 2, 3, 3, 3])
        /// Configuration E, 19 weight layers.
        public static let vgg19 = Configuration(convolutionsPerStage: [2, 2, 4, 4, 4])
    }

    /// Builds a VGG with torchvision's initialisation: convolutions Kaiming-normal (fan-out) with zero bias,
    /// batch norm 1/0, linear layers N(0, 0.01) with zero bias.
    public init(_ configuration: Configuration, batchNorm: Bool = false, classCount: Int = 1000, inputChannels: Int = 3,
                dropout: Float = 0.5) throws {
        var layers: [Layer] = []
        var channels = inputChannels
        for (count, width) in zip(configuration.convolutionsPerStage, configuration.stageChannels) {
            for _ in 0..<count {
                let convolution = try Conv2D(channels, width, kernelSize: 3, padding: 1,
                                             initializer: .kaimingNormal(fanOut: true))
                convolution.bias?.value = Tensor.zeros([width])
                layers.append(convolution)
                if batchNorm { layers.append(try BatchNorm2D(width)) }
                layers.append(ReLU())
                channels = width
            }
            layers.append(MaxPool2D(kernelSize: 2, stride: 2))
        }
        features = Sequential(layers)
        func dense(_ inputs: Int, _ outputs: Int) throws -> Linear {
            let layer = try Linear(inputs, outputs, initializer: .normal(std: 0.01))
            layer.bias?.value = Tensor.zeros([outputs])
            return layer
        }
        classifier = Sequential([
            try dense(channels * 7 * 7, 4096), ReLU(), try Dropout(probability: dropout),
            try dense(4096, 4096), ReLU(), try Dropout(probability: dropout),
            try dense(4096, classCount),
        ])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try classifier(avgpool(features(x)).flattened())
    }
}

extension ModelZoo {
    static let vggEntries: [Entry] = {
        let configurations: [(String, VGG.Configuration)] = [
            ("vgg11", .vgg11), ("vgg13", .vgg13), ("vgg16", .vgg16), ("vgg19", .vgg19),
        ]
        // Five 2×2 pools take 32×32 down to 1×1, which the adaptive pool spreads to 7×7.
        return configurations.flatMap { name, configuration in
            [false, true].map { batchNorm in
                Entry(name: batchNorm ? name + "_bn" : name, family: "VGG", inputSize: [3, 224, 224],
                      smallInputSize: [3, 32, 32]) {
                    try VGG(configuration, batchNorm: batchNorm, classCount: $0, inputChannels: $1)
                }
            }
        }
    }()
}
