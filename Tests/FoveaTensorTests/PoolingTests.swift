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
]

@Suite("Pooling against the reference")
struct PoolingTests {
    @Test("max pooling", arguments: poolingCases, bothLayouts)
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
