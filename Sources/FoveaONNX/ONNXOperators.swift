import Foundation
import FoveaTensor
import FoveaNN

/// The operators: each ONNX node becomes a step over Fovea's tensor operations. Attributes are read (and checked) when
/// the graph is compiled; shapes are checked when it runs.
extension Compiler {
    func makeStep(_ node: Onnx_NodeProto, _ a: Attributes, _ run: @escaping ([ONNXValue?]) throws -> [ONNXValue]) -> Step {
        Step(label: a.label, op: node.opType, inputs: node.input, outputs: node.output, run: run)
    }

    /// A step for `node`, or nil for nodes that only define constants (Constant).
    func compile(_ node: Onnx_NodeProto, _ a: Attributes) throws -> Step? {
        let op = node.opType
        let opset = graph.opset
        if let function = try unaryFunction(op, a) {
            return makeStep(node, a) { inputs in
                if case let .integer(x)? = inputs[0] { return [.integer(try integerMap(x, function))] }
                return [.float(try function(try floatValue(inputs[0], "X")))]
            }
        }
        switch op {
        case "Constant":
            guard node.output.count == 1 else { throw a.invalid("Constant has \(node.output.count) outputs") }
            var decoder = TensorDecoder(path: graph.path, limits: .standard, folder: nil)
            let value: ONNXValue
            if let tensor = try a.tensor("value") {
                value = try decoder.decode(tensor)
            } else if a.has("value_float") {
                value = .float(Tensor(scalar: try a.float("value_float", 0)))
            } else if let floats = try a.floats("value_floats") {
                value = .float(try Tensor(shape: [floats.count], values: floats))
            } else if a.has("value_int") {
                value = .integer(ONNXIntegers(shape: [], values: [Int64(try a.int("value_int", 0))]))
            } else if let ints = try a.ints("value_ints") {
                value = .integer(ONNXIntegers(shape: [ints.count], values: ints.map(Int64.init)))
            } else {
                throw a.unsupported("a Constant without value, value_float(s) or value_int(s)")
            }
            constants[node.output[0]] = value
            return nil

        case "Identity":
            return makeStep(node, a) { inputs in [try present(inputs[0])] }

        case "Dropout":
            if node.output.count > 1 && !node.output[1].isEmpty { throw a.unsupported("the mask output") }
            var ratio: Float = 0.5
            if opset < 12 {
                ratio = try a.float("ratio", 0.5)
                a.ignore("is_test")
            } else if node.input.count > 1, !node.input[1].isEmpty {
                guard let numbers = constantNumbers(node.input[1]), numbers.count == 1 else {
                    throw a.unsupported("a ratio that is not a constant")
                }
                ratio = Float(numbers[0])
            }
            if node.input.count > 2, !node.input[2].isEmpty {
                guard let numbers = constantNumbers(node.input[2]), numbers == [0] else {
                    throw a.unsupported("training_mode that is not a constant false")
                }
            }
            let seed = try a.int("seed", 0)
            let layer = try Dropout(probability: ratio, seed: UInt64(truncatingIfNeeded: seed))
            layer.isTraining = false
            modeLayers.append(layer)
            dropouts.append(("onnx_dropout_\(dropouts.count)", layer))
            return Step(label: a.label, op: op, inputs: [node.input[0]], outputs: [node.output[0]]) { inputs in
                [.float(try layer(try floatValue(inputs[0], "data")))]
            }

        case "Relu", "Sigmoid", "Tanh", "HardSwish", "LeakyRelu":
            let activation: Activation = switch op {
            case "Relu": .relu
            case "Sigmoid": .sigmoid
            case "Tanh": .tanh
            case "HardSwish": .hardSwish
            default: .leakyRelu(negativeSlope: try a.float("alpha", 0.01))
            }
            return makeStep(node, a) { inputs in [.float(try activate(try floatValue(inputs[0], "X"), activation))] }

        case "Clip":
            if let (lower, upper) = try clipBounds(node, a) {
                let constantInputs = Array(node.input.prefix(1))
                return Step(label: a.label, op: op, inputs: constantInputs, outputs: node.output) { inputs in
                    let x = try floatValue(inputs[0], "input")
                    if lower.isFinite && upper.isFinite { return [.float(try activate(x, .clip(lower: lower, upper: upper)))] }
                    return [.float(try elementwise(x, clipFunction(lower, upper)))]
                }
            }
            return makeStep(node, a) { inputs in
                let x = try floatValue(inputs[0], "input")
                let lower = try inputs.count > 1 && inputs[1] != nil ? scalar(inputs[1], "min") : -.infinity
                let upper = try inputs.count > 2 && inputs[2] != nil ? scalar(inputs[2], "max") : .infinity
                return [.float(try elementwise(x, clipFunction(lower, upper)))]
            }

        case "PRelu":
            try trainOperands(node.input)
            let perChannel = opset < 7
            return makeStep(node, a) { inputs in
                let x = try floatValue(inputs[0], "X")
                var slope = try floatValue(inputs[1], "slope")
                // Before opset 7 a 1-D slope holds one value per channel.
                if perChannel, slope.shape.count == 1, x.shape.count > 2, slope.count == x.shape[1] {
                    slope = try slope.reshaped([x.shape[1]] + [Int](repeating: 1, count: x.shape.count - 2))
                }
                // max(x, 0) + slope · min(x, 0), with the slope broadcast onto x.
                let positive = try activate(x, .relu)
                let negative = try elementwise(x, ElementwiseFunction("min0", value: { min($0, 0) }, derivative: { x, _ in x < 0 ? 1 : 0 }))
                return [.float(try broadcast(positive, try broadcast(negative, slope, .multiply, name: "PRelu"), .add, name: "PRelu"))]
            }

        case "Add", "Sub", "Mul", "Div", "Pow":
            let operation: BroadcastOperation = ["Add": .add, "Sub": .subtract, "Mul": .multiply, "Div": .divide][op] ?? .power
            a.ignore("consumed_inputs")
            // Before opset 7: no broadcasting unless `broadcast` = 1, and then B aligns with A from `axis`.
            let legacy = opset < 7 ? (try a.int("broadcast", 0) != 0, try a.int("axis", Int.min)) : nil
            try trainOperands(node.input)
            return makeStep(node, a) { inputs in
                var right = try present(inputs[1])
                let left = try present(inputs[0])
                if let (enabled, axis) = legacy {
                    if !enabled {
                        guard left.shape == right.shape else { throw TensorError.incompatibleShapes(operation: op, left.shape, right.shape) }
                    } else if axis != Int.min {
                        let start = axis < 0 ? axis + left.shape.count : axis
                        let trailing = left.shape.count - start - right.shape.count
                        guard start >= 0, trailing >= 0 else { throw TensorError.incompatibleShapes(operation: op, left.shape, right.shape) }
                        right = try reshape(right, [Int](repeating: 1, count: start) + right.shape + [Int](repeating: 1, count: trailing))
                    }
                }
                switch (left, right) {
                case let (.integer(x), .integer(y)):
                    return [.integer(try ONNXIntegers.broadcast(x, y) { p, q in try integerArithmetic(op, p, q) })]
                case let (.integer(x), .float(y)):
                    // Pow(int, float) keeps the base's type.
                    let result = try broadcast(try floatTensor(x), y, operation, name: op)
                    return [.integer(ONNXIntegers(shape: result.shape, values: try result.toArray().map(integerPart)))]
                default:
                    return [.float(try broadcast(try floatValue(left, "A"), try numericTensor(right), operation, name: op))]
                }
            }

        case "Max", "Min", "Sum", "Mean":
            try trainOperands(node.input)
            return makeStep(node, a) { inputs in
                if inputs.allSatisfy({ if case .integer? = $0 { true } else { false } }) {
                    let parts = try inputs.map { try integerValue($0, op) }
                    guard var result = parts.first else { throw TensorError.invalidArgument(operation: op, message: "no inputs") }
                    for part in parts.dropFirst() {
                        result = try ONNXIntegers.broadcast(result, part) { p, q in
                            op == "Max" ? max(p, q) : op == "Min" ? min(p, q) : p &+ q
                        }
                    }
                    if op == "Mean" { result.values = result.values.map { $0 / Int64(parts.count) } }
                    return [.integer(result)]
                }
                let tensors = try inputs.enumerated().map { try floatValue($0.element, "data_\($0.offset)") }
                guard var result = tensors.first else { throw TensorError.invalidArgument(operation: op, message: "no inputs") }
                let operation: BroadcastOperation = op == "Max" ? .maximum : op == "Min" ? .minimum : .add
                for tensor in tensors.dropFirst() { result = try broadcast(result, tensor, operation, name: op) }
                if op == "Mean" && tensors.count > 1 { result = result.scaled(by: 1 / Float(tensors.count)) }
                return [.float(result)]
            }

        case "Conv":
            return try convolution(node, a)

        case "BatchNormalization":
            if let layer = try batchNormLayer(a, node) { return layer }
            try trainOperands(Array(node.input.prefix(3)))
            let epsilon = try a.float("epsilon", 1e-5)
            a.ignore("momentum", "is_test", "consumed_inputs", "spatial")
            if try a.int("training_mode", 0) != 0 { throw a.unsupported("training_mode = 1") }
            if node.output.count > 1 && node.output[1...].contains(where: { !$0.isEmpty }) {
                throw a.unsupported("the running statistics outputs")
            }
            return Step(label: a.label, op: op, inputs: node.input, outputs: [node.output[0]]) { inputs in
                let x = try floatValue(inputs[0], "X")
                guard x.shape.count >= 2 else { throw TensorError.shapeMismatch(operation: op, expected: "(N, C, …)", actual: x.shape) }
                let perChannel = [1, x.shape[1]] + [Int](repeating: 1, count: x.shape.count - 2)
                let (scale, shift, mean, variance) = try (floatValue(inputs[1], "scale").reshaped(perChannel),
                    floatValue(inputs[2], "B").reshaped(perChannel), floatValue(inputs[3], "mean").reshaped(perChannel),
                    floatValue(inputs[4], "var").reshaped(perChannel))
                let deviation = try elementwise(variance, ElementwiseFunction("rsqrt", value: { 1 / ($0 + epsilon).squareRoot() },
                    derivative: { x, y in -0.5 * y / (x + epsilon) }))
                let centred = try broadcast(x, mean, .subtract, name: op)
                let normalized = try broadcast(centred, try broadcast(deviation, scale, .multiply, name: op), .multiply, name: op)
                return [.float(try broadcast(normalized, shift, .add, name: op))]
            }

        case "MaxPool", "AveragePool":
            return try pooling(node, a)

        case "GlobalAveragePool", "GlobalMaxPool":
            return makeStep(node, a) { inputs in
                let x = try floatValue(inputs[0], "X")
                guard x.shape.count >= 3 else { throw TensorError.shapeMismatch(operation: op, expected: "(N, C, …)", actual: x.shape) }
                if op == "GlobalAveragePool" && x.shape.count == 4 {
                    return [.float(try adaptiveAvgPool2d(x, outputSize: [1, 1], name: op))]
                }
                return [.float(try reduce(x, op == "GlobalAveragePool" ? .mean : .maximum, axes: Array(2..<x.shape.count),
                                          keepingDimensions: true, name: op))]
            }

        case "Gemm":
            return try gemm(node, a)

        case "MatMul":
            try trainOperands(node.input)
            let constantRight = parameters[node.input[1]] != nil
            return makeStep(node, a) { inputs in
                let x = try floatValue(inputs[0], "A"), y = try floatValue(inputs[1], "B")
                if constantRight && x.shape.count == 2 && y.shape.count == 2 {
                    return [.float(try linear(x, weight: try y.transposed([1, 0]), name: "MatMul"))]
                }
                return [.float(try matmul(x, y, name: "MatMul"))]
            }

        case "Flatten":
            let axis = try a.int("axis", 1)
            return makeStep(node, a) { inputs in
                let value = try present(inputs[0])
                let shape = value.shape
                let split = axis < 0 ? axis + shape.count : axis
                guard (0...shape.count).contains(split) else {
                    throw TensorError.invalidArgument(operation: op, message: "axis \(axis) for shape \(shape)")
                }
                return [try reshape(value, [shape[..<split].reduce(1, *), shape[split...].reduce(1, *)])]
            }

        case "Reshape":
            let allowZero = try a.int("allowzero", 0) != 0
            let attributeShape = opset < 5 ? try a.ints("shape") : nil
            return makeStep(node, a) { inputs in
                let value = try present(inputs[0])
                let requested = try attributeShape ?? integerValue(inputs[1], "shape").values.map { Int($0) }
                var shape = requested
                for (i, dim) in requested.enumerated() where dim == 0 && !allowZero {
                    guard i < value.shape.count else { throw TensorError.invalidArgument(operation: op, message: "0 at axis \(i) of \(requested) for \(value.shape)") }
                    shape[i] = value.shape[i]
                }
                guard shape.filter({ $0 == -1 }).count <= 1, shape.allSatisfy({ $0 >= -1 }) else {
                    throw TensorError.invalidArgument(operation: op, message: "shape \(requested)")
                }
                if let inferred = shape.firstIndex(of: -1) {
                    let known = shape.enumerated().filter { $0.offset != inferred }.reduce(1) { $0 * $1.element }
                    guard known > 0, value.shape.reduce(1, *) % known == 0 else {
                        throw TensorError.shapeMismatch(operation: op, expected: "\(requested)", actual: value.shape)
                    }
                    shape[inferred] = value.shape.reduce(1, *) / known
                }
                return [try reshape(value, shape)]
            }

        case "Squeeze", "Unsqueeze":
            let attributeAxes = opset < 13 ? try a.ints("axes") : nil
            return makeStep(node, a) { inputs in
                let value = try present(inputs[0])
                let axes = try attributeAxes ?? (inputs.count > 1 && inputs[1] != nil ? integerValue(inputs[1], "axes").values.map { Int($0) } : nil)
                var shape = value.shape
                if op == "Squeeze" {
                    let rank = shape.count
                    let remove = try Set((axes ?? (0..<rank).filter { shape[$0] == 1 }).map { try Indexing.axis($0, rank: rank) })
                    guard remove.allSatisfy({ shape[$0] == 1 }) else {
                        throw TensorError.invalidArgument(operation: op, message: "axes \(axes ?? []) of \(shape) are not all 1")
                    }
                    shape = (0..<rank).filter { !remove.contains($0) }.map { shape[$0] }
                } else {
                    guard let axes else { throw TensorError.invalidArgument(operation: op, message: "no axes") }
                    let rank = shape.count + axes.count
                    let inserted = try Set(axes.map { try Indexing.axis($0, rank: rank) })
                    guard inserted.count == axes.count else { throw TensorError.invalidArgument(operation: op, message: "repeated axes \(axes)") }
                    var source = shape.makeIterator()
                    shape = (0..<rank).map { inserted.contains($0) ? 1 : source.next() ?? 1 }
                }
                return [try reshape(value, shape)]
            }

        case "Transpose":
            let permutation = try a.ints("perm")
            return makeStep(node, a) { inputs in
                let value = try present(inputs[0])
                let perm = permutation ?? Array((0..<value.shape.count).reversed())
                return [try remapValue(value, try Indexing.transpose(value.shape, perm))]
            }

        case "Concat":
            let axis = try a.int("axis", opset < 4 ? 1 : Int.min)
            guard axis != Int.min else { throw a.invalid("Concat without axis") }
            try trainOperands(node.input)
            return makeStep(node, a) { inputs in try [concatenate(inputs.map(present), axis: axis)] }

        case "Shape":
            let start = try a.int("start", 0), end = try a.int("end", Int.max)
            return makeStep(node, a) { inputs in
                let shape = try present(inputs[0]).shape.map(Int64.init)
                let rank = shape.count
                let first = min(max(start < 0 ? start + rank : start, 0), rank)
                let last = min(max(end == Int.max ? rank : (end < 0 ? end + rank : end), first), rank)
                return [.integer(ONNXIntegers(shape: [last - first], values: Array(shape[first..<last])))]
            }

        case "Size":
            return makeStep(node, a) { inputs in
                [.integer(ONNXIntegers(shape: [], values: [Int64(try present(inputs[0]).shape.reduce(1, *))]))]
            }

        case "Gather":
            let axis = try a.int("axis", 0)
            try trainOperands([node.input[0]])
            return makeStep(node, a) { inputs in
                let value = try present(inputs[0])
                return [try remapValue(value, try Indexing.gather(value.shape, axis: axis, indices: integerValue(inputs[1], "indices")))]
            }

        case "Slice":
            let attributeForm = opset < 10 ? (try a.ints("starts"), try a.ints("ends"), try a.ints("axes")) : nil
            try trainOperands([node.input[0]])
            return makeStep(node, a) { inputs in
                let value = try present(inputs[0])
                let starts: [Int], ends: [Int], axes: [Int], steps: [Int]
                if let attributeForm {
                    guard let s = attributeForm.0, let e = attributeForm.1 else { throw TensorError.invalidArgument(operation: op, message: "no starts or ends") }
                    (starts, ends) = (s, e)
                    axes = attributeForm.2 ?? Array(0..<s.count)
                    steps = [Int](repeating: 1, count: s.count)
                } else {
                    starts = try integerValue(inputs[1], "starts").values.map { Int(clamping: $0) }
                    ends = try integerValue(inputs[2], "ends").values.map { Int(clamping: $0) }
                    axes = try inputs.count > 3 && inputs[3] != nil ? integerValue(inputs[3], "axes").values.map { Int($0) } : Array(0..<starts.count)
                    steps = try inputs.count > 4 && inputs[4] != nil ? integerValue(inputs[4], "steps").values.map { Int(clamping: $0) } : [Int](repeating: 1, count: starts.count)
                }
                return [try remapValue(value, try Indexing.slice(value.shape, starts: starts, ends: ends, axes: axes, steps: steps))]
            }

        case "Tile", "Expand":
            try trainOperands([node.input[0]])
            return makeStep(node, a) { inputs in
                let value = try present(inputs[0])
                let argument = try integerValue(inputs[1], op == "Tile" ? "repeats" : "shape").values.map { Int($0) }
                return [try remapValue(value, op == "Tile" ? try Indexing.tile(value.shape, repeats: argument)
                                                           : try Indexing.expand(value.shape, to: argument))]
            }

        case "Cast":
            let target = try a.int("to", 0)
            guard [1, 6, 7].contains(target) else { throw a.unsupported("cast to data type \(target) (float32, int32 and int64 are supported)") }
            a.ignore("saturate")
            return makeStep(node, a) { inputs in
                switch (try present(inputs[0]), target) {
                case let (.float(x), 1): return [.float(x)]
                case let (.integer(x), 1): return [.float(try Tensor(shape: x.shape, values: x.values.map(Float.init)))]
                case let (.integer(x), _): return [.integer(x)]
                case let (.float(x), _):
                    let values = try x.toArray()
                    guard values.allSatisfy({ $0.isFinite && abs($0) < 9.2e18 }) else {
                        throw TensorError.invalidArgument(operation: op, message: "a value that no integer holds")
                    }
                    return [.integer(ONNXIntegers(shape: x.shape, values: values.map { Int64($0.rounded(.towardZero)) }))]
                }
            }

        case "ConstantOfShape":
            var fill: ONNXValue = .float(Tensor(scalar: 0))
            if let tensor = try a.tensor("value") {
                var decoder = TensorDecoder(path: graph.path, limits: .standard, folder: nil)
                fill = try decoder.decode(tensor)
            }
            return makeStep(node, a) { inputs in
                let shape = try integerValue(inputs[0], "input").values.map { Int($0) }
                _ = try Indexing.checkedCount(shape, op)
                switch fill {
                case let .float(t): return [.float(Tensor(repeating: try t.toArray().first ?? 0, shape: shape))]
                case let .integer(i): return [.integer(ONNXIntegers(shape: shape, values: [Int64](repeating: i.values.first ?? 0, count: shape.reduce(1, *))))]
                }
            }

        case "Softmax", "LogSoftmax":
            let axis = try a.int("axis", opset < 13 ? 1 : -1)
            return makeStep(node, a) { inputs in
                [.float(try softmax(try floatValue(inputs[0], "input"), axis: axis, log: op == "LogSoftmax", coerced: opset < 13))]
            }

        case "LRN":
            let size = try a.int("size", 0)
            let (alpha, beta, bias) = (try a.float("alpha", 1e-4), try a.float("beta", 0.75), try a.float("bias", 1))
            guard size > 0 else { throw a.invalid("LRN size \(size)") }
            return makeStep(node, a) { inputs in
                [.float(try localResponseNorm(try floatValue(inputs[0], "X"), size: size, alpha: alpha, beta: beta, k: bias, name: op))]
            }

        case "Pad":
            return try padding(node, a)

        case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceL2",
             "ReduceLogSum", "ReduceLogSumExp":
            let reduction: Reduction = ["ReduceMean": .mean, "ReduceSum": .sum, "ReduceMax": .maximum, "ReduceMin": .minimum,
                                        "ReduceProd": .product, "ReduceSumSquare": .sumSquare, "ReduceL1": .l1, "ReduceL2": .l2,
                                        "ReduceLogSum": .logSum][op] ?? .logSumExp
            let keep = try a.int("keepdims", 1) != 0
            let noopWithEmptyAxes = try a.int("noop_with_empty_axes", 0) != 0
            let axesAsInput = op == "ReduceSum" ? opset >= 13 : opset >= 18
            let attributeAxes = axesAsInput ? nil : try a.ints("axes")
            return makeStep(node, a) { inputs in
                let x = try floatValue(inputs[0], "data")
                let axes = try attributeAxes ?? (axesAsInput && inputs.count > 1 && inputs[1] != nil
                                                 ? integerValue(inputs[1], "axes").values.map { Int($0) } : [])
                if axes.isEmpty && noopWithEmptyAxes { return [.float(x)] }
                return [.float(try reduce(x, reduction, axes: axes, keepingDimensions: keep, name: op))]
            }

        default:
            throw a.unsupported("operator \(op)")
        }
    }

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
                        y = try broadcast(y, share, .divide, name: op)
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
            if let c, plainBias == nil, beta != 0 { y = try broadcast(y, beta == 1 ? c : c.scaled(by: beta), .add, name: "Gemm") }
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
            if case let .integer(x) = data { return [.integer(x.remapped(shape, sources, fill: Int64(value)))] }
            return [.float(try remap(try floatValue(data, "data"), to: shape, sources: sources, fill: value, name: "Pad"))]
        }
    }

    /// The elementwise function for unary operators that Fovea computes with `elementwise` (nil for other operators).
    func unaryFunction(_ op: String, _ a: Attributes) throws -> ((Tensor) throws -> Tensor)? {
        func function(_ value: @escaping @Sendable (Float) -> Float, _ derivative: @escaping @Sendable (Float, Float) -> Float)
            -> (Tensor) throws -> Tensor {
            let f = ElementwiseFunction(op, value: value, derivative: derivative)
            return { try elementwise($0, f) }
        }
        switch op {
        case "Abs": return function({ abs($0) }, { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) })
        case "Neg": return function({ -$0 }, { _, _ in -1 })
        case "Exp": return function({ exp($0) }, { _, y in y })
        case "Log": return function({ log($0) }, { x, _ in 1 / x })
        case "Sqrt": return function({ $0.squareRoot() }, { _, y in 0.5 / y })
        case "Reciprocal": return function({ 1 / $0 }, { _, y in -y * y })
        case "Floor": return function({ $0.rounded(.down) }, { _, _ in 0 })
        case "Ceil": return function({ $0.rounded(.up) }, { _, _ in 0 })
        case "Round": return function({ $0.rounded(.toNearestOrEven) }, { _, _ in 0 })
        case "Sign": return function({ $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }, { _, _ in 0 })
        case "Sin": return function({ sin($0) }, { x, _ in cos(x) })
        case "Cos": return function({ cos($0) }, { x, _ in -sin(x) })
        case "Tan": return function({ Foundation.tan($0) }, { _, y in 1 + y * y })
        case "Asin": return function({ asin($0) }, { x, _ in 1 / (1 - x * x).squareRoot() })
        case "Acos": return function({ acos($0) }, { x, _ in -1 / (1 - x * x).squareRoot() })
        case "Atan": return function({ atan($0) }, { x, _ in 1 / (1 + x * x) })
        case "Sinh": return function({ sinh($0) }, { x, _ in cosh(x) })
        case "Cosh": return function({ cosh($0) }, { x, _ in sinh(x) })
        case "Asinh": return function({ asinh($0) }, { x, _ in 1 / (x * x + 1).squareRoot() })
        case "Acosh": return function({ acosh($0) }, { x, _ in 1 / (x * x - 1).squareRoot() })
        case "Atanh": return function({ atanh($0) }, { x, _ in 1 / (1 - x * x) })
        case "Erf": return function({ erf($0) }, { x, _ in 2 / Float.pi.squareRoot() * exp(-x * x) })
        case "Softplus": return function({ $0 > 20 ? $0 : log1p(exp($0)) }, { x, _ in 1 / (1 + exp(-x)) })
        case "Softsign": return function({ $0 / (1 + abs($0)) }, { x, _ in 1 / ((1 + abs(x)) * (1 + abs(x))) })
        case "Elu":
            let alpha = try a.float("alpha", 1)
            return function({ $0 > 0 ? $0 : alpha * (exp($0) - 1) }, { x, y in x > 0 ? 1 : y + alpha })
        case "Celu":
            let alpha = try a.float("alpha", 1)
            return function({ max(0, $0) + min(0, alpha * (exp($0 / alpha) - 1)) }, { x, _ in x > 0 ? 1 : exp(x / alpha) })
        case "Selu":
            let alpha = try a.float("alpha", 1.67326319217681884765625), gamma = try a.float("gamma", 1.05070102214813232421875)
            return function({ $0 > 0 ? gamma * $0 : gamma * alpha * (exp($0) - 1) }, { x, _ in x > 0 ? gamma : gamma * alpha * exp(x) })
        case "ThresholdedRelu":
            let alpha = try a.float("alpha", 1)
            return function({ $0 > alpha ? $0 : 0 }, { x, _ in x > alpha ? 1 : 0 })
        case "HardSigmoid":
            let alpha = try a.float("alpha", 0.2), beta = try a.float("beta", 0.5)
            return function({ max(0, min(1, alpha * $0 + beta)) }, { x, _ in (0 < alpha * x + beta && alpha * x + beta < 1) ? alpha : 0 })
        case "Shrink":
            let bias = try a.float("bias", 0), lambda = try a.float("lambd", 0.5)
            return function({ $0 < -lambda ? $0 + bias : ($0 > lambda ? $0 - bias : 0) }, { x, _ in abs(x) > lambda ? 1 : 0 })
        case "Mish":
            return function({ $0 * Foundation.tanh(log1p(exp($0))) }, { x, _ in
                let t = Foundation.tanh(log1p(exp(x)))
                return t + x * (1 - t * t) / (1 + exp(-x))
            })
        default: return nil
        }
    }
}

func clipFunction(_ lower: Float, _ upper: Float) -> ElementwiseFunction {
    ElementwiseFunction("Clip", value: { min(max($0, lower), upper) }, derivative: { x, _ in x >= lower && x <= upper ? 1 : 0 })
}

/// An integer tensor as floats (exact up to 2²⁴).
func floatTensor(_ integers: ONNXIntegers) throws -> Tensor {
    try Tensor(shape: integers.shape, values: integers.values.map(Float.init))
}

/// A float tensor, or an integer one converted (operands of mixed-type Pow).
func numericTensor(_ value: ONNXValue) throws -> Tensor {
    switch value {
    case let .float(tensor): return tensor
    case let .integer(integers): return try floatTensor(integers)
    }
}

/// A float function applied to an integer tensor, rounded back toward zero (Neg, Abs, Sign, Relu of integers).
func integerMap(_ integers: ONNXIntegers, _ function: (Tensor) throws -> Tensor) throws -> ONNXIntegers {
    let values = try Autodiff.withoutRecording { try function(try floatTensor(integers)).toArray() }
    return ONNXIntegers(shape: integers.shape, values: values.map(integerPart))
}

/// `value` rounded toward zero, saturated to Int64's range (NaN is 0).
func integerPart(_ value: Float) -> Int64 {
    guard value.isFinite else { return value.isNaN ? 0 : (value > 0 ? .max : .min) }
    return abs(value) < 9.2e18 ? Int64(value.rounded(.towardZero)) : (value > 0 ? .max : .min)
}

func present(_ value: ONNXValue?) throws -> ONNXValue {
    guard let value else { throw TensorError.invalidArgument(operation: "input", message: "missing") }
    return value
}

func scalar(_ value: ONNXValue?, _ what: String) throws -> Float {
    switch value {
    case let .float(tensor)?:
        guard tensor.count == 1 else { throw TensorError.shapeMismatch(operation: what, expected: "one element", actual: tensor.shape) }
        return try tensor.toArray()[0]
    case let .integer(integers)?:
        guard integers.values.count == 1 else { throw TensorError.shapeMismatch(operation: what, expected: "one element", actual: integers.shape) }
        return Float(integers.values[0])
    case nil: throw TensorError.invalidArgument(operation: what, message: "missing")
    }
}

func integerArithmetic(_ op: String, _ a: Int64, _ b: Int64) throws -> Int64 {
    switch op {
    case "Add": return a &+ b
    case "Sub": return a &- b
    case "Mul": return a &* b
    case "Div":
        guard b != 0 else { throw TensorError.invalidArgument(operation: "Div", message: "integer division by zero") }
        return a.dividedReportingOverflow(by: b).partialValue
    default:
        guard b >= 0, b < 64 else { throw TensorError.invalidArgument(operation: "Pow", message: "integer exponent \(b)") }
        var result: Int64 = 1
        for _ in 0..<b { result = result &* a }
        return result
    }
}

func reshape(_ value: ONNXValue, _ shape: [Int]) throws -> ONNXValue {
    switch value {
    case let .float(tensor): return .float(try tensor.reshaped(shape))
    case let .integer(integers):
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == integers.values.count else {
            throw TensorError.shapeMismatch(operation: "reshape", expected: "\(shape)", actual: integers.shape)
        }
        return .integer(ONNXIntegers(shape: shape, values: integers.values))
    }
}

func remapValue(_ value: ONNXValue, _ mapping: ([Int], [Int])) throws -> ONNXValue {
    switch value {
    case let .float(tensor): return .float(try remap(tensor, to: mapping.0, sources: mapping.1))
    case let .integer(integers): return .integer(integers.remapped(mapping.0, mapping.1))
    }
}

/// `x` padded with `fill`: `begin[i]`/`end[i]` elements before/after axis i.
func padded(_ x: Tensor, begin: [Int], end: [Int], fill: Float) throws -> Tensor {
    let (shape, sources) = try Indexing.pad(x.shape, begin: begin, end: end, mode: "constant")
    return try remap(x, to: shape, sources: sources, fill: fill, name: "pad")
}

/// Concatenation along `axis`: channels of 4-D float tensors on the fast path, anything else by remapping.
func concatenate(_ values: [ONNXValue], axis: Int) throws -> ONNXValue {
    guard let first = values.first else { throw TensorError.invalidArgument(operation: "Concat", message: "no inputs") }
    let rank = first.shape.count
    let axis = try Indexing.axis(axis, rank: rank)
    for value in values where value.shape.count != rank || (0..<rank).contains(where: { $0 != axis && value.shape[$0] != first.shape[$0] }) {
        throw TensorError.incompatibleShapes(operation: "Concat", first.shape, value.shape)
    }
    var shape = first.shape
    shape[axis] = values.reduce(0) { $0 + $1.shape[axis] }
    if case .integer = first {
        let parts = try values.map { try integerValue($0, "Concat input") }
        var result = [Int64](repeating: 0, count: shape.reduce(1, *))
        var offset = 0
        for part in parts {
            for (i, s) in Indexing.concatenationPart(part.shape, into: shape, axis: axis, offset: offset).enumerated() where s >= 0 {
                result[i] = part.values[s]
            }
            offset += part.shape[axis]
        }
        return .integer(ONNXIntegers(shape: shape, values: result))
    }
    let tensors = try values.map { try floatValue($0, "Concat input") }
    if rank == 4 && axis == 1 { return .float(try concatenateChannels(tensors, name: "Concat")) }
    if tensors.count == 1 { return .float(tensors[0]) }
    var result: Tensor?
    var offset = 0
    for tensor in tensors {
        let part = try remap(tensor, to: shape, sources: Indexing.concatenationPart(tensor.shape, into: shape, axis: axis, offset: offset),
                             name: "Concat")
        result = try result.map { try broadcast($0, part, .add, name: "Concat") } ?? part
        offset += tensor.shape[axis]
    }
    return .float(result ?? tensors[0])
}

/// Softmax along `axis`; `coerced` is the rule before opset 13 (flatten to 2-D at `axis`).
func softmax(_ x: Tensor, axis: Int, log: Bool, coerced: Bool) throws -> Tensor {
    let shape = x.shape
    let rank = max(shape.count, 1)
    let axis = try Indexing.axis(axis, rank: rank)
    let apply = { (t: Tensor) throws -> Tensor in log ? try logSoftmax(t) : try FoveaTensor.softmax(t) }
    if coerced || axis == rank - 1 {
        let rows = coerced ? shape[..<axis].reduce(1, *) : shape.dropLast().reduce(1, *)
        let flat = try x.reshaped([rows, x.count / max(rows, 1)])
        return try apply(flat).reshaped(shape)
    }
    // Move the axis last, normalise rows, move it back.
    var permutation = Array(0..<rank)
    permutation.remove(at: axis)
    permutation.append(axis)
    let moved = try x.transposed(permutation)
    let normalized = try apply(moved.reshaped([moved.count / shape[axis], shape[axis]])).reshaped(moved.shape)
    var inverse = [Int](repeating: 0, count: rank)
    for (i, p) in permutation.enumerated() { inverse[p] = i }
    return try normalized.transposed(inverse)
}

/// Begin and end padding per spatial axis for a window operator, from explicit `pads` or `autoPad`.
func windowPads(_ input: [Int], kernel: [Int], strides: [Int], dilations: [Int], pads: [Int]?, autoPad: String,
                operation: String) throws -> ([Int], [Int]) {
    let n = input.count
    guard kernel.count == n, strides.count == n, dilations.count >= n, strides.allSatisfy({ $0 > 0 }),
          kernel.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }) else {
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
        guard pads.count == 2 * n, pads.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidArgument(operation: operation, message: "pads \(pads) for \(n)-D input")
        }
        return (Array(pads[..<n]), Array(pads[n...]))
    }
}
