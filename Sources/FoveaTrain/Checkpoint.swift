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

    struct Metadata: Codable {
        var format = "fovea-checkpoint/1"
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
        for (name, entry) in file.entries {
            if name.hasPrefix("ema/") {
                averaged[String(name.dropFirst(4))] = try Tensor(shape: entry.shape, values: entry.values)
            } else if name.hasPrefix("model/") {
                weights[String(name.dropFirst(6))] = entry
            } else if name.hasPrefix("optimizer/") {
                optimizerTensors[String(name.dropFirst(10))] = try Tensor(shape: entry.shape, values: entry.values)
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

    private static func decodeMetadata(_ path: String, _ metadata: [String: String]) throws -> Metadata {
        guard let json = metadata[metadataKey] else {
            throw TrainingError.badModelFile(path: path, reason: "not a Fovea checkpoint (no \(metadataKey) metadata)")
        }
        do { return try JSONDecoder().decode(Metadata.self, from: Data(json.utf8)) } catch {
            throw TrainingError.badModelFile(path: path, reason: "checkpoint metadata is not valid: \(error)")
        }
    }
}
