import Foundation
import SwiftProtobuf
import FoveaTensor

/// A checked ONNX graph: nodes in an order where every input is defined before it is used, initializers decoded, the
/// operator-set version of the default domain, and the model's metadata.
public struct ONNXGraph {
    /// The file it came from (in messages).
    public let path: String
    /// Version of the default (ai.onnx) operator set the model imports.
    public let opset: Int
    /// Nodes in a valid execution order.
    let nodes: [Onnx_NodeProto]
    /// Initializers by name.
    let initializers: [String: ONNXValue]
    /// Graph inputs that are not initializers, with their declared shapes (nil dims are symbolic).
    public let inputs: [(name: String, shape: [Int?]?, elementType: Int32)]
    /// Graph outputs, in order.
    public let outputs: [String]
    /// `metadata_props` of the model.
    public let metadata: [String: String]
    /// Producer name and version (e.g. "pytorch", "2.5").
    public let producer: String
    /// The limits it was read with (`elements` also bounds what running it may build).
    public let limits: ONNXLimits

    /// The oldest and newest default-domain opsets Fovea reads.
    public static let supportedOpsets = 1...18

    /// Reads and checks the model at `path`.
    public init(contentsOf path: String, limits: ONNXLimits = .standard) throws {
        let bytes: [UInt8]
        do {
            bytes = try RegularFile.contents(of: path, limit: limits.fileBytes)
        } catch {
            throw ONNXError.unreadable(path: path, reason: error.reason)
        }
        let directory = (path as NSString).deletingLastPathComponent
        var folder: String?
        if let resolved = realpath(directory.isEmpty ? "." : directory, nil) {
            folder = String(cString: resolved)
            free(resolved)
        }
        try self.init(bytes: bytes, path: path, folder: folder, limits: limits)
    }

    /// Reads and checks a model from its serialized bytes; `path` names it in messages, `folder` is where external
    /// data may live (none for nil).
    public init(bytes: [UInt8], path: String, folder: String? = nil, limits: ONNXLimits = .standard) throws {
        // Real models nest a few levels (model → graph → node → attribute → tensor); deep nesting is an attack.
        let model: Onnx_ModelProto = try decodeMessage(bytes, path: path, depth: 32)
        try self.init(model: model, path: path, folder: folder, limits: limits)
    }

    init(model: Onnx_ModelProto, path: String, folder: String?, limits: ONNXLimits) throws {
        self.path = path
        self.limits = limits
        guard model.hasGraph else { throw ONNXError.invalidGraph(path: path, node: nil, message: "the model has no graph") }
        let imports = model.opsetImport.filter { $0.domain.isEmpty || $0.domain == "ai.onnx" }
        guard let version = imports.first?.version else {
            if let other = model.opsetImport.first {
                throw ONNXError.unsupported(path: path, node: "(model)", operator: "opset", opset: 0,
                                            detail: "only operators of domain '\(other.domain)' are imported")
            }
            throw ONNXError.invalidGraph(path: path, node: nil, message: "the model imports no version of the default operator set")
        }
        opset = Int(clamping: version)
        let graph = model.graph
        guard graph.node.count <= limits.nodes else {
            throw ONNXError.invalidGraph(path: path, node: nil, message: "\(graph.node.count) nodes, more than the limit of \(limits.nodes)")
        }
        guard graph.sparseInitializer.isEmpty else {
            throw ONNXError.invalidTensor(path: path, tensor: graph.sparseInitializer[0].values.name,
                                          message: "sparse initializers are not supported")
        }
        var decoder = TensorDecoder(path: path, limits: limits, folder: folder)
        var initializers: [String: ONNXValue] = [:]
        for tensor in graph.initializer {
            guard !tensor.name.isEmpty else { throw decoder.failure("", "an initializer has no name") }
            guard initializers[tensor.name] == nil else { throw decoder.failure(tensor.name, "two initializers have this name") }
            initializers[tensor.name] = try decoder.decode(tensor)
        }
        self.initializers = initializers
        var defined = Set(initializers.keys)
        var inputs: [(name: String, shape: [Int?]?, elementType: Int32)] = []
        for input in graph.input where initializers[input.name] == nil {
            guard !input.name.isEmpty, defined.insert(input.name).inserted else {
                throw ONNXError.invalidGraph(path: path, node: nil, message: "graph input '\(input.name)' is unnamed or defined twice")
            }
            var shape: [Int?]?
            if case .tensorType(let type)? = input.type.value, type.hasShape {
                shape = type.shape.dim.map { dim in
                    if case .dimValue(let value)? = dim.value, value >= 0 { return Int(clamping: value) }
                    return nil
                }
            }
            var elementType: Int32 = 1
            if case .tensorType(let type)? = input.type.value { elementType = type.elemType }
            inputs.append((input.name, shape, elementType))
        }
        self.inputs = inputs
        // Kahn's order over the nodes: a node is ready once each of its (non-empty) inputs is defined.
        var producers: [String: Int] = [:]
        for (index, node) in graph.node.enumerated() {
            // Outputs may be optional ("", as RNN's first), but a node must define something.
            guard node.output.contains(where: { !$0.isEmpty }) else {
                throw ONNXError.invalidGraph(path: path, node: Self.label(node, index), message: "the node has no output")
            }
            for output in node.output where !output.isEmpty {
                guard !defined.contains(output), producers.updateValue(index, forKey: output) == nil else {
                    throw ONNXError.invalidGraph(path: path, node: Self.label(node, index),
                                                 message: "output '\(output)' is defined twice")
                }
            }
        }
        var waiting = [Int](repeating: 0, count: graph.node.count)
        var consumers: [String: [Int]] = [:]
        for (index, node) in graph.node.enumerated() {
            for input in Set(node.input) where !input.isEmpty && !defined.contains(input) {
                guard producers[input] != nil else {
                    throw ONNXError.invalidGraph(path: path, node: Self.label(node, index),
                                                 message: "input '\(input)' is never defined")
                }
                waiting[index] += 1
                consumers[input, default: []].append(index)
            }
        }
        var ready = Array((0..<graph.node.count).filter { waiting[$0] == 0 }.reversed())
        var order: [Onnx_NodeProto] = []
        order.reserveCapacity(graph.node.count)
        while let index = ready.popLast() {
            order.append(graph.node[index])
            for output in graph.node[index].output where !output.isEmpty {
                for consumer in consumers[output] ?? [] {
                    waiting[consumer] -= 1
                    if waiting[consumer] == 0 { ready.append(consumer) }
                }
            }
        }
        guard order.count == graph.node.count else {
            let stuck = (0..<graph.node.count).first { waiting[$0] > 0 } ?? 0
            throw ONNXError.invalidGraph(path: path, node: Self.label(graph.node[stuck], stuck),
                                         message: "the graph has a cycle through this node")
        }
        nodes = order
        outputs = graph.output.map(\.name)
        for output in outputs where !defined.contains(output) && producers[output] == nil {
            throw ONNXError.invalidGraph(path: path, node: nil, message: "graph output '\(output)' is never defined")
        }
        var metadata: [String: String] = [:]
        for entry in model.metadataProps { metadata[entry.key] = entry.value }
        self.metadata = metadata
        producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// A node's name for messages: its name, or its index and operator.
    static func label(_ node: Onnx_NodeProto, _ index: Int) -> String {
        node.name.isEmpty ? "#\(index) (\(node.opType))" : "'\(node.name)'"
    }
}

/// A protobuf message from `bytes`, nested at most `depth` levels; a malformed message is `ONNXError.malformed`.
func decodeMessage<M: SwiftProtobuf.Message>(_ bytes: [UInt8], path: String, depth: Int) throws -> M {
    var options = BinaryDecodingOptions()
    options.messageDepthLimit = depth
    do {
        return try M(serializedBytes: bytes, options: options)
    } catch {
        throw ONNXError.malformed(path: path, reason: "\(error)")
    }
}
