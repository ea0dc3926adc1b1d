import Foundation
import FoveaData
import FoveaDistributed
import FoveaNN
import FoveaOptim
import FoveaTensor

/// Data-parallel training's parts of `Trainer.fit`: how an epoch's order is cut among the ranks, the start-up checks
/// and broadcast, and the running sums over the ranks.
extension Trainer {
    /// This rank's samples of an epoch: of each of the epoch's `batches` global batches (consecutive `batchSize`
    /// samples of `order`, as one process takes them), the contiguous part of rank `rank` — batch-size ÷ ranks samples,
    /// and for a shorter last batch an even split, the first ranks taking one more (DistributedSampler's slicing, with
    /// the global order of one process). Returns the rank's order and, per batch, its part and the batch's size.
    func rankOrder(_ order: [Int], batchSize: Int, batches: Int, rank: Int, ranks: Int) -> ([Int], [(count: Int, total: Int)]) {
        var local: [Int] = [], parts: [(count: Int, total: Int)] = []
        local.reserveCapacity(order.count / max(ranks, 1) + batchSize)
        for batch in 0..<batches {
            let range = (batch * batchSize)..<min((batch + 1) * batchSize, order.count)
            let part = evaluationShard(count: range.count, rank: rank, size: ranks)
            local += order[(range.lowerBound + part.lowerBound)..<(range.lowerBound + part.upperBound)]
            parts.append((part.count, range.count))
        }
        return (local, parts)
    }

    /// Checks that every rank runs the same job, copies rank 0's parameters and buffers to all, and sets up the
    /// gradient synchronisation (and synchronised batch norm with --sync-batch-norm).
    func startDataParallel(communicator: Communicator, model: Layer, train: ImageClassificationSet,
                           test: ImageClassificationSet) throws -> DistributedDataParallel {
        if options.syncBatchNorm, !options.dropLast {
            let last = train.count % options.batchSize
            if last > 0 && last < communicator.size {
                throw TrainingError.invalidOption("with --sync-batch-norm every rank needs samples of every batch, but the "
                    + "\(train.count) training samples leave \(last) in the last batch of \(options.batchSize) for "
                    + "\(communicator.size) ranks; add --drop-last or choose another --batch-size")
            }
        }
        try checkSameJob(communicator: communicator, model: model, train: train, test: test)
        let parallel = DistributedDataParallel(model: model, communicator: communicator, bucketMegabytes: options.bucketMegabytes,
                                               overlap: options.overlapCommunication)
        try parallel.broadcastState(root: 0)
        if options.syncBatchNorm {
            for case let (_, norm as BatchNorm2D) in model.namedLayers() {
                norm.synchronization = { [communicator] values in try communicator.allreduce(values) }
            }
        }
        let buckets = parallel.bucketSizes
        if isPrimary {
            progress.announce("data-parallel: \(communicator.size) ranks on \(communicator.host), \(options.batchSize / communicator.size) "
                              + "images per rank of each batch of \(options.batchSize); \(buckets.count) gradient buckets "
                              + "(largest \(String(format: "%.1f", Double(buckets.max() ?? 0) * 4 / 1_048_576)) MB), allreduce "
                              + (options.overlapCommunication ? "overlapped with the backward pass" : "after the backward pass")
                              + (options.syncBatchNorm ? ", synchronised batch norm" : ""))
        }
        return parallel
    }

    /// Compares hashes of the options, the model's parameter and buffer shapes, and the data (sample counts, shape,
    /// classes) over the ranks; a rank that differs from rank 0 stops the job before any training, naming what differs.
    func checkSameJob(communicator: Communicator, model: Layer, train: ImageClassificationSet, test: ImageClassificationSet) throws {
        var optionsCopy = options
        optionsCopy.workers = nil  // the loading threads may differ per machine
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let parts: [(String, [UInt8])] = [
            ("options", Array(try encoder.encode(optionsCopy))),
            ("model (parameter and buffer names and shapes)",
             Array((model.namedParameters().map { "\($0.0)\($0.1.value.shape)" } + model.namedBuffers().map { "\($0.0)\($0.1.value.shape)" })
                .joined(separator: ";").utf8)),
            ("data (sample counts, sample shape, classes)",
             Array("\(train.count);\(test.count);\(train.sampleShape);\(train.info.classNames)".utf8)),
        ]
        var digest: [UInt8] = []
        for (_, bytes) in parts {
            var hash = SHA256()
            hash.update(bytes)
            digest += Array(hash.hexDigest().utf8.prefix(32))
        }
        let all = try communicator.allgather(bytes: digest)
        var problems: [String] = []
        for (index, (name, _)) in parts.enumerated() {
            let slice = { (ranks: [UInt8]) in Array(ranks[(index * 32)..<(index * 32 + 32)]) }
            let differing = all.indices.filter { slice(all[$0]) != slice(all[0]) }
            if !differing.isEmpty { problems.append("\(name) of rank\(differing.count > 1 ? "s" : "") "
                                                    + differing.map(String.init).joined(separator: ", ") + " differ from rank 0's") }
        }
        if !problems.isEmpty {
            throw TrainingError.invalidOption("the ranks do not run the same job: " + problems.joined(separator: "; ")
                                              + " (every rank must get the same command, model and data)")
        }
    }

    /// A checkpoint restored on every rank (each reads the run's directory); the epoch's running sums it holds are
    /// those of all ranks together, so ranks other than 0 start their own from zero.
    func restoreDistributed(from path: String, communicator: Communicator, model: Layer, optimizer: Optimizer,
                            average: WeightAverage?) throws -> TrainingProgress {
        var state = try Checkpoint.restore(from: path, model: model, optimizer: optimizer, average: average)
        if communicator.rank != 0 {
            (state.lossSum, state.correct, state.epochSkipped) = (0, 0, 0)
            state.epochSamples = 0
            state.epochSkippedFiles = []
        } else if state.epochSamples < 0 {
            state.epochSamples = state.batch * options.batchSize
        }
        return state
    }

    /// `state` with the epoch's running sums (loss, correct, samples, skipped) summed over the ranks.
    func globalProgress(_ state: TrainingProgress, communicator: Communicator) throws -> TrainingProgress {
        let sums = try communicator.allreduce([state.lossSum, Double(state.correct), Double(state.epochSamples),
                                               Double(state.epochSkipped)])
        var global = state
        global.lossSum = sums[0]
        (global.correct, global.epochSamples, global.epochSkipped) = (Int(sums[1]), Int(sums[2]), Int(sums[3]))
        return global
    }
}
