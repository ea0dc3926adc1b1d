import Foundation
@testable import FoveaTrain
import Testing

@Suite("TensorBoard event files")
struct TensorBoardTests {
    @Test("CRC-32C matches the standard check value")
    func checksum() {
        // The CRC-32C catalogue's check value for the ASCII string "123456789".
        #expect(crc32c(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test("records are framed with length, masked checksums and the scalar values")
    func records() throws {
        let directory = try temporaryDirectory("tensorboard")
        let writer = try TensorBoardWriter(directory: directory)
        try writer.add(scalars: [("loss/train", 0.25), ("accuracy/test", 0.75)], step: 3)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: writer.path)))
        var offset = 0, records: [[UInt8]] = []
        func little<T: FixedWidthInteger>(_ type: T.Type, _ at: Int) -> T {
            bytes[at..<(at + MemoryLayout<T>.size)].reversed().reduce(T(0)) { $0 << 8 | T($1) }
        }
        while offset < bytes.count {
            let length = Int(little(UInt64.self, offset))
            #expect(little(UInt32.self, offset + 8) == maskedCRC32C(Array(bytes[offset..<(offset + 8)])))
            let data = Array(bytes[(offset + 12)..<(offset + 12 + length)])
            #expect(little(UInt32.self, offset + 12 + length) == maskedCRC32C(data))
            records.append(data)
            offset += 16 + length
        }
        #expect(records.count == 2)
        #expect(String(decoding: records[0], as: UTF8.self).contains("brain.Event:2"))
        let text = String(decoding: records[1], as: UTF8.self)
        #expect(text.contains("loss/train") && text.contains("accuracy/test"))
        // The float 0.25 is stored little-endian after its field key (field 2, wire type 5 → 0x15).
        let quarter = withUnsafeBytes(of: Float(0.25).bitPattern.littleEndian, Array.init)
        #expect(contains(records[1], [0x15] + quarter))
    }

    func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }
}
