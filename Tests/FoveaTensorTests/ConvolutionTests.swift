import FoveaTensor
import Testing
import CFoveaKernels

/// One convolution configuration under test.
struct ConvolutionOpCase: CustomStringConvertible, Sendable {
    var input: [Int]           // N, C, H, W
    var outputChannels: Int
    var kernel: [Int]
    var stride: [Int]
    var padding: [Int]
    var dilation: [Int] = [1, 1]
    var groups = 1
    var bias = true

    var description: String {
        "x\(input) k\(outputChannels)×\(kernel) s\(stride) p\(padding) d\(dilation) g\(groups)\(bias ? " +bias" : "")"
    }

    /// A random but valid configuration with odd sizes, strides 1–2, padding and groups.
    static func random(seed: UInt64) -> ConvolutionOpCase {
        var g = SeededGenerator(seed: seed)
        func pick(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(g.next() % UInt64(range.count)) }
        let groups = [1, 1, 2, 3][pick(0...3)]
        let channels = groups * pick(1...3), outputs = groups * pick(1...3)
        let kernel = [pick(1...3), pick(1...3)]
        let dilation = [pick(1...2), 1]
        let stride = [pick(1...2), pick(1...2)]
        let padding = [pick(0...kernel[0] / 2 + 1), pick(0...kernel[1] / 2 + 1)]
        let height = dilation[0] * (kernel[0] - 1) + pick(1...5), width = kernel[1] + pick(1...6)
        return ConvolutionOpCase(input: [pick(1...2), channels, height, width], outputChannels: outputs, kernel: kernel,
                               stride: stride, padding: padding, dilation: dilation, groups: groups, bias: pick(0...1) == 1)
    }
}

let fixedConvolutionOpCases: [ConvolutionOpCase] = [
    ConvolutionOpCase(input: [2, 3, 7, 9], outputChannels: 4, kernel: [3, 3], stride: [1, 1], padding: [1, 1]),
    ConvolutionOpCase(input: [2, 3, 5, 5], outputChannels: 5, kernel: [3, 3], stride: [2, 2], padding: [0, 0], bias: false),
    ConvolutionOpCase(input: [1, 4, 6, 6], outputChannels: 6, kernel: [3, 3], stride: [1, 1], padding: [1, 1], groups: 2),
    // Depthwise, stride 2, as in MobileNet.
    ConvolutionOpCase(input: [2, 8, 7, 7], outputChannels: 8, kernel: [3, 3], stride: [2, 2], padding: [1, 1], groups: 8,
                    bias: false),
    ConvolutionOpCase(input: [1, 3, 9, 9], outputChannels: 2, kernel: [3, 3], stride: [1, 1], padding: [2, 2], dilation: [2, 2]),
    ConvolutionOpCase(input: [2, 16, 5, 5], outputChannels: 16, kernel: [1, 1], stride: [1, 1], padding: [0, 0], bias: false),
    // LeNet's first layer: one input channel, 5×5 kernel, padding 2.
    ConvolutionOpCase(input: [2, 1, 8, 8], outputChannels: 6, kernel: [5, 5], stride: [1, 1], padding: [2, 2]),
]

@Suite("Convolution against the reference")
struct ConvolutionTests {
    func run(_ c: ConvolutionOpCase, layout: Layout) throws {
        var generator = SeededGenerator(seed: UInt64(c.input.reduce(0, +) * 31 + c.outputChannels))
        let x = randomArray(c.input, &generator)
        let w = randomArray([c.outputChannels, c.input[1] / c.groups] + c.kernel, &generator, scale: 0.5)
        let b = randomArray([c.outputChannels], &generator)
        var inputs = [OpInput(array: x, layout: layout), OpInput(array: w)]
        if c.bias { inputs.append(OpInput(array: b)) }
        let geometry = ConvolutionGeometry(stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups)
        try checkOp("conv2d \(c) \(layout)", inputs, gradientLayout: layout, forward: { t in
            try conv2d(t[0], weight: t[1], bias: c.bias ? t[2] : nil, geometry: geometry)
        }, reference: { a in
            Reference.conv2d(a[0], weight: a[1], bias: c.bias ? a[2] : nil, stride: c.stride, padding: c.padding,
                             dilation: c.dilation, groups: c.groups)
        })
    }

    @Test("fixed shapes", arguments: fixedConvolutionOpCases, bothLayouts)
    func fixed(_ c: ConvolutionOpCase, layout: Layout) throws { try run(c, layout: layout) }

    @Test("random shapes", arguments: Array(UInt64(1)...12), bothLayouts)
    func random(seed: UInt64, layout: Layout) throws { try run(.random(seed: seed), layout: layout) }

    @Test("inference and training primitives of the same convolution agree, in either order",
          arguments: [([2, 16, 9, 9], [32, 16, 3, 3], 1), ([2, 64, 8, 8], [64, 2, 3, 3], 32), ([1, 3, 12, 12], [8, 3, 5, 5], 1)])
    func inferenceMatchesTraining(_ c: ([Int], [Int], Int)) throws {
        // Regression: the weight reorder for the inference primitive once reused the training primitive's cached
        // reorder although the two may want different weight layouts.
        var generator = SeededGenerator(seed: 77)
        let x = try Tensor(shape: c.0, values: randomArray(c.0, &generator).floats)
        let w = try Tensor(shape: c.1, values: randomArray(c.1, &generator, scale: 0.2).floats)
        let geometry = ConvolutionGeometry(padding: [1, 1], groups: c.2)
        let trained = try conv2d(x, weight: w.trackingGradient { _ in }, geometry: geometry).toArray()
        let inferred = try Autodiff.withoutRecording { try conv2d(x, weight: w, geometry: geometry) }.toArray()
        let expected = Reference.conv2d(ReferenceArray(shape: c.0, floats: try x.toArray()),
                                        weight: ReferenceArray(shape: c.1, floats: try w.toArray()), bias: nil,
                                        stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: c.2)
        #expect(relativeError(trained.map(Double.init), expected.values) < 1e-4)
        #expect(relativeError(inferred.map(Double.init), expected.values) < 1e-4)
    }

    /// Inference keeps an nChw16c input's layout (oneDNN left free picks channels-last for ResNet's shapes on AVX-512
    /// CPUs, and a ResNet then reorders around every stride-2 and 1×1 downsampling convolution), with the right values.
    /// Only where oneDNN has AVX-512 kernels (nChw16c's); elsewhere nothing is in nChw16c to begin with.
    @Test("inference keeps an nChw16c input's layout", .enabled(if: fovea_cpu_has_avx512() != 0), arguments: [Layout.nChw16c],
          [([2, 64, 28, 28], [128, 64, 3, 3], 2, 1), ([2, 64, 28, 28], [128, 64, 1, 1], 2, 0), ([2, 64, 14, 14], [64, 64, 3, 3], 1, 1)])
    func keepsBlockedLayout(_ layout: Layout, _ c: ([Int], [Int], Int, Int)) throws {
        var generator = SeededGenerator(seed: 78)
        let x = try Tensor(shape: c.0, values: randomArray(c.0, &generator).floats)
        let w = try Tensor(shape: c.1, values: randomArray(c.1, &generator, scale: 0.2).floats)
        let geometry = ConvolutionGeometry(stride: [c.2, c.2], padding: [c.3, c.3])
        let y = try Autodiff.withoutRecording { try conv2d(x.reordered(to: layout), weight: w, geometry: geometry) }
        #expect(y.layout == layout)
        let expected = Reference.conv2d(ReferenceArray(shape: c.0, floats: try x.toArray()),
                                        weight: ReferenceArray(shape: c.1, floats: try w.toArray()), bias: nil,
                                        stride: [c.2, c.2], padding: [c.3, c.3], dilation: [1, 1], groups: 1)
        #expect(relativeError(try y.toArray().map(Double.init), expected.values) < 1e-4)
    }

    /// Training convolutions 3×3, stride 1, with ≥ 32 input and output channels run oneDNN's Winograd kernels in all three
    /// passes (where the CPU has them): forward, input and weight gradients against loops over the definition (the
    /// 16-channel case stays on the direct path, for contrast). Shapes
    /// wider than the finite-difference checks above can afford; the gradient loops are checked against finite
    /// differences on a small case in `gradientLoopsMatchFiniteDifferences`.
    @Test("training convolutions on the Winograd path: output and all gradients against the definition",
          arguments: [([2, 32, 9, 11], 32, true), ([3, 48, 8, 8], 64, false), ([2, 16, 6, 6], 16, true)])
    func winogradTraining(_ input: [Int], _ outputs: Int, _ withBias: Bool) throws {
        var generator = SeededGenerator(seed: UInt64(input.reduce(0, +) + outputs))
        let x = randomArray(input, &generator), w = randomArray([outputs, input[1], 3, 3], &generator, scale: 0.2)
        let b = randomArray([outputs], &generator)
        let xBox = GradientBox(), wBox = GradientBox(), bBox = GradientBox()
        let xt = try Tensor(shape: x.shape, values: x.floats).reordered(to: .nChw8c).trackingGradient { xBox.value = $0 }
        let wt = try Tensor(shape: w.shape, values: w.floats).trackingGradient { wBox.value = $0 }
        let bt = try Tensor(shape: b.shape, values: b.floats).trackingGradient { bBox.value = $0 }
        let y = try conv2d(xt, weight: wt, bias: withBias ? bt : nil, geometry: ConvolutionGeometry(padding: [1, 1]))
        let expected = Reference.conv2d(x, weight: w, bias: withBias ? b : nil, stride: [1, 1], padding: [1, 1],
                                        dilation: [1, 1], groups: 1)
        #expect(relativeError(try y.toArray().map(Double.init), expected.values) < 1e-4)
        let upstream = randomArray(expected.shape, &generator)
        try y.backward(seed: try Tensor(shape: upstream.shape, values: upstream.floats))
        let (dx, dw, db) = convolutionGradients(x, weight: w, upstream: upstream, padding: 1)
        for (name, box, reference) in [("input", xBox, dx), ("weight", wBox, dw)] + (withBias ? [("bias", bBox, db)] : []) {
            guard let gradient = box.value else {
                Issue.record("no \(name) gradient")
                continue
            }
            let error = relativeError(try gradient.toArray().map(Double.init), reference.values)
            #expect(error < 1e-4, "\(name) gradient: relative error \(error)")
        }
    }

    @Test("the gradient loops the Winograd test trusts agree with finite differences")
    func gradientLoopsMatchFiniteDifferences() {
        var generator = SeededGenerator(seed: 5)
        let x = randomArray([2, 3, 5, 4], &generator), w = randomArray([2, 3, 3, 3], &generator)
        let upstream = randomArray([2, 2, 5, 4], &generator)
        let (dx, dw, db) = convolutionGradients(x, weight: w, upstream: upstream, padding: 1)
        func loss(_ x: ReferenceArray, _ w: ReferenceArray, _ b: ReferenceArray) -> Double {
            let y = Reference.conv2d(x, weight: w, bias: b, stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1)
            return zip(y.values, upstream.values).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let b = ReferenceArray(shape: [2], repeating: 0)
        #expect(relativeError(dx.values, Reference.numericalGradient(of: { loss($0, w, b) }, at: x).values) < 1e-6)
        #expect(relativeError(dw.values, Reference.numericalGradient(of: { loss(x, $0, b) }, at: w).values) < 1e-6)
        #expect(relativeError(db.values, Reference.numericalGradient(of: { loss(x, w, $0) }, at: b).values) < 1e-6)
    }

    @Test("wrong channel count names the layer and both shapes")
    func wrongChannels() throws {
        let x = Tensor.zeros([1, 3, 8, 8]), w = Tensor.zeros([4, 2, 3, 3])
        #expect(throws: TensorError.shapeMismatch(operation: "stem", expected: "(N, 2, H, W)", actual: [1, 3, 8, 8])) {
            try conv2d(x, weight: w, geometry: ConvolutionGeometry(), name: "stem")
        }
    }
}

/// The gradients of Σ upstream · conv2d(x, weight) + bias (stride 1, no dilation, one group) with respect to the input,
/// the weight and the bias, by loops over the convolution's definition.
func convolutionGradients(_ x: ReferenceArray, weight: ReferenceArray, upstream: ReferenceArray, padding: Int)
    -> (ReferenceArray, ReferenceArray, ReferenceArray) {
    let (batch, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (filters, kernelHeight, kernelWidth) = (weight.shape[0], weight.shape[2], weight.shape[3])
    let (outputHeight, outputWidth) = (upstream.shape[2], upstream.shape[3])
    var dx = ReferenceArray(shape: x.shape, repeating: 0), dw = ReferenceArray(shape: weight.shape, repeating: 0)
    var db = ReferenceArray(shape: [filters], repeating: 0)
    for n in 0..<batch {
        for k in 0..<filters {
            for p in 0..<outputHeight {
                for q in 0..<outputWidth {
                    let g = upstream.values[((n * filters + k) * outputHeight + p) * outputWidth + q]
                    db.values[k] += g
                    for c in 0..<channels {
                        for r in 0..<kernelHeight {
                            let h = p - padding + r
                            if h < 0 || h >= height { continue }
                            for s in 0..<kernelWidth {
                                let v = q - padding + s
                                if v < 0 || v >= width { continue }
                                let xi = ((n * channels + c) * height + h) * width + v
                                let wi = ((k * channels + c) * kernelHeight + r) * kernelWidth + s
                                dx.values[xi] += g * weight.values[wi]
                                dw.values[wi] += g * x.values[xi]
                            }
                        }
                    }
                }
            }
        }
    }
    return (dx, dw, db)
}
