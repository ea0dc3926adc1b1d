import Foundation
import Testing
import CFoveaKernels
@testable import FoveaTensor

/// Fovea's own channel kernels (`CFoveaKernels/ChannelOps.c`: squeeze-excitation's global average pooling and channel
/// scaling) on the layouts they take — blocked, and nhwc with 8k channels — against the Double reference and finite
/// differences. The shapes cover both ways the sums are shared out (few planes: every thread sums part of each plane;
/// many planes: the planes are shared out), 8-, 16- and 24/40-lane rows, and pixel counts that are not a multiple of
/// the four-pixel unrolling.
@Suite("Channel kernels")
struct ChannelKernelTests {
    static let shapes = [[1, 24, 7, 9], [5, 40, 5, 3], [9, 16, 3, 3], [3, 8, 11, 1]]

    @Test("the shapes reach Fovea's kernels", arguments: [Layout.nChw8c, .nChw16c, .nhwc])
    func covered(_ layout: Layout) {
        for shape in Self.shapes { #expect(ChannelPlanes(shape, layout) != nil, "\(shape) \(layout)") }
        #expect(ChannelPlanes([2, 12, 3, 3], .nhwc) == nil, "nhwc with 12 channels has no whole 8-lane rows")
        #expect(ChannelPlanes([2, 16, 3, 3], .plain) == nil)
    }

    @Test("global average pooling forward and backward", arguments: [Layout.nChw8c, .nChw16c, .nhwc], shapes)
    func globalAverage(_ layout: Layout, _ shape: [Int]) throws {
        var generator = SeededGenerator(seed: 61)
        let x = randomArray(shape, &generator)
        try checkOp("global average pool \(shape) \(layout)", [OpInput(array: x, layout: layout)], gradientLayout: layout,
                    forward: { t in
            let y = try adaptiveAvgPool2d(t[0], outputSize: [1, 1])
            #expect(y.layout == layout)
            return y
        }, reference: { a in Reference.adaptiveAvgPool2d(a[0], outputSize: [1, 1]) })
    }

    @Test("channel scaling forward and backward", arguments: [Layout.nChw8c, .nChw16c, .nhwc], shapes)
    func scaling(_ layout: Layout, _ shape: [Int]) throws {
        var generator = SeededGenerator(seed: 62)
        let x = randomArray(shape, &generator), s = randomArray([shape[0], shape[1], 1, 1], &generator)
        try checkOp("multiplyChannels \(shape) \(layout)", [OpInput(array: x, layout: layout), OpInput(array: s)],
                    gradientLayout: layout, forward: { t in
            let y = try multiplyChannels(t[0], by: t[1])
            #expect(y.layout == layout)
            return y
        }, reference: { r in Reference.multiplyChannels(r[0], by: r[1]) })
    }

    /// Blocked layouts pad the last block's lanes; what the kernels write there (the pooled gradient, the product)
    /// must be zero, or a later convolution would read garbage channels.
    @Test("padding lanes stay zero", arguments: [Layout.nChw8c, .nChw16c])
    func padding(_ layout: Layout) throws {
        var generator = SeededGenerator(seed: 63)
        let shape = [2, 20, 5, 7], block = layout.channelBlock, blocks = (20 + block - 1) / block, plane = 35
        let x = randomArray(shape, &generator), s = randomArray([2, 20, 1, 1], &generator)
        let box = GradientBox()
        let input = try Tensor(shape: shape, values: x.floats).reordered(to: layout).trackingGradient { box.value = $0 }
        let pooled = try adaptiveAvgPool2d(input, outputSize: [1, 1])
        let scaled = try multiplyChannels(input, by: Tensor(shape: [2, 20, 1, 1], values: s.floats))
        try (pooled.flattened().sum() + scaled.sum()).backward()
        let gradient = try #require(box.value)
        #expect(gradient.layout == layout)
        func paddingLanes(_ t: Tensor, pixels: Int) -> [Float] {
            var values: [Float] = []
            for image in 0..<2 {
                let base = (image * blocks + blocks - 1) * pixels * block
                for pixel in 0..<pixels { for lane in (20 % block)..<block { values.append(t.storage.pointer[base + pixel * block + lane]) } }
            }
            return values
        }
        #expect(paddingLanes(scaled, pixels: plane).allSatisfy { $0 == 0 })
        #expect(paddingLanes(pooled, pixels: 1).allSatisfy { $0 == 0 })
        #expect(paddingLanes(gradient, pixels: plane).allSatisfy { $0 == 0 })
    }
}

/// Inference convolutions followed by SiLU apply it with Fovea's kernel (`CFoveaKernels/Activation.c`, in place after
/// the convolution) instead of oneDNN's post-op. An identity 1×1 convolution passes values from −100 to 100 through it;
/// every element is checked against the exact SiLU in Double, on a small tensor (one thread) and on one large enough to
/// be shared out, with a tail that is not a multiple of the 16-float vector.
@Suite("SiLU kernel")
struct SiLUKernelTests {
    @Test("SiLU after an inference convolution, element by element", arguments: [[1, 3, 5, 7], [2, 3, 41, 53]])
    func silu(_ shape: [Int]) throws {
        let count = shape.reduce(1, *)
        let values = (0..<count).map { Float(-100 + 200 * Double($0) / Double(count - 1)) }
        var identity = [Float](repeating: 0, count: 9)
        for channel in 0..<3 { identity[channel * 3 + channel] = 1 }
        let x = try Tensor(shape: shape, values: values)
        let y = try Autodiff.withoutRecording {
            try conv2d(x, weight: Tensor(shape: [3, 3, 1, 1], values: identity), activation: .silu).reordered(to: .plain)
        }
        let actual = try y.toArray()
        var worstRelative = 0.0, worstAbsolute = 0.0
        for (input, output) in zip(values, actual) {
            let exact = Double(input) / (1 + Foundation.exp(-Double(input)))
            let difference = abs(Double(output) - exact)
            if abs(exact) > 1e-20 { worstRelative = max(worstRelative, difference / abs(exact)) }
            worstAbsolute = max(worstAbsolute, difference)
        }
        #expect(worstRelative < 5e-6, "largest relative error \(worstRelative)")
        #expect(worstAbsolute < 1e-5, "largest absolute error \(worstAbsolute)")
    }

    /// The portable loop (what runs without AVX-512) on the same values, tail included.
    @Test("the portable SiLU loop", arguments: [1001, 16, 5])
    func portable(_ count: Int) {
        var values = (0..<count).map { Float(-100 + 200 * Double($0) / Double(max(count - 1, 1))) }
        let inputs = values
        values.withUnsafeMutableBufferPointer { fovea_silu_portable($0.baseAddress, count) }
        for (input, output) in zip(inputs, values) {
            let exact = Double(input) / (1 + Foundation.exp(-Double(input)))
            let difference = abs(Double(output) - exact)
            #expect(difference <= 5e-6 * max(abs(exact), 1e-20) || difference < 1e-25, "SiLU(\(input)) = \(output), exact \(exact)")
        }
    }
}
