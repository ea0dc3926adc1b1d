import Foundation

/// Writes TensorBoard event files (scalars), readable by TensorBoard itself: TFRecord framing with masked
/// CRC-32C checksums around `Event` protocol-buffer messages, encoded by hand (no protobuf dependency).
public final class TensorBoardWriter {
    /// The event file being written.
    public let path: String
    private let handle: FileHandle

    /// Creates `directory` if needed and starts a new event file in it.
    public init(directory: String) throws {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw TrainingError.cannotWrite(path: directory, reason: "\(error)")
        }
        let host = ProcessInfo.processInfo.hostName
        path = (directory as NSString).appendingPathComponent(
            "events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(getpid())")
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw TrainingError.cannotWrite(path: path, reason: "cannot create the event file")
        }
        self.handle = handle
        var event = ProtobufWriter()
        event.double(1, Date().timeIntervalSince1970)
        event.string(3, "brain.Event:2")
        try write(record: event.bytes)
    }

    deinit { try? handle.close() }

    /// Appends scalar summaries for one step, then flushes them to disk.
    public func add(scalars: [(tag: String, value: Double)], step: Int) throws {
        var summary = ProtobufWriter()
        for (tag, value) in scalars {
            var entry = ProtobufWriter()
            entry.string(1, tag)
            entry.float(2, Float(value))
            summary.message(1, entry.bytes)
        }
        var event = ProtobufWriter()
        event.double(1, Date().timeIntervalSince1970)
        event.varint(2, UInt64(max(step, 0)))
        event.message(5, summary.bytes)
        try write(record: event.bytes)
        try handle.synchronize()
    }

    private func write(record data: [UInt8]) throws {
        var length = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        length += withUnsafeBytes(of: maskedCRC32C(length).littleEndian, Array.init)
        let checksum = withUnsafeBytes(of: maskedCRC32C(data).littleEndian, Array.init)
        do { try handle.write(contentsOf: length + data + checksum) } catch {
            throw TrainingError.cannotWrite(path: path, reason: "\(error)")
        }
    }
}

/// CRC-32C (Castagnoli), masked as TFRecord requires: rotate right by 15, add 0xa282ead8.
func maskedCRC32C(_ bytes: [UInt8]) -> UInt32 {
    let crc = crc32c(bytes)
    return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
}

/// CRC-32C of `bytes` (reflected polynomial 0x82F63B78).
func crc32c(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc >> 1) ^ (0x82F6_3B78 & (0 &- (crc & 1))) }
    }
    return ~crc
}

/// The few protocol-buffer wire encodings an `Event` needs.
struct ProtobufWriter {
    var bytes: [UInt8] = []

    mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func key(_ field: Int, _ wireType: UInt64) { rawVarint(UInt64(field) << 3 | wireType) }
    mutating func varint(_ field: Int, _ value: UInt64) { key(field, 0); rawVarint(value) }
    mutating func double(_ field: Int, _ value: Double) {
        key(field, 1)
        bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
    }
    mutating func float(_ field: Int, _ value: Float) {
        key(field, 5)
        bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
    }
    mutating func message(_ field: Int, _ payload: [UInt8]) {
        key(field, 2)
        rawVarint(UInt64(payload.count))
        bytes += payload
    }
    mutating func string(_ field: Int, _ text: String) { message(field, Array(text.utf8)) }
}
