import Foundation
import SwiftProtobuf
import FoveaTensor

/// A value flowing through an imported graph: float tensors run on Fovea's kernels; 64-bit integer tensors (shapes,
/// indices, axes) are computed on the side, as exports use them to build shapes.
public enum ONNXValue {
    case float(Tensor)
    case integer(ONNXIntegers)

    /// The logical shape.
    public var shape: [Int] {
        switch self {
        case let .float(tensor): tensor.shape
        case let .integer(integers): integers.shape
        }
    }
}

/// A 64-bit integer tensor in row-major order.
public struct ONNXIntegers: Equatable, Sendable {
    public var shape: [Int]
    public var values: [Int64]

    /// Creates an integer tensor; `values.count` must be the product of `shape`.
    public init(shape: [Int], values: [Int64]) {
        (self.shape, self.values) = (shape, values)
    }
}

/// Limits applied while reading a model, before anything is allocated.
public struct ONNXLimits: Sendable {
    /// Largest model file.
    public var fileBytes: Int
    /// Largest single tensor (initializer, constant, external data) in bytes.
    public var tensorBytes: Int
    /// Largest sum of all tensors' bytes.
    public var totalBytes: Int
    /// Most nodes in the graph.
    public var nodes: Int
    /// Most elements an operator that builds its output from shape values (Expand, Tile, Pad, Gather,
    /// ConstantOfShape, Reshape) may make when the graph runs: a hostile shape is an error, not an allocation that
    /// exhausts memory.
    public var elements: Int

    /// Limits for models up to a few GB (ONNX's own protobuf limit is 2 GB per file); 2²⁷ elements per built tensor.
    public static let standard = ONNXLimits(fileBytes: 2 << 30, tensorBytes: 2 << 30, totalBytes: 8 << 30, nodes: 1_000_000)

    /// Creates limits.
    public init(fileBytes: Int, tensorBytes: Int, totalBytes: Int, nodes: Int, elements: Int = 1 << 27) {
        (self.fileBytes, self.tensorBytes, self.totalBytes, self.nodes) = (fileBytes, tensorBytes, totalBytes, nodes)
        self.elements = elements
    }
}

/// Decodes TensorProtos into values, checking every size before allocating and resolving external data inside the
/// model's folder only.
struct TensorDecoder {
    let path: String
    let limits: ONNXLimits
    /// The folder external data must stay inside (the model file's folder, symlinks resolved); nil for in-memory models.
    let folder: String?
    var totalBytes = 0

    init(path: String, limits: ONNXLimits, folder: String?) {
        (self.path, self.limits, self.folder) = (path, limits, folder)
    }

    func failure(_ name: String, _ message: String) -> ONNXError {
        .invalidTensor(path: path, tensor: name.isEmpty ? "(unnamed)" : name, message: message)
    }

    /// The shape of `proto`, its element count and its bytes at `elementBytes` each, refused past the limits before
    /// anything is allocated.
    func checkedShape(_ proto: Onnx_TensorProto, elementBytes: Int) throws -> (shape: [Int], count: Int) {
        guard proto.dims.count <= 16 else { throw failure(proto.name, "\(proto.dims.count) dimensions (at most 16)") }
        var count = 1
        for dim in proto.dims {
            guard dim >= 0 else { throw failure(proto.name, "negative dimension in \(proto.dims)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(dim))
            guard !overflow, product <= limits.tensorBytes / max(elementBytes, 1) else {
                throw failure(proto.name, "dims \(proto.dims) exceed the \(limits.tensorBytes)-byte tensor limit")
            }
            count = product
        }
        return (proto.dims.map { Int($0) }, count)
    }

    /// The value of `proto`: float32 as a Tensor, int64/int32/int8/uint8/bool as integers; any other type is refused.
    mutating func decode(_ proto: Onnx_TensorProto) throws -> ONNXValue {
        guard proto.hasDataType, let type = Onnx_TensorProto.DataType(rawValue: Int(proto.dataType)) else {
            throw failure(proto.name, "no or unknown data type \(proto.dataType)")
        }
        if proto.hasSegment { throw failure(proto.name, "segmented tensors are not supported") }
        let elementBytes: Int
        switch type {
        case .float, .int32: elementBytes = 4
        case .int64: elementBytes = 8
        case .int8, .uint8, .bool: elementBytes = 1
        default: throw failure(proto.name, "data type \(type) is not supported (float32 and integer tensors are)")
        }
        let (shape, count) = try checkedShape(proto, elementBytes: elementBytes)
        let (sum, overflow) = totalBytes.addingReportingOverflow(count * elementBytes)
        guard !overflow, sum <= limits.totalBytes else {
            throw failure(proto.name, "tensors exceed the \(limits.totalBytes)-byte limit for one model")
        }
        totalBytes = sum
        var raw: Data?
        if proto.hasDataLocation && proto.dataLocation == .external {
            raw = try externalData(proto, bytes: count * elementBytes)
        } else if proto.hasRawData {
            raw = proto.rawData
        }
        if let raw {
            guard raw.count == count * elementBytes else {
                throw failure(proto.name, "raw_data has \(raw.count) bytes, dims \(shape) of \(type) need \(count * elementBytes)")
            }
            return try raw.withUnsafeBytes { bytes throws -> ONNXValue in
                switch type {
                case .float:
                    var values = [Float](repeating: 0, count: count)
                    values.withUnsafeMutableBytes { $0.copyMemory(from: bytes) }
                    return .float(try Tensor(shape: shape, values: values))
                case .int64:
                    return .integer(ONNXIntegers(shape: shape, values: (0..<count).map {
                        Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }))
                case .int32:
                    return .integer(ONNXIntegers(shape: shape, values: (0..<count).map {
                        Int64(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }))
                case .int8:
                    return .integer(ONNXIntegers(shape: shape, values: (0..<count).map { Int64(Int8(bitPattern: bytes[$0])) }))
                default:
                    return .integer(ONNXIntegers(shape: shape, values: (0..<count).map { Int64(bytes[$0]) }))
                }
            }
        }
        switch type {
        case .float:
            guard proto.floatData.count == count else {
                throw failure(proto.name, "float_data has \(proto.floatData.count) values, dims \(shape) need \(count)")
            }
            return .float(try Tensor(shape: shape, values: proto.floatData))
        case .int64:
            guard proto.int64Data.count == count else {
                throw failure(proto.name, "int64_data has \(proto.int64Data.count) values, dims \(shape) need \(count)")
            }
            return .integer(ONNXIntegers(shape: shape, values: proto.int64Data))
        default:
            guard proto.int32Data.count == count else {
                throw failure(proto.name, "int32_data has \(proto.int32Data.count) values, dims \(shape) need \(count)")
            }
            return .integer(ONNXIntegers(shape: shape, values: proto.int32Data.map { Int64($0) }))
        }
    }

    /// The bytes of an external-data tensor: `location` must be a relative path inside the model's folder (no `..`
    /// escape, no absolute path, no symlink leading out), `offset` and `length` inside that file.
    func externalData(_ proto: Onnx_TensorProto, bytes: Int) throws -> Data {
        guard let folder else { throw failure(proto.name, "external data needs a model read from a file") }
        var entries: [String: String] = [:]
        for entry in proto.externalData {
            guard entries[entry.key] == nil else { throw failure(proto.name, "external data key '\(entry.key)' given twice") }
            entries[entry.key] = entry.value
        }
        guard let location = entries["location"], !location.isEmpty else {
            throw failure(proto.name, "external data without a location")
        }
        guard !location.hasPrefix("/"), !location.split(separator: "/").contains(".."), !location.contains("\0") else {
            throw failure(proto.name, "external data location '\(location)' leaves the model's folder")
        }
        let candidate = folder + "/" + location
        guard let resolved = realpath(candidate, nil) else {
            throw failure(proto.name, "external data file '\(location)' cannot be opened: \(String(cString: strerror(errno)))")
        }
        let real = String(cString: resolved)
        free(resolved)
        guard real.hasPrefix(folder + "/") else {
            throw failure(proto.name, "external data location '\(location)' resolves to \(real), outside the model's folder")
        }
        let offset = Int(entries["offset"] ?? "0") ?? -1
        let length = entries["length"].map { Int($0) ?? -1 } ?? bytes
        guard offset >= 0, length == bytes else {
            throw failure(proto.name, "external data offset \(entries["offset"] ?? "0") / length \(entries["length"] ?? "-") "
                          + "do not fit \(bytes) bytes")
        }
        let file: [UInt8]
        do {
            file = try RegularFile.contents(of: real, limit: limits.fileBytes)
        } catch {
            throw failure(proto.name, "external data file '\(location)': \(error.reason)")
        }
        guard offset <= file.count, bytes <= file.count - offset else {
            throw failure(proto.name, "external data \(offset)+\(bytes) bytes past the end of '\(location)' (\(file.count) bytes)")
        }
        return Data(file[offset..<(offset + bytes)])
    }
}

extension ONNXValue {
    /// Decodes one serialized TensorProto (the `input_0.pb` / `output_0.pb` files of ONNX's test cases); `path` names
    /// it in messages. Float32 and integer tensors only.
    public static func decodeTensor(_ bytes: [UInt8], path: String, limits: ONNXLimits = .standard) throws -> ONNXValue {
        let proto: Onnx_TensorProto = try decodeMessage(bytes, path: path, depth: 8)
        var decoder = TensorDecoder(path: path, limits: limits, folder: nil)
        return try decoder.decode(proto)
    }
}
