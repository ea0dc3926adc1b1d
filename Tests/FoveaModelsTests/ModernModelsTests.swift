import Foundation
import FoveaModels
import FoveaNN
import FoveaTensor
import Testing

@Suite("Modern models: GoogLeNet, Inception v3, MobileNet, EfficientNet")
struct ModernModelsTests {
    /// Parameter counts at 1000 classes: torchvision's `sum(p.numel() for p in m.parameters())` (GoogLeNet with
    /// aux_logits=False, Inception v3 with its default AuxLogits); MobileNet v1 from Howard et al. Table 1 with BN.
    static let counts: [(String, Int)] = [
        ("googlenet", 6_624_904), ("inception_v3", 27_161_264), ("mobilenet_v1", 4_231_976),
        ("mobilenet_v2", 3_504_872), ("mobilenet_v3_small", 2_542_856), ("mobilenet_v3_large", 5_483_032),
        ("efficientnet_b0", 5_288_548), ("efficientnet_b4", 19_341_616), ("efficientnet_b7", 66_347_960),
    ]

    @Test("parameter counts match torchvision at 1000 classes", arguments: counts)
    func parameterCount(_ name: String, _ expected: Int) throws {
        // Counting needs the shapes only: built without drawing weights.
        #expect(try Initialization.withoutDrawing { try ModelZoo.make(name, classCount: 1000, inputChannels: 3) }.parameterCount
                    == expected)
    }

    static let fixtureModels = ["googlenet", "inception_v3", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0"]

    @Test("state-dict keys and shapes equal torchvision's", arguments: fixtureModels)
    func torchvisionKeys(_ name: String) throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/\(name).keys.txt")
        let expected: [(String, [Int])] = try String(contentsOf: fixture, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") }.map { line in
                let fields = line.split(separator: " ", omittingEmptySubsequences: false)
                let shape = fields.count > 1 && !fields[1].isEmpty ? fields[1].split(separator: "x").compactMap { Int($0) } : []
                return (String(fields[0]), shape)
            }
        let actual = try Initialization.withoutDrawing { try ModelZoo.make(name, classCount: 1000, inputChannels: 3) }
            .stateEntries().map { ($0.0, $0.1.shape) }
        #expect(actual.map(\.0) == expected.map(\.0))
        #expect(actual.map(\.1) == expected.map(\.1))
    }

    @Test("GoogLeNet's auxiliary heads add aux1/aux2 and produce logits in training mode only")
    func googLeNetAuxiliaryHeads() throws {
        Initialization.seed(5)
        let model = try GoogLeNet(classCount: 10, inputChannels: 3, auxiliaryClassifiers: true)
        // Each head: 1×1 conv to 128 (no bias) + its batch norm, fc1 2048→1024, fc2 1024→10.
        func head(_ inputChannels: Int) -> Int { inputChannels * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * 10 + 10 }
        #expect(model.parameterCount == (try GoogLeNet(classCount: 10).parameterCount) + head(512) + head(528))
        #expect(model.namedParameters().contains { $0.0 == "aux2.fc2.weight" })
        #expect(model.auxiliaryLossWeight == 0.3)
        var generator = SeededGenerator(seed: 6)
        let images = try Tensor(shape: [2, 3, 64, 64], values: (0..<(2 * 3 * 64 * 64)).map { _ in Float(generator.nextNormal()) })
        model.train()
        let logits = try model(images)
        #expect(logits.shape == [2, 10])
        #expect(model.auxiliaryLogits.map(\.shape) == [[2, 10], [2, 10]])
        model.eval()
        _ = try Autodiff.withoutRecording { try model(images) }
        #expect(model.auxiliaryLogits.isEmpty)
    }

    @Test("Inception v3 keeps AuxLogits' logits in training at 299×299, none in evaluation")
    func inceptionAuxiliaryHead() throws {
        let model = try InceptionV3(classCount: 5)
        #expect(model.auxiliaryLossWeight == 0.4)
        let images = Tensor.zeros([1, 3, 299, 299])
        model.eval()
        _ = try Autodiff.withoutRecording { try model(images) }
        #expect(model.auxiliaryLogits.isEmpty)
        model.train()
        _ = try Autodiff.withoutRecording { try model(Tensor.zeros([2, 3, 299, 299])) }
        #expect(model.auxiliaryLogits.map(\.shape) == [[2, 5]])
    }

    @Test("EfficientNet's stochastic depth rises linearly to 0.2 over the blocks; variants scale width and depth")
    func efficientNetScaling() throws {
        let b0 = try EfficientNet(EfficientNet.Variant.all[0])
        let blocks = b0.namedLayers().compactMap { $0.1 as? MBConv }
        #expect(blocks.count == 16)
        #expect(blocks.first?.stochasticDepth == 0)
        #expect(abs((blocks.last?.stochasticDepth ?? 0) - 0.2 * 15 / 16) < 1e-6)
        #expect(try ModelZoo.entry("efficientnet_b7").inputSize == [3, 600, 600])
        #expect(try ModelZoo.entry("inception_v3").smallInputSize == [3, 75, 75])
    }
}

@Suite("Image-by-image inference of mobile networks")
struct ImageByImageTests {
    @Test("running the high-resolution layers one image at a time gives the whole-batch logits",
          arguments: ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0"])
    func sameLogits(_ name: String) throws {
        Initialization.seed(12)
        let model = try ModelZoo.make(name, classCount: 10, inputChannels: 3)
        model.eval()
        var generator = SeededGenerator(seed: 13)
        let shape = [3, 3, 64, 64]
        let x = try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) })
        try Autodiff.withoutRecording {
            let byImage = try model(x)
            // The whole batch at once, image by image by hand, and each image alone must all agree.
            let features = try #require((model as? EfficientNet)?.features ?? (model as? MobileNetV2)?.features
                                        ?? (model as? MobileNetV3)?.features)
            let whole = try features(x)
            let split = try features(x, imageByImageDownTo: 4)
            let (a, b) = (try whole.toArray(), try split.toArray())
            let scale = max(a.map(abs).max() ?? 0, 1e-6)
            let difference = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            #expect(difference / scale < 1e-5, "\(name): features differ by \(difference / scale)")
            let single = try model(x.batchSlice(1..<2))
            let row = Array(try byImage.toArray()[10..<20])
            let rowScale = max(row.map(abs).max() ?? 0, 1e-6)
            #expect(zip(row, try single.toArray()).allSatisfy { abs($0 - $1) / rowScale < 1e-5 }, "\(name): image 1 alone")
        }
    }

    @Test("in training mode without the tape the whole batch runs together (batch norm sees the batch's statistics)",
          arguments: ["mobilenet_v2", "efficientnet_b0"])
    func trainingModeKeepsTheBatch(_ name: String) throws {
        Initialization.seed(14)
        let model = try ModelZoo.make(name, classCount: 10, inputChannels: 3)
        model.train()
        for (_, layer) in model.namedLayers() where layer is any RandomizedLayer {
            (layer as? any ModeDependentLayer)?.isTraining = false
        }
        let features = try #require((model as? EfficientNet)?.features ?? (model as? MobileNetV2)?.features)
        var generator = SeededGenerator(seed: 15)
        let shape = [3, 3, 64, 64]
        let x = try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) })
        try Autodiff.withoutRecording {
            let (a, b) = (try features(x).toArray(), try features(x, imageByImageDownTo: 4).toArray())
            let scale = max(a.map(abs).max() ?? 0, 1e-6)
            let difference = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            #expect(difference / scale < 1e-5, "\(name): training-mode features differ by \(difference / scale)")
        }
    }
}
