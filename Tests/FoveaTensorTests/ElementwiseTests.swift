import FoveaTensor
import Testing

let activationCases: [(String, Activation)] = [
    ("relu", .relu), ("relu6", .relu6), ("leakyRelu", .leakyRelu(negativeSlope: 0.1)), ("silu", .silu),
    ("sigmoid", .sigmoid), ("tanh", .tanh), ("hardSwish", .hardSwish), ("linear", .linear(scale: -0.5, shift: 2)),
    ("clip", .clip(lower: -1, upper: 2.5)),
]

func referenceActivation(_ activation: Activation, _ x: ReferenceArray) -> ReferenceArray {
    switch activation {
    case .relu: return Reference.relu(x)
    case .relu6: return Reference.relu6(x)
    case let .leakyRelu(slope): return Reference.leakyRelu(x, negativeSlope: Double(slope))
    case .silu: return Reference.silu(x)
    case .sigmoid: return Reference.sigmoid(x)
    case .tanh: return Reference.tanh(x)
    case .hardSwish: return Reference.hardSwish(x)
    case let .linear(scale, shift): return x.map { Double(scale) * $0 + Double(shift) }
    case let .clip(lower, upper): return x.map { min(max($0, Double(lower)), Double(upper)) }
    }
}

@Suite("Elementwise, linear, shape and loss ops against the reference")
struct ElementwiseTests {
    @Test("activations", arguments: activationCases.map(\.0), bothLayouts)
    func activations(_ name: String, layout: Layout) throws {
        let activation = activationCases.first { $0.0 == name }!.1
        var generator = SeededGenerator(seed: 21)
        // Scale 4 reaches past relu6's upper knee and hard-swish's ±3.
        let x = randomArray([2, 5, 3, 4], &generator, scale: 4)
        try checkOp("\(name) \(layout)", [OpInput(array: x, layout: layout)], gradientLayout: layout,
                    forward: { t in try activate(t[0], activation) },
                    reference: { a in referenceActivation(activation, a[0]) })
    }

    @Test("hard sigmoid", arguments: bothLayouts)
    func hardSigmoidOp(_ layout: Layout) throws {
        var generator = SeededGenerator(seed: 30)
        let x = randomArray([2, 5, 3, 3], &generator, scale: 4)
        try checkOp("hardSigmoid \(layout)", [OpInput(array: x, layout: layout)], gradientLayout: layout,
                    forward: { t in try hardSigmoid(t[0]) },
                    reference: { a in Reference.relu6(a[0].map { $0 + 3 }).map { $0 / 6 } })
    }

    @Test("stochastic depth drops whole samples", arguments: bothLayouts)
    func stochasticDepth(_ layout: Layout) throws {
        var generator = SeededGenerator(seed: 31)
        let x = randomArray([16, 5, 2, 3], &generator)
        // Sample i is dropped when the i-th uniform draw is below p.
        var maskGenerator = SeededGenerator(seed: 5)
        let keep = (0..<16).map { _ in maskGenerator.nextUniform() >= 0.5 }
        #expect(keep.contains(false) && keep.contains(true))
        let perElement = keep.flatMap { [Bool](repeating: $0, count: 30) }
        try checkOp("stochasticDepth \(layout)", [OpInput(array: x, layout: layout)], gradientLayout: layout, forward: { t in
            var g = SeededGenerator(seed: 5)
            return try dropSamples(t[0], probability: 0.5, generator: &g)
        }, reference: { r in Reference.dropout(r[0], keepMask: perElement, probability: 0.5) })
    }

    @Test("linear with and without bias", arguments: [true, false])
    func linearOp(bias: Bool) throws {
        var generator = SeededGenerator(seed: 22)
        let x = randomArray([3, 7], &generator), w = randomArray([5, 7], &generator), b = randomArray([5], &generator)
        let inputs = [OpInput(array: x), OpInput(array: w)] + (bias ? [OpInput(array: b)] : [])
        try checkOp("linear", inputs, forward: { t in try linear(t[0], weight: t[1], bias: bias ? t[2] : nil) },
                    reference: { a in Reference.linear(a[0], weight: a[1], bias: bias ? a[2] : nil) })
    }

    @Test("add in mixed layouts", arguments: bothLayouts, bothLayouts)
    func addition(_ left: Layout, _ right: Layout) throws {
        var generator = SeededGenerator(seed: 23)
        let a = randomArray([2, 5, 3, 3], &generator), b = randomArray([2, 5, 3, 3], &generator)
        try checkOp("add \(left)+\(right)", [OpInput(array: a, layout: left), OpInput(array: b, layout: right)],
                    forward: { t in try t[0] + t[1] }, reference: { r in Reference.add(r[0], r[1]) })
    }

    @Test("addingReLU (relu(a + b) in one pass) in mixed layouts", arguments: bothLayouts, bothLayouts)
    func addingReLUSmall(_ left: Layout, _ right: Layout) throws {
        var generator = SeededGenerator(seed: 24)
        let a = randomArray([2, 5, 3, 3], &generator), b = randomArray([2, 5, 3, 3], &generator)
        try checkOp("addingReLU \(left)+\(right)", [OpInput(array: a, layout: left), OpInput(array: b, layout: right)],
                    forward: { t in try addingReLU(t[0], t[1]) }, reference: { r in Reference.relu(Reference.add(r[0], r[1])) })
    }

    @Test("addingReLU on oneDNN's binary primitive: forward against the reference, gradients where the output is positive",
          arguments: [Layout.nChw16c, .nhwc])
    func addingReLULarge(_ layout: Layout) throws {
        let shape = [2, 20, 24, 24]  // past the size where a plain loop is used; 20 channels leave padding in blocks of 16
        var generator = SeededGenerator(seed: 25)
        let a = randomArray(shape, &generator), b = randomArray(shape, &generator), upstream = randomArray(shape, &generator)
        var gradients: [[Float]] = [[], []]
        let left = try Tensor(shape: shape, values: a.floats).reordered(to: layout).trackingGradient { gradients[0] = try $0.toArray() }
        let right = try Tensor(shape: shape, values: b.floats).trackingGradient { gradients[1] = try $0.toArray() }
        let y = try addingReLU(left, right)
        #expect(y.layout == layout)
        let expected = Reference.relu(Reference.add(a, b))
        #expect(relativeError(try y.toArray().map(Double.init), expected.values) < 1e-6)
        try y.backward(seed: try Tensor(shape: shape, values: upstream.floats).reordered(to: layout))
        let closedForm = zip(expected.values, upstream.values).map { $0 > 0 ? $1 : 0 }
        for gradient in gradients {
            #expect(relativeError(gradient.map(Double.init), closedForm) < 1e-6)
        }
    }

    @Test("multiply broadcast over channels", arguments: [Layout.plain, .nChw8c, .nChw16c, .nhwc])
    func multiply(_ layout: Layout) throws {
        var generator = SeededGenerator(seed: 24)
        let x = randomArray([2, 5, 3, 4], &generator), s = randomArray([2, 5, 1, 1], &generator)
        try checkOp("multiplyChannels \(layout)", [OpInput(array: x, layout: layout), OpInput(array: s)], gradientLayout: layout,
                    forward: { t in try multiplyChannels(t[0], by: t[1]) },
                    reference: { r in Reference.multiplyChannels(r[0], by: r[1]) })
    }

    @Test("concatenate along channels", arguments: bothLayouts)
    func concatenate(_ layout: Layout) throws {
        var generator = SeededGenerator(seed: 25)
        let a = randomArray([2, 3, 4, 5], &generator), b = randomArray([2, 6, 4, 5], &generator)
        let c = randomArray([2, 1, 4, 5], &generator)
        try checkOp("concatenate \(layout)", [OpInput(array: a, layout: layout), OpInput(array: b), OpInput(array: c, layout: layout)],
                    forward: { t in try concatenateChannels(t) }, reference: { r in Reference.concatenateChannels(r) })
    }

    @Test("flatten and reshape from a blocked layout")
    func flatten() throws {
        var generator = SeededGenerator(seed: 26)
        let x = randomArray([2, 5, 3, 2], &generator)
        try checkOp("flatten", [OpInput(array: x, layout: .nChw8c)], forward: { t in try t[0].flattened() },
                    reference: { r in ReferenceArray(shape: [2, 30], values: r[0].values) })
        try checkOp("reshape", [OpInput(array: x)], forward: { t in try t[0].reshaped([5, -1]) },
                    reference: { r in ReferenceArray(shape: [5, 12], values: r[0].values) })
    }

    @Test("softmax and log-softmax")
    func softmaxOps() throws {
        var generator = SeededGenerator(seed: 27)
        let x = randomArray([4, 7], &generator, scale: 3)
        try checkOp("softmax", [OpInput(array: x)], forward: { t in try softmax(t[0]) }, reference: { r in Reference.softmax(r[0]) })
        try checkOp("logSoftmax", [OpInput(array: x)], forward: { t in try logSoftmax(t[0]) },
                    reference: { r in Reference.logSoftmax(r[0]) })
    }

    @Test("cross-entropy with and without label smoothing", arguments: [0.0, 0.1])
    func crossEntropyLoss(smoothing: Double) throws {
        var generator = SeededGenerator(seed: 28)
        let x = randomArray([5, 4], &generator, scale: 2)
        let labels: [Int32] = [0, 3, 1, 1, 2]
        try checkOp("crossEntropy ε=\(smoothing)", [OpInput(array: x)], forward: { t in
            try crossEntropy(logits: t[0], labels: labels, labelSmoothing: Float(smoothing))
        }, reference: { r in
            ReferenceArray(shape: [], values: [Reference.crossEntropy(logits: r[0], labels: labels.map(Int.init),
                                                                      labelSmoothing: smoothing)])
        })
    }

    @Test("dropout scales kept elements and routes gradients through the same mask")
    func dropoutOp() throws {
        var generator = SeededGenerator(seed: 29)
        let x = randomArray([4, 50], &generator)
        // The mask is a pure function of the generator: element i is dropped when the i-th uniform draw is < p.
        var maskGenerator = SeededGenerator(seed: 99)
        let keep = (0..<x.count).map { _ in maskGenerator.nextUniform() >= 0.3 }
        let dropped = keep.filter { !$0 }.count
        #expect(dropped > 30 && dropped < 90, "about 30 % of 200 dropped, got \(dropped)")
        try checkOp("dropout", [OpInput(array: x)], forward: { t in
            var g = SeededGenerator(seed: 99)
            return try dropout(t[0], probability: 0.3, generator: &g)
        }, reference: { r in Reference.dropout(r[0], keepMask: keep, probability: 0.3) })
    }
}

/// The channel scaling of squeeze-excitation on tensors large enough for oneDNN's binary primitive, in every layout:
/// against the reference, blocked padding left at zero, and the backward pass against its closed form.
@Suite("Channel scaling with oneDNN")
struct ChannelScalingKernelTests {
    @Test("multiplyChannels forward and backward",
          arguments: [Layout.plain, .nhwc, .nChw8c, .nChw16c], [3, 1])
    func large(_ layout: Layout, _ images: Int) throws {
        var generator = SeededGenerator(seed: 91)
        let shape = [images, 20, 17, 19 * (4 - images)]
        let plane = shape[2] * shape[3]
        let x = randomArray(shape, &generator), s = randomArray([images, 20, 1, 1], &generator)
        let upstream = randomArray(shape, &generator)
        let box = GradientBox(), scaleBox = GradientBox()
        let input = try Tensor(shape: shape, values: x.floats).reordered(to: layout).trackingGradient(into: { box.value = $0 })
        let factors = try Tensor(shape: [images, 20, 1, 1], values: s.floats).trackingGradient(into: { scaleBox.value = $0 })
        let output = try multiplyChannels(input, by: factors)
        #expect(output.layout == layout)
        let expected = Reference.multiplyChannels(x, by: s)
        #expect(relativeError(try output.toArray().map(Double.init), expected.values) < 1e-6)
        if layout.channelBlock > 1 {
            // The lanes past channel 20 in the last block are padding and must stay zero.
            let block = layout.channelBlock, blocks = (20 + block - 1) / block
            var padding: [Float] = []
            for image in 0..<images {
                let base = ((image * blocks) + blocks - 1) * plane * block
                for pixel in 0..<plane { for lane in (20 % block)..<block { padding.append(output.storage.pointer[base + pixel * block + lane]) } }
            }
            #expect(padding.allSatisfy { $0 == 0 }, "\(layout): padding lanes")
        }
        try output.backward(seed: try Tensor(shape: shape, values: upstream.floats).reordered(to: layout))
        let dx = (0..<x.values.count).map { upstream.values[$0] * s.values[$0 / plane] }
        let ds = (0..<s.values.count).map { nc in (0..<plane).reduce(0.0) { $0 + upstream.values[nc * plane + $1] * x.values[nc * plane + $1] } }
        let inputGradient = try #require(box.value), scaleGradient = try #require(scaleBox.value)
        #expect(relativeError(try inputGradient.toArray().map(Double.init), dx) < 1e-6)
        #expect(relativeError(try scaleGradient.toArray().map(Double.init), ds) < 1e-5)
    }
}
