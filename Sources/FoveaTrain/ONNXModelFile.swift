import Foundation
import FoveaNN
import FoveaONNX
import FoveaTensor

/// ONNX files as model files: `predict`, `evaluate` and `train --init-from` take a `.onnx` wherever they take a
/// `model.safetensors`.
///
/// What the weights need beyond the graph (class names, input size, preprocessing) comes from the first of: the
/// sidecar Fovea's export writes into `metadata_props` (`fovea.sidecar`), a sidecar file beside the model
/// (`model.onnx` → `model.json`), or the graph itself: input (C, H, W) from its declared input shape, classes named
/// by index from its output width, and pixels scaled to [0, 1] with no normalisation (a warning says so).
extension ModelFile {
    /// The metadata key holding the whole sidecar as JSON in exported files.
    public static let onnxSidecarKey = "fovea.sidecar"

    /// Whether `path` names an ONNX file (by its extension).
    public static func isONNX(_ path: String) -> Bool { path.lowercased().hasSuffix(".onnx") }

    /// Imports an ONNX model and the sidecar describing it; `warn` receives what had to be assumed.
    public static func loadONNX(_ path: String, warn: (String) -> Void = { _ in }) throws -> (ONNXModel, ModelSidecar) {
        let model = try ONNXModel(contentsOf: path)
        for (name, parameter) in model.namedParameters() {
            if let index = try parameter.value.toArray().firstIndex(where: { !$0.isFinite }) {
                throw TrainingError.badModelFile(path: path, reason: "initializer \(name) holds a non-finite value at element \(index)")
            }
        }
        var sidecar: ModelSidecar
        if let json = model.graph.metadata[onnxSidecarKey] {
            do {
                sidecar = try JSONDecoder().decode(ModelSidecar.self, from: Data(json.utf8))
            } catch {
                throw TrainingError.badModelFile(path: path, reason: "metadata \(onnxSidecarKey) is not a valid sidecar: \(error)")
            }
        } else if FileManager.default.fileExists(atPath: sidecarPath(for: path)) {
            sidecar = try readSidecar(for: path, requiringZooArchitecture: false)
        } else {
            guard let image = model.imageShape else {
                throw TrainingError.badModelFile(path: path, reason:
                    "no sidecar (metadata \(onnxSidecarKey) or \(sidecarPath(for: path))) and the graph's input is not a fixed (N, C, H, W)")
            }
            let output = try model.outputShape(forImage: image)
            guard output.count == 2 else {
                throw TrainingError.badModelFile(path: path, reason: "the graph's output has shape \(output), not (N, classes)")
            }
            sidecar = ModelSidecar(architecture: "onnx", classes: (0..<output[1]).map(String.init),
                                   inputShape: image, dataset: "unknown", mean: [0], std: [1])
            warn("\(path) has no sidecar: classes are named 0…\(output[1] - 1) and pixels are scaled to [0, 1] without normalisation")
        }
        try sidecar.validate(path: path, requiringZooArchitecture: false)
        return (model, sidecar)
    }

    /// A model file of either kind: a `.onnx` (imported) or a `model.safetensors` with its sidecar (zoo architecture).
    public static func loadAny(_ path: String, warn: (String) -> Void = { _ in }) throws -> (Layer, ModelSidecar) {
        if isONNX(path) {
            let (model, sidecar) = try loadONNX(path, warn: warn)
            return (model, sidecar)
        }
        return try load(path)
    }
}
