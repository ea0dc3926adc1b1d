import Foundation
@testable import FoveaONNX
import FoveaNN
import FoveaOptim
import FoveaTensor
import Testing

/// Imported graphs train: initializers are Parameters whose gradients (through the fused convolution's unfused
/// training path, batch norm in both modes, pooling, flattening and Gemm) match central finite differences, and SGD on
/// them lowers a loss.
@Suite("Imported ONNX graphs train")
struct TrainableImportTests {
    /// x (2, 2, 5, 5) → Conv 3×3 pad 1 (3 out) → BatchNormalization → Relu → GlobalAveragePool → Flatten → Gemm (4 out).
    static func model() throws -> ONNXModel {
        var model = HostileONNXTests.validModel()
        var generator = SeededGenerator(seed: 11)
        func tensor(_ name: String, _ dims: [Int], around center: Float = 0, spread: Float = 0.5) -> Onnx_TensorProto {
            var tensor = Onnx_TensorProto()
            (tensor.name, tensor.dataType, tensor.dims) = (name, 1, dims.map(Int64.init))
            let values = (0..<dims.reduce(1, *)).map { _ in center + spread * Float(generator.nextNormal()) }
            tensor.rawData = values.withUnsafeBytes { Data($0) }
            return tensor
        }
        model.graph.initializer = [tensor("w", [3, 2, 3, 3]), tensor("b", [3]), tensor("scale", [3], around: 1, spread: 0.2),
                                   tensor("shift", [3], spread: 0.2), tensor("mean", [3], spread: 0.1),
                                   tensor("var", [3], around: 1, spread: 0.1), tensor("fc", [4, 3]), tensor("fc_bias", [4])]
        model.graph.node = [
            HostileONNXTests.node("Conv", ["x", "w", "b"], ["c"], name: "conv", [attribute("pads", ints: [1, 1, 1, 1])]),
            HostileONNXTests.node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"], name: "bn"),
            HostileONNXTests.node("Relu", ["n"], ["r"], name: "relu"),
            HostileONNXTests.node("GlobalAveragePool", ["r"], ["p"], name: "pool"),
            HostileONNXTests.node("Flatten", ["p"], ["f"], name: "flatten"),
            HostileONNXTests.node("Gemm", ["f", "fc", "fc_bias"], ["y"], name: "fc", [attribute("transB", int: 1)]),
        ]
        model.graph.input = [valueInfo("x", [2, 2, 5, 5].map(fixed))]
        model.graph.output = [valueInfo("y", [2, 4].map(fixed))]
        return try ONNXModel(graph: ONNXGraph(bytes: try model.serializedBytes(), path: "trainable.onnx"))
    }

    static let input: Tensor = {
        var generator = SeededGenerator(seed: 3)
        return try! Tensor(shape: [2, 2, 5, 5], values: (0..<100).map { _ in Float(generator.nextNormal()) })
    }()
    static let weights: [Float] = (0..<8).map { Float($0 % 3) - 0.7 }

    static func loss(_ model: ONNXModel) throws -> Tensor {
        try broadcast(try model(input), try Tensor(shape: [2, 4], values: weights), .multiply).sum()
    }

    @Test(arguments: [false, true])
    func gradientsMatchFiniteDifferences(training: Bool) throws {
        let model = try Self.model()
        #expect(model.namedParameters().map(\.0).sorted() == ["b", "fc", "fc_bias", "scale", "shift", "w"])
        #expect(model.namedBuffers().map(\.0).sorted() == ["mean", "var"])
        if training { model.train() } else { model.eval() }
        try Self.loss(model).backward()
        for (name, parameter) in model.namedParameters() {
            let gradient = try #require(parameter.grad, "\(name) got no gradient").toArray()
            let original = try parameter.value.toArray()
            for index in Set([0, original.count / 2, original.count - 1]) {
                func lossAt(_ delta: Float) throws -> Double {
                    var values = original
                    values[index] += delta
                    parameter.value = try Tensor(shape: parameter.value.shape, values: values)
                    return Double(try Autodiff.withoutRecording { try Self.loss(model) }.scalarValue)
                }
                let h: Float = 1e-2
                let numeric = (try lossAt(h) - lossAt(-h)) / Double(2 * h)
                parameter.value = try Tensor(shape: parameter.value.shape, values: original)
                #expect(abs(Double(gradient[index]) - numeric) <= 2e-2 * max(1, abs(numeric)),
                        "\(training ? "training" : "eval") \(name)[\(index)]: tape \(gradient[index]), finite difference \(numeric)")
            }
        }
    }

    @Test func sgdLowersTheLossAndMovesRunningStatistics() throws {
        let model = try Self.model()
        model.train()
        let meanBefore = try #require(model.namedBuffers().first { $0.0 == "mean" }).1.value.toArray()
        let optimizer = try SGD(parameters: model.parameters(), learningRate: 0.05)
        let first = try Self.loss(model)
        var last = first.scalarValue
        for _ in 0..<20 {
            for parameter in model.parameters() { parameter.grad = nil }
            let loss = try Self.loss(model)
            try loss.backward()
            try optimizer.step()
            last = loss.scalarValue
        }
        #expect(last < first.scalarValue - 0.1, "loss \(first.scalarValue) → \(last)")
        let meanAfter = try #require(model.namedBuffers().first { $0.0 == "mean" }).1.value.toArray()
        #expect(meanAfter != meanBefore, "training-mode batch norm updates the imported running mean")
    }
}
