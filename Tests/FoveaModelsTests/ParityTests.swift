import Foundation
import FoveaModels
import FoveaNN
import FoveaONNX
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
        let relative = try compareWithReference(model, io: io)
        print("parity \(name): relative \(relative)")
        #expect(relative < 1e-4, "\(name): relative error \(relative)")
    }

    /// `torch.onnx.export`'s graph of the same model (opset 17), imported, against torchvision's logits.
    @Test("torch.onnx.export's graph, imported, gives torchvision's logits within relative error 1e-4", arguments: models)
    func onnxImport(_ name: String) throws {
        let directory = try #require(parityDirectory)
        let path = "\(directory)/\(name).onnx", io = "\(directory)/\(name).io.safetensors"
        guard FileManager.default.fileExists(atPath: path), FileManager.default.fileExists(atPath: io) else {
            print("ONNX import parity \(name): no \(path), skipped")
            return
        }
        let model = try ONNXModel(contentsOf: path)
        let relative = try compareWithReference(model, io: io)
        print("ONNX import parity \(name): relative \(relative) (\(model.graph.producer), opset \(model.graph.opset))")
        #expect(relative < 1e-4, "\(name): relative error \(relative)")
    }

    /// Fovea's export of the model, checked by onnx.checker and run by ONNX Runtime (scripts/parity/onnx_runtime_parity.py,
    /// with `FOVEA_PARITY_PYTHON`, default python3), against Fovea's own logits; once as is, once with batch norms folded.
    @Test("exported ONNX passes onnx.checker and ONNX Runtime gives Fovea's logits within 1e-4", arguments: models)
    func onnxExport(_ name: String) throws {
        let directory = try #require(parityDirectory)
        let weights = "\(directory)/\(name).safetensors", io = "\(directory)/\(name).io.safetensors"
        guard FileManager.default.fileExists(atPath: weights), FileManager.default.fileExists(atPath: io) else { return }
        let model = try ModelZoo.make(name, classCount: 1000, inputChannels: 3)
        try ModelFile.loadWeights(into: model, from: weights)
        model.eval()
        let input = try #require(try SafeTensors.read(path: io).entries["input"])
        let logits = try Autodiff.withoutRecording { try model(Tensor(shape: input.shape, values: input.values)) }
        let foveaIO = "\(directory)/\(name).fovea-io.safetensors"
        try SafeTensors.write([input, SafeTensors.Entry(name: "logits", shape: logits.shape, values: try logits.toArray())],
                              metadata: [:], to: foveaIO)
        for fold in [false, true] {
            let path = "\(directory)/\(name).fovea\(fold ? "-folded" : "").onnx"
            try model.exportONNX(to: path, inputShape: Array(input.shape.dropFirst()), options: ONNXExportOptions(foldBatchNorm: fold))
            let python = ProcessInfo.processInfo.environment["FOVEA_PARITY_PYTHON"] ?? "python3"
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("scripts/parity/onnx_runtime_parity.py").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [python, script, path, foveaIO]
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(name)\(fold ? " (folded)" : ""): ONNX Runtime parity failed (see its output)")
        }
    }
}

/// The model's logits on the "input" of `io` against its "logits": the largest difference relative to the largest
/// |reference logit|.
func compareWithReference(_ model: Layer, io: String) throws -> Float {
    let tensors = try SafeTensors.read(path: io).entries
    let input = try #require(tensors["input"]), reference = try #require(tensors["logits"])
    let logits = try Autodiff.withoutRecording { try model(Tensor(shape: input.shape, values: input.values)) }
    #expect(logits.shape == reference.shape)
    return relativeDifference(try logits.toArray(), reference.values)
}

/// Largest elementwise difference relative to the largest |reference| (elementwise ratios blow up near zero).
func relativeDifference(_ values: [Float], _ reference: [Float]) -> Float {
    let scale = reference.map(abs).max() ?? 1
    let worst = zip(values, reference).map { abs($0 - $1) }.max() ?? .infinity
    return worst / max(scale, .leastNormalMagnitude)
}
