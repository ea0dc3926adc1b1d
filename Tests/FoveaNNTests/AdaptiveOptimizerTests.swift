import FoveaNN
import FoveaOptim
import FoveaTensor
import Foundation
import Testing

@Suite("Adam, AdamW, RMSprop, clipping and the other schedules")
struct AdaptiveOptimizerTests {
    func data() -> ([Float], [[Float]]) {
        var generator = SeededGenerator(seed: 12)
        return (randomValues(8, &generator), (0..<5).map { _ in randomValues(8, &generator) })
    }

    func run(_ optimizer: Optimizer, _ parameter: Parameter, _ gradients: [[Float]]) throws -> [Float] {
        for g in gradients {
            parameter.grad = try Tensor(shape: [8], values: g)
            try optimizer.step()
        }
        return try parameter.value.toArray()
    }

    @Test("Adam and AdamW follow PyTorch's update written out in Double", arguments: [false, true])
    func adam(decoupled: Bool) throws {
        let (initial, gradients) = data()
        let parameter = Parameter(try Tensor(shape: [8], values: initial))
        let optimizer = try Adam(parameters: [parameter], learningRate: 0.01, weightDecay: 0.1, decoupled: decoupled)
        let actual = try run(optimizer, parameter, gradients)
        var w = initial.map(Double.init), m = [Double](repeating: 0, count: 8), v = m
        for (t, g) in gradients.enumerated() {
            for i in 0..<8 {
                var d = Double(g[i])
                if decoupled { w[i] -= 0.01 * 0.1 * w[i] } else { d += 0.1 * w[i] }
                m[i] = 0.9 * m[i] + 0.1 * d
                v[i] = 0.999 * v[i] + 0.001 * d * d
                let mHat = m[i] / (1 - pow(0.9, Double(t + 1))), vHat = v[i] / (1 - pow(0.999, Double(t + 1)))
                w[i] -= 0.01 * mHat / (vHat.squareRoot() + 1e-8)
            }
        }
        #expect(zip(actual, w).allSatisfy { abs(Double($0) - $1) < 1e-5 })
    }

    @Test("RMSprop, PyTorch and TensorFlow style, with and without momentum", arguments: [false, true], [0.0, 0.9])
    func rmsprop(tensorFlowStyle: Bool, momentum: Double) throws {
        let (initial, gradients) = data()
        let parameter = Parameter(try Tensor(shape: [8], values: initial))
        let optimizer = try RMSprop(parameters: [parameter], learningRate: 0.01, alpha: 0.9, epsilon: 1e-3,
                                    momentum: Float(momentum), weightDecay: 0.01, tensorFlowStyle: tensorFlowStyle)
        let actual = try run(optimizer, parameter, gradients)
        var w = initial.map(Double.init), v = [Double](repeating: tensorFlowStyle ? 1 : 0, count: 8)
        var b = [Double](repeating: 0, count: 8)
        for g in gradients {
            for i in 0..<8 {
                let d = Double(g[i]) + 0.01 * w[i]
                v[i] = 0.9 * v[i] + 0.1 * d * d
                let denominator = tensorFlowStyle ? (v[i] + 1e-3).squareRoot() : v[i].squareRoot() + 1e-3
                if momentum > 0 { b[i] = momentum * b[i] + d / denominator; w[i] -= 0.01 * b[i] }
                else { w[i] -= 0.01 * d / denominator }
            }
        }
        #expect(zip(actual, w).allSatisfy { abs(Double($0) - $1) < 1e-5 })
    }

    @Test("weight decay can skip biases and normalisation parameters")
    func decayPolicy() throws {
        let weight = Parameter(Tensor(repeating: 1, shape: [2, 2])), bias = Parameter(Tensor(repeating: 1, shape: [2]))
        let optimizer = try SGD(parameters: [weight, bias], learningRate: 0.5, weightDecay: 0.1,
                                weightDecayPolicy: .excludeBiasAndNormalization)
        weight.grad = Tensor.zeros([2, 2])
        bias.grad = Tensor.zeros([2])
        try optimizer.step()
        #expect(try weight.value.toArray().allSatisfy { abs($0 - 0.95) < 1e-7 })
        #expect(try bias.value.toArray() == [1, 1])
    }

    @Test("gradient clipping by global norm")
    func clipping() throws {
        let a = Parameter(Tensor.zeros([2])), b = Parameter(Tensor.zeros([1]))
        a.grad = try Tensor(shape: [2], values: [3, 0])
        b.grad = try Tensor(shape: [1], values: [4])
        let norm = try clipGradientNorm([a, b], maximumNorm: 1)
        #expect(abs(norm - 5) < 1e-6)
        let clipped = try a.grad!.toArray() + b.grad!.toArray()
        let newNorm = clipped.reduce(0) { $0 + $1 * $1 }.squareRoot()
        #expect(abs(newNorm - 1) < 1e-5)
        // Below the limit nothing changes.
        #expect(try clipGradientNorm([a, b], maximumNorm: 10) < 10)
        #expect(try a.grad!.toArray() == Array(clipped.prefix(2)))
    }

    @Test("one-cycle matches torch.optim.lr_scheduler.OneCycleLR(max_lr=0.1, total_steps=20)")
    func oneCycle() {
        // Printed by PyTorch 2.15 for these arguments (defaults: pct_start 0.3, div 25, final div 1e4, cosine).
        let torch: [Float] = [0.004, 0.01316718, 0.03716718, 0.06683282, 0.09083282, 0.1, 0.0987464, 0.09504846,
                              0.08909162, 0.08117457, 0.0716943, 0.0611262, 0.0500002, 0.0388742, 0.0283061,
                              0.01882583, 0.01090878, 0.00495194, 0.001254, 4e-07]
        let schedule = LearningRateSchedule.oneCycle(totalSteps: 20, warmupFraction: 0.3, divisor: 25, finalDivisor: 1e4)
        for (step, expected) in torch.enumerated() {
            #expect(abs(schedule.learningRate(base: 0.1, step: step) - expected) < 1e-6, "step \(step)")
        }
    }

    @Test("multi-step, exponential and warm-up")
    func otherSchedules() {
        let multi = LearningRateSchedule.multiStep(milestones: [3, 6], gamma: 0.1)
        #expect(zip((0..<8).map { multi.learningRate(base: 1, step: $0) }, [1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])
            .allSatisfy { abs($0 - Float($1)) < 1e-7 })
        let exponential = LearningRateSchedule.exponential(gamma: 0.5)
        #expect(exponential.learningRate(base: 8, step: 3) == 1)
        let warm = LearningRateSchedule.warmup(steps: 4, startFactor: 0.25, then: .constant)
        #expect((0..<6).map { warm.learningRate(base: 1, step: $0) } == [0.25, 0.4375, 0.625, 0.8125, 1, 1])
        let warmCosine = LearningRateSchedule.warmup(steps: 2, startFactor: 0, then: .cosine(totalSteps: 10, minimum: 0))
        #expect(warmCosine.learningRate(base: 1, step: 2) == 1)
        #expect(warmCosine.learningRate(base: 1, step: 12) < 1e-7)
    }

    @Test("reduce on plateau waits `patience` evaluations, then scales")
    func plateau() {
        var policy = ReduceOnPlateau(factor: 0.5, patience: 2, maximize: false)
        let scales = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.9, 0.9, 0.9].map { policy.record($0) }
        #expect(scales == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25])
        #expect(policy.apply(to: 0.1) == 0.025)
    }
}
