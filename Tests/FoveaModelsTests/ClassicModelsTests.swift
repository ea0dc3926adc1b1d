import Foundation
import FoveaModels
import FoveaNN
import FoveaOptim
import FoveaTensor
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Classic models: AlexNet, VGG, ResNet, CIFAR ResNet")
struct ClassicModelsTests {
    /// Parameter counts of torchvision's models at 1000 classes (`sum(p.numel() for p in m.parameters())`).
    static let torchvisionCounts: [(String, Int)] = [
        ("alexnet", 61_100_840),
        ("vgg11", 132_863_336), ("vgg11_bn", 132_868_840), ("vgg13", 133_047_848), ("vgg13_bn", 133_053_736),
        ("vgg16", 138_357_544), ("vgg16_bn", 138_365_992), ("vgg19", 143_667_240), ("vgg19_bn", 143_678_248),
        ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032), ("resnet101", 44_549_160),
        ("resnet152", 60_192_808), ("wide_resnet50_2", 68_883_240), ("resnext50_32x4d", 25_028_904),
    ]

    @Test("parameter counts match torchvision at 1000 classes", arguments: torchvisionCounts)
    func torchvisionParameterCount(_ name: String, _ expected: Int) throws {
        // Counting needs the shapes only: built without drawing weights (VGG-19 draws 144 M numbers otherwise).
        #expect(try Initialization.withoutDrawing { try ModelZoo.make(name, classCount: 1000, inputChannels: 3) }.parameterCount
                    == expected)
    }

    @Test("AlexNet of the 2012 paper: 60,965,224 parameters, LRN after the first two ReLUs")
    func alexNetLRN() throws {
        let model = try Initialization.withoutDrawing { try ModelZoo.make("alexnet_lrn", classCount: 1000, inputChannels: 3) }
        #expect(model.parameterCount == 60_965_224)
        let features = try #require(model as? AlexNet).features.layers
        #expect(features.enumerated().filter { $0.element is LocalResponseNorm }.map(\.offset) == [2, 6])
    }

    /// He et al. 2015, Table 6 (millions of parameters, 10 classes), rounded as printed.
    static let cifarCounts: [(Int, Double)] = [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7), (1202, 19.4)]

    @Test("CIFAR ResNets match He et al. Table 6 within its rounding", arguments: cifarCounts)
    func cifarParameterCount(_ depth: Int, _ millions: Double) throws {
        let count = try Initialization.withoutDrawing { try ModelZoo.make("resnet\(depth)", classCount: 10, inputChannels: 3) }
            .parameterCount
        let printedDigits = millions < 1 ? 0.005 : 0.05
        #expect(abs(Double(count) / 1e6 - millions) <= printedDigits, "resnet\(depth): \(count)")
        // Option A shortcuts add nothing: 9·(16·n_in …) only from convolutions, batch norms and fc.
        let n = (depth - 2) / 6
        var expected = 3 * 16 * 9 + 2 * 16 + 64 * 10 + 10
        var channels = 16
        for width in [16, 32, 64] {
            for _ in 0..<n {
                expected += channels * width * 9 + width * width * 9 + 4 * width
                channels = width
            }
        }
        #expect(count == expected)
    }

    @Test("a 1-channel resnet20 classifies 32×32 images")
    func singleChannelCIFAR() throws {
        let model = try ModelZoo.make("resnet20", classCount: 10, inputChannels: 1)
        let logits = try model(Tensor.zeros([2, 1, 32, 32]))
        #expect(logits.shape == [2, 10])
    }

    @Test("the option A shortcut subsamples by 2 and pads channels with zeros")
    func zeroPaddingShortcut() throws {
        let shortcut = try ZeroPaddingShortcut(inputChannels: 2, outputChannels: 4, stride: 2)
        let x = try Tensor(shape: [1, 2, 2, 2], values: [1, 2, 3, 4, 5, 6, 7, 8])
        let y = try shortcut(x)
        #expect(y.shape == [1, 4, 1, 1])
        #expect(try y.toArray() == [1, 5, 0, 0])
        #expect(shortcut.namedParameters().isEmpty && shortcut.namedBuffers().isEmpty)
    }

    static let fixtureModels = ["alexnet", "vgg11_bn", "resnet18", "resnet50", "resnext50_32x4d"]

    @Test("state-dict keys and shapes equal torchvision's", arguments: fixtureModels)
    func torchvisionKeys(_ name: String) throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/\(name).keys.txt")
        let text = try String(contentsOf: fixture, encoding: .utf8)
        let expected: [(String, [Int])] = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            let shape = fields.count > 1 && !fields[1].isEmpty ? fields[1].split(separator: "x").compactMap { Int($0) } : []
            return (String(fields[0]), shape)
        }
        let model = try Initialization.withoutDrawing { try ModelZoo.make(name, classCount: 1000, inputChannels: 3) }
        let actual = model.stateEntries().map { ($0.0, $0.1.shape) }
        #expect(actual.map(\.0) == expected.map(\.0))
        #expect(actual.map(\.1) == expected.map(\.1))
    }

    @Test("resnet1202 takes a training step at batch 8 on 32×32 without exhausting the stack")
    func resnet1202TrainingStep() throws {
        Initialization.seed(3)
        let model = try ModelZoo.make("resnet1202", classCount: 10, inputChannels: 3)
        var generator = SeededGenerator(seed: 4)
        let shape = [8, 3, 32, 32]
        let images = try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) })
        let labels: [Int32] = (0..<8).map { Int32($0 % 10) }
        let optimizer = try SGD(parameters: model.parameters(), learningRate: 0.01, momentum: 0.9)
        let loss = try crossEntropy(logits: model(images), labels: labels)
        try loss.backward()
        try optimizer.step()
        #expect(loss.scalarValue.isFinite)
        #expect(model.parameters().allSatisfy { $0.grad != nil })
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        // ru_maxrss is in kilobytes on Linux.
        print("resnet1202 training step at batch 8, 32×32: peak RSS \(usage.ru_maxrss / 1024) MiB, loss \(loss.scalarValue)")
    }
}
