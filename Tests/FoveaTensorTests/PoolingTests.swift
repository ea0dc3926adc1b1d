import FoveaTensor
import Testing

struct PoolingCase: CustomStringConvertible, Sendable {
    var input: [Int]
    var kernel: [Int]
    var stride: [Int]
    var padding: [Int]
    var ceilMode: Bool
    var description: String { "x\(input) k\(kernel) s\(stride) p\(padding)\(ceilMode ? " ceil" : "")" }
}

let poolingCases: [PoolingCase] = [
    PoolingCase(input: [2, 3, 8, 8], kernel: [2, 2], stride: [2, 2], padding: [0, 0], ceilMode: false),
    PoolingCase(input: [2, 5, 7, 9], kernel: [3, 3], stride: [2, 2], padding: [1, 1], ceilMode: false),
    PoolingCase(input: [1, 3, 7, 7], kernel: [3, 3], stride: [2, 2], padding: [0, 0], ceilMode: true),
    PoolingCase(input: [1, 9, 6, 8], kernel: [3, 2], stride: [2, 3], padding: [1, 1], ceilMode: true),
    PoolingCase(input: [2, 4, 5, 5], kernel: [2, 2], stride: [1, 1], padding: [1, 0], ceilMode: false),
    // GoogLeNet-style 3×3/2 ceil-mode pooling of an even size leaves an overhanging last window.
    PoolingCase(input: [1, 2, 8, 8], kernel: [3, 3], stride: [2, 2], padding: [1, 1], ceilMode: true),
    // Sixteen channels: whole vectors of lanes in every layout (training max pooling's vector path).
    PoolingCase(input: [2, 16, 6, 6], kernel: [3, 3], stride: [2, 2], padding: [1, 1], ceilMode: false),
]

/// Every layout Fovea carries: training max pooling has its own kernel, which sees each as planes of lanes.
let allLayouts: [Layout] = [.plain, .nChw8c, .nChw16c, .nhwc]

@Suite("Pooling against the reference")
struct PoolingTests {
    @Test("max pooling", arguments: poolingCases, allLayouts)
    func maxPooling(_ c: PoolingCase, layout: Layout) throws {
        var generator = SeededGenerator(seed: 11)
        let x = randomArray(c.input, &generator)
        let geometry = PoolingGeometry(kernel: c.kernel, stride: c.stride, padding: c.padding, ceilMode: c.ceilMode)
        try checkOp("maxPool \(c) \(layout)", [OpInput(array: x, layout: layout)], gradientLayout: layout, forward: { t in
            try maxPool2d(t[0], geometry: geometry)
        }, reference: { a in
            Reference.maxPool2d(a[0], kernel: c.kernel, stride: c.stride, padding: c.padding, ceilMode: c.ceilMode)
        })
    }

    @Test("training max pooling sends each window's gradient to its first maximum, or its last NaN, as PyTorch",
          arguments: allLayouts)
    func maxPoolingTiesAndNaN(layout: Layout) throws {
        // Values from {−1, 0, 1} (most windows hold their maximum more than once), overlapping padded windows, one NaN.
        let shape = [2, 10, 7, 7]
        var generator = SeededGenerator(seed: 14)
        var values = (0..<shape.reduce(1, *)).map { _ in Double((generator.next() % 3)) - 1 }
        values[3 * 49 + 2 * 7 + 3] = .nan
        let x = ReferenceArray(shape: shape, values: values)
        let geometry = PoolingGeometry(kernel: [3, 3], stride: [2, 2], padding: [1, 1])
        var inputGradient: Tensor?
        let input = try Tensor(shape: shape, values: x.floats).reordered(to: layout).trackingGradient { inputGradient = $0 }
        let y = try maxPool2d(input, geometry: geometry)
        let (p, q) = (y.shape[2], y.shape[3])
        let upstream = randomArray(y.shape, &generator)
        try y.backward(seed: try Tensor(shape: upstream.shape, values: upstream.floats).reordered(to: y.layout))

        // PyTorch's CPU loop: a value takes over when it is larger or NaN; the window starts at its first valid cell.
        var expectedOutput = [Double](repeating: 0, count: y.count), expectedGradient = [Double](repeating: 0, count: x.count)
        for plane in 0..<(shape[0] * shape[1]) {
            for i in 0..<p {
                for j in 0..<q {
                    var best = -Double.infinity, at = -1
                    for r in max(2 * i - 1, 0)..<min(2 * i + 2, 7) {
                        for s in max(2 * j - 1, 0)..<min(2 * j + 2, 7) {
                            let index = (plane * 7 + r) * 7 + s
                            if at < 0 || x.values[index] > best || x.values[index].isNaN { (best, at) = (x.values[index], index) }
                        }
                    }
                    expectedOutput[(plane * p + i) * q + j] = best
                    expectedGradient[at] += upstream.values[(plane * p + i) * q + j]
                }
            }
        }
        let output = try y.toArray()
        #expect(output.count == expectedOutput.count)
        #expect(zip(output, expectedOutput).allSatisfy { $0.isNaN ? $1.isNaN : Double($0) == $1 }, "\(layout): forward")
        #expect(output.contains { $0.isNaN }, "the NaN must reach the output")
        let gradient = try #require(inputGradient).toArray().map(Double.init)
        #expect(relativeError(gradient, expectedGradient) < 1e-6, "\(layout): gradient")
    }

    @Test("average pooling", arguments: poolingCases, [true, false])
    func averagePooling(_ c: PoolingCase, includePad: Bool) throws {
        for layout in bothLayouts {
            var generator = SeededGenerator(seed: 12)
            let x = randomArray(c.input, &generator)
            let geometry = PoolingGeometry(kernel: c.kernel, stride: c.stride, padding: c.padding, ceilMode: c.ceilMode)
            try checkOp("avgPool \(c) includePad \(includePad) \(layout)", [OpInput(array: x, layout: layout)],
                        gradientLayout: layout, forward: { t in
                try avgPool2d(t[0], geometry: geometry, countIncludePad: includePad)
            }, reference: { a in
                Reference.avgPool2d(a[0], kernel: c.kernel, stride: c.stride, padding: c.padding, ceilMode: c.ceilMode,
                                    countIncludePad: includePad)
            })
        }
    }

    @Test("adaptive average pooling", arguments: [([2, 3, 7, 5], [1, 1]), ([1, 4, 7, 5], [3, 2]), ([2, 3, 6, 4], [2, 2]),
                                                  ([1, 2, 5, 9], [4, 4])], bothLayouts)
    func adaptive(_ c: ([Int], [Int]), layout: Layout) throws {
        var generator = SeededGenerator(seed: 13)
        let x = randomArray(c.0, &generator)
        try checkOp("adaptiveAvgPool \(c) \(layout)", [OpInput(array: x, layout: layout)], gradientLayout: layout,
                    forward: { t in try adaptiveAvgPool2d(t[0], outputSize: c.1) },
                    reference: { a in Reference.adaptiveAvgPool2d(a[0], outputSize: c.1) })
    }
}
