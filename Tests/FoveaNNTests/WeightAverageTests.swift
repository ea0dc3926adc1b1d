import FoveaNN
import FoveaOptim
import FoveaTensor
import Testing

@Suite("Moving average of weights")
struct WeightAverageTests {
    @Test("shadow = d·shadow + (1−d)·value, and evaluation sees the average while training keeps its weights")
    func average() throws {
        let layer = try Linear(3, 2)
        let start = try layer.weight.value.toArray()
        let average = try WeightAverage(model: layer, decay: 0.5)
        layer.weight.value = Tensor(repeating: 4, shape: [2, 3])
        try average.update(from: layer)
        layer.weight.value = Tensor(repeating: 8, shape: [2, 3])
        try average.update(from: layer)
        // After two updates: 0.25·start + 0.25·4 + 0.5·8.
        let expected = start.map { 0.25 * $0 + 1 + 4 }
        let seen = try average.withAveragedWeights(in: layer) { try layer.weight.value.toArray() }
        #expect(zip(seen, expected).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(try layer.weight.value.toArray() == [Float](repeating: 8, count: 6))
        #expect(throws: TensorError.self) { try WeightAverage(model: layer, decay: 1) }
    }
}
