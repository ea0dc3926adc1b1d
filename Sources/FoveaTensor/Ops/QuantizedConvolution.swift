import CDNNL

/// int8 inference convolution (see `ActivationQuantizer`): input (N,C,H,W) f32 in any layout, quantized per tensor to
/// u8 or s8 with `scale`; weight (K,C/groups,R,S) f32, quantized per output channel to s8; bias (K) f32 → output
/// (N,K,P,Q) f32 = activation(Σ x_q·w_q · scale·s_k + bias + residual).
///
/// oneDNN 2.x adds the bias to the int32 sums before its output scales, so the kernel is given bias / (scale·s_k).
func quantizedConvolution(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvolutionGeometry, outputShape: [Int],
                          residual: Tensor?, activation: Activation?, quantizer: ActivationQuantizer, unsigned: Bool,
                          scale: Float, name: String) throws -> Tensor {
    let k = weight.shape[0]
    let (weightValues, weightScales) = try quantizer.quantizedWeight(weight)
    let outputScales = weightScales.map { $0 * scale }
    let sourceType = unsigned ? dnnl_u8 : dnnl_s8
    let epilogue = Epilogue(sum: residual != nil, activation: activation)
    let keyValues = input.shape + weight.shape + g.stride + g.padding + g.dilation + [g.groups, bias == nil ? 0 : 1]
        + epilogue.keyValues + [Int(sourceType.rawValue), scalesKey(outputScales)]
    let weightShape5 = g.groups == 1 ? weight.shape : [g.groups, k / g.groups] + weight.shape.dropFirst()
    let strides = g.stride.map(Int64.init), padding = g.padding.map(Int64.init)
    let dilation = g.dilation.map { Int64($0 - 1) }
    let forward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "conv_q8", values: keyValues)) {
        // oneDNN's choice of activation layouts first, then the layouts Fovea carries, as for f32 (see conv2d).
        var fallback: dnnl_primitive_desc_t?
        defer { if let fallback { dnnl_primitive_desc_destroy(fallback) } }
        for activationLayout in [Layout?.none, .nhwc, .nChw16c, .nChw8c, .plain] {
            var desc = dnnl_convolution_desc_t()
            var src = try activationLayout.map { try memoryDescriptor(input.shape, $0, sourceType) } ?? anyDescriptor(input.shape, sourceType)
            var dst = try activationLayout.map { try memoryDescriptor(outputShape, $0) } ?? anyDescriptor(outputShape)
            var wei = try anyDescriptor(weightShape5, dnnl_s8)
            var biasMD = bias == nil ? dnnl_memory_desc_t() : try memoryDescriptor([k], .plain)
            try check(dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct, &src, &wei,
                                                                 &biasMD, &dst, strides, dilation, padding, padding),
                      "dnnl_dilated_convolution_forward_desc_init(\(name), int8)")
            guard let pd = try? makePrimitiveDescriptor(&desc, epilogue: epilogue, outputScales: outputScales, name: name) else { continue }
            if knownLayouts(pd, [(dnnl_query_src_md, input.shape), (dnnl_query_dst_md, outputShape)]) {
                if !isReferenceImplementation(pd) { return pd }
                if fallback == nil { fallback = pd; continue }
            }
            dnnl_primitive_desc_destroy(pd)
        }
        if let chosen = fallback {
            fallback = nil
            return chosen
        }
        throw TensorError.invalidArgument(operation: name, message: "no int8 convolution implementation for \(input.shape) in a known layout")
    }
    let sourceLayout = try layoutOf(forward, DNNL_ARG_SRC, input.shape, name)
    let source = try input.quantized(in: sourceLayout, sourceType, scale: scale)
    let kernelWeight = try quantizer.kernelWeight(for: PrimitiveKey(kind: "conv_q8_w", values: keyValues)) {
        var plain = try memoryDescriptor(weightShape5, .plain, dnnl_s8)
        if g.groups > 1 {
            try check(dnnl_memory_desc_init_by_tag(&plain, 5, weightShape5.map { Int64($0) }, dnnl_s8, dnnl_goihw), "goihw s8")
        }
        return try Tensor.reorderRaw(weightValues, from: plain, to: forward.descriptor(for: DNNL_ARG_WEIGHTS),
                                     key: PrimitiveKey(kind: "conv_q8_w", values: keyValues))
    }
    let destinationLayout = try layoutOf(forward, DNNL_ARG_DST, outputShape, name)
    let result = try Tensor.uninitialized(outputShape, layout: destinationLayout)
    if let residual {
        // The sum post-op adds what the destination holds: start from a copy of the residual.
        let arranged = try residual.detached.reordered(to: destinationLayout)
        result.storage.pointer.update(from: arranged.storage.pointer, count: min(result.storage.capacity, arranged.storage.capacity))
    }
    var buffers: [(Int32, Storage)] = [(DNNL_ARG_SRC, source), (DNNL_ARG_WEIGHTS, kernelWeight), (DNNL_ARG_DST, result.storage)]
    if let bias { buffers.append((DNNL_ARG_BIAS, try kernelBias(bias, dividedBy: outputScales))) }
    try forward.execute(buffers)
    OperationCounter.add(outputShape.reduce(1, *) * weight.shape[1...].reduce(1, *))
    return result
}

/// A cache-key value for a primitive made with these output scales (they are part of the primitive).
func scalesKey(_ scales: [Float]) -> Int {
    var hasher = Hasher()
    for value in scales { hasher.combine(value.bitPattern) }
    return hasher.finalize()
}

/// The bias an int8 kernel is given: bias / output scale per channel, since oneDNN 2.x adds it to the int32 sums before
/// scaling them.
func kernelBias(_ bias: Tensor, dividedBy scales: [Float]) throws -> Storage {
    let scaled = Tensor.zeros(bias.shape)
    try bias.withPlainElements { values in
        for channel in 0..<values.count { scaled.storage.pointer[channel] = values[channel] / scales[channel] }
    }
    return scaled.storage
}

extension Tensor {
    /// The elements quantized with `scale` (round(x / scale), nearest even, saturated) into `type` (u8 or s8) in
    /// `layout`, as an int8 kernel's input.
    func quantized(in layout: Layout, _ type: dnnl_data_type_t, scale: Float) throws -> Storage {
        try Tensor.reorderRaw(storage, from: try memoryDescriptor(shape, self.layout), to: try memoryDescriptor(shape, layout, type),
                              scale: 1 / scale,
                              key: PrimitiveKey(kind: "quantize", values: shape + [self.layout.rawValue, layout.rawValue,
                                                                                    Int(type.rawValue), Int((1 / scale).bitPattern)]))
    }
}
