/// Why an ONNX file could not be read, checked, run or written. Every case names the file and, where there is one,
/// the node (its name, or its index when it has none) or the tensor.
public enum ONNXError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read (missing, not a regular file, too large).
    case unreadable(path: String, reason: String)
    /// The bytes are not an ONNX model: truncated protobuf, wrong wire types, lengths beyond the end, nesting too deep.
    case malformed(path: String, reason: String)
    /// The graph is not a valid one: no graph, a cycle, an input used before it is defined, a name defined twice.
    case invalidGraph(path: String, node: String?, message: String)
    /// A tensor (initializer, constant, test input) is damaged or over a limit: dims, data of the wrong size, a data
    /// type Fovea does not run, external data outside the model's folder.
    case invalidTensor(path: String, tensor: String, message: String)
    /// An operator, attribute or attribute value Fovea does not implement, at `opset`.
    case unsupported(path: String, node: String, operator: String, opset: Int, detail: String)
    /// Running the graph failed at a node (shapes that do not fit the operator, a missing input).
    case execution(node: String, operator: String, message: String)
    /// A model could not be exported (a layer with no ONNX form, a file that could not be written).
    case export(message: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "\(path): cannot read the ONNX file: \(reason)"
        case let .malformed(path, reason):
            return "\(path): not a valid ONNX protobuf: \(reason)"
        case let .invalidGraph(path, node, message):
            return "\(path): invalid graph\(node.map { " at node \($0)" } ?? ""): \(message)"
        case let .invalidTensor(path, tensor, message):
            return "\(path): tensor '\(tensor)': \(message)"
        case let .unsupported(path, node, op, opset, detail):
            return "\(path): node \(node): \(op) (opset \(opset)) is not supported: \(detail)"
        case let .execution(node, op, message):
            return "node \(node) (\(op)): \(message)"
        case let .export(message):
            return "ONNX export: \(message)"
        }
    }
}
