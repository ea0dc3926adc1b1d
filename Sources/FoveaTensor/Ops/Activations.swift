import CDNNL

/// Elementwise activation functions, run by oneDNN's eltwise primitive in the tensor's own layout
/// (it keeps blocking padding at zero, which a plain loop would not for e.g. sigmoid).
public enum Activation: Hashable, Sendable {
    case relu
    case relu6
    case leakyRelu(negativeSlope: Float)
    case silu
    case sigmoid
    case tanh
    case hardSwish
    /// scale·x + shift.
    case linear(scale: Float, shift: Float)
    /// min(max(x, lower), upper).
    case clip(lower: Float, upper: Float)

    var algorithm: (dnnl_alg_kind_t, Float, Float) {
        switch self {
        case .relu: return (dnnl_eltwise_relu, 0, 0)
        case .relu6: return (dnnl_eltwise_clip_v2, 0, 6)
        case let .leakyRelu(slope): return (dnnl_eltwise_relu, slope, 0)
        case .silu: return (dnnl_eltwise_swish, 1, 0)
        case .sigmoid: return (dnnl_eltwise_logistic, 0, 0)
        case .tanh: return (dnnl_eltwise_tanh, 0, 0)
        case .hardSwish: return (dnnl_eltwise_hardswish, 0, 0)
        case let .linear(scale, shift): return (dnnl_eltwise_linear, scale, shift)
        case let .clip(lower, upper): return (dnnl_eltwise_clip_v2, lower, upper)
        }
    }
}

/// Applies `activation` elementwise. Differentiable.
public func activate(_ input: Tensor, _ activation: Activation) throws -> Tensor {
    let (algorithm, alpha, beta) = activation.algorithm
    let keyValues = input.shape + [input.layout.rawValue, Int(algorithm.rawValue), Int(alpha.bitPattern), Int(beta.bitPattern)]
    let training = Autodiff.recording && input.node != nil
    let forward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: training ? "eltwise_t" : "eltwise_i", values: keyValues)) {
        var desc = dnnl_eltwise_desc_t()
        var data = try memoryDescriptor(input.shape, input.layout)
        try check(dnnl_eltwise_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                                 algorithm, &data, alpha, beta), "dnnl_eltwise_forward_desc_init")
        return try makePrimitiveDescriptor(&desc, name: "\(activation)")
    }
    let result = try Tensor.uninitialized(input.shape, layout: input.layout)
    try forward.execute([(DNNL_ARG_SRC, input.storage),
                         (DNNL_ARG_DST, result.storage)])
    OperationTrace.record(.activation(activation), [input], result)
    guard training else { return result }
    return result.recorded(from: [input]) { gradient in
        let backward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "eltwise_b", values: keyValues)) {
            var desc = dnnl_eltwise_desc_t()
            var data = try memoryDescriptor(input.shape, input.layout)
            var diff = data
            try check(dnnl_eltwise_backward_desc_init(&desc, algorithm, &diff, &data, alpha, beta),
                      "dnnl_eltwise_backward_desc_init")
            return try makePrimitiveDescriptor(&desc, hint: forward.descriptor, name: "\(activation) backward")
        }
        let outputGradient = try gradient.detached.reordered(to: input.layout)
        let inputGradient = try Tensor.uninitialized(input.shape, layout: input.layout)
        try backward.execute([(DNNL_ARG_SRC, input.storage),
                              (DNNL_ARG_DIFF_DST, outputGradient.storage),
                              (DNNL_ARG_DIFF_SRC, inputGradient.storage)])
        return [inputGradient]
    }
}

/// max(x, 0). Differentiable.
public func relu(_ x: Tensor) throws -> Tensor { try activate(x, .relu) }
/// min(max(x, 0), 6). Differentiable.
public func relu6(_ x: Tensor) throws -> Tensor { try activate(x, .relu6) }
/// x for x > 0, slope·x otherwise. Differentiable.
public func leakyRelu(_ x: Tensor, negativeSlope: Float = 0.01) throws -> Tensor {
    try activate(x, .leakyRelu(negativeSlope: negativeSlope))
}
/// x·σ(x) (swish). Differentiable.
public func silu(_ x: Tensor) throws -> Tensor { try activate(x, .silu) }
/// 1 / (1 + e^−x). Differentiable.
public func sigmoid(_ x: Tensor) throws -> Tensor { try activate(x, .sigmoid) }
/// Hyperbolic tangent. Differentiable.
public func tanh(_ x: Tensor) throws -> Tensor { try activate(x, .tanh) }
/// x·relu6(x + 3)/6. Differentiable.
public func hardSwish(_ x: Tensor) throws -> Tensor { try activate(x, .hardSwish) }
/// relu6(x + 3) / 6 (MobileNetV3's gate). Differentiable.
public func hardSigmoid(_ x: Tensor) throws -> Tensor {
    try activate(activate(x, .linear(scale: 1.0 / 6, shift: 0.5)), .clip(lower: 0, upper: 1))
}
