import Foundation
import FoveaData
@testable import FoveaTrain
import Testing

/// The `fovea` binary built next to the tests.
let foveaBinary = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                        ?? CommandLine.arguments[0])
    .deletingLastPathComponent().appendingPathComponent("fovea").path

/// `fovea serve` as a process: the port it logs, its standard error, and its exit.
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var log = ""
    private var port: Int?

    init(_ arguments: [String]) throws {
        guard FileManager.default.isExecutableFile(atPath: foveaBinary) else {
            throw HTTPFailure.closedWithoutAnswer
        }
        process.executableURL = URL(fileURLWithPath: foveaBinary)
        process.arguments = ["serve", "--port", "0"] + arguments
        let error = Pipe()
        process.standardError = error
        process.standardOutput = FileHandle.nullDevice
        error.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.withLock {
                self.log += String(decoding: data, as: UTF8.self)
                if self.port == nil, let range = self.log.range(of: #""port":"(\d+)""#, options: .regularExpression) {
                    self.port = Int(self.log[range].filter(\.isNumber))
                }
            }
        }
        try process.run()
    }

    var output: String { lock.withLock { log } }

    /// The port, once the server logs that it listens and answers /readyz.
    func ready(timeout: Double = 30) async throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let port = lock.withLock({ port }), (try? await http("GET", "/readyz", port: port).status) == 200 { return port }
            try #require(process.isRunning && Date() < deadline, "fovea serve did not become ready: \(output)")
            try await Task.sleep(nanoseconds: 20_000_000)
        }
    }
}

@Suite("fovea serve, the process", .serialized)
struct ServeProcessTests {
    @Test("SIGTERM with a request in flight: the request is answered, the process exits 0; bad weights exit 65")
    func sigterm() async throws {
        // A long batching delay keeps the request waiting in the queue when the signal comes.
        let server = try ServeProcess(["--weights", Fixture.weights, "--max-delay-ms", "1500"])
        let port = try await server.ready()
        let request = Task { try await http("POST", "/v1/predict", port: port, body: Fixture.png(4)) }
        try await Task.sleep(nanoseconds: 400_000_000)
        kill(server.process.processIdentifier, SIGTERM)
        let answer = try await request.value
        #expect(answer.status == 200, "\(answer.text)")
        server.process.waitUntilExit()
        #expect(server.process.terminationReason == .exit && server.process.terminationStatus == 0, "\(server.output)")

        let bad = Process()
        bad.executableURL = URL(fileURLWithPath: foveaBinary)
        bad.arguments = ["serve", "--weights", Fixture.directory + "/missing.safetensors", "--port", "0"]
        bad.standardError = FileHandle.nullDevice
        try bad.run()
        bad.waitUntilExit()
        #expect(bad.terminationStatus == 65)
    }

    /// scripts/browser-test.py in Debian's Chromium: upload a real Fashion-MNIST test image exported as PNG, read the
    /// label and the bars off the page, wait for the Grad-CAM overlay, draw on the canvas, take a screenshot
    /// (.build-test/browser-test.png). scripts/test.sh installs Selenium and sets FOVEA_BROWSER_PYTHON.
    @Test("the page in a real browser shows the model's label, its bars and the Grad-CAM overlay",
          .enabled(if: ProcessInfo.processInfo.environment["FOVEA_BROWSER_PYTHON"] != nil))
    func browser() throws {
        let python = ProcessInfo.processInfo.environment["FOVEA_BROWSER_PYTHON"]!
        let images = try IDXDataset(directory: "/usr/share/datasets/fashion-mnist", split: .test, limit: 1)
        let png = Fixture.directory + "/fashion-mnist-test-0.png"
        try Data(PNGEncoder.encode(pixels: Array(images.pixels.prefix(784)), channels: 1, height: 28, width: 28)).write(to: URL(fileURLWithPath: png))
        let screenshot = URL(fileURLWithPath: foveaBinary).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("browser-test.png").path
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/browser-test.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script, "--fovea", foveaBinary, "--weights", Fixture.weights, "--image", png, "--screenshot", screenshot]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print(text)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(FileManager.default.fileExists(atPath: screenshot))
    }
}
