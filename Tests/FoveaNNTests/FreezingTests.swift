import FoveaNN
import FoveaOptim
import FoveaTensor
import Foundation
import Testing

@Suite("Frozen parameters and per-parameter learning rates")
struct FreezingTests {
    func values(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        return randomValues(count, &generator)
    }

    @Test("a frozen parameter gets no gradient, no update and no optimizer state; the others train as before")
    func frozenParameter() throws {
        let layer = try Linear(4, 3)
        let input = try Tensor(shape: [2, 4], values: values(8, seed: 1))
        let weightBefore = try layer.weight.value.toArray()
        layer.weight.isFrozen = true
        let optimizer = try SGD(parameters: layer.parameters(), learningRate: 0.1, momentum: 0.9, weightDecay: 0.01)
        for _ in 0..<2 {
            optimizer.zeroGrad()
            try layer(input).sum().backward()
            #expect(layer.weight.grad == nil)
            #expect(layer.bias?.grad != nil)
            try optimizer.step()
        }
        #expect(try layer.weight.value.toArray() == weightBefore)
        #expect(Set(optimizer.state().tensors.keys) == ["momentum.1"])
        // Unfrozen, it trains again.
        layer.weight.isFrozen = false
        optimizer.zeroGrad()
        try layer(input).sum().backward()
        #expect(layer.weight.grad != nil)
        try optimizer.step()
        #expect(try layer.weight.value.toArray() != weightBefore)
    }

    @Test("a learning-rate factor of s is the same update as a learning rate × s, for every optimizer",
          arguments: ["sgd", "adam", "rmsprop"])
    func learningRateScale(_ kind: String) throws {
        func make(_ parameters: [Parameter], _ rate: Float) throws -> Optimizer {
            switch kind {
            case "adam": return try Adam(parameters: parameters, learningRate: rate, weightDecay: 0.01)
            case "rmsprop": return try RMSprop(parameters: parameters, learningRate: rate, momentum: 0.5)
            default: return try SGD(parameters: parameters, learningRate: rate, momentum: 0.9, weightDecay: 0.01)
            }
        }
        let start = values(6, seed: 2)
        let scaled = [Parameter(try Tensor(shape: [6], values: start)), Parameter(try Tensor(shape: [6], values: start))]
        let plain = [Parameter(try Tensor(shape: [6], values: start)), Parameter(try Tensor(shape: [6], values: start))]
        let a = try make(scaled, 0.1), b = try make(plain, 0.1)
        a.setLearningRateScale(0.25, for: [scaled[1]])
        let c = try make([plain[1]], 0.1 * 0.25)
        for step in 0..<4 {
            let gradient = try Tensor(shape: [6], values: values(6, seed: 10 + UInt64(step)))
            for p in scaled + plain { p.grad = gradient }
            try a.step()
            plain[0].grad = gradient
            plain[1].grad = nil
            try b.step()
            plain[1].grad = gradient
            try c.step()
        }
        // Parameter 0 kept factor 1 (as with the plain optimizer); parameter 1 moved as with a rate of 0.025.
        #expect(try scaled[0].value.toArray() == plain[0].value.toArray())
        #expect(try scaled[1].value.toArray() == plain[1].value.toArray())
        #expect(try scaled[1].value.toArray() != scaled[0].value.toArray())
    }

    /// PyTorch keeps Adam's step per parameter: a parameter that first receives a gradient at step 5 (unfrozen late)
    /// makes Adam's first-step move of exactly lr·sign(g) (m̂/√v̂ = ±1), not the 0.55·lr a global t = 5 would give.
    @Test("Adam's bias corrections count the steps of each parameter")
    func adamPerParameterSteps() throws {
        let early = Parameter(try Tensor(shape: [3], values: [0, 0, 0]))
        let late = Parameter(try Tensor(shape: [3], values: [1, 1, 1]))
        let optimizer = try Adam(parameters: [early, late], learningRate: 0.01, epsilon: 0)
        for _ in 0..<4 {
            early.grad = try Tensor(shape: [3], values: [1, -2, 3])
            try optimizer.step()
        }
        early.grad = try Tensor(shape: [3], values: [1, -2, 3])
        late.grad = try Tensor(shape: [3], values: [0.5, -4, 2])
        try optimizer.step()
        let moved = try late.value.toArray().map { $0 - 1 }
        #expect(zip(moved, [-0.01, 0.01, -0.01] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 }, "\(moved)")
        #expect(optimizer.state().counters["step.1"] == 1 && optimizer.state().counters["step.0"] == 5)
        // Restored from that state, the counts carry on.
        let restored = try Adam(parameters: [early, late], learningRate: 0.01, epsilon: 0)
        try restored.restore(optimizer.state())
        #expect(restored.parameterSteps == [5, 1])
    }
}
