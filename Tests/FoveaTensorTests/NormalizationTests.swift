import FoveaTensor
import Testing

@Suite("Normalisation ops against the reference")
struct NormalizationTests {
    @Test("batch norm, training mode", arguments: [[2, 5, 3, 4], [3, 16, 2, 3], [4, 3, 1, 1]], bothLayouts)
    func batchNormTrain(_ shape: [Int], layout: Layout) throws {
        var generator = SeededGenerator(seed: 31)
        let x = randomArray(shape, &generator, scale: 2)
        let scale = randomArray([shape[1]], &generator), shift = randomArray([shape[1]], &generator)
        try checkOp("batchNorm train \(shape) \(layout)",
                    [OpInput(array: x, layout: layout), OpInput(array: scale), OpInput(array: shift)], gradientLayout: layout,
                    forward: { t in try batchNormTraining(t[0], scale: t[1], shift: t[2], epsilon: 1e-5).output },
                    reference: { r in Reference.batchNormTraining(r[0], scale: r[1], shift: r[2], epsilon: 1e-5).output })
        // The statistics it returns are the batch mean and biased variance.
        let ours = try batchNormTraining(try Tensor(shape: shape, values: x.floats).reordered(to: layout),
                                         scale: try Tensor(shape: [shape[1]], values: scale.floats),
                                         shift: try Tensor(shape: [shape[1]], values: shift.floats), epsilon: 1e-5)
        let expected = Reference.batchNormTraining(x, scale: scale, shift: shift, epsilon: 1e-5)
        #expect(relativeError(ours.mean.map(Double.init), expected.mean) < 1e-5)
        #expect(relativeError(ours.variance.map(Double.init), expected.variance) < 1e-4)
    }

    @Test("batch norm, inference mode", arguments: bothLayouts)
    func batchNormInfer(_ layout: Layout) throws {
        var generator = SeededGenerator(seed: 32)
        let shape = [2, 6, 3, 3]
        let x = randomArray(shape, &generator)
        let scale = randomArray([6], &generator), shift = randomArray([6], &generator)
        let mean = randomArray([6], &generator).values, variance = randomArray([6], &generator).values.map { $0 * $0 + 0.5 }
        let meanTensor = try Tensor(shape: [6], values: mean.map(Float.init))
        let varianceTensor = try Tensor(shape: [6], values: variance.map(Float.init))
        try checkOp("batchNorm inference \(layout)",
                    [OpInput(array: x, layout: layout), OpInput(array: scale), OpInput(array: shift)], gradientLayout: layout,
                    forward: { t in
                        try batchNormInference(t[0], scale: t[1], shift: t[2], mean: meanTensor, variance: varianceTensor,
                                               epsilon: 1e-5)
                    }, reference: { r in
                        Reference.batchNormInference(r[0], scale: r[1], shift: r[2], runningMean: mean,
                                                     runningVariance: variance, epsilon: 1e-5)
                    })
    }

    @Test("local response normalisation, odd and even windows", arguments: [5, 4, 3], bothLayouts)
    func lrn(size: Int, layout: Layout) throws {
        var generator = SeededGenerator(seed: 33)
        let x = randomArray([2, 7, 3, 3], &generator, scale: 3)
        try checkOp("LRN size \(size) \(layout)", [OpInput(array: x, layout: layout)], gradientLayout: layout,
                    forward: { t in try localResponseNorm(t[0], size: size, alpha: 0.01, beta: 0.75, k: 2) },
                    reference: { r in Reference.localResponseNorm(r[0], size: size, alpha: 0.01, beta: 0.75, k: 2) })
    }

    /// AlexNet's case on AVX2 CPUs: 16 channels of plain NCHW get oneDNN's jit forward pass, which writes a workspace,
    /// and a reference backward pass, which takes none.
    @Test("local response normalisation on plain NCHW with 16 channels, AlexNet's window", arguments: bothLayouts)
    func lrnSixteenChannels(layout: Layout) throws {
        var generator = SeededGenerator(seed: 34)
        let x = randomArray([2, 16, 5, 5], &generator, scale: 3)
        try checkOp("LRN 16 channels \(layout)", [OpInput(array: x, layout: layout)], gradientLayout: layout,
                    forward: { t in try localResponseNorm(t[0], size: 5, alpha: 1e-4, beta: 0.75, k: 2) },
                    reference: { r in Reference.localResponseNorm(r[0], size: 5, alpha: 1e-4, beta: 0.75, k: 2) })
    }
}
