import Foundation
import FoveaNN
import FoveaTensor

/// Data-parallel training over the ranks of a `Communicator`, as PyTorch's DistributedDataParallel: every rank holds
/// the whole model and runs forward and backward on its share of each batch; `synchronize(_:)` sums the gradients
/// over the ranks, so after it every rank holds the same gradients and its optimizer makes the same update.
///
/// Gradients travel in buckets of about `bucketBytes` (parameters in reverse network order, the order the backward
/// pass finishes them). With `overlap`, a bucket's non-blocking allreduce starts as soon as the last of its gradients is
/// final (a `GradientObserver` counts each parameter's uses in the forward pass and the gradients that arrive), while
/// the backward pass goes on with the layers below; buckets start in index order on every rank, as MPI's collectives
/// must. Each parameter carries a flag through the sum, so a parameter that got no gradient on any rank keeps none.
///
/// The loss each rank backpropagates must be its share of the global loss (its samples' mean × its samples ÷ the
/// global batch's samples); the sum is then the global batch's gradient, whatever the split.
public final class DistributedDataParallel: GradientObserver {
    public let model: Layer
    public let communicator: Communicator
    /// Target size of a gradient bucket.
    public let bucketBytes: Int
    /// Whether buckets start during the backward pass (true) or all after it.
    public var overlap: Bool

    /// Steps synchronised so far.
    public private(set) var steps = 0
    /// Seconds spent after the backward pass waiting for the allreduces to finish, over all steps.
    public private(set) var waitSeconds = 0.0
    /// Seconds of the synchronised steps from the start of the forward pass to the end of the gradient sum, over all
    /// steps (`waitSeconds` is part of it).
    public private(set) var stepSeconds = 0.0
    /// Buckets started during a backward pass / after it, over all steps.
    public private(set) var bucketsStartedDuringBackward = 0
    public private(set) var bucketsStartedAfterBackward = 0

    final class Bucket {
        let parameters: [Parameter]
        /// Element offset of each parameter in `buffer`; the flags follow the gradients.
        let offsets: [Int]
        let elements: Int
        let buffer: UnsafeMutablePointer<Float>
        var pending: [Communicator.Pending] = []
        var launched = false

        init(parameters: [Parameter]) {
            self.parameters = parameters
            var offsets: [Int] = [], total = 0
            for parameter in parameters {
                offsets.append(total)
                total += parameter.value.count
            }
            (self.offsets, elements) = (offsets, total)
            buffer = .allocate(capacity: total + parameters.count)
        }

        deinit { buffer.deallocate() }
    }

    private var buckets: [Bucket] = []
    /// Bucket and slot of each trainable parameter.
    private var place: [ObjectIdentifier: (bucket: Int, slot: Int)] = [:]
    /// This step's uses and arrived gradients per parameter.
    private var uses: [ObjectIdentifier: Int] = [:]
    private var arrived: [ObjectIdentifier: Int] = [:]
    /// Per bucket: parameters not yet final.
    private var outstanding: [Int] = []
    private var nextLaunch = 0
    private var inBackward = false
    /// The trainable parameters the buckets were built for.
    private var bucketed: [ObjectIdentifier] = []

    /// Wraps `model` for training over `communicator`'s ranks; buckets of `bucketMegabytes` (PyTorch's default 25).
    public init(model: Layer, communicator: Communicator, bucketMegabytes: Double = 25, overlap: Bool = true) {
        (self.model, self.communicator, self.overlap) = (model, communicator, overlap)
        bucketBytes = max(4, Int(bucketMegabytes * 1_048_576))
    }

    /// Sizes (elements) of the current buckets, first started first.
    public var bucketSizes: [Int] {
        rebuildIfNeeded()
        return buckets.map(\.elements)
    }

    /// Copies rank `root`'s parameters and buffers to every rank (at start, and after loading weights or a
    /// checkpoint), in one broadcast; `timeout` nil waits for ranks still loading their data.
    public func broadcastState(root: Int = 0, timeout: Double? = nil) throws {
        let parameters = model.namedParameters().map { $0.1.value }
        let buffers = model.namedBuffers().map { $0.1.value }
        var values: [Float] = []
        for tensor in parameters + buffers { values += try tensor.toArray() }
        let received = try communicator.broadcast(values, root: root, timeout: timeout)
        var offset = 0
        func next(_ tensor: Tensor) throws -> Tensor {
            defer { offset += tensor.count }
            return try Tensor(shape: tensor.shape, values: Array(received[offset..<(offset + tensor.count)]))
        }
        for (_, parameter) in model.namedParameters() { parameter.value = try next(parameter.value) }
        for (_, buffer) in model.namedBuffers() { buffer.value = try next(buffer.value) }
    }

    /// Copies rank `root`'s buffers (batch norm's running statistics, which each rank updates from its own part of
    /// the batches) to every rank, so that all evaluate and save the same model.
    public func broadcastBuffers(root: Int = 0) throws {
        let buffers = model.namedBuffers().map(\.1)
        guard !buffers.isEmpty else { return }
        var values: [Float] = []
        for buffer in buffers { values += try buffer.value.toArray() }
        let received = try communicator.broadcast(values, root: root, timeout: communicator.timeout)
        var offset = 0
        for buffer in buffers {
            buffer.value = try Tensor(shape: buffer.value.shape, values: Array(received[offset..<(offset + buffer.value.count)]))
            offset += buffer.value.count
        }
    }

    /// Runs `body` — this rank's forward and backward pass — and then completes the sum of every trainable
    /// parameter's gradient over the ranks. Every rank must call it (or `synchronizeWithoutBackward()`) for each step.
    public func synchronize<R>(_ body: () throws -> R) throws -> R {
        let start = monotonicSeconds()
        defer { stepSeconds += monotonicSeconds() - start }
        try beginStep()
        inBackward = true
        let result = try GradientObservation.observing(self) { try body() }
        inBackward = false
        try finishStep()
        return result
    }

    /// Takes part in a step without a forward or backward pass (a rank whose share of the batch is empty): the
    /// gradients it holds (none, or those accumulated earlier) go into the sum.
    public func synchronizeWithoutBackward() throws {
        let start = monotonicSeconds()
        defer { stepSeconds += monotonicSeconds() - start }
        try beginStep()
        try finishStep()
    }

    // MARK: GradientObserver

    public func parameterUsed(_ parameter: Parameter) {
        uses[ObjectIdentifier(parameter), default: 0] += 1
    }

    public func gradientAccumulated(_ parameter: Parameter) throws {
        let id = ObjectIdentifier(parameter)
        arrived[id, default: 0] += 1
        guard overlap, arrived[id] == uses[id], let (bucket, _) = place[id] else { return }
        outstanding[bucket] -= 1
        try launchReady()
    }

    // MARK: Steps

    private func rebuildIfNeeded() {
        let trainable = model.parameters().filter { !$0.isFrozen }
        let ids = trainable.map(ObjectIdentifier.init)
        guard ids != bucketed else { return }
        bucketed = ids
        buckets = []
        place = [:]
        var current: [Parameter] = [], bytes = 0
        for parameter in trainable.reversed() {
            current.append(parameter)
            bytes += parameter.value.count * 4
            if bytes >= bucketBytes {
                buckets.append(Bucket(parameters: current))
                (current, bytes) = ([], 0)
            }
        }
        if !current.isEmpty { buckets.append(Bucket(parameters: current)) }
        for (b, bucket) in buckets.enumerated() {
            for (slot, parameter) in bucket.parameters.enumerated() { place[ObjectIdentifier(parameter)] = (b, slot) }
        }
    }

    private func beginStep() throws {
        rebuildIfNeeded()
        uses.removeAll(keepingCapacity: true)
        arrived.removeAll(keepingCapacity: true)
        nextLaunch = 0
        for bucket in buckets { (bucket.launched, bucket.pending) = (false, []) }
        // Parameters of a bucket still to become final; parameters used nowhere in the forward pass are not waited for.
        outstanding = buckets.map(\.parameters.count)
        inBackward = false
    }

    /// Starts every bucket, in order, whose parameters are all final.
    private func launchReady() throws {
        while nextLaunch < buckets.count, outstanding[nextLaunch] <= 0 {
            try launch(nextLaunch)
            nextLaunch += 1
        }
    }

    private func launch(_ index: Int) throws {
        let bucket = buckets[index]
        for (slot, parameter) in bucket.parameters.enumerated() {
            let destination = bucket.buffer + bucket.offsets[slot]
            if let grad = parameter.grad {
                try grad.withPlainElements { destination.update(from: $0.baseAddress!, count: parameter.value.count) }
                bucket.buffer[bucket.elements + slot] = 1
            } else {
                destination.update(repeating: 0, count: parameter.value.count)
                bucket.buffer[bucket.elements + slot] = 0
            }
        }
        bucket.pending = communicator.startAllreduce(UnsafeMutableRawPointer(bucket.buffer), count: bucket.elements + bucket.parameters.count,
                                                     type: .float, operation: .sum)
        bucket.launched = true
        if inBackward { bucketsStartedDuringBackward += 1 } else { bucketsStartedAfterBackward += 1 }
    }

    private func finishStep() throws {
        // Parameters used in the forward pass whose gradient never arrived, and unused ones, are final now.
        // The remaining buckets start in order.
        while nextLaunch < buckets.count {
            try launch(nextLaunch)
            nextLaunch += 1
        }
        let start = monotonicSeconds()
        try communicator.waitAll(buckets.flatMap(\.pending))
        waitSeconds += monotonicSeconds() - start
        steps += 1
        for bucket in buckets {
            for (slot, parameter) in bucket.parameters.enumerated() {
                guard bucket.buffer[bucket.elements + slot] > 0 else {
                    parameter.grad = nil
                    continue
                }
                let values = UnsafeBufferPointer(start: bucket.buffer + bucket.offsets[slot], count: parameter.value.count)
                parameter.grad = try Tensor(shape: parameter.value.shape, values: Array(values))
            }
            bucket.pending = []
        }
    }
}
