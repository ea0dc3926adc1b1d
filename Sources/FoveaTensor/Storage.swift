import Foundation
import CFoveaKernels

/// Reference-counted, 64-byte aligned Float memory. Freed blocks go back to `MemoryPool` for reuse,
/// so a training step in steady state allocates (almost) nothing from the system.
///
/// A block may instead hold its elements in a narrower type, as an inference convolution wrote them for the next
/// convolution to read as they are: bfloat16 (`init(capacity:bfloat16Of:)`, under `Precision.bf16`) or 8-bit integers
/// with a scale (`init(capacity:int8Of:scale:unsigned:)`, under `Precision.int8`). The Float block is then made, and
/// the values widened into it, the first time anything asks for `pointer`, after which the narrow copy is dropped.
public final class Storage: @unchecked Sendable {
    /// Number of Float elements the block holds (may exceed the tensor's logical count for blocked layouts).
    public let capacity: Int
    private var base: UnsafeMutablePointer<Float>?
    /// The elements in a narrower type while they have not been widened into `base`.
    private var narrow: Narrow?

    /// How the elements are held while they are narrow.
    enum Narrow {
        /// bfloat16, two to a Float slot.
        case bfloat16(Storage)
        /// 8-bit integers q, four to a Float slot, standing for q × `scale`; u8 when `unsigned`, else s8.
        case int8(Storage, scale: Float, unsigned: Bool)
    }

    init(capacity: Int) {
        self.capacity = capacity
        base = MemoryPool.shared.take(capacity)
    }

    /// A block of `capacity` Float elements whose values are, for now, the bfloat16 ones in `narrow`
    /// (at least `capacity` × 2 bytes, in the same layout).
    init(capacity: Int, bfloat16Of narrow: Storage) {
        precondition(narrow.capacity * 2 >= capacity, "a bfloat16 block of \(narrow.capacity * 2) elements for \(capacity)")
        self.capacity = capacity
        self.narrow = .bfloat16(narrow)
    }

    /// A block of `capacity` Float elements whose values are, for now, q × `scale` for the 8-bit integers q in `narrow`
    /// (u8 when `unsigned`, else s8; at least `capacity` bytes, in the same layout).
    init(capacity: Int, int8Of narrow: Storage, scale: Float, unsigned: Bool) {
        precondition(narrow.capacity * 4 >= capacity, "an int8 block of \(narrow.capacity * 4) elements for \(capacity)")
        self.capacity = capacity
        self.narrow = .int8(narrow, scale: scale, unsigned: unsigned)
    }

    /// First element (as Float: narrow values are widened first).
    public var pointer: UnsafeMutablePointer<Float> {
        if let base, narrow == nil { return base }
        return widened()
    }

    /// The bfloat16 copy of the elements, while nothing has asked for them as Float.
    var bfloat16: Storage? {
        guard case let .bfloat16(values)? = narrowed else { return nil }
        return values
    }

    /// The 8-bit copy of the elements and what it stands for, while nothing has asked for them as Float.
    var int8: (values: Storage, scale: Float, unsigned: Bool)? {
        guard case let .int8(values, scale, unsigned)? = narrowed else { return nil }
        return (values, scale, unsigned)
    }

    private var narrowed: Narrow? {
        Storage.widening.lock()
        defer { Storage.widening.unlock() }
        return narrow
    }

    private func widened() -> UnsafeMutablePointer<Float> {
        Storage.widening.lock()
        defer { Storage.widening.unlock() }
        if let narrow {
            let target = base ?? MemoryPool.shared.take(capacity)
            switch narrow {
            case let .bfloat16(values):
                fovea_widen_bf16(UnsafeRawPointer(values.pointer).assumingMemoryBound(to: UInt16.self), target, capacity)
            case let .int8(values, scale, unsigned):
                fovea_widen_int8(UnsafeRawPointer(values.pointer), unsigned ? 1 : 0, scale, target, capacity)
            }
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
