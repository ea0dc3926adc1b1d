import Foundation

/// A node's attributes, read by name with the type the operator expects. Every attribute an operator does not read is
/// an error (`finish()`): an attribute Fovea ignored could change the result.
final class Attributes {
    let node: Onnx_NodeProto
    let label: String
    let opset: Int
    let path: String
    private var byName: [String: Onnx_AttributeProto] = [:]
    private var read = Set<String>()

    init(_ node: Onnx_NodeProto, label: String, opset: Int, path: String) throws {
        (self.node, self.label, self.opset, self.path) = (node, label, opset, path)
        for attribute in node.attribute {
            guard byName.updateValue(attribute, forKey: attribute.name) == nil else {
                throw ONNXError.invalidGraph(path: path, node: label, message: "attribute '\(attribute.name)' given twice")
            }
        }
    }

    /// The unsupported-feature error for this node.
    func unsupported(_ detail: String) -> ONNXError {
        .unsupported(path: path, node: label, operator: node.opType, opset: opset, detail: detail)
    }

    func invalid(_ message: String) -> ONNXError { .invalidGraph(path: path, node: label, message: message) }

    func has(_ name: String) -> Bool { byName[name] != nil }

    private func attribute(_ name: String, _ type: Onnx_AttributeProto.AttributeType) throws -> Onnx_AttributeProto? {
        guard let attribute = byName[name] else { return nil }
        read.insert(name)
        // Files from old exporters leave the type out; the field that is set then tells.
        guard !attribute.hasType || attribute.type == type else {
            throw invalid("attribute '\(name)' has type \(attribute.type), expected \(type)")
        }
        return attribute
    }

    func int(_ name: String, _ fallback: Int) throws -> Int {
        guard let attribute = try attribute(name, .int) else { return fallback }
        return Int(clamping: attribute.i)
    }

    func ints(_ name: String) throws -> [Int]? {
        try attribute(name, .ints).map { $0.ints.map { Int(clamping: $0) } }
    }

    func float(_ name: String, _ fallback: Float) throws -> Float {
        guard let attribute = try attribute(name, .float) else { return fallback }
        return attribute.f
    }

    func floats(_ name: String) throws -> [Float]? { try attribute(name, .floats).map(\.floats) }

    func string(_ name: String, _ fallback: String) throws -> String {
        guard let attribute = try attribute(name, .string) else { return fallback }
        return String(decoding: attribute.s, as: UTF8.self)
    }

    func tensor(_ name: String) throws -> Onnx_TensorProto? { try attribute(name, .tensor).map(\.t) }

    /// Marks attributes that are read but change nothing for Fovea (e.g. MaxPool's storage_order for one output).
    func ignore(_ names: String...) { for name in names { read.insert(name) } }

    /// Refuses any attribute that was not read.
    func finish() throws {
        if let unknown = byName.keys.sorted().first(where: { !read.contains($0) }) {
            throw unsupported("attribute '\(unknown)'")
        }
    }
}
