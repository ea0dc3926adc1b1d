import ArgumentParser
import Foundation
import FoveaServe
import FoveaTensor
import FoveaTrain
import Logging

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a trained classifier over HTTP: dynamic batching, a web page, metrics and Grad-CAM explanations.",
        discussion: """
            Routes: POST /v1/predict (one JPEG/PNG as the raw body, or several as multipart/form-data; ?top_k=K),
            POST /v1/explain (Grad-CAM of the top class or of ?class=C; ?format=png for the overlay alone),
            GET /v1/model, /healthz, /readyz (200 once the model is warmed up), /metrics (Prometheus), /openapi.json,
            and / (the page: choose, drop, paste or draw an image).

            Concurrent requests are coalesced: up to --max-batch images, or whatever arrived within --max-delay-ms of
            the oldest waiting one, run through the model at once. Errors are JSON with a status: 413 (body over
            --max-body-bytes), 415 (not a JPEG or PNG), 400 (damaged image, over --max-image-pixels, bad parameter),
            404/405, 503 with Retry-After (queue over --max-queue images, or not ready yet), 504 (no answer within
            --request-timeout). SIGTERM or SIGINT stops accepting connections, answers what is in flight and exits 0.
            Logs are JSON lines on standard error.

            A quantized model (fovea quantize) is served in int8; --precision chooses otherwise (bf16: mixed precision,
            fp32). Grad-CAM explanations run in fp32.
            """)

    @Option(help: "A model.safetensors written by `fovea train` (its sidecar beside it), or an .onnx model.") var weights: String
    @Option(help: "Address to listen on (loopback by default).") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, printed in the log).") var port = 8080
    @Option(name: .customLong("max-batch"), help: "Most images run through the model at once.") var maxBatch = 16
    @Option(name: .customLong("max-delay-ms"), help: "Longest time the oldest waiting image waits for a batch to fill.") var maxDelayMilliseconds = 5.0
    @Option(name: .customLong("max-queue"), help: "Most images waiting; more get 503 with Retry-After.") var maxQueue = 256
    @Option(name: .customLong("max-body-bytes"), help: "Largest request body; larger ones get 413.") var maxBodyBytes = 16 << 20
    @Option(name: .customLong("max-image-pixels"), help: "Largest width × height of an image (checked from its header).") var maxImagePixels = 40_000_000
    @Option(name: .customLong("request-timeout"), help: "Seconds a request may wait for its answer; then 504.") var requestTimeout = 30.0
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"
    @Option(help: ArgumentHelp("Arithmetic of convolutions and fully connected layers: fp32, bf16 (mixed precision) or int8 (a quantized model; its default).",
                               valueName: "fp32|bf16|int8"))
    var precision: Precision?

    func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ValidationError(message) } }
        try check((0...65_535).contains(port), "--port must be in 0…65535")
        try check((1...4096).contains(maxBatch), "--max-batch must be in 1…4096")
        try check(maxDelayMilliseconds.isFinite && (0...60_000).contains(maxDelayMilliseconds), "--max-delay-ms must be in 0…60000")
        try check(maxQueue >= maxBatch && maxQueue <= 1_000_000, "--max-queue must be at least --max-batch and at most 1000000")
        try check(maxBodyBytes >= 1024 && maxBodyBytes <= 1 << 31, "--max-body-bytes must be in 1024…2147483648")
        try check(maxImagePixels >= 1 && maxImagePixels <= 1 << 31, "--max-image-pixels must be in 1…2147483648")
        try check(requestTimeout.isFinite && requestTimeout > 0 && requestTimeout <= 86_400, "--request-timeout must be in (0, 86400] seconds")
        try check(Logger.Level(rawValue: logLevel) != nil, "--log-level must be one of trace, debug, info, notice, warning, error, critical")
        try check(!host.isEmpty, "--host must not be empty")
    }

    func run() async throws {
        var configuration = ServeConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.limits = .init(maxBatch: maxBatch, maxDelay: maxDelayMilliseconds / 1000, maxQueue: maxQueue,
                                     requestTimeout: requestTimeout)
        configuration.maxBodyBytes = maxBodyBytes
        configuration.maxImagePixels = maxImagePixels
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let logger = Logger(label: "fovea.serve") { JSONLogHandler(label: $0, level: level) }
        var server: FoveaServer?
        try runReportingErrors {
            let classifier = try ImageClassifier(weights: weights, warn: warn)
            classifier.precision = try precision.forModel(classifier.sidecar, weights: weights)
            server = try FoveaServer(classifier: classifier, configuration: configuration, logger: logger)
        }
        do {
            try await server!.run()
        } catch {
            fail("serving on \(host):\(port) failed: \(error)", code: 1)
        }
    }
}
