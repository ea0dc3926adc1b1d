import CDNNL

/// Elementwise arithmetic on tensors of equal shape. Works in any layout: blocking padding stays zero.
extension Tensor {
    /// `self + other` without recording (used to accumulate gradients); with `thenReLU`, max(self + other, 0) in the
    /// same pass.
    func adding(_ other: Tensor, thenReLU: Bool = false) throws -> Tensor {
        guard shape == other.shape else { throw TensorError.incompatibleShapes(operation: "add", shape, other.shape) }
        let right = try other.detached.reordered(to: layout)
        let result = Tensor(shape: shape, layout: layout, storage: Storage(capacity: storage.capacity))
        let a = storage.pointer, b = right.storage.pointer, c = result.storage.pointer
        // Both buffers hold the same layout, so the sum is over their flat storage (padding: 0 + 0, and max(0, 0) = 0).
        let count = storage.capacity
        let done = try count >= binaryKernelThreshold
            && binaryKernel(dnnl_binary_add, storage, [count], right.storage, [count], into: result.storage,
                            activation: thenReLU ? .relu : nil)
        if !done {
            if thenReLU {
                for i in 0..<count { c[i] = max(a[i] + b[i], 0) }
            } else {
                for i in 0..<count { c[i] = a[i] + b[i] }
            }
        }
        withExtendedLifetime(right) {}
        return result
    }

    /// `self * factor` without recording.
    func scaledDetached(by factor: Float) -> Tensor {
        let result = Tensor(shape: shape, layout: layout, storage: Storage(capacity: storage.capacity))
        let a = storage.pointer, c = result.storage.pointer
        for i in 0..<storage.capacity { c[i] = a[i] * factor }
        return result
    }

    /// Elementwise sum; the result takes the left operand's layout. Differentiable.
    public static func + (lhs: Tensor, rhs: Tensor) throws -> Tensor {
        let result = try lhs.detached.adding(rhs.detached)
        OperationTrace.record(.add, [lhs, rhs], result)
        return result.recorded(from: [lhs, rhs]) { gradient in [gradient, gradient] }
    }

    /// `self * factor`. Differentiable.
    public func scaled(by factor: Float) -> Tensor {
        let result = detached.scaledDetached(by: factor)
        OperationTrace.record(.scale(factor), [self], result)
        return result.recorded(from: [self]) { gradient in [gradient.scaledDetached(by: factor)] }
    }

    /// Sum of all elements as a scalar. Differentiable.
    public func sum() throws -> Tensor {
        let plain = try detached.reordered(to: .plain)
        var total = 0.0
        let pointer = plain.storage.pointer
        for i in 0..<count { total += Double(pointer[i]) }
        withExtendedLifetime(plain) {}
        let inputShape = shape, inputLayout = layout
        return Tensor(scalar: Float(total)).recorded(from: [self]) { gradient in
            [try Tensor(repeating: gradient.scalarValue, shape: inputShape).reordered(to: inputLayout)]
        }
    }
}

/// max(a + b, 0) in one pass over the elements (oneDNN's binary addition with a ReLU post-op); the result takes `a`'s
/// layout. The gradient is computed from the result alone (ReLU's derivative is 1 where the output is positive), so the
/// sum itself is never kept: one pass and one saved tensor fewer than `relu(a + b)`. Differentiable in both operands.
public func addingReLU(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    guard a.shape == b.shape else { throw TensorError.incompatibleShapes(operation: "addingReLU", a.shape, b.shape) }
    let result = try a.detached.adding(b, thenReLU: true)
    OperationTrace.record(.addReLU, [a, b], result)
    let (shape, layout) = (a.shape, a.layout)
    return result.recorded(from: [a, b]) { gradient in
        let backward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "relu_dst_b", values: shape + [layout.rawValue])) {
            // ReLU's backward pass from its output: oneDNN's relu_use_dst_for_bwd, hinted by its forward descriptor.
            var data = try memoryDescriptor(shape, layout)
            var forward = dnnl_eltwise_desc_t()
            try check(dnnl_eltwise_forward_desc_init(&forward, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd,
                                                     &data, 0, 0), "dnnl_eltwise_forward_desc_init(addingReLU)")
            let hint = try makePrimitiveDescriptor(&forward, name: "addingReLU")
            defer { dnnl_primitive_desc_destroy(hint) }
            var desc = dnnl_eltwise_desc_t()
            var diff = data
            try check(dnnl_eltwise_backward_desc_init(&desc, dnnl_eltwise_relu_use_dst_for_bwd, &diff, &data, 0, 0),
                      "dnnl_eltwise_backward_desc_init(addingReLU)")
            return try makePrimitiveDescriptor(&desc, hint: hint, name: "addingReLU backward")
        }
        let outputGradient = try gradient.detached.reordered(to: layout)
        let sumGradient = try Tensor.uninitialized(shape, layout: layout)
        try backward.execute([(DNNL_ARG_DST, result.storage),
                              (DNNL_ARG_DIFF_DST, outputGradient.storage),
                              (DNNL_ARG_DIFF_SRC, sumGradient.storage)])
        return [sumGradient, sumGradient]
    }
}
