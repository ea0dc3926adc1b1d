import FoveaTensor

/// 2-D max pooling layer.
public final class MaxPool2D: Layer {
    public let geometry: PoolingGeometry
    /// Creates a max pool; `stride` defaults to the kernel size.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false) {
        geometry = PoolingGeometry(kernel: [kernelSize, kernelSize], stride: stride.map { [$0, $0] },
                                   padding: [padding, padding], ceilMode: ceilMode)
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try maxPool2d(x, geometry: geometry, name: "MaxPool2D") }
}

/// 2-D average pooling layer.
public final class AvgPool2D: Layer {
    public let geometry: PoolingGeometry
    public let countIncludePad: Bool
    /// Creates an average pool; `stride` defaults to the kernel size.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false, countIncludePad: Bool = true) {
        geometry = PoolingGeometry(kernel: [kernelSize, kernelSize], stride: stride.map { [$0, $0] },
                                   padding: [padding, padding], ceilMode: ceilMode)
        self.countIncludePad = countIncludePad
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try avgPool2d(x, geometry: geometry, countIncludePad: countIncludePad, name: "AvgPool2D")
    }
}

/// Adaptive average pooling to a fixed output size ([1, 1] is global average pooling).
public final class AdaptiveAvgPool2D: Layer {
    public let outputSize: [Int]
    /// Creates an adaptive pool to `outputSize` [height, width].
    public init(outputSize: [Int] = [1, 1]) { self.outputSize = outputSize }
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try adaptiveAvgPool2d(x, outputSize: outputSize, name: "AdaptiveAvgPool2D")
    }
}
