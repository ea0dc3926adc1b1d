import Foundation
import FoveaData
import FoveaTensor
@testable import FoveaTrain
import Testing

/// The `fovea` binary built next to the tests (`swift build --build-tests` builds it into the same folder as the
/// test bundle, whichever configuration and scratch path it used).
let foveaBinary = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                        ?? CommandLine.arguments[0])
    .deletingLastPathComponent().appendingPathComponent("fovea").path

/// The path of `name` in the repository's scripts/ folder.
func repositoryScript(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts").appendingPathComponent(name).path
}

struct CommandResult {
    var status: Int32
    var output: String
    var error: String
}

func runFovea(_ arguments: [String]) throws -> CommandResult {
    guard FileManager.default.isExecutableFile(atPath: foveaBinary) else {
        throw TensorError.invalidArgument(operation: "runFovea", message: "\(foveaBinary) is missing: build the tests with scripts/test.sh")
    }
    var environment = ProcessInfo.processInfo.environment
    environment["FOVEA_DATA"] = nil
    return try runCommand(foveaBinary, arguments, environment: environment)
}

/// Runs a program to its end and returns its exit status and output.
func runCommand(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let output = Pipe(), error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    // Standard error is read on another thread: a child that filled one pipe while this read the other would block.
    final class Collected: @unchecked Sendable { var data = Data() }
    let errorData = Collected()
    let errorRead = DispatchGroup()
    errorRead.enter()
    DispatchQueue.global().async {
        errorData.data = error.fileHandleForReading.readDataToEndOfFile()
        errorRead.leave()
    }
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    errorRead.wait()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self),
                         error: String(decoding: errorData.data, as: UTF8.self))
}

/// Writes an MNIST-style directory of 28×28 images whose class k is a bright 6×6 square at a class-specific
/// place plus noise, so a working pipeline learns it almost perfectly.
func writeSyntheticMNIST(to directory: String, trainCount: Int = 400, testCount: Int = 100, seed: UInt64 = 1) throws {
    var generator = SeededGenerator(seed: seed)
    func split(_ count: Int) -> (IDXFile, IDXFile) {
        var pixels = [UInt8](repeating: 0, count: count * 784)
        var labels = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            let label = Int(generator.next() % 10)
            labels[i] = UInt8(label)
            for p in 0..<784 { pixels[i * 784 + p] = UInt8(generator.next() % 40) }
            let (top, left) = (2 + (label / 5) * 12, 1 + (label % 5) * 5)
            for y in top..<(top + 6) { for x in left..<(left + 5) { pixels[i * 784 + y * 28 + x] = 220 } }
        }
        return (IDXFile(dimensions: [count, 28, 28], bytes: pixels), IDXFile(dimensions: [count], bytes: labels))
    }
    let (trainImages, trainLabels) = split(trainCount)
    let (testImages, testLabels) = split(testCount)
    for (name, file) in [("train-images-idx3-ubyte", trainImages), ("train-labels-idx1-ubyte", trainLabels),
                         ("t10k-images-idx3-ubyte", testImages), ("t10k-labels-idx1-ubyte", testLabels)] {
        try Data(file.encoded()).write(to: URL(fileURLWithPath: directory + "/" + name))
    }
}

@Suite("The fovea command line", .serialized)
struct CommandLineTests {
    @Test("train writes metrics, report and model; evaluate reproduces the accuracy")
    func trainAndEvaluate() throws {
        let data = try temporaryDirectory("cli-data"), output = try temporaryDirectory("cli-run")
        try writeSyntheticMNIST(to: data)
        let train = try runFovea(["train", "--model", "lenet5", "--dataset", "mnist", "--data-dir", data, "--epochs", "3",
                                  "--batch-size", "32", "--lr", "0.05", "--output", output, "--json", "--quiet"])
        #expect(train.status == 0, "train failed: \(train.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(train.output.utf8)) as? [String: Any])
        for key in ["dataset", "split", "samples", "accuracy", "top5_accuracy", "loss", "classes", "per_class", "macro",
                    "weighted", "confusion_matrix"] {
            #expect(report[key] != nil, "report lacks \(key)")
        }
        let accuracy = try #require(report["accuracy"] as? Double)
        #expect(accuracy > 0.9, "a trivially separable set should be learned, got \(accuracy)")
        for file in ["metrics.jsonl", "report.json", "model.safetensors", "model.json"] {
            #expect(FileManager.default.fileExists(atPath: output + "/" + file), "\(file) not written")
        }
        let evaluation = try runFovea(["evaluate", "--weights", output + "/model.safetensors", "--dataset", "mnist",
                                       "--data-dir", data, "--json"])
        #expect(evaluation.status == 0, "evaluate failed: \(evaluation.error)")
        let evaluated = try #require(try JSONSerialization.jsonObject(with: Data(evaluation.output.utf8)) as? [String: Any])
        #expect(evaluated["accuracy"] as? Double == accuracy)
        try exportAndEvaluateONNX(output: output, data: data, accuracy: accuracy)
    }

    /// `fovea export` writes the model as ONNX (kept, folded, at another opset); `evaluate` and `predict` read it with
    /// its classes and preprocessing from the metadata and give the weights' own results; damaged files and bad flags
    /// end with 65 and 64.
    func exportAndEvaluateONNX(output: String, data: String, accuracy: Double) throws {
        for (file, flags) in [("model.onnx", [String]()), ("folded.onnx", ["--fold-batch-norm", "--batch-size", "4"]),
                              ("opset13.onnx", ["--opset", "13"])] {
            let export = try runFovea(["export", "--weights", output + "/model.safetensors", "--output", output + "/" + file] + flags)
            #expect(export.status == 0, "export \(flags): \(export.error)")
        }
        for file in ["model.onnx", "opset13.onnx"] {
            let evaluation = try runFovea(["evaluate", "--weights", output + "/" + file, "--dataset", "mnist", "--data-dir", data, "--json"])
            #expect(evaluation.status == 0, "evaluate \(file): \(evaluation.error)")
            let report = try JSONSerialization.jsonObject(with: Data(evaluation.output.utf8)) as? [String: Any]
            #expect(report?["accuracy"] as? Double == accuracy, "\(file): \(report?["accuracy"] ?? "none") vs \(accuracy)")
            #expect(report?["classes"] as? [String] == (0..<10).map(String.init), "\(file): class names from the metadata")
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: output + "/model.onnx"))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: output + "/truncated.onnx"))
        let truncated = try runFovea(["evaluate", "--weights", output + "/truncated.onnx", "--dataset", "mnist", "--data-dir", data])
        #expect(truncated.status == 65 && truncated.error.contains("truncated.onnx"), "\(truncated.status): \(truncated.error)")
        let opset = try runFovea(["export", "--weights", output + "/model.safetensors", "--output", output + "/x.onnx", "--opset", "9"])
        #expect(opset.status == 64 && opset.error.contains("--opset"))
        let batch = try runFovea(["export", "--weights", output + "/model.safetensors", "--output", output + "/x.onnx", "--batch-size", "0"])
        #expect(batch.status == 64 && batch.error.contains("--batch-size"))
        #expect(!FileManager.default.fileExists(atPath: output + "/x.onnx"))
    }

    @Test("every optimizer and schedule trains end to end", arguments: [
        ["--optimizer", "adam", "--lr", "0.003", "--schedule", "cosine"],
        ["--optimizer", "adamw", "--lr", "0.003", "--weight-decay", "0.05", "--weight-decay-policy", "exclude-bias-norm",
         "--schedule", "onecycle"],
        ["--optimizer", "rmsprop", "--lr", "0.003", "--momentum", "0", "--schedule", "exponential", "--gamma", "0.7"],
        ["--optimizer", "sgd", "--nesterov", "--lr", "0.05", "--schedule", "multistep", "--milestones", "2", "3",
         "--schedule-unit", "epoch", "--warmup-epochs", "1", "--clip-grad-norm", "2", "--label-smoothing", "0.1"],
    ])
    func optimizers(_ arguments: [String]) throws {
        let data = try temporaryDirectory("cli-optimizers")
        try writeSyntheticMNIST(to: data)
        let run = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "4", "--batch-size", "32",
                                "--json", "--quiet"] + arguments)
        #expect(run.status == 0, "\(arguments): \(run.error)")
        let report = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any]
        let accuracy = report?["accuracy"] as? Double ?? 0
        #expect(accuracy > 0.9, "\(arguments) reached only \(accuracy)")
    }

    @Test("a run killed with SIGKILL mid-epoch and resumed ends bit-identical to an uninterrupted run",
          arguments: [["--optimizer", "sgd", "--nesterov"],
                      ["--optimizer", "adamw", "--lr", "0.003", "--schedule", "onecycle", "--random-crop", "2", "--horizontal-flip",
                       "--ema-decay", "0.9"]])
    func exactResume(_ optimizer: [String]) throws {
        let data = try temporaryDirectory("resume-data")
        try writeSyntheticMNIST(to: data, trainCount: 600, testCount: 100)
        let common = ["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "3", "--batch-size", "32",
                      "--checkpoint-every", "5", "--quiet"] + optimizer
        let straight = try temporaryDirectory("resume-a"), interrupted = try temporaryDirectory("resume-b")
        #expect(try runFovea(common + ["--output", straight]).status == 0)
        // 19 steps per epoch: step 31 is in the middle of epoch 2, one step past the checkpoint at step 30.
        let killed = try runFovea(common + ["--output", interrupted, "--kill-after-step", "31"])
        #expect(killed.status == 9 || killed.status == 137, "expected SIGKILL, got \(killed.status)")
        #expect(!FileManager.default.fileExists(atPath: interrupted + "/model.safetensors"))
        let resumed = try runFovea(["train", "--resume", interrupted, "--quiet"])
        #expect(resumed.status == 0, "\(resumed.error)")
        let a = try Data(contentsOf: URL(fileURLWithPath: straight + "/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: interrupted + "/model.safetensors"))
        #expect(a == b, "resumed weights differ from the uninterrupted run")
        func losses(_ directory: String) throws -> [Double] {
            try String(contentsOfFile: directory + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
                (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["train_loss"] as? Double ?? .nan
            }
        }
        #expect(try losses(straight) == losses(interrupted))
        #expect(try losses(straight).count == 3)
    }

    @Test("a NaN loss names the step and leaves the last checkpoint intact and resumable")
    func nanKeepsCheckpoint() throws {
        let data = try temporaryDirectory("nan-data"), output = try temporaryDirectory("nan-run")
        try writeSyntheticMNIST(to: data, trainCount: 300, testCount: 50)
        // Blow up only in the second epoch: 0.01 in the first, then ×1e12 per epoch.
        let run = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "3", "--batch-size", "30",
                                "--lr", "0.01", "--schedule", "exponential", "--gamma", "1e12", "--schedule-unit", "epoch", "--momentum", "0",
                                "--output", output, "--quiet"])
        #expect(run.status == 1)
        #expect(run.error.contains("at step"), "\(run.error)")
        let checkpoint = output + "/checkpoint-last.safetensors"
        let (options, progress) = try Checkpoint.readMetadata(checkpoint)
        #expect(options.epochs == 3)
        #expect(progress.epoch >= 2)
        #expect(try String(contentsOfFile: output + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").count
                    == progress.history.count)
    }

    @Test("early stopping, the weight average and the CSV twin")
    func earlyStoppingAndAverage() throws {
        let data = try temporaryDirectory("early-data"), output = try temporaryDirectory("early-run")
        try writeSyntheticMNIST(to: data, trainCount: 200, testCount: 50)
        // With a zero learning rate nothing improves after the first epoch: patience 2 stops after epoch 3 of 10.
        let run = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "10", "--lr", "1e-30",
                                "--schedule", "constant", "--early-stopping", "2", "--monitor", "test_loss",
                                "--ema-decay", "0.9", "--output", output, "--quiet"])
        #expect(run.status == 0, "\(run.error)")
        let csv = try String(contentsOfFile: output + "/metrics.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 1 + 3, "header and three epochs expected, got \(csv.count - 1)")
        #expect(csv.first?.hasPrefix("epoch,train_loss,train_accuracy,test_loss,test_accuracy") == true)
        #expect(FileManager.default.fileExists(atPath: output + "/model-ema.safetensors"))
        #expect(FileManager.default.fileExists(atPath: output + "/checkpoint-best.safetensors"))
    }

    @Test("recipes run, and flags given override them")
    func recipes() throws {
        let data = try temporaryDirectory("recipe-data")
        try writeSyntheticMNIST(to: data)
        let run = try runFovea(["train", "--recipe", "lenet5-mnist", "--data-dir", data, "--epochs", "2", "--batch-size", "32",
                                "--json", "--quiet"])
        #expect(run.status == 0, "\(run.error)")
        let report = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any]
        #expect(report?["dataset"] as? String == "mnist")
        #expect((report?["accuracy"] as? Double ?? 0) > 0.9)
        #expect(try runFovea(["train", "--recipe", "no-such-recipe"]).status == 64)
        #expect(Recipe.named("resnet20-cifar10")?.options.milestones == [82, 123])
        let best = try #require(Recipe.named("fashion-mnist-best")).options
        #expect(best.model == "resnet20" && best.dataset == "fashion-mnist" && best.nesterov && best.epochs == 20)
    }

    @Test("predict prints the right class for images saved from the test split, and rejects bad images")
    func predict() throws {
        let data = try temporaryDirectory("predict-data"), output = try temporaryDirectory("predict-run")
        try writeSyntheticMNIST(to: data)
        #expect(try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "3", "--batch-size", "32",
                              "--output", output, "--quiet"]).status == 0)
        let test = try IDXDataset(directory: data, split: .test)
        var paths: [String] = []
        for index in 0..<4 {
            let path = output + "/sample\(index).png"
            let pixels = Array(test.pixels[(index * 784)..<((index + 1) * 784)])
            try Data(PNGEncoder.encode(pixels: pixels, channels: 1, height: 28, width: 28)).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        let run = try runFovea(["predict", "--weights", output + "/model.safetensors", "--top-k", "2", "--json"] + paths)
        #expect(run.status == 0, "\(run.error)")
        // The same model as ONNX predicts the same classes with the same probabilities (to 4 decimals).
        #expect(try runFovea(["export", "--weights", output + "/model.safetensors", "--output", output + "/model.onnx"]).status == 0)
        let onnx = try runFovea(["predict", "--weights", output + "/model.onnx", "--top-k", "2", "--json"] + paths)
        #expect(onnx.status == 0, "\(onnx.error)")
        func tops(_ text: String) throws -> [[(Int, Double)]] {
            try text.split(separator: "\n").map { line in
                let top = (try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["top"] as? [[String: Any]] ?? []
                return top.map { ($0["index"] as? Int ?? -1, $0["probability"] as? Double ?? -1) }
            }
        }
        let (fromONNX, fromWeights) = (try tops(onnx.output), try tops(run.output))
        #expect(fromONNX.count == fromWeights.count)
        for (a, b) in zip(fromONNX, fromWeights) {
            #expect(a.map(\.0) == b.map(\.0) && zip(a, b).allSatisfy { abs($0.1 - $1.1) < 1e-4 }, "\(a) vs \(b)")
        }
        let lines = run.output.split(separator: "\n")
        #expect(lines.count == 4)
        for (index, line) in lines.enumerated() {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            let top = object?["top"] as? [[String: Any]]
            #expect(top?.count == 2)
            #expect(top?.first?["index"] as? Int == Int(test.labels[index]), "sample \(index)")
        }
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: output + "/fake.png"))
        let bad = try runFovea(["predict", "--weights", output + "/model.safetensors", output + "/fake.png"])
        #expect(bad.status == 65 && bad.error.contains("fake.png"))
    }

    @Test("an image folder trains end to end, streaming from disk with worker threads")
    func imageFolder() throws {
        let root = try temporaryDirectory("imagefolder"), output = try temporaryDirectory("imagefolder-run")
        for split in ["train", "val"] {
            for (label, name) in ["dark", "light"].enumerated() {
                let folder = root + "/\(split)/\(name)"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                for n in 0..<(split == "train" ? 40 : 10) {
                    let value = UInt8(label == 0 ? 20 + n : 200 + n)
                    let pixels = [UInt8](repeating: value, count: 3 * 40 * 40)
                    try Data(PNGEncoder.encode(pixels: pixels, channels: 3, height: 40, width: 40))
                        .write(to: URL(fileURLWithPath: folder + "/\(n).png"))
                }
            }
        }
        let run = try runFovea(["train", "--dataset", "imagefolder", "--data-dir", root, "--image-size", "28", "--epochs", "3",
                                "--batch-size", "16", "--optimizer", "adam", "--lr", "0.003", "--output", output, "--json", "--quiet"])
        #expect(run.status == 0, "\(run.error)")
        let report = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any]
        #expect(report?["classes"] as? [String] == ["dark", "light"])
        #expect((report?["accuracy"] as? Double ?? 0) >= 0.9)
        let evaluation = try runFovea(["evaluate", "--weights", output + "/model.safetensors", "--dataset", "imagefolder",
                                       "--data-dir", root, "--json"])
        #expect(evaluation.status == 0, "\(evaluation.error)")
        // A damaged image stops training with its path, not a hang or a crash.
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: root + "/train/dark/zz.png"))
        let bad = try runFovea(["train", "--dataset", "imagefolder", "--data-dir", root, "--image-size", "28", "--epochs", "1",
                                "--quiet"])
        #expect(bad.status == 65 && bad.error.contains("zz.png"), "\(bad.error)")
    }

    @Test("reduce-on-plateau halves the rate after each epoch without improvement")
    func plateau() throws {
        let data = try temporaryDirectory("plateau-data"), output = try temporaryDirectory("plateau-run")
        try writeSyntheticMNIST(to: data, trainCount: 100, testCount: 30)
        // A rate too small to change anything: the test loss never improves after epoch 1.
        let run = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "4", "--lr", "1e-12",
                                "--schedule", "plateau", "--plateau-patience", "0", "--gamma", "0.5", "--monitor", "test_loss",
                                "--momentum", "0", "--output", output, "--quiet"])
        #expect(run.status == 0, "\(run.error)")
        let rates = try String(contentsOfFile: output + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["lr"] as? Double ?? .nan
        }
        #expect(rates.count == 4)
        for (earlier, later) in zip(rates.dropFirst(), rates.dropFirst(2)) {
            #expect(abs(later / earlier - 0.5) < 1e-6, "\(rates)")
        }
    }

    @Test("bad data ends with exit code 65 and names the file")
    func badData() throws {
        let missing = try runFovea(["train", "--dataset", "mnist", "--data-dir", "/nonexistent/fovea", "--epochs", "1"])
        #expect(missing.status == 65)
        #expect(missing.error.contains("/nonexistent/fovea"))

        let data = try temporaryDirectory("cli-bad")
        try writeSyntheticMNIST(to: data, trainCount: 50, testCount: 20)
        let images = data + "/train-images-idx3-ubyte"
        let whole = try Data(contentsOf: URL(fileURLWithPath: images))
        try whole.prefix(whole.count - 100).write(to: URL(fileURLWithPath: images))
        let truncated = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1"])
        #expect(truncated.status == 65)
        #expect(truncated.error.contains(images))

        try writeSyntheticMNIST(to: data, trainCount: 50, testCount: 20)
        var labels = try Data(contentsOf: URL(fileURLWithPath: data + "/t10k-labels-idx1-ubyte"))
        labels[8 + 3] = 10
        try labels.write(to: URL(fileURLWithPath: data + "/t10k-labels-idx1-ubyte"))
        let outOfRange = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1"])
        #expect(outOfRange.status == 65)
        #expect(outOfRange.error.contains("t10k-labels-idx1-ubyte") && outOfRange.error.contains("10"))

        try writeSyntheticMNIST(to: data, trainCount: 50, testCount: 20)
        var magic = try Data(contentsOf: URL(fileURLWithPath: images))
        magic[2] = 0x0D
        try magic.write(to: URL(fileURLWithPath: images))
        let wrongMagic = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1"])
        #expect(wrongMagic.status == 65)
        #expect(wrongMagic.error.contains(images))
    }

    @Test("bench prints one JSON object per workload with speed, utilisation against a measured peak, and allocations")
    func bench() throws {
        let run = try runFovea(["bench", "--workload", "lenet5_28", "--seconds", "0.2", "--json"])
        #expect(run.status == 0, "\(run.error)")
        let lines = run.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(lines.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: Any])
        // JSON numbers come back as Int or Double depending on how they print.
        func number(_ key: String, in object: [String: Any]? = object) -> Double? { (object?[key] as? NSNumber)?.doubleValue }
        #expect(object["workload"] as? String == "lenet5_28")
        #expect(object["params"] as? Int == 61_706)
        #expect(object["train_batch"] as? Int == 128 && object["infer_batch"] as? Int == 256)
        for key in ["train_img_s", "infer_img_s", "train_gflops", "infer_gflops", "peak_gflops", "peak_rss_mb"] {
            let value = try #require(number(key), "\(key) missing")
            #expect(value > 0 && value.isFinite, "\(key) = \(value)")
        }
        #expect((object["train_reps"] as? Int ?? 0) >= 3 && (object["infer_reps"] as? Int ?? 0) >= 3)
        #expect(object["peak_measured"] as? Bool == true)
        // The utilisation is the achieved rate over the measured peak.
        let (gflops, peak) = (number("infer_gflops") ?? 0, number("peak_gflops") ?? 1)
        #expect(abs((number("infer_peak_fraction") ?? -1) - gflops / peak) < 0.01)
        // Steady state: a training step and an inference call take every tensor block from the reuse pool.
        #expect(number("train_allocs_per_step") == 0)
        #expect(number("infer_allocs_per_call") == 0)
        // A given peak is used as it is; a bad one, or an unknown workload, is a usage error.
        let given = try runFovea(["bench", "--workload", "lenet5_28", "--seconds", "0.1", "--json", "--peak", "1000",
                                  "--inference-only"])
        let givenObject = try JSONSerialization.jsonObject(with: Data(given.output.utf8)) as? [String: Any]
        #expect(number("peak_gflops", in: givenObject) == 1000 && givenObject?["peak_measured"] as? Bool == false)
        #expect(try runFovea(["bench", "--peak", "0"]).status == 64)
        #expect(try runFovea(["bench", "--workload", "nope"]).status == 64)
    }

    @Test("usage errors end with exit code 64")
    func usage() throws {
        #expect(try runFovea(["train", "--epochs", "0"]).status == 64)
        #expect(try runFovea(["train", "--model", "no-such-model"]).status == 64)
        #expect(try runFovea(["train", "--schedule", "sometimes"]).status == 64)
        #expect(try runFovea(["train", "--no-such-flag"]).status == 64)
        #expect(try runFovea(["train", "--optimizer", "lbfgs"]).status == 64)
        #expect(try runFovea(["train", "--schedule", "multistep"]).status == 64)
        // Each bad value is a usage error whose message names the flag or the transform and parameter.
        for (flag, value, named) in [("--color-jitter", "0.4,0.4", "--color-jitter"), ("--color-jitter", "0.1,0.1,0.1,0.9", "hue"),
                                     ("--gaussian-blur", "4,1", "kernelSize"), ("--randaugment", "2,31", "magnitude"),
                                     ("--affine", "10,0.1,1.2,0.8,5", "--affine"), ("--rotate", "nan", "--rotate"),
                                     ("--grayscale", "2", "random-grayscale"), ("--random-erasing", "-0.1", "random-erasing")] {
            let run = try runFovea(["train", flag, value])
            #expect(run.status == 64 && run.error.contains(named), "\(flag) \(value): \(run.status) \(run.error)")
        }
    }

    @Test("huge, NaN and negative numeric flags are usage errors (64) naming the flag, before any work")
    func hostileNumbers() throws {
        let huge = String(Int64(1) << 62), max = String(Int64.max)
        let cases: [([String], String)] = [
            (["train", "--batch-size", huge], "--batch-size"), (["train", "--epochs", max], "--epochs"),
            (["train", "--schedule", "step", "--step-epochs", huge], "--step-epochs"),
            (["train", "--schedule", "multistep", "--milestones", "2", huge], "--milestones"),
            (["train", "--accumulate", huge], "--accumulate"), (["train", "--image-size", "65537"], "--image-size"),
            (["train", "--image-size", huge], "--image-size"), (["train", "--checkpoint-every", huge], "--checkpoint-every"),
            (["train", "--early-stopping", huge], "--early-stopping"),
            (["train", "--momentum", "nan"], "--momentum"), (["train", "--weight-decay", "nan"], "--weight-decay"),
            (["train", "--weight-decay", "inf"], "--weight-decay"), (["train", "--label-smoothing", "nan"], "--label-smoothing"),
            (["train", "--gamma", "nan"], "--gamma"), (["train", "--gamma", "-1"], "--gamma"), (["train", "--gamma", "0"], "--gamma"),
            (["models", "--classes", "100000000"], "--classes"), (["models", "--classes", huge], "--classes"),
            (["models", "--classes", "0"], "--classes"),
            (["bench", "--model", "lenet5", "--batch-size", huge], "--batch-size"),
        ]
        for (arguments, flag) in cases {
            let run = try runFovea(arguments)
            #expect(run.status == 64 && run.error.contains(flag), "\(arguments): \(run.status) \(run.error)")
        }
    }

    @Test("augmentation flags train end to end; the recipe keeps its pad-4 crop and flip")
    func augmentationFlags() throws {
        let data = try temporaryDirectory("augment-data")
        try writeSyntheticMNIST(to: data, trainCount: 200, testCount: 50)
        let run = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1", "--batch-size", "32", "--json", "--quiet",
                                "--random-crop", "2", "--vertical-flip", "--rotate", "10", "--affine", "5,0.1,0.9,1.1,5",
                                "--trivial-augment", "--randaugment", "2,9", "--color-jitter", "0.3,0.3,0,0", "--grayscale", "0.2",
                                "--gaussian-blur", "3,0.1,1", "--random-erasing", "0.5"])
        #expect(run.status == 0, "\(run.error)")
        #expect(Recipe.named("resnet20-cifar10")?.options.augmentations == [.randomCrop(padding: 4), .horizontalFlip(probability: 0.5)])
    }
}
