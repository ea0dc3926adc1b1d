import Foundation

/// Why a safetensors file could not be read or written; each case names the file and tensor.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be opened or read.
    case unreadableFile(path: String, reason: String)
    /// The file is shorter than the 8-byte header length.
    case fileTooShort(path: String, byteCount: Int)
    /// The declared header length exceeds the bytes that follow it (or `SafeTensors.maximumHeaderLength`).
    case headerTooLarge(path: String, headerLength: UInt64, available: Int)
    /// The header is not UTF-8, not JSON, or not a JSON object starting with `{`.
    case invalidHeader(path: String, reason: String)
    /// Two tensors share a name.
    case duplicateName(path: String, name: String)
    /// A tensor's header entry is missing a field or has one of the wrong type.
    case invalidEntry(path: String, name: String, reason: String)
    /// `__metadata__` is not an object of strings.
    case invalidMetadata(path: String, reason: String)
    /// The dtype is unknown or cannot be converted to Float (the 8-bit float types).
    case unsupportedDataType(path: String, name: String, dataType: String)
    /// The offsets span `byteCount` bytes, which is not what the shape and dtype need.
    case sizeMismatch(path: String, name: String, shape: [Int], dataType: String, byteCount: Int)
    /// The offsets reach beyond the data buffer.
    case offsetsOutOfRange(path: String, name: String, begin: Int, end: Int, bufferSize: Int)
    /// Two tensors' byte ranges overlap.
    case overlappingTensors(path: String, name: String, other: String)
    /// Bytes `begin..<end` of the data buffer belong to no tensor.
    case uncoveredBytes(path: String, begin: Int, end: Int)
    /// The contents do not match the SHA-256 stored in the file when it was written (`SafeTensors.digestKey`).
    case damaged(path: String, stored: String, computed: String)
    /// A tensor handed to `encode` cannot be stored (duplicate or reserved name, bad shape).
    case invalidTensor(name: String, reason: String)

    /// One sentence saying what is wrong and where.
    public var description: String {
        switch self {
        case let .unreadableFile(path, reason):
            return "Cannot read safetensors file '\(path)': \(reason)."
        case let .fileTooShort(path, byteCount):
            return "Safetensors file '\(path)' has only \(byteCount) bytes, fewer than the 8-byte header length."
        case let .headerTooLarge(path, headerLength, available):
            return "Safetensors file '\(path)' declares a \(headerLength)-byte header but only \(available) "
                + "bytes follow (limit \(SafeTensors.maximumHeaderLength))."
        case let .invalidHeader(path, reason):
            return "Safetensors file '\(path)' has an invalid header: \(reason)."
        case let .duplicateName(path, name):
            return "Safetensors file '\(path)' names tensor '\(name)' more than once."
        case let .invalidEntry(path, name, reason):
            return "Safetensors file '\(path)': the entry for tensor '\(name)' \(reason)."
        case let .invalidMetadata(path, reason):
            return "Safetensors file '\(path)' has invalid __metadata__: \(reason)."
        case let .unsupportedDataType(path, name, dataType):
            return "Safetensors file '\(path)' stores tensor '\(name)' as \(dataType), which Fovea cannot read."
        case let .sizeMismatch(path, name, shape, dataType, byteCount):
            return "Safetensors file '\(path)': tensor '\(name)' of shape \(shape) and dtype \(dataType) "
                + "spans \(byteCount) bytes, which does not match its shape."
        case let .offsetsOutOfRange(path, name, begin, end, bufferSize):
            return "Safetensors file '\(path)': tensor '\(name)' occupies bytes \(begin)..<\(end) "
                + "of a \(bufferSize)-byte data buffer."
        case let .overlappingTensors(path, name, other):
            return "Safetensors file '\(path)': tensor '\(name)' overlaps tensor '\(other)'."
        case let .uncoveredBytes(path, begin, end):
            return "Safetensors file '\(path)': data bytes \(begin)..<\(end) belong to no tensor."
        case let .damaged(path, stored, computed):
            return "Safetensors file '\(path)' is damaged: its contents have SHA-256 \(computed.prefix(16))…, not the "
                + "\(stored.prefix(16))… stored when it was written (a changed byte in its tensors or header)."
        case let .invalidTensor(name, reason):
            return "Cannot store tensor '\(name)': \(reason)."
        }
    }
}

/// The validated JSON header of a safetensors file (everything but the data buffer checks).
struct SafeTensorsHeader {
    /// One tensor's header entry.
    struct Tensor {
        var name: String
        var dataType: String
        var shape: [Int]
        var elementCount: Int
        var begin: Int
        var end: Int
    }

    /// The tensors, in name order.
    var tensors: [Tensor] = []
    /// The `__metadata__` map, empty when absent.
    var metadata: [String: String] = [:]

    /// Parses the header bytes, checking the JSON and each entry's fields, dtype and size.
    init(_ bytes: ArraySlice<UInt8>, path: String) throws {
        func invalid(_ reason: String) -> SafeTensorsError { .invalidHeader(path: path, reason: reason) }
        guard bytes.first == UInt8(ascii: "{") else { throw invalid("it does not start with '{'") }
        guard String(bytes: bytes, encoding: .utf8) != nil else { throw invalid("it is not valid UTF-8") }
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(bytes)) else {
            throw invalid("it is not valid JSON")
        }
        guard let object = parsed as? [String: Any] else { throw invalid("it is not a JSON object") }
        // JSONSerialization keeps the last of duplicate keys silently, so look for them in the text.
        if let (key, parent) = Self.firstDuplicateKey(in: bytes) {
            switch parent {
            case nil: throw SafeTensorsError.duplicateName(path: path, name: key)
            case "__metadata__"?: throw SafeTensorsError.invalidMetadata(path: path, reason: "key '\(key)' appears twice")
            case let name?: throw SafeTensorsError.invalidEntry(path: path, name: name, reason: "has field '\(key)' twice")
            }
        }

        if let value = object["__metadata__"], !(value is NSNull) {
            guard let map = value as? [String: Any] else {
                throw SafeTensorsError.invalidMetadata(path: path, reason: "it is not a JSON object")
            }
            for (key, item) in map {
                guard let text = item as? String else {
                    throw SafeTensorsError.invalidMetadata(path: path, reason: "the value of '\(key)' is not a string")
                }
                metadata[key] = text
            }
        }
        for name in object.keys.sorted() where name != "__metadata__" {
            tensors.append(try Self.tensor(name, object[name] as Any, path: path))
        }
    }

    /// Validates one entry: fields present and typed, dtype known, span equal to the shape's size.
    private static func tensor(_ name: String, _ value: Any, path: String) throws -> Tensor {
        func invalid(_ reason: String) -> SafeTensorsError { .invalidEntry(path: path, name: name, reason: reason) }
        guard let fields = value as? [String: Any] else { throw invalid("is not a JSON object") }
        guard let dataType = fields["dtype"] as? String else { throw invalid("has no string field \"dtype\"") }
        guard let shapeList = fields["shape"] as? [Any] else { throw invalid("has no array field \"shape\"") }
        let shape = shapeList.compactMap(integer)
        guard shape.count == shapeList.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw invalid("has a \"shape\" that is not a list of non-negative integers")
        }
        guard let offsets = fields["data_offsets"] as? [Any], offsets.count == 2,
              let begin = integer(offsets[0]), let end = integer(offsets[1]), begin >= 0, begin <= end else {
            throw invalid("needs \"data_offsets\" [begin, end] with integers 0 ≤ begin ≤ end")
        }
        guard let size = SafeTensors.elementSizes[dataType], !dataType.hasPrefix("F8_") else {
            throw SafeTensorsError.unsupportedDataType(path: path, name: name, dataType: dataType)
        }
        guard let count = SafeTensors.elementCount(shape), !count.multipliedReportingOverflow(by: size).overflow else {
            throw invalid("has a shape \(shape) too large to address")
        }
        guard end - begin == count * size else {
            throw SafeTensorsError.sizeMismatch(path: path, name: name, shape: shape, dataType: dataType, byteCount: end - begin)
        }
        return Tensor(name: name, dataType: dataType, shape: shape, elementCount: count, begin: begin, end: end)
    }

    /// A JSON integer as Int; nil for booleans, fractions, floats and values beyond Int.
    private static func integer(_ value: Any) -> Int? {
        guard let number = value as? NSNumber else { return nil }
        // Foundation reports booleans as "c" and JSON numbers with a fraction or exponent as "d".
        let kind = String(cString: number.objCType)
        guard kind != "c", kind != "d", kind != "f" else { return nil }
        return number as? Int
    }

    /// The first key repeated within one JSON object, and the key that owns that object
    /// (nil at the top level). Only called on text that already parsed as JSON.
    static func firstDuplicateKey(in text: ArraySlice<UInt8>) -> (key: String, parent: String?)? {
        struct Frame { var isObject: Bool; var keys: Set<String> = []; var expectingKey = true; var lastKey: String?; var owner: String? }
        var stack: [Frame] = []
        var index = text.startIndex
        while index < text.endIndex {
            switch text[index] {
            case UInt8(ascii: "\""):
                var end = index + 1
                while end < text.endIndex, text[end] != UInt8(ascii: "\"") {
                    end += text[end] == UInt8(ascii: "\\") ? 2 : 1
                }
                if let top = stack.indices.last, stack[top].isObject, stack[top].expectingKey {
                    let key = decodeJSONString(text[index...min(end, text.endIndex - 1)])
                    if !stack[top].keys.insert(key).inserted { return (key, stack[top].owner) }
                    stack[top].expectingKey = false
                    stack[top].lastKey = key
                }
                index = end
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let owner = stack.last.flatMap { $0.isObject ? $0.lastKey : $0.owner }
                stack.append(Frame(isObject: text[index] == UInt8(ascii: "{"), owner: owner))
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = stack.popLast()
            case UInt8(ascii: ","):
                if let top = stack.indices.last, stack[top].isObject { stack[top].expectingKey = true }
            default:
                break
            }
            index += 1
        }
        return nil
    }

    /// The text of a JSON string literal (quotes included), with escapes resolved.
    private static func decodeJSONString(_ literal: ArraySlice<UInt8>) -> String {
        if !literal.contains(UInt8(ascii: "\\")) {
            return String(decoding: literal.dropFirst().dropLast(), as: UTF8.self)
        }
        let decoded = try? JSONSerialization.jsonObject(with: Data(literal), options: .fragmentsAllowed)
        return decoded as? String ?? String(decoding: literal, as: UTF8.self)
    }
}
