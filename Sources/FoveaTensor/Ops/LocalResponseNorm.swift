import CDNNL

/// Local response normalisation across channels (Krizhevsky et al. 2012), PyTorch's definition:
/// b_c = a_c / (k + α/size · Σ a²)^β over channels c−⌊size/2⌋ … c+⌊(size−1)/2⌋. Odd sizes run on oneDNN
/// (whose window is centred the same way); even sizes on a plain loop. Differentiable.
public func localResponseNorm(_ x: Tensor, size: Int, alpha: Float = 1e-4, beta: Float = 0.75, k: Float = 1,
                              name: String = "localResponseNorm") throws -> Tensor {
    guard x.shape.count == 4 else { throw TensorError.shapeMismatch(operation: name, expected: "(N, C, H, W)", actual: x.shape) }
    guard size > 0 else { throw TensorError.invalidArgument(operation: name, message: "size must be positive") }
    if size % 2 == 0 { return try localResponseNormPlain(x, size: size, alpha: alpha, beta: beta, k: k) }
    let training = Autodiff.recording && x.node != nil
    let keyValues = x.shape + [x.layout.rawValue, size, Int(alpha.bitPattern), Int(beta.bitPattern), Int(k.bitPattern)]
    let forward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: training ? "lrn_t" : "lrn_i", values: keyValues)) {
        var desc = dnnl_lrn_desc_t()
        var data = try memoryDescriptor(x.shape, x.layout)
        try check(dnnl_lrn_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                             dnnl_lrn_across_channels, &data, Int64(size), alpha, beta, k),
                  "dnnl_lrn_forward_desc_init(\(name))")
        return try makePrimitiveDescriptor(&desc, name: name)
    }
    let result = try Tensor.uninitialized(x.shape, layout: x.layout)
    let workspaceBytes = byteSize(forward.descriptor(for: DNNL_ARG_WORKSPACE))
    let workspace = training && workspaceBytes > 0 ? Storage(capacity: (workspaceBytes + 3) / 4) : nil
    var buffers: [(Int32, Storage)] = [(DNNL_ARG_SRC, x.storage),
                                                        (DNNL_ARG_DST, result.storage)]
    if let workspace { buffers.append((DNNL_ARG_WORKSPACE, workspace)) }
    try forward.execute(buffers)
    OperationTrace.record(.localResponseNorm(size: size, alpha: alpha, beta: beta, k: k), [x], result)
    guard training else { return result }
    return result.recorded(from: [x]) { gradient in
        let backward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "lrn_b", values: keyValues)) {
            var desc = dnnl_lrn_desc_t()
            var data = try memoryDescriptor(x.shape, x.layout)
            var diff = data
            try check(dnnl_lrn_backward_desc_init(&desc, dnnl_lrn_across_channels, &diff, &data, Int64(size), alpha, beta, k),
                      "dnnl_lrn_backward_desc_init(\(name))")
            return try makePrimitiveDescriptor(&desc, hint: forward.descriptor, name: name)
        }
        let outputGradient = try gradient.detached.reordered(to: x.layout)
        let inputGradient = try Tensor.uninitialized(x.shape, layout: x.layout)
        var buffers: [(Int32, Storage)] = [
            (DNNL_ARG_SRC, x.storage),
            (DNNL_ARG_DIFF_DST, outputGradient.storage),
            (DNNL_ARG_DIFF_SRC, inputGradient.storage),
        ]
        // The backward implementation may not read the forward pass's workspace (oneDNN 2.6 on AVX2 pairs a jit
        // forward pass on plain NCHW, which writes one, with a reference backward pass, which recomputes).
        if let workspace, byteSize(backward.descriptor(for: DNNL_ARG_WORKSPACE)) > 0 {
            buffers.append((DNNL_ARG_WORKSPACE, workspace))
        }
        try backward.execute(buffers)
        return [inputGradient]
    }
}

/// Plain-layout LRN for even window sizes, where oneDNN centres the window differently from PyTorch.
private func localResponseNormPlain(_ x: Tensor, size: Int, alpha: Float, beta: Float, k: Float) throws -> Tensor {
    let source = try x.detached.reordered(to: .plain)
    let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
    let a = source.storage.pointer
    let result = try Tensor.uninitialized(x.shape)
    let denominators = try Tensor.uninitialized(x.shape)   // d = k + α/size·Σa², saved for the backward pass
    let (b, d) = (result.storage.pointer, denominators.storage.pointer)
    let window = { (channel: Int) in max(channel - size / 2, 0)...min(channel + (size - 1) / 2, c - 1) }
    for image in 0..<n {
        for channel in 0..<c {
            for s in 0..<plane {
                var total: Float = 0
                for other in window(channel) { let v = a[(image * c + other) * plane + s]; total += v * v }
                let index = (image * c + channel) * plane + s
                d[index] = k + alpha / Float(size) * total
                b[index] = a[index] * Glibc.powf(d[index], -beta)
            }
        }
    }
    withExtendedLifetime(source) {}
    let layout = x.layout
    return try result.reordered(to: layout).recorded(from: [x]) { [source, denominators] gradient in
        let (a, d) = (source.storage.pointer, denominators.storage.pointer)
        let plainGradient = try gradient.detached.reordered(to: .plain)
        let g = plainGradient.storage.pointer
        let dx = Tensor.zeros(x.shape)
        let dp = dx.storage.pointer
        // ∂b_c/∂a_j = δ_cj·d_c^−β − 2αβ/size · a_c·a_j·d_c^(−β−1) for j in window(c).
        for image in 0..<n {
            for channel in 0..<c {
                for s in 0..<plane {
                    let index = (image * c + channel) * plane + s
                    dp[index] += g[index] * Glibc.powf(d[index], -beta)
                    let common = -2 * alpha * beta / Float(size) * g[index] * a[index] * Glibc.powf(d[index], -beta - 1)
                    for other in window(channel) {
                        let j = (image * c + other) * plane + s
                        dp[j] += common * a[j]
                    }
                }
            }
        }
        withExtendedLifetime(plainGradient) {}
        return [try dx.reordered(to: layout)]
    }
}

#if canImport(Glibc)
import Glibc
#endif
