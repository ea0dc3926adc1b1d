import FoveaNN
import FoveaTensor

/// An optimizer updates parameters from their accumulated gradients.
public protocol Optimizer: AnyObject {
    /// The parameters it updates.
    var parameters: [Parameter] { get }
    /// The learning rate used by the next `step()`.
    var learningRate: Float { get set }
    /// Per parameter (in `parameters` order): the factor its learning rate is multiplied by — parameter groups with
    /// their own rates, as a fine-tuned head's higher or a discriminatively lowered stage's. All 1 by default.
    var learningRateScales: [Float] { get set }
    /// Applies one update to every parameter that has a gradient.
    func step() throws
    /// Internal state (moment buffers by name, e.g. `momentum.3`, and counters) for checkpoints.
    func state() -> OptimizerState
    /// Restores a state produced by `state()` of an optimizer of the same kind over the same parameters.
    func restore(_ state: OptimizerState) throws
}

/// An optimizer's saved state: tensors by name and integer counters.
public struct OptimizerState {
    public var tensors: [String: Tensor]
    public var counters: [String: Int]
    /// Creates a state.
    public init(tensors: [String: Tensor] = [:], counters: [String: Int] = [:]) {
        (self.tensors, self.counters) = (tensors, counters)
    }

    /// Collects per-parameter slots (`slot.index`) that exist.
    static func collect(_ slots: [String: [Tensor?]]) -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        for (slot, values) in slots {
            for (index, value) in values.enumerated() { if let value { tensors["\(slot).\(index)"] = value.copy() } }
        }
        return tensors
    }

    /// The saved tensor for `slot` of parameter `index`, checked against the parameter's shape.
    func tensor(_ slot: String, _ index: Int, shape: [Int]) throws -> Tensor? {
        guard let tensor = tensors["\(slot).\(index)"] else { return nil }
        guard tensor.shape == shape else {
            throw TensorError.shapeMismatch(operation: "optimizer state \(slot).\(index)", expected: "\(shape)", actual: tensor.shape)
        }
        return tensor.copy()
    }
}

extension Optimizer {
    /// Clears all gradients.
    public func zeroGrad() { for parameter in parameters { parameter.grad = nil } }

    /// Sets the learning-rate factor of `group` (the parameters of a head or a stage) to `scale`; parameters of the
    /// group this optimizer does not update are ignored.
    public func setLearningRateScale(_ scale: Float, for group: [Parameter]) {
        let members = Set(group.map(ObjectIdentifier.init))
        for (index, parameter) in parameters.enumerated() where members.contains(ObjectIdentifier(parameter)) {
            learningRateScales[index] = scale
        }
    }
}

/// Which parameters receive weight decay: all, or all but biases and normalisation scales/shifts
/// (every parameter with fewer than two dimensions), as timm's `--opt` recipes do.
public enum WeightDecayPolicy: String, Sendable, CaseIterable {
    case all
    case excludeBiasAndNormalization = "exclude-bias-norm"

    /// One flag per parameter: true where decay applies.
    public func mask(for parameters: [Parameter]) -> [Bool] {
        switch self {
        case .all: return parameters.map { _ in true }
        case .excludeBiasAndNormalization: return parameters.map { $0.value.shape.count >= 2 }
        }
    }
}

/// Stochastic gradient descent with momentum, Nesterov momentum and coupled (L2) weight decay,
/// with PyTorch's update rule: d = g + λw; b = μb + d (b = d at first); d = nesterov ? d + μb : b; w −= η·d.
public final class SGD: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Float
    public let momentum: Float
    public let weightDecay: Float
    public let nesterov: Bool
    /// Per parameter: whether weight decay applies.
    public let decayMask: [Bool]
    /// Momentum buffers, one per parameter (nil until its first update).
    public private(set) var momentumBuffers: [Tensor?]
    public var learningRateScales: [Float]

    /// Creates the optimizer over `parameters`.
    public init(parameters: [Parameter], learningRate: Float, momentum: Float = 0, weightDecay: Float = 0,
                nesterov: Bool = false, weightDecayPolicy: WeightDecayPolicy = .all) throws {
        guard learningRate >= 0, momentum >= 0, weightDecay >= 0, !(nesterov && momentum == 0) else {
            throw TensorError.invalidArgument(operation: "SGD", message:
                "learning rate \(learningRate), momentum \(momentum), weight decay \(weightDecay), nesterov \(nesterov) are not valid")
        }
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        decayMask = weightDecayPolicy.mask(for: parameters)
        momentumBuffers = Array(repeating: nil, count: parameters.count)
        learningRateScales = Array(repeating: 1, count: parameters.count)
    }

    public func state() -> OptimizerState { OptimizerState(tensors: OptimizerState.collect(["momentum": momentumBuffers])) }

    public func restore(_ state: OptimizerState) throws {
        momentumBuffers = try parameters.enumerated().map { try state.tensor("momentum", $0.offset, shape: $0.element.value.shape) }
    }

    public func step() throws {
        for (index, parameter) in parameters.enumerated() {
            guard let grad = parameter.grad else { continue }
            defer { parameter.markModified() }
            let gradient = try grad.reordered(to: .plain)
            let count = parameter.value.count
            let w = parameter.value.storage.pointer, g = gradient.storage.pointer
            let (lr, mu, decay) = (learningRate * learningRateScales[index], momentum, decayMask[index] ? weightDecay : 0)
            if mu == 0 {
                for i in 0..<count { w[i] -= lr * (g[i] + decay * w[i]) }
                continue
            }
            if momentumBuffers[index] == nil {
                let buffer = Tensor.zeros(parameter.value.shape)
                let b = buffer.storage.pointer
                for i in 0..<count { b[i] = g[i] + decay * w[i] }
                momentumBuffers[index] = buffer
                for i in 0..<count { w[i] -= lr * (nesterov ? (g[i] + decay * w[i]) + mu * b[i] : b[i]) }
                continue
            }
            guard let buffer = momentumBuffers[index] else { continue }
            let b = buffer.storage.pointer
            for i in 0..<count {
                let d = g[i] + decay * w[i]
                b[i] = mu * b[i] + d
                w[i] -= lr * (nesterov ? d + mu * b[i] : b[i])
            }
            withExtendedLifetime((gradient, buffer)) {}
        }
    }
}
