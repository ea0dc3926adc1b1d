/// A Float32 tensor: a logical shape (NCHW / NC order), a memory layout, and shared storage.
///
/// `Tensor` is a value type over reference-counted storage; operations never mutate their inputs.
/// When autodiff is recording and an input takes part in a gradient computation, the result carries
/// a tape node so that `backward()` can reach it.
public struct Tensor: @unchecked Sendable {
    /// Logical shape, always in NCHW (or NC, or N) order whatever the layout.
    public let shape: [Int]
    /// How elements are arranged in `storage`.
    public let layout: Layout
    /// The memory holding the elements.
    public let storage: Storage
    /// Tape node when this tensor takes part in a recorded computation.
    var node: Node?

    /// Number of logical elements (product of `shape`).
    public var count: Int { shape.reduce(1, *) }
    /// Whether gradients flow back through this tensor.
    public var requiresGradient: Bool { node != nil }

    init(shape: [Int], layout: Layout, storage: Storage, node: Node? = nil) {
        self.shape = shape
        self.layout = layout
        self.storage = storage
        self.node = node
    }

    /// A new tensor of `shape` in `layout` with unspecified contents.
    static func uninitialized(_ shape: [Int], layout: Layout = .plain) throws -> Tensor {
        let capacity = layout == .plain ? shape.reduce(1, *) : byteSize(try memoryDescriptor(shape, layout)) / 4
        return Tensor(shape: shape, layout: layout, storage: Storage(capacity: capacity))
    }

    /// A plain tensor holding `values` in row-major order.
    public init(shape: [Int], values: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
            throw TensorError.shapeMismatch(operation: "Tensor(shape:values:)", expected: "\(values.count) elements",
                                            actual: shape)
        }
        self.init(shape: shape, layout: .plain, storage: Storage(capacity: values.count))
        values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    /// A plain tensor filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        let count = shape.reduce(1, *)
        self.init(shape: shape, layout: .plain, storage: Storage(capacity: count))
        storage.pointer.update(repeating: value, count: count)
    }

    /// A plain tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }

    /// A plain tensor of `shape` whose elements are not initialised: for memory about to be overwritten in full
    /// (a data loader's batches), where filling it first would only cost time.
    public init(uninitializedShape shape: [Int]) {
        self.init(shape: shape, layout: .plain, storage: Storage(capacity: shape.reduce(1, *)))
    }

    /// A scalar (shape `[]`).
    public init(scalar: Float) { self.init(repeating: scalar, shape: []) }

    /// The single element of a one-element tensor.
    public var scalarValue: Float { storage.pointer[0] }

    /// The elements in plain row-major order (reordering from a blocked layout if needed).
    public func toArray() throws -> [Float] {
        let plain = try reordered(to: .plain)
        return withExtendedLifetime(plain) { Array(UnsafeBufferPointer(start: plain.storage.pointer, count: count)) }
    }

    /// The same values, detached from the tape.
    public var detached: Tensor { Tensor(shape: shape, layout: layout, storage: storage) }

    /// Calls `body` with the plain row-major elements (reordering first if needed).
    public func withPlainElements<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        let plain = try reordered(to: .plain)
        return try withExtendedLifetime(plain) { try body(UnsafeBufferPointer(start: plain.storage.pointer, count: count)) }
    }

    /// A deep copy with its own storage, in the same layout, detached from the tape.
    public func copy() -> Tensor {
        let result = Tensor(shape: shape, layout: layout, storage: Storage(capacity: storage.capacity))
        result.storage.pointer.update(from: storage.pointer, count: storage.capacity)
        OperationTrace.record(.alias, [self], result)
        return result
    }

    /// True when every element (including blocking padding, which is zero) is finite.
    public var isFinite: Bool {
        let pointer = storage.pointer
        var ok = true
        for i in 0..<storage.capacity where !pointer[i].isFinite { ok = false; break }
        return ok
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor(shape: \(shape), layout: \(layout))" }
}
