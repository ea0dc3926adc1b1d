import Foundation
import FoveaData
import FoveaTensor
import FoveaTrain
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// `fovea serve`'s settings.
public struct ServeConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var limits = InferenceQueue.Limits()
    /// Largest request body (bytes); larger ones get 413.
    public var maxBodyBytes = 16 << 20
    /// Largest width × height of one image, read from its header before decoding; larger ones get 400.
    public var maxImagePixels = 40_000_000
    /// Classes per image when a request gives no `top_k`.
    public var defaultTopK = 5
    public init() {}
}

/// An HTTP error answered as JSON: `{"error": {"status": …, "code": "…", "message": "…"}}`.
struct ServeError: Error {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var headers: HTTPFields = [:]

    static func badRequest(_ message: String, code: String = "bad_request") -> ServeError { .init(status: .badRequest, code: code, message: message) }
}

/// The inference service: routes, their JSON, the page, metrics and the batching queue behind them.
public final class FoveaServer: @unchecked Sendable {
    public let configuration: ServeConfiguration
    public let classifier: ImageClassifier
    public let queue: InferenceQueue
    public let metrics: ServeMetrics
    let logger: Logger
    /// First 12 hex digits of the weights file's SHA-256: the model version reported with every answer.
    public let version: String
    let started = Date()

    /// Prepares the service for a loaded classifier; nothing listens until `run`.
    public init(classifier: ImageClassifier, configuration: ServeConfiguration, logger: Logger = Logger(label: "fovea.serve")) throws {
        (self.classifier, self.configuration, self.logger) = (classifier, configuration, logger)
        metrics = ServeMetrics(maxBatch: configuration.limits.maxBatch)
        queue = InferenceQueue(classifier: classifier, limits: configuration.limits, pixelLimit: configuration.maxImagePixels,
                               metrics: metrics, logger: logger)
        version = try Self.digest(of: classifier.path)
    }

    static func digest(of path: String) throws -> String {
        var hash = SHA256()
        let bytes: [UInt8]
        do { bytes = try RegularFile.contents(of: path, limit: 1 << 34) } catch {
            throw TrainingError.badModelFile(path: path, reason: error.reason)
        }
        bytes.withUnsafeBytes { hash.update($0) }
        return String(hash.hexDigest().prefix(12))
    }

    // MARK: Application

    /// The router with every route; wrong methods on known paths get 405, unknown paths 404, both as JSON.
    public func makeRouter() -> Router<BasicRequestContext> {
        // HEAD of every GET route answers with its headers.
        let router = Router(context: BasicRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: ErrorAndMetricsMiddleware(server: self))
        let routes: [(String, [HTTPRequest.Method])] = [
            ("/", [.get]), ("/v1/predict", [.post]), ("/v1/explain", [.post]), ("/v1/model", [.get]), ("/healthz", [.get]),
            ("/readyz", [.get]), ("/metrics", [.get]), ("/openapi.json", [.get]),
        ]
        router.get("/") { [self] request, _ in try page(request) }
        router.post("/v1/predict") { [self] request, _ in try await predict(request) }
        router.post("/v1/explain") { [self] request, _ in try await explain(request) }
        router.get("/v1/model") { [self] _, _ in json(modelDescription()) }
        router.get("/healthz") { [self] _, _ in json(["status": "ok", "uptime_seconds": Date().timeIntervalSince(started)]) }
        router.get("/readyz") { [self] _, _ in
            let ready = queue.isReady
            metrics.ready.set(Double(ready ? 1 : 0))
            return json(["ready": ready], status: ready ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { [self] _, _ in
            metrics.ready.set(Double(queue.isReady ? 1 : 0))
            metrics.queueDepth.set(Double(queue.depth))
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
        router.get("/openapi.json") { [self] _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(bytes: Array(OpenAPIDocument.json(server: self).utf8))))
        }
        let methods: [HTTPRequest.Method] = [.get, .post, .put, .delete, .patch, .options, .head]
        for (path, allowed) in routes {
            let allow = allowed.map(\.rawValue).joined(separator: ", ")
            for method in methods where !allowed.contains(method) && !(method == .head && allowed.contains(.get)) {
                router.on(RouterPath(path), method: method) { request, _ -> Response in
                    throw ServeError(status: .methodNotAllowed, code: "method_not_allowed",
                                     message: "\(request.method.rawValue) is not allowed on \(path); use \(allow)",
                                     headers: [.allow: allow])
                }
            }
        }
        return router
    }

    /// Serves until SIGTERM or SIGINT: then stops accepting connections, answers the requests in flight and returns.
    /// `onListening` receives the bound port (useful with port 0).
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = makeApplication(onListening: onListening)
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// The Hummingbird application (the HTTP server and the inference queue as one service).
    public func makeApplication(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(router: makeRouter(),
                    configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "fovea"),
                    services: [queue],
                    onServerRunning: { [logger, configuration] channel in
                        let port = channel.localAddress?.port ?? configuration.port
                        logger.info("listening", metadata: ["host": "\(configuration.host)", "port": "\(port)"])
                        await onListening(port)
                    },
                    logger: logger)
    }

    // MARK: Handlers

    /// The images of a request: a raw JPEG/PNG body, or every file part of a `multipart/form-data` body.
    func images(of request: Request) async throws -> [(name: String, bytes: [UInt8])] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > configuration.maxBodyBytes {
            throw ServeError(status: .contentTooLarge, code: "payload_too_large",
                             message: "the body has \(length) bytes, more than --max-body-bytes \(configuration.maxBodyBytes)")
        }
        var buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: configuration.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw ServeError(status: .contentTooLarge, code: "payload_too_large",
                             message: "the body is larger than --max-body-bytes \(configuration.maxBodyBytes)")
        }
        let body = buffer.readBytes(length: buffer.readableBytes) ?? []
        let contentType = request.headers[.contentType] ?? ""
        let boundary: String?
        do { boundary = try MultipartForm.boundary(ofContentType: contentType) } catch {
            throw ServeError.badRequest("\(error)", code: "bad_multipart")
        }
        guard let boundary else {
            guard !body.isEmpty else { throw ServeError.badRequest("the body is empty: send a JPEG or PNG image, or a multipart form of them", code: "empty_body") }
            return [("body", body)]
        }
        let form: MultipartForm
        do { form = try MultipartForm(body: body, boundary: boundary, maximumParts: configuration.limits.maxQueue) } catch {
            throw ServeError.badRequest("\(error)", code: "bad_multipart")
        }
        // Parts with a file name, or else every part: an HTML form's file inputs and curl's -F name=@file both qualify.
        let files = form.parts.filter { $0.filename != nil }
        let parts = (files.isEmpty ? form.parts : files).filter { !$0.body.isEmpty || $0.filename != nil }
        guard !parts.isEmpty else { throw ServeError.badRequest("the form holds no image", code: "no_image") }
        return parts.enumerated().map { index, part in (part.filename ?? part.name ?? "part \(index + 1)", part.body) }
    }

    /// The uploads, after the check that each is a JPEG or PNG by its first bytes (415 otherwise, before queueing);
    /// the inference thread decodes them (a damaged one is 400 then).
    func uploads(_ images: [(name: String, bytes: [UInt8])]) throws -> [InferenceQueue.Upload] {
        try images.map { image in
            guard !image.bytes.isEmpty else { throw ServeError.badRequest("image '\(image.name)' is empty", code: "empty_image") }
            guard image.bytes.starts(with: [0xFF, 0xD8, 0xFF]) || image.bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else {
                throw ServeError(status: .unsupportedMediaType, code: "unsupported_media_type",
                                 message: "'\(image.name)' is neither a JPEG nor a PNG image (checked by its first bytes)")
            }
            return InferenceQueue.Upload(name: image.name, bytes: image.bytes)
        }
    }

    /// The answer to an image that could not be decoded: what is wrong with it, naming it.
    static func imageError(_ error: ImageError) -> ServeError {
        if case .unknownFormat = error {
            return ServeError(status: .unsupportedMediaType, code: "unsupported_media_type", message: error.description)
        }
        let code: String
        switch error {
        case .tooManyPixels: code = "too_many_pixels"
        case .empty: code = "empty_image"
        default: code = "damaged_image"
        }
        return ServeError.badRequest(error.description, code: code)
    }

    func topK(_ request: Request) throws -> Int {
        guard let text = request.uri.queryParameters.get("top_k") else { return min(configuration.defaultTopK, classifier.classCount) }
        guard let k = Int(text), k >= 1 else { throw ServeError.badRequest("top_k must be a whole number of at least 1, not '\(text)'", code: "bad_parameter") }
        return min(k, classifier.classCount)
    }

    /// Runs work through the queue, mapping its failures to HTTP statuses.
    func queued(_ body: () async throws -> [InferenceQueue.Result]) async throws -> [InferenceQueue.Result] {
        do { return try await body() } catch let failure as InferenceQueue.Failure {
            switch failure {
            case let .badImage(error):
                throw Self.imageError(error)
            case .notReady:
                throw ServeError(status: .serviceUnavailable, code: "not_ready", message: failure.description, headers: [.retryAfter: "1"])
            case .shuttingDown:
                throw ServeError(status: .serviceUnavailable, code: "shutting_down", message: failure.description)
            case let .queueFull(_, retryAfter):
                throw ServeError(status: .serviceUnavailable, code: "queue_full", message: failure.description + "; retry later",
                                 headers: [.retryAfter: String(retryAfter)])
            case .timedOut:
                throw ServeError(status: .gatewayTimeout, code: "timeout", message: failure.description)
            case .failed:
                throw ServeError(status: .internalServerError, code: "inference_failed", message: failure.description)
            }
        }
    }

    var modelSummary: [String: Any] {
        ["name": classifier.sidecar.architecture, "version": version, "classes": classifier.classCount]
    }

    func predict(_ request: Request) async throws -> Response {
        let k = try topK(request)
        let wantsHTML = request.uri.queryParameters.get("format") == "html"
        let images = try await images(of: request)
        guard images.count <= configuration.limits.maxQueue else {
            throw ServeError(status: .contentTooLarge, code: "too_many_images",
                             message: "\(images.count) images in one request, more than --max-queue \(configuration.limits.maxQueue)")
        }
        let prepared = try uploads(images)
        let results = try await queued { try await queue.classify(prepared) }
        metrics.countImages(results.count, route: "/v1/predict")
        let classes = classifier.sidecar.classes
        let predictions: [[String: Any]] = zip(images, results).enumerated().map { index, pair in
            let (image, result) = pair
            return ["image": image.name, "position": index,
                    "top": result.classification!.top(k).map { ["class": classes[$0.index], "index": $0.index, "probability": Double($0.probability)] },
                    "timing": ["queued_ms": result.queuedSeconds * 1000, "preprocess_ms": result.preprocessSeconds * 1000,
                               "compute_ms": result.computeSeconds * 1000, "batch_size": result.batchSize]]
        }
        if wantsHTML { return html(Page.results(predictions, model: classifier.sidecar.architecture)) }
        return json(["model": modelSummary, "predictions": predictions])
    }

    func explain(_ request: Request) async throws -> Response {
        let wanted = try request.uri.queryParameters.get("class").map { text -> Int in
            if let index = ClassSelection.index(of: String(text), in: classifier.sidecar.classes) { return index }
            throw ServeError.badRequest("class '\(text)' is neither an index in 0…\(classifier.classCount - 1) nor a class name", code: "bad_parameter")
        }
        let images = try await images(of: request)
        guard images.count <= configuration.limits.maxBatch else {
            throw ServeError(status: .contentTooLarge, code: "too_many_images",
                             message: "\(images.count) images to explain at once, more than --max-batch \(configuration.limits.maxBatch)")
        }
        let prepared = try uploads(images)
        let results = try await queued { try await queue.explain(prepared, classes: Array(repeating: wanted, count: prepared.count)) }
        metrics.countImages(results.count, route: "/v1/explain")
        if request.uri.queryParameters.get("format") == "png", let first = results.first?.explanation {
            return Response(status: .ok, headers: [.contentType: "image/png"], body: .init(byteBuffer: ByteBuffer(bytes: first.overlayPNG())))
        }
        let classes = classifier.sidecar.classes
        let explanations: [[String: Any]] = zip(images, results).enumerated().map { index, pair in
            let (image, result) = pair
            let explanation = result.explanation!
            var object = explanation.jsonObject
            object["image"] = image.name
            object["position"] = index
            object["class"] = classes[explanation.map.classIndex]
            object["overlay_png"] = "data:image/png;base64," + Data(explanation.overlayPNG()).base64EncodedString()
            object["timing"] = ["queued_ms": result.queuedSeconds * 1000, "preprocess_ms": result.preprocessSeconds * 1000,
                                "compute_ms": result.computeSeconds * 1000]
            return object
        }
        return json(["model": modelSummary, "explanations": explanations])
    }

    func modelDescription() -> [String: Any] {
        let sidecar = classifier.sidecar
        var object: [String: Any] = [
            "name": sidecar.architecture, "version": version, "weights": classifier.path, "classes": sidecar.classes,
            "input_shape": sidecar.inputShape, "dataset": sidecar.dataset,
            "parameters": classifier.model.parameterCount, "precision": classifier.precision.rawValue,
            "preprocessing": [
                "decode": "JPEG or PNG, to \(classifier.channels == 1 ? "grey" : "RGB")",
                "resize": "bilinear, antialiased, to \(classifier.height)×\(classifier.width)",
                "scale": "pixels / 255", "mean": sidecar.mean.map(Double.init), "std": sidecar.std.map(Double.init),
            ],
            "batching": ["max_batch": configuration.limits.maxBatch, "max_delay_ms": configuration.limits.maxDelay * 1000,
                         "max_queue": configuration.limits.maxQueue, "request_timeout_s": configuration.limits.requestTimeout],
            "limits": ["max_body_bytes": configuration.maxBodyBytes, "max_image_pixels": configuration.maxImagePixels],
        ]
        if let accuracy = sidecar.testAccuracy { object["test_accuracy"] = accuracy }
        return object
    }

    func page(_ request: Request) throws -> Response {
        html(Page.render(model: classifier.sidecar.architecture, version: version, classes: classifier.sidecar.classes,
                         inputShape: classifier.sidecar.inputShape))
    }

    // MARK: Responses

    func json(_ object: Any, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: JSONText.bytes(object))))
    }

    func html(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func errorResponse(_ error: ServeError) -> Response {
        json(["error": ["status": Int(error.status.code), "code": error.code, "message": error.message]], status: error.status,
             headers: error.headers)
    }
}

/// Turns every error into a JSON answer with the right status, and records each request's route, status and time in
/// the metrics and in a structured log line.
struct ErrorAndMetricsMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let server: FoveaServer

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = InferenceQueue.now()
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as ServeError {
            response = server.errorResponse(error)
        } catch let error as HTTPError {
            let message = error.status == .notFound ? "no route \(request.method.rawValue) \(request.uri.path)" : "\(error)"
            response = server.errorResponse(ServeError(status: error.status, code: error.status == .notFound ? "not_found" : "http_error",
                                                       message: message))
        } catch is NIOTooManyBytesError {
            response = server.errorResponse(ServeError(status: .contentTooLarge, code: "payload_too_large",
                                                       message: "the body is larger than --max-body-bytes \(server.configuration.maxBodyBytes)"))
        } catch {
            response = server.errorResponse(ServeError(status: .internalServerError, code: "internal", message: "\(error)"))
        }
        let seconds = InferenceQueue.now() - start
        let route = context.endpointPath ?? "NotFound"
        server.metrics.record(route: route, method: request.method.rawValue, status: Int(response.status.code), seconds: seconds)
        server.logger.info("request", metadata: [
            "method": "\(request.method.rawValue)", "path": "\(request.uri.path)", "route": "\(route)",
            "status": "\(response.status.code)", "ms": "\(String(format: "%.2f", seconds * 1000))",
        ])
        return response
    }
}
