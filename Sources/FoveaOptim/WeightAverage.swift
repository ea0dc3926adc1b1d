import FoveaNN
import FoveaTensor

/// An exponential moving average of a model's weights (Polyak averaging as timm's ModelEmaV2 does it):
/// after each step, shadow = decay·shadow + (1 − decay)·value for every parameter and buffer.
/// Evaluating with the averaged weights often generalises better than the raw ones.
public final class WeightAverage {
    /// Weight of the old average at each update (e.g. 0.999).
    public let decay: Float
    /// The averaged tensors by state-dict key.
    public private(set) var shadows: [String: Tensor]

    /// Starts the average at the model's current weights.
    public init(model: Layer, decay: Float) throws {
        guard (0..<1).contains(decay) else {
            throw TensorError.invalidArgument(operation: "WeightAverage", message: "decay \(decay) not in [0, 1)")
        }
        self.decay = decay
        shadows = Dictionary(uniqueKeysWithValues: try model.stateEntries().map { ($0.0, try $0.1.reordered(to: .plain).copy()) })
    }

    /// Folds the model's current weights into the average.
    public func update(from model: Layer) throws {
        for (name, tensor) in model.stateEntries() {
            guard let shadow = shadows[name], shadow.shape == tensor.shape else {
                throw TensorError.shapeMismatch(operation: "WeightAverage \(name)", expected: "\(shadows[name]?.shape ?? [])",
                                                actual: tensor.shape)
            }
            let value = try tensor.reordered(to: .plain)
            let (s, v) = (shadow.storage.pointer, value.storage.pointer)
            let keep = decay
            for i in 0..<shadow.count { s[i] = keep * s[i] + (1 - keep) * v[i] }
            withExtendedLifetime(value) {}
        }
    }

    /// Replaces all averaged tensors (restoring a checkpoint); keys and shapes must match the model's.
    public func restore(_ tensors: [String: Tensor]) throws {
        for (name, shadow) in shadows {
            guard let tensor = tensors[name], tensor.shape == shadow.shape else {
                throw TensorError.invalidArgument(operation: "WeightAverage", message: "saved average lacks \(name) or has another shape")
            }
        }
        shadows = tensors.mapValues { $0.copy() }
    }

    /// Runs `body` with the averaged weights in the model, then puts the trained weights back.
    public func withAveragedWeights<R>(in model: Layer, _ body: () throws -> R) throws -> R {
        var saved: [() -> Void] = []
        for (name, parameter) in model.namedParameters() {
            guard let shadow = shadows[name] else { continue }
            let original = parameter.value
            parameter.value = shadow
            saved.append { parameter.value = original }
        }
        for (name, buffer) in model.namedBuffers() {
            guard let shadow = shadows[name] else { continue }
            let original = buffer.value
            buffer.value = shadow
            saved.append { buffer.value = original }
        }
        defer { for restore in saved { restore() } }
        return try body()
    }
}
