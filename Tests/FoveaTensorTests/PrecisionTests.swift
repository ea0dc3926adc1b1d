import Foundation
import CFoveaKernels
import FoveaTensor
import Testing

/// bfloat16 keeps float32's 8 exponent bits and the top 7 of its 23 mantissa bits: rounding to nearest (ties to even)
/// is off by at most 2⁻⁹ of the value. A product of two rounded operands is then off by at most about 2⁻⁸ of |a·b|, and
/// a sum of K such products accumulated in float32 adds at most K·2⁻²⁴ of Σ|a·b|. The tests hold the bf16 kernels to
/// that bound element by element, and — sharper — to float32 arithmetic on operands rounded to bf16 beforehand: what
/// mixed precision means (bf16 multiplications, f32 accumulation, f32 results).
@Suite("bfloat16 mixed precision")
struct PrecisionTests {
    static let supported = Precision.bf16.isSupported

    /// `x` rounded to the nearest bfloat16 (ties to even), as a Float.
    static func bfloat16(_ x: Double) -> Double {
        let bits = Float(x).bitPattern
        return Double(Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000))
    }

    static func rounded(_ a: ReferenceArray) -> ReferenceArray {
        ReferenceArray(shape: a.shape, values: a.values.map(bfloat16))
    }

    static func absolute(_ a: ReferenceArray) -> ReferenceArray { ReferenceArray(shape: a.shape, values: a.values.map(abs)) }

    /// Every |actual − exact| within (2⁻⁸ + K·2⁻²⁴) · magnitude, the bound of bf16 products summed in f32 (with room
    /// for the f32 rounding of the result itself).
    static func withinFormatBound(_ actual: [Double], _ exact: [Double], magnitude: [Double], terms: Int) -> Bool {
        let factor = pow(2, -8) + Double(terms) * pow(2, -24)
        return zip(zip(actual, exact), magnitude).allSatisfy { pair, m in abs(pair.0 - pair.1) <= factor * m + 1e-6 * abs(pair.1) }
    }

    @Test("the precision in force is per thread and restored after run; fp32 outside")
    func scoping() async throws {
        #expect(Precision.current == .fp32)
        Precision.run(.bf16) {
            #expect(Precision.current == .bf16)
            Precision.run(.fp32) { #expect(Precision.current == .fp32) }
            #expect(Precision.current == .bf16)
            let other = Thread { #expect(Precision.current == .fp32) }
            other.start()
            while !other.isFinished { usleep(1000) }
        }
        #expect(Precision.current == .fp32)
        #expect(Precision.fp32.isSupported && Precision.fp32.resolved().warning == nil)
        let (chosen, warning) = Precision.bf16.resolved()
        #expect(chosen == (Precision.bf16.isSupported ? .bf16 : .fp32))
        #expect((warning == nil) == Precision.bf16.isSupported)
    }

    /// Shapes: a 3×3 padded convolution (a Winograd shape in f32), a strided one, a 1×1, a depthwise one (which stays f32
    /// by design: memory-bound, no matrix unit helps it); input in plain and blocked layouts.
    @Test("convolutions in bf16: output equals f32 arithmetic on bf16-rounded operands, within the format's bound of the exact one",
          .enabled(if: supported),
          arguments: [([2, 32, 9, 11], [32, 32, 3, 3], 1, 1, 1, Layout.plain), ([3, 16, 12, 12], [24, 16, 3, 3], 2, 1, 1, .nChw16c),
                      ([2, 40, 7, 7], [48, 40, 1, 1], 1, 0, 1, .nChw8c), ([2, 32, 10, 10], [32, 1, 5, 5], 1, 2, 32, .nChw16c)])
    func convolutionForward(_ input: [Int], _ weightShape: [Int], _ stride: Int, _ padding: Int, _ groups: Int,
                            _ layout: Layout) throws {
        var generator = SeededGenerator(seed: UInt64(input.reduce(0, +) * 7 + groups))
        let x = randomArray(input, &generator), w = randomArray(weightShape, &generator, scale: 0.2)
        let b = randomArray([weightShape[0]], &generator)
        let geometry = ConvolutionGeometry(stride: [stride, stride], padding: [padding, padding], groups: groups)
        let xt = try Tensor(shape: x.shape, values: x.floats).reordered(to: layout)
        let wt = try Tensor(shape: w.shape, values: w.floats), bt = try Tensor(shape: b.shape, values: b.floats)
        let y = try Precision.run(.bf16) { try Autodiff.withoutRecording { try conv2d(xt, weight: wt, bias: bt, geometry: geometry) } }
        let actual = try y.toArray().map(Double.init)
        func reference(_ x: ReferenceArray, _ w: ReferenceArray, _ b: ReferenceArray?) -> [Double] {
            Reference.conv2d(x, weight: w, bias: b, stride: [stride, stride], padding: [padding, padding], dilation: [1, 1],
                             groups: groups).values
        }
        let exact = reference(x, w, b)
        if groups == input[1] && weightShape[1] == 1 {
            #expect(relativeError(actual, exact) < 1e-5, "a depthwise convolution stays f32: \(relativeError(actual, exact))")
            return
        }
        let onRounded = reference(Self.rounded(x), Self.rounded(w), b)
        let magnitude = reference(Self.absolute(x), Self.absolute(w), nil)
        // In inference the result is stored as bf16 (as autocast does): every value is a bfloat16, the f32 sum on rounded
        // operands rounded once more — to the nearest bf16 or, where the f32 sums of kernel and reference straddle a
        // rounding boundary, its neighbour: within 2⁻⁸ of the value.
        #expect(actual.allSatisfy { Float($0).bitPattern & 0xFFFF == 0 }, "the inference output is not bfloat16")
        #expect(zip(actual, onRounded).allSatisfy { abs($0 - $1) <= pow(2, -8) * abs($1) + 1e-6 },
                "against f32 arithmetic on rounded operands, rounded to bf16: \(relativeError(actual, onRounded))")
        #expect(relativeError(actual, onRounded.map(Self.bfloat16)) < 1e-3)
        // The output's own rounding adds 2⁻⁹·|y| ≤ 2⁻⁹·Σ|a·b|: half the products' bound again.
        #expect(Self.withinFormatBound(actual, exact, magnitude: magnitude.map { $0 * 1.5 }, terms: weightShape[1...].reduce(1, *)))
        // The multiplications did round: an f32 kernel would be ~1e-7 from the exact result.
        #expect(relativeError(actual, exact) > 1e-4, "no bf16 rounding seen: \(relativeError(actual, exact))")
        // The same convolution in fp32 is unchanged by all this.
        let fp32 = try Autodiff.withoutRecording { try conv2d(xt, weight: wt, bias: bt, geometry: geometry) }
        #expect(relativeError(try fp32.toArray().map(Double.init), exact) < 1e-5)
    }

    /// A residual block as ResNet's, then a depthwise convolution and a pooling, in inference under bf16: each
    /// convolution reads the previous one's bf16 output as it is (no f32 round trip), the residual is added to the
    /// bf16 destination, the depthwise convolution runs in bf16 on its bf16 input, and max pooling (f32) widens its
    /// input exactly. Reference: the same chain in Double with every operand and every convolution output rounded to
    /// bf16 (a value off by one bf16 step where kernel and reference straddle a rounding boundary propagates: the
    /// comparison is by relative norm, 2⁻⁸ at most).
    @Test("bf16 inference chains: convolution outputs stay bf16 into the next convolution, the residual sum and a depthwise one",
          .enabled(if: supported), arguments: [Layout.plain, .nChw16c])
    func inferenceChain(_ layout: Layout) throws {
        var generator = SeededGenerator(seed: layout == .plain ? 5 : 6)
        let x = randomArray([2, 32, 8, 8], &generator)
        let w1 = randomArray([32, 32, 3, 3], &generator, scale: 0.06), b1 = randomArray([32], &generator, scale: 0.1)
        let w2 = randomArray([32, 32, 3, 3], &generator, scale: 0.06), b2 = randomArray([32], &generator, scale: 0.1)
        let w3 = randomArray([32, 1, 3, 3], &generator, scale: 0.3)
        func tensor(_ a: ReferenceArray) throws -> Tensor { try Tensor(shape: a.shape, values: a.floats) }
        let same = ConvolutionGeometry(padding: [1, 1]), depthwise = ConvolutionGeometry(padding: [1, 1], groups: 32)
        let (y1, y2, y3, pooled) = try Precision.run(.bf16) {
            try Autodiff.withoutRecording {
                let xt = try tensor(x).reordered(to: layout)
                let y1 = try conv2d(xt, weight: try tensor(w1), bias: try tensor(b1), geometry: same, activation: .relu)
                let y2 = try conv2d(y1, weight: try tensor(w2), bias: try tensor(b2), geometry: same, residual: y1, activation: .relu)
                let y3 = try conv2d(y2, weight: try tensor(w3), geometry: depthwise)
                return (y1, y2, y3, try maxPool2d(y3, geometry: PoolingGeometry(kernel: [2, 2])))
            }
        }
        let r = Self.rounded
        let e1 = r(Reference.relu(Reference.conv2d(r(x), weight: r(w1), bias: b1, stride: [1, 1], padding: [1, 1],
                                                   dilation: [1, 1], groups: 1)))
        let e2 = r(Reference.relu(Reference.add(Reference.conv2d(e1, weight: r(w2), bias: b2, stride: [1, 1], padding: [1, 1],
                                                                 dilation: [1, 1], groups: 1), e1)))
        let e3 = r(Reference.conv2d(e2, weight: r(w3), bias: nil, stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 32))
        for (name, tensor, expected) in [("first", y1, e1), ("residual", y2, e2), ("depthwise", y3, e3)] {
            let actual = try tensor.toArray().map(Double.init)
            #expect(actual.allSatisfy { Float($0).bitPattern & 0xFFFF == 0 }, "\(name) convolution's output is not bfloat16")
            #expect(relativeError(actual, expected.values) < pow(2, -8), "\(name): \(relativeError(actual, expected.values))")
        }
        // Pooling takes the widened values: the maxima of the depthwise output itself, exactly.
        let widened = try ReferenceArray(shape: y3.shape, values: y3.toArray().map(Double.init))
        #expect(try pooled.toArray().map(Double.init) == Reference.maxPool2d(widened, kernel: [2, 2], stride: [2, 2], padding: [0, 0], ceilMode: false).values)
    }

    @Test("widening bfloat16 to float32 is exact, on one thread and on the team, at every tail length",
          arguments: [1, 15, 16, 17, 16_383, 16_384, 100_003])
    func widening(_ count: Int) {
        var generator = SeededGenerator(seed: UInt64(count))
        let halves = (0..<count).map { _ in UInt16(truncatingIfNeeded: generator.next()) }
        var team = [Float](repeating: .nan, count: count), single = [Float](repeating: .nan, count: count)
        fovea_widen_bf16(halves, &team, count)
        fovea_widen_bf16_range(halves, &single, 0, count)
        let expected = halves.map { Float(bitPattern: UInt32($0) << 16) }
        #expect(team.map(\.bitPattern) == expected.map(\.bitPattern))
        #expect(single.map(\.bitPattern) == expected.map(\.bitPattern))
    }

    @Test("convolution gradients in bf16: input, weight and bias gradients equal f32 arithmetic on bf16-rounded operands",
          .enabled(if: supported), arguments: [([2, 32, 9, 11], 32, Layout.nChw16c), ([3, 8, 6, 6], 16, .plain)])
    func convolutionGradients(_ input: [Int], _ outputs: Int, _ layout: Layout) throws {
        var generator = SeededGenerator(seed: UInt64(input.reduce(0, +) + outputs))
        let x = randomArray(input, &generator), w = randomArray([outputs, input[1], 3, 3], &generator, scale: 0.2)
        let b = randomArray([outputs], &generator)
        let xBox = GradientBox(), wBox = GradientBox(), bBox = GradientBox()
        let xt = try Tensor(shape: x.shape, values: x.floats).reordered(to: layout).trackingGradient { xBox.value = $0 }
        let wt = try Tensor(shape: w.shape, values: w.floats).trackingGradient { wBox.value = $0 }
        let bt = try Tensor(shape: b.shape, values: b.floats).trackingGradient { bBox.value = $0 }
        let upstream = randomArray([input[0], outputs, input[2], input[3]], &generator)
        try Precision.run(.bf16) {
            let y = try conv2d(xt, weight: wt, bias: bt, geometry: ConvolutionGeometry(padding: [1, 1]))
            try y.backward(seed: try Tensor(shape: upstream.shape, values: upstream.floats))
        }
        let (dx, dw, db) = FoveaTensorTests.convolutionGradients(Self.rounded(x), weight: Self.rounded(w),
                                                                 upstream: Self.rounded(upstream), padding: 1)
        let (exactDx, _, _) = FoveaTensorTests.convolutionGradients(x, weight: w, upstream: upstream, padding: 1)
        for (name, box, reference) in [("input", xBox, dx), ("weight", wBox, dw), ("bias", bBox, db)] {
            let gradient = try #require(box.value, "no \(name) gradient")
            let error = relativeError(try gradient.toArray().map(Double.init), reference.values)
            #expect(error < 1e-5, "\(name) gradient: relative error \(error) against f32 arithmetic on rounded operands")
        }
        #expect(relativeError(try #require(xBox.value).toArray().map(Double.init), exactDx.values) > 1e-4)
    }

    @Test("inner products in bf16: output and gradients equal f32 arithmetic on bf16-rounded operands",
          .enabled(if: supported))
    func innerProduct() throws {
        var generator = SeededGenerator(seed: 31)
        let x = randomArray([5, 70], &generator), w = randomArray([12, 70], &generator, scale: 0.3), b = randomArray([12], &generator)
        let upstream = randomArray([5, 12], &generator)
        let xBox = GradientBox(), wBox = GradientBox(), bBox = GradientBox()
        let xt = try Tensor(shape: x.shape, values: x.floats).trackingGradient { xBox.value = $0 }
        let wt = try Tensor(shape: w.shape, values: w.floats).trackingGradient { wBox.value = $0 }
        let bt = try Tensor(shape: b.shape, values: b.floats).trackingGradient { bBox.value = $0 }
        let y = try Precision.run(.bf16) {
            let y = try linear(xt, weight: wt, bias: bt)
            try y.backward(seed: try Tensor(shape: upstream.shape, values: upstream.floats))
            return y
        }
        let (xr, wr, ur) = (Self.rounded(x), Self.rounded(w), Self.rounded(upstream))
        let actual = try y.toArray().map(Double.init)
        #expect(relativeError(actual, Reference.linear(xr, weight: wr, bias: b).values) < 1e-5)
        let exact = Reference.linear(x, weight: w, bias: b).values
        #expect(Self.withinFormatBound(actual, exact, magnitude: Reference.linear(Self.absolute(x), weight: Self.absolute(w), bias: nil).values,
                                       terms: 70))
        #expect(relativeError(actual, exact) > 1e-4)
        // dx = dy·W, dW = dyᵀ·x, db = Σ dy over the batch, all from rounded operands.
        var dx = [Double](repeating: 0, count: 5 * 70), dw = [Double](repeating: 0, count: 12 * 70), db = [Double](repeating: 0, count: 12)
        for n in 0..<5 {
            for o in 0..<12 {
                let g = ur.values[n * 12 + o]
                db[o] += g
                for i in 0..<70 {
                    dx[n * 70 + i] += g * wr.values[o * 70 + i]
                    dw[o * 70 + i] += g * xr.values[n * 70 + i]
                }
            }
        }
        for (name, box, reference) in [("input", xBox, dx), ("weight", wBox, dw), ("bias", bBox, db)] {
            let gradient = try #require(box.value, "no \(name) gradient")
            let error = relativeError(try gradient.toArray().map(Double.init), reference)
            #expect(error < 1e-5, "\(name) gradient: relative error \(error)")
        }
    }

    @Test("the bf16 peak is oneDNN's bf16 matmul rate, a finite positive figure; on a CPU without bf16 it is an error")
    func peak() throws {
        if Precision.bf16.isSupported {
            let peak = try MachinePeak.measureGFLOPs(precision: .bf16, size: 256, seconds: 0.05)
            #expect(peak > 0.1 && peak < 1_000_000, "\(peak)")
        } else {
            #expect(throws: TensorError.self) { try MachinePeak.measureGFLOPs(precision: .bf16, size: 256, seconds: 0.05) }
        }
    }
}
