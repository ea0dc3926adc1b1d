import Foundation
import FoveaData
import FoveaModels
import FoveaNN
import FoveaTensor
@testable import FoveaServe
@testable import FoveaTrain
import Logging
import ServiceLifecycle
import Testing

/// A LeNet-5 with a Fashion-MNIST sidecar, saved once per test process, and a few 28×28 PNGs of its kind.
enum Fixture {
    static let directory: String = {
        let path = NSTemporaryDirectory() + "fovea-serve-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "fovea-serve-tests-\(getpid())") }
        return path
    }()

    static let weights: String = {
        Initialization.seed(11)
        let model = try! LeNet5()
        let sidecar = ModelSidecar(architecture: "lenet5", classes: (0..<10).map { "class \($0)" }, inputShape: [1, 28, 28],
                                   dataset: "synthetic", mean: [0.3], std: [0.35])
        let path = directory + "/model.safetensors"
        _ = try! ModelFile.save(model, sidecar: sidecar, to: path)
        return path
    }()

    /// Image `k`: noise with a bright square at a place that depends on k.
    static func png(_ k: Int) -> [UInt8] {
        var generator = SeededGenerator(seed: UInt64(100 + k))
        var pixels = (0..<784).map { _ in UInt8(truncatingIfNeeded: generator.next() % 60) }
        let (top, left) = (2 + (k * 7) % 20, 2 + (k * 11) % 20)
        for y in top..<(top + 6) { for x in left..<(left + 6) { pixels[y * 28 + x] = 250 } }
        return PNGEncoder.encode(pixels: pixels, channels: 1, height: 28, width: 28)
    }

    static func classifier() throws -> ImageClassifier { try ImageClassifier(weights: weights) }
}

/// A server running in this process on a free loopback port.
struct RunningServer {
    let server: FoveaServer
    let port: Int
    let group: ServiceGroup
    let task: Task<Void, Error>

    /// Starts it and waits until it listens and its model is warmed up.
    static func start(_ configure: (inout ServeConfiguration) -> Void = { _ in }) async throws -> RunningServer {
        var configuration = ServeConfiguration()
        configuration.port = 0
        configuration.limits.maxDelay = 0.002
        configure(&configuration)
        var logger = Logger(label: "fovea.serve.test")
        logger.logLevel = .error
        let server = try FoveaServer(classifier: Fixture.classifier(), configuration: configuration, logger: logger)
        let port = PortBox()
        let group = ServiceGroup(configuration: .init(services: [server.makeApplication { port.set($0) }], logger: logger))
        let task = Task { try await group.run() }
        let deadline = Date().addingTimeInterval(30)
        while port.value == nil || !server.queue.isReady {
            try #require(Date() < deadline, "the server did not start")
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        return RunningServer(server: server, port: port.value!, group: group, task: task)
    }

    /// Graceful shutdown, and its end.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// A running server, stopped (gracefully) at the end of `body`.
func withServer(_ configure: (inout ServeConfiguration) -> Void = { _ in },
                _ body: (_ port: Int, _ server: FoveaServer) async throws -> Void) async throws {
    let running = try await RunningServer.start(configure)
    do {
        try await body(running.port, running.server)
    } catch {
        try? await running.stop()
        throw error
    }
    try await running.stop()
}

final class PortBox: @unchecked Sendable {
    private let lock = NSLock()
    private var port: Int?
    var value: Int? { lock.withLock { port } }
    func set(_ value: Int) { lock.withLock { port = value } }
}

/// A plain HTTP/1.1 client over a POSIX socket (one request per connection), each on a thread of its own so that
/// blocking reads never starve the server's tasks.
struct HTTPAnswer {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    func json() throws -> [String: Any] { try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]) }
}

enum HTTPFailure: Error { case connect(Int32), closedWithoutAnswer }

func http(_ method: String, _ path: String, port: Int, headers: [String: String] = [:], body: [UInt8] = [],
          rawHead: String? = nil) async throws -> HTTPAnswer {
    try await withCheckedThrowingContinuation { continuation in
        // A thread of its own: Dispatch's global queues are as wide as the cores and the server's tasks need them.
        let thread = Thread {
            continuation.resume(with: Result { try blockingHTTP(method, path, port: port, headers: headers, body: body, rawHead: rawHead) })
        }
        thread.start()
    }
}

func blockingHTTP(_ method: String, _ path: String, port: Int, headers: [String: String], body: [UInt8], rawHead: String?) throws -> HTTPAnswer {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw HTTPFailure.connect(errno) }
    var head = rawHead ?? "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if rawHead == nil {
        var fields = headers
        if fields["Content-Length"] == nil && fields["Transfer-Encoding"] == nil && (!body.isEmpty || method == "POST") {
            fields["Content-Length"] = String(body.count)
        }
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
        head += "\r\n"
    }
    let request = Array(head.utf8) + body
    var sent = 0
    while sent < request.count {
        let written = request[sent...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if written <= 0 { break }  // the server may answer (413) and close before reading everything
        sent += written
    }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = recv(socket, &buffer, buffer.count, 0)
        if count <= 0 { break }
        response += buffer[0..<count]
    }
    guard let split = MultipartForm.find(Array("\r\n\r\n".utf8), in: response, from: 0) else { throw HTTPFailure.closedWithoutAnswer }
    let lines = String(decoding: response[0..<split], as: UTF8.self).components(separatedBy: "\r\n")
    let status = Int(lines[0].split(separator: " ")[1]) ?? 0
    var fields: [String: String] = [:]
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    var payload = Array(response[(split + 4)...])
    if fields["transfer-encoding"] == "chunked" {
        var decoded: [UInt8] = [], position = 0
        while let end = MultipartForm.find([13, 10], in: payload, from: position),
              let size = Int(String(decoding: payload[position..<end], as: UTF8.self), radix: 16), size > 0 {
            decoded += payload[(end + 2)..<(end + 2 + size)]
            position = end + 2 + size + 2
        }
        payload = decoded
    }
    return HTTPAnswer(status: status, headers: fields, body: payload)
}

func multipart(_ files: [(String, [UInt8])], boundary: String = "fovea-test-boundary") -> (body: [UInt8], contentType: String) {
    var body: [UInt8] = []
    for (name, bytes) in files {
        body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"image\"; filename=\"\(name)\"\r\nContent-Type: image/png\r\n\r\n".utf8)
        body += bytes + Array("\r\n".utf8)
    }
    body += Array("--\(boundary)--\r\n".utf8)
    return (body, "multipart/form-data; boundary=\(boundary)")
}

func probabilities(_ prediction: [String: Any]) -> [String: Double] {
    Dictionary(uniqueKeysWithValues: (prediction["top"] as? [[String: Any]] ?? []).map { ($0["class"] as! String, $0["probability"] as! Double) })
}

@Suite("fovea serve", .serialized)
struct ServerTests {
    @Test("every route answers: page, predict (raw and multipart, JSON and HTML), explain, model, health, readiness, metrics, OpenAPI")
    func routes() async throws {
        let classifier = try Fixture.classifier()
        let direct = try classifier.classify([try classifier.prepare(bytes: Fixture.png(0), name: "0"),
                                              try classifier.prepare(bytes: Fixture.png(1), name: "1")])
        try await withServer { port, server in
            let page = try await http("GET", "/", port: port)
            #expect(page.status == 200 && page.headers["content-type"]?.hasPrefix("text/html") == true)
            #expect(page.text.contains("<canvas id=pad") && page.text.contains("action=\"/v1/predict?format=html\""))
            #expect(!page.text.contains("http://") && !page.text.contains("https://"), "the page must load nothing from elsewhere")

            let raw = try await http("POST", "/v1/predict?top_k=3", port: port, headers: ["Content-Type": "image/png"], body: Fixture.png(0))
            #expect(raw.status == 200)
            let answer = try raw.json()
            let model = try #require(answer["model"] as? [String: Any])
            #expect(model["name"] as? String == "lenet5" && (model["version"] as? String)?.count == 12)
            let first = try #require((answer["predictions"] as? [[String: Any]])?.first)
            #expect((first["top"] as? [[String: Any]])?.count == 3)
            let timing = try #require(first["timing"] as? [String: Any])
            #expect(timing["queued_ms"] is Double && timing["compute_ms"] is Double && timing["batch_size"] as? Int == 1)
            for (name, p) in probabilities(first) {
                let index = Int(name.split(separator: " ")[1])!
                #expect(abs(p - Double(direct[0].probabilities[index])) < 1e-6)
            }

            let (body, type) = multipart([("a.png", Fixture.png(0)), ("b.png", Fixture.png(1))])
            let several = try await http("POST", "/v1/predict?top_k=10", port: port, headers: ["Content-Type": type], body: body)
            #expect(several.status == 200)
            let predictions = try #require(try several.json()["predictions"] as? [[String: Any]])
            #expect(predictions.map { $0["image"] as? String } == ["a.png", "b.png"])
            for (prediction, expected) in zip(predictions, direct) {
                for (name, p) in probabilities(prediction) {
                    #expect(abs(p - Double(expected.probabilities[Int(name.split(separator: " ")[1])!])) < 1e-6)
                }
            }
            let htmlAnswer = try await http("POST", "/v1/predict?format=html", port: port, headers: ["Content-Type": type], body: body)
            #expect(htmlAnswer.status == 200 && htmlAnswer.text.contains("a.png") && htmlAnswer.text.contains("class=bar"))

            let explained = try await http("POST", "/v1/explain?class=class%203", port: port, body: Fixture.png(1))
            #expect(explained.status == 200)
            let explanation = try #require((try explained.json()["explanations"] as? [[String: Any]])?.first)
            #expect(explanation["class_index"] as? Int == 3 && explanation["height"] as? Int == 5 && explanation["width"] as? Int == 5)
            #expect((explanation["heat_map"] as? [[Double]])?.count == 5)
            #expect((explanation["overlay_png"] as? String)?.hasPrefix("data:image/png;base64,") == true)
            let overlay = try await http("POST", "/v1/explain?format=png", port: port, body: Fixture.png(1))
            #expect(overlay.status == 200 && overlay.headers["content-type"] == "image/png" && overlay.body.starts(with: [0x89, 0x50, 0x4E, 0x47]))

            let description = try await http("GET", "/v1/model", port: port).json()
            #expect(description["input_shape"] as? [Int] == [1, 28, 28] && (description["classes"] as? [String])?.count == 10)
            #expect(description["parameters"] as? Int == 61_706)
            #expect(try await http("GET", "/healthz", port: port).status == 200)
            let ready = try await http("GET", "/readyz", port: port)
            let readiness = try ready.json()
            #expect(ready.status == 200 && readiness["ready"] as? Bool == true)
            let openAPI = try await http("GET", "/openapi.json", port: port).json()
            #expect(openAPI["openapi"] as? String == "3.0.3")
            #expect(Set((openAPI["paths"] as? [String: Any])?.keys ?? [:].keys)
                    == ["/", "/v1/predict", "/v1/explain", "/v1/model", "/healthz", "/readyz", "/metrics", "/openapi.json"])
            let metrics = try await http("GET", "/metrics", port: port)
            #expect(metrics.status == 200)
            #expect(metrics.text.contains("fovea_http_requests_total{route=\"/v1/predict\",method=\"POST\",status=\"200\"} 3"))
            #expect(metrics.text.contains("fovea_batch_size_bucket") && metrics.text.contains("fovea_queue_depth 0"))
            #expect(metrics.text.contains("fovea_http_request_duration_seconds_bucket{route=\"/v1/explain\""))
            #expect(metrics.text.contains("fovea_images_total{route=\"/v1/predict\"} 5"))
            _ = server
        }
    }

    @Test("bad requests get JSON errors with the right status: 400, 404, 405, 413, 415")
    func errors() async throws {
        try await withServer({ $0.maxBodyBytes = 4096; $0.maxImagePixels = 28 * 28 }) { port, server in
            func expectError(_ answer: HTTPAnswer, _ status: Int, _ code: String, _ words: String,
                             sourceLocation: SourceLocation = #_sourceLocation) throws {
                #expect(answer.status == status, "\(answer.status): \(answer.text)", sourceLocation: sourceLocation)
                let error = try #require(try answer.json()["error"] as? [String: Any], sourceLocation: sourceLocation)
                #expect(error["code"] as? String == code && error["status"] as? Int == status, sourceLocation: sourceLocation)
                #expect((error["message"] as? String)?.contains(words) == true, "\(error)", sourceLocation: sourceLocation)
            }
            try expectError(try await http("POST", "/v1/predict", port: port, body: Array("hello, not an image".utf8)),
                            415, "unsupported_media_type", "neither a JPEG nor a PNG")
            let png = Fixture.png(2)
            try expectError(try await http("POST", "/v1/predict", port: port, body: Array(png.prefix(png.count - 20))),
                            400, "damaged_image", "damaged")
            try expectError(try await http("POST", "/v1/predict", port: port, body: []), 400, "empty_body", "empty")
            try expectError(try await http("POST", "/v1/predict?top_k=zero", port: port, body: png), 400, "bad_parameter", "top_k")
            try expectError(try await http("POST", "/v1/explain?class=11", port: port, body: png), 400, "bad_parameter", "class '11'")
            let large = PNGEncoder.encode(pixels: Array(repeating: 9, count: 29 * 29), channels: 1, height: 29, width: 29)
            try expectError(try await http("POST", "/v1/predict", port: port, body: large), 400, "too_many_pixels", "29×29")
            try expectError(try await http("POST", "/v1/predict", port: port, headers: ["Content-Type": "multipart/form-data; boundary=zz"],
                                           body: Array("--zz\r\nbroken".utf8)), 400, "bad_multipart", "part 1")
            // Over --max-body-bytes: announced by Content-Length, and streamed in chunks without one.
            try expectError(try await http("POST", "/v1/predict", port: port, body: Array(repeating: 7, count: 5000)),
                            413, "payload_too_large", "4096")
            var chunked = Array("1000\r\n".utf8) + Array(repeating: 7, count: 4096) + Array("\r\n".utf8)
            chunked += chunked + Array("0\r\n\r\n".utf8)
            try expectError(try await http("POST", "/v1/predict", port: port, headers: ["Transfer-Encoding": "chunked"], body: chunked),
                            413, "payload_too_large", "4096")
            let wrongMethod = try await http("GET", "/v1/predict", port: port)
            try expectError(wrongMethod, 405, "method_not_allowed", "use POST")
            #expect(wrongMethod.headers["allow"] == "POST")
            try expectError(try await http("DELETE", "/metrics", port: port), 405, "method_not_allowed", "use GET")
            try expectError(try await http("GET", "/v2/nothing", port: port), 404, "not_found", "/v2/nothing")
            // After all of that the server still answers.
            #expect(try await http("POST", "/v1/predict", port: port, body: png).status == 200)
            _ = server
        }
    }

    @Test("a full queue is 503 with Retry-After; a request not answered within --request-timeout is 504")
    func queueLimits() async throws {
        try await withServer({ $0.limits.maxBatch = 2; $0.limits.maxQueue = 2; $0.limits.requestTimeout = 0.5 }) { port, server in
            server.queue.pause()
            let (two, type) = multipart([("a.png", Fixture.png(0)), ("b.png", Fixture.png(1))])
            async let waiting = http("POST", "/v1/predict", port: port, headers: ["Content-Type": type], body: two)
            while server.queue.depth < 2 { try await Task.sleep(nanoseconds: 2_000_000) }
            let refused = try await http("POST", "/v1/predict", port: port, body: Fixture.png(2))
            #expect(refused.status == 503, "\(refused.text)")
            #expect(Int(refused.headers["retry-after"] ?? "") ?? 0 >= 1)
            let refusal = try refused.json()
            #expect((refusal["error"] as? [String: Any])?["code"] as? String == "queue_full")
            let timedOut = try await waiting
            #expect(timedOut.status == 504, "\(timedOut.text)")
            #expect(server.queue.depth == 0, "a timed-out request leaves the queue")
            server.queue.resume()
            #expect(try await http("POST", "/v1/predict", port: port, body: Fixture.png(2)).status == 200)
        }
    }

    @Test("concurrent requests run as one batch, and each image's result is the one it gets alone")
    func batchingEquivalence() async throws {
        let classifier = try Fixture.classifier()
        let alone = try (0..<6).map { try classifier.classify([classifier.prepare(bytes: Fixture.png($0), name: "\($0)")])[0] }
        try await withServer({ $0.limits.maxBatch = 8 }) { port, server in
            server.queue.pause()
            let answers = try await withThrowingTaskGroup(of: (Int, HTTPAnswer).self) { group in
                for k in 0..<6 { group.addTask { (k, try await http("POST", "/v1/predict?top_k=10", port: port, body: Fixture.png(k))) } }
                while server.queue.depth < 6 { try await Task.sleep(nanoseconds: 2_000_000) }
                server.queue.resume()
                var answers: [Int: HTTPAnswer] = [:]
                for try await (k, answer) in group { answers[k] = answer }
                return answers
            }
            for k in 0..<6 {
                let answer = try #require(answers[k])
                #expect(answer.status == 200)
                let prediction = try #require((try answer.json()["predictions"] as? [[String: Any]])?.first)
                #expect((prediction["timing"] as? [String: Any])?["batch_size"] as? Int == 6, "requests did not coalesce")
                for (name, p) in probabilities(prediction) {
                    let expected = Double(alone[k].probabilities[Int(name.split(separator: " ")[1])!])
                    #expect(abs(p - expected) <= 1e-5 * max(1, expected), "image \(k), \(name): \(p) batched, \(expected) alone")
                }
            }
            let metrics = try await http("GET", "/metrics", port: port).text
            #expect(metrics.contains("fovea_batch_size_bucket{le=\"8.0\"}"))
        }
    }

    @Test("graceful shutdown answers the requests in flight, then stops accepting connections")
    func gracefulShutdown() async throws {
        let running = try await RunningServer.start { $0.limits.maxDelay = 0.005 }
        running.server.queue.pause()
        let inFlight = (0..<3).map { k in Task { try await http("POST", "/v1/predict", port: running.port, body: Fixture.png(k)) } }
        while running.server.queue.depth < 3 { try await Task.sleep(nanoseconds: 2_000_000) }
        await running.group.triggerGracefulShutdown()
        try await Task.sleep(nanoseconds: 200_000_000)
        running.server.queue.resume()
        for request in inFlight { #expect(try await request.value.status == 200) }
        try await running.task.value
        await #expect(throws: HTTPFailure.self) { try await http("GET", "/healthz", port: running.port) }
    }
}
