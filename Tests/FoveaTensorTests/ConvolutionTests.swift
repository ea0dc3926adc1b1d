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

    @Test("wrong channel count names the layer and both shapes")
    func wrongChannels() throws {
        let x = Tensor.zeros([1, 3, 8, 8]), w = Tensor.zeros([4, 2, 3, 3])
        #expect(throws: TensorError.shapeMismatch(operation: "stem", expected: "(N, 2, H, W)", actual: [1, 3, 8, 8])) {
            try conv2d(x, weight: w, geometry: ConvolutionGeometry(), name: "stem")
        }
    }
}
