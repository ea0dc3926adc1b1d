import Foundation

/// An operation as the tracer records it, with what an exporter needs to write it elsewhere (ONNX).
public enum TracedOperation {
    /// input, weight, bias? and residual? → activation(conv + bias + residual).
    case convolution(ConvolutionGeometry, bias: Bool, residual: Bool, activation: Activation?)
    /// input, scale, shift, mean, variance.
    case batchNorm(epsilon: Float)
    case activation(Activation)
    /// a + b, and max(a + b, 0).
    case add, addReLU
    /// x · factor.
    case scale(Float)
    /// x (N, C, H, W) · s (N, C, 1, 1).
    case multiplyChannels
    case maxPool(PoolingGeometry)
    case averagePool(PoolingGeometry, countIncludePad: Bool)
    case adaptiveAveragePool(outputSize: [Int])
    /// input, weight, bias? → x·Wᵀ + b.
    case linear(bias: Bool)
    case reshape
    case concatenateChannels
    case softmax(log: Bool)
    case localResponseNorm(size: Int, alpha: Float, beta: Float, k: Float)
    /// The same values in another layout or storage (reorders, copies).
    case alias
}

/// Records the operations run on this thread, in order, with their input and output tensors: how a model defined in
/// Swift code becomes a graph (ONNX export). While a trace is active, layers skip the inference fusions so that each
/// operation is seen as it is written (`isActive`).
public final class OperationTrace {
    /// One recorded operation. Tensors are kept alive by the trace, so their storage identifies them.
    public struct Record {
        public let operation: TracedOperation
        public let inputs: [Tensor]
        public let output: Tensor
    }

    /// Everything recorded so far, in execution order.
    public private(set) var records: [Record] = []

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    private static var current: OperationTrace? {
        pthread_getspecific(key).map { Unmanaged<OperationTrace>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Whether a trace records on this thread.
    public static var isActive: Bool { pthread_getspecific(key) != nil }

    /// Runs `body` with a new trace recording; returns its result and the trace.
    public static func run<R>(_ body: () throws -> R) rethrows -> (R, OperationTrace) {
        let trace = OperationTrace()
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(trace).toOpaque())
        defer { pthread_setspecific(key, previous) }
        let result = try withExtendedLifetime(trace) { try body() }
        return (result, trace)
    }

    /// Records `operation` when a trace is active. Every op calls this on every run, so without a trace it only looks
    /// at the thread's key: the operation and the input list are built only when they are recorded.
    static func record(_ operation: @autoclosure () -> TracedOperation, _ inputs: @autoclosure () -> [Tensor?],
                       _ output: Tensor) {
        guard let trace = current else { return }
        trace.records.append(Record(operation: operation(), inputs: inputs().compactMap { $0 }, output: output))
    }
}

extension Tensor {
    /// The identity of the values this tensor holds, for tracing: its storage and shape.
    public var traceIdentity: TraceIdentity { TraceIdentity(storage: ObjectIdentifier(storage), shape: shape) }
}

/// A tensor's storage and shape: equal for the same values (a reshape of plain storage shares it but has another
/// shape).
public struct TraceIdentity: Hashable {
    let storage: ObjectIdentifier
    let shape: [Int]
}
