import Foundation
import FoveaNN
import FoveaOptim
import FoveaTensor

/// Where a run stands: enough, with the weights and optimizer state, to continue bit for bit.
public struct TrainingProgress: Codable, Equatable, Sendable {
    /// The epoch in progress (1-based) and the index of the next batch in its shuffled order.
    public var epoch = 1
    public var batch = 0
    /// Optimizer steps taken so far.
    public var step = 0
    /// Running sums of the epoch in progress.
    public var lossSum = 0.0
    public var correct = 0
    /// Metrics of finished epochs.
    public var history: [EpochMetrics] = []
    /// Best value of the monitored metric at an epoch end, and its epoch.
    public var bestMetric: Double?
    public var bestEpoch: Int?
    /// Reduce-on-plateau state, when that schedule is used.
    public var plateau: ReduceOnPlateau?
    /// Whether early stopping ended the run.
    public var stoppedEarly = false
    /// Generator states of randomised layers (dropout, stochastic depth) by layer path.
    public var generators: [String: SeededGenerator] = [:]
    /// Samples trained on so far in the epoch in progress (fewer than its order with --drop-last or skipped files);
    /// −1 in progress read from a checkpoint written before it was kept (the trainer then derives it from `batch`).
    public var epochSamples = 0
    /// Samples of the epoch in progress left out because they could not be loaded (--skip-bad-files), and the
    /// first few of their files.
    public var epochSkipped = 0
    public var epochSkippedFiles: [String] = []
    /// How many skipped files are named in progress, metrics and notes.
    public static let skippedFilesKept = 5

    /// A fresh run.
    public init() {}
}

extension TrainingProgress {
    /// Decodes progress saved by any version: keys that are missing take their fresh-run values.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        epoch = try container.decodeIfPresent(Int.self, forKey: .epoch) ?? epoch
        batch = try container.decodeIfPresent(Int.self, forKey: .batch) ?? batch
        step = try container.decodeIfPresent(Int.self, forKey: .step) ?? step
        lossSum = try container.decodeIfPresent(Double.self, forKey: .lossSum) ?? lossSum
        correct = try container.decodeIfPresent(Int.self, forKey: .correct) ?? correct
        history = try container.decodeIfPresent([EpochMetrics].self, forKey: .history) ?? history
        bestMetric = try container.decodeIfPresent(Double.self, forKey: .bestMetric)
        bestEpoch = try container.decodeIfPresent(Int.self, forKey: .bestEpoch)
        plateau = try container.decodeIfPresent(ReduceOnPlateau.self, forKey: .plateau)
        stoppedEarly = try container.decodeIfPresent(Bool.self, forKey: .stoppedEarly) ?? stoppedEarly
        generators = try container.decodeIfPresent([String: SeededGenerator].self, forKey: .generators) ?? generators
        // Checkpoints from before this count was kept trained on every sample of the order so far.
        epochSamples = try container.decodeIfPresent(Int.self, forKey: .epochSamples) ?? -1
        epochSkipped = try container.decodeIfPresent(Int.self, forKey: .epochSkipped) ?? 0
        epochSkippedFiles = try container.decodeIfPresent([String].self, forKey: .epochSkippedFiles) ?? []
    }
}

/// The checkpoint file: model and optimizer tensors plus options and progress, in one safetensors file
/// written atomically (temporary file, fsync, rename), so a crash leaves the previous checkpoint intact.
public enum Checkpoint {
    static let metadataKey = "fovea_checkpoint"

    /// The format written; version 2 always carries the SHA-256 of its contents (`SafeTensors.digestKey`).
    static let format = "fovea-checkpoint/2"

    struct Metadata: Codable {
        var format = Checkpoint.format
        var options: TrainingOptions
        var progress: TrainingProgress
        var optimizerCounters: [String: Int]
    }

    /// Saves everything needed to resume.
    public static func save(to path: String, model: Layer, optimizer: Optimizer, average: WeightAverage? = nil,
                            options: TrainingOptions, progress: TrainingProgress) throws {
        var progress = progress
        for (name, layer) in model.namedLayers() {
            if let randomized = layer as? any RandomizedLayer { progress.generators[name] = randomized.generator }
        }
        let optimizerState = optimizer.state()
        var entries = try model.stateEntries().map { name, tensor in
            SafeTensors.Entry(name: "model/" + name, shape: tensor.shape, values: try tensor.toArray())
        }
        for (name, tensor) in optimizerState.tensors.sorted(by: { $0.key < $1.key }) {
            entries.append(SafeTensors.Entry(name: "optimizer/" + name, shape: tensor.shape, values: try tensor.toArray()))
        }
        for (name, tensor) in (average?.shadows ?? [:]).sorted(by: { $0.key < $1.key }) {
            entries.append(SafeTensors.Entry(name: "ema/" + name, shape: tensor.shape, values: try tensor.toArray()))
        }
        let metadata = Metadata(options: options, progress: progress, optimizerCounters: optimizerState.counters)
        let json = String(decoding: try JSONEncoder().encode(metadata), as: UTF8.self)
        try SafeTensors.write(entries, metadata: [metadataKey: json], to: path)
    }

    /// Reads a checkpoint's options and progress without building anything.
    public static func readMetadata(_ path: String) throws -> (TrainingOptions, TrainingProgress) {
        let metadata = try decodeMetadata(path, try SafeTensors.read(path: path).metadata)
        return (metadata.options, metadata.progress)
    }

    /// Loads weights, optimizer state and generator states into an already built model and optimizer.
    public static func restore(from path: String, model: Layer, optimizer: Optimizer,
                               average: WeightAverage? = nil) throws -> TrainingProgress {
        let file = try SafeTensors.read(path: path)
        let metadata = try decodeMetadata(path, file.metadata)
        var weights: [String: SafeTensors.Entry] = [:]
        var optimizerTensors: [String: Tensor] = [:]
        var averaged: [String: Tensor] = [:]
        // Model weights are checked by `ModelFile.assign`; optimizer and EMA state here, before they become tensors.
        func state(_ name: String, _ entry: SafeTensors.Entry) throws -> Tensor {
            if let (index, _) = entry.firstNonFinite {
                throw TrainingError.badModelFile(path: path, reason: "\(name) holds a NaN or infinite value at element \(index)")
            }
            return try Tensor(shape: entry.shape, values: entry.values)
        }
        for (name, entry) in file.entries.sorted(by: { $0.key < $1.key }) {
            if name.hasPrefix("ema/") {
                averaged[String(name.dropFirst(4))] = try state(name, entry)
            } else if name.hasPrefix("model/") {
                weights[String(name.dropFirst(6))] = entry
            } else if name.hasPrefix("optimizer/") {
                optimizerTensors[String(name.dropFirst(10))] = try state(name, entry)
            } else {
                throw TrainingError.badModelFile(path: path, reason: "unexpected tensor \(name) in a checkpoint")
            }
        }
        try ModelFile.assign(weights, to: model, path: path)
        do {
            try optimizer.restore(OptimizerState(tensors: optimizerTensors, counters: metadata.optimizerCounters))
        } catch {
            throw TrainingError.badModelFile(path: path, reason: "optimizer state does not fit: \(error)")
        }
        // Every saved slot must have found its parameter: a tensor the optimizer did not take is a damaged name.
        let taken = Set(optimizer.state().tensors.keys)
        if let stray = optimizerTensors.keys.sorted().first(where: { !taken.contains($0) }) {
            throw TrainingError.badModelFile(path: path, reason: "optimizer/\(stray) belongs to no parameter of this optimizer")
        }
        let randomized = Set(model.namedLayers().filter { $0.1 is any RandomizedLayer }.map(\.0))
        if let stray = metadata.progress.generators.keys.sorted().first(where: { !randomized.contains($0) }) {
            throw TrainingError.badModelFile(path: path, reason: "generator state for '\(stray.prefix(80))', which is no randomised layer of the model")
        }
        if let average {
            do { try average.restore(averaged) } catch {
                throw TrainingError.badModelFile(path: path, reason: "weight average does not fit: \(error)")
            }
        }
        for (name, layer) in model.namedLayers() {
            if let randomized = layer as? any RandomizedLayer, let generator = metadata.progress.generators[name] {
                randomized.generator = generator
            }
        }
        return metadata.progress
    }

    /// Checks a checkpoint's metadata JSON (its `fovea_checkpoint` value) as resuming does, for a file whose digest has
    /// been verified, and returns its options and progress; `path` names it in errors.
    public static func decodeMetadata(json: String, path: String) throws -> (TrainingOptions, TrainingProgress) {
        let metadata = try decodeMetadata(path, [metadataKey: json, SafeTensors.digestKey: "verified"])
        return (metadata.options, metadata.progress)
    }

    /// Decodes and checks the metadata: a known format (version 2 with its digest, which `SafeTensors.decode` has
    /// already checked), options without unknown keys and within the ranges `TrainingOptions.problem()` allows, and
    /// progress whose fields are possible (`TrainingProgress.problem`).
    static func decodeMetadata(_ path: String, _ metadata: [String: String]) throws -> Metadata {
        func bad(_ reason: String) -> TrainingError { .badModelFile(path: path, reason: reason) }
        guard let json = metadata[metadataKey] else { throw bad("not a Fovea checkpoint (no \(metadataKey) metadata)") }
        let decoded: Metadata
        do { decoded = try JSONDecoder().decode(Metadata.self, from: Data(json.utf8)) } catch {
            throw bad("checkpoint metadata is not valid: \(error)")
        }
        switch decoded.format {
        case "fovea-checkpoint/1": break
        case format where metadata[SafeTensors.digestKey] != nil: break
        case format: throw bad("checkpoint of format \(format) without its \(SafeTensors.digestKey) digest")
        default: throw bad("unknown checkpoint format '\(decoded.format.prefix(40))' (this Fovea reads \(format))")
        }
        // Decoding fills options it does not find with defaults: a misspelt key would silently change the run.
        if let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
           let options = object["options"] as? [String: Any] {
            let known = Set(TrainingOptions.CodingKeys.allCases.map(\.stringValue))
            if let unknown = options.keys.sorted().first(where: { !known.contains($0) }) {
                throw bad("checkpoint option '\(unknown.prefix(40))' is not an option of fovea train")
            }
        }
        if let problem = decoded.options.problem() { throw bad("checkpoint options: \(problem)") }
        if let problem = decoded.progress.problem(epochs: decoded.options.epochs) { throw bad("checkpoint progress: \(problem)") }
        // Optimizer counters count steps: never more than the run has taken.
        if let (name, value) = decoded.optimizerCounters.first(where: { !(0...decoded.progress.step).contains($0.value) }) {
            throw bad("checkpoint optimizer counter \(name.prefix(40)) is \(value), not 0 to the \(decoded.progress.step) steps taken")
        }
        return decoded
    }
}

extension TrainingProgress {
    /// What is impossible about this progress for a run of `epochs` epochs, or nil; `batches` and `samples` (per
    /// epoch), when known, bound the position within the epoch.
    public func problem(epochs: Int, batches: Int? = nil, samples: Int? = nil) -> String? {
        guard (1...TrainingOptions.maximumCount).contains(epochs) else { return "a run of \(epochs) epochs" }
        // Without the data, counts are bounded far below overflow (the trainer adds to each of them).
        let sampleLimit = samples ?? 1 << 40, batchLimit = batches ?? 1 << 40
        if !(1...epochs + 1).contains(epoch) { return "epoch \(epoch) is not 1 to \(epochs + 1)" }
        if batch < 0 || batch > batchLimit { return "batch \(batch) is not 0 to \(batches.map(String.init) ?? "the batches of an epoch")" }
        if step < 0 || step > epoch * batchLimit { return "step \(step) is not 0 to \(epoch) × the batches of an epoch" }
        if epochSamples < -1 || epochSamples > sampleLimit { return "epoch_samples \(epochSamples) is out of range" }
        let seen = epochSamples >= 0 ? epochSamples : sampleLimit
        if correct < 0 || correct > seen { return "correct \(correct) is not 0 to \(seen)" }
        if !lossSum.isFinite || lossSum < 0 { return "loss sum \(lossSum) is not a finite number ≥ 0" }
        if epochSkipped < 0 || epochSkipped > sampleLimit { return "epoch_skipped \(epochSkipped) is out of range" }
        if history.count != epoch - 1 { return "\(history.count) finished epochs in the history at epoch \(epoch)" }
        if let index = history.indices.first(where: { history[$0].epoch != $0 + 1 }) {
            return "history entry \(index + 1) is of epoch \(history[index].epoch)"
        }
        if let bestEpoch, !(1..<epoch).contains(bestEpoch) { return "best epoch \(bestEpoch) is not a finished epoch" }
        if let bestMetric, !bestMetric.isFinite { return "best metric \(bestMetric) is not finite" }
        if let plateau {
            if !(plateau.factor > 0 && plateau.factor < 1) || plateau.patience < 0 || plateau.patience > TrainingOptions.maximumCount
                || !(0...history.count).contains(plateau.badEvaluations) || !(plateau.scale >= 0 && plateau.scale <= 1)
                || !(plateau.minimum >= 0 && plateau.minimum.isFinite) || !plateau.threshold.isFinite
                || plateau.best.map({ !$0.isFinite }) == true {
                return "plateau state \(plateau) is not possible"
            }
        }
        return nil
    }
}
