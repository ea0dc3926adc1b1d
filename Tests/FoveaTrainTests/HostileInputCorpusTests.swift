import Foundation
#if canImport(Glibc)
import Glibc
#endif
import FoveaModels
import FoveaNN
@testable import FoveaTrain
import Testing

/// One run of the `fovea` binary with its exit, output, wall time and peak resident memory (the child's VmHWM).
struct MeasuredRun {
    var status: Int32?
    var signal: Int32?
    var timedOut = false
    var output = "", error = ""
    var seconds = 0.0
    var peakMegabytes = 0.0
}

/// Runs `fovea` with `arguments`, standard input from /dev/null and its output in files under `scratch` (no pipe to
/// fill up), killing it after `timeout` seconds.
func runFoveaMeasured(_ arguments: [String], scratch: String, timeout: Double) throws -> MeasuredRun {
    let outputPath = scratch + "/stdout", errorPath = scratch + "/stderr"
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let argv = ([foveaBinary] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let environment = ProcessInfo.processInfo.environment.filter { $0.key != "FOVEA_DATA" }.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { environment.forEach { free($0) } }
    var pid = pid_t()
    let started = Date()
    let spawned = posix_spawn(&pid, foveaBinary, &actions, nil, argv, environment)
    guard spawned == 0 else {
        throw TrainingError.cannotWrite(path: foveaBinary, reason: "cannot start: \(String(cString: strerror(spawned)))")
    }
    var run = MeasuredRun()
    var status: Int32 = 0
    var usage = rusage()
    // The peak is read from /proc while the child runs: wait4's ru_maxrss would include this (large) test process's
    // own high-water mark, which a spawned child inherits across exec. The mark only rises and touching memory takes
    // time (about 0.2 ms per MB), so polling every 2 ms misses at most a few MB of a final rise.
    var peakKilobytes = 0
    while true {
        peakKilobytes = max(peakKilobytes, highWaterMarkKilobytes(pid) ?? 0)
        let finished = wait4(pid, &status, WNOHANG, &usage)
        if finished == pid { break }
        if Date().timeIntervalSince(started) > timeout {
            kill(pid, SIGKILL)
            _ = wait4(pid, &status, 0, &usage)
            run.timedOut = true
            break
        }
        usleep(2000)
    }
    run.seconds = Date().timeIntervalSince(started)
    run.peakMegabytes = Double(peakKilobytes) / 1024
    if status & 0x7F == 0 { run.status = (status >> 8) & 0xFF } else { run.signal = status & 0x7F }
    run.output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    run.error = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
    return run
}

/// VmHWM, the peak resident set size, of a running process in kB (nil once it has exited).
func highWaterMarkKilobytes(_ pid: pid_t) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return nil }
    return Int(line.split(separator: " ").dropFirst().first ?? "")
}

/// The malformed-input corpus of scripts/hostile-corpus.py, run against the release binary: every case must end with
/// its exit status and a message naming the file and field, within a time and memory bound, never with a signal.
@Suite("Hostile input corpus", .serialized)
struct HostileInputCorpusTests {
    /// Peak resident memory allowed for any malformed input (the whole process, oneDNN and the model included).
    static let memoryLimitMegabytes = 300.0
    /// Wall time allowed per case: ten times what the slowest takes on a 2-core AMD EPYC.
    static let timeLimitSeconds = 20.0

    @Test("every case of the corpus exits as expected, names the file, and stays within time and memory")
    func corpus() throws {
        let root = try temporaryDirectory("hostile-corpus")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let model = root + "/model"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        Initialization.seed(5)
        let sidecar = ModelSidecar(architecture: "lenet5", classes: (0..<10).map { "class \($0)" }, inputShape: [1, 28, 28],
                                   dataset: "mnist", mean: [0.5], std: [0.25])
        try ModelFile.save(try LeNet5(), sidecar: sidecar, to: model + "/model.safetensors")
        _ = try HostileModelFileTests.writeImage(in: model)

        let script = repositoryScript("hostile-corpus.py")
        let generator = try runCommand("/usr/bin/env", ["python3", script, root])
        try #require(generator.status == 0, "the corpus generator failed: \(generator.error)")
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/manifest.json")))
            as? [[String: Any]])
        #expect(manifest.count >= 70)

        var summary: [String: (cases: Int, passed: Int, peak: Double, slowest: Double)] = [:]
        let scratch = try temporaryDirectory("hostile-corpus-output")
        for entry in manifest {
            let kind = entry["kind"] as? String ?? "?", label = entry["label"] as? String ?? "?"
            let arguments = (entry["arguments"] as? [String] ?? []).map { $0.replacingOccurrences(of: "{D}", with: root) }
            let mentions = (entry["mention"] as? [String] ?? []).map { $0.replacingOccurrences(of: "{D}", with: root) }
            let expected = entry["status"] as? Int
            let run = try runFoveaMeasured(arguments, scratch: scratch, timeout: Self.timeLimitSeconds)
            var problems: [String] = []
            if run.timedOut { problems.append("still running after \(Self.timeLimitSeconds) s") }
            if let signal = run.signal, !run.timedOut { problems.append("killed by signal \(signal)") }
            if let status = run.status {
                // A case without a status may succeed or be refused as bad data, never anything else.
                let allowed: [Int32] = expected.map { [Int32($0)] } ?? [0, 65]
                if !allowed.contains(status) { problems.append("exit \(status), expected \(allowed)") }
            }
            for mention in mentions where !run.error.contains(mention) { problems.append("the message does not name '\(mention)'") }
            if run.peakMegabytes > Self.memoryLimitMegabytes { problems.append(String(format: "peak RSS %.0f MB", run.peakMegabytes)) }
            if !problems.isEmpty {
                Issue.record("[\(kind)] \(label): \(problems.joined(separator: "; "))\n  fovea \(arguments.joined(separator: " "))\n  \(run.error.prefix(400))")
            }
            var line = summary[kind] ?? (0, 0, 0, 0)
            line.cases += 1
            line.passed += problems.isEmpty ? 1 : 0
            line.peak = max(line.peak, run.peakMegabytes)
            line.slowest = max(line.slowest, run.seconds)
            summary[kind] = line
        }
        for (kind, line) in summary.sorted(by: { $0.key < $1.key }) {
            print(String(format: "hostile corpus: %-12@ %3d cases, %3d as expected, peak RSS %5.0f MB, slowest %.2f s",
                         kind, line.cases, line.passed, line.peak, line.slowest))
        }
    }
}
