// Inception v3 — Szegedy et al. 2015, "Rethinking the Inception Architecture for Computer Vision",
// arXiv:1512.00567, Figs. 5–7 and 10, Table 1. Built from `InceptionConvolution` (GoogLeNet.swift).
import Foundation
import FoveaNN
import FoveaTensor

/// Inception v3 module A (Fig. 5, the 35×35 grid): 1×1, 1×1→5×5, 1×1→3×3→3×3, 3×3 avg pool→1×1.
public final class InceptionA: Layer {
    /// 1×1; 1×1→5×5; 1×1→3×3→3×3; pool projection (`Step` n is torchvision's `_n`).
    public let branch1x1, branch5x5Step1, branch5x5Step2, branch3x3DoubleStep1, branch3x3DoubleStep2, branch3x3DoubleStep3,
        branchPool: InceptionConvolution

    /// Creates the module; `poolChannels` is the width of the pool branch.
    public init(_ inputChannels: Int, poolChannels: Int) throws {
        branch1x1 = try InceptionConvolution(inputChannels, 64, kernelSize: 1)
        branch5x5Step1 = try InceptionConvolution(inputChannels, 48, kernelSize: 1)
        branch5x5Step2 = try InceptionConvolution(48, 64, kernelSize: 5, padding: 2)
        branch3x3DoubleStep1 = try InceptionConvolution(inputChannels, 64, kernelSize: 1)
        branch3x3DoubleStep2 = try InceptionConvolution(64, 96, kernelSize: 3, padding: 1)
        branch3x3DoubleStep3 = try InceptionConvolution(96, 96, kernelSize: 3, padding: 1)
        branchPool = try InceptionConvolution(inputChannels, poolChannels, kernelSize: 1)
    }

    /// Maps Swift property names to torchvision's keys (`branch3x3DoubleStep1` → `branch3x3dbl_1`).
    public var stateKeys: [String: String] { torchvisionBranchKeys(self) }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try concatenateChannels([branch1x1(x), branch5x5Step2(branch5x5Step1(x)),
                                 branch3x3DoubleStep3(branch3x3DoubleStep2(branch3x3DoubleStep1(x))), branchPool(averagePool3x3(x))],
                                name: "InceptionA")
    }
}

/// Grid reduction 35×35 → 17×17 (Fig. 10): stride-2 3×3, 1×1→3×3→stride-2 3×3, stride-2 max pool.
public final class InceptionB: Layer {
    /// Stride-2 3×3; 1×1→3×3→stride-2 3×3.
    public let branch3x3, branch3x3DoubleStep1, branch3x3DoubleStep2, branch3x3DoubleStep3: InceptionConvolution

    /// Creates the reduction.
    public init(_ inputChannels: Int) throws {
        branch3x3 = try InceptionConvolution(inputChannels, 384, kernelSize: 3, stride: 2)
        branch3x3DoubleStep1 = try InceptionConvolution(inputChannels, 64, kernelSize: 1)
        branch3x3DoubleStep2 = try InceptionConvolution(64, 96, kernelSize: 3, padding: 1)
        branch3x3DoubleStep3 = try InceptionConvolution(96, 96, kernelSize: 3, stride: 2)
    }

    /// Maps Swift property names to torchvision's keys (`branch3x3DoubleStep1` → `branch3x3dbl_1`).
    public var stateKeys: [String: String] { torchvisionBranchKeys(self) }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try concatenateChannels([branch3x3(x), branch3x3DoubleStep3(branch3x3DoubleStep2(branch3x3DoubleStep1(x))), maxPool3x3Stride2(x)],
                                name: "InceptionB")
    }
}

/// Inception v3 module C (Fig. 6, the 17×17 grid): 7×7 convolutions factorised into 1×7 and 7×1.
public final class InceptionC: Layer {
    /// 1×1; 1×1→1×7→7×1.
    public let branch1x1, branch7x7Step1, branch7x7Step2, branch7x7Step3: InceptionConvolution
    /// 1×1→7×1→1×7→7×1→1×7.
    public let branch7x7DoubleStep1, branch7x7DoubleStep2, branch7x7DoubleStep3, branch7x7DoubleStep4, branch7x7DoubleStep5: InceptionConvolution
    /// Projection after the 3×3 average pool.
    public let branchPool: InceptionConvolution

    /// Creates the module; `channels7x7` is the width inside the factorised branches.
    public init(_ inputChannels: Int, channels7x7 c: Int) throws {
        let row = (kernel: (1, 7), padding: (0, 3)), column = (kernel: (7, 1), padding: (3, 0))
        branch1x1 = try InceptionConvolution(inputChannels, 192, kernelSize: 1)
        branch7x7Step1 = try InceptionConvolution(inputChannels, c, kernelSize: 1)
        branch7x7Step2 = try InceptionConvolution(c, c, kernel: row.kernel, padding: row.padding)
        branch7x7Step3 = try InceptionConvolution(c, 192, kernel: column.kernel, padding: column.padding)
        branch7x7DoubleStep1 = try InceptionConvolution(inputChannels, c, kernelSize: 1)
        branch7x7DoubleStep2 = try InceptionConvolution(c, c, kernel: column.kernel, padding: column.padding)
        branch7x7DoubleStep3 = try InceptionConvolution(c, c, kernel: row.kernel, padding: row.padding)
        branch7x7DoubleStep4 = try InceptionConvolution(c, c, kernel: column.kernel, padding: column.padding)
        branch7x7DoubleStep5 = try InceptionConvolution(c, 192, kernel: row.kernel, padding: row.padding)
        branchPool = try InceptionConvolution(inputChannels, 192, kernelSize: 1)
    }

    /// Maps Swift property names to torchvision's keys (`branch3x3DoubleStep1` → `branch3x3dbl_1`).
    public var stateKeys: [String: String] { torchvisionBranchKeys(self) }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let double = try branch7x7DoubleStep5(branch7x7DoubleStep4(branch7x7DoubleStep3(branch7x7DoubleStep2(branch7x7DoubleStep1(x)))))
        return try concatenateChannels([branch1x1(x), branch7x7Step3(branch7x7Step2(branch7x7Step1(x))), double,
                                        branchPool(averagePool3x3(x))], name: "InceptionC")
    }
}

/// Grid reduction 17×17 → 8×8: 1×1→stride-2 3×3, 1×1→1×7→7×1→stride-2 3×3, stride-2 max pool.
public final class InceptionD: Layer {
    /// 1×1→stride-2 3×3; 1×1→1×7→7×1→stride-2 3×3.
    public let branch3x3Step1, branch3x3Step2, branch7x7x3Step1, branch7x7x3Step2, branch7x7x3Step3, branch7x7x3Step4: InceptionConvolution

    /// Creates the reduction.
    public init(_ inputChannels: Int) throws {
        branch3x3Step1 = try InceptionConvolution(inputChannels, 192, kernelSize: 1)
        branch3x3Step2 = try InceptionConvolution(192, 320, kernelSize: 3, stride: 2)
        branch7x7x3Step1 = try InceptionConvolution(inputChannels, 192, kernelSize: 1)
        branch7x7x3Step2 = try InceptionConvolution(192, 192, kernel: (1, 7), padding: (0, 3))
        branch7x7x3Step3 = try InceptionConvolution(192, 192, kernel: (7, 1), padding: (3, 0))
        branch7x7x3Step4 = try InceptionConvolution(192, 192, kernelSize: 3, stride: 2)
    }

    /// Maps Swift property names to torchvision's keys (`branch3x3DoubleStep1` → `branch3x3dbl_1`).
    public var stateKeys: [String: String] { torchvisionBranchKeys(self) }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try concatenateChannels([branch3x3Step2(branch3x3Step1(x)),
                                 branch7x7x3Step4(branch7x7x3Step3(branch7x7x3Step2(branch7x7x3Step1(x)))), maxPool3x3Stride2(x)],
                                name: "InceptionD")
    }
}

/// Inception v3 module E (Fig. 7, the 8×8 grid): 3×3 convolutions split into parallel 1×3 and 3×1.
public final class InceptionE: Layer {
    /// 1×1; 1×1 then parallel 1×3 and 3×1.
    public let branch1x1, branch3x3Step1, branch3x3Step2a, branch3x3Step2b: InceptionConvolution
    /// 1×1→3×3 then parallel 1×3 and 3×1; pool projection.
    public let branch3x3DoubleStep1, branch3x3DoubleStep2, branch3x3DoubleStep3a, branch3x3DoubleStep3b, branchPool: InceptionConvolution

    /// Creates the module.
    public init(_ inputChannels: Int) throws {
        branch1x1 = try InceptionConvolution(inputChannels, 320, kernelSize: 1)
        branch3x3Step1 = try InceptionConvolution(inputChannels, 384, kernelSize: 1)
        branch3x3Step2a = try InceptionConvolution(384, 384, kernel: (1, 3), padding: (0, 1))
        branch3x3Step2b = try InceptionConvolution(384, 384, kernel: (3, 1), padding: (1, 0))
        branch3x3DoubleStep1 = try InceptionConvolution(inputChannels, 448, kernelSize: 1)
        branch3x3DoubleStep2 = try InceptionConvolution(448, 384, kernelSize: 3, padding: 1)
        branch3x3DoubleStep3a = try InceptionConvolution(384, 384, kernel: (1, 3), padding: (0, 1))
        branch3x3DoubleStep3b = try InceptionConvolution(384, 384, kernel: (3, 1), padding: (1, 0))
        branchPool = try InceptionConvolution(inputChannels, 192, kernelSize: 1)
    }

    /// Maps Swift property names to torchvision's keys (`branch3x3DoubleStep1` → `branch3x3dbl_1`).
    public var stateKeys: [String: String] { torchvisionBranchKeys(self) }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let single = try branch3x3Step1(x), double = try branch3x3DoubleStep2(branch3x3DoubleStep1(x))
        return try concatenateChannels([branch1x1(x), branch3x3Step2a(single), branch3x3Step2b(single),
                                        branch3x3DoubleStep3a(double), branch3x3DoubleStep3b(double), branchPool(averagePool3x3(x))],
                                       name: "InceptionE")
    }
}

/// Inception v3's auxiliary classifier on the 17×17 grid: 5×5/3 average pool, 1×1 to 128, 5×5 to 768, FC.
public final class InceptionAuxiliary: Layer {
    /// 1×1 reduction to 128 and 5×5 convolution to 768.
    public let conv0: InceptionConvolution, conv1: InceptionConvolution
    /// Final classifier.
    public let fc: Linear

    /// Creates the head reading `inputChannels` feature maps.
    public init(_ inputChannels: Int, classCount: Int) throws {
        conv0 = try InceptionConvolution(inputChannels, 128, kernelSize: 1)
        conv1 = try InceptionConvolution(128, 768, kernelSize: 5)
        fc = try Linear(768, classCount)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let pooled = try avgPool2d(x, geometry: PoolingGeometry(kernel: [5, 5], stride: [3, 3]), name: "InceptionAuxiliary.pool")
        return try fc(adaptiveAvgPool2d(conv1(conv0(pooled)), outputSize: [1, 1]).flattened())
    }
}

/// Inception v3 as torchvision's `inception_v3` (27,161,264 parameters for 1,000 classes, the auxiliary head
/// `AuxLogits` included; input 299×299, at least 75×75). Properties are named in Swift style and mapped to
/// torchvision's keys (`mixed5b` → `Mixed_5b`, `conv1a` → `Conv2d_1a_3x3`). The auxiliary head runs in training mode only (loss weight 0.4), and only when the
/// 17×17 grid is at least 17×17 (inputs ≥ 299): below that its 5×5 convolution has nothing to convolve.
public final class InceptionV3: ModeDependentLayer, AuxiliaryClassifierModel {
    /// Stem convolutions (torchvision's `Conv2d_1a_3x3` … `Conv2d_4a_3x3`).
    public let conv1a, conv2a, conv2b, conv3b, conv4a: InceptionConvolution
    /// 35×35 modules (`Mixed_5b` … `Mixed_5d`).
    public let mixed5b: InceptionA, mixed5c: InceptionA, mixed5d: InceptionA
    /// Reduction to 17×17.
    public let mixed6a: InceptionB
    /// 17×17 modules.
    public let mixed6b: InceptionC, mixed6c: InceptionC, mixed6d: InceptionC, mixed6e: InceptionC
    /// The auxiliary head on mixed6e's output.
    public let auxiliary: InceptionAuxiliary
    /// Reduction to 8×8.
    public let mixed7a: InceptionD
    /// 8×8 modules.
    public let mixed7b: InceptionE, mixed7c: InceptionE
    /// Final classifier.
    public let fc: Linear
    let dropout: Dropout
    /// True in training mode (auxiliary heads and dropout active).
    public var isTraining = true
    /// Auxiliary logits of the latest training-mode forward pass.
    public private(set) var auxiliaryLogits: [Tensor] = []
    /// Auxiliary loss weight, 0.4 as torchvision's reference recipe.
    public var auxiliaryLossWeight: Float { 0.4 }

    /// Creates Inception v3 for `classCount` classes.
    public init(classCount: Int = 1000, inputChannels: Int = 3, seed: UInt64 = 0) throws {
        conv1a = try InceptionConvolution(inputChannels, 32, kernelSize: 3, stride: 2)
        conv2a = try InceptionConvolution(32, 32, kernelSize: 3)
        conv2b = try InceptionConvolution(32, 64, kernelSize: 3, padding: 1)
        conv3b = try InceptionConvolution(64, 80, kernelSize: 1)
        conv4a = try InceptionConvolution(80, 192, kernelSize: 3)
        mixed5b = try InceptionA(192, poolChannels: 32)
        mixed5c = try InceptionA(256, poolChannels: 64)
        mixed5d = try InceptionA(288, poolChannels: 64)
        mixed6a = try InceptionB(288)
        mixed6b = try InceptionC(768, channels7x7: 128)
        mixed6c = try InceptionC(768, channels7x7: 160)
        mixed6d = try InceptionC(768, channels7x7: 160)
        mixed6e = try InceptionC(768, channels7x7: 192)
        auxiliary = try InceptionAuxiliary(768, classCount: classCount)
        mixed7a = try InceptionD(768)
        mixed7b = try InceptionE(1280)
        mixed7c = try InceptionE(2048)
        fc = try Linear(2048, classCount)
        dropout = try Dropout(probability: 0.5, seed: seed)
    }

    /// torchvision's names for the stem, the mixed blocks and the auxiliary head.
    public var stateKeys: [String: String] {
        var keys = ["conv1a": "Conv2d_1a_3x3", "conv2a": "Conv2d_2a_3x3", "conv2b": "Conv2d_2b_3x3", "conv3b": "Conv2d_3b_1x1",
                    "conv4a": "Conv2d_4a_3x3", "auxiliary": "AuxLogits"]
        for block in ["5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"] { keys["mixed" + block] = "Mixed_" + block }
        return keys
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = try maxPool3x3Stride2(conv2b(conv2a(conv1a(x))))
        y = try maxPool3x3Stride2(conv4a(conv3b(y)))
        y = try mixed6a(mixed5d(mixed5c(mixed5b(y))))
        y = try mixed6e(mixed6d(mixed6c(mixed6b(y))))
        auxiliaryLogits = isTraining && y.shape[2] >= 17 && y.shape[3] >= 17 ? [try auxiliary(y)] : []
        y = try mixed7c(mixed7b(mixed7a(y)))
        y = try adaptiveAvgPool2d(y, outputSize: [1, 1], name: "InceptionV3.avgpool").flattened()
        return try fc(dropout(y))
    }
}

/// torchvision's key for each property of an Inception v3 module: `branch3x3DoubleStep1` → `branch3x3dbl_1`,
/// `branch7x7Step2` → `branch7x7_2`, `branchPool` → `branch_pool`.
private func torchvisionBranchKeys(_ layer: Layer) -> [String: String] {
    var keys: [String: String] = [:]
    for label in Mirror(reflecting: layer).children.compactMap(\.label) {
        keys[label] = label == "branchPool" ? "branch_pool"
            : label.replacingOccurrences(of: "Double", with: "dbl").replacingOccurrences(of: "Step", with: "_")
    }
    return keys
}

/// 3×3 average pool, stride 1, padding 1 (padding counted in the divisor, as F.avg_pool2d's default).
private func averagePool3x3(_ x: Tensor) throws -> Tensor {
    try avgPool2d(x, geometry: PoolingGeometry(kernel: [3, 3], stride: [1, 1], padding: [1, 1]), name: "Inception.avgPool")
}

/// 3×3 max pool, stride 2, no padding.
private func maxPool3x3Stride2(_ x: Tensor) throws -> Tensor {
    try maxPool2d(x, geometry: PoolingGeometry(kernel: [3, 3], stride: [2, 2]), name: "Inception.maxPool")
}

extension ModelZoo {
    static let inceptionEntries: [Entry] = [
        // Registered without the auxiliary heads (torchvision's aux_logits=False count, and the layout of its
        // published weights); GoogLeNet(auxiliaryClassifiers: true) gives the training-time heads.
        Entry(name: "googlenet", family: "Inception", inputSize: [3, 224, 224]) {
            try GoogLeNet(classCount: $0, inputChannels: $1)
        },
        Entry(name: "inception_v3", family: "Inception", inputSize: [3, 299, 299], smallInputSize: [3, 75, 75]) {
            try InceptionV3(classCount: $0, inputChannels: $1)
        },
    ]
}
