import Foundation
import Prometheus

/// The service's Prometheus metrics (`GET /metrics`, text exposition format 0.0.4):
/// `fovea_http_requests_total{route,method,status}`, `fovea_http_request_duration_seconds{route}` (histogram),
/// `fovea_batch_size` and `fovea_batch_duration_seconds` (histograms of the batches the model ran),
/// `fovea_queue_depth` (images waiting), `fovea_images_total{route}` and `fovea_ready`.
public final class ServeMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    let queueDepth: Gauge
    let ready: Gauge
    let batchSize: ValueHistogram
    let batchSeconds: ValueHistogram
    let maxBatch: Int

    static let latencyBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

    public init(maxBatch: Int) {
        self.maxBatch = maxBatch
        queueDepth = registry.makeGauge(descriptor: .init(namespace: "fovea", metricName: "queue_depth", unitName: "",
                                                          helpText: "Images waiting for a batch."))
        ready = registry.makeGauge(descriptor: .init(namespace: "fovea", metricName: "ready", unitName: "",
                                                     helpText: "1 once the model is loaded and warmed up."))
        // Batch sizes 1, 2, 4, … up to the largest allowed, so the histogram shows whether requests coalesce.
        var sizes: [Double] = []
        var size = 1
        while size < maxBatch { sizes.append(Double(size)); size *= 2 }
        sizes.append(Double(maxBatch))
        batchSize = registry.makeValueHistogram(descriptor: .init(namespace: "fovea", metricName: "batch_size", unitName: "",
                                                                  helpText: "Images per batch run on the model."),
                                                buckets: sizes)
        batchSeconds = registry.makeValueHistogram(descriptor: .init(namespace: "fovea", metricName: "batch_duration",
                                                                     unitName: "seconds", helpText: "Time to run one batch."),
                                                   buckets: Self.latencyBuckets)
    }

    /// Counts a finished request and its latency.
    func record(route: String, method: String, status: Int, seconds: Double) {
        registry.makeCounter(descriptor: .init(namespace: "fovea", subsystem: "http", metricName: "requests", unitName: "total",
                                               helpText: "HTTP requests by route, method and status."),
                             labels: [("route", route), ("method", method), ("status", String(status))]).increment()
        registry.makeValueHistogram(descriptor: .init(namespace: "fovea", subsystem: "http", metricName: "request_duration",
                                                      unitName: "seconds", helpText: "Time from request to response."),
                                    labels: [("route", route)], buckets: Self.latencyBuckets).record(seconds)
    }

    /// Counts images answered on a route.
    func countImages(_ count: Int, route: String) {
        registry.makeCounter(descriptor: .init(namespace: "fovea", metricName: "images", unitName: "total",
                                               helpText: "Images classified or explained, by route."),
                             labels: [("route", route)]).increment(by: Int64(count))
    }

    /// The exposition text.
    public func render() -> [UInt8] { registry.emitToBuffer() }
}
