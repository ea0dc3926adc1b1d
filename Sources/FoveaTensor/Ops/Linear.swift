import CDNNL

/// Fully connected layer y = x·Wᵀ + b (oneDNN inner product). input (N, In), weight (Out, In), bias (Out)
/// → (N, Out), all plain. Differentiable in input, weight and bias.
public func linear(_ input: Tensor, weight: Tensor, bias: Tensor? = nil, name: String = "linear") throws -> Tensor {
    guard weight.shape.count == 2 else {
        throw TensorError.shapeMismatch(operation: name, expected: "weight (Out, In)", actual: weight.shape)
    }
    let (outputs, inputs) = (weight.shape[0], weight.shape[1])
    guard input.shape.count == 2, input.shape[1] == inputs else {
        throw TensorError.shapeMismatch(operation: name, expected: "(N, \(inputs))", actual: input.shape)
    }
    if let bias, bias.shape != [outputs] {
        throw TensorError.shapeMismatch(operation: name + " bias", expected: "[\(outputs)]", actual: bias.shape)
    }
    let n = input.shape[0]
    let outputShape = [n, outputs]
    let training = Autodiff.recording && (input.node != nil || weight.node != nil || bias?.node != nil)
    let keyValues = [n, inputs, outputs, bias == nil ? 0 : 1]
    let forward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: training ? "ip_fwd_t" : "ip_fwd_i", values: keyValues)) {
        var desc = dnnl_inner_product_desc_t()
        var src = try memoryDescriptor(input.shape, .plain), wei = try memoryDescriptor(weight.shape, .plain)
        var dst = try memoryDescriptor(outputShape, .plain)
        var biasMD = bias == nil ? dnnl_memory_desc_t() : try memoryDescriptor([outputs], .plain)
        try check(dnnl_inner_product_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                                       &src, &wei, &biasMD, &dst), "dnnl_inner_product_forward_desc_init(\(name))")
        return try makePrimitiveDescriptor(&desc, name: name)
    }
    let source = try input.detached.reordered(to: .plain), plainWeight = try weight.detached.reordered(to: .plain)
    let result = try Tensor.uninitialized(outputShape)
    var buffers: [(Int32, Storage)] = [
        (DNNL_ARG_SRC, source.storage),
        (DNNL_ARG_WEIGHTS, plainWeight.storage),
        (DNNL_ARG_DST, result.storage),
    ]
    if let bias { buffers.append((DNNL_ARG_BIAS, try bias.detached.reordered(to: .plain).storage)) }
    try forward.execute(buffers)
    OperationCounter.add(n * inputs * outputs)
    OperationTrace.record(.linear(bias: bias != nil), [input, weight, bias], result)
    guard training else { return result }
    let inputNeedsGradient = input.node != nil, weightNeedsGradient = weight.node != nil || bias?.node != nil
    return result.recorded(from: [input, weight] + (bias.map { [$0] } ?? [])) { gradient in
        let outputGradient = try gradient.detached.reordered(to: .plain)
        var inputGradient: Tensor?
        if inputNeedsGradient {
            let backward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "ip_bwd_d", values: keyValues)) {
                var desc = dnnl_inner_product_desc_t()
                var src = try memoryDescriptor(input.shape, .plain), wei = try memoryDescriptor(weight.shape, .plain)
                var dst = try memoryDescriptor(outputShape, .plain)
                try check(dnnl_inner_product_backward_data_desc_init(&desc, &src, &wei, &dst),
                          "dnnl_inner_product_backward_data_desc_init(\(name))")
                return try makePrimitiveDescriptor(&desc, hint: forward.descriptor, name: name)
            }
            let dx = try Tensor.uninitialized(input.shape)
            try backward.execute([(DNNL_ARG_DIFF_DST, outputGradient.storage),
                                  (DNNL_ARG_WEIGHTS, plainWeight.storage),
                                  (DNNL_ARG_DIFF_SRC, dx.storage)])
            inputGradient = dx
        }
        guard weightNeedsGradient else { return [inputGradient, nil, nil] }
        let backward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "ip_bwd_w", values: keyValues)) {
            var desc = dnnl_inner_product_desc_t()
            var src = try memoryDescriptor(input.shape, .plain), wei = try memoryDescriptor(weight.shape, .plain)
            var dst = try memoryDescriptor(outputShape, .plain)
            var biasMD = bias == nil ? dnnl_memory_desc_t() : try memoryDescriptor([outputs], .plain)
            try check(dnnl_inner_product_backward_weights_desc_init(&desc, &src, &wei, &biasMD, &dst),
                      "dnnl_inner_product_backward_weights_desc_init(\(name))")
            return try makePrimitiveDescriptor(&desc, hint: forward.descriptor, name: name)
        }
        let dw = try Tensor.uninitialized(weight.shape)
        let db = bias == nil ? nil : try Tensor.uninitialized([outputs])
        var buffers: [(Int32, Storage)] = [
            (DNNL_ARG_SRC, source.storage),
            (DNNL_ARG_DIFF_DST, outputGradient.storage),
            (DNNL_ARG_DIFF_WEIGHTS, dw.storage),
        ]
        if let db { buffers.append((DNNL_ARG_DIFF_BIAS, db.storage)) }
        try backward.execute(buffers)
        return [inputGradient, dw, db]
    }
}
