import Foundation
import FoveaData
import FoveaTrain
import Logging
import ServiceLifecycle

/// Dynamic batching, as Triton's and TorchServe's batchers do it: requests wait in one queue; a single inference
/// thread takes up to `maxBatch` waiting images, or whatever has arrived when the oldest waiting image has waited
/// `maxDelay`, runs them through the model once and answers each request with its own images' results.
///
/// The model runs on that thread alone (it is not thread-safe, and oneDNN spreads each batch over the cores itself).
/// The thread also decodes and resizes each batch's images, on all cores, just before running it: decoding on other
/// threads while the model runs would take a core from one of oneDNN's threads, and every parallel kernel waits for
/// its slowest thread (measured: a batch of 16 through ResNet-18 took 40 % longer so). Grad-CAM requests go through
/// the same queue and run on their own. A request waits at most `requestTimeout`
/// from its arrival, then fails with `.timedOut` and its images not yet started leave the queue; requests that would
/// take the queue past `maxQueue` waiting images are refused at once (`.queueFull`).
///
/// As a `Service`, it warms the model up when it starts (`isReady` is false until then) and, on graceful shutdown,
/// answers everything already queued before its thread ends.
public final class InferenceQueue: Service, @unchecked Sendable {
    /// Batching limits.
    public struct Limits: Sendable {
        public var maxBatch: Int
        public var maxDelay: Double
        public var maxQueue: Int
        public var requestTimeout: Double
        public init(maxBatch: Int = 16, maxDelay: Double = 0.005, maxQueue: Int = 256, requestTimeout: Double = 30) {
            (self.maxBatch, self.maxDelay, self.maxQueue, self.requestTimeout) = (maxBatch, maxDelay, maxQueue, requestTimeout)
        }
    }

    /// An image as it arrived: its name (for errors) and its JPEG or PNG bytes.
    public struct Upload: Sendable {
        public var name: String
        public var bytes: [UInt8]
        public init(name: String, bytes: [UInt8]) { (self.name, self.bytes) = (name, bytes) }
    }

    /// Why a request got no result.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case badImage(ImageError)
        case notReady
        case shuttingDown
        case queueFull(waiting: Int, retryAfter: Int)
        case timedOut(seconds: Double)
        case failed(String)

        public var description: String {
            switch self {
            case let .badImage(error): return error.description
            case .notReady: return "the model is still warming up"
            case .shuttingDown: return "the server is shutting down"
            case let .queueFull(waiting, _): return "the queue is full (\(waiting) images waiting)"
            case let .timedOut(seconds): return String(format: "no result within the request timeout of %g s", seconds)
            case let .failed(message): return message
            }
        }
    }

    /// One image's answer, with where its time went.
    public struct Result: Sendable {
        public var classification: Classification?
        public var explanation: Explanation?
        /// Seconds from the request's arrival to the start of its batch, the batch's decoding and its model run.
        public var queuedSeconds: Double
        public var preprocessSeconds: Double
        public var computeSeconds: Double
        /// Images in the batch it ran in.
        public var batchSize: Int
    }

    enum Work { case classify, explain(classes: [Int?]) }

    final class Job {
        let images: [Upload]
        let work: Work
        let arrival: Double
        var results: [Result?]
        var remaining: Int
        var continuation: CheckedContinuation<[Result], Error>?
        var finished = false
        init(images: [Upload], work: Work, arrival: Double) {
            (self.images, self.work, self.arrival) = (images, work, arrival)
            results = Array(repeating: nil, count: images.count)
            remaining = images.count
        }
    }

    /// One waiting image of a job.
    struct Entry { let job: Job; let index: Int }

    public let classifier: ImageClassifier
    public let limits: Limits
    /// Largest width × height of an image, checked from its header before decoding.
    public let pixelLimit: Int
    let metrics: ServeMetrics?
    let logger: Logger
    private let condition = NSCondition()
    private var waiting: [Entry] = []
    private var head = 0
    private var ready = false
    private var stopping = false
    private var threadDone: CheckedContinuation<Void, Never>?
    private var threadFinished = false
    private var lastBatchSeconds = 0.01
    /// While true, no batch starts (tests hold requests in the queue with it).
    private var paused = false

    /// Creates the queue for `classifier`; its thread starts with `run()`.
    public init(classifier: ImageClassifier, limits: Limits, pixelLimit: Int = ImageDecoder.defaultPixelLimit,
                metrics: ServeMetrics? = nil, logger: Logger = Logger(label: "fovea.serve")) {
        (self.classifier, self.limits, self.metrics, self.logger) = (classifier, limits, metrics, logger)
        self.pixelLimit = pixelLimit
    }

    /// True once the model has been warmed up, until shutdown begins.
    public var isReady: Bool { condition.withLock { ready && !stopping } }

    /// Images waiting for a batch.
    public var depth: Int { condition.withLock { waiting.count - head } }

    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    /// Classifies `images`, batched with whatever else is waiting. A damaged image fails the request (`.badImage`).
    public func classify(_ images: [Upload]) async throws -> [Result] {
        try await submit(images, .classify)
    }

    /// Grad-CAM of `images` for `classes[i]`, or each image's top class where nil.
    public func explain(_ images: [Upload], classes: [Int?]) async throws -> [Result] {
        try await submit(images, .explain(classes: classes))
    }

    private func submit(_ images: [Upload], _ work: Work) async throws -> [Result] {
        guard !images.isEmpty else { return [] }
        let job = Job(images: images, work: work, arrival: Self.now())
        return try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            defer { condition.unlock() }
            if stopping { return continuation.resume(throwing: Failure.shuttingDown) }
            if !ready { return continuation.resume(throwing: Failure.notReady) }
            let depth = waiting.count - head
            if depth + images.count > limits.maxQueue {
                // Time to work off what waits, in whole seconds, as Retry-After wants.
                let batches = (Double(depth) / Double(limits.maxBatch)).rounded(.up)
                let retry = max(1, Int((batches * (lastBatchSeconds + limits.maxDelay)).rounded(.up)))
                return continuation.resume(throwing: Failure.queueFull(waiting: depth, retryAfter: retry))
            }
            job.continuation = continuation
            for index in images.indices { waiting.append(Entry(job: job, index: index)) }
            metrics?.queueDepth.set(Double(waiting.count - head))
            condition.broadcast()
            let timeout = limits.requestTimeout
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [weak self, weak job] in
                guard let self, let job else { return }
                self.condition.withLock {
                    guard !job.finished else { return }
                    self.waiting[self.head...].removeAll { $0.job === job }
                    self.finish(job, .failure(Failure.timedOut(seconds: timeout)))
                    self.metrics?.queueDepth.set(Double(self.waiting.count - self.head))
                }
            }
        }
    }

    /// Resumes a job's request once (lock held).
    private func finish(_ job: Job, _ outcome: Swift.Result<[Result], Error>) {
        guard !job.finished else { return }
        job.finished = true
        let continuation = job.continuation
        job.continuation = nil
        continuation?.resume(with: outcome)
    }

    // MARK: Service

    /// Starts the inference thread, warms the model up, and serves until graceful shutdown; then answers what is
    /// queued and returns when the thread has ended.
    public func run() async throws {
        let thread = Thread { [self] in loop() }
        thread.name = "fovea-inference"
        thread.stackSize = 16 << 20
        thread.start()
        await withGracefulShutdownHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                condition.withLock {
                    if threadFinished { continuation.resume() } else { threadDone = continuation }
                }
            }
        } onGracefulShutdown: { [self] in
            stop()
        }
    }

    /// Asks the thread to end once the queue is empty; requests arriving from now on are refused.
    public func stop() {
        condition.withLock {
            stopping = true
            condition.broadcast()
        }
    }

    /// Holds every batch back until `resume()` (requests still queue, time out and fill the queue).
    func pause() { condition.withLock { paused = true } }

    func resume() {
        condition.withLock {
            paused = false
            condition.broadcast()
        }
    }

    private func loop() {
        warmUp()
        while let batch = nextBatch() { runBatch(batch) }
        condition.withLock {
            threadFinished = true
            threadDone?.resume()
            threadDone = nil
        }
    }

    /// One batch of the largest size and a few Grad-CAM images, so that the first requests meet primed kernels.
    private func warmUp() {
        let blank = classifier.prepare(DecodedImage(channels: classifier.channels, height: classifier.height,
                                                    width: classifier.width,
                                                    pixels: Array(repeating: 128, count: classifier.channels * classifier.height * classifier.width)))
        let start = Self.now()
        do {
            for size in Set([1, limits.maxBatch]).sorted() { _ = try classifier.classify(Array(repeating: blank, count: size)) }
            _ = try? classifier.explain([blank])
            logger.info("model warmed up", metadata: ["seconds": "\(String(format: "%.3f", Self.now() - start))"])
        } catch {
            logger.error("warm-up failed", metadata: ["error": "\(error)"])
        }
        condition.withLock {
            ready = true
            condition.broadcast()
        }
    }

    /// Waits for the next batch: consecutive waiting images of one kind, up to `maxBatch`, once `maxBatch` are
    /// waiting or the oldest has waited `maxDelay`. Nil when stopping with nothing left.
    private func nextBatch() -> [Entry]? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            while head == waiting.count || paused {
                if stopping && head == waiting.count { return nil }
                condition.wait()
            }
            // Full, old enough, or shutting down: take it. Otherwise sleep until the oldest image's deadline.
            let deadline = waiting[head].job.arrival + limits.maxDelay
            let now = Self.now()
            if waiting.count - head >= limits.maxBatch || now >= deadline || stopping { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: deadline - now))
        }
        var batch: [Entry] = []
        let explaining: Bool
        if case .explain = waiting[head].job.work { explaining = true } else { explaining = false }
        while head < waiting.count, batch.count < limits.maxBatch {
            let entry = waiting[head]
            if case .explain = entry.job.work { if !explaining { break } } else if explaining { break }
            // Grad-CAM runs one request at a time: its classes belong to that request.
            if explaining, let first = batch.first, first.job !== entry.job { break }
            batch.append(entry)
            head += 1
        }
        if head > 1024 && head * 2 > waiting.count {
            waiting.removeFirst(head)
            head = 0
        }
        metrics?.queueDepth.set(Double(waiting.count - head))
        return batch
    }

    private func runBatch(_ entries: [Entry]) {
        let start = Self.now()
        // Decode and resize on all cores; an image that cannot be decoded fails its request alone.
        var prepared = [PreparedImage?](repeating: nil, count: entries.count)
        var problems = [ImageError?](repeating: nil, count: entries.count)
        prepared.withUnsafeMutableBufferPointer { images in
            problems.withUnsafeMutableBufferPointer { errors in
                DispatchQueue.concurrentPerform(iterations: entries.count) { i in
                    let upload = entries[i].job.images[entries[i].index]
                    do {
                        images[i] = try classifier.prepare(bytes: upload.bytes, name: upload.name, pixelLimit: pixelLimit)
                    } catch let error as ImageError {
                        errors[i] = error
                    } catch {
                        errors[i] = .unreadable(path: upload.name, reason: "\(error)")
                    }
                }
            }
        }
        var batch: [Entry] = [], images: [PreparedImage] = []
        condition.withLock {
            for (i, entry) in entries.enumerated() {
                if let problem = problems[i] { finish(entry.job, .failure(Failure.badImage(problem))) }
            }
            for (i, entry) in entries.enumerated() where !entry.job.finished {
                batch.append(entry)
                images.append(prepared[i]!)
            }
        }
        guard !batch.isEmpty else { return }
        let decoded = Self.now()
        var outcome: [Swift.Result<(Classification?, Explanation?), Error>]
        do {
            if case let .explain(classes) = batch[0].job.work {
                outcome = try classifier.explain(images, classes: batch.map { classes[$0.index] }).map { .success((nil, $0)) }
            } else {
                outcome = try classifier.probabilities(images).map { probabilities in
                    probabilities.allSatisfy(\.isFinite)
                        ? .success((Classification(probabilities: probabilities), nil))
                        : .failure(Failure.failed("the model's output for this image is not finite"))
                }
            }
        } catch {
            outcome = Array(repeating: .failure(Failure.failed("\(error)")), count: batch.count)
        }
        let seconds = Self.now() - decoded
        metrics?.batchSize.record(Double(batch.count))
        metrics?.batchSeconds.record(seconds)
        condition.withLock {
            lastBatchSeconds = seconds
            for (entry, result) in zip(batch, outcome) where !entry.job.finished {
                switch result {
                case let .failure(error):
                    finish(entry.job, .failure(error))
                case let .success((classification, explanation)):
                    entry.job.results[entry.index] = Result(classification: classification, explanation: explanation,
                                                            queuedSeconds: start - entry.job.arrival,
                                                            preprocessSeconds: decoded - start, computeSeconds: seconds,
                                                            batchSize: batch.count)
                    entry.job.remaining -= 1
                    if entry.job.remaining == 0 { finish(entry.job, .success(entry.job.results.map { $0! })) }
                }
            }
        }
    }
}
