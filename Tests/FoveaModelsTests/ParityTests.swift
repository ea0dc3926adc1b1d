import Foundation
import FoveaModels
import FoveaNN
import FoveaTensor
import FoveaTrain
import Testing

/// The folder of torchvision exports, from `FOVEA_PARITY_DIR`.
private let parityDirectory = ProcessInfo.processInfo.environment["FOVEA_PARITY_DIR"]

/// Eval-mode logits of every family against torchvision, from exports written by `scripts/parity/export_torchvision.py`.
/// Runs only when `FOVEA_PARITY_DIR` names the export folder; models whose files are absent are skipped.
@Suite("Parity with torchvision", .enabled(if: parityDirectory != nil, "set FOVEA_PARITY_DIR to run"))
struct ParityTests {
    static let models = ["alexnet", "vgg11_bn", "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "googlenet",
                         "inception_v3", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"]

    @Test("eval-mode logits agree with torchvision within relative error 1e-4", arguments: models)
    func logits(_ name: String) throws {
        let directory = try #require(parityDirectory)
        let weights = "\(directory)/\(name).safetensors", io = "\(directory)/\(name).io.safetensors"
        guard FileManager.default.fileExists(atPath: weights), FileManager.default.fileExists(atPath: io) else {
            print("parity \(name): no export in \(directory), skipped")
            return
        }
        let model = try ModelZoo.make(name, classCount: 1000, inputChannels: 3)
        try ModelFile.loadWeights(into: model, from: weights)
        model.eval()
        let tensors = try SafeTensors.read(path: io).entries
        let input = try #require(tensors["input"]), reference = try #require(tensors["logits"])
        let logits = try Autodiff.withoutRecording { try model(Tensor(shape: input.shape, values: input.values)) }
        #expect(logits.shape == reference.shape)
        let values = try logits.toArray()
        // Error relative to the largest reference logit: elementwise ratios blow up near zero.
        let scale = reference.values.map(abs).max() ?? 1
        let worst = zip(values, reference.values).map { abs($0 - $1) }.max() ?? .infinity
        let relative = worst / max(scale, .leastNormalMagnitude)
        print("parity \(name): max |Δ| \(worst), max |reference| \(scale), relative \(relative)")
        #expect(relative < 1e-4, "\(name): relative error \(relative)")
    }
}
