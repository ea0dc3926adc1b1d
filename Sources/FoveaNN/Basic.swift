import FoveaTensor
import Synchronization

/// Layers in order; state-dict keys are their indices (`features.0.weight`), as nn.Sequential.
public final class Sequential: Layer {
    public let layers: [Layer]
    /// Chains `layers`.
    public init(_ layers: [Layer]) { self.layers = layers }
    public var namedChildren: [(String, Any)] { layers.enumerated().map { ("\($0.offset)", $0.element) } }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try self(x, adding: nil) }

    /// Whether any layer below this chain is in training mode (batch norm with batch statistics, dropout, …). The
    /// mode-dependent layers are found once: a chain's structure never changes, only their modes do.
    public var containsTrainingLayers: Bool {
        modeDependentLayers.withLock { cached in
            if cached == nil { cached = namedLayers().dropFirst().compactMap { $0.1 as? any ModeDependentLayer } }
            return cached!.contains { $0.isTraining }
        }
    }
    private let modeDependentLayers = Mutex<[any ModeDependentLayer]?>(nil)
}

/// (N, C, H, W) → (N, C·H·W).
public final class Flatten: Layer {
    public init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.flattened() }
}

/// Inverted dropout, active only in training mode; draws masks from its own seeded generator.
public final class Dropout: ModeDependentLayer, RandomizedLayer {
    public let probability: Float
    public var isTraining = true
    /// The mask generator (its state belongs in a checkpoint for exact resume).
    public var generator: SeededGenerator
    /// Creates a dropout layer with drop probability `probability`.
    public init(probability: Float = 0.5, seed: UInt64 = 0) throws {
        guard (0..<1).contains(probability) else {
            throw TensorError.invalidArgument(operation: "Dropout", message: "probability \(probability) not in [0, 1)")
        }
        self.probability = probability
        generator = SeededGenerator(seed: seed)
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        isTraining ? try dropout(x, probability: probability, generator: &generator) : x
    }
}

/// An elementwise activation as a layer.
public final class ActivationLayer: Layer {
    public let activation: Activation
    /// Wraps `activation`.
    public init(_ activation: Activation) { self.activation = activation }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try activate(x, activation) }
}

/// ReLU layer.
public func ReLU() -> ActivationLayer { ActivationLayer(.relu) }
/// ReLU6 layer.
public func ReLU6() -> ActivationLayer { ActivationLayer(.relu6) }
/// LeakyReLU layer.
public func LeakyReLU(negativeSlope: Float = 0.01) -> ActivationLayer { ActivationLayer(.leakyRelu(negativeSlope: negativeSlope)) }
/// SiLU (swish) layer.
public func SiLU() -> ActivationLayer { ActivationLayer(.silu) }
/// Sigmoid layer.
public func Sigmoid() -> ActivationLayer { ActivationLayer(.sigmoid) }
/// Tanh layer.
public func Tanh() -> ActivationLayer { ActivationLayer(.tanh) }
/// Hard-swish layer.
public func HardSwish() -> ActivationLayer { ActivationLayer(.hardSwish) }
