import CDNNL

/// Copies `source` (described by `from`) into `destination` (described by `to`) with a cached reorder.
func reorder(_ source: Storage, from: dnnl_memory_desc_t, to destination: Storage,
             _ toDescriptor: dnnl_memory_desc_t, key: PrimitiveKey) throws {
    let primitive = try PrimitiveCache.shared.primitive(key) {
        var pd: dnnl_primitive_desc_t?
        var source = from, destination = toDescriptor
        try check(dnnl_reorder_primitive_desc_create(&pd, &source, Engine.shared.engine, &destination,
                                                     Engine.shared.engine, Engine.shared.attributes),
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
    static func reorderRaw(_ source: Storage, from: dnnl_memory_desc_t,
                           to target: dnnl_memory_desc_t, key: PrimitiveKey) throws -> Storage {
        let storage = Storage(capacity: max(byteSize(target) / 4, 1))
        try reorder(source, from: from, to: storage, target,
                    key: key)
        return storage
    }
}
