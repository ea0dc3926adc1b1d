import FoveaNN
import FoveaOptim
import FoveaTensor
import Testing

/// Inference fusion must give what the layers give one by one: convolution, batch norm (running statistics),
/// residual addition and activation as separate oneDNN primitives.
@Suite("Inference fusion")
struct FusionTests {
    /// A batch norm in evaluation mode with non-trivial statistics and affine parameters.
    static func batchNorm(_ channels: Int, _ generator: inout SeededGenerator) throws -> BatchNorm2D {
        let norm = try BatchNorm2D(channels)
        func values(_ f: (inout SeededGenerator) -> Float) throws -> Tensor {
            try Tensor(shape: [channels], values: (0..<channels).map { _ in f(&generator) })
        }
        norm.weight.value = try values { 0.5 + Float($0.nextDouble()) }
        norm.bias.value = try values { Float($0.nextNormal()) * 0.3 }
        norm.runningMean.value = try values { Float($0.nextNormal()) * 0.2 }
        norm.runningVariance.value = try values { 0.3 + Float($0.nextDouble()) }
        norm.isTraining = false
        return norm
    }

    static func random(_ shape: [Int], _ generator: inout SeededGenerator) throws -> Tensor {
        try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) })
    }

    static func relativeError(_ a: Tensor, _ b: Tensor) throws -> Float {
        let (x, y) = (try a.toArray(), try b.toArray())
        let scale = max(y.map(abs).max() ?? 0, 1e-6)
        return zip(x, y).map { abs($0 - $1) }.max()! / scale
    }

    @Test("conv → batch norm → (+ residual) → activation, fused, equals the separate layers",
          arguments: [(Activation?.none, false), (.relu, true), (.relu6, false), (.silu, true), (.hardSwish, false),
                      (.none, true), (.relu, false)])
    func convolutionBatchNorm(_ activation: Activation?, _ withResidual: Bool) throws {
        var generator = SeededGenerator(seed: 7)
        for (channels, out, groups, stride, bias) in [(3, 16, 1, 1, false), (16, 16, 16, 2, false), (8, 24, 1, 2, true)] {
            Initialization.seed(3)
            let conv = try Conv2D(channels, out, kernelSize: 3, stride: stride, padding: 1, groups: groups, bias: bias)
            let norm = try Self.batchNorm(out, &generator)
            let x = try Self.random([2, channels, 9, 11], &generator)
            let outputSize = [2, out, (9 - 1) / stride + 1, (11 - 1) / stride + 1]
            let residual = withResidual ? try Self.random(outputSize, &generator) : nil
            try Autodiff.withoutRecording {
                var separate = try norm(conv(x))
                if let residual { separate = try separate + residual }
                if let activation { separate = try activate(separate, activation) }
                let fused = try conv(x, normalizedBy: norm, adding: residual, activation: activation)
                #expect(fused.shape == separate.shape)
                #expect(try Self.relativeError(fused, separate) < 1e-5, "\(channels)→\(out) groups \(groups) \(String(describing: activation))")
            }
        }
    }

    @Test("a Sequential in inference (fused runs, residual fused into its last convolution) equals the layers one by one")
    func sequential() throws {
        var generator = SeededGenerator(seed: 11)
        Initialization.seed(5)
        let chain = Sequential([
            try Conv2D(8, 32, kernelSize: 1, bias: false), try Self.batchNorm(32, &generator), ActivationLayer(.relu6),
            try Conv2D(32, 32, kernelSize: 3, padding: 1, groups: 32, bias: false), try Self.batchNorm(32, &generator),
            ActivationLayer(.relu6),
            try Conv2D(32, 8, kernelSize: 1, bias: false), try Self.batchNorm(8, &generator),
        ])
        let x = try Self.random([3, 8, 7, 7], &generator)
        try Autodiff.withoutRecording {
            var separate = x
            for layer in chain.layers { separate = try layer(separate) }
            #expect(try Self.relativeError(chain(x), separate) < 1e-5)
            #expect(try Self.relativeError(chain(x, adding: x), separate + x) < 1e-5)
        }
    }

    /// conv → batch norm in evaluation mode computed in double precision from the layers' current values.
    static func reference(_ x: Tensor, _ conv: Conv2D, _ norm: BatchNorm2D) throws -> Tensor {
        let array = { (t: Tensor) throws -> ReferenceArray in ReferenceArray(shape: t.shape, floats: try t.toArray()) }
        let g = conv.geometry
        let y = Reference.conv2d(try array(x), weight: try array(conv.weight.value), bias: try conv.bias.map { try array($0.value) },
                                 stride: g.stride, padding: g.padding, dilation: g.dilation, groups: g.groups)
        let z = Reference.batchNormInference(y, scale: try array(norm.weight.value), shift: try array(norm.bias.value),
                                             runningMean: try array(norm.runningMean.value).values,
                                             runningVariance: try array(norm.runningVariance.value).values,
                                             epsilon: Double(norm.epsilon))
        return try Tensor(shape: z.shape, values: z.floats)
    }

    @Test("weights prepared for inference (folded, kernel format, Winograd for 64→64 3×3) follow every change of the parameters",
          arguments: [(64, 64, 3), (16, 24, 3), (64, 96, 1)])
    func preparedWeightsFollowChanges(_ channels: Int, _ out: Int, _ kernel: Int) throws {
        var generator = SeededGenerator(seed: 17)
        Initialization.seed(4)
        let conv = try Conv2D(channels, out, kernelSize: kernel, padding: kernel / 2, bias: true)
        let norm = try Self.batchNorm(out, &generator)
        let model = Sequential([conv, norm])
        model.eval()
        let x = try Self.random([2, channels, 10, 9], &generator)
        func check(_ what: String) throws -> [Float] {
            let fused = try Autodiff.withoutRecording { try model(x) }
            let error = try Self.relativeError(fused, Self.reference(x, conv, norm))
            #expect(error < 1e-4, "\(channels)→\(out) \(kernel)×\(kernel) after \(what): relative error \(error)")
            return try fused.toArray()
        }
        let first = try check("the first call")
        let repeated = try check("a second call (prepared copies reused)") == first
        #expect(repeated, "a second call must give the same output")
        // An optimizer step writes the weights in place.
        conv.weight.grad = try Self.random(conv.weight.value.shape, &generator)
        conv.bias?.grad = try Self.random([out], &generator)
        let optimizer = try SGD(parameters: [conv.weight, conv.bias!], learningRate: 0.1, momentum: 0.9)
        try optimizer.step()
        let stepped = try check("an SGD step")
        let changed = stepped != first
        #expect(changed, "the step must change the output")
        // New running statistics, assigned as a training forward pass does.
        norm.runningMean.value = try Self.random([out], &generator)
        _ = try check("new running statistics")
        // An in-place write announced with markModified().
        norm.weight.value.storage.pointer[0] += 1
        norm.weight.markModified()
        _ = try check("an in-place write to the batch norm's scale")
        // A round trip through training mode.
        model.train()
        model.eval()
        _ = try check("train() then eval()")
    }

    @Test("while the tape records, the same call runs the layers separately and is differentiable")
    func training() throws {
        var generator = SeededGenerator(seed: 13)
        Initialization.seed(9)
        let conv = try Conv2D(4, 6, kernelSize: 3, padding: 1, bias: false)
        let norm = try Self.batchNorm(6, &generator)
        norm.isTraining = true
        let x = try Self.random([2, 4, 5, 5], &generator)
        let residual = try Self.random([2, 6, 5, 5], &generator)
        let y = try conv(x, normalizedBy: norm, adding: residual, activation: .relu)
        try y.sum().backward()
        #expect(conv.weight.grad != nil && norm.weight.grad != nil)
    }
}

@Suite("Training fusion")
struct TrainingFusionTests {
    @Test("batch norm + ReLU as one primitive: same output, running statistics and gradients as the two layers",
          arguments: [[4, 16, 6, 5], [3, 5, 7, 7], [6, 8, 1, 1]])
    func batchNormReLU(_ shape: [Int]) throws {
        var generator = SeededGenerator(seed: 21)
        let input = try FusionTests.random(shape, &generator)
        let upstream = try FusionTests.random(shape, &generator)
        var results: [(output: [Float], input: [Float], scale: [Float], shift: [Float], mean: [Float])] = []
        for fused in [false, true] {
            let norm = try FusionTests.batchNorm(shape[1], &generator)
            norm.weight.value = try Tensor(shape: [shape[1]], values: (0..<shape[1]).map { 0.5 + Float($0) / 10 })
            norm.bias.value = try Tensor(shape: [shape[1]], values: (0..<shape[1]).map { Float($0 % 3) * 0.2 - 0.2 })
            norm.runningMean.value = Tensor.zeros([shape[1]])
            norm.isTraining = true
            var inputGradient: Tensor?
            let tracked = input.trackingGradient { inputGradient = try $0.reordered(to: .plain) }
            let y = fused ? try norm(tracked, fusingReLU: true) : try relu(norm(tracked))
            try y.backward(seed: upstream)
            results.append((try y.toArray(), try #require(inputGradient).toArray(), try #require(norm.weight.grad).toArray(),
                            try #require(norm.bias.grad).toArray(), try norm.runningMean.value.toArray()))
        }
        func close(_ a: [Float], _ b: [Float]) -> Bool {
            let scale = max(b.map(abs).max() ?? 0, 1e-6)
            return zip(a, b).allSatisfy { abs($0 - $1) / scale < 1e-5 }
        }
        #expect(results[0].output.contains { $0 == 0 } && results[0].output.contains { $0 > 0 }, "the ReLU must cut somewhere")
        #expect(close(results[1].output, results[0].output))
        #expect(close(results[1].input, results[0].input))
        #expect(close(results[1].scale, results[0].scale))
        #expect(close(results[1].shift, results[0].shift))
        #expect(close(results[1].mean, results[0].mean))
    }

    @Test("ReLU → max pooling in a training chain (run as max pooling → ReLU): same output and gradients as the two in order",
          arguments: [(kernel: 2, stride: 2, padding: 0), (kernel: 3, stride: 2, padding: 1)])
    func reluThenMaxPooling(_ pooling: (kernel: Int, stride: Int, padding: Int)) throws {
        // Values from {−2, …, 2}: windows whose maximum is ≤ 0, and ties.
        let shape = [3, 8, 9, 9]
        var generator = SeededGenerator(seed: 22)
        let input = try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(generator.next() % 5) - 2 })
            .reordered(to: .nChw8c)
        let pool = MaxPool2D(kernelSize: pooling.kernel, stride: pooling.stride, padding: pooling.padding)
        let chain = Sequential([ReLU(), pool])
        var results: [(output: [Float], gradient: [Float])] = []
        for viaChain in [true, false] {
            var inputGradient: Tensor?
            let tracked = input.trackingGradient { inputGradient = try $0.reordered(to: .plain) }
            let y = viaChain ? try chain(tracked) : try maxPool2d(relu(tracked), geometry: pool.geometry)
            var upstreamGenerator = SeededGenerator(seed: 23)
            let upstream = try FusionTests.random(y.shape, &upstreamGenerator)
            try y.backward(seed: upstream)
            results.append((try y.toArray(), try #require(inputGradient).toArray()))
        }
        #expect(results[1].output.contains(0) && results[1].output.contains { $0 > 0 }, "some windows must have a maximum ≤ 0")
        #expect(results[0].output == results[1].output)
        #expect(results[0].gradient == results[1].gradient)
        #expect(results[1].gradient.contains { $0 != 0 })
    }
}
