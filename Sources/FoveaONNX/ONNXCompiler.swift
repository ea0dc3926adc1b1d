import FoveaTensor
import FoveaNN

/// Turns a checked graph into steps: decides which initializers are Parameters (float operands of operators that
/// train), Buffers (batch-norm statistics) or constants (shapes, bounds, pads read while compiling), and fuses
/// convolution → batch norm → residual addition → activation chains into single steps that run as the zoo's
/// convolutions do.
final class Compiler {
    let graph: ONNXGraph
    var constants: [String: ONNXValue]
    var parameters: [String: Parameter] = [:]
    var parameterOrder: [String] = []
    var buffers: [String: Buffer] = [:]
    var bufferOrder: [String] = []
    var modeLayers: [any ModeDependentLayer] = []
    var dropouts: [(String, Dropout)] = []
    /// Node indices that read each value (a node reading it twice counts twice); graph outputs count as a reader.
    var readers: [String: Int] = [:]
    var consumers: [String: [Int]] = [:]

    init(graph: ONNXGraph) throws {
        self.graph = graph
        constants = graph.initializers
        for (index, node) in graph.nodes.enumerated() {
            guard node.domain.isEmpty || node.domain == "ai.onnx" else {
                throw ONNXError.unsupported(path: graph.path, node: ONNXGraph.label(node, index), operator: node.opType,
                                            opset: graph.opset, detail: "operators of domain '\(node.domain)'")
            }
            for input in node.input where !input.isEmpty {
                readers[input, default: 0] += 1
                consumers[input, default: []].append(index)
            }
        }
        for output in graph.outputs { readers[output, default: 0] += 1 }
        guard ONNXGraph.supportedOpsets.contains(graph.opset) else {
            throw ONNXError.unsupported(path: graph.path, node: "(model)", operator: "opset", opset: graph.opset,
                                        detail: "Fovea reads opsets \(ONNXGraph.supportedOpsets.lowerBound)–\(ONNXGraph.supportedOpsets.upperBound)")
        }
    }

    func label(_ index: Int) -> String { ONNXGraph.label(graph.nodes[index], index) }

    func compile() throws -> [Step] {
        var absorbed = Set<Int>()
        var fused: [Int: Step] = [:]
        // Constant nodes first: fusion reads their values (Clip's bounds from PyTorch's exports).
        for (index, node) in graph.nodes.enumerated() where node.opType == "Constant" {
            let attributes = try Attributes(node, label: label(index), opset: graph.opset, path: graph.path)
            _ = try compile(node, attributes)
            try attributes.finish()
        }
        if KernelFusion.isEnabled {
            for (index, node) in graph.nodes.enumerated() where node.opType == "Conv" && !absorbed.contains(index) {
                if let (group, step) = try fuseConvolution(at: index, sparing: absorbed) {
                    absorbed.formUnion(group)
                    fused[group.max() ?? index] = step
                }
            }
        }
        var steps: [Step] = []
        for (index, node) in graph.nodes.enumerated() where node.opType != "Constant" {
            if let step = fused[index] { steps.append(step); continue }
            if absorbed.contains(index) { continue }
            let attributes = try Attributes(node, label: label(index), opset: graph.opset, path: graph.path)
            do {
                if let step = try compile(node, attributes) { steps.append(step) }
            } catch let error as ONNXError {
                throw error
            } catch {
                // Attribute values no operator takes (a dropout ratio of 2, a kernel of 0): the file's fault.
                throw ONNXError.invalidGraph(path: graph.path, node: label(index), message: "\(error)")
            }
            try attributes.finish()
        }
        return steps
    }

    /// The operators of one input (besides the elementwise functions of `unaryFunction`).
    static let singleInput: Set<String> = ["Identity", "Relu", "Sigmoid", "Tanh", "HardSwish", "LeakyRelu", "Flatten", "Shape",
                                          "Size", "Transpose", "Softmax", "LogSoftmax", "LRN", "GlobalAveragePool",
                                          "GlobalMaxPool", "Cast", "ConstantOfShape", "MaxPool", "AveragePool"]

    /// How many inputs each operator takes (nil: any number from the minimum); `singleInput` ones take one.
    static let arity: [String: (Int, Int?)] = [
        "Constant": (0, 0), "Add": (2, 2), "Sub": (2, 2), "Mul": (2, 2), "Div": (2, 2), "Pow": (2, 2), "PRelu": (2, 2),
        "MatMul": (2, 2), "Gather": (2, 2), "Tile": (2, 2), "Expand": (2, 2), "Reshape": (1, 2), "Squeeze": (1, 2),
        "Unsqueeze": (1, 2), "Dropout": (1, 3), "Clip": (1, 3), "Conv": (2, 3), "Gemm": (2, 3), "BatchNormalization": (5, 5),
        "Pad": (1, 4), "Slice": (1, 5), "Max": (1, nil), "Min": (1, nil), "Sum": (1, nil), "Mean": (1, nil),
        "Concat": (1, nil), "ReduceMean": (1, 2), "ReduceSum": (1, 2), "ReduceMax": (1, 2), "ReduceMin": (1, 2),
        "ReduceProd": (1, 2), "ReduceSumSquare": (1, 2), "ReduceL1": (1, 2), "ReduceL2": (1, 2), "ReduceLogSum": (1, 2),
        "ReduceLogSumExp": (1, 2),
    ]

    /// The node with its input count checked against the operator's and padded with absent ("") inputs up to the
    /// most it takes, so that every step can look at each of its inputs.
    /// Operators Fovea does not know are left as they are (compiling them is `unsupported`).
    func checkedArity(_ node: Onnx_NodeProto, _ a: Attributes, unary: Bool) throws -> Onnx_NodeProto {
        guard let (least, most) = Self.arity[node.opType] ?? (unary || Self.singleInput.contains(node.opType) ? (1, 1) : nil) else {
            return node
        }
        // Every operator Fovea runs defines its first output.
        guard node.output.first?.isEmpty == false else { throw a.invalid("\(node.opType) without its first output") }
        let given = node.input.count
        guard given >= least, most.map({ given <= $0 }) ?? true, node.input.prefix(least).allSatisfy({ !$0.isEmpty }) || least == 0 else {
            throw a.invalid("\(node.opType) takes \(least)\(most.map { $0 == least ? "" : "–\($0)" } ?? " or more") inputs, the node has \(given)")
        }
        var padded = node
        if let most { padded.input += [String](repeating: "", count: most - given) }
        return padded
    }

    // MARK: Initializer roles

    /// The Parameter for float initializer `name` (created once), or nil when `name` is not a float initializer.
    @discardableResult
    func parameter(_ name: String) throws -> Parameter? {
        if let existing = parameters[name] { return existing }
        guard let tensor = try claim(name, trained: true) else { return nil }
        let parameter = Parameter(tensor)
        parameters[name] = parameter
        parameterOrder.append(name)
        return parameter
    }

    /// Makes every float initializer among `inputs` a Parameter (operands that gradients reach).
    func trainOperands(_ inputs: [String]) throws {
        for input in inputs where !input.isEmpty { try parameter(input) }
    }

    /// The Buffer for float initializer `name`, or nil.
    func buffer(_ name: String) throws -> Buffer? {
        if let existing = buffers[name] { return existing }
        guard let tensor = try claim(name, trained: false) else { return nil }
        let buffer = Buffer(tensor)
        buffers[name] = buffer
        bufferOrder.append(name)
        return buffer
    }

    /// The value of float initializer `name`, taken out of the constants to become a Parameter (`trained`) or a
    /// Buffer; nil when it is no float initializer. An initializer cannot be both.
    private func claim(_ name: String, trained: Bool) throws -> Tensor? {
        guard case let .float(tensor)? = graph.initializers[name] else { return nil }
        guard !(trained ? buffers[name] != nil : parameters[name] != nil) else {
            throw ONNXError.invalidGraph(path: graph.path, node: nil,
                                         message: "initializer '\(name)' is both a batch-norm statistic and a trained operand")
        }
        constants[name] = nil
        return tensor
    }

    /// A value known while compiling (initializer or Constant output), or nil.
    func constant(_ name: String) -> ONNXValue? {
        guard !name.isEmpty else { return nil }
        if let value = constants[name] { return value }
        if let value = graph.initializers[name] { return value }
        return nil
    }

    /// The elements of a constant (integer or float) as Doubles, or nil when it is not known while compiling.
    func constantNumbers(_ name: String) -> [Double]? {
        switch constant(name) {
        case let .integer(integers)?: return integers.values.map(Double.init)
        case let .float(tensor)?: return (try? tensor.toArray())?.map(Double.init)
        case nil: return nil
        }
    }

    // MARK: Fusion

    /// The single node reading `value`, when exactly one node reads it once and it is not a graph output.
    func soleConsumer(of value: String) -> Int? {
        guard readers[value] == 1, let only = consumers[value]?.first else { return nil }
        return only
    }

    /// A Conv with constant 4-D weights and static symmetric padding, followed (each as the sole reader of the value
    /// before it) by an optional BatchNormalization in inference form, an optional Add of another value and an
    /// optional activation: one step running `Conv2D.callAsFunction(_:normalizedBy:adding:activation:)`.
    /// Nodes in `taken` already belong to another fused group.
    func fuseConvolution(at index: Int, sparing taken: Set<Int>) throws -> (Set<Int>, Step)? {
        let node = graph.nodes[index]
        guard node.input.count >= 2, node.output.count == 1, !node.input[0].isEmpty, !node.output[0].isEmpty,
              case let .float(weight)? = graph.initializers[node.input[1]], weight.shape.count == 4 else { return nil }
        let attributes = try Attributes(node, label: label(index), opset: graph.opset, path: graph.path)
        guard let geometry = try staticConvolutionGeometry(attributes, kernel: Array(weight.shape[2...])) else { return nil }
        try attributes.finish()
        let biasName = node.input.count > 2 ? node.input[2] : ""
        if !biasName.isEmpty { guard case .float? = graph.initializers[biasName] else { return nil } }
        var group: Set<Int> = [index]
        var current = node.output[0]
        var norm: BatchNorm2D?
        var residual: String?
        var activation: Activation?
        var ops = ["Conv"]
        if let next = soleConsumer(of: current), !taken.contains(next), graph.nodes[next].opType == "BatchNormalization",
           graph.nodes[next].input.first == current, let layer = try batchNormLayer(next) {
            norm = layer
            group.insert(next)
            current = graph.nodes[next].output[0]
            ops.append("BatchNormalization")
        }
        if let next = soleConsumer(of: current), !taken.contains(next), graph.nodes[next].opType == "Add", graph.nodes[next].input.count == 2,
           graph.nodes[next].output.first?.isEmpty == false,
           graph.nodes[next].attribute.isEmpty {
            let add = graph.nodes[next]
            let other = add.input[0] == current ? add.input[1] : add.input[0]
            // The residual must be a run-time value of the same shape (not a broadcast constant such as a bias).
            if other != current, constant(other) == nil {
                residual = other
                group.insert(next)
                current = add.output[0]
                ops.append("Add")
            }
        }
        if let (nodes, function, output) = try fusableActivation(after: current), taken.isDisjoint(with: nodes) {
            activation = function
            group.formUnion(nodes)
            current = output
            ops.append(nodes.count == 2 ? "SiLU" : graph.nodes[nodes.min() ?? 0].opType)
        }
        guard let weightParameter = try parameter(node.input[1]) else { return nil }
        let bias = biasName.isEmpty ? nil : try parameter(biasName)
        let convolution = try Conv2D(weight: weightParameter, bias: bias, geometry: geometry)
        convolution.isTraining = false
        modeLayers.append(convolution)
        let lastLabel = label(group.max() ?? index)
        let step = Step(label: lastLabel, op: ops.joined(separator: "+"), inputs: [node.input[0], residual ?? ""],
                        outputs: [current]) { inputs in
            let x = try floatValue(inputs[0], "X")
            guard let residualValue = inputs[1] else {
                return [.float(try convolution(x, normalizedBy: norm, activation: activation))]
            }
            let residual = try floatValue(residualValue, "residual")
            let size = x.shape.count == 4 ? geometry.outputSize(height: x.shape[2], width: x.shape[3], kernel: Array(weight.shape[2...])) : []
            if residual.shape == [x.shape[0], weight.shape[0]] + size {
                return [.float(try convolution(x, normalizedBy: norm, adding: residual, activation: activation))]
            }
            // A residual that broadcasts: the addition and activation run on their own.
            let sum = try checkedBroadcast(try convolution(x, normalizedBy: norm), residual, .add, name: "Add")
            return [.float(try activation.map { try activate(sum, $0) } ?? sum)]
        }
        return (group, step)
    }

    /// The activation node(s) reading `value` alone, as one Fovea activation: Relu, LeakyRelu, Sigmoid, Tanh,
    /// HardSwish, Clip with constant bounds, or x · Sigmoid(x) (SiLU, as PyTorch exports it).
    func fusableActivation(after value: String) throws -> (Set<Int>, Activation, String)? {
        if readers[value] == 2, let pair = consumers[value], pair.count == 2 {
            let (a, b) = (graph.nodes[pair[0]], graph.nodes[pair[1]])
            let (sigmoid, multiply) = a.opType == "Sigmoid" ? (pair[0], pair[1]) : (pair[1], pair[0])
            let (s, m) = (graph.nodes[sigmoid], graph.nodes[multiply])
            if s.opType == "Sigmoid", m.opType == "Mul", a.opType != b.opType, s.output.first?.isEmpty == false,
               m.output.first?.isEmpty == false, soleConsumer(of: s.output[0]) == multiply,
               Set(m.input) == [value, s.output[0]], m.attribute.isEmpty, s.attribute.isEmpty {
                return ([sigmoid, multiply], .silu, m.output[0])
            }
        }
        guard let next = soleConsumer(of: value), graph.nodes[next].input.first == value,
              graph.nodes[next].output.first?.isEmpty == false else { return nil }
        let node = graph.nodes[next]
        let attributes = try Attributes(node, label: label(next), opset: graph.opset, path: graph.path)
        let activation: Activation
        switch node.opType {
        case "Relu": activation = .relu
        case "Sigmoid": activation = .sigmoid
        case "Tanh": activation = .tanh
        case "HardSwish": activation = .hardSwish
        case "LeakyRelu": activation = .leakyRelu(negativeSlope: try attributes.float("alpha", 0.01))
        case "Clip":
            guard let (lower, upper) = try clipBounds(node, attributes), lower.isFinite, upper.isFinite else { return nil }
            activation = lower == 0 && upper == 6 ? .relu6 : .clip(lower: lower, upper: upper)
        default: return nil
        }
        guard (try? attributes.finish()) != nil else { return nil }
        return ([next], activation, node.output[0])
    }

    /// Clip's bounds when known while compiling (attributes before opset 11, constant inputs from 11); nil otherwise.
    func clipBounds(_ node: Onnx_NodeProto, _ attributes: Attributes) throws -> (Float, Float)? {
        if graph.opset < 11 {
            return (try attributes.float("min", -.infinity), try attributes.float("max", .infinity))
        }
        // nil: the bound is a run-time value.
        func bound(_ position: Int, _ fallback: Float) -> Float? {
            guard position < node.input.count, !node.input[position].isEmpty else { return fallback }
            guard let numbers = constantNumbers(node.input[position]), numbers.count == 1 else { return nil }
            return Float(numbers[0])
        }
        guard let lower = bound(1, -.infinity), let upper = bound(2, .infinity) else { return nil }
        return (lower, upper)
    }

    /// A BatchNorm2D over the node's constant scale, shift, mean and variance (inference form only), or nil.
    func batchNormLayer(_ index: Int) throws -> BatchNorm2D? {
        let node = graph.nodes[index]
        guard node.input.count == 5, node.output.first?.isEmpty == false, node.output[1...].allSatisfy(\.isEmpty),
              node.input[1...].allSatisfy({ if case .float? = graph.initializers[$0] { true } else { false } }) else { return nil }
        let attributes = try Attributes(node, label: label(index), opset: graph.opset, path: graph.path)
        let epsilon = try attributes.float("epsilon", 1e-5), momentum = try attributes.float("momentum", 0.9)
        if graph.opset < 9, try attributes.int("spatial", 1) != 1 { throw attributes.unsupported("spatial = 0") }
        if try attributes.int("training_mode", 0) != 0 { throw attributes.unsupported("training_mode = 1") }
        attributes.ignore("is_test", "consumed_inputs")
        try attributes.finish()
        guard let scale = try parameter(node.input[1]), let shift = try parameter(node.input[2]),
              let mean = try buffer(node.input[3]), let variance = try buffer(node.input[4]) else { return nil }
        let layer = try BatchNorm2D(weight: scale, bias: shift, runningMean: mean, runningVariance: variance,
                                    epsilon: epsilon, momentum: 1 - momentum)
        layer.isTraining = false
        modeLayers.append(layer)
        return layer
    }

    /// Stride, symmetric padding and dilation of a 2-D Conv when they do not depend on the input size (no SAME
    /// auto-padding, equal begin and end pads); nil otherwise.
    func staticConvolutionGeometry(_ attributes: Attributes, kernel: [Int]) throws -> ConvolutionGeometry? {
        let autoPad = try attributes.string("auto_pad", "NOTSET")
        guard autoPad == "NOTSET" || autoPad == "VALID" else { return nil }
        if let declared = try attributes.ints("kernel_shape"), declared != kernel { return nil }
        let strides = try attributes.ints("strides") ?? [1, 1], dilations = try attributes.ints("dilations") ?? [1, 1]
        let pads = autoPad == "VALID" ? [0, 0, 0, 0] : (try attributes.ints("pads") ?? [0, 0, 0, 0])
        guard strides.count == 2, dilations.count == 2, pads.count == 4, pads[0] == pads[2], pads[1] == pads[3],
              pads.allSatisfy({ (0...(1 << 20)).contains($0) }), strides.allSatisfy({ (1...(1 << 20)).contains($0) }),
              dilations.allSatisfy({ (1...(1 << 20)).contains($0) }) else { return nil }
        return ConvolutionGeometry(stride: strides, padding: [pads[0], pads[1]], dilation: dilations,
                                   groups: try attributes.int("group", 1))
    }
}

/// The float tensor of a step argument, or an error naming which input it was.
func floatValue(_ value: ONNXValue?, _ what: String) throws -> Tensor {
    switch value {
    case let .float(tensor)?: return tensor
    case .integer?: throw TensorError.invalidArgument(operation: what, message: "expected a float tensor, got an integer one")
    case nil: throw TensorError.invalidArgument(operation: what, message: "missing")
    }
}

/// The integer tensor of a step argument.
func integerValue(_ value: ONNXValue?, _ what: String) throws -> ONNXIntegers {
    switch value {
    case let .integer(integers)?: return integers
    case .float?: throw TensorError.invalidArgument(operation: what, message: "expected an integer tensor, got a float one")
    case nil: throw TensorError.invalidArgument(operation: what, message: "missing")
    }
}
