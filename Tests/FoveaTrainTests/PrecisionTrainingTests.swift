import Foundation
import FoveaData
import FoveaNN
import FoveaTensor
@testable import FoveaTrain
import Testing

@Suite("Training and inference in bf16 mixed precision")
struct PrecisionTrainingTests {
    static let bf16 = Precision.bf16.isSupported

    /// The end-to-end gate: LeNet-5 on 12,000 real Fashion-MNIST training images for 3 epochs, once in fp32 and once in
    /// bf16 from the same seed. The bf16 run must pass the fp32 gate (80 % of the first 2,000 test images) and end
    /// within 1.5 points of the fp32 run (the difference is rounding noise that grows over 560 steps; the full-size
    /// comparison of the issue, 0.3 points, is the recipe run's); its weights must differ from fp32's (bf16 was used),
    /// and evaluating its model file in bf16 must give its own reported accuracy.
    @Test("LeNet-5 trained in bf16 passes the accuracy gate and ends near the fp32 run",
          .enabled(if: bf16 && FileManager.default.fileExists(atPath: fashionMNIST)))
    func accuracyGate() throws {
        func run(_ precision: Precision) throws -> (TrainingResult, String) {
            var options = TrainingOptions()
            (options.epochs, options.batchSize, options.limitTrain, options.limitTest) = (3, 64, 12000, 2000)
            options.precision = precision
            options.outputDirectory = try temporaryDirectory("precision-\(precision)")
            return (try Trainer(options: options, progress: ProgressReporter(quiet: true)).fit(), options.outputDirectory!)
        }
        let (single, singleDirectory) = try run(.fp32)
        let (mixed, mixedDirectory) = try run(.bf16)
        print("LeNet-5 test accuracy: fp32 \(single.report.accuracy), bf16 \(mixed.report.accuracy)")
        #expect(mixed.report.accuracy >= 0.80, "bf16 LeNet-5 accuracy \(mixed.report.accuracy) below the 0.80 gate")
        #expect(abs(mixed.report.accuracy - single.report.accuracy) <= 0.015,
                "bf16 \(mixed.report.accuracy) against fp32 \(single.report.accuracy)")
        let a = try Data(contentsOf: URL(fileURLWithPath: singleDirectory + "/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: mixedDirectory + "/model.safetensors"))
        #expect(a != b, "the bf16 run's weights are the fp32 run's: bf16 was not used")
        // Model files and checkpoints stay float32.
        let (model, sidecar) = try ModelFile.load(mixedDirectory + "/model.safetensors")
        let info = try DatasetInfo.named("fashion-mnist")
        let set = ImageClassificationSet(dataset: try IDXDataset(dataset: info, split: .test, limit: 2000), info: info,
                                         mean: sidecar.mean[0], std: sidecar.std[0])
        let report = try Precision.run(.bf16) { try evaluate(model: model, on: set, batchSize: 1000, split: "test") }
        #expect(report.accuracy == mixed.report.accuracy)
    }

    @Test("a bf16 run killed mid-epoch resumes in bf16 and ends bit-identical to an uninterrupted one",
          .enabled(if: bf16 && FileManager.default.fileExists(atPath: fashionMNIST)))
    func exactResume() throws {
        let common = ["train", "--model", "resnet20", "--limit-train", "640", "--limit-test", "200", "--epochs", "2",
                      "--batch-size", "32", "--checkpoint-every", "6", "--precision", "bf16", "--quiet"]
        let straight = try temporaryDirectory("bf16-a"), interrupted = try temporaryDirectory("bf16-b")
        let full = try runFovea(common + ["--output", straight])
        #expect(full.status == 0, "\(full.error)")
        // 20 steps per epoch: step 27 is in epoch 2, three steps past the checkpoint at step 24.
        let killed = try runFovea(common + ["--output", interrupted, "--kill-after-step", "27"])
        #expect(killed.status == 9 || killed.status == 137, "expected SIGKILL, got \(killed.status): \(killed.error)")
        let resumed = try runFovea(["train", "--resume", interrupted, "--quiet"])
        #expect(resumed.status == 0, "\(resumed.error)")
        let a = try Data(contentsOf: URL(fileURLWithPath: straight + "/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: interrupted + "/model.safetensors"))
        #expect(a == b, "resumed bf16 weights differ from the uninterrupted run")
        let (options, _) = try Checkpoint.readMetadata(interrupted + "/" + Trainer.lastCheckpointName)
        #expect(options.precision == .bf16)
        // predict and evaluate take --precision too; a bad value is a usage error.
        let evaluation = try runFovea(["evaluate", "--weights", straight + "/model.safetensors", "--precision", "bf16", "--json"])
        #expect(evaluation.status == 0, "\(evaluation.error)")
        let bad = try runFovea(["evaluate", "--weights", straight + "/model.safetensors", "--precision", "fp8"])
        #expect(bad.status == 64 && bad.error.contains("fp8"), "\(bad.status): \(bad.error)")
    }

    /// oneDNN limited to AVX2 (`ONEDNN_MAX_CPU_ISA`) has no bfloat16 kernels, like a CPU without AVX-512 BF16 or AMX: a
    /// training run warns and trains in fp32; a benchmark refuses (its figure would be fp32's under a bf16 label).
    @Test("without bfloat16 instructions, train warns and runs in fp32; bench --precision bf16 refuses")
    func fallback() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["FOVEA_DATA"] = nil
        environment["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        let data = try temporaryDirectory("bf16-fallback-data"), output = try temporaryDirectory("bf16-fallback")
        try writeSyntheticMNIST(to: data, trainCount: 100, testCount: 20)
        let run = try runCommand(foveaBinary, ["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1",
                                               "--precision", "bf16", "--output", output, "--quiet"], environment: environment)
        #expect(run.status == 0, "\(run.error)")
        #expect(run.error.contains("warning: --precision bf16: this CPU has no bfloat16 instructions"), "\(run.error)")
        #expect(run.error.contains("running in fp32 instead"), "\(run.error)")
        let bench = try runCommand(foveaBinary, ["bench", "--workload", "lenet5_28", "--seconds", "0.1", "--precision", "bf16"],
                                   environment: environment)
        #expect(bench.status == 69 && bench.error.contains("nothing to measure"), "\(bench.status): \(bench.error)")
    }
}

@Suite("int8 models: fovea quantize, then predict, evaluate and bench")
struct QuantizedModelTests {
    /// LeNet-5 trained briefly on real Fashion-MNIST, quantized on 1,000 training images: evaluated in int8 (the quantized
    /// file's default) it must stay within 1 point of its fp32 accuracy on the 10,000 test images (the 0.5 points
    /// is for the full recipe model, scripts/precision-accuracy.sh), must differ from fp32 somewhere
    /// (int8 was used), and `--precision fp32` on the quantized file must give the fp32 figure exactly.
    @Test("a quantized LeNet-5 keeps its accuracy; the file runs in int8 by default and in fp32 on request",
          .enabled(if: Precision.int8.isSupported && FileManager.default.fileExists(atPath: fashionMNIST)))
    func quantizeAndEvaluate() throws {
        let run = try temporaryDirectory("int8-run")
        let train = try runFovea(["train", "--epochs", "2", "--limit-train", "12000", "--limit-test", "500", "--batch-size", "64",
                                  "--output", run, "--quiet"])
        try #require(train.status == 0, "\(train.error)")
        let quantized = run + "/int8.safetensors"
        let quantize = try runFovea(["quantize", "--weights", run + "/model.safetensors", "--calibrate-on", "fashion-mnist",
                                     "--output", quantized])
        #expect(quantize.status == 0, "\(quantize.error)")
        #expect(quantize.output.contains("calibrated 5 layers on 1000 images"), "\(quantize.output)")
        let sidecar = try ModelFile.readSidecar(for: quantized)
        let record = try #require(sidecar.quantization)
        #expect(Set(record.inputs.keys) == ["conv1", "conv2", "fc1", "fc2", "fc3"])
        // The first convolution sees normalised pixels (negative too): s8; the others follow ReLUs: u8 (no negatives).
        #expect(record.inputs["conv1"]![0] < 0 && record.inputs["fc1"]![0] >= 0)
        // Convolutions also record their outputs' ranges, so that their int8 outputs stay 8-bit.
        #expect(Set(record.outputs?.keys.map { $0 } ?? []) == ["conv1", "conv2"])
        func accuracy(_ weights: String, _ extra: [String] = []) throws -> Double {
            let result = try runFovea(["evaluate", "--weights", weights, "--json"] + extra)
            try #require(result.status == 0, "\(result.error)")
            let report = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
            return try #require(report?["accuracy"] as? Double)
        }
        let single = try accuracy(run + "/model.safetensors")
        let int8 = try accuracy(quantized)
        print("LeNet-5 on 10,000 test images: fp32 \(single), int8 \(int8)")
        #expect(abs(int8 - single) <= 0.01, "int8 \(int8) against fp32 \(single)")
        #expect(try accuracy(quantized, ["--precision", "fp32"]) == single)
        // The same model in the library, int8 against fp32 logits: close, not equal.
        let (model, _) = try ModelFile.load(quantized)
        let info = try DatasetInfo.named("fashion-mnist")
        let set = ImageClassificationSet(dataset: try IDXDataset(dataset: info, split: .test, limit: 64), info: info,
                                         mean: sidecar.mean[0], std: sidecar.std[0])
        model.eval()
        let (images, _) = try set.batch(Array(0..<64)[...])
        let logits32 = try Autodiff.withoutRecording { try model(images).toArray() }
        let logits8 = try Precision.run(.int8) { try Autodiff.withoutRecording { try model(images).toArray() } }
        let difference = zip(logits32, logits8).map { abs($0 - $1) }.max() ?? 0
        #expect(difference > 0 && difference < 0.5 * (logits32.map(abs).max() ?? 1), "largest logit difference \(difference)")
        // The loaded first convolution writes 8-bit outputs on its recorded scale: every value q·step for an integer q.
        let conv1 = try #require(model.namedLayers().first { $0.0 == "conv1" }?.1 as? Conv2D)
        let step = try #require(conv1.inputQuantizer.outputQuantization).scale
        let features = try Precision.run(.int8) { try Autodiff.withoutRecording { try conv1(images).toArray() } }
        #expect(features.allSatisfy { Float(($0 / step).rounded()) * step == $0 } && Set(features).count > 10)
        // predict runs it in int8 as well and names the same top class as the fp32 file for a test image.
        let image = run + "/image.png"
        let (sample, _) = try set.sampleBytes(0, epoch: nil)
        try Data(PNGEncoder.encode(pixels: sample.pixels, channels: 1, height: 28, width: 28)).write(to: URL(fileURLWithPath: image))
        let top8 = try runFovea(["predict", "--weights", quantized, "--top-k", "1", "--json", image])
        let top32 = try runFovea(["predict", "--weights", run + "/model.safetensors", "--top-k", "1", "--json", image])
        #expect(top8.status == 0 && top32.status == 0, "\(top8.error) \(top32.error)")
        func topClass(_ output: String) -> String? {
            ((try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])?["top"] as? [[String: Any]])?.first?["class"] as? String
        }
        #expect(topClass(top8.output) != nil && topClass(top8.output) == topClass(top32.output))
        // The classifier of predict and serve runs a quantized file in int8 by default.
        let classifier = try ImageClassifier(weights: quantized)
        #expect(classifier.precision == .int8)
        let prepared = try classifier.prepare(path: image)
        let int8Probabilities = try classifier.probabilities([prepared])[0]
        classifier.precision = .fp32
        let fp32Probabilities = try classifier.probabilities([prepared])[0]
        #expect(int8Probabilities != fp32Probabilities && zip(int8Probabilities, fp32Probabilities).allSatisfy { abs($0 - $1) < 0.2 })
    }

    @Test("int8 without calibration, bad quantize flags and damaged quantization records are clear errors")
    func badInput() throws {
        let data = try temporaryDirectory("int8-bad-data"), run = try temporaryDirectory("int8-bad")
        try writeSyntheticMNIST(to: data, trainCount: 100, testCount: 20)
        let train = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1", "--output", run, "--quiet"])
        try #require(train.status == 0, "\(train.error)")
        let weights = run + "/model.safetensors"
        let notQuantized = try runFovea(["evaluate", "--weights", weights, "--dataset", "mnist", "--data-dir", data, "--precision", "int8"])
        #expect(notQuantized.status == 64 && notQuantized.error.contains("no calibration"), "\(notQuantized.error)")
        let trainInt8 = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1", "--precision", "int8"])
        #expect(trainInt8.status == 64 && trainInt8.error.contains("for inference"), "\(trainInt8.error)")
        for flags in [["--calibration-images", "0"], ["--output", run + "/q.onnx"]] {
            var arguments = ["quantize", "--weights", weights, "--calibrate-on", "mnist", "--data-dir", data, "--output", run + "/q.safetensors"]
            arguments += flags
            let result = try runFovea(arguments)
            #expect(result.status == 64, "\(flags): \(result.status) \(result.error)")
        }
        let missing = try runFovea(["quantize", "--weights", run + "/none.safetensors", "--calibrate-on", "mnist", "--data-dir", data,
                                    "--output", run + "/q.safetensors"])
        #expect(missing.status == 65, "\(missing.error)")
        let quantized = run + "/q.safetensors"
        let good = try runFovea(["quantize", "--weights", weights, "--calibrate-on", "mnist", "--data-dir", data, "--output", quantized])
        try #require(good.status == 0, "\(good.error)")
        // Damaged records: a layer the model does not have, a range that is not [low, high], another scheme.
        let sidecarPath = ModelFile.sidecarPath(for: quantized)
        let original = try String(contentsOfFile: sidecarPath, encoding: .utf8)
        for (damage, expected) in [({ (s: String) in s.replacingOccurrences(of: "\"fc3\"", with: "\"fc9\"") }, "fc9"),
                                   ({ (s: String) in s.replacingOccurrences(of: "\"int8-static\"", with: "\"int4\"") }, "int4")] {
            try damage(original).write(toFile: sidecarPath, atomically: true, encoding: .utf8)
            let result = try runFovea(["evaluate", "--weights", quantized, "--dataset", "mnist", "--data-dir", data])
            #expect(result.status == 65 && result.error.contains(expected), "\(result.status): \(result.error)")
        }
        var object = try JSONSerialization.jsonObject(with: Data(original.utf8)) as! [String: Any]
        var quantization = object["quantization"] as! [String: Any]
        var inputs = quantization["inputs"] as! [String: Any]
        inputs["conv2"] = [3, 1]
        quantization["inputs"] = inputs
        object["quantization"] = quantization
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: sidecarPath))
        let reversed = try runFovea(["predict", "--weights", quantized, data + "/../none.png"])
        #expect(reversed.status == 65 && reversed.error.contains("conv2"), "\(reversed.status): \(reversed.error)")
    }

    @Test("bench --precision int8 measures quantized inference and says so")
    func bench() throws {
        guard Precision.int8.isSupported else { return }
        let result = try runFovea(["bench", "--workload", "lenet5_28", "--seconds", "0.2", "--precision", "int8", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        #expect(object?["precision"] as? String == "int8" && object?["train_img_s"] is NSNull)
        #expect((object?["infer_img_s"] as? Double ?? 0) > 0 && (object?["peak_gflops"] as? Double ?? 0) > 0)
    }
}

@Suite("int8 layers follow their weights")
struct QuantizedLayerTests {
    /// An optimizer writes weights in place (same storage, new version): the int8 weights made before must not be reused.
    @Test("after an in-place weight update, a calibrated Linear and Conv2D run int8 on the new weights",
          .enabled(if: Precision.int8.isSupported))
    func weightsUpdatedInPlace() throws {
        let linear = try Linear(20, 6), conv = try Conv2D(4, 8, kernelSize: 3, padding: 1)
        conv.eval()
        let x = try Tensor(shape: [3, 20], values: (0..<60).map { Float($0 % 7) - 3 })
        let image = try Tensor(shape: [2, 4, 5, 5], values: (0..<200).map { Float($0 % 11) / 5 - 1 })
        _ = try ActivationQuantizer.calibrate { try Autodiff.withoutRecording { (try linear(x), try conv(image)) } }
        func outputs() throws -> (Float, Float) {
            let int8 = try Precision.run(.int8) { try Autodiff.withoutRecording { (try linear(x).toArray(), try conv(image).toArray()) } }
            let fp32 = try Autodiff.withoutRecording { (try linear(x).toArray(), try conv(image).toArray()) }
            let largest = { (a: [Float], b: [Float]) in zip(a, b).map { abs($0 - $1) }.max() ?? 0 }
            return (largest(int8.0, fp32.0) / (fp32.0.map(abs).max() ?? 1), largest(int8.1, fp32.1) / (fp32.1.map(abs).max() ?? 1))
        }
        let before = try outputs()
        #expect(before.0 < 0.05 && before.1 < 0.05, "\(before)")
        for parameter in [linear.weight, conv.weight] {
            let pointer = parameter.value.storage.pointer
            for i in 0..<parameter.value.count { pointer[i] = -2 * pointer[i] + 0.01 * Float(i % 5) }
            parameter.markModified()
        }
        #expect(conv.inputQuantizer.outputRange != nil)
        let after = try outputs()
        #expect(after.0 < 0.05 && after.1 < 0.05, "int8 against fp32 after the update: \(after)")
        #expect(conv.inputQuantizer.outputRange == nil, "the output range measured with the old weights is dropped")
    }
}
