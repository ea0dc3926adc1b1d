import FoveaTensor

/// 2-D convolution layer: weight (out, in/groups, kh, kw), optional bias (out).
public final class Conv2D: ModeDependentLayer {
    public let weight: Parameter
    public let bias: Parameter?
    /// Stride, padding, dilation and groups.
    public let geometry: ConvolutionGeometry
    /// Weights prepared for inference (batch norm folded in, kernel format), reused while the parameters' versions
    /// stay the same.
    let prepared = PreparedWeights()
    /// The calibrated range of the input, for int8 inference (`Precision.int8`); empty until calibrated.
    public let inputQuantizer = ActivationQuantizer()
    /// In training mode the inference copies are dropped (they would be stale after the next step anyway).
    public var isTraining = true { didSet { if isTraining { prepared.reset() } } }

    /// Creates a convolution with PyTorch's default initialisation unless `initializer` says otherwise.
    public init(inputChannels: Int, outputChannels: Int, kernelSize: [Int], stride: [Int] = [1, 1], padding: [Int] = [0, 0],
                dilation: [Int] = [1, 1], groups: Int = 1, bias: Bool = true,
                initializer: Initializer = .pytorchDefault) throws {
        guard inputChannels > 0, outputChannels > 0, groups > 0, inputChannels % groups == 0, outputChannels % groups == 0,
              kernelSize.count == 2, kernelSize.allSatisfy({ $0 > 0 }) else {
            throw TensorError.invalidArgument(operation: "Conv2D",
                message: "in \(inputChannels), out \(outputChannels), kernel \(kernelSize), groups \(groups) do not fit")
        }
        let shape = [outputChannels, inputChannels / groups] + kernelSize
        weight = Parameter(Initialization.make(shape, initializer))
        self.bias = bias ? Parameter(Initialization.bias(count: outputChannels, fanIn: shape[1...].reduce(1, *))) : nil
        geometry = ConvolutionGeometry(stride: stride, padding: padding, dilation: dilation, groups: groups)
    }

    /// A convolution over existing parameters (an imported graph's initializers): weight (out, in/groups, kh, kw),
    /// bias (out) or none.
    public init(weight: Parameter, bias: Parameter?, geometry: ConvolutionGeometry) throws {
        let shape = weight.value.shape
        guard shape.count == 4, shape.allSatisfy({ $0 > 0 }), geometry.groups > 0, shape[0] % geometry.groups == 0,
              bias.map({ $0.value.shape == [shape[0]] }) ?? true else {
            throw TensorError.invalidArgument(operation: "Conv2D",
                message: "weight \(shape), bias \(bias?.value.shape ?? []), groups \(geometry.groups) do not fit")
        }
        (self.weight, self.bias, self.geometry) = (weight, bias, geometry)
    }

    /// Square-kernel convenience initialiser.
    public convenience init(_ inputChannels: Int, _ outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true,
                            initializer: Initializer = .pytorchDefault) throws {
        try self.init(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: [kernelSize, kernelSize],
                      stride: [stride, stride], padding: [padding, padding], dilation: [dilation, dilation], groups: groups,
                      bias: bias, initializer: initializer)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        if !isTraining && !Autodiff.isRecording && KernelFusion.isEnabled { return try self(x, normalizedBy: nil) }
        inputQuantizer.weightsAre([weight.version, bias?.version ?? -1])
        return try conv2d(x, weight: weight.tracked, bias: bias?.tracked, geometry: geometry, quantizer: inputQuantizer,
                   name: "Conv2D(\(weight.value.shape[1] * geometry.groups)→\(weight.value.shape[0]))")
    }
}

/// Fully connected layer: weight (out, in), optional bias (out). Flattens 4-D inputs first.
public final class Linear: Layer {
    public let weight: Parameter
    public let bias: Parameter?
    /// The calibrated range of the input, for int8 inference (`Precision.int8`); empty until calibrated.
    public let inputQuantizer = ActivationQuantizer()
    /// Where `features(of:)` collects the (N, in) input of one linear layer (the classifier head) while it runs the
    /// model: task-local rather than a stored property, so reflection over the layer (state dicts) never meets it.
    public final class InputCapture: @unchecked Sendable {
        /// The layer whose input is kept.
        public let layer: ObjectIdentifier
        /// Its input on the latest call.
        public var input: Tensor?
        /// Captures the input of `layer`.
        public init(_ layer: Linear) { self.layer = ObjectIdentifier(layer) }
    }
    /// The capture in effect, if any (see `InputCapture`).
    @TaskLocal public static var capture: InputCapture?

    /// Creates a linear layer with PyTorch's default initialisation unless `initializer` says otherwise.
    public init(_ inputFeatures: Int, _ outputFeatures: Int, bias: Bool = true, initializer: Initializer = .pytorchDefault) throws {
        guard inputFeatures > 0, outputFeatures > 0 else {
            throw TensorError.invalidArgument(operation: "Linear", message: "sizes \(inputFeatures)→\(outputFeatures) must be positive")
        }
        weight = Parameter(Initialization.make([outputFeatures, inputFeatures], initializer))
        self.bias = bias ? Parameter(Initialization.bias(count: outputFeatures, fanIn: inputFeatures)) : nil
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let x = x.shape.count == 2 ? x : try x.flattened()
        if let capture = Linear.capture, capture.layer == ObjectIdentifier(self) { capture.input = x }
        inputQuantizer.weightsAre([weight.version, bias?.version ?? -1])
        return try linear(x, weight: weight.tracked, bias: bias?.tracked, quantizer: inputQuantizer,
                   name: "Linear(\(weight.value.shape[1])→\(weight.value.shape[0]))")
    }
}
