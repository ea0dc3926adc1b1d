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
        _ = try ActivationQuantizer.calibrate { try run() }
        let range = try #require(quantizer.range)
        #expect(abs(Double(range.lowerBound) - x.values.min()!) < 1e-6 && abs(Double(range.upperBound) - x.values.max()!) < 1e-6)
        #expect(quantizer.isUnsigned == nonNegative)
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
