import Foundation
import FoveaTensor

/// The processes of one MPI job (MPI_COMM_WORLD): this process's rank, their number, and collective operations on
/// tensors and arrays — allreduce, broadcast, allgather, barrier.
///
/// One thread of the process (the communicator's own) makes every MPI call, so MPI needs only MPI_THREAD_FUNNELED and
/// callers on any thread never block each other inside MPI. Operations start in the order they are submitted, which is
/// what MPI needs of collectives; every one is non-blocking inside MPI and is completed by the communicator thread,
/// which tests what is in flight every few tens of microseconds and sleeps otherwise (it does not spin on a core the
/// training needs). An operation that waits longer than `timeout` seconds fails with `DistributedError.timeout`.
public final class Communicator: @unchecked Sendable {
    /// This process's rank, 0..<size.
    public private(set) var rank = 0
    /// Number of processes in the job.
    public private(set) var size = 1
    /// This node's name (MPI_Get_processor_name).
    public private(set) var host = ""
    /// Seconds an operation may wait for the other ranks before it fails (FOVEA_MPI_TIMEOUT, default 120).
    public let timeout: Double

    let library: MPILibrary
    private let condition = NSCondition()
    private var submitted: [Operation] = []
    private var finished = false
    private var thread: Thread?

    /// The job this process belongs to when an MPI launcher started it with more than one process; nil otherwise
    /// (one process needs no MPI, and no MPI library is opened). MPI is initialised once per process.
    public static func launched() throws -> Communicator? {
        guard let environment = LaunchEnvironment.current(), environment.size > 1 else { return nil }
        return try shared()
    }

    private static let sharedLock = NSLock()
    nonisolated(unsafe) private static var sharedCommunicator: Communicator?

    /// The process's communicator, initialising MPI on first use.
    public static func shared() throws -> Communicator {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if let sharedCommunicator { return sharedCommunicator }
        let communicator = try Communicator(library: MPILibrary())
        sharedCommunicator = communicator
        return communicator
    }

    private init(library: MPILibrary) throws {
        self.library = library
        timeout = ProcessInfo.processInfo.environment["FOVEA_MPI_TIMEOUT"].flatMap(Double.init).map { max($0, 1) } ?? 120
        let started = DispatchSemaphore(value: 0)
        final class Failure: @unchecked Sendable { var error: Error? }
        let failure = Failure()
        let thread = Thread { [unowned self] in
            var rank: Int32 = 0, size: Int32 = 0
            do { try library.check(library.initialize(&rank, &size), "MPI_Init_thread") } catch {
                failure.error = error
                started.signal()
                return
            }
            var name = [CChar](repeating: 0, count: 256)
            _ = library.processorName(&name, Int32(name.count))
            (self.rank, self.size, self.host) = (Int(rank), Int(size), String(cString: name))
            started.signal()
            self.run()
        }
        thread.name = "fovea-mpi"
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
        started.wait()
        if let error = failure.error { throw error }
    }

    /// Ends MPI after every submitted operation has finished (MPI_Finalize). Call once, on every rank, before exit.
    public func finalize() {
        let done = submit(Operation(name: "MPI_Finalize", timeout: nil) { [library] _ in
            _ = library.finalize()
            return nil
        })
        try? done.wait()
        condition.lock()
        finished = true
        condition.signal()
        condition.unlock()
    }

    /// Ends every process of the job with exit code `code` (MPI_Abort), for an error on one rank that the others
    /// cannot know of; mpirun reports which rank aborted.
    public func abort(code: Int32) -> Never {
        _ = library.abort(code)
        exit(code)
    }

    // MARK: Operations

    /// A started operation; `wait()` returns once it completed on this rank.
    public final class Pending: @unchecked Sendable {
        private let semaphore = DispatchSemaphore(value: 0)
        fileprivate var error: Error?
        private var completed = false
        private let lock = NSLock()

        fileprivate func finish(_ error: Error?) {
            self.error = error
            semaphore.signal()
        }

        /// Blocks until the operation completed; rethrows its error.
        public func wait() throws {
            lock.lock()
            defer { lock.unlock() }
            if !completed {
                semaphore.wait()
                completed = true
            }
            if let error { throw error }
        }
    }

    fileprivate final class Operation {
        let name: String
        let timeout: Double?
        /// Starts the operation on the communicator thread; returns its MPI request (nil: already complete).
        let start: (MPILibrary) throws -> UnsafeMutableRawPointer?
        let pending = Pending()
        var request: UnsafeMutableRawPointer?
        var startTime = 0.0

        init(name: String, timeout: Double?, start: @escaping (MPILibrary) throws -> UnsafeMutableRawPointer?) {
            (self.name, self.timeout, self.start) = (name, timeout, start)
        }
    }

    @discardableResult
    fileprivate func submit(_ operation: Operation) -> Pending {
        condition.lock()
        submitted.append(operation)
        condition.signal()
        condition.unlock()
        return operation.pending
    }

    /// The communicator thread: starts what was submitted, in order, and completes what is in flight.
    private func run() {
        var inFlight: [Operation] = []
        while true {
            condition.lock()
            while submitted.isEmpty && inFlight.isEmpty && !finished { condition.wait() }
            if finished && submitted.isEmpty && inFlight.isEmpty {
                condition.unlock()
                return
            }
            let new = submitted
            submitted.removeAll()
            condition.unlock()
            for operation in new {
                operation.startTime = monotonicSeconds()
                do {
                    operation.request = try operation.start(library)
                    if operation.request == nil { operation.pending.finish(nil) } else { inFlight.append(operation) }
                } catch {
                    operation.pending.finish(error)
                }
            }
            var index = 0
            while index < inFlight.count {
                let operation = inFlight[index]
                var done: Int32 = 0
                let code = library.test(operation.request!, &done)
                if code != 0 {
                    inFlight.remove(at: index)
                    operation.pending.finish(Result { try library.check(code, operation.name) }.failure)
                } else if done != 0 {
                    inFlight.remove(at: index)
                    operation.pending.finish(nil)
                } else {
                    if let limit = operation.timeout, monotonicSeconds() - operation.startTime > limit {
                        // The request stays with MPI (it cannot be cancelled); the caller stops the job.
                        inFlight.remove(at: index)
                        operation.pending.finish(DistributedError.timeout(operation: operation.name, seconds: limit))
                        continue
                    }
                    index += 1
                }
            }
            if !inFlight.isEmpty {
                condition.lock()
                if submitted.isEmpty { _ = condition.wait(until: Date(timeIntervalSinceNow: 20e-6)) }
                condition.unlock()
            }
        }
    }

    // MARK: Collectives on raw memory

    /// The largest element count of one MPI call (MPI counts are 32-bit); longer buffers go in several calls.
    static let chunkElements = 1 << 28

    func chunks(_ count: Int) -> [Range<Int>] {
        stride(from: 0, to: max(count, 1), by: Self.chunkElements).map { $0..<min($0 + Self.chunkElements, count) }
    }

    /// Starts an in-place allreduce of `count` elements at `buffer`, which must stay valid until the result's
    /// `wait()` returns.
    func startAllreduce(_ buffer: UnsafeMutableRawPointer, count: Int, type: MPIType, operation: ReduceOperation) -> [Pending] {
        let limit = timeout
        return chunks(count).map { range in
            submit(Operation(name: "MPI_Iallreduce", timeout: limit) { library in
                var request: UnsafeMutableRawPointer?
                try library.check(library.iallreduce(buffer + range.lowerBound * type.size, Int32(range.count), type.rawValue,
                                                     operation.rawValue, &request), "MPI_Iallreduce")
                return request
            })
        }
    }

    func startBroadcast(_ buffer: UnsafeMutableRawPointer, count: Int, type: MPIType, root: Int, timeout: Double?) -> [Pending] {
        chunks(count).map { range in
            submit(Operation(name: "MPI_Ibcast", timeout: timeout) { library in
                var request: UnsafeMutableRawPointer?
                try library.check(library.ibcast(buffer + range.lowerBound * type.size, Int32(range.count), type.rawValue,
                                                 Int32(root), &request), "MPI_Ibcast")
                return request
            })
        }
    }

    func waitAll(_ pending: [Pending]) throws {
        var first: Error?
        for item in pending {
            do { try item.wait() } catch { if first == nil { first = error } }
        }
        if let first { throw first }
    }

    // MARK: Collectives on arrays and tensors

    /// The element-wise reduction of `values` over all ranks (every rank passes the same count).
    public func allreduce(_ values: [Float], _ operation: ReduceOperation = .sum) throws -> [Float] {
        var result = values
        try result.withUnsafeMutableBytes { try waitAll(startAllreduce($0.baseAddress!, count: values.count, type: .float, operation: operation)) }
        return result
    }

    /// The element-wise reduction of `values` over all ranks (every rank passes the same count).
    public func allreduce(_ values: [Double], _ operation: ReduceOperation = .sum) throws -> [Double] {
        var result = values
        try result.withUnsafeMutableBytes { try waitAll(startAllreduce($0.baseAddress!, count: values.count, type: .double, operation: operation)) }
        return result
    }

    /// The element-wise reduction of `values` over all ranks (every rank passes the same count).
    public func allreduce(_ values: [Int64], _ operation: ReduceOperation = .sum) throws -> [Int64] {
        var result = values
        try result.withUnsafeMutableBytes { try waitAll(startAllreduce($0.baseAddress!, count: values.count, type: .int64, operation: operation)) }
        return result
    }

    /// The element-wise sum (or other reduction) of `tensor` over all ranks, as a new plain tensor of its shape.
    public func allreduce(_ tensor: Tensor, _ operation: ReduceOperation = .sum) throws -> Tensor {
        try Tensor(shape: tensor.shape, values: try allreduce(try tensor.toArray(), operation))
    }

    /// Rank `root`'s `values` on every rank; `timeout` nil waits as long as it takes (start-up, while ranks load data).
    public func broadcast(_ values: [Float], root: Int = 0, timeout: Double? = nil) throws -> [Float] {
        try checkRoot(root)
        var result = values
        try result.withUnsafeMutableBytes { try waitAll(startBroadcast($0.baseAddress!, count: values.count, type: .float, root: root, timeout: timeout)) }
        return result
    }

    /// Rank `root`'s bytes on every rank, whatever their length there (the length is broadcast first).
    public func broadcast(bytes: [UInt8], root: Int = 0, timeout: Double? = nil) throws -> [UInt8] {
        try checkRoot(root)
        var length = [Int64(bytes.count)]
        try length.withUnsafeMutableBytes { try waitAll(startBroadcast($0.baseAddress!, count: 1, type: .int64, root: root, timeout: timeout)) }
        var result = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length[0]))
        if length[0] > 0 {
            try result.withUnsafeMutableBytes { try waitAll(startBroadcast($0.baseAddress!, count: Int(length[0]), type: .byte, root: root, timeout: timeout)) }
        }
        return result
    }

    /// Rank `root`'s tensor (of the same shape on every rank) on every rank, as a new plain tensor.
    public func broadcast(_ tensor: Tensor, root: Int = 0, timeout: Double? = nil) throws -> Tensor {
        try Tensor(shape: tensor.shape, values: try broadcast(try tensor.toArray(), root: root, timeout: timeout))
    }

    /// Every rank's `values` (the same count everywhere), in rank order.
    public func allgather(_ values: [Float], timeout: Double? = nil) throws -> [[Float]] {
        try allgatherRaw(values, type: .float, timeout: timeout)
    }

    /// Every rank's bytes (the same count everywhere), in rank order.
    public func allgather(bytes: [UInt8], timeout: Double? = nil) throws -> [[UInt8]] {
        let lengths = try allgatherRaw([Int64(bytes.count)], type: .int64, timeout: timeout).map { $0[0] }
        guard Set(lengths).count == 1 else {
            throw DistributedError.invalidArgument("allgather of \(bytes.count) bytes: the ranks passed \(lengths) bytes")
        }
        return try allgatherRaw(bytes, type: .byte, timeout: timeout)
    }

    /// Every rank's tensor (the same shape everywhere) stacked in rank order: shape (size, …shape).
    public func allgather(_ tensor: Tensor, timeout: Double? = nil) throws -> Tensor {
        try Tensor(shape: [size] + tensor.shape, values: try allgather(try tensor.toArray(), timeout: timeout).flatMap { $0 })
    }

    private func allgatherRaw<T>(_ values: [T], type: MPIType, timeout: Double?) throws -> [[T]] {
        guard values.count < Self.chunkElements / max(size, 1) else {
            throw DistributedError.invalidArgument("allgather of \(values.count) elements per rank is too large for one call")
        }
        guard !values.isEmpty else { return Array(repeating: [], count: size) }
        var received = [T](repeating: values[0], count: values.count * size)
        try values.withUnsafeBytes { send in
            try received.withUnsafeMutableBytes { receive in
                let (sendPointer, receivePointer) = (send.baseAddress!, receive.baseAddress!)
                try submit(Operation(name: "MPI_Iallgather", timeout: timeout) { library in
                    var request: UnsafeMutableRawPointer?
                    try library.check(library.iallgather(sendPointer, receivePointer, Int32(values.count), type.rawValue, &request),
                                      "MPI_Iallgather")
                    return request
                }).wait()
            }
        }
        return (0..<size).map { Array(received[($0 * values.count)..<(($0 + 1) * values.count)]) }
    }

    /// Returns once every rank has reached it.
    public func barrier(timeout: Double? = nil) throws {
        try submit(Operation(name: "MPI_Ibarrier", timeout: timeout) { library in
            var request: UnsafeMutableRawPointer?
            try library.check(library.ibarrier(&request), "MPI_Ibarrier")
            return request
        }).wait()
    }

    private func checkRoot(_ root: Int) throws {
        guard (0..<size).contains(root) else { throw DistributedError.invalidArgument("root rank \(root) outside 0..<\(size)") }
    }
}

/// Seconds of a monotonic clock.
func monotonicSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}

private extension Result where Success == Void {
    var failure: Error? { if case let .failure(error) = self { return error } else { return nil } }
}
