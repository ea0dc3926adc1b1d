import ArgumentParser
import Foundation
import FoveaONNX
import FoveaTrain

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write saved weights as an ONNX model, for ONNX Runtime, OpenVINO, TensorRT and other tools.",
        discussion: """
            The graph has one input, `input` (N, C, H, W) at the sidecar's input size, and one output, `logits`
            (N, classes). The sidecar (class names, input shape, mean and standard deviation) is stored in the
            model's metadata_props, so `fovea predict` and `fovea evaluate` read the .onnx file as they read the
            weights. Batch norms are kept as BatchNormalization nodes unless --fold-batch-norm folds them into the
            preceding convolutions.
            """)

    @Option(help: "A model.safetensors written by `fovea train` (its sidecar must be beside it).") var weights: String
    @Option(help: "The ONNX file to write.") var output: String
    @Option(help: "ONNX operator set version, 11 to 18.") var opset = 17
    @Option(name: .customLong("batch-size"), help: "A fixed batch size, or `dynamic` for a symbolic one.") var batchSize = "dynamic"
    @Flag(name: .customLong("fold-batch-norm"), help: "Fold batch norms into the convolutions before them.") var foldBatchNorm = false

    func run() throws {
        try runReportingErrors {
            guard ONNXExportOptions.supportedOpsets.contains(opset) else {
                throw TrainingError.invalidOption(TrainingOptions.outOfRange("--opset", opset, ONNXExportOptions.supportedOpsets)
                                                  ?? "--opset \(opset)")
            }
            var fixedBatch: Int?
            if batchSize != "dynamic" {
                guard let size = Int(batchSize), (1...TrainingOptions.maximumBatchSize).contains(size) else {
                    throw TrainingError.invalidOption("--batch-size must be dynamic or 1 to \(TrainingOptions.maximumBatchSize) (got \(batchSize))")
                }
                fixedBatch = size
            }
            let (model, sidecar) = try ModelFile.load(weights)
            try model.exportONNX(to: output, inputShape: sidecar.inputShape, sidecar: sidecar,
                                 options: ONNXExportOptions(opset: opset, batchSize: fixedBatch, foldBatchNorm: foldBatchNorm))
            print("wrote \(output) (\(sidecar.architecture), opset \(opset), batch \(batchSize))")
        }
    }
}
