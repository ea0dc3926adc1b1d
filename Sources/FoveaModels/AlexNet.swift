// AlexNet — Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep convolutional neural
// networks", NeurIPS, Fig. 2 and §3; and the single-tower variant of Krizhevsky 2014, "One weird trick for
// parallelizing convolutional neural networks", arXiv:1404.5997, which torchvision's `alexnet` follows.
import FoveaNN
import FoveaTensor

/// AlexNet: five convolutions with overlapping max pooling, then three fully connected layers with dropout.
/// Keys follow torchvision (`features.N.*`, `classifier.N.*`); the 6×6 adaptive pool lets any input of at
/// least 63×63 through.
public final class AlexNet: Layer {
    /// The convolutional trunk.
    public let features: Sequential
    /// Adaptive average pool to 6×6, so the classifier's input size does not depend on the image size.
    public let avgpool = AdaptiveAvgPool2D(outputSize: [6, 6])
    /// Dropout, 4096, dropout, 4096, classes.
    public let classifier: Sequential

    /// One convolution of the trunk: its width, kernel, stride, padding, tower groups, whether local response
    /// normalisation follows its ReLU, and whether a 3×3 stride-2 max pool closes it.
    public struct Convolution: Sendable {
        /// Output channels.
        public var outputChannels: Int
        /// Square kernel size.
        public var kernelSize: Int
        /// Stride.
        public var stride: Int
        /// Zero padding on each side.
        public var padding: Int
        /// Channel groups (2 reproduces the paper's two-GPU connectivity).
        public var groups: Int
        /// Whether local response normalisation follows the ReLU.
        public var normalized: Bool
        /// Whether a 3×3 stride-2 max pool closes the convolution.
        public var pooled: Bool

        /// Describes one convolution of the trunk.
        public init(outputChannels: Int, kernelSize: Int, stride: Int, padding: Int, groups: Int = 1,
                    normalized: Bool = false, pooled: Bool) {
            (self.outputChannels, self.kernelSize, self.stride, self.padding) = (outputChannels, kernelSize, stride, padding)
            (self.groups, self.normalized, self.pooled) = (groups, normalized, pooled)
        }
    }

    /// torchvision's `alexnet` (Krizhevsky 2014's single tower): 64, 192, 384, 256, 256 channels, no LRN;
    /// 61,100,840 parameters for 1000 classes.
    public static let singleTower: [Convolution] = [
        Convolution(outputChannels: 64, kernelSize: 11, stride: 4, padding: 2, pooled: true),
        Convolution(outputChannels: 192, kernelSize: 5, stride: 1, padding: 2, pooled: true),
        Convolution(outputChannels: 384, kernelSize: 3, stride: 1, padding: 1, pooled: false),
        Convolution(outputChannels: 256, kernelSize: 3, stride: 1, padding: 1, pooled: false),
        Convolution(outputChannels: 256, kernelSize: 3, stride: 1, padding: 1, pooled: true),
    ]

    /// The 2012 paper's network (§3.5, Fig. 2): 96, 256, 384, 384, 256 channels; local response normalisation
    /// (k 2, n 5, α 1e-4, β 0.75) after the first two ReLUs; and the two-GPU connectivity kept as groups = 2 on
    /// convolutions 2, 4 and 5, whose kernels see only the half of the previous layer on their own GPU.
    /// 60,965,224 parameters for 1000 classes — the paper's "60 million".
    public static let twoTower: [Convolution] = [
        Convolution(outputChannels: 96, kernelSize: 11, stride: 4, padding: 2, normalized: true, pooled: true),
        Convolution(outputChannels: 256, kernelSize: 5, stride: 1, padding: 2, groups: 2, normalized: true, pooled: true),
        Convolution(outputChannels: 384, kernelSize: 3, stride: 1, padding: 1, pooled: false),
        Convolution(outputChannels: 384, kernelSize: 3, stride: 1, padding: 1, groups: 2, pooled: false),
        Convolution(outputChannels: 256, kernelSize: 3, stride: 1, padding: 1, groups: 2, pooled: true),
    ]

    /// Builds AlexNet from a trunk description (`singleTower` or `twoTower`). Weights use PyTorch's default
    /// initialisation, as torchvision's; the paper's N(0, 0.01) with unit biases is not reproduced.
    public init(convolutions: [Convolution] = AlexNet.singleTower, classCount: Int = 1000, inputChannels: Int = 3,
                dropout: Float = 0.5) throws {
        var layers: [Layer] = []
        var channels = inputChannels
        for convolution in convolutions {
            layers.append(try Conv2D(channels, convolution.outputChannels, kernelSize: convolution.kernelSize,
                                     stride: convolution.stride, padding: convolution.padding, groups: convolution.groups))
            layers.append(ReLU())
            if convolution.normalized { layers.append(LocalResponseNorm(size: 5, alpha: 1e-4, beta: 0.75, k: 2)) }
            // Overlapping pooling (§3.4): 3×3 windows every 2 pixels.
            if convolution.pooled { layers.append(MaxPool2D(kernelSize: 3, stride: 2)) }
            channels = convolution.outputChannels
        }
        features = Sequential(layers)
        classifier = Sequential([
            try Dropout(probability: dropout), try Linear(channels * 6 * 6, 4096), ReLU(),
            try Dropout(probability: dropout), try Linear(4096, 4096), ReLU(),
            try Linear(4096, classCount),
        ])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try classifier(avgpool(features(x)).flattened())
    }
}

extension ModelZoo {
    static let alexNetEntries: [Entry] = [
        // The three stride-2 pools need at least 63×63 pixels (55 → 27 → 13 → 6 at 224).
        Entry(name: "alexnet", family: "AlexNet", inputSize: [3, 224, 224], smallInputSize: [3, 63, 63]) {
            try AlexNet(convolutions: AlexNet.singleTower, classCount: $0, inputChannels: $1)
        },
        Entry(name: "alexnet_lrn", family: "AlexNet", inputSize: [3, 224, 224], smallInputSize: [3, 63, 63]) {
            try AlexNet(convolutions: AlexNet.twoTower, classCount: $0, inputChannels: $1)
        },
    ]
}
