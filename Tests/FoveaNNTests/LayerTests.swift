import FoveaNN
import FoveaTensor
import Testing

/// A two-level model to check torchvision-style keys.
final class Block: Layer {
    let conv1: Conv2D
    let bn1: BatchNorm2D
    let downsample: Sequential?
    init(withDownsample: Bool) throws {
        conv1 = try Conv2D(3, 4, kernelSize: 3, padding: 1, bias: false)
        bn1 = try BatchNorm2D(4)
        downsample = withDownsample ? Sequential([try Conv2D(3, 4, kernelSize: 1, bias: false), try BatchNorm2D(4)]) : nil
    }
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try bn1(conv1(x))
        return try relu(y + (downsample?(x) ?? x))
    }
}

final class Net: Layer {
    let layer1: Sequential
    let fc: Linear
    init() throws {
        layer1 = Sequential([try Block(withDownsample: true), try Block(withDownsample: false)])
        fc = try Linear(4, 2)
    }
    func callAsFunction(_ x: Tensor) throws -> Tensor { try fc(adaptiveAvgPool2d(layer1(x), outputSize: [1, 1]).flattened()) }
}

@Suite("Layers")
struct LayerTests {
    @Test("parameter and buffer names follow torchvision's state-dict keys")
    func names() throws {
        let net = try Net()
        #expect(net.namedParameters().map(\.0) == [
            "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias",
            "layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight", "layer1.0.downsample.1.bias",
            "layer1.1.conv1.weight", "layer1.1.bn1.weight", "layer1.1.bn1.bias", "fc.weight", "fc.bias",
        ])
        #expect(net.namedBuffers().map(\.0).prefix(3) == [
            "layer1.0.bn1.running_mean", "layer1.0.bn1.running_var", "layer1.0.bn1.num_batches_tracked",
        ])
        // 3·4·9 + 8 + 3·4 + 8 + 4·4·9… counted independently from the shapes above.
        let expected = (4 * 3 * 9 + 4 + 4) + (4 * 3 + 4 + 4) + (4 * 3 * 9 + 4 + 4) + (2 * 4 + 2)
        #expect(net.parameterCount == expected)
    }

    @Test("train() and eval() reach nested layers")
    func modes() throws {
        let net = try Net()
        net.eval()
        let block = try #require(net.layer1.layers[1] as? Block)
        #expect(!block.bn1.isTraining)
        net.train()
        #expect(block.bn1.isTraining)
    }

    @Test("batch norm updates running statistics as PyTorch does (unbiased variance, momentum 0.1)")
    func runningStatistics() throws {
        var generator = SeededGenerator(seed: 3)
        let shape = [4, 3, 2, 5]
        let x = randomValues(shape.reduce(1, *), &generator)
        let bn = try BatchNorm2D(3)
        _ = try bn(try Tensor(shape: shape, values: x).reordered(to: .nChw8c))
        let reference = Reference.batchNormTraining(ReferenceArray(shape: shape, floats: x),
                                                    scale: ReferenceArray(shape: [3], repeating: 1),
                                                    shift: ReferenceArray(shape: [3], repeating: 0), epsilon: 1e-5)
        let mean = try bn.runningMean.value.toArray(), variance = try bn.runningVariance.value.toArray()
        for c in 0..<3 {
            #expect(abs(Double(mean[c]) - 0.1 * reference.mean[c]) < 1e-5)
            #expect(abs(Double(variance[c]) - (0.9 + 0.1 * reference.unbiasedVariance[c])) < 1e-5)
        }
        #expect(bn.batchesTracked.value.scalarValue == 1)
        // In evaluation mode the running statistics are used and left alone.
        bn.eval()
        let y = try bn(try Tensor(shape: shape, values: x))
        let expected = Reference.batchNormInference(ReferenceArray(shape: shape, floats: x),
                                                    scale: ReferenceArray(shape: [3], repeating: 1),
                                                    shift: ReferenceArray(shape: [3], repeating: 0),
                                                    runningMean: mean.map(Double.init),
                                                    runningVariance: variance.map(Double.init), epsilon: 1e-5)
        let actual = try y.toArray()
        #expect(zip(actual, expected.values).allSatisfy { abs(Double($0) - $1) < 1e-4 })
        #expect(try bn.runningMean.value.toArray() == mean)
    }

    @Test("a wrong input shape names the layer and both shapes")
    func wrongShape() throws {
        let conv = try Conv2D(3, 8, kernelSize: 3)
        do {
            _ = try conv(Tensor.zeros([1, 1, 8, 8]))
            Issue.record("no error")
        } catch let error as TensorError {
            #expect(error.description.contains("Conv2D(3→8)"))
            #expect(error.description.contains("(N, 3, H, W)") && error.description.contains("[1, 1, 8, 8]"))
        }
        #expect(throws: TensorError.self) { try Conv2D(3, 8, kernelSize: 0) }
        #expect(throws: TensorError.self) { try Linear(0, 3) }
    }

    @Test("initialisers draw from the documented ranges", arguments: [
        (Initializer.pytorchDefault, 1.0 / 3.0), (.kaimingUniform(fanOut: false), 2.0), (.kaimingNormal(fanOut: false), 2.0),
        (.xavierUniform, 2.0 * 75.0 / (75.0 + 48.0)), (.xavierNormal, 2.0 * 75.0 / (75.0 + 48.0)),
    ])
    func initialisers(_ initializer: Initializer, expectedVarianceTimesFanIn: Double) throws {
        // weight (16, 3, 5, 5): fan-in 75, fan-out 400; xavier uses (75 + 16·… ) — see fan definitions in Initialization.
        Initialization.seed(5)
        let shape = initializer == .xavierUniform || initializer == .xavierNormal ? [48, 75] : [16, 3, 5, 5]
        let values = try Initialization.make(shape, initializer).toArray().map(Double.init)
        let fanIn = 75.0
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
        #expect(abs(mean) < 0.02)
        #expect(abs(variance * fanIn / expectedVarianceTimesFanIn - 1) < 0.1, "variance \(variance)")
        if initializer == .pytorchDefault { #expect(values.allSatisfy { abs($0) <= 1 / fanIn.squareRoot() }) }
    }
}

func randomValues(_ count: Int, _ generator: inout SeededGenerator) -> [Float] {
    (0..<count).map { _ in Float(generator.nextNormal()) }
}
