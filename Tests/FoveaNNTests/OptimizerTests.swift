import FoveaNN
import FoveaOptim
import FoveaTensor
import Testing

@Suite("SGD and schedules")
struct OptimizerTests {
    /// PyTorch's SGD rule written out in Double, independently of the Float implementation.
    func referenceSGD(weights: [Double], gradients: [[Double]], lr: Double, momentum: Double, decay: Double,
                      nesterov: Bool) -> [Double] {
        var w = weights
        var buffer: [Double]?
        for g in gradients {
            let d = zip(g, w).map { $0 + decay * $1 }
            if momentum == 0 { w = zip(w, d).map { $0 - lr * $1 }; continue }
            buffer = buffer.map { b in zip(b, d).map { momentum * $0 + $1 } } ?? d
            let step = nesterov ? zip(d, buffer!).map { $0 + momentum * $1 } : buffer!
            w = zip(w, step).map { $0 - lr * $1 }
        }
        return w
    }

    @Test("matches the reference update rule", arguments: [(0.0, 0.0, false), (0.9, 5e-4, false), (0.9, 1e-2, true)])
    func sgd(_ settings: (Double, Double, Bool)) throws {
        let (momentum, decay, nesterov) = settings
        var generator = SeededGenerator(seed: 8)
        let initial = randomValues(10, &generator)
        let gradients = (0..<4).map { _ in randomValues(10, &generator) }
        let parameter = Parameter(try Tensor(shape: [10], values: initial))
        let optimizer = try SGD(parameters: [parameter], learningRate: 0.1, momentum: Float(momentum),
                                weightDecay: Float(decay), nesterov: nesterov)
        for g in gradients {
            parameter.grad = try Tensor(shape: [10], values: g)
            try optimizer.step()
        }
        let expected = referenceSGD(weights: initial.map(Double.init), gradients: gradients.map { $0.map(Double.init) },
                                    lr: 0.1, momentum: momentum, decay: decay, nesterov: nesterov)
        let actual = try parameter.value.toArray()
        #expect(zip(actual, expected).allSatisfy { abs(Double($0) - $1) < 1e-5 })
        optimizer.zeroGrad()
        #expect(parameter.grad == nil)
    }

    @Test("invalid settings are rejected")
    func invalid() {
        #expect(throws: TensorError.self) { try SGD(parameters: [], learningRate: -1) }
        #expect(throws: TensorError.self) { try SGD(parameters: [], learningRate: 0.1, momentum: 0, nesterov: true) }
    }

    @Test("schedules")
    func schedules() {
        let cosine = LearningRateSchedule.cosine(totalSteps: 100, minimum: 0)
        #expect(cosine.learningRate(base: 0.1, step: 0) == 0.1)
        #expect(abs(cosine.learningRate(base: 0.1, step: 50) - 0.05) < 1e-7)
        #expect(cosine.learningRate(base: 0.1, step: 100) < 1e-8)
        // Monotone decreasing over the half period.
        let rates = (0...100).map { cosine.learningRate(base: 0.1, step: $0) }
        #expect(zip(rates, rates.dropFirst()).allSatisfy { $0 >= $1 })
        let step = LearningRateSchedule.step(stepSize: 10, gamma: 0.5)
        #expect(step.learningRate(base: 1, step: 9) == 1)
        #expect(step.learningRate(base: 1, step: 10) == 0.5)
        #expect(step.learningRate(base: 1, step: 25) == 0.25)
        #expect(LearningRateSchedule.constant.learningRate(base: 0.3, step: 1000) == 0.3)
    }
}
