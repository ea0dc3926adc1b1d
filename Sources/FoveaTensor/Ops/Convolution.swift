import Foundation
import CDNNL
import CFoveaKernels

/// Geometry of a 2-D convolution: stride, zero padding, dilation (each [height, width]) and groups.
public struct ConvolutionGeometry: Hashable, Sendable {
    public var stride: [Int]
    public var padding: [Int]
    public var dilation: [Int]
    public var groups: Int

    /// Creates a geometry; every pair is [height, width].
    public init(stride: [Int] = [1, 1], padding: [Int] = [0, 0], dilation: [Int] = [1, 1], groups: Int = 1) {
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
    }

    /// Output spatial size for an input of `height`×`width` and a `kernel` of [R, S].
    public func outputSize(height: Int, width: Int, kernel: [Int]) -> [Int] {
        let p = (height + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) / stride[0] + 1
        let q = (width + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) / stride[1] + 1
        return [p, q]
    }
}

/// 2-D convolution (cross-correlation, as in PyTorch), differentiable in input, weight and bias.
///
/// input (N,C,H,W), weight (K,C/groups,R,S), bias (K) → output (N,K,P,Q). The input may be in any
/// layout; the output is in the layout oneDNN picks for speed (blocked for most shapes).
///
/// With `residual` (N,K,P,Q) and/or `activation`, the result is `activation(conv + bias + residual)`. Outside
/// training (nothing recorded) this is one oneDNN convolution with the addition and the activation fused as
/// post-ops — except SiLU, which Fovea's own kernel applies in place right after the convolution (oneDNN 2.6's SiLU
/// post-op costs more than the convolution on EfficientNet's shapes); when the tape records, the same value is computed
/// by separate differentiable operations.
///
/// 3×3 stride-1 ungrouped convolutions with at least 32 input and output channels use oneDNN's Winograd kernel
/// (F(4×4, 3×3): fewer multiplications, plus a weight transform) in training, forward and backward, and in inference
/// when `prepared` is given, so that the transform is paid once.
///
/// With `prepared` (inference only: ignored when the tape records), the weights reordered into the kernel's format are
/// kept there and reused by later calls. The caller owns `prepared` and must `reset` it whenever `weight` changes.
///
/// With `quantizer` (inference only), the convolution records its input's and its output's ranges while
/// `ActivationQuantizer.calibrate` runs, and runs oneDNN's int8 kernel under `Precision.run(.int8)` once calibrated
/// (its output then in 8 bits where it can be: see `ActivationQuantizer`).
public func conv2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                   geometry: ConvolutionGeometry = ConvolutionGeometry(), residual: Tensor? = nil, activation: Activation? = nil,
                   prepared: PreparedWeights? = nil, quantizer: ActivationQuantizer? = nil, name: String = "conv2d") throws -> Tensor {
    let result = try convolution2D(input, weight: weight, bias: bias, geometry: geometry, residual: residual,
                                   activation: activation, prepared: prepared, quantizer: quantizer, name: name)
    OperationTrace.record(.convolution(geometry, bias: bias != nil, residual: residual != nil, activation: activation),
                          [input, weight, bias, residual], result)
    return result
}

private func convolution2D(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvolutionGeometry,
                           residual: Tensor?, activation: Activation?, prepared: PreparedWeights?, quantizer: ActivationQuantizer?,
                           name: String, narrowOutput: Bool = true) throws -> Tensor {
    if residual != nil || activation != nil {
        let recorded = Autodiff.recording && (input.node != nil || weight.node != nil || bias?.node != nil || residual?.node != nil)
        if recorded {
            var y = try conv2d(input, weight: weight, bias: bias, geometry: geometry, name: name)
            if let residual { y = try y + residual }
            return try activation.map { try activate(y, $0) } ?? y
        }
    }
    if activation == .silu && !ownSiLUOff {
        // Not recorded (that returned above): SiLU by Fovea's kernel right after the convolution, not as a post-op.
        let y = try convolution2D(input, weight: weight, bias: bias, geometry: geometry, residual: residual, activation: nil,
                                  prepared: prepared, quantizer: quantizer, name: name, narrowOutput: false)
        OperationTrace.record(.convolution(geometry, bias: bias != nil, residual: residual != nil, activation: nil),
                              [input, weight, bias, residual], y)
        runOwnKernel("silu_i \(y.shape + [y.layout.rawValue])") { fovea_silu_inplace(y.storage.pointer, y.storage.capacity) }
        return y
    }
    let g = geometry
    guard g.stride.count == 2, g.padding.count == 2, g.dilation.count == 2, g.stride.allSatisfy({ $0 > 0 }),
          g.dilation.allSatisfy({ $0 > 0 }), g.padding.allSatisfy({ $0 >= 0 }), g.groups > 0 else {
        throw TensorError.invalidArgument(operation: name, message: "invalid geometry \(g)")
    }
    guard weight.shape.count == 4, weight.shape[0] % g.groups == 0 else {
        throw TensorError.shapeMismatch(operation: name, expected: "weight (K, C/\(g.groups), R, S) with K divisible by groups",
                                        actual: weight.shape)
    }
    let k = weight.shape[0], channels = weight.shape[1] * g.groups
    guard input.shape.count == 4, input.shape[1] == channels else {
        throw TensorError.shapeMismatch(operation: name, expected: "(N, \(channels), H, W)", actual: input.shape)
    }
    if let bias, bias.shape != [k] {
        throw TensorError.shapeMismatch(operation: name + " bias", expected: "[\(k)]", actual: bias.shape)
    }
    let (n, h, w) = (input.shape[0], input.shape[2], input.shape[3])
    let out = g.outputSize(height: h, width: w, kernel: Array(weight.shape[2...]))
    guard out[0] > 0, out[1] > 0 else {
        throw TensorError.shapeMismatch(operation: name, expected: "spatial size at least the dilated kernel",
                                        actual: input.shape)
    }
    let outputShape = [n, k, out[0], out[1]]
    if let residual, residual.shape != outputShape {
        throw TensorError.shapeMismatch(operation: name + " residual", expected: "\(outputShape)", actual: residual.shape)
    }
    let training = Autodiff.recording && (input.node != nil || weight.node != nil || bias?.node != nil)
    switch quantizer?.action(training: training) {
    case .observe?:
        // Calibration: the input's range, and the output's where an int8 kernel could write it in 8 bits.
        try quantizer?.observe(input)
        let y = try convolution2D(input, weight: weight, bias: bias, geometry: geometry, residual: residual, activation: activation,
                                  prepared: prepared, quantizer: nil, name: name, narrowOutput: narrowOutput)
        if narrowOutput { try quantizer?.observeOutput(y) }
        return y
    case let .quantize(unsigned, scale)?:
        return try quantizedConvolution(input, weight: weight, bias: bias, geometry: g, outputShape: outputShape, residual: residual,
                                        activation: activation, quantizer: quantizer!, unsigned: unsigned, scale: scale,
                                        narrowOutput: narrowOutput, name: name)
    case .none?, nil: break
    }
    let epilogue = Epilogue(sum: residual != nil, activation: activation)
    let reusable = training ? nil : prepared
    // Input and weights are multiplied in this type (bf16 under `Precision.run(.bf16)`); output, bias and gradients of
    // weights and input stay f32. oneDNN's Winograd kernels are f32 only. Depthwise convolutions stay f32: they are
    // memory-bound, no matrix unit speeds them up, and converting their input and gradients costs more than it saves.
    // (EfficientNet-B0 bf16 training 18 against 12 img/s, MobileNetV2 inference 220 against 182, Xeon with AMX.)
    //
    // In inference under bf16 the output is bf16 too, as with PyTorch's autocast (`Storage(capacity:bfloat16Of:)`): the
    // next convolution reads it as it is, anything else widens it to f32 on first use. A depthwise convolution whose
    // input is such an output reads it in bf16 as well. (Not before Fovea's own SiLU kernel, which wants f32.)
    let depthwise = g.groups > 1 && g.groups == channels && weight.shape[1] == 1
    let narrowInput = training ? nil : input.storage.bfloat16
    let operandType = depthwise && !bf16DepthwiseConvolutions && narrowInput == nil ? dnnl_f32 : Precision.currentOperandType
    let outputType = !training && narrowOutput && operandType == dnnl_bf16 && !narrowOutputsOff ? dnnl_bf16 : dnnl_f32
    let winograd = operandType == dnnl_f32 && (training || reusable != nil)
        && winogradCandidate(input.shape, weight.shape, geometry: g)
    let keyValues = input.shape + weight.shape + g.stride + g.padding + g.dilation + [g.groups, bias == nil ? 0 : 1]
        + epilogue.keyValues + [winograd ? 1 : 0, Int(operandType.rawValue), Int(outputType.rawValue)]
    let weightShape5 = g.groups == 1 ? weight.shape : [g.groups, k / g.groups] + weight.shape.dropFirst()
    let strides = g.stride.map(Int64.init), padding = g.padding.map(Int64.init)
    let dilation = g.dilation.map { Int64($0 - 1) }
    let algorithm = convolutionAlgorithm()

    let forward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: training ? "conv_fwd_t" : "conv_fwd_i",
                                                                   values: keyValues)) {
        // In inference an nChw16c input's own layout first (`keepsBlockedLayout`). Then let oneDNN choose the activation
        // layouts; if it picks one Fovea does not carry between layers
        // (e.g. 4-channel blocks for some grouped convolutions), ask for the layouts Fovea knows in turn. A reference
        // (unoptimised) implementation is kept only if no layout has a better one: grouped convolutions with 4 channels
        // per group (ResNeXt) get oneDNN's reference kernel in nChw8c but a fast one in nhwc.
        var fallback: dnnl_primitive_desc_t?
        defer { if let fallback { dnnl_primitive_desc_destroy(fallback) } }
        // Winograd first when allowed; it has no kernel for every shape and post-op, so direct follows.
        let attempts = (winograd ? [dnnl_convolution_winograd] : []).flatMap { kind in
            [Layout?.none, .nChw16c].map { (kind, $0) }
        } + (keepsBlockedLayout && !training && input.layout == .nChw16c ? [Layout?.some(.nChw16c)] : [])
            .map { (algorithm, $0) }
            + [Layout?.none, .nChw8c, .nChw16c, .nhwc, .plain].map { (algorithm, $0) }
        for (algorithm, activationLayout) in attempts {
            var desc = dnnl_convolution_desc_t()
            var src = try activationLayout.map { try memoryDescriptor(input.shape, $0, operandType) }
                ?? anyDescriptor(input.shape, operandType)
            var dst = try activationLayout.map { try memoryDescriptor(outputShape, $0, outputType) }
                ?? anyDescriptor(outputShape, outputType)
            var wei = try anyDescriptor(weightShape5, operandType)
            var biasMD = bias == nil ? dnnl_memory_desc_t() : try memoryDescriptor([k], .plain)
            try check(dnnl_dilated_convolution_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                                                 algorithm, &src, &wei, &biasMD, &dst,
                                                                 strides, dilation, padding, padding),
                      "dnnl_dilated_convolution_forward_desc_init(\(name))")
            guard let pd = try? makePrimitiveDescriptor(&desc, epilogue: epilogue, name: name) else { continue }
            let chosen = [(DNNL_QUERY_SRC, input.shape), (DNNL_QUERY_DST, outputShape)].allSatisfy { query, shape in
                dnnl_primitive_desc_query_md(pd, query.0, query.1).map { Layout.matching($0.pointee, shape: shape) != nil } ?? false
            }
            if chosen && !isReferenceImplementation(pd) { return pd }
            if chosen && fallback == nil { fallback = pd } else { dnnl_primitive_desc_destroy(pd) }
        }
        if let chosen = fallback {
            fallback = nil
            return chosen
        }
        throw TensorError.invalidArgument(operation: name, message: "no convolution implementation for \(input.shape) in a known layout")
    }
    let sourceLayout = try layoutOf(forward, DNNL_ARG_SRC, input.shape, name)
    let source: Storage
    if let narrowInput, operandType == dnnl_bf16 {
        source = try rearranged(narrowInput, outputOf: input, type: dnnl_bf16, to: sourceLayout, kind: "operand16")
    } else {
        source = try input.detached.operand(in: sourceLayout, operandType)
    }
    let plainWeight = try weight.detached.reordered(to: .plain)
    let weightMD = forward.descriptor(for: DNNL_ARG_WEIGHTS)
    let plainWeightMD = try plainWeightDescriptor(weight.shape, groups: g.groups)
    let forwardKey = PrimitiveKey(kind: training ? "conv_fwd_t" : "conv_fwd_i", values: keyValues)
    let kernelWeight: Storage
    if let cached = reusable?.kernelWeight(for: forwardKey) {
        kernelWeight = cached
    } else {
        kernelWeight = descriptorsEqual(weightMD, plainWeightMD) ? plainWeight.storage
            : try Tensor.reorderRaw(plainWeight.storage, from: plainWeightMD, to: weightMD,
                                    key: PrimitiveKey(kind: training ? "conv_w_fwd_t" : "conv_w_fwd_i", values: keyValues))
        reusable?.store(kernelWeight, for: forwardKey)
    }
    let destinationLayout = try layoutOf(forward, DNNL_ARG_DST, outputShape, name)
    if outputType == dnnl_bf16 {
        let destinationMD = forward.descriptor(for: DNNL_ARG_DST)
        let narrow = Storage(capacity: max((byteSize(destinationMD) + 3) / 4, 1))
        if let residual {
            // The sum post-op adds what the destination holds: the residual, in bf16, in the destination's layout.
            if let residualNarrow = residual.storage.bfloat16, residual.layout == destinationLayout {
                UnsafeMutableRawPointer(narrow.pointer).copyMemory(from: residualNarrow.pointer, byteCount: byteSize(destinationMD))
            } else {
                try reorder(residual.storage, from: try memoryDescriptor(outputShape, residual.layout), to: narrow, destinationMD,
                            key: PrimitiveKey(kind: "residual16", values: outputShape + [residual.layout.rawValue,
                                                                                         destinationLayout.rawValue]))
            }
        }
        var buffers: [(Int32, Storage)] = [(DNNL_ARG_SRC, source), (DNNL_ARG_WEIGHTS, kernelWeight), (DNNL_ARG_DST, narrow)]
        if let bias { buffers.append((DNNL_ARG_BIAS, try bias.detached.reordered(to: .plain).storage)) }
        try forward.execute(buffers)
        OperationCounter.add(outputShape.reduce(1, *) * weight.shape[1...].reduce(1, *))
        let capacity = byteSize(try memoryDescriptor(outputShape, destinationLayout)) / 4
        return Tensor(shape: outputShape, layout: destinationLayout, storage: Storage(capacity: capacity, bfloat16Of: narrow))
    }
    let result: Tensor
    if let residual {
        // The sum post-op adds what the destination holds: start from a private copy of the residual.
        let arranged = try residual.detached.reordered(to: destinationLayout)
        result = try Tensor.uninitialized(outputShape, layout: destinationLayout)
        result.storage.pointer.update(from: arranged.storage.pointer, count: min(result.storage.capacity, arranged.storage.capacity))
    } else {
        result = try Tensor.uninitialized(outputShape, layout: destinationLayout)
    }
    var buffers: [(Int32, Storage)] = [
        (DNNL_ARG_SRC, source),
        (DNNL_ARG_WEIGHTS, kernelWeight),
        (DNNL_ARG_DST, result.storage),
    ]
    if let bias { buffers.append((DNNL_ARG_BIAS, try bias.detached.reordered(to: .plain).storage)) }
    try forward.execute(buffers)
    OperationCounter.add(outputShape.reduce(1, *) * weight.shape[1...].reduce(1, *))
    guard training else { return result }

    let inputNeedsGradient = input.node != nil, weightNeedsGradient = weight.node != nil || bias?.node != nil
    // The backward primitives use the forward pass's activation layouts, so gradients stay in known layouts, and its
    // algorithm: Winograd backward passes after a Winograd forward pass, the other algorithm where they have no kernel.
    let backwardAlgorithms = winograd && (implementationName(forward.descriptor) ?? "").contains("wino")
        ? [dnnl_convolution_winograd, algorithm] : [algorithm]
    let outputLayout = result.layout
    return result.recorded(from: [input, weight] + (bias.map { [$0] } ?? [])) { gradient in
        var inputGradient: Tensor?
        // The output gradient as the backward kernels' operand; in bf16, converted once when both kernels want it in
        // the same layout (ResNet-18 training: one reorder of every output gradient fewer).
        var converted: (layout: Layout, storage: Storage)?
        func gradientOperand(_ layout: Layout) throws -> Storage {
            if let converted, converted.layout == layout { return converted.storage }
            let storage = try gradient.operand(in: layout, operandType)
            converted = (layout, storage)
            return storage
        }
        if inputNeedsGradient {
            let backward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "conv_bwd_d", values: keyValues)) {
                try backwardDescriptor(input.shape, outputShape, sourceLayout, outputLayout, types: (dnnl_f32, operandType),
                                       checking: (dnnl_query_diff_src_md, dnnl_query_diff_dst_md)) { src, dst in
                    try firstAvailable(backwardAlgorithms) { algorithm in
                        var desc = dnnl_convolution_desc_t()
                        var wei = try anyDescriptor(weightShape5, operandType)
                        try check(dnnl_dilated_convolution_backward_data_desc_init(&desc, algorithm, &src, &wei, &dst,
                                                                                   strides, dilation, padding, padding),
                                  "dnnl_dilated_convolution_backward_data_desc_init(\(name))")
                        return try makePrimitiveDescriptor(&desc, hint: forward.descriptor, name: name)
                    }
                }
            }
            let outputGradient = try gradientOperand(try layoutOf(backward, DNNL_ARG_DIFF_DST, outputShape, name))
            let backwardWeightMD = backward.descriptor(for: DNNL_ARG_WEIGHTS)
            let backwardWeight = descriptorsEqual(backwardWeightMD, weightMD) ? kernelWeight
                : try Tensor.reorderRaw(plainWeight.storage, from: plainWeightMD, to: backwardWeightMD,
                                        key: PrimitiveKey(kind: "conv_w_bwd", values: keyValues))
            let dx = try Tensor.uninitialized(input.shape, layout: try layoutOf(backward, DNNL_ARG_DIFF_SRC, input.shape, name))
            try backward.execute([
                (DNNL_ARG_DIFF_DST, outputGradient),
                (DNNL_ARG_WEIGHTS, backwardWeight),
                (DNNL_ARG_DIFF_SRC, dx.storage),
            ])
            inputGradient = dx
        }
        guard weightNeedsGradient else { return [inputGradient, nil, nil] }
        let backward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "conv_bwd_w", values: keyValues)) {
            try backwardDescriptor(input.shape, outputShape, sourceLayout, outputLayout, types: (operandType, operandType),
                                   checking: (dnnl_query_src_md, dnnl_query_diff_dst_md)) { src, dst in
                try firstAvailable(backwardAlgorithms) { algorithm in
                    var desc = dnnl_convolution_desc_t()
                    var wei = try anyDescriptor(weightShape5)
                    var biasMD = bias == nil ? dnnl_memory_desc_t() : try memoryDescriptor([k], .plain)
                    try check(dnnl_dilated_convolution_backward_weights_desc_init(&desc, algorithm, &src, &wei, &biasMD,
                                                                                  &dst, strides, dilation, padding, padding),
                              "dnnl_dilated_convolution_backward_weights_desc_init(\(name))")
                    return try makePrimitiveDescriptor(&desc, hint: forward.descriptor, name: name)
                }
            }
        }
        let backwardSourceLayout = try layoutOf(backward, DNNL_ARG_SRC, input.shape, name)
        // The forward pass's operand (f32 or bf16), rearranged if the backward kernel wants another layout.
        let backwardSource = backwardSourceLayout == sourceLayout ? source
            : try Tensor.reorderRaw(source, from: try memoryDescriptor(input.shape, sourceLayout, operandType),
                                    to: try memoryDescriptor(input.shape, backwardSourceLayout, operandType),
                                    key: PrimitiveKey(kind: "conv_src_bwd", values: keyValues + [backwardSourceLayout.rawValue]))
        let outputGradient = try gradientOperand(try layoutOf(backward, DNNL_ARG_DIFF_DST, outputShape, name))
        let diffWeightMD = backward.descriptor(for: DNNL_ARG_DIFF_WEIGHTS)
        let directToPlain = descriptorsEqual(diffWeightMD, plainWeightMD)
        let dw = try Tensor.uninitialized(weight.shape)
        let rawDiffWeight = directToPlain ? dw.storage : Storage(capacity: byteSize(diffWeightMD) / 4)
        let db = bias == nil ? nil : try Tensor.uninitialized([k])
        var buffers: [(Int32, Storage)] = [
            (DNNL_ARG_SRC, backwardSource),
            (DNNL_ARG_DIFF_DST, outputGradient),
            (DNNL_ARG_DIFF_WEIGHTS, rawDiffWeight),
        ]
        if let db { buffers.append((DNNL_ARG_DIFF_BIAS, db.storage)) }
        try backward.execute(buffers)
        if !directToPlain {
            try reorder(rawDiffWeight, from: diffWeightMD,
                        to: dw.storage, plainWeightMD,
                        key: PrimitiveKey(kind: "conv_dw_plain", values: keyValues))
        }
        return [inputGradient, dw, db]
    }
}

/// `FOVEA_BF16_DEPTHWISE=1` runs depthwise convolutions in bf16 too under `Precision.bf16` (for measurements).
let bf16DepthwiseConvolutions = ProcessInfo.processInfo.environment["FOVEA_BF16_DEPTHWISE"] != nil

/// `FOVEA_BF16_FLOAT_OUTPUTS=1` keeps inference convolutions' outputs f32 under `Precision.bf16` (for measurements).
let narrowOutputsOff = ProcessInfo.processInfo.environment["FOVEA_BF16_FLOAT_OUTPUTS"] != nil

/// `FOVEA_ONEDNN_SILU=1` keeps SiLU after inference convolutions as oneDNN's post-op (for measurements).
let ownSiLUOff = ProcessInfo.processInfo.environment["FOVEA_ONEDNN_SILU"] != nil

/// Inference convolutions whose input is in nChw16c (AVX-512's blocks) ask for that layout first, before oneDNN's free
/// choice: left free, oneDNN 2.6 picks channels-last for its brgconv kernels on AVX-512, and every such convolution
/// between blocked ones (ResNet's stride-2 and 1×1 downsampling convolutions between Winograd ones) costs two reorders
/// of its input and output (ResNet-18 inference +5 %, median of six paired runs). Not nChw8c: on an AVX-512 CPU that
/// would hold a network to AVX2 kernels. `FOVEA_ANY_LAYOUT=1` leaves the choice to oneDNN.
let keepsBlockedLayout = ProcessInfo.processInfo.environment["FOVEA_ANY_LAYOUT"] == nil

/// The convolution algorithm oneDNN is asked for when Winograd is not (`winogradCandidate`) or has no kernel: direct.
/// (oneDNN's `auto` would only ever choose Winograd, and only for the 3×3 stride-1 shapes that already ask for it.)
/// `FOVEA_CONV_ALGORITHM=direct` or `=auto` forces one choice everywhere, Winograd candidates included (for
/// measurements).
func convolutionAlgorithm() -> dnnl_alg_kind_t {
    forcedConvolutionAlgorithm == "auto" ? dnnl_convolution_auto : dnnl_convolution_direct
}

let forcedConvolutionAlgorithm = ProcessInfo.processInfo.environment["FOVEA_CONV_ALGORITHM"]

/// A backward convolution's primitive descriptor, made by `make` from source and destination descriptors (of element
/// `types`, f32 unless given): oneDNN's free choice of layouts first (its fast kernels may want others than the forward pass's); when that choice is one Fovea does
/// not carry (the two `checking` queries) or runs a generic fallback (`isSlowImplementation`), the forward pass's source
/// layout and the other known layouts in turn; the free choice, or else the forward pass's layouts, when none is faster.
func backwardDescriptor(_ sourceShape: [Int], _ outputShape: [Int], _ sourceLayout: Layout, _ outputLayout: Layout,
                        types: (source: dnnl_data_type_t, output: dnnl_data_type_t) = (dnnl_f32, dnnl_f32),
                        checking queries: (source: dnnl_query_t, output: dnnl_query_t),
                        make: (inout dnnl_memory_desc_t, inout dnnl_memory_desc_t) throws -> dnnl_primitive_desc_t)
    throws -> dnnl_primitive_desc_t {
    var src = try anyDescriptor(sourceShape, types.source), dst = try anyDescriptor(outputShape, types.output)
    let free = try make(&src, &dst)
    let known = knownLayouts(free, [(queries.source, sourceShape), (queries.output, outputShape)])
    if known && !isSlowImplementation(free) { return free }
    // oneDNN's free choice for some shapes is im2col + GEMM or its reference kernel in plain layout (5×5 depthwise
    // backward-weights: ~12× slower than its blocked depthwise kernel): try the blocked layouts before settling.
    for layout in [sourceLayout] + [Layout.nChw16c, .nChw8c, .nhwc].filter({ $0 != sourceLayout }) {
        src = try memoryDescriptor(sourceShape, layout, types.source)
        dst = try memoryDescriptor(outputShape, layout, types.output)
        if let pd = try? make(&src, &dst) {
            if !isSlowImplementation(pd) {
                dnnl_primitive_desc_destroy(free)
                return pd
            }
            dnnl_primitive_desc_destroy(pd)
        }
    }
    if known { return free }
    dnnl_primitive_desc_destroy(free)
    src = try memoryDescriptor(sourceShape, sourceLayout, types.source)
    dst = try memoryDescriptor(outputShape, outputLayout, types.output)
    return try make(&src, &dst)
}

/// The primitive descriptor `make` creates with the first of `algorithms` that has a kernel (the last one's error if none).
func firstAvailable(_ algorithms: [dnnl_alg_kind_t], _ make: (dnnl_alg_kind_t) throws -> dnnl_primitive_desc_t) throws
    -> dnnl_primitive_desc_t {
    for algorithm in algorithms.dropLast() {
        if let pd = try? make(algorithm) { return pd }
    }
    return try make(algorithms.last!)
}

/// Whether `pd` runs one of oneDNN's generic fallbacks: the reference kernels or im2col + GEMM.
func isSlowImplementation(_ pd: dnnl_primitive_desc_t) -> Bool {
    guard let name = implementationName(pd) else { return false }
    return name.hasPrefix("ref") || name.contains("gemm")
}

/// oneDNN's name for the implementation `pd` runs (`brgconv:avx512_core`, `ref:any`, …).
func implementationName(_ pd: dnnl_primitive_desc_t) -> String? {
    var info: UnsafePointer<CChar>?
    guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info) == dnnl_success, let info else { return nil }
    return String(cString: info)
}

/// Whether a convolution asks for oneDNN's Winograd kernel first (in training, or in inference with prepared weights):
/// 3×3, stride 1, no dilation, ungrouped, at least `winogradMinimumChannels` input and output channels, unless
/// `FOVEA_CONV_ALGORITHM` forces an algorithm.
func winogradCandidate(_ inputShape: [Int], _ weightShape: [Int], geometry g: ConvolutionGeometry) -> Bool {
    forcedConvolutionAlgorithm == nil && weightShape[2] == 3 && weightShape[3] == 3 && g.stride == [1, 1]
        && g.dilation == [1, 1] && g.groups == 1 && weightShape[0] >= winogradMinimumChannels
        && weightShape[1] >= winogradMinimumChannels
}

/// The narrowest convolution (input and output channels) for Winograd: 32. On the AMD EPYC (Zen 4) machine of 2026-12-02,
/// oneDNN's Winograd kernels took about half the direct kernels' time on ResNet-20's 32- and 64-channel shapes in all
/// three passes (backward weights included, which oneDNN's `auto` leaves direct), but more than direct on its
/// 16-channel ones (also backward weights alone, in the network); ResNet-20 trains ~15 % faster and infers ~10 %
/// faster than with the earlier 64-channel threshold and `auto`, ResNet-18 trains ~15 % faster.
/// `FOVEA_WINOGRAD_MIN_CHANNELS=N` sets another threshold (for measurements).
let winogradMinimumChannels = Int(ProcessInfo.processInfo.environment["FOVEA_WINOGRAD_MIN_CHANNELS"] ?? "") ?? 32

/// A layer's weights prepared for repeated inference: the (possibly batch-norm-folded) plain weight and bias, and per
/// convolution primitive the weights reordered into that primitive's own format. The owning layer calls
/// `weights(for:make:)` with a stamp of everything the weights derive from (its parameters' versions); a new stamp
/// drops every prepared copy.
public final class PreparedWeights: @unchecked Sendable {
    private let lock = NSLock()
    private var stamp: [Int]?
    private var weight: Tensor?
    private var bias: Tensor?
    private var kernelWeights: [PrimitiveKey: Storage] = [:]

    public init() {}

    /// The plain weight and bias for `stamp`: the ones made earlier for the same stamp, or `make()`'s.
    public func weights(for stamp: [Int], make: () throws -> (Tensor, Tensor?)) rethrows -> (Tensor, Tensor?) {
        lock.lock()
        defer { lock.unlock() }
        if stamp != self.stamp || weight == nil {
            let (newWeight, newBias) = try make()
            (self.stamp, weight, bias) = (stamp, newWeight, newBias)
            kernelWeights.removeAll()
        }
        return (weight!, bias)
    }

    /// Drops every prepared copy (e.g. when the layer goes back to training).
    public func reset() {
        lock.lock()
        defer { lock.unlock() }
        (stamp, weight, bias) = (nil, nil, nil)
        kernelWeights.removeAll()
    }

    func kernelWeight(for key: PrimitiveKey) -> Storage? {
        lock.lock()
        defer { lock.unlock() }
        return kernelWeights[key]
    }

    func store(_ storage: Storage, for key: PrimitiveKey) {
        lock.lock()
        defer { lock.unlock() }
        // A few input shapes at most (e.g. a smaller last batch); more means shapes vary: keep the newest only.
        if kernelWeights.count >= 8 { kernelWeights.removeAll() }
        kernelWeights[key] = storage
    }
}

/// Whether oneDNN picked one of its reference (plain C++, slow) implementations for `pd`.
func isReferenceImplementation(_ pd: dnnl_primitive_desc_t) -> Bool {
    implementationName(pd)?.hasPrefix("ref") ?? false
}

/// Whether every queried descriptor of `pd` is in a layout Fovea knows for its shape.
func knownLayouts(_ pd: dnnl_primitive_desc_t, _ queries: [(dnnl_query_t, [Int])]) -> Bool {
    queries.allSatisfy { query, shape in
        dnnl_primitive_desc_query_md(pd, query, 0).map { Layout.matching($0.pointee, shape: shape) != nil } ?? false
    }
}

let DNNL_QUERY_SRC = (dnnl_query_src_md, Int32(0))
let DNNL_QUERY_DST = (dnnl_query_dst_md, Int32(0))

/// The known layout a primitive chose for `argument`, or an error naming the operation.
func layoutOf(_ primitive: Primitive, _ argument: Int32, _ shape: [Int], _ name: String) throws -> Layout {
    let md = primitive.descriptor(for: argument)
    guard let layout = Layout.matching(md, shape: shape) else {
        throw TensorError.invalidArgument(operation: name, message: "oneDNN chose a layout Fovea does not handle for \(shape)")
    }
    return layout
}
