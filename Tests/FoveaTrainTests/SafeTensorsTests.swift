import Foundation
import Testing
@testable import FoveaTrain

/// A safetensors file assembled by hand: length prefix (declared or true), header text, data.
private func handMade(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let headerBytes = Array(header.utf8)
    let length = declaredLength ?? UInt64(headerBytes.count)
    return (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) } + headerBytes + data
}

/// One F32 header entry.
private func entry(_ name: String, shape: [Int], _ begin: Int, _ end: Int, dtype: String = "F32") -> String {
    "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(begin),\(end)]}"
}

/// The little-endian bytes of `values` as F32.
private func floatBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { value in (0..<4).map { UInt8(truncatingIfNeeded: value.bitPattern >> (8 * $0)) } }
}

@Suite("safetensors")
struct SafeTensorsTests {
    @Test("a small file has exactly the documented bytes")
    func exactBytes() throws {
        let bytes = try SafeTensors.encode([
            .init(name: "b", shape: [2], values: [1, 2]),
            .init(name: "a", shape: [], values: [3]),
        ])
        // Entries sorted by name, offsets relative to the buffer, header padded to 8-byte alignment.
        let tensors = #""a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"#
            + #""b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        // The digest covers the header as it would be without it, then the data (sha256sum computes it here).
        let digest = try IntegrityTests.referenceDigest(Array(("{" + tensors).utf8) + floatBytes([3, 1, 2]))
        let header = #"{"__metadata__":{"fovea_sha256":""# + digest + #""},"# + tensors
        let padded = header + String(repeating: " ", count: (8 - (8 + header.utf8.count) % 8) % 8)
        #expect(bytes == handMade(padded, data: floatBytes([3, 1, 2])))
        #expect(bytes.count % 8 == 4)  // 8 + padded header is aligned; 12 data bytes follow.
    }

    @Test("entries and metadata round-trip through a file, written atomically")
    func roundTrip() throws {
        let entries: [SafeTensors.Entry] = [
            .init(name: "layer1.0.conv1.weight", shape: [2, 1, 3, 3], values: (0..<18).map { Float($0) * 0.25 - 2 }),
            .init(name: "fc.bias", shape: [3], values: [.infinity, -0.0, .leastNonzeroMagnitude]),
            .init(name: "empty", shape: [0, 4], values: []),
            .init(name: "scalar \"quoted\"\n", shape: [], values: [42]),
        ]
        let metadata = ["format": "pt", "note": "naïve \"quotes\" \\ and\ttabs / ✓"]
        let directory = NSTemporaryDirectory() + "fovea-st-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/model.safetensors"
        try SafeTensors.write([.init(name: "old", shape: [1], values: [1])], to: path)
        try SafeTensors.write(entries, metadata: metadata, to: path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["model.safetensors"])

        let file = try SafeTensors.read(path: path)
        #expect(file.metadata.filter { $0.key != SafeTensors.digestKey } == metadata)
        #expect(file.metadata[SafeTensors.digestKey]?.count == 64)
        #expect(file.entries.count == entries.count)
        for original in entries {
            let loaded = try #require(file.entries[original.name])
            #expect(loaded.shape == original.shape)
            #expect(loaded.values.map(\.bitPattern) == original.values.map(\.bitPattern))
        }
    }

    @Test("encode rejects tensors it cannot store")
    func encodeErrors() {
        #expect(throws: SafeTensorsError.invalidTensor(name: "w", reason: "the name appears twice")) {
            try SafeTensors.encode([.init(name: "w", shape: [1], values: [1]), .init(name: "w", shape: [1], values: [2])])
        }
        #expect(throws: SafeTensorsError.invalidTensor(name: "w", reason: "shape [2, 2] does not hold 3 values")) {
            try SafeTensors.encode([.init(name: "w", shape: [2, 2], values: [1, 2, 3])])
        }
        #expect(throws: SafeTensorsError.self) { try SafeTensors.encode([.init(name: "w", shape: [-1], values: [])]) }
        #expect(throws: SafeTensorsError.self) { try SafeTensors.encode([.init(name: "__metadata__", shape: [], values: [0])]) }
        #expect(throws: TrainingError.cannotWrite(
            path: "/nonexistent-dir/x", reason: "cannot create '/nonexistent-dir/x.tmp-\(getpid())': No such file or directory")) {
            try SafeTensors.write([], to: "/nonexistent-dir/x")
        }
    }

    @Test("each malformed file gives its specific error")
    func malformed() throws {
        let p = "w.safetensors"
        let data8 = floatBytes([1, 2])
        let cases: [(file: [UInt8], error: SafeTensorsError)] = [
            ([1, 2, 3, 4], .fileTooShort(path: p, byteCount: 4)),
            (handMade("{}", declaredLength: 1000), .headerTooLarge(path: p, headerLength: 1000, available: 2)),
            (handMade("{}", declaredLength: UInt64.max), .headerTooLarge(path: p, headerLength: UInt64.max, available: 2)),
            (handMade(" {}"), .invalidHeader(path: p, reason: "it does not start with '{'")),
            (handMade("{\"a\":"), .invalidHeader(path: p, reason: "it is not valid JSON")),
            (handMade("{\"a\":5}"), .invalidEntry(path: p, name: "a", reason: "is not a JSON object")),
            (handMade("{\"a\":{\"shape\":[],\"data_offsets\":[0,0]}}"),
             .invalidEntry(path: p, name: "a", reason: "has no string field \"dtype\"")),
            (handMade("{\(entry("a", shape: [2], 0, 8).replacingOccurrences(of: "[2]", with: "[true, 1]"))}", data: data8),
             .invalidEntry(path: p, name: "a", reason: "has a \"shape\" that is not a list of non-negative integers")),
            (handMade("{\(entry("a", shape: [2], 0, 8).replacingOccurrences(of: "[2]", with: "[2.0]"))}", data: data8),
             .invalidEntry(path: p, name: "a", reason: "has a \"shape\" that is not a list of non-negative integers")),
            (handMade("{\(entry("a", shape: [-2], 0, 8))}", data: data8),
             .invalidEntry(path: p, name: "a", reason: "has a \"shape\" that is not a list of non-negative integers")),
            (handMade("{\(entry("a", shape: [0], 8, 0))}", data: data8),
             .invalidEntry(path: p, name: "a", reason: "needs \"data_offsets\" [begin, end] with integers 0 ≤ begin ≤ end")),
            (handMade("{\(entry("a", shape: [2], 0, 8, dtype: "F8_E4M3"))}", data: data8),
             .unsupportedDataType(path: p, name: "a", dataType: "F8_E4M3")),
            (handMade("{\(entry("a", shape: [2], 0, 8, dtype: "Q4"))}", data: data8),
             .unsupportedDataType(path: p, name: "a", dataType: "Q4")),
            (handMade("{\(entry("a", shape: [3], 0, 8))}", data: data8),
             .sizeMismatch(path: p, name: "a", shape: [3], dataType: "F32", byteCount: 8)),
            (handMade("{\(entry("a", shape: [4], 0, 16))}", data: data8),
             .offsetsOutOfRange(path: p, name: "a", begin: 0, end: 16, bufferSize: 8)),
            (handMade("{\(entry("a", shape: [2], 0, 8)),\(entry("b", shape: [2], 4, 12))}", data: data8 + data8),
             .overlappingTensors(path: p, name: "b", other: "a")),
            (handMade("{\(entry("a", shape: [1], 0, 4)),\(entry("b", shape: [1], 8, 12))}", data: data8 + data8),
             .uncoveredBytes(path: p, begin: 4, end: 8)),
            (handMade("{\(entry("a", shape: [1], 0, 4))}", data: data8), .uncoveredBytes(path: p, begin: 4, end: 8)),
            (handMade("{\(entry("a", shape: [1], 0, 4)),\(entry("a", shape: [1], 4, 8))}", data: data8),
             .duplicateName(path: p, name: "a")),
            (handMade("{\(entry("a", shape: [1], 0, 4)),\(entry("\\u0061", shape: [1], 4, 8))}", data: data8),
             .duplicateName(path: p, name: "a")),
            (handMade("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data: data8),
             .invalidEntry(path: p, name: "a", reason: "has field 'dtype' twice")),
            (handMade("{\"__metadata__\":{\"k\":1}}"), .invalidMetadata(path: p, reason: "the value of 'k' is not a string")),
            (handMade("{\"__metadata__\":[]}"), .invalidMetadata(path: p, reason: "it is not a JSON object")),
            (handMade("{\"__metadata__\":{\"k\":\"x\",\"k\":\"y\"}}"), .invalidMetadata(path: p, reason: "key 'k' appears twice")),
        ]
        for (file, expected) in cases {
            #expect(throws: expected) { try SafeTensors.decode(file, path: p) }
        }
        var notUTF8 = handMade("{\"a\":1}")
        notUTF8[10] = 0xFF
        #expect(throws: SafeTensorsError.invalidHeader(path: p, reason: "it is not valid UTF-8")) {
            try SafeTensors.decode(notUTF8, path: p)
        }
        #expect(throws: SafeTensorsError.unreadableFile(path: "/no/such/file", reason: "No such file or directory")) {
            try SafeTensors.read(path: "/no/such/file")
        }
    }

    @Test("valid variants are accepted: space padding, null metadata, empty tensors at any offset")
    func lenientWhereTheFormatIs() throws {
        let file = handMade("{\"__metadata__\":null,\(entry("e", shape: [0], 4, 4)),\(entry("a", shape: [1], 0, 4))}   ",
                            data: floatBytes([7]))
        let decoded = try SafeTensors.decode(file, path: "x")
        #expect(decoded.metadata.isEmpty)
        #expect(decoded.entries["a"]?.values == [7] && decoded.entries["e"]?.values == [])
        #expect(try SafeTensors.decode(handMade("{}"), path: "x").entries.isEmpty)
    }

    @Test("F16, BF16, F64, integer and BOOL tensors convert to Float")
    func conversions() throws {
        let half: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x8000, 0x3555]
        let brain: [UInt16] = [0x3F80, 0xC0A0]
        let doubles: [Double] = [0.1, -1e300]
        func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
            (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        }
        var data: [UInt8] = half.flatMap(littleEndian) + brain.flatMap(littleEndian)
        data += doubles.flatMap { littleEndian($0.bitPattern) }
        data += littleEndian(Int64(-3)) + [0, 2, 255]
        let header = "{" + [entry("h", shape: [7], 0, 14, dtype: "F16"), entry("b", shape: [2], 14, 18, dtype: "BF16"),
                            entry("d", shape: [2], 18, 34, dtype: "F64"), entry("i", shape: [], 34, 42, dtype: "I64"),
                            entry("t", shape: [2], 42, 44, dtype: "BOOL"), entry("u", shape: [1], 44, 45, dtype: "U8")]
            .joined(separator: ",") + "}"
        let entries = try SafeTensors.decode(handMade(header, data: data), path: "x").entries
        #expect(entries["h"]?.values == [1, -2, 65504, 0x1p-24, .infinity, -0.0, Float(0x1.554p-2)])
        #expect(entries["h"]?.values[5].sign == .minus)
        #expect(entries["b"]?.values == [1, -5])
        #expect(entries["d"]?.values == [Float(0.1), -.infinity])
        #expect(entries["i"]?.values == [-3] && entries["t"]?.values == [0, 1] && entries["u"]?.values == [255])
        #expect(SafeTensors.floatFromHalf(0x7E00).isNaN)
        #if !(os(macOS) && arch(x86_64))
        for bits in UInt16.min...UInt16.max where !Float(Float16(bitPattern: bits)).isNaN {
            #expect(SafeTensors.floatFromHalf(bits) == Float(Float16(bitPattern: bits)), "half 0x\(String(bits, radix: 16))")
        }
        #endif
    }

    @Test("the duplicate-key scanner sees only keys, never values or nested strings")
    func duplicateScanner() {
        func scan(_ text: String) -> String? {
            SafeTensorsHeader.firstDuplicateKey(in: Array(text.utf8)[...]).map { "\($0.parent ?? "-")/\($0.key)" }
        }
        #expect(scan(#"{"a":"a","b":["a","a"],"c":{"a":1}}"#) == nil)
        #expect(scan(#"{"a":{"x":1,"y":{"x":2}},"b":{"x":1,"x":2}}"#) == "b/x")
        #expect(scan(#"{"q\"":1,"q\"":2}"#) == "-/q\"")
    }
}
