import Foundation
#if canImport(Glibc)
import Glibc
#endif
import FoveaModels
import FoveaNN
import FoveaTensor

/// The JSON sidecar saved next to `model.safetensors`: what the weights are and how to feed them.
public struct ModelSidecar: Codable, Equatable, Sendable {
    public var format = "fovea-model/1"
    /// Registry name of the architecture (`ModelZoo`).
    public var architecture: String
    /// Class names, indexed by label.
    public var classes: [String]
    /// Input (C, H, W).
    public var inputShape: [Int]
    /// Dataset the model was trained on.
    public var dataset: String
    /// Per-channel normalisation applied to pixels scaled to [0, 1].
    public var mean: [Float]
    public var std: [Float]
    /// The options of the run that wrote the model.
    public var options: TrainingOptions?
    /// Test accuracy measured at the end of that run.
    public var testAccuracy: Double?
    /// Static int8 quantization (`fovea quantize`): the calibrated input ranges; such a model runs in int8 by default.
    public var quantization: QuantizationRecord?

    enum CodingKeys: String, CodingKey {
        case format, architecture, classes, dataset, mean, std, options, quantization
        case inputShape = "input_shape", testAccuracy = "test_accuracy"
    }

    /// Creates a sidecar.
    public init(architecture: String, classes: [String], inputShape: [Int], dataset: String, mean: [Float], std: [Float],
                options: TrainingOptions? = nil, testAccuracy: Double? = nil) {
        (self.architecture, self.classes, self.inputShape, self.dataset) = (architecture, classes, inputShape, dataset)
        (self.mean, self.std, self.options, self.testAccuracy) = (mean, std, options, testAccuracy)
    }
}

extension ModelSidecar {
    /// The most classes a sidecar may name.
    public static let maximumClasses = 100_000
    /// The largest input height or width a sidecar may give.
    public static let maximumInputSide = 4096

    /// Checks that a model can be built and fed from these values; the error names the file and the field.
    /// `architecture` is a zoo name; `classes` 1…`maximumClasses` names; `input_shape` is (C, H, W) with C 1 or 3
    /// (the images Fovea decodes) and H, W in 1…`maximumInputSide`; `mean` and `std` have one value or one per
    /// channel, finite, `std` at least 1e-6.
    /// An imported ONNX graph's sidecar (`requiringZooArchitecture: false`) may name any architecture.
    public func validate(path: String, requiringZooArchitecture: Bool = true) throws {
        func bad(_ field: String, _ reason: String) -> TrainingError {
            .badModelFile(path: path, reason: "sidecar field \(field): \(reason)")
        }
        guard !requiringZooArchitecture || ModelZoo.names.contains(architecture) else {
            throw bad("architecture", "'\(architecture.prefix(100))' is not a model of the zoo (fovea models lists them)")
        }
        guard !classes.isEmpty, classes.count <= Self.maximumClasses else {
            throw bad("classes", "\(classes.count) names; a model has 1 to \(Self.maximumClasses) classes")
        }
        guard inputShape.count == 3 else {
            throw bad("input_shape", "\(inputShape.prefix(8)) is not (channels, height, width)")
        }
        guard [1, 3].contains(inputShape[0]) else {
            throw bad("input_shape", "\(inputShape[0]) channels; models take 1 (grey) or 3 (RGB) channels")
        }
        guard inputShape[1...].allSatisfy({ (1...Self.maximumInputSide).contains($0) }) else {
            throw bad("input_shape", "height and width \(Array(inputShape[1...])) must be 1 to \(Self.maximumInputSide)")
        }
        for (field, values) in [("mean", mean), ("std", std)] {
            guard values.count == 1 || values.count == inputShape[0] else {
                throw bad(field, "\(values.count) values for \(inputShape[0]) channels (one, or one per channel)")
            }
            guard values.allSatisfy(\.isFinite) else { throw bad(field, "\(values) is not finite") }
        }
        guard std.allSatisfy({ $0 >= 1e-6 }) else {
            throw bad("std", "\(std): a standard deviation below 1e-6 (zero, tiny or negative) would blow pixels up")
        }
        if let quantization {
            guard quantization.scheme == QuantizationRecord.staticInt8 else {
                throw bad("quantization.scheme", "'\(quantization.scheme.prefix(40))' is not \(QuantizationRecord.staticInt8)")
            }
            for (field, ranges) in [("inputs", quantization.inputs), ("outputs", quantization.outputs ?? [:])] {
                for (layer, range) in ranges where !(range.count == 2 && range.allSatisfy(\.isFinite) && range[0] <= range[1]) {
                    throw bad("quantization.\(field)", "the range of \(layer.prefix(100)) is \(range.prefix(4)); it must be [lowest, highest], finite")
                }
            }
        }
    }
}

/// Saving and loading weights as safetensors (torchvision state-dict keys) plus the JSON sidecar.
public enum ModelFile {
    /// Path of the sidecar for a weights file: `model.safetensors` → `model.json`.
    public static func sidecarPath(for weightsPath: String) -> String {
        (weightsPath.hasSuffix(".safetensors") ? String(weightsPath.dropLast(".safetensors".count)) : weightsPath) + ".json"
    }

    /// Writes the model's parameters and buffers, then the sidecar, each atomically. Returns both paths.
    @discardableResult
    public static func save(_ model: Layer, sidecar: ModelSidecar, to path: String) throws -> [String] {
        let entries = try model.stateEntries().map { name, tensor in
            SafeTensors.Entry(name: name, shape: tensor.shape, values: try tensor.toArray())
        }
        try SafeTensors.write(entries, metadata: ["format": "pt", "architecture": sidecar.architecture], to: path)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let sidecarFile = sidecarPath(for: path)
        try writeAtomically(try encoder.encode(sidecar), to: sidecarFile)
        return [path, sidecarFile]
    }

    /// The largest sidecar read (a sidecar of 100,000 class names of 100 characters is 10 MB).
    public static let maximumSidecarBytes = 16 << 20

    /// Reads a sidecar and checks every field (`ModelSidecar.validate`): a regular file of at most
    /// `maximumSidecarBytes`, valid JSON, values a model can be built and fed from.
    public static func readSidecar(for weightsPath: String, requiringZooArchitecture: Bool = true) throws -> ModelSidecar {
        let path = sidecarPath(for: weightsPath)
        let data: [UInt8]
        do throws(FileReadError) { data = try RegularFile.contents(of: path, limit: maximumSidecarBytes) } catch {
            let reason = switch error {
            case .system(ENOENT): "sidecar missing (it is written next to the weights by fovea train)"
            case .system: "sidecar cannot be read: \(error.reason)"
            case .notRegular: "sidecar is not a regular file"
            case let .tooLarge(size, limit): "sidecar is \(size) bytes, more than the \(limit) a sidecar may have"
            }
            throw TrainingError.badModelFile(path: path, reason: reason)
        }
        let sidecar: ModelSidecar
        do { sidecar = try JSONDecoder().decode(ModelSidecar.self, from: Data(data)) } catch {
            throw TrainingError.badModelFile(path: path, reason: "sidecar is not valid: \(error)")
        }
        try sidecar.validate(path: path, requiringZooArchitecture: requiringZooArchitecture)
        return sidecar
    }

    /// Builds the sidecar's architecture and loads the weights into it strictly.
    public static func load(_ weightsPath: String) throws -> (Layer, ModelSidecar) {
        let sidecar = try readSidecar(for: weightsPath)
        // Strict loading overwrites every parameter and buffer: drawing initial weights first would be wasted.
        let model = try Initialization.withoutDrawing {
            try ModelZoo.make(sidecar.architecture, classCount: sidecar.classes.count,
                              inputChannels: sidecar.inputShape.first ?? 1)
        }
        try loadWeights(into: model, from: weightsPath)
        if let quantization = sidecar.quantization {
            try PostTrainingQuantization.apply(quantization, to: model, path: sidecarPath(for: weightsPath))
        }
        return (model, sidecar)
    }

    /// Copies every tensor of a safetensors file into the model's parameters and buffers.
    /// Strict: missing keys, unexpected keys and shape mismatches are all listed in one error.
    public static func loadWeights(into model: Layer, from path: String) throws {
        try assign(try SafeTensors.read(path: path).entries, to: model, path: path)
    }

    /// The names `assign` does not hold strictly: model tensors it leaves as they are (a head to be initialised afresh),
    /// model tensors the file may lack (kept as they are), file tensors that may go unused. None by default.
    struct AssignmentExceptions {
        var keepsModelValue: (String) -> Bool = { _ in false }
        var mayBeMissing: (String) -> Bool = { _ in false }
        var mayBeUnused: (String) -> Bool = { _ in false }
    }

    /// What `assign` did: tensors copied, model tensors left as they were (kept on purpose, or allowed missing), file
    /// tensors not used.
    struct Assignment {
        var loaded: [String] = [], keptModelValues: [String] = [], missing: [String] = [], unused: [String] = []
    }

    /// Assigns named tensors to the model's parameters and buffers, strictly (see `loadWeights`) but for `exceptions`;
    /// `target` names the model in the error. Nothing is assigned when anything disagrees.
    @discardableResult
    static func assign(_ entries: [String: SafeTensors.Entry], to model: Layer, path: String, target: String = "the model",
                       except exceptions: AssignmentExceptions = AssignmentExceptions()) throws -> Assignment {
        var problems: [String] = []
        var expectedNames = Set<String>()
        var assignments: [() throws -> Void] = []
        var result = Assignment()
        func plan(_ name: String, _ shape: [Int], _ assign: @escaping (Tensor) -> Void) {
            if exceptions.keepsModelValue(name) { result.keptModelValues.append(name); return }
            expectedNames.insert(name)
            guard let entry = entries[name] else {
                if exceptions.mayBeMissing(name) { result.missing.append(name) } else { problems.append("missing key \(name)") }
                return
            }
            guard entry.shape == shape else {
                problems.append("shape mismatch for \(name): file \(entry.shape), model \(shape)"); return
            }
            // NaN or infinite weights give NaN probabilities that print as answers: refuse them here.
            if let (index, value) = entry.firstNonFinite {
                problems.append("\(name) holds \(value) at element \(index)"); return
            }
            result.loaded.append(name)
            assignments.append { assign(try Tensor(shape: entry.shape, values: entry.values)) }
        }
        for (name, parameter) in model.namedParameters() { plan(name, parameter.value.shape) { parameter.value = $0 } }
        for (name, buffer) in model.namedBuffers() { plan(name, buffer.value.shape) { buffer.value = $0 } }
        for name in entries.keys.sorted() where !expectedNames.contains(name) {
            if exceptions.mayBeUnused(name) { result.unused.append(name) } else { problems.append("unexpected key \(name)") }
        }
        guard problems.isEmpty else {
            // A hostile file can hold a million stray names: the message lists the first twenty.
            let listed = problems.prefix(20).joined(separator: "; ") + (problems.count > 20 ? "; and \(problems.count - 20) more" : "")
            throw TrainingError.badModelFile(path: path, reason: "does not fit \(target): " + listed)
        }
        for assign in assignments { try assign() }
        return result
    }
}

/// Writes `bytes` to `path + ".tmp-<pid>"`, syncs it, renames it over `path` and syncs the directory, so readers (and
/// a crash) see either the old file or the complete new one. Every file Fovea writes goes through here. It replaces
/// only a regular file: a directory, FIFO, device, socket or symbolic link at `path` is refused and left alone.
/// Failures are `TrainingError.cannotWrite` with the operating system's reason (e.g. no space left on device).
public func writeAtomically(_ bytes: some ContiguousBytes, to path: String) throws {
    func failure(_ action: String, _ code: Int32 = errno) -> TrainingError {
        .cannotWrite(path: path, reason: "\(action): \(String(cString: strerror(code)))")
    }
    var status = stat()
    if lstat(path, &status) == 0, status.st_mode & S_IFMT != S_IFREG {
        throw TrainingError.cannotWrite(path: path, reason: "it exists and is not a regular file; only a regular file is replaced")
    }
    let temporary = path + ".tmp-\(getpid())"
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw failure("cannot create '\(temporary)'") }
    var renamed = false
    defer { if !renamed { unlink(temporary) } }
    do {
        defer { close(descriptor) }
        try bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let result = write(descriptor, buffer.baseAddress.unsafelyUnwrapped + written, buffer.count - written)
                if result < 0 && errno == EINTR { continue }
                if result <= 0 { throw failure("writing '\(temporary)' failed", result < 0 ? errno : EIO) }
                written += result
            }
        }
        guard fsync(descriptor) == 0 else { throw failure("syncing '\(temporary)' failed") }
    }
    guard rename(temporary, path) == 0 else { throw failure("renaming '\(temporary)' failed") }
    renamed = true
    // Sync the directory so the rename itself survives a crash. Some file systems refuse to sync directories; the
    // data is already safe then, so that failure is not reported.
    let slash = path.lastIndex(of: "/")
    let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY)
    if directoryDescriptor >= 0 {
        _ = fsync(directoryDescriptor)
        close(directoryDescriptor)
    }
}

/// The files a run writes in its folder, whose interrupted writes `removeInterruptedWrites` may clean up.
let runFileNames: Set<String> = ["metrics.jsonl", "metrics.csv", "report.json", "report.html", "model.safetensors",
                                 "model.json", "model-ema.safetensors", "model-ema.json", Trainer.lastCheckpointName,
                                 Trainer.bestCheckpointName]

/// Removes the temporary files (`NAME.tmp-PID`, regular files) that `writeAtomically` leaves when its process is killed
/// mid-write, for the files a run writes (`runFileNames`) and processes that no longer run; returns their names.
/// Anything else in the folder — a user's own `*.tmp-*` — is left alone.
func removeInterruptedWrites(in directory: String) -> [String] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
    var removed: [String] = []
    for name in names.sorted() {
        guard let marker = name.range(of: ".tmp-", options: .backwards), runFileNames.contains(String(name[..<marker.lowerBound])),
              let pid = Int32(name[marker.upperBound...]), pid > 0, String(pid) == name[marker.upperBound...] else { continue }
        // kill(pid, 0) fails with ESRCH only when no such process exists: a live writer's file is kept.
        guard pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
        let path = (directory as NSString).appendingPathComponent(name)
        var status = stat()
        guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG, unlink(path) == 0 else { continue }
        removed.append(name)
    }
    return removed
}

/// The run's output folder: metrics.jsonl (appended per epoch), report.json, model files.
final class OutputDirectory {
    let path: String

    /// Temporary files of interrupted writes that were removed when the folder was opened.
    private(set) var removedLeftovers: [String] = []

    init(path: String) throws {
        self.path = path
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw TrainingError.cannotWrite(path: path, reason: "\(error)")
        }
        removedLeftovers = removeInterruptedWrites(in: path)
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Replaces metrics.jsonl, atomically, with one JSON line per epoch of `history`. A fresh run writes it first at
    /// the end of its first epoch, so a run that fails before then leaves an older run's log beside its model intact.
    func writeMetrics(_ history: [EpochMetrics]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var lines = Data()
        for metrics in history {
            lines.append(try encoder.encode(metrics))
            lines.append(0x0A)
        }
        try writeAtomically(lines, to: file("metrics.jsonl"))
    }

    /// Writes metrics.csv, the CSV twin of metrics.jsonl, from the whole history.
    func writeMetricsCSV(_ history: [EpochMetrics]) throws {
        var lines = ["epoch,train_loss,train_accuracy,test_loss,test_accuracy,ema_test_loss,ema_test_accuracy,lr,seconds,images_per_second"]
        for m in history {
            let ema = [m.emaTestLoss, m.emaTestAccuracy].map { $0.map { String($0) } ?? "" }
            lines.append(([String(m.epoch), String(m.trainLoss), String(m.trainAccuracy), String(m.testLoss),
                           String(m.testAccuracy)] + ema + [String(m.learningRate), String(m.seconds),
                                                            String(m.imagesPerSecond)]).joined(separator: ","))
        }
        try writeAtomically(Data((lines.joined(separator: "\n") + "\n").utf8), to: file("metrics.csv"))
    }

    func writeReport(_ report: ClassificationReport) throws -> String {
        let path = file("report.json")
        try writeAtomically(try report.jsonData(), to: path)
        return path
    }
}

extension Layer {
    /// Loads a safetensors state dict (torchvision keys) into this model's parameters and buffers, strictly:
    /// missing keys, unexpected keys and shape mismatches are all listed in one `TrainingError.badModelFile`.
    public func load(safetensors path: String) throws { try ModelFile.loadWeights(into: self, from: path) }
}
