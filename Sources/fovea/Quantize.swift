import ArgumentParser
import Foundation
import FoveaData
import FoveaTensor
import FoveaTrain

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a trained model to int8 (static post-training quantization) for predict, evaluate, bench and serve.",
        discussion: """
            Runs the first --calibration-images images of DATASET's training split through the model (fp32, as the
            model's sidecar preprocesses them) and records the range of every convolution's and fully connected layer's
            input, and of every convolution's output. The output model runs those layers on oneDNN's int8 kernels
            (AMX-INT8 or AVX-512 VNNI where the CPU has them): inputs quantized per tensor (u8 after a ReLU, else
            symmetric s8) from the calibrated ranges, weights per output channel (symmetric s8) after batch norm is
            folded into them, int32 sums scaled back to float32 before bias, residual and activation; a convolution's
            output stays 8-bit on its own range's scale where its activation allows (ReLU, ReLU6, clips), for the next
            int8 convolution. Everything else is float32.

            The output is a weights file and sidecar like fovea train's: the float32 weights unchanged (the int8
            weights are made from them when the model is loaded) and the ranges under "quantization" in the sidecar.
            predict, evaluate and serve run such a model in int8 unless --precision fp32 says otherwise.
            """)

    @Option(help: "A model.safetensors written by `fovea train` (its sidecar model.json must be beside it).") var weights: String
    @Option(name: .customLong("calibrate-on"), help: "Dataset to calibrate on (its training split): mnist, fashion-mnist, cifar10, cifar100 or imagefolder.")
    var calibrateOn: String
    @Option(name: .customLong("data-dir"), help: "Folder holding the dataset's files.") var dataDir: String?
    @Option(name: .customLong("calibration-images"), help: "How many training images to calibrate on (the first N).")
    var calibrationImages = 1000
    @Option(help: "Where to write the quantized model (FILE.safetensors and its sidecar FILE.json).") var output: String

    func run() throws {
        try runReportingErrors {
            if let problem = TrainingOptions.outOfRange("--calibration-images", calibrationImages, 1...1_000_000) {
                throw TrainingError.invalidOption(problem)
            }
            guard output.hasSuffix(".safetensors") else {
                throw TrainingError.invalidOption("--output must name a .safetensors file (its sidecar is written beside it), got \(output)")
            }
            guard !ModelFile.isONNX(weights) else {
                throw TrainingError.invalidOption("--weights must be a Fovea model (.safetensors with its sidecar), not an ONNX file")
            }
            let (model, sidecar) = try ModelFile.load(weights)
            let set = try Evaluate.imageSet(for: sidecar, weights: weights, dataset: calibrateOn, dataDir: dataDir, split: .train)
            let count = min(calibrationImages, set.count)
            let record = try PostTrainingQuantization.calibrate(
                model, on: set, images: count, describing: "\(calibrateOn) training split, first \(count) images")
            var quantized = sidecar
            quantized.quantization = record
            for file in try ModelFile.save(model, sidecar: quantized, to: output) { print("wrote \(file)") }
            print("calibrated \(record.inputs.count) layers on \(count) images; the model runs in int8 "
                  + (Precision.int8.isSupported ? "on \(Precision.instructionSet)" : "where the CPU has int8 kernels (not this one)"))
        }
    }
}
