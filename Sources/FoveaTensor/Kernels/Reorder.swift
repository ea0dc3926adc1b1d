import CDNNL

/// Copies `source` (described by `from`) into `destination` (described by `to`) with a cached reorder; with `scale`,
/// every value is multiplied by it on the way (rounded to nearest and saturated when `to` is an integer type). The
/// key must tell different scales apart.
func reorder(_ source: Storage, from: dnnl_memory_desc_t, to destination: Storage,
             _ toDescriptor: dnnl_memory_desc_t, scale: Float? = nil, key: PrimitiveKey) throws {
    let primitive = try PrimitiveCache.shared.primitive(key) {
        var pd: dnnl_primitive_desc_t?
        var source = from, destination = toDescriptor
        var attributes = Engine.shared.attributes
        var owned: dnnl_primitive_attr_t?
        defer { if let owned { dnnl_primitive_attr_destroy(owned) } }
        if var scale {
            try check(dnnl_primitive_attr_clone(&owned, Engine.shared.attributes), "dnnl_primitive_attr_clone(reorder)")
            attributes = owned!
            try check(dnnl_primitive_attr_set_output_scales(attributes, 1, 0, &scale), "dnnl_primitive_attr_set_output_scales(reorder)")
        }
        try check(dnnl_reorder_primitive_desc_create(&pd, &source, Engine.shared.engine, &destination,
                                                     Engine.shared.engine, attributes),
                  "dnnl_reorder_primitive_desc_create")
        return pd!
    }
    try primitive.execute([(DNNL_ARG_FROM, source), (DNNL_ARG_TO, destination)])
}

extension Tensor {
    /// The same values in `target` layout (self when already there). Differentiable.
    public func reordered(to target: Layout) throws -> Tensor {
        if target == layout { return self }
        if shape.count != 4 && target != .plain {
            throw TensorError.invalidArgument(operation: "reorder", message: "layout \(target) needs a 4-D tensor, got \(shape)")
        }
        let result = try Tensor.uninitialized(shape, layout: target)
        defer { OperationTrace.record(.alias, [self], result) }
        try reorder(storage, from: try memoryDescriptor(shape, layout),
                    to: result.storage, try memoryDescriptor(shape, target),
                    key: PrimitiveKey(kind: "reorder", values: shape + [layout.rawValue, target.rawValue]))
        let sourceLayout = layout
        return result.recorded(from: [self]) { gradient in [try gradient.reordered(to: sourceLayout)] }
    }

    /// Reorders raw weights or activations described by an arbitrary descriptor into a fresh buffer.
    /// With `scale`, every value is multiplied by it on the way (quantization: rounded, saturated); the key must say it.
    static func reorderRaw(_ source: Storage, from: dnnl_memory_desc_t,
                           to target: dnnl_memory_desc_t, scale: Float? = nil, key: PrimitiveKey) throws -> Storage {
        let storage = Storage(capacity: max((byteSize(target) + 3) / 4, 1))
        try reorder(source, from: from, to: storage, target, scale: scale, key: key)
        return storage
    }
}

extension Tensor {
    /// The elements in `layout` as a kernel operand of `type`: for f32 the tensor's own storage when it is already in
    /// `layout` (else a reordered copy), for bf16 a converted copy (round to nearest even).
    func operand(in layout: Layout, _ type: dnnl_data_type_t) throws -> Storage {
        if type == dnnl_f32 { return try detached.reordered(to: layout).storage }
        return try Tensor.reorderRaw(storage, from: try memoryDescriptor(shape, self.layout),
                                     to: try memoryDescriptor(shape, layout, type),
                                     key: PrimitiveKey(kind: "operand", values: shape + [self.layout.rawValue, layout.rawValue,
                                                                                         Int(type.rawValue)]))
    }
}

extension Precision {
    /// The element type a convolution or inner product multiplies in on the calling thread: bf16 where it is in force
    /// and the CPU has it, f32 otherwise.
    static var currentOperandType: dnnl_data_type_t {
        let precision = current
        return precision.isSupported ? precision.operandType : dnnl_f32
    }
}
