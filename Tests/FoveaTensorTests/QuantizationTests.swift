import Foundation
import FoveaTensor
import Testing

/// int8 kernels against the definition of static quantization, computed here directly: the input quantized per tensor
/// (q = round(x / s), nearest even, saturated to u8 0…255 or s8 −128…127 — oneDNN's reorder), the weights per output
/// channel (round(w / s_k) with s_k = max|w_k| / 127), integer sums, scaled by s·s_k, then bias, residual and activation
/// in f32. The only slack is f32 against Double in the final scaling (and, rarely, an input exactly between two steps).
@Suite("int8 static quantization")
struct QuantizationTests {
    static let supported = Precision.int8.isSupported

    /// x quantized with `scale` as the kernels do, as integers in Double.
    static func quantized(_ x: ReferenceArray, scale: Float, unsigned: Bool) -> ReferenceArray {
        let (low, high): (Float, Float) = unsigned ? (0, 255) : (-128, 127)
        return ReferenceArray(shape: x.shape, values: x.values.map { Double(max(low, min(high, (Float($0) * (1 / scale)).rounded(.toNearestOrEven)))) })
    }

    /// Per-output-channel symmetric weights: the integers and the scales.
    static func quantizedWeights(_ w: ReferenceArray) -> (ReferenceArray, [Double]) {
        let channels = w.shape[0], per = w.values.count / channels
        var values = w.values, scales = [Double](repeating: 1, count: channels)
        for k in 0..<channels {
            let largest = w.values[(k * per)..<((k + 1) * per)].reduce(Float(0)) { max($0, abs(Float($1))) }
            let scale = largest > 0 ? largest / 127 : 1
            scales[k] = Double(scale)
            for i in (k * per)..<((k + 1) * per) { values[i] = Double(max(-127, min(127, (Float(w.values[i]) / scale).rounded(.toNearestOrEven)))) }
        }
        return (ReferenceArray(shape: w.shape, values: values), scales)
    }

    @Test("calibration records the input's range; the scale is max/255 for u8 and max|x|/127 for s8; weights are per channel")
    func parameters() throws {
        let quantizer = ActivationQuantizer()
        #expect(quantizer.range == nil && quantizer.scale == nil)
        let x = try Tensor(shape: [1, 2, 2, 2], values: [0.5, -1.5, 3, 2, 0, 1, -0.25, 2.5])
        let w = try Tensor(shape: [2, 2, 1, 1], values: [1, -2, 0.5, 0.25])
        _ = try ActivationQuantizer.calibrate {
            try Autodiff.withoutRecording { try conv2d(x, weight: w, quantizer: quantizer) }
        }
        #expect(quantizer.range == -1.5...3)
        #expect(!quantizer.isUnsigned && quantizer.scale == 3 / 127)
        quantizer.range = 0...5.1
        #expect(quantizer.isUnsigned && quantizer.scale == Float(5.1) / 255)
        quantizer.range = 0...0
        #expect(quantizer.scale == 1)
        // Outside calibration and int8, the quantizer changes nothing: the f32 result.
        let plain = try Autodiff.withoutRecording { try conv2d(x, weight: w, quantizer: quantizer).toArray() }
        #expect(plain == (try Autodiff.withoutRecording { try conv2d(x, weight: w).toArray() }))
    }

    @Test("int8 convolutions equal the quantized arithmetic done directly, and come near the f32 result",
          .enabled(if: supported),
          arguments: [([2, 16, 9, 11], [24, 16, 3, 3], 1, 1, 1, false, Layout.plain, false),
                      ([2, 32, 8, 8], [32, 32, 3, 3], 1, 1, 1, true, .nChw16c, true),
                      ([3, 24, 10, 10], [48, 24, 1, 1], 2, 0, 1, true, .nChw8c, false),
                      ([2, 32, 10, 10], [32, 1, 3, 3], 1, 1, 32, true, .nChw16c, false)])
    func convolution(_ input: [Int], _ weightShape: [Int], _ stride: Int, _ padding: Int, _ groups: Int, _ nonNegative: Bool,
                     _ layout: Layout, _ withResidual: Bool) throws {
        var generator = SeededGenerator(seed: UInt64(input.reduce(0, +) + weightShape[0]))
        var x = randomArray(input, &generator)
        if nonNegative { x = ReferenceArray(shape: x.shape, values: x.values.map { max($0, 0) }) }
        let w = randomArray(weightShape, &generator, scale: 0.2), b = randomArray([weightShape[0]], &generator)
        let geometry = ConvolutionGeometry(stride: [stride, stride], padding: [padding, padding], groups: groups)
        let xt = try Tensor(shape: x.shape, values: x.floats).reordered(to: layout)
        let wt = try Tensor(shape: w.shape, values: w.floats), bt = try Tensor(shape: b.shape, values: b.floats)
        let exact = Reference.conv2d(x, weight: w, bias: b, stride: [stride, stride], padding: [padding, padding],
                                     dilation: [1, 1], groups: groups)
        let residual = randomArray(exact.shape, &generator)
        let rt = try Tensor(shape: residual.shape, values: residual.floats)
        let quantizer = ActivationQuantizer()
        func run() throws -> Tensor {
            try Autodiff.withoutRecording {
                try conv2d(xt, weight: wt, bias: bt, geometry: geometry, residual: withResidual ? rt : nil,
                           activation: withResidual ? .relu : nil, quantizer: quantizer)
            }
        }
        let calibrated = try ActivationQuantizer.calibrate { try run() }.toArray()
        let range = try #require(quantizer.range)
        #expect(abs(Double(range.lowerBound) - x.values.min()!) < 1e-6 && abs(Double(range.upperBound) - x.values.max()!) < 1e-6)
        #expect(quantizer.isUnsigned == nonNegative)
        let outputRange = try #require(quantizer.outputRange)
        #expect(outputRange == calibrated.min()!...calibrated.max()!, "the output range is that of the f32 result")
        let (outputUnsigned, outputStep) = try #require(quantizer.outputQuantization)
        let eightBitOutput = try Precision.run(.int8) { try run() }
        let eightBit = try eightBitOutput.toArray().map { Double($0) }
        quantizer.outputRange = nil
        let y = try Precision.run(.int8) { try run() }
        let scale = try #require(quantizer.scale)
        let (wq, weightScales) = Self.quantizedWeights(w)
        let sums = Reference.conv2d(Self.quantized(x, scale: scale, unsigned: nonNegative), weight: wq, bias: nil,
                                    stride: [stride, stride], padding: [padding, padding], dilation: [1, 1], groups: groups)
        let plane = sums.shape[2] * sums.shape[3], channels = sums.shape[1]
        var expected = sums.values.enumerated().map { i, sum in sum * Double(scale) * weightScales[(i / plane) % channels] + b.values[(i / plane) % channels] }
        var reference = exact.values
        if withResidual {
            expected = zip(expected, residual.values).map { max($0 + $1, 0) }
            reference = zip(reference, residual.values).map { max($0 + $1, 0) }
        }
        let actual = try y.toArray().map(Double.init)
        #expect(relativeError(actual, expected) < 1e-4, "against the quantized arithmetic: \(relativeError(actual, expected))")
        let error = relativeError(actual, reference)
        #expect(error < 3e-2 && error > 1e-4, "against f32: \(error) (quantization should be visible, and small)")
        // With the output range, the output is 8-bit on its scale: every value q·s_o for an integer q of the output's
        // type, the nearest such value to the quantized arithmetic's result (within the f32 slack above, where it falls
        // between two steps). Not with a float32 residual: that output stays float32.
        #expect(outputUnsigned == (calibrated.min()! >= 0))
        if withResidual {
            #expect(eightBit == actual, "a float32 residual keeps the output float32")
        } else {
            Self.expectOnGrid(eightBit, nearest: expected, step: outputStep, unsigned: outputUnsigned)
            #expect(eightBit != actual, "the 8-bit output differs from the float32 one")
        }
    }

    /// Every value of `actual` is q·`step` for an integer q in u8 or s8, the one nearest `expected` (allowing the f32
    /// rounding of a kernel, 1e-4 relative, where `expected` is near the middle of two steps).
    static func expectOnGrid(_ actual: [Double], nearest expected: [Double], step: Float, unsigned: Bool,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        let (low, high): (Double, Double) = unsigned ? (0, 255) : (-128, 127)
        var misses = 0, worst = 0.0
        for (value, wanted) in zip(actual, expected) {
            let q = (value / Double(step)).rounded()
            let onGrid = Double(Float(q) * step) == value && (low...high).contains(q)
            let target = max(low, min(high, wanted / Double(step))) * Double(step)
            let distance = abs(value - target)
            worst = max(worst, distance / Double(step))
            if !onGrid || distance > 0.5 * Double(step) + 1e-4 * abs(wanted) + 1e-7 { misses += 1 }
        }
        #expect(misses == 0, "\(misses) of \(actual.count) values off the nearest step (worst \(worst) steps)",
                sourceLocation: sourceLocation)
    }

    /// One convolution of the chain test: its parameters, its quantizer, and what runs it.
    struct ChainLayer {
        var weight: ReferenceArray, bias: ReferenceArray, groups: Int, padding: Int
        var residual: Int?, activation: Activation?
        let quantizer = ActivationQuantizer()
    }

    @Test("int8 convolutions hand 8-bit outputs on (conv, conv ignoring its own scale, u8 residual, s8, s8 residual into u8, depthwise ReLU6, SiLU in f32), each stage the quantized arithmetic on its actual input",
          .enabled(if: supported))
    func chain() throws {
        var generator = SeededGenerator(seed: 23)
        let x = randomArray([2, 16, 10, 10], &generator)
        func layer(_ k: Int, _ c: Int, _ r: Int, groups: Int = 1, residual: Int? = nil, _ activation: Activation?) -> ChainLayer {
            ChainLayer(weight: randomArray([k, c, r, r], &generator, scale: 0.25), bias: randomArray([k], &generator, scale: 0.2),
                       groups: groups, padding: r / 2, residual: residual, activation: activation)
        }
        // Stage i reads stage i−1's output (stage 0 reads x); `residual: j` adds stage j's output.
        let layers = [layer(32, 16, 3, .relu), layer(32, 32, 3, .relu), layer(32, 32, 3, residual: 0, .relu),
                      layer(32, 32, 1, nil), layer(32, 32, 3, residual: 3, .relu), layer(32, 1, 3, groups: 32, .relu6),
                      layer(16, 32, 1, .silu)]
        let xt = try Tensor(shape: x.shape, values: x.floats)
        let tensors = try layers.map { (try Tensor(shape: $0.weight.shape, values: $0.weight.floats),
                                        try Tensor(shape: $0.bias.shape, values: $0.bias.floats)) }
        func run() throws -> [Tensor] {
            try Autodiff.withoutRecording {
                var outputs: [Tensor] = []
                for (index, layer) in layers.enumerated() {
                    let geometry = ConvolutionGeometry(padding: [layer.padding, layer.padding], groups: layer.groups)
                    outputs.append(try conv2d(index == 0 ? xt : outputs[index - 1], weight: tensors[index].0, bias: tensors[index].1,
                                              geometry: geometry, residual: layer.residual.map { outputs[$0] },
                                              activation: layer.activation, quantizer: layer.quantizer))
                }
                return outputs
            }
        }
        _ = try ActivationQuantizer.calibrate { try run() }
        // The second convolution's own input scale is made wrong: it must read the first one's 8-bit output as it is.
        let ownRange = try #require(layers[1].quantizer.range)
        layers[1].quantizer.range = ownRange.lowerBound...(ownRange.upperBound * 3)
        let outputs = try Precision.run(.int8) { try run() }
        let values = try outputs.map { output in try output.toArray().map { Double($0) } }
        let steps = layers.map(\.quantizer.outputQuantization)
        #expect(steps.map { $0?.unsigned } == [true, true, true, false, true, true, nil], "u8 after ReLU, s8 without; none before SiLU")
        for (index, layer) in layers.enumerated() {
            // The stage's input as integers and their scale: x quantized by the layer, or the previous stage's output.
            let (input, inputScale): (ReferenceArray, Double)
            if index == 0 {
                let scale = try #require(layer.quantizer.scale)
                (input, inputScale) = (Self.quantized(x, scale: scale, unsigned: false), Double(scale))
            } else {
                let step = Double(try #require(steps[index - 1]).scale)
                input = ReferenceArray(shape: outputs[index - 1].shape, values: values[index - 1].map { ($0 / step).rounded() })
                inputScale = step
            }
            let (wq, weightScales) = Self.quantizedWeights(layer.weight)
            let sums = Reference.conv2d(input, weight: wq, bias: nil, stride: [1, 1], padding: [layer.padding, layer.padding],
                                        dilation: [1, 1], groups: layer.groups)
            let plane = sums.shape[2] * sums.shape[3], channels = sums.shape[1]
            var expected = sums.values.enumerated().map { i, sum in
                sum * inputScale * weightScales[(i / plane) % channels] + layer.bias.values[(i / plane) % channels]
            }
            if let residual = layer.residual { expected = zip(expected, values[residual]).map { $0 + $1 } }
            expected = expected.map { value in
                switch layer.activation {
                case .relu?: return max(value, 0)
                case .relu6?: return min(max(value, 0), 6)
                case .silu?: return value / (1 + exp(-value))
                default: return value
                }
            }
            if let step = steps[index], layer.activation != .silu {
                Self.expectOnGrid(values[index], nearest: expected, step: step.scale, unsigned: step.unsigned)
            } else {
                #expect(relativeError(values[index], expected) < 1e-4, "stage \(index) in f32: \(relativeError(values[index], expected))")
            }
        }
    }

    @Test("int8 inner products equal the quantized arithmetic done directly", .enabled(if: supported))
    func innerProduct() throws {
        var generator = SeededGenerator(seed: 11)
        let x = randomArray([6, 40], &generator), w = randomArray([9, 40], &generator, scale: 0.3), b = randomArray([9], &generator)
        let xt = try Tensor(shape: x.shape, values: x.floats), wt = try Tensor(shape: w.shape, values: w.floats)
        let bt = try Tensor(shape: b.shape, values: b.floats)
        let quantizer = ActivationQuantizer()
        _ = try ActivationQuantizer.calibrate { try Autodiff.withoutRecording { try linear(xt, weight: wt, bias: bt, quantizer: quantizer) } }
        let y = try Precision.run(.int8) { try Autodiff.withoutRecording { try linear(xt, weight: wt, bias: bt, quantizer: quantizer) } }
        let scale = try #require(quantizer.scale)
        let xq = Self.quantized(x, scale: scale, unsigned: false), (wq, weightScales) = Self.quantizedWeights(w)
        let sums = Reference.linear(xq, weight: wq, bias: nil).values
        let expected = sums.enumerated().map { i, sum in sum * Double(scale) * weightScales[i % 9] + b.values[i % 9] }
        let actual = try y.toArray().map(Double.init)
        #expect(relativeError(actual, expected) < 1e-4)
        #expect(relativeError(actual, Reference.linear(x, weight: w, bias: b).values) < 3e-2)
    }

    @Test("the int8 peak is oneDNN's u8×s8 matmul rate, a finite positive figure", .enabled(if: supported))
    func peak() throws {
        let peak = try MachinePeak.measureGFLOPs(precision: .int8, size: 256, seconds: 0.05)
        #expect(peak > 0.1 && peak < 10_000_000, "\(peak)")
    }
}
