import CDNNL

/// Result of a training-mode batch norm: the output and the batch statistics used to normalise it.
public struct BatchNormOutput {
    /// Normalised, scaled and shifted activations.
    public var output: Tensor
    /// Per-channel batch mean.
    public var mean: [Float]
    /// Per-channel biased batch variance (divided by N·H·W), as used for normalisation.
    public var variance: [Float]
    /// Values per channel the statistics are over (N·H·W; with synchronised statistics, over every replica).
    public var count: Int
}

/// Batch normalisation over (N, H, W) per channel with batch statistics (training mode). Differentiable
/// in input, scale and shift. input (N,C,H,W), scale (C), shift (C) → (N,C,H,W) in the input's layout.
///
/// With `fusingReLU`, the output is `relu(batchNorm(input))` from one oneDNN primitive (forward and backward), which
/// keeps a bit mask of the ReLU instead of making two more passes over the activations.
public func batchNormTraining(_ input: Tensor, scale: Tensor, shift: Tensor, epsilon: Float, fusingReLU: Bool = false,
                              name: String = "batchNorm") throws -> BatchNormOutput {
    try validateBatchNorm(input, scale, shift, name)
    let c = input.shape[1]
    let flags = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue | (fusingReLU ? dnnl_fuse_norm_relu.rawValue : 0)
    let forward = try batchNormPrimitive(input, epsilon, flags, dnnl_forward_training, name)
    let result = try Tensor.uninitialized(input.shape, layout: input.layout)
    let mean = try Tensor.uninitialized([c]), variance = try Tensor.uninitialized([c])
    let plainScale = try scale.detached.reordered(to: .plain), plainShift = try shift.detached.reordered(to: .plain)
    var buffers: [(Int32, Storage)] = [
        (DNNL_ARG_SRC, input.storage),
        (DNNL_ARG_SCALE, plainScale.storage),
        (DNNL_ARG_SHIFT, plainShift.storage),
        (DNNL_ARG_DST, result.storage),
        (DNNL_ARG_MEAN, mean.storage),
        (DNNL_ARG_VARIANCE, variance.storage),
    ]
    // The ReLU's mask (one bit or byte per element), read again by the backward pass.
    let workspace = fusingReLU ? Storage(capacity: (byteSize(forward.descriptor(for: DNNL_ARG_WORKSPACE)) + 3) / 4) : nil
    if let workspace { buffers.append((DNNL_ARG_WORKSPACE, workspace)) }
    try forward.execute(buffers)
    let output = result.recorded(from: [input, scale, shift]) { gradient in
        try batchNormBackward(input, gradient, plainScale, plainShift, mean, variance, epsilon, flags, forward, name,
                              workspace: workspace)
    }
    return BatchNormOutput(output: output, mean: Array(UnsafeBufferPointer(start: mean.storage.pointer, count: c)),
                           variance: Array(UnsafeBufferPointer(start: variance.storage.pointer, count: c)),
                           count: input.count / c)
}

/// Batch normalisation in training mode with statistics over several replicas' batches (synchronised batch norm for
/// data-parallel training): `sum` adds an array over all replicas (an allreduce) and is called once in the forward
/// pass (per-channel sums and sums of squares, and the count) and once in the backward pass (per-channel sums of the
/// output gradient and of its product with the normalised input), in the same order on every replica.
///
/// The result is the batch norm of the replicas' batches taken together: mean and biased variance over all of them,
/// and the input gradient dx = γ/σ · (dy − Σdy/N − x̂ · Σ(dy·x̂)/N) with sums over all of them. The scale and shift
/// gradients are this replica's part (their sum over replicas is the whole, as for any other parameter).
public func batchNormTrainingSynchronized(_ input: Tensor, scale: Tensor, shift: Tensor, epsilon: Float,
                                          name: String = "batchNorm",
                                          sum: @escaping ([Double]) throws -> [Double]) throws -> BatchNormOutput {
    try validateBatchNorm(input, scale, shift, name)
    let c = input.shape[1], plane = input.count / max(input.shape[0] * c, 1), n = input.shape[0]
    let plainInput = try input.detached.reordered(to: .plain)
    var local = [Double](repeating: 0, count: 2 * c + 1)
    plainInput.storage.pointer.withMemoryRebound(to: Float.self, capacity: input.count) { x in
        for image in 0..<n {
            for channel in 0..<c {
                let base = x + (image * c + channel) * plane
                var s = 0.0, squares = 0.0
                for i in 0..<plane { let v = Double(base[i]); s += v; squares += v * v }
                local[channel] += s
                local[c + channel] += squares
            }
        }
    }
    local[2 * c] = Double(n * plane)
    let total = try sum(local)
    guard total.count == 2 * c + 1, total[2 * c] > 0 else {
        throw TensorError.invalidArgument(operation: name, message: "synchronised statistics over no value")
    }
    let count = total[2 * c]
    let mean = (0..<c).map { total[$0] / count }
    let variance = (0..<c).map { max(total[c + $0] / count - mean[$0] * mean[$0], 0) }
    let meanTensor = try Tensor(shape: [c], values: mean.map(Float.init))
    let varianceTensor = try Tensor(shape: [c], values: variance.map(Float.init))
    let flags = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue | dnnl_use_global_stats.rawValue
    let forward = try batchNormPrimitive(input, epsilon, flags, dnnl_forward_training, name)
    let result = try Tensor.uninitialized(input.shape, layout: input.layout)
    let plainScale = try scale.detached.reordered(to: .plain), plainShift = try shift.detached.reordered(to: .plain)
    try forward.execute([
        (DNNL_ARG_SRC, input.storage),
        (DNNL_ARG_SCALE, plainScale.storage),
        (DNNL_ARG_SHIFT, plainShift.storage),
        (DNNL_ARG_MEAN, meanTensor.storage),
        (DNNL_ARG_VARIANCE, varianceTensor.storage),
        (DNNL_ARG_DST, result.storage),
    ])
    let output = result.recorded(from: [input, scale, shift]) { gradient in
        // With the statistics held constant oneDNN gives γ/σ·dy and this replica's Σdy·x̂ and Σdy.
        let parts = try batchNormBackward(input, gradient, plainScale, plainShift, meanTensor, varianceTensor, epsilon, flags,
                                          forward, name)
        let scaleGradient = try parts[1]!.toArray(), shiftGradient = try parts[2]!.toArray()
        let sums = try sum(shiftGradient.map(Double.init) + scaleGradient.map(Double.init))
        let inputGradient = try parts[0]!.reordered(to: .plain).copy()
        let gamma = try plainScale.toArray()
        inputGradient.storage.pointer.withMemoryRebound(to: Float.self, capacity: input.count) { dx in
            plainInput.storage.pointer.withMemoryRebound(to: Float.self, capacity: input.count) { x in
                for channel in 0..<c {
                    let inverse = 1 / (variance[channel] + Double(epsilon)).squareRoot()
                    let k = Double(gamma[channel]) * inverse
                    let a = k * sums[channel] / count, b = k * sums[c + channel] / count * inverse
                    // dx −= a + b·(x − μ)
                    let offset = Float(a - b * mean[channel]), slope = Float(b)
                    for image in 0..<n {
                        let base = (image * c + channel) * plane
                        for i in 0..<plane { dx[base + i] -= offset + slope * x[base + i] }
                    }
                }
            }
        }
        return [try inputGradient.reordered(to: input.layout), parts[1], parts[2]]
    }
    return BatchNormOutput(output: output, mean: mean.map(Float.init), variance: variance.map(Float.init), count: Int(count))
}

/// Batch normalisation with given (running) statistics (inference mode). Differentiable in all of
/// input, scale and shift, with the statistics held constant.
public func batchNormInference(_ input: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, variance: Tensor,
                               epsilon: Float, name: String = "batchNorm") throws -> Tensor {
    try validateBatchNorm(input, scale, shift, name)
    let c = input.shape[1]
    guard mean.shape == [c], variance.shape == [c] else {
        throw TensorError.shapeMismatch(operation: name + " running statistics", expected: "[\(c)]", actual: mean.shape)
    }
    let flags = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue | dnnl_use_global_stats.rawValue
    let recording = Autodiff.recording && [input, scale, shift].contains { $0.node != nil }
    let forward = try batchNormPrimitive(input, epsilon, flags, recording ? dnnl_forward_training : dnnl_forward_inference, name)
    let result = try Tensor.uninitialized(input.shape, layout: input.layout)
    let plainScale = try scale.detached.reordered(to: .plain), plainShift = try shift.detached.reordered(to: .plain)
    let plainMean = try mean.detached.reordered(to: .plain), plainVariance = try variance.detached.reordered(to: .plain)
    try forward.execute([
        (DNNL_ARG_SRC, input.storage),
        (DNNL_ARG_SCALE, plainScale.storage),
        (DNNL_ARG_SHIFT, plainShift.storage),
        (DNNL_ARG_MEAN, plainMean.storage),
        (DNNL_ARG_VARIANCE, plainVariance.storage),
        (DNNL_ARG_DST, result.storage),
    ])
    OperationTrace.record(.batchNorm(epsilon: epsilon), [input, scale, shift, mean, variance], result)
    guard recording else { return result }
    return result.recorded(from: [input, scale, shift]) { gradient in
        try batchNormBackward(input, gradient, plainScale, plainShift, plainMean, plainVariance, epsilon, flags, forward, name)
    }
}

private func validateBatchNorm(_ input: Tensor, _ scale: Tensor, _ shift: Tensor, _ name: String) throws {
    guard input.shape.count == 4 || input.shape.count == 2 else {
        throw TensorError.shapeMismatch(operation: name, expected: "(N, C, H, W)", actual: input.shape)
    }
    let c = input.shape[1]
    guard scale.shape == [c], shift.shape == [c] else {
        throw TensorError.shapeMismatch(operation: name, expected: "scale and shift of shape [\(c)]", actual: scale.shape)
    }
}

private func batchNormPrimitive(_ input: Tensor, _ epsilon: Float, _ flags: UInt32, _ kind: dnnl_prop_kind_t,
                                _ name: String) throws -> Primitive {
    let key = PrimitiveKey(kind: "bn_fwd", values: input.shape + [input.layout.rawValue, Int(flags), Int(kind.rawValue),
                                                                  Int(epsilon.bitPattern)])
    return try PrimitiveCache.shared.primitive(key) {
        var desc = dnnl_batch_normalization_desc_t()
        var data = try memoryDescriptor(input.shape, input.layout)
        try check(dnnl_batch_normalization_forward_desc_init(&desc, kind, &data, epsilon, flags),
                  "dnnl_batch_normalization_forward_desc_init(\(name))")
        return try makePrimitiveDescriptor(&desc, name: name)
    }
}

private func batchNormBackward(_ input: Tensor, _ gradient: Tensor, _ scale: Tensor, _ shift: Tensor, _ mean: Tensor, _ variance: Tensor,
                               _ epsilon: Float, _ flags: UInt32, _ forward: Primitive, _ name: String,
                               workspace: Storage? = nil) throws -> [Tensor?] {
    let c = input.shape[1]
    let key = PrimitiveKey(kind: "bn_bwd", values: input.shape + [input.layout.rawValue, Int(flags), Int(epsilon.bitPattern)])
    let backward = try PrimitiveCache.shared.primitive(key) {
        var desc = dnnl_batch_normalization_desc_t()
        var data = try memoryDescriptor(input.shape, input.layout)
        var diff = data
        try check(dnnl_batch_normalization_backward_desc_init(&desc, dnnl_backward, &diff, &data, epsilon, flags),
                  "dnnl_batch_normalization_backward_desc_init(\(name))")
        return try makePrimitiveDescriptor(&desc, hint: forward.descriptor, name: name)
    }
    let outputGradient = try gradient.detached.reordered(to: input.layout)
    let inputGradient = try Tensor.uninitialized(input.shape, layout: input.layout)
    let scaleGradient = try Tensor.uninitialized([c]), shiftGradient = try Tensor.uninitialized([c])
    try backward.execute([
        (DNNL_ARG_SRC, input.storage),
        (DNNL_ARG_MEAN, mean.storage),
        (DNNL_ARG_VARIANCE, variance.storage),
        (DNNL_ARG_DIFF_DST, outputGradient.storage),
        (DNNL_ARG_SCALE, scale.storage),
        // oneDNN 2.6 checks that the shift is present whenever its flag is set, though the backward pass does not read it.
        (DNNL_ARG_SHIFT, shift.storage),
        (DNNL_ARG_DIFF_SRC, inputGradient.storage),
        (DNNL_ARG_DIFF_SCALE, scaleGradient.storage),
        (DNNL_ARG_DIFF_SHIFT, shiftGradient.storage),
    ] + (workspace.map { [(DNNL_ARG_WORKSPACE, $0)] } ?? []))
    return [inputGradient, scaleGradient, shiftGradient]
}
