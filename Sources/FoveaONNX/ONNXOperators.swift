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
    func compile(_ given: Onnx_NodeProto, _ a: Attributes) throws -> Step? {
        let unary = try unaryFunction(given.opType, a)
        let node = try checkedArity(given, a, unary: unary != nil)
        let op = node.opType
        let opset = graph.opset
        if let function = unary {
            return makeStep(node, a) { inputs in
                if case let .integer(x)? = inputs[0] { return [.integer(try integerMap(x, function))] }
                return [.float(try function(try floatValue(inputs[0], "X")))]
            }
        }
        switch op {
        case "Constant":
            guard node.output.count == 1 else { throw a.invalid("Constant has \(node.output.count) outputs") }
            var decoder = TensorDecoder(path: graph.path, limits: graph.limits, folder: nil)
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
                a.ignore("is_test", "consumed_inputs")
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
                return [.float(try checkedBroadcast(positive, try checkedBroadcast(negative, slope, .multiply, name: "PRelu"), .add, name: "PRelu"))]
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
                    let result = try checkedBroadcast(try floatTensor(x), y, operation, name: op)
                    return [.integer(ONNXIntegers(shape: result.shape, values: try result.toArray().map(integerPart)))]
                default:
                    return [.float(try checkedBroadcast(try floatValue(left, "A"), try numericTensor(right), operation, name: op))]
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
                for tensor in tensors.dropFirst() { result = try checkedBroadcast(result, tensor, operation, name: op) }
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
                let centred = try checkedBroadcast(x, mean, .subtract, name: op)
                let normalized = try checkedBroadcast(centred, try checkedBroadcast(deviation, scale, .multiply, name: op), .multiply, name: op)
                return [.float(try checkedBroadcast(normalized, shift, .add, name: op))]
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
                // The broadcast operands and the product must stay within the element limit.
                if let batch = broadcastShape(Array(x.shape.dropLast(2)), Array(y.shape.dropLast(2))) {
                    _ = try Indexing.checkedCount(batch + [x.shape.count > 1 ? x.shape[x.shape.count - 2] : 1,
                                                          max(x.shape.last ?? 1, y.shape.last ?? 1)], op)
                }
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
                // The usual (N, C, H, W) → (N, C·H·W) runs as `flattened()`, where Grad-CAM's probe finds the feature map.
                if split == 1, shape.count == 4, case let .float(tensor) = value { return [.float(try tensor.flattened())] }
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
                let count = value.shape.reduce(1, *)
                if let inferred = shape.firstIndex(of: -1) {
                    var known = 1
                    for (i, dim) in shape.enumerated() where i != inferred {
                        let (product, overflow) = known.multipliedReportingOverflow(by: dim)
                        guard !overflow, product <= count else { throw TensorError.shapeMismatch(operation: op, expected: "\(requested)", actual: value.shape) }
                        known = product
                    }
                    guard known > 0, count % known == 0 else {
                        throw TensorError.shapeMismatch(operation: op, expected: "\(requested)", actual: value.shape)
                    }
                    shape[inferred] = count / known
                }
                guard (try? Indexing.checkedCount(shape, op)) == count else {
                    throw TensorError.shapeMismatch(operation: op, expected: "\(count) elements as \(requested)", actual: value.shape)
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
                var decoder = TensorDecoder(path: graph.path, limits: graph.limits, folder: nil)
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
            guard (1...(1 << 16)).contains(size) else { throw a.invalid("LRN size \(size)") }
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
}
