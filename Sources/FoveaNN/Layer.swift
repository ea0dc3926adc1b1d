import Foundation
import Synchronization
import FoveaTensor

/// A building block of a network: maps a tensor to a tensor and owns parameters, buffers and sub-layers
/// as stored properties, which `namedParameters()`, `namedBuffers()` and `train()`/`eval()` find by reflection.
public protocol Layer: AnyObject {
    /// Applies the layer. Throws `TensorError` naming the layer when the input shape does not fit.
    func callAsFunction(_ x: Tensor) throws -> Tensor
    /// State-dict names for children whose key differs from the property name (e.g. `runningMean` → `running_mean`).
    var stateKeys: [String: String] { get }
    /// The direct children (parameters, buffers, layers) with their state-dict names, in declaration order.
    var namedChildren: [(String, Any)] { get }
}

/// A layer whose behaviour differs between training and evaluation (batch norm, dropout).
public protocol ModeDependentLayer: Layer {
    /// True in training mode.
    var isTraining: Bool { get set }
}

extension Layer {
    public var stateKeys: [String: String] { [:] }

    public var namedChildren: [(String, Any)] {
        var children: [(String, Any)] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        var levels: [Mirror] = []
        while let current = mirror { levels.append(current); mirror = current.superclassMirror }
        for level in levels.reversed() {
            for child in level.children {
                guard let label = child.label else { continue }
                let name = stateKeys[label] ?? label
                if let array = child.value as? [Layer] {
                    for (index, layer) in array.enumerated() { children.append(("\(name).\(index)", layer)) }
                } else if let value = unwrapOptional(child.value), value is Parameter || value is Buffer || value is Layer {
                    children.append((name, value))
                }
            }
        }
        return children
    }

    /// Every trainable parameter with its torchvision-style dotted key (`layer1.0.conv1.weight`).
    public func namedParameters() -> [(String, Parameter)] {
        walk().compactMap { name, value in (value as? Parameter).map { (name, $0) } }
    }

    /// This layer and every layer below it with its dotted path ("" for this one).
    public func namedLayers() -> [(String, Layer)] {
        var result: [(String, Layer)] = []
        var stack: [(String, Layer)] = [("", self)]
        while let (prefix, layer) = stack.popLast() {
            result.append((prefix, layer))
            for (name, child) in layer.namedChildren.reversed() {
                if let child = child as? Layer { stack.append((prefix.isEmpty ? name : prefix + "." + name, child)) }
            }
        }
        return result
    }

    /// Every trainable parameter, in `namedParameters()` order.
    public func parameters() -> [Parameter] { namedParameters().map(\.1) }

    /// Every buffer (saved, never trained) with its dotted key (`bn1.running_mean`).
    public func namedBuffers() -> [(String, Buffer)] {
        walk().compactMap { name, value in (value as? Buffer).map { (name, $0) } }
    }

    /// Parameters and buffers together, as a state dict would hold them.
    public func stateEntries() -> [(String, Tensor)] {
        walk().compactMap { name, value in
            if let parameter = value as? Parameter { return (name, parameter.value) }
            if let buffer = value as? Buffer { return (name, buffer.value) }
            return nil
        }
    }

    /// Number of trainable scalars.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.value.count } }

    /// Puts this layer and all sub-layers in training mode.
    public func train() { setMode(training: true) }

    /// Puts this layer and all sub-layers in evaluation mode (running statistics, no dropout).
    public func eval() { setMode(training: false) }

    private func setMode(training: Bool) {
        if let layer = self as? any ModeDependentLayer { layer.isTraining = training }
        for (_, child) in namedChildren { (child as? Layer)?.setMode(training: training) }
    }

    /// Depth-first (name, value) pairs of all parameters, buffers and layers below this one.
    /// Iterative, so very deep networks (ResNet-1202) cannot overflow the stack.
    private func walk() -> [(String, Any)] {
        var result: [(String, Any)] = []
        var stack: [(String, Any)] = [("", self)]
        while let (prefix, value) = stack.popLast() {
            if let layer = value as? Layer {
                for (name, child) in layer.namedChildren.reversed() {
                    stack.append((prefix.isEmpty ? name : prefix + "." + name, child))
                }
            } else {
                result.append((prefix, value))
            }
        }
        return result
    }
}

private func unwrapOptional(_ value: Any) -> Any? {
    let mirror = Mirror(reflecting: value)
    guard mirror.displayStyle == .optional else { return value }
    return mirror.children.first?.value
}

/// A trainable tensor with its accumulated gradient.
///
/// Layers in evaluation mode keep copies prepared from their parameters (a convolution's weights with batch norm folded
/// in, already in the kernel's format) and reuse them while `version` is unchanged. Assigning `value` bumps the version;
/// code that writes into `value`'s storage in place (the optimizers do) must call `markModified()` afterwards.
public final class Parameter {
    /// Current value (plain layout).
    public var value: Tensor { didSet { version = ParameterVersion.next() } }
    /// Changes whenever `value` is assigned or `markModified()` is called; unique across all parameters and buffers.
    public private(set) var version = ParameterVersion.next()
    /// Records that `value`'s contents were changed in place, so prepared copies are rebuilt.
    public func markModified() { version = ParameterVersion.next() }
    /// Gradient accumulated by `backward()` since the last `zeroGrad()`; `nil` when none.
    public var grad: Tensor?

    /// A frozen parameter is used as a constant: it joins no tape, so it receives no gradient, and the optimizers
    /// (which skip parameters without a gradient) keep no state for it and do not change it.
    public var isFrozen = false

    /// Wraps an initial value.
    public init(_ value: Tensor) { self.value = value }

    /// The value as a tape leaf: gradients that reach it are added into `grad`. A frozen parameter's plain value.
    public var tracked: Tensor {
        if isFrozen { return value }
        let observer = GradientObservation.current
        if Autodiff.isRecording { observer?.parameterUsed(self) }
        return value.trackingGradient { [unowned self] gradient in
            let plain = try gradient.reordered(to: .plain)
            if let existing = grad { grad = try existing + plain } else { grad = plain }
            try observer?.gradientAccumulated(self)
        }
    }
}

/// Watches parameters join the tape and their gradients arrive, so that work on a gradient (data-parallel
/// training's allreduce) can start as soon as it is final, while the backward pass goes on.
public protocol GradientObserver: AnyObject {
    /// `parameter` was read as a tape leaf (once per use in the forward pass).
    func parameterUsed(_ parameter: Parameter)
    /// One use's gradient was added into `parameter.grad`; it is final once every use's has arrived.
    func gradientAccumulated(_ parameter: Parameter) throws
}

/// The gradient observer of the current thread.
public enum GradientObservation {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The observer installed on this thread by `observing(_:_:)`, if any.
    public static var current: GradientObserver? {
        pthread_getspecific(key).map { Unmanaged<AnyObject>.fromOpaque($0).takeUnretainedValue() as? GradientObserver } ?? nil
    }

    /// Runs `body` (a forward and backward pass) with `observer` told of every tracked parameter and gradient.
    public static func observing<R>(_ observer: GradientObserver, _ body: () throws -> R) rethrows -> R {
        let saved = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(observer as AnyObject).toOpaque())
        defer { pthread_setspecific(key, saved) }
        return try body()
    }
}

/// A tensor saved with the model but never trained (batch-norm running statistics).
public final class Buffer {
    /// Current value.
    public var value: Tensor { didSet { version = ParameterVersion.next() } }
    /// Changes whenever `value` is assigned or `markModified()` is called (see `Parameter.version`).
    public private(set) var version = ParameterVersion.next()
    /// Records that `value`'s contents were changed in place, so prepared copies are rebuilt.
    public func markModified() { version = ParameterVersion.next() }
    /// Wraps an initial value.
    public init(_ value: Tensor) { self.value = value }
}

/// A model with auxiliary classifier heads that are active in training only (GoogLeNet, Inception v3).
/// During a training-mode forward pass it stores their logits; `trainStep` adds
/// `auxiliaryLossWeight` × their cross-entropy to the main loss, as torchvision's reference recipe does.
public protocol AuxiliaryClassifierModel: Layer {
    /// Logits of the auxiliary heads from the latest training-mode forward pass (empty in evaluation mode).
    var auxiliaryLogits: [Tensor] { get }
    /// Weight of each auxiliary loss (0.3 for GoogLeNet, 0.4 for Inception v3).
    var auxiliaryLossWeight: Float { get }
}

/// A layer that draws random numbers while training (dropout, stochastic depth). Its generator state is
/// saved in checkpoints so a resumed run draws exactly what an uninterrupted one would.
public protocol RandomizedLayer: Layer {
    /// The layer's generator.
    var generator: SeededGenerator { get set }
}

/// The source of `Parameter.version` and `Buffer.version`: a process-wide counter, so a version never repeats.
enum ParameterVersion {
    private static let counter = Atomic<Int>(0)
    static func next() -> Int { counter.add(1, ordering: .relaxed).newValue }
}
