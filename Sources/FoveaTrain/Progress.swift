import Foundation

/// Prints training progress: a live bar with rate and ETA on a terminal, plain lines otherwise
/// (or when `NO_COLOR` is set), nothing when quiet.
public struct ProgressReporter {
    /// Whether anything is printed.
    public var quiet = false
    /// Whether stderr is an interactive terminal (live bar) or not (one line per epoch).
    public var interactive: Bool
    private var lastDraw = Date.distantPast

    /// Creates a reporter that detects the terminal.
    public init(quiet: Bool = false) {
        self.quiet = quiet
        interactive = isatty(STDERR_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
    }

    mutating func step(epoch: Int, of epochs: Int, done: Int, total: Int, loss: Double, accuracy: Double, started: Date) {
        guard !quiet, interactive else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.2 || done == total else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(started)
        let rate = Double(done) / max(elapsed, 1e-9)
        let eta = Double(total - done) / max(rate, 1e-9)
        let width = 24, filled = width * done / max(total, 1)
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = String(format: "epoch %d/%d %@ %d/%d loss %.4f acc %.4f %.0f img/s ETA %.0fs",
                          epoch, epochs, bar, done, total, loss, accuracy, rate, eta)
        FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line).utf8))
    }

    /// A line on standard error that `--quiet` keeps too: what a run did that a user must know (which weights it
    /// loaded).
    func announce(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    func note(_ message: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    func epochFinished(_ m: EpochMetrics, of epochs: Int) {
        guard !quiet else { return }
        if interactive { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
        let line = String(format: "epoch %d/%d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  lr %.5f  %.1fs  %.0f img/s\n",
                          m.epoch, epochs, m.trainLoss, m.trainAccuracy, m.testLoss, m.testAccuracy, m.learningRate,
                          m.seconds, m.imagesPerSecond)
        FileHandle.standardError.write(Data(line.utf8))
    }
}
