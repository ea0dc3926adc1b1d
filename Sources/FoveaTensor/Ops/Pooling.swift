import CDNNL
import CFoveaKernels
import Foundation

/// Window geometry of a 2-D pooling: kernel, stride and padding (each [height, width]) and PyTorch's ceil mode.
public struct PoolingGeometry: Hashable, Sendable {
    public var kernel: [Int]
    public var stride: [Int]
    public var padding: [Int]
    public var ceilMode: Bool

    /// Creates a pooling geometry; `stride` defaults to the kernel size, as in PyTorch.
    public init(kernel: [Int], stride: [Int]? = nil, padding: [Int] = [0, 0], ceilMode: Bool = false) {
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
        self.ceilMode = ceilMode
    }

    /// Output size along one axis, with PyTorch's rule that the last window starts inside the input or left padding.
    func outputLength(_ length: Int, axis: Int) -> Int {
        let span = length + 2 * padding[axis] - kernel[axis]
        var out = (ceilMode ? (span + stride[axis] - 1) / stride[axis] : span / stride[axis]) + 1
        if ceilMode && (out - 1) * stride[axis] >= length + padding[axis] { out -= 1 }
        return out
    }
}

enum PoolingKind: Int { case max, averageIncludingPadding, averageExcludingPadding }

/// 2-D max pooling (padding acts as −∞). input (N,C,H,W) → (N,C,P,Q). Differentiable.
public func maxPool2d(_ input: Tensor, geometry: PoolingGeometry, name: String = "maxPool2d") throws -> Tensor {
    let result = try pool(input, geometry, .max, name)
    OperationTrace.record(.maxPool(geometry), [input], result)
    return result
}

/// 2-D average pooling with PyTorch's divisor rules for `countIncludePad` and ceil mode. Differentiable.
public func avgPool2d(_ input: Tensor, geometry: PoolingGeometry, countIncludePad: Bool = true,
                      name: String = "avgPool2d") throws -> Tensor {
    let result = try pool(input, geometry, countIncludePad ? .averageIncludingPadding : .averageExcludingPadding, name)
    OperationTrace.record(.averagePool(geometry, countIncludePad: countIncludePad), [input], result)
    return result
}

private func pool(_ input: Tensor, _ g: PoolingGeometry, _ kind: PoolingKind, _ name: String) throws -> Tensor {
    guard g.kernel.count == 2, g.stride.count == 2, g.padding.count == 2, g.kernel.allSatisfy({ $0 > 0 }),
          g.stride.allSatisfy({ $0 > 0 }), (0..<2).allSatisfy({ g.padding[$0] >= 0 && 2 * g.padding[$0] <= g.kernel[$0] }) else {
        throw TensorError.invalidArgument(operation: name, message: "invalid geometry \(g) (padding must be at most half the kernel)")
    }
    guard input.shape.count == 4 else {
        throw TensorError.shapeMismatch(operation: name, expected: "(N, C, H, W)", actual: input.shape)
    }
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let p = g.outputLength(h, axis: 0), q = g.outputLength(w, axis: 1)
    guard p > 0, q > 0, h + 2 * g.padding[0] >= g.kernel[0], w + 2 * g.padding[1] >= g.kernel[1] else {
        throw TensorError.shapeMismatch(operation: name, expected: "spatial size at least the kernel \(g.kernel)", actual: input.shape)
    }
    let outputShape = [n, c, p, q]
    // Right padding reaches as far as the last window; oneDNN treats it like the left padding.
    let paddingRight = [(p - 1) * g.stride[0] + g.kernel[0] - h - g.padding[0],
                        (q - 1) * g.stride[1] + g.kernel[1] - w - g.padding[1]].map { max($0, 0) }
    // oneDNN's include-padding average divides by the full kernel, also over the ceil-mode overhang that
    // PyTorch leaves out of the divisor; such windows are rescaled afterwards.
    let overhang = kind == .averageIncludingPadding && (paddingRight[0] > g.padding[0] || paddingRight[1] > g.padding[1])
    let algorithm: dnnl_alg_kind_t = switch kind {
    case .max: dnnl_pooling_max
    case .averageIncludingPadding: dnnl_pooling_avg_include_padding
    case .averageExcludingPadding: dnnl_pooling_avg_exclude_padding
    }
    let training = Autodiff.recording && input.node != nil
    let layout = input.layout
    if training && kind == .max && g.kernel[0] * g.kernel[1] <= 256 && !oneDNNMaxPooling {
        return try maxPoolRecordingIndices(input, fovea_pool_geometry(input.shape, layout, g, outputShape), outputShape)
    }
    let keyValues = input.shape + g.kernel + g.stride + g.padding + paddingRight + [kind.rawValue, layout.rawValue]
    let strides = g.stride.map(Int64.init), kernel = g.kernel.map(Int64.init), dilation: [Int64] = [0, 0]
    let padLeft = g.padding.map(Int64.init), padRight = paddingRight.map(Int64.init)
    let forward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: training ? "pool_fwd_t" : "pool_fwd_i",
                                                                   values: keyValues)) {
        var desc = dnnl_pooling_v2_desc_t()
        var src = try memoryDescriptor(input.shape, layout), dst = try anyDescriptor(outputShape)
        try check(dnnl_pooling_v2_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                                    algorithm, &src, &dst, strides, kernel, dilation, padLeft, padRight),
                  "dnnl_pooling_v2_forward_desc_init(\(name))")
        return try makePrimitiveDescriptor(&desc, name: name)
    }
    let outputLayout = try layoutOf(forward, DNNL_ARG_DST, outputShape, name)
    var result = try Tensor.uninitialized(outputShape, layout: outputLayout)
    let workspaceBytes = byteSize(forward.descriptor(for: DNNL_ARG_WORKSPACE))
    let workspace = training && workspaceBytes > 0 ? Storage(capacity: (workspaceBytes + 3) / 4) : nil
    var buffers: [(Int32, Storage)] = [
        (DNNL_ARG_SRC, input.storage),
        (DNNL_ARG_DST, result.storage),
    ]
    if let workspace { buffers.append((DNNL_ARG_WORKSPACE, workspace)) }
    try forward.execute(buffers)
    let correction = overhang ? try ceilModeCorrection(g, height: h, width: w, outputShape: outputShape) : nil
    if let correction { result = try multiplySpatialMap(result, correction) }
    guard training else { return result }
    return result.recorded(from: [input]) { gradient in
        var gradient = gradient
        if let correction { gradient = try multiplySpatialMap(gradient, correction) }
        let backward = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "pool_bwd", values: keyValues)) {
            var desc = dnnl_pooling_v2_desc_t()
            var src = try memoryDescriptor(input.shape, layout), dst = try anyDescriptor(outputShape)
            try check(dnnl_pooling_v2_backward_desc_init(&desc, algorithm, &src, &dst, strides, kernel, dilation,
                                                         padLeft, padRight),
                      "dnnl_pooling_v2_backward_desc_init(\(name))")
            return try makePrimitiveDescriptor(&desc, hint: forward.descriptor, name: name)
        }
        let outputGradient = try gradient.detached.reordered(to: try layoutOf(backward, DNNL_ARG_DIFF_DST, outputShape, name))
        let inputGradient = try Tensor.uninitialized(input.shape, layout: layout)
        var buffers: [(Int32, Storage)] = [
            (DNNL_ARG_DIFF_DST, outputGradient.storage),
            (DNNL_ARG_DIFF_SRC, inputGradient.storage),
        ]
        if let workspace { buffers.append((DNNL_ARG_WORKSPACE, workspace)) }
        try backward.execute(buffers)
        return [inputGradient]
    }
}

/// Per-position factor k²/divisor that turns oneDNN's full-kernel average into PyTorch's ceil-mode divisor.
private func ceilModeCorrection(_ g: PoolingGeometry, height: Int, width: Int, outputShape: [Int]) throws -> [Float] {
    let (p, q) = (outputShape[2], outputShape[3])
    var factors = [Float](repeating: 1, count: p * q)
    for i in 0..<p {
        let top = i * g.stride[0] - g.padding[0]
        let rows = min(top + g.kernel[0], height + g.padding[0]) - top
        for j in 0..<q {
            let left = j * g.stride[1] - g.padding[1]
            let columns = min(left + g.kernel[1], width + g.padding[1]) - left
            factors[i * q + j] = Float(g.kernel[0] * g.kernel[1]) / Float(rows * columns)
        }
    }
    return factors
}

/// Multiplies every (n, c) plane by a P×Q map, in the tensor's own layout. Not recorded.
func multiplySpatialMap(_ x: Tensor, _ map: [Float]) throws -> Tensor {
    let plane = x.shape[2] * x.shape[3]
    let block = x.layout.channelBlock
    let result = x.detached.copy()
    let pointer = result.storage.pointer
    switch x.layout {
    case .plain:
        for base in stride(from: 0, to: x.count, by: plane) { for s in 0..<plane { pointer[base + s] *= map[s] } }
    case .nhwc:
        let c = x.shape[1]
        for n in 0..<x.shape[0] { for s in 0..<plane { for ch in 0..<c { pointer[(n * plane + s) * c + ch] *= map[s] } } }
    case .nChw8c, .nChw16c:
        let planes = result.storage.capacity / (plane * block)
        for b in 0..<planes { for s in 0..<plane { for l in 0..<block { pointer[(b * plane + s) * block + l] *= map[s] } } }
    }
    return result
}

/// Training max pooling that records each window's arg-max itself (`CFoveaKernels`: oneDNN 2.6's training max pooling
/// is about ten times slower than its inference one); the output and the input gradient keep the input's layout.
private func maxPoolRecordingIndices(_ input: Tensor, _ planes: fovea_pool_geometry, _ outputShape: [Int]) throws -> Tensor {
    let layout = input.layout
    let result = try Tensor.uninitialized(outputShape, layout: layout)
    let outputCount = planes.groups * planes.output_height * planes.output_width * planes.lanes
    let indices = Storage(capacity: (outputCount + 3) / 4)
    let indexBytes = UnsafeMutableRawPointer(indices.pointer).bindMemory(to: UInt8.self, capacity: outputCount)
    let profileName = { (kind: String) in "\(kind) \(input.shape + [planes.kernel_height, planes.kernel_width, planes.stride_height])" }
    runOwnKernel(profileName("max_pool_fwd_t")) {
        withUnsafePointer(to: planes) { fovea_max_pool_forward(input.storage.pointer, $0, result.storage.pointer, indexBytes) }
    }
    return result.recorded(from: [input]) { gradient in
        let outputGradient = try gradient.detached.reordered(to: layout)
        let inputGradient = try Tensor.uninitialized(input.shape, layout: layout)
        runOwnKernel(profileName("max_pool_bwd")) {
            withUnsafePointer(to: planes) {
                fovea_max_pool_backward(outputGradient.storage.pointer, indexBytes, $0, inputGradient.storage.pointer)
            }
        }
        withExtendedLifetime(indices) {}
        return [inputGradient]
    }
}

/// `FOVEA_ONEDNN_MAX_POOLING=1` keeps training max pooling on oneDNN's kernel (for measurements).
let oneDNNMaxPooling = ProcessInfo.processInfo.environment["FOVEA_ONEDNN_MAX_POOLING"] != nil

extension fovea_pool_geometry {
    /// The planes and lanes of a 4-D tensor of `shape` in `layout` pooled by `g` to `outputShape`.
    init(_ shape: [Int], _ layout: Layout, _ g: PoolingGeometry, _ outputShape: [Int]) {
        let (n, c) = (shape[0], shape[1])
        let (groups, lanes) = switch layout {
        case .plain: (n * c, 1)
        case .nChw8c, .nChw16c: (n * ((c + layout.channelBlock - 1) / layout.channelBlock), layout.channelBlock)
        case .nhwc: (n, c)
        }
        self.init(groups: groups, lanes: lanes, height: shape[2], width: shape[3], output_height: outputShape[2],
                  output_width: outputShape[3], kernel_height: g.kernel[0], kernel_width: g.kernel[1],
                  stride_height: g.stride[0], stride_width: g.stride[1], padding_height: g.padding[0],
                  padding_width: g.padding[1])
    }
}
