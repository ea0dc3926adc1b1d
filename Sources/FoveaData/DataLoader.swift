import Foundation
import FoveaTensor

/// Builds mini-batches on worker threads while the model trains: samples are loaded (decoded, augmented,
/// normalised) by a function of (index, epoch) alone, straight into their slot of the batch tensor, so the batches
/// are the same whatever the number of workers. Workers share out single samples, not whole batches, so they finish
/// the first batch (and the last) together; at most `prefetch` batches are under way or waiting ahead of the
/// consumer. An error in one sample surfaces, with its index, when the consumer reaches that batch — never a hang —
/// unless `skipBadSamples` leaves such samples out of their batch and reports them.
public final class DataLoader: @unchecked Sendable {
    /// Writes one sample as normalised C×H×W floats to `destination` and returns its label.
    public typealias LoadSample = @Sendable (_ index: Int, _ epoch: Int, _ destination: UnsafeMutablePointer<Float>) throws -> Int32

    public let sampleShape: [Int]
    public let batchSize: Int
    public let workers: Int
    public let prefetch: Int
    /// Whether an epoch's last batch is dropped when it holds fewer than `batchSize` samples.
    public let dropLast: Bool
    /// Whether a sample whose loading throws is left out of its batch (and reported in `BatchStream.skipped`)
    /// instead of ending the epoch with its error.
    public let skipBadSamples: Bool
    let load: LoadSample

    /// Creates a loader; `workers == 0` loads on the calling thread.
    public init(sampleShape: [Int], batchSize: Int, workers: Int = 2, prefetch: Int = 4, dropLast: Bool = false,
                skipBadSamples: Bool = false, load: @escaping LoadSample) {
        (self.sampleShape, self.batchSize, self.load) = (sampleShape, max(1, batchSize), load)
        self.workers = max(0, workers)
        self.prefetch = max(1, prefetch)
        (self.dropLast, self.skipBadSamples) = (dropLast, skipBadSamples)
    }

    /// Number of batches an epoch over `count` samples has.
    public func batchCount(samples count: Int) -> Int {
        dropLast ? count / batchSize : (count + batchSize - 1) / batchSize
    }

    /// The batches of one epoch over `order`, starting at batch `startBatch`.
    public func batches(order: [Int], epoch: Int, startBatch: Int = 0) -> BatchStream {
        BatchStream(loader: self, order: order, epoch: epoch, startBatch: startBatch)
    }

    /// Elements of one sample.
    var sampleSize: Int { sampleShape.reduce(1, *) }
}

/// A sample left out of its batch because it could not be loaded.
public struct SkippedSample: Equatable, Sendable {
    /// Index of the sample in the dataset.
    public var index: Int
    /// The file it comes from, when the error names one.
    public var path: String?
    /// What went wrong.
    public var reason: String

    /// Describes the error `error` of sample `index`.
    public init(index: Int, error: Error) {
        self.index = index
        if case let DatasetError.badSample(_, path, _) = error { self.path = path }
        reason = "\(error)"
    }
}

/// One mini-batch of an epoch.
public struct Batch {
    /// Samples as N×C×H×W floats.
    public var images: Tensor
    /// Their labels, in batch order.
    public var labels: [Int32]
    /// Dataset indices of the samples, in batch order.
    public var indices: [Int]
    /// Position of the batch in the epoch (0-based, counting batches whose samples were all skipped).
    public var number: Int
    /// Samples of this batch left out because they could not be loaded.
    public var skipped: [SkippedSample]
}

/// The batches of one epoch, in order. Dropping the stream (or `stop()`) stops the workers.
public final class BatchStream: @unchecked Sendable {
    private let shared: SharedState

    init(loader: DataLoader, order: [Int], epoch: Int, startBatch: Int) {
        shared = SharedState(loader: loader, order: order, epoch: epoch, startBatch: startBatch)
        for _ in 0..<loader.workers {
            let state = shared
            let thread = Thread { state.work() }
            thread.stackSize = 1 << 22
            shared.running += 1
            thread.start()
        }
    }

    deinit { shared.stop() }

    /// The next batch, or nil after the last one. Rethrows a sample's error when its batch is reached; with
    /// `skipBadSamples`, failed samples are left out instead, and a batch of failures only is passed over.
    public func nextBatch() throws -> Batch? {
        while let batch = try shared.next() {
            if !batch.labels.isEmpty { return batch }
        }
        return nil
    }

    /// The next batch's images and labels, or nil after the last one (see `nextBatch()`).
    public func next() throws -> (Tensor, [Int32])? { try nextBatch().map { ($0.images, $0.labels) } }

    /// Every sample skipped so far in this epoch, in batch order.
    public var skipped: [SkippedSample] { shared.skipped }

    /// Number of batches of the epoch (after `dropLast`).
    public var batchCount: Int { shared.batchCount }

    /// Stops the workers and waits for them to finish the sample each is loading.
    public func stop() { shared.stop() }
}

/// What the consumer and the workers share; workers hold it strongly, the consumer's stream stops it.
private final class SharedState: @unchecked Sendable {
    /// A batch under construction: its tensor, the labels and errors of its slots, how many slots are still loading.
    struct Pending {
        var images: Tensor
        var labels: [Int32]
        var errors: [Int: Error] = [:]
        var remaining: Int
    }

    let loader: DataLoader
    let order: [Int]
    let epoch: Int
    let batchCount: Int
    var nextToConsume: Int
    /// The next (batch, slot) a worker takes.
    var claimBatch: Int
    var claimSlot = 0
    var pending: [Int: Pending] = [:]
    var skipped: [SkippedSample] = []
    var stopped = false
    var running = 0
    let condition = NSCondition()

    init(loader: DataLoader, order: [Int], epoch: Int, startBatch: Int) {
        self.loader = loader
        self.order = order
        self.epoch = epoch
        batchCount = loader.batchCount(samples: order.count)
        nextToConsume = startBatch
        claimBatch = startBatch
    }

    /// Number of samples in batch `number`.
    func size(of number: Int) -> Int { min(loader.batchSize, order.count - number * loader.batchSize) }

    /// A fresh batch under construction (its tensor uninitialised: every slot is written or left out).
    func start(_ number: Int) -> Pending {
        let count = size(of: number)
        return Pending(images: Tensor(uninitializedShape: [count] + loader.sampleShape),
                       labels: [Int32](repeating: 0, count: count), remaining: count)
    }

    /// Loads slot `slot` of batch `number` into `pending`'s tensor; returns its label or error.
    func load(_ number: Int, _ slot: Int, into pointer: UnsafeMutablePointer<Float>) -> Result<Int32, Error> {
        let index = order[number * loader.batchSize + slot]
        return Result { try loader.load(index, epoch, pointer) }
    }

    func next() throws -> Batch? {
        guard nextToConsume < batchCount else { return nil }
        let number = nextToConsume
        var batch: Pending
        if loader.workers == 0 {
            batch = start(number)
            let pointer = batch.images.storage.pointer
            for slot in 0..<batch.labels.count {
                switch load(number, slot, into: pointer + slot * loader.sampleSize) {
                case let .success(label): batch.labels[slot] = label
                case let .failure(error): batch.errors[slot] = error
                }
            }
            nextToConsume += 1
        } else {
            condition.lock()
            while (pending[number]?.remaining ?? 1) > 0 && !stopped { condition.wait() }
            guard !stopped, let finished = pending.removeValue(forKey: number) else {
                condition.unlock()
                return nil
            }
            batch = finished
            nextToConsume += 1
            condition.broadcast()
            condition.unlock()
        }
        return try finish(batch, number: number)
    }

    /// The finished batch: as loaded, or without its failed samples, or the first failure's error.
    func finish(_ batch: Pending, number: Int) throws -> Batch {
        let first = number * loader.batchSize
        let indices = Array(order[first..<(first + batch.labels.count)])
        if batch.errors.isEmpty {
            return Batch(images: batch.images, labels: batch.labels, indices: indices, number: number, skipped: [])
        }
        let failed = batch.errors.keys.sorted()
        guard loader.skipBadSamples else { throw batch.errors[failed[0]]! }
        let records = failed.map { SkippedSample(index: indices[$0], error: batch.errors[$0]!) }
        condition.lock()
        skipped += records
        condition.unlock()
        let kept = (0..<batch.labels.count).filter { batch.errors[$0] == nil }
        let size = loader.sampleSize
        let images = Tensor(uninitializedShape: [kept.count] + loader.sampleShape)
        for (row, slot) in kept.enumerated() {
            (images.storage.pointer + row * size).update(from: batch.images.storage.pointer + slot * size, count: size)
        }
        return Batch(images: images, labels: kept.map { batch.labels[$0] }, indices: kept.map { indices[$0] },
                     number: number, skipped: records)
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    func work() {
        condition.lock()
        while true {
            while !stopped && claimBatch < batchCount && claimBatch >= nextToConsume + loader.prefetch { condition.wait() }
            if stopped || claimBatch >= batchCount { break }
            let (number, slot) = (claimBatch, claimSlot)
            if pending[number] == nil { pending[number] = start(number) }
            let pointer = pending[number]!.images.storage.pointer + slot * loader.sampleSize
            claimSlot += 1
            if claimSlot == size(of: number) { (claimBatch, claimSlot) = (claimBatch + 1, 0) }
            condition.unlock()
            // The batch's tensor stays alive in `pending` until its last slot is done, so `pointer` stays valid.
            let result = load(number, slot, into: pointer)
            condition.lock()
            switch result {
            case let .success(label): pending[number]!.labels[slot] = label
            case let .failure(error): pending[number]!.errors[slot] = error
            }
            pending[number]!.remaining -= 1
            if pending[number]!.remaining == 0 { condition.broadcast() }
        }
        running -= 1
        condition.broadcast()
        condition.unlock()
    }
}
