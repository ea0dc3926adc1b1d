import Foundation
import CFoveaKernels

/// Reference-counted, 64-byte aligned Float memory. Freed blocks go back to `MemoryPool` for reuse,
/// so a training step in steady state allocates (almost) nothing from the system.
///
/// A block may instead hold its elements as bfloat16 (`init(bfloat16Of:)`: what an inference convolution under
/// `Precision.bf16` writes, for the next convolution to read as it is); the Float block is then made, and the values
/// widened into it, the first time anything asks for `pointer`, after which the bfloat16 copy is dropped.
public final class Storage: @unchecked Sendable {
    /// Number of Float elements the block holds (may exceed the tensor's logical count for blocked layouts).
    public let capacity: Int
    private var base: UnsafeMutablePointer<Float>?
    /// The elements as bfloat16 (two to a Float slot) while they have not been widened into `base`.
    private var narrow: Storage?

    init(capacity: Int) {
        self.capacity = capacity
        base = MemoryPool.shared.take(capacity)
    }

    /// A block of `capacity` Float elements whose values are, for now, the bfloat16 ones in `narrow`
    /// (at least `capacity` × 2 bytes, in the same layout).
    init(capacity: Int, bfloat16Of narrow: Storage) {
        precondition(narrow.capacity * 2 >= capacity, "a bfloat16 block of \(narrow.capacity * 2) elements for \(capacity)")
        self.capacity = capacity
        self.narrow = narrow
    }

    /// First element (as Float: bfloat16 values are widened first).
    public var pointer: UnsafeMutablePointer<Float> {
        if let base, narrow == nil { return base }
        return widened()
    }

    /// The bfloat16 copy of the elements, while nothing has asked for them as Float.
    var bfloat16: Storage? {
        Storage.widening.lock()
        defer { Storage.widening.unlock() }
        return narrow
    }

    private func widened() -> UnsafeMutablePointer<Float> {
        Storage.widening.lock()
        defer { Storage.widening.unlock() }
        if let narrow {
            let target = base ?? MemoryPool.shared.take(capacity)
            let source = UnsafeRawPointer(narrow.pointer).assumingMemoryBound(to: UInt16.self)
            fovea_widen_bf16(source, target, capacity)
            base = target
            self.narrow = nil
        }
        return base!
    }

    private static let widening = NSLock()

    deinit {
        if let base { MemoryPool.shared.give(base, capacity) }
    }
}

/// Recycles Float blocks by exact size. Thread-safe: loader threads may free tensors too.
final class MemoryPool: @unchecked Sendable {
    static let shared = MemoryPool()
    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var pooledBytes = 0
    private let limitBytes = 2 << 30
    private let lock = NSLock()
    /// Number of blocks obtained from the system (a steady-state training step should not raise it).
    private var systemAllocations = 0

    func take(_ capacity: Int) -> UnsafeMutablePointer<Float> {
        let count = max(capacity, 1)
        lock.lock()
        if let pointer = free[count]?.popLast() {
            pooledBytes -= count * 4
            lock.unlock()
            return pointer
        }
        systemAllocations += 1
        lock.unlock()
        ThreadAllocations.box().count += 1
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: count)
    }

    func give(_ pointer: UnsafeMutablePointer<Float>, _ capacity: Int) {
        let count = max(capacity, 1)
        lock.lock()
        if pooledBytes + count * 4 <= limitBytes {
            free[count, default: []].append(pointer)
            pooledBytes += count * 4
            lock.unlock()
        } else {
            lock.unlock()
            UnsafeMutableRawPointer(pointer).deallocate()
        }
    }

    /// Returns every pooled block to the system.
    func releaseAll() {
        lock.lock()
        let blocks = free.values.flatMap { $0 }
        free = [:]
        pooledBytes = 0
        lock.unlock()
        for pointer in blocks { UnsafeMutableRawPointer(pointer).deallocate() }
    }

    /// Blocks obtained from the system so far.
    var allocationCount: Int { lock.lock(); defer { lock.unlock() }; return systemAllocations }
}

extension Tensor {
    /// Returns the memory blocks kept for reuse to the system (e.g. between unrelated workloads); tensors alive
    /// keep theirs.
    public static func releasePooledMemory() { MemoryPool.shared.releaseAll() }

    /// How many memory blocks tensors created on the calling thread have obtained from the system so far (not from the
    /// reuse pool). A training step in steady state should not raise it. Per thread, so concurrent work elsewhere
    /// does not disturb a measurement.
    public static var systemAllocationCount: Int { ThreadAllocations.box().count }
}

/// Per-thread count of system allocations.
enum ThreadAllocations {
    final class Box { var count = 0 }

    static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in if let pointer { Unmanaged<Box>.fromOpaque(pointer).release() } }
        return key
    }()

    static func box() -> Box {
        if let pointer = pthread_getspecific(key) { return Unmanaged<Box>.fromOpaque(pointer).takeUnretainedValue() }
        let box = Box()
        pthread_setspecific(key, Unmanaged.passRetained(box).toOpaque())
        return box
    }
}
