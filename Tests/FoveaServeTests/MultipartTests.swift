import Foundation
import Testing
@testable import FoveaServe

@Suite("multipart/form-data")
struct MultipartTests {
    static func form(_ parts: [(String, String?, [UInt8])], boundary: String = "XyZ123") -> [UInt8] {
        var body: [UInt8] = []
        for (name, filename, bytes) in parts {
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"".utf8)
            if let filename { body += Array("; filename=\"\(filename)\"".utf8) }
            body += Array("\r\nContent-Type: application/octet-stream\r\n\r\n".utf8) + bytes + Array("\r\n".utf8)
        }
        return body + Array("--\(boundary)--\r\n".utf8)
    }

    @Test("parts come back with their names, file names and exact bytes, CRLFs and boundaries inside kept")
    func roundTrip() throws {
        let tricky: [UInt8] = Array("a\r\n--XyZ12 not the boundary\r\n".utf8) + [0, 255, 13, 10]
        let parsed = try MultipartForm(body: Self.form([("a", "x.png", [1, 2, 3]), ("b", nil, tricky)]), boundary: "XyZ123")
        #expect(parsed.parts.count == 2)
        #expect(parsed.parts[0].name == "a" && parsed.parts[0].filename == "x.png" && parsed.parts[0].body == [1, 2, 3])
        #expect(parsed.parts[1].filename == nil && parsed.parts[1].body == tricky)
        #expect(try MultipartForm.boundary(ofContentType: "multipart/form-data; boundary=\"XyZ123\"") == "XyZ123")
        #expect(try MultipartForm.boundary(ofContentType: "image/png") == nil)
    }

    @Test("malformed forms are errors that say what is wrong")
    func malformed() throws {
        let good = Self.form([("a", "x.png", [1, 2, 3])])
        #expect(throws: MultipartForm.Failure.missingBoundary("other")) { try MultipartForm(body: good, boundary: "other") }
        #expect(throws: MultipartForm.Failure.unterminated) { try MultipartForm(body: Array(good.prefix(good.count - 12)), boundary: "XyZ123") }
        #expect(throws: MultipartForm.Failure.noBoundary) { try MultipartForm.boundary(ofContentType: "multipart/form-data") }
        let noDisposition = Array("--B\r\nContent-Type: image/png\r\n\r\nxx\r\n--B--".utf8)
        #expect(throws: MultipartForm.Failure.badPart(index: 0, reason: "it has no Content-Disposition header")) {
            try MultipartForm(body: noDisposition, boundary: "B")
        }
        // Every prefix of a good form is either a form or an error, never a crash.
        for length in 0..<good.count { _ = try? MultipartForm(body: Array(good.prefix(length)), boundary: "XyZ123") }
    }
}
