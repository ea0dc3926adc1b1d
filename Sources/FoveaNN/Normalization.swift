import FoveaTensor

/// Batch normalisation over channels (Ioffe & Szegedy 2015) with running statistics, as torch.nn.BatchNorm2d.
public final class BatchNorm2D: ModeDependentLayer {
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Buffer
    public let runningVariance: Buffer
    public let batchesTracked: Buffer
    public let epsilon: Float
    /// Weight of the newest batch in the running statistics (PyTorch's `momentum`).
    public let momentum: Float
    public var isTraining = true
    /// Synchronised batch norm (data-parallel training's --sync-batch-norm): adds an array over all replicas, so that
    /// training-mode statistics are those of every replica's batch together (see `batchNormTrainingSynchronized`).
    /// nil: this batch's statistics alone.
    public var synchronization: (([Double]) throws -> [Double])?

    public var stateKeys: [String: String] {
        ["runningMean": "running_mean", "runningVariance": "running_var", "batchesTracked": "num_batches_tracked"]
    }

    /// Creates a batch norm with scale 1, shift 0, running mean 0 and running variance 1.
    public init(_ features: Int, epsilon: Float = 1e-5, momentum: Float = 0.1) throws {
        guard features > 0 else { throw TensorError.invalidArgument(operation: "BatchNorm2D", message: "features must be positive") }
        weight = Parameter(Tensor(repeating: 1, shape: [features]))
        bias = Parameter(Tensor(repeating: 0, shape: [features]))
        runningMean = Buffer(Tensor(repeating: 0, shape: [features]))
        runningVariance = Buffer(Tensor(repeating: 1, shape: [features]))
        batchesTracked = Buffer(Tensor(repeating: 0, shape: []))
        self.epsilon = epsilon
        self.momentum = momentum
    }

    /// A batch norm over existing parameters and statistics (an imported graph's initializers), each of shape (C).
    public init(weight: Parameter, bias: Parameter, runningMean: Buffer, runningVariance: Buffer, epsilon: Float,
                momentum: Float) throws {
        let count = weight.value.count
        guard count > 0, [bias.value.shape, runningMean.value.shape, runningVariance.value.shape].allSatisfy({ $0 == [count] }),
              weight.value.shape == [count] else {
            throw TensorError.invalidArgument(operation: "BatchNorm2D", message: "scale, shift, mean and variance must all be (C)")
        }
        (self.weight, self.bias, self.runningMean, self.runningVariance) = (weight, bias, runningMean, runningVariance)
        batchesTracked = Buffer(Tensor(repeating: 0, shape: []))
        (self.epsilon, self.momentum) = (epsilon, momentum)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try self(x, fusingReLU: false) }

    /// The batch norm of `x`, followed by a ReLU when `fusingReLU`; in training mode the two run as one oneDNN
    /// primitive (forward and backward).
    public func callAsFunction(_ x: Tensor, fusingReLU: Bool) throws -> Tensor {
        let name = "BatchNorm2D(\(weight.value.count))"
        guard x.shape.count == 4, x.shape[1] == weight.value.count else {
            throw TensorError.shapeMismatch(operation: name, expected: "(N, \(weight.value.count), H, W)", actual: x.shape)
        }
        guard isTraining else {
            let y = try batchNormInference(x, scale: weight.tracked, shift: bias.tracked, mean: runningMean.value,
                                           variance: runningVariance.value, epsilon: epsilon, name: name)
            return fusingReLU ? try relu(y) : y
        }
        let result: BatchNormOutput
        if let synchronization {
            var synchronized = try batchNormTrainingSynchronized(x, scale: weight.tracked, shift: bias.tracked, epsilon: epsilon,
                                                                 name: name, sum: synchronization)
            if fusingReLU { synchronized.output = try relu(synchronized.output) }
            result = synchronized
        } else {
            result = try batchNormTraining(x, scale: weight.tracked, shift: bias.tracked, epsilon: epsilon,
                                           fusingReLU: fusingReLU, name: name)
        }
        // PyTorch updates running variance with the unbiased batch variance.
        let n = Float(result.count)
        let correction = n > 1 ? n / (n - 1) : 1
        let mean = runningMean.value.copy(), variance = runningVariance.value.copy()
        for c in 0..<result.mean.count {
            mean.storage.pointer[c] = (1 - momentum) * mean.storage.pointer[c] + momentum * result.mean[c]
            variance.storage.pointer[c] = (1 - momentum) * variance.storage.pointer[c] + momentum * result.variance[c] * correction
        }
        runningMean.value = mean
        runningVariance.value = variance
        batchesTracked.value = Tensor(scalar: batchesTracked.value.scalarValue + 1)
        return result.output
    }
}

/// Local response normalisation across channels (AlexNet), as torch.nn.LocalResponseNorm.
public final class LocalResponseNorm: Layer {
    public let size: Int, alpha: Float, beta: Float, k: Float
    /// Creates an LRN over `size` neighbouring channels.
    public init(size: Int, alpha: Float = 1e-4, beta: Float = 0.75, k: Float = 1) {
        (self.size, self.alpha, self.beta, self.k) = (size, alpha, beta, k)
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try localResponseNorm(x, size: size, alpha: alpha, beta: beta, k: k, name: "LocalResponseNorm(\(size))")
    }
}
