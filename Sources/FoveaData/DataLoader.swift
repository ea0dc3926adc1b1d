import Foundation
import FoveaTensor

/// Builds mini-batches on worker threads while the model trains: samples are loaded (decoded, augmented,
/// normalised) by a function of (index, epoch) alone, so the batches are the same whatever the number of
/// workers; at most `prefetch` batches wait ahead of the consumer; an error in one sample surfaces, with its
/// index, when the consumer reaches that batch — never a hang.
public final class DataLoader: @unchecked Sendable {
    /// Writes one sample as normalised C×H×W floats to `destination` and returns its label.
    public typealias LoadSample = @Sendable (_ index: Int, _ epoch: Int, _ destination: UnsafeMutablePointer<Float>) throws -> Int32

    public let sampleShape: [Int]
    public let batchSize: Int
    public let workers: Int
    public let prefetch: Int
    let load: LoadSample

    /// Creates a loader; `workers == 0` loads on the calling thread.
    public init(sampleShape: [Int], batchSize: Int, workers: Int = 2, prefetch: Int = 4, load: @escaping LoadSample) {
        (self.sampleShape, self.batchSize, self.load) = (sampleShape, max(1, batchSize), load)
        self.workers = max(0, workers)
        self.prefetch = max(1, prefetch)
    }

    /// The batches of one epoch over `order`, starting at batch `startBatch`.
    public func batches(order: [Int], epoch: Int, startBatch: Int = 0) -> BatchStream {
        BatchStream(loader: self, order: order, epoch: epoch, startBatch: startBatch)
    }

    /// Builds batch `number` of `order` (used by workers and by the synchronous path).
    func build(_ number: Int, order: [Int], epoch: Int) throws -> (Tensor, [Int32]) {
        let indices = order[(number * batchSize)..<min((number + 1) * batchSize, order.count)]
        let size = sampleShape.reduce(1, *)
        let tensor = Tensor.zeros([indices.count] + sampleShape)
        var labels: [Int32] = []
        for (slot, index) in indices.enumerated() {
            labels.append(try load(index, epoch, tensor.storage.pointer + slot * size))
        }
        return (tensor, labels)
    }
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

    /// The next batch, or nil after the last one. Rethrows a sample's error when its batch is reached.
    public func next() throws -> (Tensor, [Int32])? { try shared.next() }

    /// Stops the workers and waits for them to finish their current batch.
    public func stop() { shared.stop() }
}

/// What the consumer and the workers share; workers hold it strongly, the consumer's stream stops it.
private final class SharedState: @unchecked Sendable {
    let loader: DataLoader
    let order: [Int]
    let epoch: Int
    let batchCount: Int
    var nextToConsume: Int
    var nextToClaim: Int
    var results: [Int: Result<(Tensor, [Int32]), Error>] = [:]
    var stopped = false
    var running = 0
    let condition = NSCondition()

    init(loader: DataLoader, order: [Int], epoch: Int, startBatch: Int) {
        self.loader = loader
        self.order = order
        self.epoch = epoch
        batchCount = (order.count + loader.batchSize - 1) / loader.batchSize
        nextToConsume = startBatch
        nextToClaim = startBatch
    }

    func next() throws -> (Tensor, [Int32])? {
        guard nextToConsume < batchCount else { return nil }
        if loader.workers == 0 {
            defer { nextToConsume += 1 }
            return try loader.build(nextToConsume, order: order, epoch: epoch)
        }
        condition.lock()
        while results[nextToConsume] == nil && !stopped { condition.wait() }
        guard let result = results.removeValue(forKey: nextToConsume) else {
            condition.unlock()
            return nil
        }
        nextToConsume += 1
        condition.broadcast()
        condition.unlock()
        return try result.get()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    func work() {
        while true {
            condition.lock()
            while !stopped && nextToClaim < batchCount && nextToClaim >= nextToConsume + loader.prefetch { condition.wait() }
            if stopped || nextToClaim >= batchCount {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let number = nextToClaim
            nextToClaim += 1
            condition.unlock()
            let result = Result { try loader.build(number, order: order, epoch: epoch) }
            condition.lock()
            results[number] = result
            condition.broadcast()
            condition.unlock()
        }
    }
}
