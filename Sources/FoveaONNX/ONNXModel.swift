import Foundation
import FoveaTensor
import FoveaNN

/// One compiled node (or a fused group of nodes): the runtime values it reads and defines, and how.
struct Step {
    /// The node's name for messages (the last node of a fused group).
    let label: String
    /// Operator type, or e.g. "Conv+BatchNormalization+Relu" for a fused group.
    let op: String
    /// Names of the values it reads ("" for an absent optional input).
    let inputs: [String]
    /// Names of the values it defines.
    let outputs: [String]
    let run: ([ONNXValue?]) throws -> [ONNXValue]
}

/// An ONNX graph as a Fovea layer: runs on Fovea's kernels, with the zoo's fusions (batch norm folded into
/// convolutions, activations and residual additions as post-ops), and trains: float initializers are Parameters named
/// as in the file, batch-norm statistics Buffers, so `namedParameters()`, optimizers, checkpoints and safetensors work
/// on it as on any model.
public final class ONNXModel: ModeDependentLayer {
    /// The checked graph it was built from (path, opset, inputs, outputs, metadata).
    public let graph: ONNXGraph
    let steps: [Step]
    /// Values no step defines at run time: integer initializers, Constant outputs, initializers read as constants.
    let constants: [String: ONNXValue]
    let parameterList: [(String, Parameter)]
    let bufferList: [(String, Buffer)]
    /// Layers whose behaviour depends on the mode (batch norm, dropout, fused convolutions).
    let modeLayers: [any ModeDependentLayer]
    /// Dropout layers, exposed as children so checkpoints save their generators.
    let randomLayers: [(String, Dropout)]
    /// After step i, the values no later step reads.
    let releases: [[String]]

    public var isTraining = false { didSet { for layer in modeLayers { layer.isTraining = isTraining } } }

    /// Imports the model at `path` (checked as `ONNXGraph` does); it starts in evaluation mode.
    public convenience init(contentsOf path: String, limits: ONNXLimits = .standard) throws {
        try self.init(graph: ONNXGraph(contentsOf: path, limits: limits))
    }

    /// Builds the runnable model of a checked graph. Unsupported operators and attributes are errors here, before
    /// anything runs.
    public init(graph: ONNXGraph) throws {
        self.graph = graph
        let compiler = try Compiler(graph: graph)
        steps = try compiler.compile()
        constants = compiler.constants
        parameterList = compiler.parameterOrder.compactMap { name in compiler.parameters[name].map { (name, $0) } }
        bufferList = compiler.bufferOrder.compactMap { name in compiler.buffers[name].map { (name, $0) } }
        modeLayers = compiler.modeLayers
        randomLayers = compiler.dropouts
        var lastUse: [String: Int] = [:]
        for (index, step) in steps.enumerated() { for input in step.inputs where !input.isEmpty { lastUse[input] = index } }
        let kept = Set(graph.outputs)
        var releases = [[String]](repeating: [], count: steps.count)
        for (name, index) in lastUse where !kept.contains(name) { releases[index].append(name) }
        self.releases = releases
        for layer in modeLayers { layer.isTraining = false }
    }

    public var namedChildren: [(String, Any)] {
        parameterList.map { ($0.0, $0.1 as Any) } + bufferList.map { ($0.0, $0.1 as Any) } + randomLayers.map { ($0.0, $0.1 as Any) }
    }

    /// Operators that run on oneDNN primitives (a fused step's name starts with "Conv").
    static let kernelOperators = ["Conv", "Relu", "Sigmoid", "Tanh", "HardSwish", "LeakyRelu", "Clip", "MaxPool", "AveragePool",
                                  "GlobalAveragePool", "BatchNormalization", "LRN", "Gemm", "MatMul", "Softmax", "LogSoftmax"]

    /// Runs the graph on `feeds` (graph input name → value) and returns the graph's outputs in order.
    public func run(_ feeds: [String: ONNXValue]) throws -> [ONNXValue] {
        try Indexing.$maximumElements.withValue(graph.limits.elements) { try execute(feeds) }
    }

    private func execute(_ feeds: [String: ONNXValue]) throws -> [ONNXValue] {
        var values = constants
        for (name, parameter) in parameterList { values[name] = .float(parameter.tracked) }
        for (name, buffer) in bufferList { values[name] = .float(buffer.value) }
        for input in graph.inputs {
            guard let feed = feeds[input.name] else {
                throw ONNXError.execution(node: "graph input", operator: "-", message: "no value for input '\(input.name)'")
            }
            values[input.name] = feed
        }
        for (index, step) in steps.enumerated() {
            var arguments: [ONNXValue?] = []
            arguments.reserveCapacity(step.inputs.count)
            for input in step.inputs {
                if input.isEmpty { arguments.append(nil); continue }
                guard let value = values[input] else {
                    throw ONNXError.execution(node: step.label, operator: step.op, message: "input '\(input)' has no value")
                }
                arguments.append(value)
            }
            // oneDNN's primitives are not made for empty tensors; ONNX allows them, so they are refused by name here.
            if Self.kernelOperators.contains(where: step.op.hasPrefix),
               let empty = arguments.first(where: { if case let .float(t)? = $0 { t.count == 0 } else { false } }) {
                throw ONNXError.execution(node: step.label, operator: step.op,
                                          message: "an empty input (shape \(empty?.shape ?? [])) for an operator that needs elements")
            }
            let results: [ONNXValue]
            do {
                results = try step.run(arguments)
            } catch let error as ONNXError {
                throw error
            } catch {
                throw ONNXError.execution(node: step.label, operator: step.op, message: "\(error)")
            }
            for (name, value) in zip(step.outputs, results) where !name.isEmpty { values[name] = value }
            for name in releases[index] { values[name] = nil }
        }
        return try graph.outputs.map { name in
            guard let value = values[name] else {
                throw ONNXError.execution(node: "graph output", operator: "-", message: "output '\(name)' has no value")
            }
            return value
        }
    }

    /// The (C, H, W) of the graph's first input when its declared shape is 4-D with those three fixed (the batch may be
    /// symbolic): the image size of a classifier; nil otherwise.
    public var imageShape: [Int]? {
        guard let shape = graph.inputs.first?.shape, shape.count == 4 else { return nil }
        let fixed = shape[1...].compactMap { $0 }
        return fixed.count == 3 ? fixed : nil
    }

    /// The shape of the first output for one image of `image` (C, H, W) of zeros, run without the tape.
    public func outputShape(forImage image: [Int]) throws -> [Int] {
        try Autodiff.withoutRecording { try self(Tensor.zeros([1] + image)) }.shape
    }

    /// The first output for a single float input: the `Layer` view (logits of an image classifier).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard let input = graph.inputs.first, graph.inputs.count == 1 else {
            throw ONNXError.execution(node: "graph input", operator: "-",
                                      message: "the graph has \(graph.inputs.count) inputs; a layer takes exactly one")
        }
        if let declared = input.shape, declared.count == x.shape.count {
            for (axis, (want, got)) in zip(declared, x.shape).enumerated() where axis > 0 && want != nil && want != got {
                throw ONNXError.execution(node: "graph input", operator: "-",
                    message: "input '\(input.name)' is declared as \(declared.map { $0.map(String.init) ?? "?" }), got \(x.shape)")
            }
        }
        guard case let .float(output)? = try run([input.name: .float(x)]).first else {
            throw ONNXError.execution(node: "graph output", operator: "-", message: "the first output is not a float tensor")
        }
        return output
    }
}
