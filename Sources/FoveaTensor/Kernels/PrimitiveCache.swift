import Foundation
import CDNNL

/// Identifies a primitive: its kind plus every integer that shaped it (shapes, layouts, parameters).
struct PrimitiveKey: Hashable {
    var kind: String
    var values: [Int]
}

/// A created oneDNN primitive with its descriptor and one reusable memory object per argument.
///
/// Memory objects are made once and re-pointed at each call's buffers (`dnnl_memory_set_data_handle`),
/// so running a cached primitive allocates nothing.
final class Primitive {
    let descriptor: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    let scratchpadBytes: Int
    /// Whether oneDNN picked one of its reference (plain C++, slow) implementations.
    let isReference: Bool
    /// What the primitive is, for error messages.
    let name: String
    private var memories: [Int32: dnnl_memory_t] = [:]
    private var arguments: [dnnl_exec_arg_t] = []

    init(descriptor: dnnl_primitive_desc_t, name: String) throws {
        self.descriptor = descriptor
        self.name = name
        isReference = isReferenceImplementation(descriptor)
        var primitive: dnnl_primitive_t?
        try check(dnnl_primitive_create(&primitive, descriptor), "dnnl_primitive_create(\(name))")
        self.primitive = primitive!
        if let md = dnnl_primitive_desc_query_md(descriptor, dnnl_query_scratchpad_md, 0) {
            scratchpadBytes = dnnl_memory_desc_get_size(md)
        } else {
            scratchpadBytes = 0
        }
    }

    deinit {
        for memory in memories.values { dnnl_memory_destroy(memory) }
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(descriptor)
    }


    /// The memory descriptor the primitive uses for execution argument `argument` (e.g. DNNL_ARG_SRC).
    func descriptor(for argument: Int32) -> dnnl_memory_desc_t {
        guard let md = dnnl_primitive_desc_query_md(descriptor, dnnl_query_exec_arg_md, argument) else {
            return dnnl_memory_desc_t()
        }
        return md.pointee
    }

    /// Runs the primitive on the given buffers, adding the shared scratchpad. Taking `Storage` (not pointers)
    /// keeps every buffer alive until the primitive has finished.
    func execute(_ buffers: [(Int32, Storage)]) throws {
        // Memory objects, the argument list and the scratchpad are shared: one execution at a time.
        kernelLock.lock()
        defer { kernelLock.unlock() }
        arguments.removeAll(keepingCapacity: true)
        for (argument, storage) in buffers {
            let memory = try memoryObject(argument)
            try check(dnnl_memory_set_data_handle(memory, UnsafeMutableRawPointer(storage.pointer)), "dnnl_memory_set_data_handle")
            arguments.append(dnnl_exec_arg_t(arg: argument, memory: memory))
        }
        if scratchpadBytes > 0 {
            let memory = try memoryObject(DNNL_ARG_SCRATCHPAD)
            try check(dnnl_memory_set_data_handle(memory, Scratchpad.shared.buffer(bytes: scratchpadBytes)),
                      "dnnl_memory_set_data_handle(scratchpad)")
            arguments.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: memory))
        }
        let engine = Engine.shared
        let started = KernelProfile.enabled ? DispatchTime.now().uptimeNanoseconds : 0
        defer { if KernelProfile.enabled { KernelProfile.record(name, DispatchTime.now().uptimeNanoseconds - started) } }
        try arguments.withUnsafeBufferPointer { args in
            try check(dnnl_primitive_execute(primitive, engine.stream, Int32(args.count), args.baseAddress),
                      "dnnl_primitive_execute(\(name))")
        }
        try check(dnnl_stream_wait(engine.stream), "dnnl_stream_wait")
    }

    private func memoryObject(_ argument: Int32) throws -> dnnl_memory_t {
        if let memory = memories[argument] { return memory }
        var md = descriptor(for: argument)
        guard md.ndims > 0 else {
            throw TensorError.invalidArgument(operation: "oneDNN primitive", message: "has no memory for argument \(argument)")
        }
        var memory: dnnl_memory_t?
        try check(dnnl_memory_create(&memory, &md, Engine.shared.engine, nil), "dnnl_memory_create(arg \(argument))")
        memories[argument] = memory!
        return memory!
    }
}

/// Serialises kernel execution and cache access, so tensors may be used from several threads
/// (oneDNN itself parallelises each primitive over the cores).
let kernelLock = NSRecursiveLock()

/// Primitives by key, created on first use and kept for the life of the process (bounded by eviction).
final class PrimitiveCache: @unchecked Sendable {
    static let shared = PrimitiveCache()
    private var entries: [PrimitiveKey: Primitive] = [:]
    private let capacity = 4096

    /// Returns the cached primitive for `key`, or builds its descriptor with `make` and caches it.
    func primitive(_ key: PrimitiveKey, make: () throws -> dnnl_primitive_desc_t) throws -> Primitive {
        kernelLock.lock()
        defer { kernelLock.unlock() }
        if let cached = entries[key] { return cached }
        let descriptor = try make()
        let primitive = try Primitive(descriptor: descriptor, name: "\(key.kind) \(key.values.prefix(9))")
        if entries.count >= capacity { entries.removeAll() }
        entries[key] = primitive
        return primitive
    }

    /// Number of primitives held (for tests and benchmarks).
    var count: Int { entries.count }
}

/// An epilogue oneDNN fuses into a primitive (post-ops): add what the destination already holds, then an
/// elementwise activation — so `activation(conv(x) + residual)` is one pass over memory.
struct Epilogue: Hashable {
    /// Accumulate into the destination's previous contents (the residual, copied there first).
    var sum = false
    /// Elementwise function applied last.
    var activation: Activation?
    /// What the destination's previous contents are multiplied by before they are added (int8 kernels: the residual's
    /// scale over the output's).
    var sumScale: Float = 1
    /// The type the previous contents are read as, when it differs from the destination's (same size: s8 into u8), as
    /// a `dnnl_data_type_t` raw value.
    var sumType: UInt32?

    var isEmpty: Bool { !sum && activation == nil }

    /// A key fragment for the primitive cache.
    var keyValues: [Int] {
        let summing = sum ? [1, Int(sumScale.bitPattern), Int(sumType ?? 0)] : [0]
        guard let activation else { return summing + [-1] }
        let (algorithm, alpha, beta) = activation.algorithm
        return summing + [Int(algorithm.rawValue), Int(alpha.bitPattern), Int(beta.bitPattern)]
    }
}

/// Creates a primitive descriptor from an op descriptor, with user-mode scratchpad attributes, the `epilogue`
/// as post-ops and, for int8 kernels, `outputScales` (one per output channel, dimension 1) applied to the int32 sums
/// before the post-ops.
func makePrimitiveDescriptor<Descriptor>(_ opDescriptor: inout Descriptor, hint: dnnl_primitive_desc_t? = nil,
                                         epilogue: Epilogue = Epilogue(), outputScales: [Float]? = nil,
                                         name: String) throws -> dnnl_primitive_desc_t {
    var attributes = Engine.shared.attributes
    var owned: dnnl_primitive_attr_t?
    defer { if let owned { dnnl_primitive_attr_destroy(owned) } }
    if !epilogue.isEmpty || outputScales != nil {
        try check(dnnl_primitive_attr_clone(&owned, Engine.shared.attributes), "dnnl_primitive_attr_clone(\(name))")
        attributes = owned!
    }
    if let outputScales {
        try check(dnnl_primitive_attr_set_output_scales(attributes, Int64(outputScales.count), outputScales.count == 1 ? 0 : 1 << 1,
                                                        outputScales), "dnnl_primitive_attr_set_output_scales(\(name))")
    }
    if !epilogue.isEmpty {
        var postOps: dnnl_post_ops_t?
        try check(dnnl_post_ops_create(&postOps), "dnnl_post_ops_create(\(name))")
        defer { dnnl_post_ops_destroy(postOps) }
        if epilogue.sum {
            let type = epilogue.sumType.map { dnnl_data_type_t(rawValue: $0) } ?? dnnl_data_type_undef
            try check(dnnl_post_ops_append_sum_v2(postOps, epilogue.sumScale, type), "dnnl_post_ops_append_sum_v2(\(name))")
        }
        if let activation = epilogue.activation {
            let (algorithm, alpha, beta) = activation.algorithm
            try check(dnnl_post_ops_append_eltwise(postOps, 1, algorithm, alpha, beta), "dnnl_post_ops_append_eltwise(\(name))")
        }
        try check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "dnnl_primitive_attr_set_post_ops(\(name))")
    }
    var pd: dnnl_primitive_desc_t?
    try withUnsafePointer(to: &opDescriptor) { pointer in
        try check(dnnl_primitive_desc_create(&pd, UnsafeRawPointer(pointer), attributes,
                                             Engine.shared.engine, hint), "dnnl_primitive_desc_create(\(name))")
    }
    return pd!
}

/// Runs one of Fovea's own kernels (C loops on oneDNN's OpenMP team, e.g. training max pooling) the way a primitive runs:
/// one execution at a time, and timed under `name` in the `FOVEA_PROFILE` table.
func runOwnKernel(_ name: @autoclosure () -> String, _ body: () -> Void) {
    kernelLock.lock()
    defer { kernelLock.unlock() }
    let started = KernelProfile.enabled ? DispatchTime.now().uptimeNanoseconds : 0
    body()
    if KernelProfile.enabled { KernelProfile.record(name(), DispatchTime.now().uptimeNanoseconds - started) }
}

/// Optional per-primitive timing, switched on by the environment variable `FOVEA_PROFILE=1`;
/// `fovea` prints the table at exit. Used to decide what to optimise (DESIGN: profile first).
public enum KernelProfile {
    /// Whether timing is on.
    public static let enabled = ProcessInfo.processInfo.environment["FOVEA_PROFILE"] != nil
    nonisolated(unsafe) private static var totals: [String: (calls: Int, nanoseconds: UInt64)] = [:]

    static func record(_ name: String, _ nanoseconds: UInt64) {
        let old = totals[name] ?? (0, 0)
        totals[name] = (old.calls + 1, old.nanoseconds + nanoseconds)
    }

    /// A table of primitive kinds by total time, longest first.
    public static func summary() -> String {
        let rows = totals.sorted { $0.value.nanoseconds > $1.value.nanoseconds }
        return rows.map { name, value in
            String(format: "%-40@ %8d calls %9.1f ms %8.1f µs/call", name as NSString, value.calls,
                   Double(value.nanoseconds) / 1e6, Double(value.nanoseconds) / 1e3 / Double(value.calls))
        }.joined(separator: "\n")
    }
}
