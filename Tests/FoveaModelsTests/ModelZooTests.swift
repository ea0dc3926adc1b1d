import Foundation
import FoveaModels
import FoveaNN
import FoveaONNX
import FoveaOptim
import FoveaTensor
import Testing

@Suite("Model zoo")
struct ModelZooTests {
    @Test("LeNet-5 has 61,706 parameters for 10 classes")
    func lenetParameterCount() throws {
        // conv1 6·1·25+6, conv2 16·6·25+16, fc1 120·400+120, fc2 84·120+84, fc3 10·84+10.
        let expected = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (120 * 400 + 120) + (84 * 120 + 84) + (10 * 84 + 10)
        #expect(expected == 61_706)
        #expect(try ModelZoo.make("lenet5", classCount: 10, inputChannels: 1).parameterCount == expected)
        #expect(try LeNet5().namedParameters().map(\.0) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                                            "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                                            "fc3.weight", "fc3.bias"])
    }

    /// The whole zoo on each architecture's smallest convenient input (`smallInputSize`, 32×32 for most) at batch 4:
    /// the model builds, gives finite logits of the right shape, has a finite non-zero gradient for every parameter
    /// set, and a small step against that gradient lowers the loss — a first-order check of the whole backward pass
    /// (a wrong gradient does not lower the loss at any small step). Deep or wide nets on a batch of 4 at 1×1 final
    /// maps are sharp (batch norm over 4 values, ReLU6 kinks): a step of 1e-4 in parameter norm can overshoot, so
    /// steps of 1e-4, 1e-5 and 1e-6 are tried and one of them must lower the loss. Speed is `fovea bench`'s job.
    @Test("every registered model: finite logits of the right shape, and a small step against the gradient lowers the loss",
          arguments: ModelZoo.names)
    func everyModel(_ name: String) throws {
        let entry = try ModelZoo.entry(name)
        Initialization.seed(1)
        let classes = 7
        let model = try entry.build(classes, entry.inputSize[0])
        var generator = SeededGenerator(seed: 2)
        let batch = 4
        let shape = [batch] + entry.smallInputSize
        let images = try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) })
        let labels = (0..<batch).map { Int32($0 % classes) }
        // Randomised layers (dropout, stochastic depth) are switched off so that the loss is a function of the
        // weights alone; batch norm keeps using the batch's statistics.
        for (_, layer) in model.namedLayers() where layer is any RandomizedLayer {
            (layer as? any ModeDependentLayer)?.isTraining = false
        }
        let logits = try model(images)
        #expect(logits.shape == [batch, classes])
        #expect(try logits.toArray().allSatisfy(\.isFinite))
        let before = try crossEntropy(logits: logits, labels: labels)
        try before.backward()
        let parameters = model.parameters()
        let norm = try clipGradientNorm(parameters, maximumNorm: .infinity)
        #expect(norm.isFinite && norm > 0)
        // Plain SGD from the same starting weights each time (auxiliary heads outside the loss get no gradient
        // and stay as they are).
        let start = parameters.map { $0.value.copy() }
        let optimizer = try SGD(parameters: parameters, learningRate: 1e-4)
        var losses: [Float] = []
        for stepNorm in [Float(1e-4), 1e-5, 1e-6] {
            if !losses.isEmpty { for (parameter, value) in zip(parameters, start) { parameter.value = value.copy() } }
            optimizer.learningRate = stepNorm / max(norm, 1)
            try optimizer.step()
            let after = try Autodiff.withoutRecording { try crossEntropy(logits: model(images), labels: labels) }
            losses.append(after.scalarValue)
            if after.scalarValue < before.scalarValue { break }
        }
        #expect(losses.last! < before.scalarValue, "\(name): loss \(before.scalarValue), after steps of 1e-4…1e-6: \(losses)")
        // Writing and reading a model as ONNX costs time in proportion to its weights (VGG's classifier alone is
        // 0.4 GB): the suite round-trips every model up to 30 M parameters and one of each larger family (AlexNet,
        // VGG-11-BN); FOVEA_ONNX_ZOO_ALL=1 round-trips all 38.
        if model.parameterCount <= 30_000_000 || ["alexnet", "vgg11_bn"].contains(name)
            || ProcessInfo.processInfo.environment["FOVEA_ONNX_ZOO_ALL"] != nil {
            try onnxRoundTrip(model, name: name, images: images)
        }
    }

    /// ONNX export of every model, traced at batch 1 with a symbolic batch, imported back into Fovea (its kernels and
    /// fusions), gives the model's own eval-mode logits on the batch of 4 within relative error 1e-4.
    func onnxRoundTrip(_ model: Layer, name: String, images: Tensor) throws {
        model.eval()
        let expected = try Autodiff.withoutRecording { try model(images) }.toArray()
        let bytes = try ONNXExporter.serialize(model, inputShape: Array(images.shape.dropFirst()))
        let imported = try ONNXModel(graph: ONNXGraph(bytes: bytes, path: "\(name).onnx"))
        #expect(imported.namedParameters().count > 0)
        let logits = try Autodiff.withoutRecording { try imported(images) }.toArray()
        let scale = expected.map(abs).max() ?? 1
        let worst = zip(logits, expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(logits.count == expected.count && worst / max(scale, .leastNormalMagnitude) < 1e-4,
                "\(name): ONNX round trip differs by \(worst) (largest logit \(scale))")
    }

    /// torchvision's documented GFLOPS (multiply-adds ×1e-9 at the weights' evaluation size), from its model pages.
    static let documentedGigaMultiplyAdds: [(String, Double)] = [
        ("alexnet", 0.71), ("googlenet", 1.50), ("resnet18", 1.81), ("resnet50", 4.09), ("resnext50_32x4d", 4.23),
        ("mobilenet_v2", 0.30), ("mobilenet_v3_large", 0.22), ("efficientnet_b0", 0.39), ("efficientnet_b1", 0.69),
    ]

    @Test("multiply-adds at the default input size are within 1 % of torchvision's documented figure",
          arguments: documentedGigaMultiplyAdds)
    func multiplyAdds(_ name: String, _ documented: Double) throws {
        let entry = try ModelZoo.entry(name)
        // Multiply-adds depend on the shapes alone: built without drawing weights.
        let model = try Initialization.withoutDrawing { try entry.build(1000, 3) }
        model.eval()
        let input = Tensor.zeros([1] + entry.inputSize)
        let counted = try OperationCounter.countMultiplyAdds { _ = try Autodiff.withoutRecording { try model(input) } }
        // The documented figures have two decimals, so allow their rounding on top of the 1 %.
        #expect(abs(Double(counted) / 1e9 - documented) <= 0.01 * documented + 0.005, "\(name): \(Double(counted) / 1e9) G")
    }

    @Test("CIFAR ResNet-20 with projection shortcuts (option B) has torch_anchor.py's 272,474 parameters and runs")
    func projectionShortcuts() throws {
        // Option A (0.27M in He et al. Table 6) plus two 1×1 projections with batch norm: 16·32 + 2·32 and 32·64 + 2·64.
        let model = try CIFARResNet(depth: 20, classCount: 10, inputChannels: 3, shortcut: .projection)
        #expect(model.parameterCount == 272_474)
        #expect(model.parameterCount - (try CIFARResNet(depth: 20)).parameterCount == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64)
        let logits = try Autodiff.withoutRecording { try model(Tensor.zeros([2, 3, 32, 32])) }
        #expect(logits.shape == [2, 10])
    }

    @Test("building without drawing gives the same shapes and constants, zero weights, and leaves the generator alone",
          arguments: ["resnet18", "mobilenet_v3_small", "googlenet"])
    func withoutDrawing(_ name: String) throws {
        Initialization.seed(9)
        let drawn = try ModelZoo.make(name, classCount: 10, inputChannels: 3)
        let afterDrawn = Initialization.make([4], .normal(std: 1))
        Initialization.seed(9)
        let skipped = try Initialization.withoutDrawing { try ModelZoo.make(name, classCount: 10, inputChannels: 3) }
        // The generator did not move: the next draw is the one a fresh seed gives.
        let next = Initialization.make([4], .normal(std: 1))
        Initialization.seed(9)
        #expect(try next.toArray() == Initialization.make([4], .normal(std: 1)).toArray())
        #expect(try next.toArray() != afterDrawn.toArray())
        let (a, b) = (drawn.stateEntries(), skipped.stateEntries())
        #expect(a.map(\.0) == b.map(\.0) && a.map(\.1.shape) == b.map(\.1.shape))
        var randomTensors = 0
        for ((entryName, x), (_, y)) in zip(a, b) {
            let (values, skippedValues) = (try x.toArray(), try y.toArray())
            if Set(values).count <= 1 {
                #expect(values == skippedValues, "\(name): constant \(entryName) differs")   // batch-norm scales, shifts, statistics
            } else {
                randomTensors += 1
                #expect(skippedValues.allSatisfy { $0 == 0 }, "\(name): \(entryName) was drawn")
            }
        }
        #expect(randomTensors > 0)
        // Drawing is back on after the closure.
        #expect(Set(try Initialization.make([16], .normal(std: 1)).toArray()).count > 1)
    }

    @Test("unknown names are a typed error listing the known ones")
    func unknown() {
        #expect(throws: ModelZooError.unknownModel(name: "resnet9000", known: ModelZoo.names)) {
            try ModelZoo.make("resnet9000", classCount: 10, inputChannels: 3)
        }
    }

    @Test("LeNet-5 rejects an input of the wrong size, naming both shapes")
    func wrongInput() throws {
        #expect(throws: TensorError.shapeMismatch(operation: "LeNet5", expected: "(N, 1, 28, 28)", actual: [2, 1, 32, 32])) {
            try LeNet5()(Tensor.zeros([2, 1, 32, 32]))
        }
    }
}
