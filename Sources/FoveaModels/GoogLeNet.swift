// GoogLeNet — Szegedy et al. 2014, "Going Deeper with Convolutions", arXiv:1409.4842, Fig. 2(b), Table 1
// (with batch norm after every convolution, as torchvision).
import FoveaNN
import FoveaTensor

/// Convolution without bias, batch norm (ε 0.001) and ReLU — the unit every Inception branch is made of
/// (keys `conv.*`, `bn.*`).
public final class InceptionConvolution: Layer {
    /// The convolution.
    public let conv: Conv2D
    /// Its batch norm.
    public let bn: BatchNorm2D

    /// Creates the unit with a (height, width) kernel, stride and padding.
    public init(_ inputChannels: Int, _ outputChannels: Int, kernel: (Int, Int), stride: Int = 1,
                padding: (Int, Int) = (0, 0)) throws {
        conv = try Conv2D(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: [kernel.0, kernel.1],
                          stride: [stride, stride], padding: [padding.0, padding.1], bias: false)
        bn = try BatchNorm2D(outputChannels, epsilon: 0.001)
    }

    /// Square-kernel convenience initialiser.
    public convenience init(_ inputChannels: Int, _ outputChannels: Int, kernelSize: Int, stride: Int = 1,
                            padding: Int = 0) throws {
        try self.init(inputChannels, outputChannels, kernel: (kernelSize, kernelSize), stride: stride,
                      padding: (padding, padding))
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try conv(x, normalizedBy: bn, activation: .relu) }
}

/// One Inception module of GoogLeNet (Fig. 2(b)): 1×1, 1×1→3×3, 1×1→"5×5", 3×3 max pool→1×1, concatenated.
/// The "5×5" branch uses a 3×3 kernel, as torchvision's (and its published weights') definition does.
public final class GoogLeNetInception: Layer {
    /// 1×1 branch.
    public let branch1: InceptionConvolution
    /// 1×1 reduction then 3×3.
    public let branch2: Sequential
    /// 1×1 reduction then 3×3 (the paper's 5×5).
    public let branch3: Sequential
    /// 3×3 max pool then 1×1 projection.
    public let branch4: Sequential

    /// Creates a module from the widths of Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
    public init(_ inputChannels: Int, _ widths: GoogLeNet.ModuleWidths) throws {
        branch1 = try InceptionConvolution(inputChannels, widths.oneByOne, kernelSize: 1)
        branch2 = Sequential([try InceptionConvolution(inputChannels, widths.threeByThreeReduce, kernelSize: 1),
                              try InceptionConvolution(widths.threeByThreeReduce, widths.threeByThree, kernelSize: 3, padding: 1)])
        branch3 = Sequential([try InceptionConvolution(inputChannels, widths.fiveByFiveReduce, kernelSize: 1),
                              try InceptionConvolution(widths.fiveByFiveReduce, widths.fiveByFive, kernelSize: 3, padding: 1)])
        branch4 = Sequential([MaxPool2D(kernelSize: 3, stride: 1, padding: 1, ceilMode: true),
                              try InceptionConvolution(inputChannels, widths.poolProjection, kernelSize: 1)])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try concatenateChannels([branch1(x), branch2(x), branch3(x), branch4(x)], name: "GoogLeNetInception")
    }
}

/// GoogLeNet's auxiliary classifier (Section 5): 4×4 average pool, 1×1 conv to 128, FC 1024, dropout 0.7, FC.
public final class GoogLeNetAuxiliary: Layer {
    /// The 1×1 convolution.
    public let conv: InceptionConvolution
    /// Hidden fully connected layer.
    public let fc1: Linear
    /// Output layer.
    public let fc2: Linear
    let dropout: Dropout

    /// Creates a head reading `inputChannels` feature maps.
    public init(_ inputChannels: Int, classCount: Int, seed: UInt64) throws {
        conv = try InceptionConvolution(inputChannels, 128, kernelSize: 1)
        fc1 = try Linear(2048, 1024)
        fc2 = try Linear(1024, classCount)
        dropout = try Dropout(probability: 0.7, seed: seed)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let pooled = try conv(adaptiveAvgPool2d(x, outputSize: [4, 4], name: "GoogLeNetAuxiliary.pool"))
        return try fc2(dropout(relu(fc1(pooled.flattened()))))
    }
}

/// GoogLeNet (Inception v1) with batch norm, as torchvision's `googlenet` (6,624,904 parameters for 1,000
/// classes without the auxiliary heads). With `auxiliaryClassifiers`, heads `aux1` (after 4a) and `aux2`
/// (after 4d) run in training mode only; their logits are kept in `auxiliaryLogits` (loss weight 0.3).
public final class GoogLeNet: ModeDependentLayer, AuxiliaryClassifierModel {
    /// Table 1's widths of one Inception module.
    public struct ModuleWidths: Sendable {
        /// #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
        public let oneByOne, threeByThreeReduce, threeByThree, fiveByFiveReduce, fiveByFive, poolProjection: Int
        /// Sum of the four branch outputs.
        public var outputChannels: Int { oneByOne + threeByThree + fiveByFive + poolProjection }
        init(_ values: Int...) {
            (oneByOne, threeByThreeReduce, threeByThree, fiveByFiveReduce, fiveByFive, poolProjection) =
                (values[0], values[1], values[2], values[3], values[4], values[5])
        }
    }

    /// Table 1, modules 3a, 3b, 4a … 4e, 5a, 5b in order; each reads the previous one's output.
    public static let table: [ModuleWidths] = [
        ModuleWidths(64, 96, 128, 16, 32, 32), ModuleWidths(128, 128, 192, 32, 96, 64),
        ModuleWidths(192, 96, 208, 16, 48, 64), ModuleWidths(160, 112, 224, 24, 64, 64),
        ModuleWidths(128, 128, 256, 24, 64, 64), ModuleWidths(112, 144, 288, 32, 64, 64),
        ModuleWidths(256, 160, 320, 32, 128, 128), ModuleWidths(256, 160, 320, 32, 128, 128),
        ModuleWidths(384, 192, 384, 48, 128, 128),
    ]

    /// Stem: 7×7/2 convolution, 1×1 convolution, 3×3 convolution.
    public let conv1: InceptionConvolution, conv2: InceptionConvolution, conv3: InceptionConvolution
    /// Inception modules of Table 1, named as torchvision (`inception3a` … `inception5b`).
    public let inception3a: GoogLeNetInception, inception3b: GoogLeNetInception
    /// Modules 4a–4c (14×14).
    public let inception4a: GoogLeNetInception, inception4b: GoogLeNetInception, inception4c: GoogLeNetInception
    /// Modules 4d–4e (14×14).
    public let inception4d: GoogLeNetInception, inception4e: GoogLeNetInception
    /// Modules 5a–5b (7×7).
    public let inception5a: GoogLeNetInception, inception5b: GoogLeNetInception
    /// Auxiliary heads (nil when built without them).
    public let aux1: GoogLeNetAuxiliary?, aux2: GoogLeNetAuxiliary?
    /// Final classifier.
    public let fc: Linear
    let dropout: Dropout
    /// True in training mode (auxiliary heads and dropout active).
    public var isTraining = true
    /// Auxiliary logits of the latest training-mode forward pass.
    public private(set) var auxiliaryLogits: [Tensor] = []
    /// Auxiliary loss weight, 0.3 as in the paper.
    public var auxiliaryLossWeight: Float { 0.3 }

    /// Creates GoogLeNet; `auxiliaryClassifiers` adds torchvision's `aux1`/`aux2` heads (`aux_logits=True`).
    public init(classCount: Int = 1000, inputChannels: Int = 3, auxiliaryClassifiers: Bool = false, seed: UInt64 = 0) throws {
        let table = Self.table
        func module(_ index: Int) throws -> GoogLeNetInception {
            try GoogLeNetInception(index == 0 ? 192 : table[index - 1].outputChannels, table[index])
        }
        conv1 = try InceptionConvolution(inputChannels, 64, kernelSize: 7, stride: 2, padding: 3)
        conv2 = try InceptionConvolution(64, 64, kernelSize: 1)
        conv3 = try InceptionConvolution(64, 192, kernelSize: 3, padding: 1)
        (inception3a, inception3b) = (try module(0), try module(1))
        (inception4a, inception4b, inception4c) = (try module(2), try module(3), try module(4))
        (inception4d, inception4e) = (try module(5), try module(6))
        (inception5a, inception5b) = (try module(7), try module(8))
        aux1 = auxiliaryClassifiers ? try GoogLeNetAuxiliary(table[2].outputChannels, classCount: classCount, seed: seed &+ 1) : nil
        aux2 = auxiliaryClassifiers ? try GoogLeNetAuxiliary(table[5].outputChannels, classCount: classCount, seed: seed &+ 2) : nil
        fc = try Linear(table[8].outputChannels, classCount)
        dropout = try Dropout(probability: 0.2, seed: seed)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        func pool(_ y: Tensor, kernel: Int = 3) throws -> Tensor {
            try maxPool2d(y, geometry: PoolingGeometry(kernel: [kernel, kernel], stride: [2, 2], ceilMode: true),
                          name: "GoogLeNet.pool")
        }
        var auxiliary: [Tensor] = []
        var y = try pool(conv1(x))
        y = try pool(conv3(conv2(y)))
        y = try pool(inception3b(inception3a(y)))
        y = try inception4a(y)
        if isTraining, let aux1 { auxiliary.append(try aux1(y)) }
        y = try inception4d(inception4c(inception4b(y)))
        if isTraining, let aux2 { auxiliary.append(try aux2(y)) }
        y = try pool(inception4e(y), kernel: 2)
        y = try inception5b(inception5a(y))
        y = try adaptiveAvgPool2d(y, outputSize: [1, 1], name: "GoogLeNet.avgpool").flattened()
        auxiliaryLogits = auxiliary
        return try fc(dropout(y))
    }
}
