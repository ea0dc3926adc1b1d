import Foundation
import FoveaTensor
import FoveaNN

/// Window operators (Conv, MaxPool, AveragePool), Gemm, standalone BatchNormalization and Pad: the operators with
/// geometry to check and fast paths to pick.
extension Compiler {
    /// Conv: the fused step's layer when the weights are constant and the geometry static, otherwise the functional
    /// convolution (weights as run-time values, SAME padding, asymmetric pads, 1-D).
    func convolution(_ node: Onnx_NodeProto, _ a: Attributes) throws -> Step {
        let autoPad = try a.string("auto_pad", "NOTSET")
        guard ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"].contains(autoPad) else { throw a.unsupported("auto_pad \(autoPad)") }
        let kernelAttribute = try a.ints("kernel_shape"), stridesAttribute = try a.ints("strides")
        let dilationsAttribute = try a.ints("dilations"), padsAttribute = try a.ints("pads")
        let groups = try a.int("group", 1)
        try trainOperands(Array(node.input.prefix(3)))
        let (path, label, opset) = (graph.path, a.label, graph.opset)
        return makeStep(node, a) { inputs in
            var x = try floatValue(inputs[0], "X"), w = try floatValue(inputs[1], "W")
            let b = inputs.count > 2 ? try inputs[2].map { try floatValue($0, "B") } : nil
            let spatial = x.shape.count - 2
            guard spatial == 1 || spatial == 2 else {
                throw ONNXError.unsupported(path: path, node: label, operator: "Conv", opset: opset, detail: "\(spatial)-D convolution (1-D and 2-D are)")
            }
            guard w.shape.count == x.shape.count else { throw TensorError.incompatibleShapes(operation: "Conv", x.shape, w.shape) }
            let kernel = kernelAttribute ?? Array(w.shape[2...])
            guard kernel == Array(w.shape[2...]) else {
                throw TensorError.invalidArgument(operation: "Conv", message: "kernel_shape \(kernel) but weights \(w.shape)")
            }
            let strides = stridesAttribute ?? [Int](repeating: 1, count: spatial)
            let dilations = dilationsAttribute ?? [Int](repeating: 1, count: spatial)
            var (begin, end) = try windowPads(Array(x.shape[2...]), kernel: kernel, strides: strides, dilations: dilations,
                                              pads: padsAttribute, autoPad: autoPad, operation: "Conv")
            let oneDimensional = spatial == 1
            if oneDimensional {
                x = try x.reshaped([x.shape[0], x.shape[1], 1, x.shape[2]])
                w = try w.reshaped([w.shape[0], w.shape[1], 1, w.shape[2]])
                begin = [0] + begin
                end = [0] + end
            }
            var padding = begin
            if begin != end {
                x = try padded(x, begin: [0, 0] + begin, end: [0, 0] + end, fill: 0)
                padding = [0, 0]
            }
            let geometry = ConvolutionGeometry(stride: oneDimensional ? [1] + strides : strides, padding: padding,
                                               dilation: oneDimensional ? [1] + dilations : dilations, groups: groups)
            var y = try conv2d(x, weight: w, bias: b, geometry: geometry, name: "Conv")
            if oneDimensional { y = try y.reshaped([y.shape[0], y.shape[1], y.shape[3]]) }
            return [.float(y)]
        }
    }

    /// A standalone BatchNormalization over constant statistics as a BatchNorm2D step (2-D to 4-D inputs), or nil.
    func batchNormLayer(_ a: Attributes, _ node: Onnx_NodeProto) throws -> Step? {
        guard let index = graph.nodes.firstIndex(where: { $0 == node }), let layer = try batchNormLayer(index) else { return nil }
        a.ignore("epsilon", "momentum", "spatial", "training_mode", "is_test", "consumed_inputs")
        return Step(label: a.label, op: "BatchNormalization", inputs: [node.input[0]], outputs: [node.output[0]]) { inputs in
            let x = try floatValue(inputs[0], "X")
            guard x.shape.count >= 2 else {
                throw TensorError.shapeMismatch(operation: "BatchNormalization", expected: "(N, C, …)", actual: x.shape)
            }
            if x.shape.count == 4 { return [.float(try layer(x))] }
            // Any rank: the statistics are per channel, so (N, C, D₁…Dₖ) runs as (N, C, D₁⋯Dₖ, 1).
            let shape = x.shape
            let y = try layer(x.reshaped([shape[0], shape[1], shape[2...].reduce(1, *), 1]))
            return [.float(try y.reshaped(shape))]
        }
    }

    func pooling(_ node: Onnx_NodeProto, _ a: Attributes) throws -> Step {
        let op = node.opType
        if node.output.count > 1 && !node.output[1].isEmpty { throw a.unsupported("the Indices output") }
        let autoPad = try a.string("auto_pad", "NOTSET")
        guard ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"].contains(autoPad) else { throw a.unsupported("auto_pad \(autoPad)") }
        guard let kernel = try a.ints("kernel_shape") else { throw a.invalid("\(op) without kernel_shape") }
        let stridesAttribute = try a.ints("strides"), padsAttribute = try a.ints("pads")
        let ceilMode = try a.int("ceil_mode", 0) != 0
        let includePad = op == "AveragePool" ? try a.int("count_include_pad", 0) != 0 : false
        if let dilations = try a.ints("dilations"), dilations.contains(where: { $0 != 1 }) { throw a.unsupported("dilations \(dilations)") }
        if op == "MaxPool", try a.int("storage_order", 0) != 0 { throw a.unsupported("storage_order 1") }
        let (path, label, opset) = (graph.path, a.label, graph.opset)
        return makeStep(node, a) { inputs in
            var x = try floatValue(inputs[0], "X")
            let spatial = x.shape.count - 2
            guard spatial == kernel.count, spatial == 1 || spatial == 2 else {
                throw ONNXError.unsupported(path: path, node: label, operator: op, opset: opset,
                                            detail: "\(spatial)-D input with kernel \(kernel) (1-D and 2-D pooling are)")
            }
            let strides = stridesAttribute ?? [Int](repeating: 1, count: spatial)
            var (begin, end) = try windowPads(Array(x.shape[2...]), kernel: kernel, strides: strides, dilations: [1, 1],
                                              pads: padsAttribute, autoPad: autoPad, operation: op)
            var (kernel2, strides2) = (kernel, strides)
            let shape = x.shape
            if spatial == 1 {
                x = try x.reshaped([shape[0], shape[1], 1, shape[2]])
                (begin, end, kernel2, strides2) = ([0] + begin, [0] + end, [1] + kernel, [1] + strides)
            }
            let symmetric = begin == end && (0..<2).allSatisfy { 2 * begin[$0] <= kernel2[$0] }
            var y: Tensor
            if symmetric {
                let geometry = PoolingGeometry(kernel: kernel2, stride: strides2, padding: begin, ceilMode: ceilMode)
                y = op == "MaxPool" ? try maxPool2d(x, geometry: geometry, name: op)
                    : try avgPool2d(x, geometry: geometry, countIncludePad: includePad, name: op)
            } else {
                // Asymmetric (or wider than half the window) padding: pad explicitly, then pool without padding.
                let geometry = PoolingGeometry(kernel: kernel2, stride: strides2, padding: [0, 0], ceilMode: ceilMode)
                let (fullBegin, fullEnd) = ([0, 0] + begin, [0, 0] + end)
                if op == "MaxPool" {
                    y = try maxPool2d(try padded(x, begin: fullBegin, end: fullEnd, fill: -.infinity), geometry: geometry, name: op)
                } else {
                    y = try avgPool2d(try padded(x, begin: fullBegin, end: fullEnd, fill: 0), geometry: geometry, name: op)
                    if !includePad {
                        // Average over real elements only: divide by the share of each window that is not padding.
                        let ones = Tensor(repeating: 1, shape: [1, 1, x.shape[2], x.shape[3]])
                        let share = try avgPool2d(try padded(ones, begin: fullBegin, end: fullEnd, fill: 0), geometry: geometry, name: op)
                        y = try checkedBroadcast(y, share, .divide, name: op)
                    }
                }
            }
            if spatial == 1 { y = try y.reshaped([y.shape[0], y.shape[1], y.shape[3]]) }
            return [.float(y)]
        }
    }

    func gemm(_ node: Onnx_NodeProto, _ a: Attributes) throws -> Step {
        let (alpha, beta) = (try a.float("alpha", 1), try a.float("beta", 1))
        let (transposeA, transposeB) = (try a.int("transA", 0) != 0, try a.int("transB", 0) != 0)
        a.ignore("broadcast")
        try trainOperands(Array(node.input.prefix(3)))
        return makeStep(node, a) { inputs in
            var x = try floatValue(inputs[0], "A"), w = try floatValue(inputs[1], "B")
            let c = inputs.count > 2 ? try inputs[2].map { try floatValue($0, "C") } : nil
            guard x.shape.count == 2, w.shape.count == 2 else { throw TensorError.incompatibleShapes(operation: "Gemm", x.shape, w.shape) }
            if transposeA { x = try x.transposed([1, 0]) }
            // linear computes x·Wᵀ: W must be (N, K).
            if !transposeB { w = try w.transposed([1, 0]) }
            let plainBias = c.flatMap { $0.shape == [w.shape[0]] && beta == 1 ? $0 : nil }
            var y = try linear(x, weight: w, bias: plainBias, name: "Gemm")
            if alpha != 1 { y = y.scaled(by: alpha) }
            if let c, plainBias == nil, beta != 0 { y = try checkedBroadcast(y, beta == 1 ? c : c.scaled(by: beta), .add, name: "Gemm") }
            return [.float(y)]
        }
    }

    func padding(_ node: Onnx_NodeProto, _ a: Attributes) throws -> Step {
        let mode = try a.string("mode", "constant")
        guard ["constant", "reflect", "edge"].contains(mode) else { throw a.unsupported("mode \(mode)") }
        let attributePads = graph.opset < 11 ? try a.ints(graph.opset < 2 ? "paddings" : "pads") : nil
        let attributeValue = graph.opset < 11 ? try a.float("value", 0) : 0
        try trainOperands([node.input[0]])
        let opset = graph.opset
        return makeStep(node, a) { inputs in
            let data = try present(inputs[0])
            let rank = data.shape.count
            var pads = try attributePads ?? integerValue(inputs[1], "pads").values.map { Int(clamping: $0) }
            var value = attributeValue
            if opset >= 11, inputs.count > 2, inputs[2] != nil { value = try scalar(inputs[2], "constant_value") }
            if opset >= 18, inputs.count > 3, inputs[3] != nil {
                let axes = try integerValue(inputs[3], "axes").values.map { try Indexing.axis(Int($0), rank: rank) }
                guard pads.count == 2 * axes.count else { throw TensorError.invalidArgument(operation: "Pad", message: "pads \(pads) for axes \(axes)") }
                var full = [Int](repeating: 0, count: 2 * rank)
                for (k, axis) in axes.enumerated() { (full[axis], full[axis + rank]) = (pads[k], pads[k + axes.count]) }
                pads = full
            }
            guard pads.count == 2 * rank else { throw TensorError.invalidArgument(operation: "Pad", message: "pads \(pads) for a \(rank)-D input") }
            let (shape, sources) = try Indexing.pad(data.shape, begin: Array(pads[..<rank]), end: Array(pads[rank...]), mode: mode)
            if case let .integer(x) = data { return [.integer(x.remapped(shape, sources, fill: integerPart(value)))] }
            return [.float(try remap(try floatValue(data, "data"), to: shape, sources: sources, fill: value, name: "Pad"))]
        }
    }
}

/// `x` padded with `fill`: `begin[i]`/`end[i]` elements before/after axis i.
func padded(_ x: Tensor, begin: [Int], end: [Int], fill: Float) throws -> Tensor {
    let (shape, sources) = try Indexing.pad(x.shape, begin: begin, end: end, mode: "constant")
    return try remap(x, to: shape, sources: sources, fill: fill, name: "pad")
}

/// Begin and end padding per spatial axis for a window operator, from explicit `pads` or `autoPad`.
func windowPads(_ input: [Int], kernel: [Int], strides: [Int], dilations: [Int], pads: [Int]?, autoPad: String,
                operation: String) throws -> ([Int], [Int]) {
    let n = input.count
    // Bounded, so that no output-size arithmetic can overflow.
    let sane = 1...(1 << 20)
    guard kernel.count == n, strides.count == n, dilations.count >= n, strides.allSatisfy(sane.contains),
          kernel.allSatisfy(sane.contains), dilations.allSatisfy(sane.contains) else {
        throw TensorError.invalidArgument(operation: operation, message: "kernel \(kernel), strides \(strides), dilations \(dilations) for \(n)-D input")
    }
    switch autoPad {
    case "VALID": return ([Int](repeating: 0, count: n), [Int](repeating: 0, count: n))
    case "SAME_UPPER", "SAME_LOWER":
        var begin = [Int](), end = [Int]()
        for i in 0..<n {
            let output = (input[i] + strides[i] - 1) / strides[i]
            let total = max((output - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - input[i], 0)
            let small = total / 2
            begin.append(autoPad == "SAME_UPPER" ? small : total - small)
            end.append(total - begin[i])
        }
        return (begin, end)
    default:
        let pads = pads ?? [Int](repeating: 0, count: 2 * n)
        guard pads.count == 2 * n, pads.allSatisfy({ (0...(1 << 20)).contains($0) }) else {
            throw TensorError.invalidArgument(operation: operation, message: "pads \(pads) for \(n)-D input")
        }
        return (Array(pads[..<n]), Array(pads[n...]))
    }
}
