import CDNNL

/// Elementwise arithmetic on tensors of equal shape. Works in any layout: blocking padding stays zero.
extension Tensor {
    /// `self + other` without recording (used to accumulate gradients).
    func adding(_ other: Tensor) throws -> Tensor {
        guard shape == other.shape else { throw TensorError.incompatibleShapes(operation: "add", shape, other.shape) }
        let right = try other.detached.reordered(to: layout)
        let result = Tensor(shape: shape, layout: layout, storage: Storage(capacity: storage.capacity))
        let a = storage.pointer, b = right.storage.pointer, c = result.storage.pointer
        // Both buffers hold the same layout, so the sum is over their flat storage (padding: 0 + 0).
        let count = storage.capacity
        let done = try count >= binaryKernelThreshold
            && binaryKernel(dnnl_binary_add, storage, [count], right.storage, [count], into: result.storage)
        if !done {
            for i in 0..<count { c[i] = a[i] + b[i] }
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
        return result.recorded(from: [lhs, rhs]) { gradient in [gradient, gradient] }
    }

    /// `self * factor`. Differentiable.
    public func scaled(by factor: Float) -> Tensor {
        detached.scaledDetached(by: factor).recorded(from: [self]) { gradient in [gradient.scaledDetached(by: factor)] }
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
