// Pieces shared by several architectures: channel rounding, conv–BN–activation, squeeze-excitation.
import FoveaNN
import FoveaTensor

/// Rounds `value` to the nearest multiple of `divisor` (at least `minimum`), never going below 90 % of
/// `value` — the rule MobileNet and EfficientNet use to keep channel counts hardware-friendly.
public func makeDivisible(_ value: Double, divisor: Int = 8, minimum: Int? = nil) -> Int {
    let floor = minimum ?? divisor
    var rounded = max(floor, Int(value + Double(divisor) / 2) / divisor * divisor)
    if Double(rounded) < 0.9 * value { rounded += divisor }
    return rounded
}

/// Convolution, batch norm, optional activation as one `Sequential` (torchvision's `Conv2dNormActivation`,
/// keys `0.weight`, `1.weight`, `1.running_mean`, …). Padding defaults to "same" for odd kernels.
public func convNormActivation(_ inputChannels: Int, _ outputChannels: Int, kernelSize: Int = 3, stride: Int = 1,
                               padding: Int? = nil, groups: Int = 1, activation: Activation? = .relu,
                               epsilon: Float = 1e-5, momentum: Float = 0.1) throws -> Sequential {
    var layers: [Layer] = [
        try Conv2D(inputChannels, outputChannels, kernelSize: kernelSize, stride: stride,
                   padding: padding ?? (kernelSize - 1) / 2, groups: groups, bias: false),
        try BatchNorm2D(outputChannels, epsilon: epsilon, momentum: momentum),
    ]
    if let activation { layers.append(ActivationLayer(activation)) }
    return Sequential(layers)
}

/// Squeeze-and-excitation — Hu et al. 2018, arXiv:1709.01507, Fig. 2: global average pool, 1×1 conv down,
/// activation, 1×1 conv up, gate, and channel-wise rescaling of the input (keys `fc1.*`, `fc2.*`).
public final class SqueezeExcitation: Layer {
    public let fc1: Conv2D
    public let fc2: Conv2D
    let activation: Activation
    let hardGate: Bool

    /// Creates an SE block squeezing `inputChannels` to `squeezeChannels`; the gate is a sigmoid, or a hard
    /// sigmoid when `hardGate` (MobileNetV3).
    public init(inputChannels: Int, squeezeChannels: Int, activation: Activation = .relu, hardGate: Bool = false) throws {
        fc1 = try Conv2D(inputChannels, squeezeChannels, kernelSize: 1)
        fc2 = try Conv2D(squeezeChannels, inputChannels, kernelSize: 1)
        self.activation = activation
        self.hardGate = hardGate
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let squeezed = try adaptiveAvgPool2d(x, outputSize: [1, 1])
        // In inference the activations run as post-ops of the 1×1 convolutions.
        let hidden = try fc1(squeezed, normalizedBy: nil, activation: activation)
        let gate = try hardGate ? hardSigmoid(fc2(hidden)) : fc2(hidden, normalizedBy: nil, activation: .sigmoid)
        return try multiplyChannels(x, by: gate.reshaped([x.shape[0], x.shape[1], 1, 1]))
    }
}

/// A parameter-free layer made from a function (e.g. a hard sigmoid inside a `Sequential`).
public final class FunctionLayer: Layer {
    let body: (Tensor) throws -> Tensor
    /// Wraps `body`.
    public init(_ body: @escaping (Tensor) throws -> Tensor) { self.body = body }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try body(x) }
}
