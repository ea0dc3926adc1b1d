import CDNNL

/// The process-wide oneDNN CPU engine and stream. All kernels run from the calling (compute) thread.
final class Engine: @unchecked Sendable {
    static let shared = Engine()

    let engine: dnnl_engine_t
    let stream: dnnl_stream_t
    /// Attributes asking every primitive for a user-mode scratchpad (one shared buffer, see `Scratchpad`).
    let attributes: dnnl_primitive_attr_t

    private init() {
        var engine: dnnl_engine_t?
        var stream: dnnl_stream_t?
        var attributes: dnnl_primitive_attr_t?
        // These can only fail if the library itself is broken; there is no way to continue without them.
        precondition(dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, "oneDNN: cannot create CPU engine")
        precondition(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success,
                     "oneDNN: cannot create stream")
        precondition(dnnl_primitive_attr_create(&attributes) == dnnl_success, "oneDNN: cannot create attributes")
        precondition(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user) == dnnl_success,
                     "oneDNN: cannot select user scratchpad mode")
        self.engine = engine!
        self.stream = stream!
        self.attributes = attributes!
    }
}

/// Throws `TensorError.kernelFailure` unless `status` is success.
@inline(__always)
func check(_ status: dnnl_status_t, _ call: @autoclosure () -> String) throws {
    if status != dnnl_success { throw TensorError.kernelFailure(call: call(), status: Int32(status.rawValue)) }
}

/// One growable buffer shared by all primitives: oneDNN runs one primitive at a time on our compute thread.
final class Scratchpad: @unchecked Sendable {
    static let shared = Scratchpad()
    private(set) var pointer: UnsafeMutableRawPointer?
    private var capacity = 0

    func buffer(bytes: Int) -> UnsafeMutableRawPointer? {
        if bytes == 0 { return nil }
        if bytes > capacity {
            pointer?.deallocate()
            capacity = max(bytes, capacity * 3 / 2)
            pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        }
        return pointer
    }
}

/// A memory descriptor for a dense tensor of `shape` in `layout`, of f32 elements unless `type` says otherwise.
func memoryDescriptor(_ shape: [Int], _ layout: Layout, _ type: dnnl_data_type_t = dnnl_f32) throws -> dnnl_memory_desc_t {
    var md = dnnl_memory_desc_t()
    let dims = shape.map { Int64($0) }
    try check(dnnl_memory_desc_init_by_tag(&md, Int32(shape.count), dims, type, layout.tag(rank: shape.count)),
              "dnnl_memory_desc_init_by_tag(\(shape), \(layout))")
    return md
}

/// A memory descriptor that lets the primitive choose the layout (of f32 elements unless `type` says otherwise).
func anyDescriptor(_ shape: [Int], _ type: dnnl_data_type_t = dnnl_f32) throws -> dnnl_memory_desc_t {
    var md = dnnl_memory_desc_t()
    try check(dnnl_memory_desc_init_by_tag(&md, Int32(shape.count), shape.map { Int64($0) }, type, dnnl_format_tag_any),
              "dnnl_memory_desc_init_by_tag(\(shape), any)")
    return md
}

/// A memory descriptor for plain weights: OIHW, or GOIHW when `groups > 1`.
func plainWeightDescriptor(_ shape: [Int], groups: Int) throws -> dnnl_memory_desc_t {
    if groups == 1 { return try memoryDescriptor(shape, .plain) }
    var md = dnnl_memory_desc_t()
    let dims = [groups, shape[0] / groups] + shape.dropFirst()
    try check(dnnl_memory_desc_init_by_tag(&md, 5, dims.map { Int64($0) }, dnnl_f32, dnnl_goihw),
              "dnnl_memory_desc_init_by_tag(goihw)")
    return md
}

/// Byte size of the memory a descriptor describes (including blocking padding).
func byteSize(_ md: dnnl_memory_desc_t) -> Int {
    var md = md
    return dnnl_memory_desc_get_size(&md)
}

func descriptorsEqual(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
    var a = a, b = b
    return dnnl_memory_desc_equal(&a, &b) != 0
}
