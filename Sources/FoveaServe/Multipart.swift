import Foundation

/// A `multipart/form-data` body (RFC 7578) split into its parts: each part's headers and bytes.
public struct MultipartForm {
    public struct Part {
        /// `name` and `filename` of the part's Content-Disposition, and its Content-Type.
        public var name: String?
        public var filename: String?
        public var contentType: String?
        public var body: [UInt8]
    }

    /// Why a body is not a well-formed form.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case noBoundary
        case missingBoundary(String)
        case badPart(index: Int, reason: String)
        case unterminated

        public var description: String {
            switch self {
            case .noBoundary: return "multipart/form-data needs a boundary parameter in its Content-Type"
            case let .missingBoundary(boundary): return "the body does not start with the boundary '--\(boundary)'"
            case let .badPart(index, reason): return "part \(index + 1) of the form: \(reason)"
            case .unterminated: return "the form ends without its closing boundary"
            }
        }
    }

    public var parts: [Part]

    /// The boundary of a `multipart/form-data; boundary=…` Content-Type, or nil for another type.
    public static func boundary(ofContentType contentType: String) throws -> String? {
        let pieces = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let type = pieces.first, type.lowercased() == "multipart/form-data" else { return nil }
        for piece in pieces.dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, pair[0].lowercased() == "boundary" else { continue }
            var value = pair[1]
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            // RFC 2046: 1 to 70 characters.
            guard (1...70).contains(value.utf8.count) else { throw Failure.noBoundary }
            return value
        }
        throw Failure.noBoundary
    }

    /// Splits `body` at `boundary`. Parts need a Content-Disposition of `form-data`; at most `maximumParts` parts.
    public init(body: [UInt8], boundary: String, maximumParts: Int = 1024) throws {
        let delimiter = Array("--\(boundary)".utf8)
        let separator = Array("\r\n--\(boundary)".utf8)
        guard let first = Self.find(delimiter, in: body, from: 0) else { throw Failure.missingBoundary(boundary) }
        // A preamble before the first boundary is allowed and ignored (RFC 2046).
        var position = first + delimiter.count
        parts = []
        while true {
            // After a boundary: "--" ends the form, CRLF starts a part (transport padding of spaces/tabs allowed).
            if position + 1 < body.count, body[position] == UInt8(ascii: "-"), body[position + 1] == UInt8(ascii: "-") { return }
            while position < body.count, body[position] == UInt8(ascii: " ") || body[position] == UInt8(ascii: "\t") { position += 1 }
            guard position + 1 < body.count, body[position] == 13, body[position + 1] == 10 else { throw Failure.unterminated }
            position += 2
            let index = parts.count
            guard index < maximumParts else { throw Failure.badPart(index: index, reason: "more than \(maximumParts) parts") }
            guard let headerEnd = Self.find(Array("\r\n\r\n".utf8), in: body, from: position) ?? (body[position...].starts(with: [13, 10]) ? position - 2 : nil)
            else { throw Failure.badPart(index: index, reason: "its headers do not end with an empty line") }
            let headerBytes = headerEnd > position ? Array(body[position..<headerEnd]) : []
            guard let headerText = String(bytes: headerBytes, encoding: .utf8) else {
                throw Failure.badPart(index: index, reason: "its headers are not UTF-8 text")
            }
            var part = Part(body: [])
            var disposition = false
            for line in headerText.components(separatedBy: "\r\n") where !line.isEmpty {
                guard let colon = line.firstIndex(of: ":") else { throw Failure.badPart(index: index, reason: "header line '\(line.prefix(80))' has no colon") }
                let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if name == "content-disposition" {
                    let fields = Self.parameters(value)
                    guard fields.type == "form-data" else {
                        throw Failure.badPart(index: index, reason: "Content-Disposition is '\(fields.type)', not form-data")
                    }
                    disposition = true
                    (part.name, part.filename) = (fields.values["name"], fields.values["filename"])
                } else if name == "content-type" {
                    part.contentType = value
                }
            }
            guard disposition else { throw Failure.badPart(index: index, reason: "it has no Content-Disposition header") }
            let bodyStart = headerEnd + 4
            guard let end = Self.find(separator, in: body, from: bodyStart) else { throw Failure.unterminated }
            part.body = Array(body[bodyStart..<end])
            parts.append(part)
            position = end + separator.count
        }
    }

    /// `type; key=value; key="quoted value"` → the type (lower case) and its parameters (keys lower case).
    static func parameters(_ header: String) -> (type: String, values: [String: String]) {
        var values: [String: String] = [:]
        var characters = Substring(header)
        func takeToken(until stops: Set<Character>) -> String {
            var token = ""
            while let c = characters.first, !stops.contains(c) { token.append(c); characters.removeFirst() }
            return token.trimmingCharacters(in: .whitespaces)
        }
        let type = takeToken(until: [";"]).lowercased()
        while !characters.isEmpty {
            characters.removeFirst()  // ";"
            let key = takeToken(until: ["=", ";"]).lowercased()
            guard characters.first == "=" else { continue }
            characters.removeFirst()
            while characters.first == " " { characters.removeFirst() }
            var value = ""
            if characters.first == "\"" {
                characters.removeFirst()
                while let c = characters.first, c != "\"" {
                    characters.removeFirst()
                    if c == "\\", let escaped = characters.first { value.append(escaped); characters.removeFirst() } else { value.append(c) }
                }
                if !characters.isEmpty { characters.removeFirst() }
                _ = takeToken(until: [";"])
            } else {
                value = takeToken(until: [";"])
            }
            if !key.isEmpty { values[key] = value }
        }
        return (type, values)
    }

    /// The first index at or after `start` where `needle` occurs in `haystack`.
    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        return haystack.withUnsafeBufferPointer { bytes in
            needle.withUnsafeBufferPointer { pattern in
                let first = pattern[0]
                var i = start
                let last = bytes.count - pattern.count
                while i <= last {
                    guard let hit = memchr(bytes.baseAddress! + i, Int32(first), last - i + 1) else { return nil }
                    let offset = bytes.baseAddress!.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                    if memcmp(bytes.baseAddress! + offset, pattern.baseAddress!, pattern.count) == 0 { return offset }
                    i = offset + 1
                }
                return nil
            }
        }
    }
}
