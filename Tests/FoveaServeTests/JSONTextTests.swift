import Foundation
import Testing
@testable import FoveaServe

/// The service's own JSON writer against Foundation's, which it replaces on the hot path.
@Suite struct JSONTextTests {
    /// Objects of every kind the service answers with, nested as the answers nest them.
    static func samples() -> [Any] {
        var random = SystemRandomNumberGenerator()
        let probabilities: [[String: Any]] = (0..<10).map { index in
            ["class": "class \(index)", "index": index, "probability": Double(Float.random(in: 0...1, using: &random))]
        }
        return [
            ["model": ["name": "lenet5", "version": "0123456789ab", "classes": 10] as [String: Any],
             "predictions": [["image": "body", "position": 0, "top": probabilities,
                              "timing": ["queued_ms": Double.random(in: 0...50, using: &random), "compute_ms": 0.0,
                                         "preprocess_ms": 1e-5, "batch_size": 16] as [String: Any]] as [String: Any]]],
            ["error": ["status": 400, "code": "bad_request",
                       "message": "image 'a \"quoted\"\\path/with\tcontrol\u{1}\u{1F}\nand é, 日本, 🙂' is damaged"] as [String: Any]],
            ["ready": true, "other": false, "none": NSNull(), "empty": [String: Any](), "list": [Any](),
             "floats": [Float(0.1), Float(1e-7), Float(3), Float(-2.5)], "doubles": [0.1, -1e300, 123456789.125, 2.0 / 3.0],
             "ints": [0, -1, Int.max, Int.min]],
            ["b": 1, "a": 2, "A": 3, "_": 4, "aa": 5, "a b": 6],
        ]
    }

    /// Foundation's reading of JSON text, written back by Foundation: equal for two texts of the same values.
    static func canonical(_ text: [UInt8]) throws -> String {
        let parsed = try JSONSerialization.jsonObject(with: Data(text), options: [.fragmentsAllowed])
        return String(decoding: try JSONSerialization.data(withJSONObject: parsed, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test func writesTheSameValuesAsFoundation() throws {
        for (number, sample) in Self.samples().enumerated() {
            let ours = JSONText.bytes(sample)
            let foundation = [UInt8](try JSONSerialization.data(withJSONObject: sample, options: [.sortedKeys, .withoutEscapingSlashes]))
            #expect(try Self.canonical(ours) == Self.canonical(foundation), "sample \(number)")
            // The service's keys (lower case, digits, underscores) sort the same either way: the very same text.
            if number < 3 { #expect(String(decoding: ours, as: UTF8.self) == String(decoding: foundation, as: UTF8.self), "sample \(number)") }
        }
    }

    /// Keys in the order of their UTF-8 bytes (Foundation's order folds case; this one does not).
    @Test func sortsKeysByTheirBytes() throws {
        let object: [String: Any] = ["b": 1, "a": 2, "A": 3, "_": 4, "aa": 5, "a b": 6, "é": 7, "Z": 8]
        let keys = object.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let expected = "{" + keys.map { "\"\($0)\":\(object[$0] as! Int)" }.joined(separator: ",") + "}"
        #expect(String(decoding: JSONText.bytes(object), as: UTF8.self) == expected)
    }

    @Test func nonFiniteNumbersBecomeNull() throws {
        let text = String(decoding: JSONText.bytes(["x": [Double.nan, Double.infinity, -Double.infinity, 1.5]]), as: UTF8.self)
        let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: [Any]]
        #expect(parsed["x"]!.prefix(3).allSatisfy { $0 is NSNull })
        #expect((parsed["x"]![3] as! NSNumber).doubleValue == 1.5)
    }
}
