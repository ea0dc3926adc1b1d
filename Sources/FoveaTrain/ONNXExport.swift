import Foundation
import FoveaNN
import FoveaONNX

extension Layer {
    /// Writes this model as an ONNX file (atomically): input `input` (N, C, H, W) for `inputShape` (C, H, W), output
    /// `logits`; `sidecar`, when given, goes into `metadata_props` (its class names, input shape and preprocessing
    /// under `classes`, `input_shape`, `mean`, `std`, and the whole sidecar under `fovea.sidecar`, which `.onnx`
    /// loading reads back).
    public func exportONNX(to path: String, inputShape: [Int], sidecar: ModelSidecar? = nil,
                           options: ONNXExportOptions = ONNXExportOptions()) throws {
        var options = options
        if let sidecar {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            func json<T: Encodable>(_ value: T) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
            options.metadata[ModelFile.onnxSidecarKey] = try json(sidecar)
            options.metadata["classes"] = try json(sidecar.classes)
            options.metadata["input_shape"] = try json(sidecar.inputShape)
            options.metadata["mean"] = try json(sidecar.mean)
            options.metadata["std"] = try json(sidecar.std)
            options.metadata["architecture"] = sidecar.architecture
            if options.graphName == "fovea" { options.graphName = sidecar.architecture }
        }
        let bytes = try ONNXExporter.serialize(self, inputShape: inputShape, options: options)
        try writeAtomically(bytes, to: path)
    }
}
