import CDNNL

/// Fully connected layer y = x·Wᵀ + b (oneDNN inner product). input (N, In), weight (Out, In), bias (Out)
/// → (N, Out), all plain. Differentiable in input, weight and bias. Under `Precision.run(.bf16)` input and weight are
/// multiplied in bfloat16 (accumulated in f32); output, bias and all gradients stay f32.
/// With `quantizer` (inference only) it calibrates and runs in int8 as `conv2d` does.
public func linear(_ input: Tensor, weight: Tensor, bias: Tensor? = nil, quantizer: ActivationQuantizer? = nil,
                   name: String = "linear") throws -> Tensor {
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
    switch quantizer?.action(training: training) {
    case .observe?: try quantizer?.observe(input)
    case let .quantize(unsigned, scale)?:
        let result = try quantizedLinear(input, weight: weight, bias: bias, quantizer: quantizer!, unsigned: unsigned, scale: scale,
                                         name: name)
        OperationTrace.record(.linear(bias: bias != nil), [input, weight, bias], result)
        return result
    case .none?, nil: break
    }
    let operandType = Precision.currentOperandType
    let keyValues = [n, inputs, outputs, bias == nil ? 0 : 1, Int(operandType.rawValue)]
    let forward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: training ? "ip_fwd_t" : "ip_fwd_i", values: keyValues)) {
        var desc = dnnl_inner_product_desc_t()
        var src = try memoryDescriptor(input.shape, .plain, operandType)
        var wei = try memoryDescriptor(weight.shape, .plain, operandType)
        var dst = try memoryDescriptor(outputShape, .plain)
        var biasMD = bias == nil ? dnnl_memory_desc_t() : try memoryDescriptor([outputs], .plain)
        try check(dnnl_inner_product_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                                       &src, &wei, &biasMD, &dst), "dnnl_inner_product_forward_desc_init(\(name))")
        return try makePrimitiveDescriptor(&desc, name: name)
    }
    let source = try input.detached.operand(in: .plain, operandType)
    let kernelWeight = try weight.detached.operand(in: .plain, operandType)
    let result = try Tensor.uninitialized(outputShape)
    var buffers: [(Int32, Storage)] = [
        (DNNL_ARG_SRC, source),
        (DNNL_ARG_WEIGHTS, kernelWeight),
        (DNNL_ARG_DST, result.storage),
    ]
    if let bias { buffers.append((DNNL_ARG_BIAS, try bias.detached.reordered(to: .plain).storage)) }
    try forward.execute(buffers)
    OperationCounter.add(n * inputs * outputs)
    OperationTrace.record(.linear(bias: bias != nil), [input, weight, bias], result)
    guard training else { return result }
    let inputNeedsGradient = input.node != nil, weightNeedsGradient = weight.node != nil || bias?.node != nil
    return result.recorded(from: [input, weight] + (bias.map { [$0] } ?? [])) { gradient in
        let outputGradient = try gradient.detached.operand(in: .plain, operandType)
        var inputGradient: Tensor?
        if inputNeedsGradient {
            let backward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "ip_bwd_d", values: keyValues)) {
                var desc = dnnl_inner_product_desc_t()
                var src = try memoryDescriptor(input.shape, .plain), wei = try memoryDescriptor(weight.shape, .plain, operandType)
                var dst = try memoryDescriptor(outputShape, .plain, operandType)
                try check(dnnl_inner_product_backward_data_desc_init(&desc, &src, &wei, &dst),
                          "dnnl_inner_product_backward_data_desc_init(\(name))")
                return try makePrimitiveDescriptor(&desc, hint: forward.descriptor, name: name)
            }
            let dx = try Tensor.uninitialized(input.shape)
            try backward.execute([(DNNL_ARG_DIFF_DST, outputGradient),
                                  (DNNL_ARG_WEIGHTS, kernelWeight),
                                  (DNNL_ARG_DIFF_SRC, dx.storage)])
            inputGradient = dx
        }
        guard weightNeedsGradient else { return [inputGradient, nil, nil] }
        let backward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "ip_bwd_w", values: keyValues)) {
            var desc = dnnl_inner_product_desc_t()
            var src = try memoryDescriptor(input.shape, .plain, operandType), wei = try memoryDescriptor(weight.shape, .plain)
            var dst = try memoryDescriptor(outputShape, .plain, operandType)
            var biasMD = bias == nil ? dnnl_memory_desc_t() : try memoryDescriptor([outputs], .plain)
            try check(dnnl_inner_product_backward_weights_desc_init(&desc, &src, &wei, &biasMD, &dst),
                      "dnnl_inner_product_backward_weights_desc_init(\(name))")
            return try makePrimitiveDescriptor(&desc, hint: forward.descriptor, name: name)
        }
        let dw = try Tensor.uninitialized(weight.shape)
        let db = bias == nil ? nil : try Tensor.uninitialized([outputs])
        var buffers: [(Int32, Storage)] = [
            (DNNL_ARG_SRC, source),
            (DNNL_ARG_DIFF_DST, outputGradient),
            (DNNL_ARG_DIFF_WEIGHTS, dw.storage),
        ]
        if let db { buffers.append((DNNL_ARG_DIFF_BIAS, db.storage)) }
        try backward.execute(buffers)
        return [inputGradient, dw, db]
    }
}

/// int8 inference inner product (see `ActivationQuantizer`): input (N, In) quantized per tensor to u8 or s8 with `scale`,
/// weight (Out, In) per output row to s8; output (N, Out) f32 = Σ x_q·w_q · scale·s_o + bias (see `kernelBias`).
private func quantizedLinear(_ input: Tensor, weight: Tensor, bias: Tensor?, quantizer: ActivationQuantizer, unsigned: Bool,
                             scale: Float, name: String) throws -> Tensor {
    let (n, inputs, outputs) = (input.shape[0], weight.shape[1], weight.shape[0])
    let (weightValues, weightScales) = try quantizer.quantizedWeight(weight)
    let outputScales = weightScales.map { $0 * scale }
    let sourceType = unsigned ? dnnl_u8 : dnnl_s8
    let keyValues = [n, inputs, outputs, bias == nil ? 0 : 1, Int(sourceType.rawValue), scalesKey(outputScales)]
    let forward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "ip_q8", values: keyValues)) {
        var desc = dnnl_inner_product_desc_t()
        var src = try memoryDescriptor(input.shape, .plain, sourceType), wei = try anyDescriptor(weight.shape, dnnl_s8)
        var dst = try memoryDescriptor([n, outputs], .plain)
        var biasMD = bias == nil ? dnnl_memory_desc_t() : try memoryDescriptor([outputs], .plain)
        try check(dnnl_inner_product_forward_desc_init(&desc, dnnl_forward_inference, &src, &wei, &biasMD, &dst),
                  "dnnl_inner_product_forward_desc_init(\(name), int8)")
        return try makePrimitiveDescriptor(&desc, outputScales: outputScales, name: name)
    }
    let source = try input.quantized(in: .plain, sourceType, scale: scale)
    let kernelWeight = try quantizer.kernelWeight(for: PrimitiveKey(kind: "ip_q8_w", values: keyValues)) {
        try Tensor.reorderRaw(weightValues, from: try memoryDescriptor(weight.shape, .plain, dnnl_s8),
                              to: forward.descriptor(for: DNNL_ARG_WEIGHTS), key: PrimitiveKey(kind: "ip_q8_w", values: keyValues))
    }
    let result = try Tensor.uninitialized([n, outputs])
    var buffers: [(Int32, Storage)] = [(DNNL_ARG_SRC, source), (DNNL_ARG_WEIGHTS, kernelWeight), (DNNL_ARG_DST, result.storage)]
    if let bias { buffers.append((DNNL_ARG_BIAS, try kernelBias(bias, dividedBy: outputScales))) }
    try forward.execute(buffers)
    OperationCounter.add(n * inputs * outputs)
    return result
}
