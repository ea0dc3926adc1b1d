import Foundation
import Logging

/// Structured logs: one JSON object per line on standard error, with the time (ISO 8601, UTC), level, label,
/// message and every metadata field (`{"time": …, "level": "info", "label": "fovea.serve", "message": "request", "status": "200", …}`).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    private static let lock = NSLock()

    public init(label: String, level: Logger.Level = .info) {
        (self.label, self.logLevel) = (label, level)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: [String: Any] = ["time": Self.timestamp(), "level": event.level.rawValue, "label": label, "message": "\(event.message)"]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { object[key] = Self.plain(value) }
        if let error = event.error { object["error"] = "\(error)" }
        var line = JSONText.bytes(object)
        line.append(10)
        Self.lock.withLock {
            line.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                    if written > 0 { offset += written } else if written < 0 && errno == EINTR { continue } else { break }
                }
            }
        }
    }

    static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case let .string(text): return text
        case let .stringConvertible(item): return item.description
        case let .array(items): return items.map(plain)
        case let .dictionary(fields): return fields.mapValues(plain)
        }
    }

    static func timestamp() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        var parts = tm()
        var seconds = time.tv_sec
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, time.tv_nsec / 1_000_000)
    }
}
