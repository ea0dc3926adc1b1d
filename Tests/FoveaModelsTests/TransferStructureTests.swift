import Foundation
import FoveaModels
import FoveaNN
import FoveaTensor
import Testing

@Suite("Classifier heads and stages of the zoo")
struct TransferStructureTests {
    /// The head a model declares must be exactly what depends on the class count: built for 7 and for 11 classes,
    /// the parameters whose shapes differ are the head's and no other; the main head is a Linear with 7 outputs; every
    /// other parameter lies in exactly one declared stage, every stage holds parameters, and every declared path
    /// names a layer.
    /// Building the largest models twice costs seconds each (VGG's classifier alone is 0.4 GB); the suite checks every
    /// family through its smaller members, FOVEA_ZOO_ALL=1 all 38.
    static let models = ModelZoo.names.filter { name in
        ProcessInfo.processInfo.environment["FOVEA_ZOO_ALL"] != nil || ![
            "vgg11", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "resnet101", "resnet152", "wide_resnet50_2",
            "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "resnet1202",
        ].contains(name)
    }

    @Test("every zoo model declares its head and stages", arguments: models)
    func structure(_ name: String) throws {
        let entry = try ModelZoo.entry(name)
        let (seven, eleven) = try Initialization.withoutDrawing {
            (try entry.build(7, entry.inputSize[0]), try entry.build(11, entry.inputSize[0]))
        }
        let structure = try #require(seven as? any ClassifierStructure, "\(name) declares no head and stages")
        let shapes7 = seven.namedParameters().map { ($0.0, $0.1.value.shape) }
        let shapes11 = Dictionary(uniqueKeysWithValues: eleven.namedParameters().map { ($0.0, $0.1.value.shape) })
        let classDependent = Set(shapes7.filter { shapes11[$0.0] != $0.1 }.map(\.0))
        let head = Set(shapes7.map(\.0).filter(structure.isHeadKey))
        #expect(!classDependent.isEmpty)
        #expect(head == classDependent, "\(name): head \(head.sorted()) vs class-dependent \(classDependent.sorted())")
        let layers = Dictionary(seven.namedLayers().map { ($0.0, $0.1) }) { first, _ in first }
        let main = try #require(layers[structure.headPaths[0]] as? Linear, "\(name): \(structure.headPaths[0]) is not a Linear")
        #expect(main.weight.value.shape[0] == 7)
        var perStage = [Int](repeating: 0, count: structure.stagePaths.count)
        for (parameter, _) in shapes7 where !structure.isHeadKey(parameter) {
            let stages = structure.stagePaths.indices.filter { structure.stagePaths[$0].contains { stateKey(parameter, isUnder: $0) } }
            #expect(stages.count == 1, "\(name): \(parameter) lies in stages \(stages)")
            if let stage = stages.first { perStage[stage] += 1 }
        }
        #expect(perStage.allSatisfy { $0 > 0 }, "\(name): stages without parameters \(perStage)")
        #expect(structure.stagePaths.count >= 3)
        for path in structure.stagePaths.joined() where layers[path] == nil {
            // GoogLeNet is built without its auxiliary heads; their stage entries are then unused.
            #expect(name == "googlenet" && path.hasPrefix("aux"), "\(name): stage path \(path) names no layer")
        }
    }

    /// `features` must be what the classifier receives: applying the main head to it reproduces the model's logits.
    @Test("features(of:) is the input of the classifier", arguments: ["lenet5", "resnet20", "mobilenet_v2", "mobilenet_v3_small"])
    func features(_ name: String) throws {
        let entry = try ModelZoo.entry(name)
        Initialization.seed(3)
        let model = try entry.build(6, entry.inputSize[0])
        let structure = try #require(model as? any ClassifierStructure)
        var generator = SeededGenerator(seed: 4)
        let shape = [3] + entry.smallInputSize
        let images = try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) })
        let embedding = try structure.features(of: images)
        let head = try #require(model.namedLayers().first { $0.0 == structure.headPaths[0] }?.1 as? Linear)
        #expect(embedding.shape == [shape[0], head.weight.value.shape[1]])
        let logits = try Autodiff.withoutRecording { try model(images).toArray() }
        let fromFeatures = try Autodiff.withoutRecording { try head(embedding).toArray() }
        let scale = logits.map(abs).max() ?? 1
        let difference = zip(logits, fromFeatures).map { abs($0 - $1) }.max() ?? .infinity
        #expect(difference <= 1e-5 * max(scale, 1), "\(name): head(features) differs from the logits by \(difference)")
    }
}
