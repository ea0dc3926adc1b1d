import Foundation
#if canImport(Glibc)
import Glibc
#endif
import FoveaModels
import FoveaNN
import FoveaTensor
@testable import FoveaTrain
import Testing

/// The SHA-256 that every file Fovea writes carries, and the checks on everything a checkpoint says.
@Suite("File integrity and checkpoint validation", .serialized)
struct IntegrityTests {
    /// `sha256sum`'s digest of `bytes`: coreutils as the reference implementation.
    static func referenceDigest(_ bytes: [UInt8]) throws -> String {
        let file = try temporaryDirectory("sha") + "/message"
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [file]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return String(text.prefix(64))
    }

    @Test("SHA-256 equals sha256sum around the block and padding boundaries, fed in pieces, with and without SHA-NI")
    func digestAgainstCoreutils() throws {
        var generator = SeededGenerator(seed: 7)
        for length in [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 100_003] {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let reference = try Self.referenceDigest(bytes)
            for portable in [false, true] {
                var hash = SHA256(portable: portable)
                var start = 0
                while start < length {
                    let piece = min(length - start, Int(generator.next() % 150))
                    bytes[start..<start + piece].withUnsafeBytes { hash.update($0) }
                    start += piece
                }
                #expect(hash.hexDigest() == reference, "length \(length), portable \(portable)")
            }
            #expect(SHA256.hexDigest(of: bytes) == reference)
        }
    }

    @Test("a changed byte anywhere in a model file is an error on loading, never different weights")
    func flippedModelBytes() throws {
        let directory = try temporaryDirectory("integrity-model")
        let weights = directory + "/model.safetensors"
        Initialization.seed(3)
        let sidecar = ModelSidecar(architecture: "lenet5", classes: (0..<10).map(String.init), inputShape: [1, 28, 28],
                                   dataset: "mnist", mean: [0.5], std: [0.25])
        try ModelFile.save(try LeNet5(), sidecar: sidecar, to: weights)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: weights)))
        let reference = try SafeTensors.decode(original, path: weights).entries
        #expect(try SafeTensors.decode(original, path: weights).metadata[SafeTensors.digestKey]?.count == 64)
        let headerEnd = 8 + Int(original[0]) + Int(original[1]) << 8 + Int(original[2]) << 16
        var generator = SeededGenerator(seed: 11)
        // Every header byte, then 300 data bytes at random, each flipped by one random bit.
        let positions = Array(8..<headerEnd) + (0..<300).map { _ in headerEnd + Int(generator.next() % UInt64(original.count - headerEnd)) }
        var detected = 0, harmless = 0
        for position in positions {
            var damaged = original
            damaged[position] ^= UInt8(1) << (generator.next() % 8)
            do {
                let entries = try SafeTensors.decode(damaged, path: weights).entries
                // Only a change the JSON does not see (e.g. in the padding spaces) may read, and then to the same tensors.
                #expect(entries == reference, "flip at byte \(position) changed the weights without an error")
                harmless += 1
            } catch let error as SafeTensorsError {
                if position >= headerEnd, case .damaged = error {} else if position >= headerEnd {
                    Issue.record("flip at data byte \(position): \(error)")
                }
                detected += 1
            }
        }
        #expect(detected > positions.count * 9 / 10, "\(detected) detected, \(harmless) harmless")
        // Through the command line: a flipped weight byte is exit 65 naming the file, not an answer.
        var damaged = original
        damaged[original.count - 5] ^= 0x10
        try Data(damaged).write(to: URL(fileURLWithPath: weights))
        let image = try HostileModelFileTests.writeImage(in: directory)
        let result = try runFovea(["predict", "--weights", weights, image])
        #expect(result.status == 65, "\(result.output) \(result.error)")
        #expect(result.error.contains("damaged") && result.error.contains(weights), "\(result.error)")
    }

    /// A finished 2-epoch LeNet-5 run with a checkpoint, on synthetic MNIST.
    static func checkpointedRun() throws -> (data: String, run: String) {
        let data = try temporaryDirectory("integrity-data"), run = try temporaryDirectory("integrity-run")
        try writeSyntheticMNIST(to: data, trainCount: 96, testCount: 32)
        let result = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "2", "--batch-size", "32",
                                   "--optimizer", "adam", "--lr", "0.001", "--checkpoint-every", "2", "--output", run,
                                   "--kill-after-step", "4", "--quiet"])
        #expect(result.status == 9 || result.status == 137, "expected SIGKILL, got \(result.status): \(result.error)")
        return (data, run)
    }

    /// The checkpoint with `edit` applied to its metadata JSON and `tensors` to its tensors, written with a valid digest.
    static func rewrite(_ path: String, edit: (inout [String: Any]) -> Void,
                        tensors: (inout [String: SafeTensors.Entry]) -> Void = { _ in }) throws {
        var (entries, metadata) = try SafeTensors.read(path: path)
        var object = try #require(try JSONSerialization.jsonObject(with: Data(metadata[Checkpoint.metadataKey]!.utf8)) as? [String: Any])
        edit(&object)
        tensors(&entries)
        metadata[Checkpoint.metadataKey] = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        metadata[SafeTensors.digestKey] = nil
        try SafeTensors.write(Array(entries.values), metadata: metadata, to: path)
    }

    @Test("impossible checkpoint fields and damaged bytes stop --resume with exit 65 naming the field; a good one resumes")
    func hostileCheckpoints() throws {
        let (_, run) = try Self.checkpointedRun()
        let checkpoint = run + "/" + Trainer.lastCheckpointName
        let pristine = try Data(contentsOf: URL(fileURLWithPath: checkpoint))
        func progress(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
            { object in var p = object["progress"] as! [String: Any]; p[key] = value; object["progress"] = p }
        }
        func option(_ key: String, _ value: Any?) -> (inout [String: Any]) -> Void {
            { object in var o = object["options"] as! [String: Any]; o[key] = value; object["options"] = o }
        }
        let cases: [(String, String, (inout [String: Any]) -> Void, (inout [String: SafeTensors.Entry]) -> Void)] = [
            ("negative batch", "batch", progress("batch", -1), { _ in }),
            ("batch past the epoch", "batch", progress("batch", 4), { _ in }),
            ("epoch past the run", "epoch", progress("epoch", 9), { _ in }),
            ("epoch zero", "epoch", progress("epoch", 0), { _ in }),
            ("negative step", "step", progress("step", -3), { _ in }),
            ("step at Int.max", "step", progress("step", Int.max), { _ in }),
            ("optimizer counter past the steps", "counter", { $0["optimizerCounters"] = ["step": 1000] }, { _ in }),
            ("infinite-ish loss sum", "loss sum", progress("lossSum", -1.0), { _ in }),
            ("more correct than seen", "correct", progress("correct", 1000), { _ in }),
            ("a misspelt option", "'epocis'", { object in
                var o = object["options"] as! [String: Any]; o["epocis"] = o.removeValue(forKey: "epochs"); object["options"] = o
            }, { _ in }),
            ("zero epochs", "--epochs", option("epochs", 0), { _ in }),
            ("huge batch size", "--batch-size", option("batch_size", 1 << 40), { _ in }),
            ("unknown format", "format", { $0["format"] = "fovea-checkpoint/9" }, { _ in }),
            ("negative optimizer counter", "counter", { $0["optimizerCounters"] = ["step": -1] }, { _ in }),
            ("stray optimizer tensor", "optimizer/first.99", { _ in }, { entries in
                entries["optimizer/first.99"] = SafeTensors.Entry(name: "optimizer/first.99", shape: [1], values: [0])
            }),
            ("NaN in the optimizer state", "optimizer/second.0", { _ in }, { entries in
                var entry = entries["optimizer/second.0"]!; entry.values[0] = .nan; entries["optimizer/second.0"] = entry
            }),
            ("missing model tensor", "conv1.weight", { _ in }, { entries in entries["model/conv1.weight"] = nil }),
        ]
        for (label, field, edit, tensors) in cases {
            try pristine.write(to: URL(fileURLWithPath: checkpoint))
            try Self.rewrite(checkpoint, edit: edit, tensors: tensors)
            let result = try runFovea(["train", "--resume", run, "--quiet"])
            #expect(result.status == 65, "\(label): exit \(result.status) \(result.error)")
            #expect(result.error.contains(field) && result.error.contains(checkpoint), "\(label): \(result.error)")
        }
        // A flipped byte in the options without re-signing: the digest finds it.
        var bytes = [UInt8](pristine)
        let at = try #require(bytes.firstRange(of: Array("\\\"epochs\\\":2".utf8))?.upperBound)
        bytes[at - 1] = UInt8(ascii: "9")
        try Data(bytes).write(to: URL(fileURLWithPath: checkpoint))
        let flipped = try runFovea(["train", "--resume", run, "--quiet"])
        #expect(flipped.status == 65 && flipped.error.contains("damaged"), "\(flipped.status) \(flipped.error)")
        // The untouched checkpoint resumes to the end.
        try pristine.write(to: URL(fileURLWithPath: checkpoint))
        let resumed = try runFovea(["train", "--resume", run, "--quiet"])
        #expect(resumed.status == 0, "\(resumed.error)")
    }

    @Test("a run removes temporary files of killed writes, and one that fails early leaves an older metrics.jsonl alone")
    func leftovers() throws {
        let (data, run) = try Self.checkpointedRun()
        // A process id no process has: the writer of these files is gone.
        let dead = try #require((100_000...4_194_303).reversed().first { kill(pid_t($0), 0) != 0 && errno == ESRCH })
        let stale = run + "/checkpoint-last.safetensors.tmp-\(dead)", live = run + "/model.json.tmp-\(getppid())"
        // A user's files that look alike: not a name a run writes, or digits that are no process id.
        let unrelated = [run + "/notes.tmp-draft", run + "/db.tmp-20240101", run + "/metrics.csv.tmp-0\(dead)"]
        for file in [stale, live] + unrelated { try Data("partial".utf8).write(to: URL(fileURLWithPath: file)) }
        let resumed = try runFovea(["train", "--resume", run])
        #expect(resumed.status == 0, "\(resumed.error)")
        #expect(!FileManager.default.fileExists(atPath: stale), "the dead writer's file is still there")
        #expect(resumed.output.contains("removed checkpoint-last.safetensors.tmp-\(dead)")
                || resumed.error.contains("removed checkpoint-last.safetensors.tmp-\(dead)"), "\(resumed.output)")
        #expect(FileManager.default.fileExists(atPath: live), "a file of a running process was removed")
        for file in unrelated { #expect(FileManager.default.fileExists(atPath: file), "\(file), not Fovea's, was removed") }

        // A fresh run into the finished folder that fails before its first epoch ends keeps the old log.
        let metrics = run + "/metrics.jsonl"
        let before = try Data(contentsOf: URL(fileURLWithPath: metrics))
        #expect(!before.isEmpty)
        let labels = data + "/t10k-labels-idx1-ubyte"
        let good = try Data(contentsOf: URL(fileURLWithPath: labels))
        var bad = [UInt8](good)
        bad[bad.count - 1] = 200  // a label out of range in the test split, found when the test split is read
        try Data(bad).write(to: URL(fileURLWithPath: labels))
        let failed = try runFovea(["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1", "--output", run, "--quiet"])
        #expect(failed.status == 65, "\(failed.error)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: metrics)) == before, "the older run's metrics.jsonl changed")
    }
}
