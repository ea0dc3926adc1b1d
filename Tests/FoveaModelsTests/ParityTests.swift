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
        guard let files = try parityFiles(name, ["safetensors", "io.safetensors"]) else { return }
        let relative = try compareWithReference(try torchvisionModel(name, weights: files[0]), io: files[1])
        print("parity \(name): relative \(relative)")
        #expect(relative < 1e-4, "\(name): relative error \(relative)")
    }

    /// `torch.onnx.export`'s graph of the same model (opset 17), imported, against torchvision's logits.
    @Test("torch.onnx.export's graph, imported, gives torchvision's logits within relative error 1e-4", arguments: models)
    func onnxImport(_ name: String) throws {
        guard let files = try parityFiles(name, ["onnx", "io.safetensors"]) else { return }
        let model = try ONNXModel(contentsOf: files[0])
        let relative = try compareWithReference(model, io: files[1])
        print("ONNX import parity \(name): relative \(relative) (\(model.graph.producer), opset \(model.graph.opset))")
        #expect(relative < 1e-4, "\(name): relative error \(relative)")
    }

    /// Fovea's export of the model, checked by onnx.checker and run by ONNX Runtime (scripts/parity/onnx_runtime_parity.py,
    /// with `FOVEA_PARITY_PYTHON`, default python3), against Fovea's own logits; once as is, once with batch norms folded.
    @Test("exported ONNX passes onnx.checker and ONNX Runtime gives Fovea's logits within 1e-4", arguments: models)
    func onnxExport(_ name: String) throws {
        guard let files = try parityFiles(name, ["safetensors", "io.safetensors"]) else { return }
        let directory = try #require(parityDirectory)
        let model = try torchvisionModel(name, weights: files[0])
        let input = try #require(try SafeTensors.read(path: files[1]).entries["input"])
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

/// The files `name.SUFFIX` of the parity folder, or nil (and a line saying it is skipped) when one is absent.
func parityFiles(_ name: String, _ suffixes: [String]) throws -> [String]? {
    let directory = try #require(parityDirectory)
    let paths = suffixes.map { "\(directory)/\(name).\($0)" }
    if let missing = paths.first(where: { !FileManager.default.fileExists(atPath: $0) }) {
        print("parity \(name): no \(missing), skipped")
        return nil
    }
    return paths
}

/// The zoo's `name` with torchvision's exported weights, in evaluation mode.
func torchvisionModel(_ name: String, weights: String) throws -> Layer {
    let model = try ModelZoo.make(name, classCount: 1000, inputChannels: 3)
    try ModelFile.loadWeights(into: model, from: weights)
    model.eval()
    return model
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

/// `scripts/convert_torchvision.py` (with `FOVEA_PARITY_PYTHON`) on randomly initialised torchvision models: the file
/// and sidecar it writes load with `ModelFile.load` (architecture, 1,000 ImageNet classes, the weights' preprocessing)
/// and give torchvision's logits; `fovea train --init-from` then fine-tunes from such a file.
@Suite("torchvision weights converted for Fovea", .enabled(if: parityDirectory != nil, "set FOVEA_PARITY_DIR to run"))
struct ConvertTorchvisionTests {
    @Test("convert_torchvision.py writes a model file that gives torchvision's logits",
          arguments: ["resnet18", "googlenet", "mobilenet_v3_small", "efficientnet_b0", "inception_v3"])
    func converted(_ name: String) throws {
        let directory = try #require(parityDirectory) + "/converted"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let python = ProcessInfo.processInfo.environment["FOVEA_PARITY_PYTHON"] ?? "python3"
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/convert_torchvision.py").path
        let (weights, io) = ("\(directory)/\(name).safetensors", "\(directory)/\(name).io.safetensors")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script, "--model", name, "--random-init", "--seed", "3", "--check-input-output", io,
                             "--output", weights]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "convert_torchvision.py \(name) failed (see its output)")
        let (model, sidecar) = try ModelFile.load(weights)
        #expect(sidecar.architecture == name && sidecar.classes.count == 1000 && sidecar.classes[0] == "tench")
        #expect(sidecar.inputShape == [3, name == "inception_v3" ? 299 : 224, name == "inception_v3" ? 299 : 224])
        #expect(sidecar.mean.count == 3 && sidecar.std.count == 3)
        model.eval()
        let relative = try compareWithReference(model, io: io)
        print("convert_torchvision \(name): relative \(relative)")
        #expect(relative < 1e-4, "\(name): relative error \(relative)")
    }
}
