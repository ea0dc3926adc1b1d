import FoveaTensor
import Testing

@Suite("Layouts and the autodiff tape")
struct LayoutAndTapeTests {
    @Test("NCHW → blocked → NCHW is exact", arguments: [Layout.nChw8c, .nChw16c, .nhwc], [[2, 5, 3, 7], [1, 17, 4, 4], [3, 8, 1, 1]])
    func roundTrip(_ layout: Layout, shape: [Int]) throws {
        var generator = SeededGenerator(seed: 41)
        let values = (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) }
        let tensor = try Tensor(shape: shape, values: values)
        let blocked = try tensor.reordered(to: layout)
        #expect(blocked.layout == layout)
        #expect(try blocked.toArray() == values)
        #expect(try blocked.reordered(to: .plain).toArray() == values)
    }

    @Test("a blocked layout pads channels with zeros")
    func blockedPadding() throws {
        let tensor = try Tensor(shape: [1, 3, 2, 2], values: (1...12).map(Float.init)).reordered(to: .nChw8c)
        #expect(tensor.storage.capacity == 8 * 4)
        // Element (c=1, h=0, w=1) sits at spatial index 1, lane 1 of the first block.
        #expect(tensor.storage.pointer[1 * 8 + 1] == 6)
        #expect((0..<4).allSatisfy { s in (3..<8).allSatisfy { tensor.storage.pointer[s * 8 + $0] == 0 } })
    }

    @Test("a tensor used twice accumulates both gradients")
    func accumulation() throws {
        let box = GradientBox()
        let x = try Tensor(shape: [3], values: [1, 2, 3]).trackingGradient { g in box.value = g }
        let y = try (x + x.scaled(by: 3)).sum()
        try y.backward()
        #expect(try box.value?.toArray() == [4, 4, 4])
    }

    @Test("backward over a very deep chain does not overflow the stack")
    func deepChain() throws {
        let box = GradientBox()
        var y = try Tensor(shape: [2], values: [1, 1]).trackingGradient { g in box.value = g }
        for _ in 0..<20_000 { y = y.scaled(by: 1) }
        try y.sum().backward()
        #expect(try box.value?.toArray() == [1, 1])
    }

    @Test("no tape is recorded when recording is off")
    func recordingOff() throws {
        let x = try Tensor(shape: [2], values: [1, 2]).trackingGradient { _ in Issue.record("gradient reached a leaf") }
        #expect(x.requiresGradient)
        let y = try Autodiff.withoutRecording { try relu(x.reshaped([1, 2])) }
        #expect(!y.requiresGradient)
    }

    @Test("malformed tensor construction is a typed error")
    func badConstruction() {
        #expect(throws: TensorError.self) { try Tensor(shape: [2, 3], values: [1, 2, 3]) }
        #expect(throws: TensorError.self) { try Tensor.zeros([2, 3]).reshaped([4, 2]) }
    }
}

@Suite("Batch slicing and concatenation")
struct BatchSliceTests {
    @Test("slices of a batch, joined again, give the batch back, in every layout; gradients go to the right images",
          arguments: [Layout.plain, .nhwc, .nChw8c, .nChw16c])
    func roundTrip(_ layout: Layout) throws {
        var generator = SeededGenerator(seed: 31)
        let shape = [5, 11, 3, 4]
        let values = randomArray(shape, &generator)
        let perImage = 11 * 3 * 4
        var pieces: [Int: Tensor] = [:]
        let x = try Tensor(shape: shape, values: values.floats).reordered(to: layout)
        let tracked = x.trackingGradient(into: { pieces[0] = try $0.reordered(to: .plain) })
        let parts = try [0..<2, 2..<3, 3..<5].map { try tracked.batchSlice($0) }
        for (part, range) in zip(parts, [0..<2, 2..<3, 3..<5]) {
            #expect(part.layout == layout && part.shape == [range.count, 11, 3, 4])
            #expect(try part.toArray() == Array(values.floats[(range.lowerBound * perImage)..<(range.upperBound * perImage)]))
        }
        let joined = try concatenateBatch(parts)
        #expect(joined.shape == shape && joined.layout == layout)
        #expect(try joined.toArray() == values.floats)
        // d(sum(w ⊙ joined))/dx = w, whichever slice each image went through.
        let upstream = randomArray(shape, &generator)
        try joined.backward(seed: try Tensor(shape: shape, values: upstream.floats))
        #expect(try #require(pieces[0]).toArray() == upstream.floats)
        // A slice alone: the gradient is zero outside it.
        let single = try x.trackingGradient(into: { pieces[1] = try $0.reordered(to: .plain) }).batchSlice(1..<3)
        try single.backward(seed: try Tensor(shape: [2, 11, 3, 4], values: Array(upstream.floats[..<(2 * perImage)])))
        let expected = [Float](repeating: 0, count: perImage) + Array(upstream.floats[..<(2 * perImage)])
            + [Float](repeating: 0, count: 2 * perImage)
        #expect(try #require(pieces[1]).toArray() == expected)
    }

    @Test("bad ranges and mismatched parts are typed errors")
    func errors() throws {
        let x = Tensor.zeros([3, 2, 2, 2])
        #expect(throws: TensorError.self) { try x.batchSlice(2..<4) }
        #expect(throws: TensorError.self) { try x.batchSlice(1..<1) }
        #expect(throws: TensorError.self) { try concatenateBatch([x, Tensor.zeros([3, 3, 2, 2])]) }
        #expect(throws: TensorError.self) { try concatenateBatch([]) }
    }
}
