import FoveaNN
import FoveaTensor

/// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), with PyTorch's update rule:
/// m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²; w −= η·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε).
/// Adam adds λw to the gradient (coupled L2); AdamW first shrinks w by ηλw (decoupled).
public final class Adam: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Float
    public let beta1: Float, beta2: Float, epsilon: Float
    public let weightDecay: Float
    /// True for AdamW's decoupled weight decay.
    public let decoupled: Bool
    public let decayMask: [Bool]
    /// Number of `step()` calls made.
    public private(set) var stepCount = 0
    /// Per parameter: the updates it received (t in its bias corrections, as PyTorch keeps it per parameter), so a
    /// parameter unfrozen late starts its corrections at one.
    public private(set) var parameterSteps: [Int]
    /// First and second moment estimates, one pair per parameter.
    public private(set) var moments: [(first: Tensor, second: Tensor)?]
    public var learningRateScales: [Float]

    /// Creates Adam (`decoupled == false`) or AdamW (`decoupled == true`).
    public init(parameters: [Parameter], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0, decoupled: Bool = false,
                weightDecayPolicy: WeightDecayPolicy = .all) throws {
        guard learningRate >= 0, (0..<1).contains(beta1), (0..<1).contains(beta2), epsilon >= 0, weightDecay >= 0 else {
            throw TensorError.invalidArgument(operation: decoupled ? "AdamW" : "Adam", message:
                "learning rate \(learningRate), betas (\(beta1), \(beta2)), epsilon \(epsilon), weight decay \(weightDecay) are not valid")
        }
        self.parameters = parameters
        (self.learningRate, self.beta1, self.beta2, self.epsilon) = (learningRate, beta1, beta2, epsilon)
        (self.weightDecay, self.decoupled) = (weightDecay, decoupled)
        decayMask = weightDecayPolicy.mask(for: parameters)
        moments = Array(repeating: nil, count: parameters.count)
        parameterSteps = Array(repeating: 0, count: parameters.count)
        learningRateScales = Array(repeating: 1, count: parameters.count)
    }

    public func state() -> OptimizerState {
        var counters = ["step": stepCount]
        for (index, steps) in parameterSteps.enumerated() where steps > 0 { counters["step.\(index)"] = steps }
        return OptimizerState(tensors: OptimizerState.collect(["first": moments.map { $0?.first }, "second": moments.map { $0?.second }]),
                              counters: counters)
    }

    public func restore(_ state: OptimizerState) throws {
        moments = try parameters.enumerated().map { index, parameter in
            let shape = parameter.value.shape
            guard let first = try state.tensor("first", index, shape: shape),
                  let second = try state.tensor("second", index, shape: shape) else { return nil }
            return (first, second)
        }
        stepCount = state.counters["step"] ?? 0
        // Checkpoints from before per-parameter counts: every parameter with moments took every step.
        parameterSteps = moments.indices.map { index in
            moments[index] == nil ? 0 : state.counters["step.\(index)"] ?? stepCount
        }
    }

    public func step() throws {
        stepCount += 1
        for (index, parameter) in parameters.enumerated() {
            guard let grad = parameter.grad else { continue }
            defer { parameter.markModified() }
            parameterSteps[index] += 1
            let t = Float(parameterSteps[index])
            let correction1 = 1 - powf(beta1, t), correction2 = 1 - powf(beta2, t)
            let gradient = try grad.reordered(to: .plain)
            if moments[index] == nil {
                moments[index] = (Tensor.zeros(parameter.value.shape), Tensor.zeros(parameter.value.shape))
            }
            guard let (first, second) = moments[index] else { continue }
            let (w, g, m, v) = (parameter.value.storage.pointer, gradient.storage.pointer, first.storage.pointer,
                                second.storage.pointer)
            let decay = decayMask[index] ? weightDecay : 0
            let (lr, b1, b2, eps) = (learningRate * learningRateScales[index], beta1, beta2, epsilon)
            for i in 0..<parameter.value.count {
                var d = g[i]
                if decoupled { w[i] -= lr * decay * w[i] } else { d += decay * w[i] }
                m[i] = b1 * m[i] + (1 - b1) * d
                v[i] = b2 * v[i] + (1 - b2) * d * d
                w[i] -= lr * (m[i] / correction1) / ((v[i] / correction2).squareRoot() + eps)
            }
            withExtendedLifetime(gradient) {}
        }
    }
}

/// RMSprop (Hinton's lecture 6e) with PyTorch's rule: v = αv + (1−α)g²; with momentum μ,
/// b = μb + g/(√v + ε) and w −= ηb, else w −= ηg/(√v + ε). `tensorFlowStyle` puts ε inside the square root and
/// starts v at one, as TensorFlow's RMSprop does (the variant EfficientNet was trained with; timm's RMSpropTF).
public final class RMSprop: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Float
    public let alpha: Float, epsilon: Float, momentum: Float, weightDecay: Float
    public let tensorFlowStyle: Bool
    public let decayMask: [Bool]
    /// Square averages and momentum buffers, one pair per parameter.
    public private(set) var slots: [(squareAverage: Tensor, momentum: Tensor)?]
    public var learningRateScales: [Float]

    /// Creates the optimizer.
    public init(parameters: [Parameter], learningRate: Float = 1e-2, alpha: Float = 0.99, epsilon: Float = 1e-8,
                momentum: Float = 0, weightDecay: Float = 0, tensorFlowStyle: Bool = false,
                weightDecayPolicy: WeightDecayPolicy = .all) throws {
        guard learningRate >= 0, (0..<1).contains(alpha), epsilon >= 0, momentum >= 0, weightDecay >= 0 else {
            throw TensorError.invalidArgument(operation: "RMSprop", message:
                "learning rate \(learningRate), alpha \(alpha), epsilon \(epsilon), momentum \(momentum) are not valid")
        }
        self.parameters = parameters
        (self.learningRate, self.alpha, self.epsilon, self.momentum) = (learningRate, alpha, epsilon, momentum)
        (self.weightDecay, self.tensorFlowStyle) = (weightDecay, tensorFlowStyle)
        decayMask = weightDecayPolicy.mask(for: parameters)
        slots = Array(repeating: nil, count: parameters.count)
        learningRateScales = Array(repeating: 1, count: parameters.count)
    }

    public func state() -> OptimizerState {
        OptimizerState(tensors: OptimizerState.collect(["square": slots.map { $0?.squareAverage },
                                                        "momentum": slots.map { $0?.momentum }]))
    }

    public func restore(_ saved: OptimizerState) throws {
        slots = try parameters.enumerated().map { index, parameter in
            let shape = parameter.value.shape
            guard let square = try saved.tensor("square", index, shape: shape),
                  let momentum = try saved.tensor("momentum", index, shape: shape) else { return nil }
            return (square, momentum)
        }
    }

    public func step() throws {
        for (index, parameter) in parameters.enumerated() {
            guard let grad = parameter.grad else { continue }
            defer { parameter.markModified() }
            let gradient = try grad.reordered(to: .plain)
            if slots[index] == nil {
                slots[index] = (Tensor(repeating: tensorFlowStyle ? 1 : 0, shape: parameter.value.shape),
                                Tensor.zeros(parameter.value.shape))
            }
            guard let (square, buffer) = slots[index] else { continue }
            let (w, g, v, b) = (parameter.value.storage.pointer, gradient.storage.pointer, square.storage.pointer,
                                buffer.storage.pointer)
            let decay = decayMask[index] ? weightDecay : 0
            let (lr, a, eps, mu, inside) = (learningRate * learningRateScales[index], alpha, epsilon, momentum, tensorFlowStyle)
            for i in 0..<parameter.value.count {
                let d = g[i] + decay * w[i]
                v[i] = a * v[i] + (1 - a) * d * d
                let denominator = inside ? (v[i] + eps).squareRoot() : v[i].squareRoot() + eps
                if mu > 0 {
                    b[i] = mu * b[i] + d / denominator
                    w[i] -= lr * b[i]
                } else {
                    w[i] -= lr * d / denominator
                }
            }
            withExtendedLifetime(gradient) {}
        }
    }
}

/// Scales all gradients so that their global L2 norm is at most `maximumNorm` (PyTorch's clip_grad_norm_,
/// factor maximumNorm/(norm + 1e-6)). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maximumNorm: Float) throws -> Float {
    var total = 0.0
    for parameter in parameters {
        guard let grad = parameter.grad else { continue }
        try grad.withPlainElements { values in for value in values { total += Double(value) * Double(value) } }
    }
    let norm = Float(total.squareRoot())
    guard norm.isFinite, norm > maximumNorm else { return norm }
    let factor = maximumNorm / (norm + 1e-6)
    for parameter in parameters { parameter.grad = parameter.grad?.scaled(by: factor) }
    return norm
}

#if canImport(Glibc)
import Glibc
#endif
