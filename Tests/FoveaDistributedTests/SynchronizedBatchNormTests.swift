import Foundation
import FoveaTensor
import Testing

/// Adds one array from each of `replicas` threads and hands every thread the sum: an in-process stand-in for MPI's
/// allreduce, so that synchronised batch norm can be checked without launching processes.
final class Rendezvous: @unchecked Sendable {
    let replicas: Int
    private let condition = NSCondition()
    private var arrived: [[Double]] = []
    private var result: [Double] = []
    private var generation = 0

    init(replicas: Int) { self.replicas = replicas }

    func sum(_ values: [Double]) -> [Double] {
        condition.lock()
        defer { condition.unlock() }
        let mine = generation
        arrived.append(values)
        if arrived.count == replicas {
            result = arrived.dropFirst().reduce(arrived[0]) { zip($0, $1).map(+) }
            arrived = []
            generation += 1
            condition.broadcast()
        } else {
            while generation == mine { condition.wait() }
        }
        return result
    }
}

@Suite("Synchronised batch norm")
struct SynchronizedBatchNormTests {
    /// Deterministic pseudo-random values in [−scale, scale) plus an offset.
    func values(_ count: Int, seed: UInt64, scale: Float = 1, offset: Float = 0) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return offset + scale * (Float(state >> 40) / Float(1 << 24) * 2 - 1)
        }
    }

    @Test("Two replicas' halves give the full batch's output, input gradient, scale and shift gradients and statistics")
    func matchesFullBatch() throws {
        let (n, c, h, w) = (6, 5, 4, 3)
        let plane = c * h * w
        let input = values(n * plane, seed: 1, scale: 2, offset: 0.5)
        let upstream = values(n * plane, seed: 2)
        let gamma = values(c, seed: 3, scale: 0.5, offset: 1), beta = values(c, seed: 4, scale: 0.3)

        /// Batch norm of `images` images starting at `first`; returns output, input, scale and shift gradients, stats.
        @Sendable func run(first: Int, images: Int, sum: (@Sendable ([Double]) throws -> [Double])?) throws
            -> (output: [Float], dx: [Float], dGamma: [Float], dBeta: [Float], mean: [Float], variance: [Float], count: Int) {
            let slice = Array(input[(first * plane)..<((first + images) * plane)])
            var dx: [Float] = [], dGamma: [Float] = [], dBeta: [Float] = []
            let x = try Tensor(shape: [images, c, h, w], values: slice).trackingGradient { dx = try $0.toArray() }
            let scale = try Tensor(shape: [c], values: gamma).trackingGradient { dGamma = try $0.toArray() }
            let shift = try Tensor(shape: [c], values: beta).trackingGradient { dBeta = try $0.toArray() }
            let result = try sum.map { try batchNormTrainingSynchronized(x, scale: scale, shift: shift, epsilon: 1e-5, sum: $0) }
                ?? batchNormTraining(x, scale: scale, shift: shift, epsilon: 1e-5)
            let seed = try Tensor(shape: [images, c, h, w], values: Array(upstream[(first * plane)..<((first + images) * plane)]))
            try result.output.backward(seed: seed)
            return (try result.output.toArray(), dx, dGamma, dBeta, result.mean, result.variance, result.count)
        }

        let full = try run(first: 0, images: n, sum: nil)
        let rendezvous = Rendezvous(replicas: 2)
        final class Results: @unchecked Sendable { var parts: [Int: (output: [Float], dx: [Float], dGamma: [Float], dBeta: [Float], mean: [Float], variance: [Float], count: Int)] = [:]; var error: Error? }
        let results = Results()
        let lock = NSLock()
        let group = DispatchGroup()
        // Unequal halves (2 and 4 images), as a short last batch splits.
        for (replica, (first, images)) in [(0, 2), (2, 4)].enumerated() {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                do {
                    let part = try run(first: first, images: images, sum: { rendezvous.sum($0) })
                    lock.withLock { results.parts[replica] = part }
                } catch { lock.withLock { results.error = error } }
            }
            thread.start()
        }
        group.wait()
        if let error = results.error { throw error }
        let (a, b) = (results.parts[0]!, results.parts[1]!)
        func close(_ x: [Float], _ y: [Float], _ tolerance: Float = 1e-4) -> Bool {
            x.count == y.count && zip(x, y).allSatisfy { abs($0 - $1) <= tolerance * max(1, abs($1)) }
        }
        #expect(close(a.output + b.output, full.output))
        #expect(close(a.dx + b.dx, full.dx))
        // The parameter gradients are each replica's part; their sum is the full batch's.
        #expect(close(zip(a.dGamma, b.dGamma).map(+), full.dGamma))
        #expect(close(zip(a.dBeta, b.dBeta).map(+), full.dBeta))
        #expect(close(a.mean, full.mean) && close(b.mean, full.mean))
        #expect(close(a.variance, full.variance) && close(b.variance, full.variance))
        #expect(a.count == n * h * w && b.count == n * h * w && full.count == n * h * w)
        // And the halves alone (per-replica statistics) would not: the check can fail.
        let alone = try run(first: 0, images: 2, sum: nil)
        #expect(!close(alone.output, Array(full.output.prefix(2 * plane))))
    }
}
