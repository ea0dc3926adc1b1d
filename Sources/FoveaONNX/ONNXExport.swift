import Foundation
import SwiftProtobuf
import FoveaTensor
import FoveaNN

/// How `ONNXExporter` writes a model.
public struct ONNXExportOptions: Sendable {
    /// Default-domain opset of the file (11 to 18).
    public var opset: Int
    /// A fixed batch size, or nil for a symbolic ("batch") first dimension.
    public var batchSize: Int?
    /// Fold each batch norm that follows a convolution into the convolution's weights and bias.
    public var foldBatchNorm: Bool
    /// `metadata_props` of the model (class names, preprocessing, …).
    public var metadata: [String: String]
    /// Name of the graph (the architecture).
    public var graphName: String

    /// The opsets the exporter writes.
    public static let supportedOpsets = 11...18

    /// Creates options: opset 17, dynamic batch, batch norms kept.
    public init(opset: Int = 17, batchSize: Int? = nil, foldBatchNorm: Bool = false, metadata: [String: String] = [:],
                graphName: String = "fovea") {
        (self.opset, self.batchSize, self.foldBatchNorm, self.metadata, self.graphName) = (opset, batchSize, foldBatchNorm, metadata, graphName)
    }
}

/// Writes a Fovea model as an ONNX graph by tracing one inference pass: every operation the layers run becomes a node,
/// parameters and buffers become initializers under their state-dict names, constant tensors a layer holds (e.g. the
/// CIFAR ResNets' zero-padding shortcut) become initializers too. The graph has one input `input` (N, C, H, W) and one
/// output `logits`.
public enum ONNXExporter {
    /// The serialized model of `model` for inputs of `inputShape` (C, H, W).
    public static func serialize(_ model: Layer, inputShape: [Int], options: ONNXExportOptions = ONNXExportOptions()) throws -> [UInt8] {
        guard ONNXExportOptions.supportedOpsets.contains(options.opset) else {
            throw ONNXError.export(message: "opset \(options.opset) is not one Fovea writes (\(ONNXExportOptions.supportedOpsets.lowerBound)–\(ONNXExportOptions.supportedOpsets.upperBound))")
        }
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ONNXError.export(message: "input shape \(inputShape) is not (C, H, W)")
        }
        if let batch = options.batchSize, batch < 1 { throw ONNXError.export(message: "batch size \(batch) must be at least 1") }
        let wasTraining = (model as? any ModeDependentLayer)?.isTraining ?? model.namedLayers().contains {
            ($0.1 as? any ModeDependentLayer)?.isTraining ?? false
        }
        model.eval()
        defer { if wasTraining { model.train() } }
        var builder = GraphBuilder(options: options)
        for (name, tensor) in model.stateEntries() { builder.register(tensor, name: name) }
        for (path, layer) in model.namedLayers() {
            for child in Mirror(reflecting: layer).children {
                guard let label = child.label, let tensor = child.value as? Tensor else { continue }
                builder.register(tensor, name: (path.isEmpty ? "" : path + ".") + label)
            }
        }
        // One image with varied values, so that no operation sees only zeros.
        let count = inputShape.reduce(1, *)
        let input = try Tensor(shape: [1] + inputShape, values: (0..<count).map { Float(($0 * 7919) % 997) / 997 - 0.5 })
        builder.defineInput(input)
        let (output, trace) = try OperationTrace.run { try Autodiff.withoutRecording { try model(input) } }
        for record in trace.records { try builder.add(record) }
        return try builder.finish(output: output, inputShape: inputShape).serializedBytes()
    }
}

/// Assembles nodes and initializers from trace records.
struct GraphBuilder {
    let options: ONNXExportOptions
    /// Names of the tensors seen so far.
    var names: [TraceIdentity: String] = [:]
    /// Parameters, buffers and constants not yet written as initializers (written when first read).
    var pending: [TraceIdentity: (String, Tensor)] = [:]
    var initializers: [Onnx_TensorProto] = []
    var written = Set<String>()
    var nodes: [Onnx_NodeProto] = []
    var counter = 0

    init(options: ONNXExportOptions) { self.options = options }

    /// Makes `tensor` (a parameter, buffer or constant of the model) known as `name`, written as an initializer if read.
    mutating func register(_ tensor: Tensor, name: String) {
        let identity = tensor.traceIdentity
        if pending[identity] == nil && names[identity] == nil { pending[identity] = (name, tensor) }
    }

    mutating func defineInput(_ tensor: Tensor) { names[tensor.traceIdentity] = "input" }

    mutating func fresh(_ stem: String) -> String {
        counter += 1
        return "\(stem)_\(counter)"
    }

    /// The graph name of a tensor an operation reads.
    mutating func name(of tensor: Tensor, in operation: TracedOperation) throws -> String {
        let identity = tensor.traceIdentity
        if let name = names[identity] { return name }
        if let (name, value) = pending[identity] {
            try addInitializer(name, value)
            names[identity] = name
            return name
        }
        throw ONNXError.export(message: "\(operation) reads a tensor of shape \(tensor.shape) that no exported operation produced "
                               + "and that is no parameter, buffer or constant of the model (an operation ONNX export does not know)")
    }

    mutating func addInitializer(_ name: String, _ tensor: Tensor) throws {
        guard written.insert(name).inserted else { return }
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        proto.dims = tensor.shape.map(Int64.init)
        let values = try tensor.toArray()
        proto.rawData = values.withUnsafeBytes { Data($0) }
        initializers.append(proto)
    }

    mutating func constant(_ values: [Float], shape: [Int], stem: String) throws -> String {
        let name = fresh(stem)
        try addInitializer(name, try Tensor(shape: shape, values: values))
        return name
    }

    mutating func integerConstant(_ values: [Int64], stem: String) -> String {
        let name = fresh(stem)
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        proto.dims = [Int64(values.count)]
        proto.rawData = values.withUnsafeBytes { Data($0) }
        initializers.append(proto)
        written.insert(name)
        return name
    }

    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], _ attributes: [Onnx_AttributeProto] = [], output: String? = nil) -> String {
        var node = Onnx_NodeProto()
        node.opType = op
        node.input = inputs
        let result = output ?? fresh(op.lowercased())
        node.output = [result]
        node.name = "\(op)_\(nodes.count)"
        node.attribute = attributes
        nodes.append(node)
        return result
    }

    /// `activation(x)` as ONNX nodes.
    mutating func activation(_ activation: Activation, _ x: String) throws -> String {
        switch activation {
        case .relu: return node("Relu", [x])
        case .relu6: return node("Clip", [x, try constant([0], shape: [], stem: "zero"), try constant([6], shape: [], stem: "six")])
        case let .clip(lower, upper):
            return node("Clip", [x, try constant([lower], shape: [], stem: "min"), try constant([upper], shape: [], stem: "max")])
        case let .leakyRelu(slope): return node("LeakyRelu", [x], [attribute("alpha", float: slope)])
        case .sigmoid: return node("Sigmoid", [x])
        case .tanh: return node("Tanh", [x])
        case .silu: return node("Mul", [x, node("Sigmoid", [x])])
        case .hardSwish:
            if options.opset >= 14 { return node("HardSwish", [x]) }
            return node("Mul", [x, node("HardSigmoid", [x], [attribute("alpha", float: 1.0 / 6), attribute("beta", float: 0.5)])])
        case let .linear(scale, shift):
            let scaled = scale == 1 ? x : node("Mul", [x, try constant([scale], shape: [], stem: "scale")])
            return shift == 0 ? scaled : node("Add", [scaled, try constant([shift], shape: [], stem: "shift")])
        }
    }

    mutating func add(_ record: OperationTrace.Record) throws {
        let operation = record.operation
        if case .alias = operation {
            // Reorders of tensors the graph does not hold (an operation's own temporaries) are not part of it.
            if let known = names[record.inputs[0].traceIdentity] { names[record.output.traceIdentity] = known }
            else if let (name, value) = pending[record.inputs[0].traceIdentity] { pending[record.output.traceIdentity] = (name, value) }
            return
        }
        let inputs = try record.inputs.map { try name(of: $0, in: operation) }
        let output: String
        switch operation {
        case .alias:
            return
        case let .convolution(geometry, bias, residual, activation):
            let kernel = Array(record.inputs[1].shape[2...])
            var y = node("Conv", Array(inputs.prefix(bias ? 3 : 2)), [
                attribute("kernel_shape", ints: kernel), attribute("strides", ints: geometry.stride),
                attribute("pads", ints: geometry.padding + geometry.padding), attribute("dilations", ints: geometry.dilation),
                attribute("group", int: geometry.groups)])
            if residual { y = node("Add", [y, inputs[bias ? 3 : 2]]) }
            output = try activation.map { try self.activation($0, y) } ?? y
        case let .batchNorm(epsilon):
            output = node("BatchNormalization", inputs, [attribute("epsilon", float: epsilon)])
        case let .activation(function):
            output = try activation(function, inputs[0])
        case .add:
            output = node("Add", inputs)
        case .addReLU:
            output = node("Relu", [node("Add", inputs)])
        case let .scale(factor):
            output = node("Mul", [inputs[0], try constant([factor], shape: [], stem: "factor")])
        case .multiplyChannels:
            output = node("Mul", inputs)
        case let .maxPool(geometry):
            output = node("MaxPool", [inputs[0]], poolAttributes(geometry))
        case let .averagePool(geometry, includePad):
            output = node("AveragePool", [inputs[0]], poolAttributes(geometry) + [attribute("count_include_pad", int: includePad ? 1 : 0)])
        case let .adaptiveAveragePool(size):
            let (h, w) = (record.inputs[0].shape[2], record.inputs[0].shape[3])
            if size == [1, 1] {
                output = node("GlobalAveragePool", inputs)
            } else if h % size[0] == 0 && w % size[1] == 0 {
                let kernel = [h / size[0], w / size[1]]
                output = kernel == [1, 1] ? node("Identity", inputs)
                    : node("AveragePool", inputs, [attribute("kernel_shape", ints: kernel), attribute("strides", ints: kernel)])
            } else if size[0] % h == 0 && size[1] % w == 0 {
                // Each window is one input pixel: every pixel repeated (size/h)×(size/w) times, by reshape and expand.
                let c = record.inputs[0].shape[1], (kh, kw) = (size[0] / h, size[1] / w)
                let split = node("Reshape", [inputs[0], integerConstant([0, Int64(c), Int64(h), 1, Int64(w), 1], stem: "shape")])
                let spread = node("Expand", [split, integerConstant([1, Int64(c), Int64(h), Int64(kh), Int64(w), Int64(kw)], stem: "shape")])
                output = node("Reshape", [spread, integerConstant([0, Int64(c), Int64(size[0]), Int64(size[1])], stem: "shape")])
            } else {
                throw ONNXError.export(message: "adaptive average pooling of \(h)×\(w) to \(size) has windows of unequal size, "
                                       + "which ONNX's pooling cannot express; export at an input size where \(size) divides the map")
            }
        case .linear:
            output = node("Gemm", inputs, [attribute("transB", int: 1)])
        case .reshape:
            let (from, to) = (record.inputs[0].shape, record.output.shape)
            if to.count == 2, from.count >= 2, to[0] == from[0] {
                output = node("Flatten", inputs, [attribute("axis", int: 1)])
            } else if to.first == from.first {
                // Dimension 0 copies the batch, so the graph keeps a symbolic batch.
                output = node("Reshape", [inputs[0], integerConstant([0] + to.dropFirst().map(Int64.init), stem: "shape")])
            } else {
                throw ONNXError.export(message: "a reshape of \(from) to \(to) changes the batch dimension")
            }
        case .concatenateChannels:
            output = node("Concat", inputs, [attribute("axis", int: 1)])
        case let .softmax(log):
            output = node(log ? "LogSoftmax" : "Softmax", inputs, [attribute("axis", int: 1)])
        case let .localResponseNorm(size, alpha, beta, k):
            output = node("LRN", inputs, [attribute("size", int: size), attribute("alpha", float: alpha),
                                          attribute("beta", float: beta), attribute("bias", float: k)])
        }
        names[record.output.traceIdentity] = output
    }

    func poolAttributes(_ geometry: PoolingGeometry) -> [Onnx_AttributeProto] {
        [attribute("kernel_shape", ints: geometry.kernel), attribute("strides", ints: geometry.stride),
         attribute("pads", ints: geometry.padding + geometry.padding), attribute("ceil_mode", int: geometry.ceilMode ? 1 : 0)]
    }

    mutating func finish(output: Tensor, inputShape: [Int]) throws -> Onnx_ModelProto {
        guard let outputName = names[output.traceIdentity] else {
            throw ONNXError.export(message: "the model's output was not produced by any exported operation")
        }
        // The output gets its public name; then nodes whose results nobody reads are dropped (e.g. layout reorders
        // inside operations, pools that adaptive pooling ran).
        for index in nodes.indices { nodes[index].output = nodes[index].output.map { $0 == outputName ? "logits" : $0 } }
        for index in nodes.indices { nodes[index].input = nodes[index].input.map { $0 == outputName ? "logits" : $0 } }
        if outputName == "input" { node("Identity", ["input"], output: "logits") }
        if options.foldBatchNorm { try foldBatchNorms() }
        pruneUnused()
        var graph = Onnx_GraphProto()
        graph.name = options.graphName
        graph.node = nodes
        let used = Set(nodes.flatMap(\.input))
        graph.initializer = initializers.filter { used.contains($0.name) }
        let batch: Onnx_TensorShapeProto.Dimension = {
            var dimension = Onnx_TensorShapeProto.Dimension()
            if let size = options.batchSize { dimension.dimValue = Int64(size) } else { dimension.dimParam = "batch" }
            return dimension
        }()
        graph.input = [valueInfo("input", [batch] + inputShape.map(fixed))]
        graph.output = [valueInfo("logits", [batch] + output.shape.dropFirst().map(fixed))]
        var model = Onnx_ModelProto()
        // IR version 8 came with opset 15; opsets 11–14 go with IR 7.
        model.irVersion = options.opset >= 15 ? 8 : 7
        model.producerName = "fovea"
        model.producerVersion = "1"
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(options.opset)
        model.opsetImport = [opset]
        model.graph = graph
        model.metadataProps = options.metadata.sorted { $0.key < $1.key }.map {
            var entry = Onnx_StringStringEntryProto()
            (entry.key, entry.value) = ($0.key, $0.value)
            return entry
        }
        return model
    }

    /// Drops nodes whose outputs no node reads and that are not the graph output, until none is left.
    mutating func pruneUnused() {
        while true {
            var read = Set(nodes.flatMap(\.input))
            read.insert("logits")
            let kept = nodes.filter { $0.output.contains(where: read.contains) }
            if kept.count == nodes.count { return }
            nodes = kept
        }
    }

    /// Conv → BatchNormalization pairs (the BN the Conv's only reader) become one Conv with folded weights and bias.
    mutating func foldBatchNorms() throws {
        var readers: [String: Int] = [:]
        for node in nodes { for input in node.input { readers[input, default: 0] += 1 } }
        var values: [String: Onnx_TensorProto] = [:]
        for tensor in initializers { values[tensor.name] = tensor }
        func floats(_ name: String) -> [Float]? {
            guard let tensor = values[name] else { return nil }
            return tensor.rawData.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        var index = 0
        while index < nodes.count {
            let norm = nodes[index]
            guard norm.opType == "BatchNormalization", let producer = nodes.firstIndex(where: { $0.output == [norm.input[0]] }),
                  nodes[producer].opType == "Conv", readers[norm.input[0]] == 1,
                  let weight = floats(nodes[producer].input[1]), let gamma = floats(norm.input[1]), let beta = floats(norm.input[2]),
                  let mean = floats(norm.input[3]), let variance = floats(norm.input[4]),
                  let dims = values[nodes[producer].input[1]]?.dims else {
                index += 1
                continue
            }
            let epsilon = norm.attribute.first { $0.name == "epsilon" }?.f ?? 1e-5
            let channels = gamma.count, perChannel = weight.count / max(channels, 1)
            let bias = nodes[producer].input.count > 2 ? floats(nodes[producer].input[2]) ?? [] : [Float](repeating: 0, count: channels)
            var foldedWeight = weight, foldedBias = [Float](repeating: 0, count: channels)
            for k in 0..<channels {
                let scale = gamma[k] / (variance[k] + epsilon).squareRoot()
                for i in 0..<perChannel { foldedWeight[k * perChannel + i] *= scale }
                foldedBias[k] = ((bias.isEmpty ? 0 : bias[k]) - mean[k]) * scale + beta[k]
            }
            let weightName = try constant(foldedWeight, shape: dims.map { Int($0) }, stem: nodes[producer].input[1] + ".folded")
            let biasName = try constant(foldedBias, shape: [channels], stem: norm.input[2] + ".folded")
            nodes[producer].input = [nodes[producer].input[0], weightName, biasName]
            nodes[producer].output = norm.output
            nodes.remove(at: index)
        }
    }
}

func fixed(_ size: Int) -> Onnx_TensorShapeProto.Dimension {
    var dimension = Onnx_TensorShapeProto.Dimension()
    dimension.dimValue = Int64(size)
    return dimension
}

func valueInfo(_ name: String, _ dims: [Onnx_TensorShapeProto.Dimension]) -> Onnx_ValueInfoProto {
    var info = Onnx_ValueInfoProto()
    info.name = name
    var tensor = Onnx_TypeProto.Tensor()
    tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
    var shape = Onnx_TensorShapeProto()
    shape.dim = dims
    tensor.shape = shape
    var type = Onnx_TypeProto()
    type.tensorType = tensor
    info.type = type
    return info
}

func attribute(_ name: String, int value: Int) -> Onnx_AttributeProto {
    var attribute = Onnx_AttributeProto()
    (attribute.name, attribute.type, attribute.i) = (name, .int, Int64(value))
    return attribute
}

func attribute(_ name: String, ints values: [Int]) -> Onnx_AttributeProto {
    var attribute = Onnx_AttributeProto()
    (attribute.name, attribute.type, attribute.ints) = (name, .ints, values.map(Int64.init))
    return attribute
}

func attribute(_ name: String, float value: Float) -> Onnx_AttributeProto {
    var attribute = Onnx_AttributeProto()
    (attribute.name, attribute.type, attribute.f) = (name, .float, value)
    return attribute
}
