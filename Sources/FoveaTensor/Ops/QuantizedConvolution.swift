import Foundation
import CDNNL

/// int8 inference convolution (see `ActivationQuantizer`): input (N,C,H,W) in any layout, quantized per tensor to u8
/// or s8 with `scale` (or, when an int8 convolution wrote it in 8 bits, read as it is on its own scale); weight
/// (K,C/groups,R,S) f32, quantized per output channel to s8; bias (K) f32 → output (N,K,P,Q) =
/// activation(Σ x_q·w_q · scale·s_k + bias + residual).
///
/// The output is 8-bit (`Storage(capacity:int8Of:scale:unsigned:)`) on the quantizer's calibrated output scale s_o
/// when there is one, `narrowOutput` holds, the activation commutes with scaling (ReLU, leaky ReLU, ReLU6 and other
/// clips, linear) and a residual, if any, is 8-bit too; float32 otherwise. For an 8-bit output the kernel's output
/// scales are scale·s_k / s_o, the residual's integers are added with weight s_r / s_o and the activation runs on the
/// output's scale (clip bounds divided by s_o), so that oneDNN rounds (nearest even) and saturates the result once.
///
/// oneDNN 2.x adds the bias to the int32 sums before its output scales, so the kernel is given bias / (scale·s_k).
func quantizedConvolution(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvolutionGeometry, outputShape: [Int],
                          residual: Tensor?, activation: Activation?, quantizer: ActivationQuantizer, unsigned calibratedUnsigned: Bool,
                          scale calibratedScale: Float, narrowOutput: Bool, name: String) throws -> Tensor {
    let k = weight.shape[0]
    let (weightValues, weightScales) = try quantizer.quantizedWeight(weight)
    let narrowInput = input.storage.int8
    let (unsigned, scale) = narrowInput.map { ($0.unsigned, $0.scale) } ?? (calibratedUnsigned, calibratedScale)
    let sourceType = unsigned ? dnnl_u8 : dnnl_s8
    let sumScales = weightScales.map { $0 * scale }
    let narrowResidual = residual?.storage.int8
    var output: (unsigned: Bool, scale: Float)?
    var kernelActivation = activation
    if narrowOutput && !int8FloatOutputs, let step = quantizer.outputQuantization, residual == nil || narrowResidual != nil {
        if let activation {
            if let scaled = activation.onScale(step.scale) { (output, kernelActivation) = (step, scaled) }
        } else {
            output = step
        }
    }
    let destinationType = output.map { $0.unsigned ? dnnl_u8 : dnnl_s8 } ?? dnnl_f32
    let outputScales = output.map { step in sumScales.map { $0 / step.scale } } ?? sumScales
    var epilogue = Epilogue(sum: residual != nil, activation: kernelActivation)
    if let output, let narrowResidual {
        epilogue.sumScale = narrowResidual.scale / output.scale
        if narrowResidual.unsigned != output.unsigned { epilogue.sumType = (narrowResidual.unsigned ? dnnl_u8 : dnnl_s8).rawValue }
    }
    let keyValues = input.shape + weight.shape + g.stride + g.padding + g.dilation + [g.groups, bias == nil ? 0 : 1]
        + epilogue.keyValues + [Int(sourceType.rawValue), Int(destinationType.rawValue), scalesKey(outputScales)]
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
            var dst = try activationLayout.map { try memoryDescriptor(outputShape, $0, destinationType) }
                ?? anyDescriptor(outputShape, destinationType)
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
    let source: Storage
    if let narrowInput {
        source = try rearranged(narrowInput.values, outputOf: input, type: sourceType, to: sourceLayout, kind: "operand8")
    } else {
        source = try input.quantized(in: sourceLayout, sourceType, scale: scale)
    }
    let kernelWeight = try quantizer.kernelWeight(for: PrimitiveKey(kind: "conv_q8_w", values: keyValues)) {
        var plain = try memoryDescriptor(weightShape5, .plain, dnnl_s8)
        if g.groups > 1 {
            try check(dnnl_memory_desc_init_by_tag(&plain, 5, weightShape5.map { Int64($0) }, dnnl_s8, dnnl_goihw), "goihw s8")
        }
        return try Tensor.reorderRaw(weightValues, from: plain, to: forward.descriptor(for: DNNL_ARG_WEIGHTS),
                                     key: PrimitiveKey(kind: "conv_q8_w", values: keyValues))
    }
    let destinationLayout = try layoutOf(forward, DNNL_ARG_DST, outputShape, name)
    let destination: Storage
    let result: Tensor
    if let output {
        let bytes = byteSize(forward.descriptor(for: DNNL_ARG_DST))
        destination = Storage(capacity: max((bytes + 3) / 4, 1))
        if let residual, let narrowResidual {
            // The sum post-op adds what the destination holds: the residual's integers, in the destination's layout.
            let type = narrowResidual.unsigned ? dnnl_u8 : dnnl_s8
            let arranged = try rearranged(narrowResidual.values, outputOf: residual, type: type, to: destinationLayout, kind: "residual8")
            UnsafeMutableRawPointer(destination.pointer).copyMemory(from: arranged.pointer, byteCount: bytes)
        }
        let capacity = byteSize(try memoryDescriptor(outputShape, destinationLayout)) / 4
        result = Tensor(shape: outputShape, layout: destinationLayout,
                        storage: Storage(capacity: capacity, int8Of: destination, scale: output.scale, unsigned: output.unsigned))
    } else {
        result = try Tensor.uninitialized(outputShape, layout: destinationLayout)
        destination = result.storage
        if let residual {
            // The sum post-op adds what the destination holds: start from a copy of the residual.
            let arranged = try residual.detached.reordered(to: destinationLayout)
            destination.pointer.update(from: arranged.storage.pointer, count: min(destination.capacity, arranged.storage.capacity))
        }
    }
    var buffers: [(Int32, Storage)] = [(DNNL_ARG_SRC, source), (DNNL_ARG_WEIGHTS, kernelWeight), (DNNL_ARG_DST, destination)]
    if let bias { buffers.append((DNNL_ARG_BIAS, try kernelBias(bias, dividedBy: sumScales))) }
    try forward.execute(buffers)
    OperationCounter.add(outputShape.reduce(1, *) * weight.shape[1...].reduce(1, *))
    return result
}

/// Whether int8 convolutions keep float32 outputs (`FOVEA_INT8_FLOAT_OUTPUTS` set: for measurements).
private let int8FloatOutputs = ProcessInfo.processInfo.environment["FOVEA_INT8_FLOAT_OUTPUTS"] != nil

/// The narrow values (bf16 or 8-bit, of `type`) a convolution wrote for `tensor`, in `layout` (themselves when already
/// there).
func rearranged(_ values: Storage, outputOf tensor: Tensor, type: dnnl_data_type_t, to layout: Layout,
                kind: String) throws -> Storage {
    if layout == tensor.layout { return values }
    return try Tensor.reorderRaw(values, from: try memoryDescriptor(tensor.shape, tensor.layout, type),
                                 to: try memoryDescriptor(tensor.shape, layout, type),
                                 key: PrimitiveKey(kind: kind, values: tensor.shape + [tensor.layout.rawValue, layout.rawValue,
                                                                                        Int(type.rawValue)]))
}

extension Activation {
    /// The same function on values divided by `step` (f(x / step) = f(x) / step), for the activations that have one:
    /// what an int8 kernel applies to outputs already on their 8-bit scale. Nil for the others (SiLU, sigmoid, …).
    func onScale(_ step: Float) -> Activation? {
        switch self {
        case .relu, .leakyRelu: return self
        case .relu6: return .clip(lower: 0, upper: 6 / step)
        case let .clip(lower, upper): return .clip(lower: lower / step, upper: upper / step)
        case let .linear(scale, shift): return .linear(scale: scale, shift: shift / step)
        case .silu, .sigmoid, .tanh, .hardSwish: return nil
        }
    }
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
