import Foundation
@testable import FoveaTrain
import Testing

/// Open MPI's launcher (Debian's openmpi-bin, installed by scripts/install-dependencies.sh).
let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/mpirun"

/// Runs `fovea ARGUMENTS` on `ranks` processes on this machine with one OpenMP thread each (mpirun on loopback,
/// oversubscribed: the machine may have fewer cores than ranks).
func runFoveaOnRanks(_ ranks: Int, _ arguments: [String], extra: [String] = []) throws -> CommandResult {
    var environment = ProcessInfo.processInfo.environment
    environment["FOVEA_DATA"] = nil
    // The test suite runs as root in CI; Open MPI refuses that unless both variables say it is meant.
    environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    environment["OMP_NUM_THREADS"] = "1"
    environment["OMP_WAIT_POLICY"] = "passive"
    return try runCommand(mpirun, ["--oversubscribe", "--bind-to", "none", "-x", "OMP_NUM_THREADS", "-x", "OMP_WAIT_POLICY"]
                          + extra + ["-np", "\(ranks)", foveaBinary] + arguments, environment: environment)
}

/// Runs `fovea ARGUMENTS` alone with `threads` OpenMP threads.
func runFoveaAlone(threads: Int, _ arguments: [String]) throws -> CommandResult {
    var environment = ProcessInfo.processInfo.environment
    environment["FOVEA_DATA"] = nil
    environment["OMP_NUM_THREADS"] = "\(threads)"
    environment["OMP_WAIT_POLICY"] = "passive"
    return try runCommand(foveaBinary, arguments, environment: environment)
}

/// ‖a − b‖ / ‖a‖ over all tensors of two weight files (and the largest such ratio of one tensor).
func weightDifference(_ a: String, _ b: String) throws -> (overall: Double, worstTensor: Double, worstName: String) {
    let first = try SafeTensors.read(path: a).entries, second = try SafeTensors.read(path: b).entries
    #expect(Set(first.keys) == Set(second.keys))
    var (difference, norm, worst, worstName) = (0.0, 0.0, 0.0, "")
    for (name, entry) in first {
        guard let other = second[name], other.values.count == entry.values.count else { return (.infinity, .infinity, name) }
        var d = 0.0, n = 0.0
        for (x, y) in zip(entry.values, other.values) { d += Double(x - y) * Double(x - y); n += Double(x) * Double(x) }
        difference += d
        norm += n
        if n > 0, (d / n).squareRoot() > worst { (worst, worstName) = ((d / n).squareRoot(), name) }
    }
    return ((difference / max(norm, 1e-300)).squareRoot(), worst, worstName)
}

func testAccuracy(_ directory: String) throws -> Double {
    let lines = try String(contentsOfFile: directory + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
    let last = try JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as! [String: Any]
    return last["test_accuracy"] as! Double
}

@Suite("Data-parallel training with mpirun", .serialized)
struct DistributedTrainingTests {
    let root = NSTemporaryDirectory() + "fovea-ddp-\(getpid())"

    init() throws { try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true) }

    @Test("An epoch's order is cut into the ranks' parts of every batch, as one process takes the batches")
    func rankOrder() throws {
        let trainer = try Trainer(options: TrainingOptions())
        let order = Array((0..<23).reversed())
        let (first, firstParts) = trainer.rankOrder(order, batchSize: 8, batches: 3, rank: 0, ranks: 2)
        let (second, _) = trainer.rankOrder(order, batchSize: 8, batches: 3, rank: 1, ranks: 2)
        // Batches of 8, 8 and 7: rank 0 takes 4, 4 and 4 of them, rank 1 the other 4, 4 and 3.
        #expect(first == [22, 21, 20, 19, 14, 13, 12, 11, 6, 5, 4, 3])
        #expect(second == [18, 17, 16, 15, 10, 9, 8, 7, 2, 1, 0])
        #expect(firstParts.map(\.count) == [4, 4, 4] && firstParts.map(\.total) == [8, 8, 7])
        // With --drop-last the last short batch is not part of the epoch.
        #expect(trainer.rankOrder(order, batchSize: 8, batches: 2, rank: 1, ranks: 2).0 == [18, 17, 16, 15, 10, 9, 8, 7])
        // Every sample once, whatever the ranks.
        for ranks in 1...5 {
            let all = (0..<ranks).flatMap { trainer.rankOrder(order, batchSize: 10, batches: 3, rank: $0, ranks: ranks).0 }
            #expect(all.sorted() == order.sorted())
        }
        #expect(evaluationShard(count: 10, rank: 2, size: 3) == 7..<10)
        #expect(evaluationShard(count: 1, rank: 1, size: 2).isEmpty)
    }

    @Test("LeNet-5, one epoch of real Fashion-MNIST: 2 ranks × batch 64 give the weights and accuracy of 1 process × batch 128")
    func leNetEquivalence() throws {
        let common = ["train", "--data-dir", fashionMNIST, "--epochs", "1", "--batch-size", "128", "--limit-train", "4096",
                      "--limit-test", "2000", "--quiet"]
        let alone = try runFoveaAlone(threads: 1, common + ["--output", root + "/lenet-1"])
        #expect(alone.status == 0, "\(alone.error)")
        let ranks = try runFoveaOnRanks(2, common + ["--output", root + "/lenet-2"])
        #expect(ranks.status == 0, "\(ranks.error)")
        let difference = try weightDifference(root + "/lenet-1/model.safetensors", root + "/lenet-2/model.safetensors")
        // Float summation order alone (a batch's gradient summed in two halves, then over the ranks): 1e-5 relative
        // per tensor after this 32-step epoch (measured 1.6e-6 on an AVX2 machine). SGD amplifies rounding differences
        // step by step (after 47 steps 8e-5, after a full epoch of 469 steps 17 %, just as one process's 1- and
        // 2-thread runs differ by 18 %), so on a machine whose kernels round otherwise the bound is also met by staying
        // within twice one process's own 1- against 2-thread difference.
        var bound = 1e-5
        if difference.worstTensor >= bound {
            let threads = try runFoveaAlone(threads: 2, common + ["--output", root + "/lenet-1-two-threads"])
            #expect(threads.status == 0, "\(threads.error)")
            bound = max(bound, min(2 * (try weightDifference(root + "/lenet-1/model.safetensors",
                                                             root + "/lenet-1-two-threads/model.safetensors").worstTensor), 1e-3))
        }
        #expect(difference.worstTensor < bound, "\(difference)")
        let (a, b) = (try testAccuracy(root + "/lenet-1"), try testAccuracy(root + "/lenet-2"))
        #expect(abs(a - b) <= 0.0005, "test accuracy \(a) alone, \(b) on 2 ranks")
        // Rank 0 alone wrote the run's files, the same set as one process.
        let files = { (directory: String) in Set(try FileManager.default.contentsOfDirectory(atPath: directory)) }
        #expect(try files(root + "/lenet-1") == files(root + "/lenet-2"))
    }

    @Test("ResNet-20, two steps: with --sync-batch-norm the 2-rank weights are one process's up to summation order")
    func resNetEquivalence() throws {
        let common = ["train", "--model", "resnet20", "--data-dir", fashionMNIST, "--epochs", "1", "--batch-size", "128",
                      "--limit-train", "256", "--limit-test", "200", "--quiet"]
        for (name, threads) in [("one-thread", 1), ("two-threads", 2)] {
            let result = try runFoveaAlone(threads: threads, common + ["--output", root + "/resnet-" + name])
            #expect(result.status == 0, "\(result.error)")
        }
        let synchronized = try runFoveaOnRanks(2, common + ["--sync-batch-norm", "--output", root + "/resnet-sync"])
        #expect(synchronized.status == 0, "\(synchronized.error)")
        let perRank = try runFoveaOnRanks(2, common + ["--output", root + "/resnet-per-rank"])
        #expect(perRank.status == 0, "\(perRank.error)")
        let reference = root + "/resnet-two-threads/model.safetensors"
        // One process is itself only reproducible up to summation order: its 1- and 2-thread runs differ by about
        // 8e-5 (batch norm's gradients of nearly cancelling sums amplify rounding). The synchronised 2-rank run must be
        // as close to it as that (measured 4e-5), and far closer than per-rank statistics (measured 3e-3).
        let floor = try weightDifference(root + "/resnet-one-thread/model.safetensors", reference).overall
        let sync = try weightDifference(root + "/resnet-sync/model.safetensors", reference).overall
        let local = try weightDifference(root + "/resnet-per-rank/model.safetensors", reference).overall
        #expect(sync <= max(2 * floor, 1e-5) && sync < 5e-4, "sync \(sync), one process 1 vs 2 threads \(floor)")
        #expect(local > 10 * sync, "per-rank statistics \(local) against synchronised \(sync)")
    }

    @Test("A rank killed mid-epoch stops the job with an error naming it; the checkpoint resumes, on 2 ranks or on 1")
    func killedRank() throws {
        let directory = root + "/killed", reference = root + "/uninterrupted"
        let common = ["train", "--data-dir", fashionMNIST, "--epochs", "2", "--batch-size", "128", "--limit-train", "4096",
                      "--limit-test", "1000", "--checkpoint-every", "8", "--quiet"]
        let started = Date()
        let killed = try runFoveaOnRanks(2, common + ["--output", directory, "--kill-after-step", "12", "--kill-rank", "1"])
        #expect(Date().timeIntervalSince(started) < 60)
        #expect(killed.status != 0)
        #expect(killed.error.contains("rank 1") && killed.error.contains("signal 9"), "\(killed.error)")
        // The checkpoint of step 8 is intact and resumes on 2 ranks to the uninterrupted run's weights, bit for bit.
        let resumed = try runFoveaOnRanks(2, ["train", "--resume", directory, "--quiet"])
        #expect(resumed.status == 0, "\(resumed.error)")
        let whole = try runFoveaOnRanks(2, common + ["--output", reference])
        #expect(whole.status == 0, "\(whole.error)")
        let model = { (directory: String) in try Data(contentsOf: URL(fileURLWithPath: directory + "/model.safetensors")) }
        #expect(try model(directory) == model(reference))
        // The same checkpoint resumes in one process too (another number of ranks): the same run up to summation order.
        let again = root + "/killed-again"
        let second = try runFoveaOnRanks(2, common + ["--output", again, "--kill-after-step", "12", "--kill-rank", "0"])
        #expect(second.status != 0 && second.error.contains("rank 0"), "\(second.error)")
        let alone = try runFoveaAlone(threads: 2, ["train", "--resume", again, "--quiet"])
        #expect(alone.status == 0, "\(alone.error)")
        #expect(try weightDifference(reference + "/model.safetensors", again + "/model.safetensors").worstTensor < 1e-4)
    }

    @Test("Ranks given different options are refused at start, naming what differs")
    func mismatch() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        environment["OMP_NUM_THREADS"] = "1"
        let common = ["train", "--data-dir", fashionMNIST, "--epochs", "1", "--limit-train", "512", "--limit-test", "100", "--quiet"]
        let result = try runCommand(mpirun, ["--oversubscribe", "-np", "1", foveaBinary] + common + ["--lr", "0.05", ":",
                                             "-np", "1", foveaBinary] + common + ["--lr", "0.1"], environment: environment)
        #expect(result.status == 64, "\(result.status) \(result.error)")
        #expect(result.error.contains("the ranks do not run the same job: options of rank 1 differ from rank 0's"), "\(result.error)")
        // A batch that does not split evenly is refused too.
        let odd = try runFoveaOnRanks(2, common + ["--batch-size", "63"])
        #expect(odd.status == 64 && odd.error.contains("not divisible by the 2 ranks"), "\(odd.error)")
    }

    @Test("Two ranks in two network namespaces joined by a veth pair (TCP) train to the loopback run's weights",
          .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip"), "needs root and ip netns"))
    func acrossNamespaces() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["FOVEA"] = foveaBinary
        let script = repositoryScript("mpi-netns.sh")
        let result = try runCommand("/bin/bash", [script, root + "/netns"], environment: environment)
        #expect(result.status == 0, "\(result.output)\n\(result.error)")
        #expect(result.output.contains("bit for bit"), "\(result.output)")
    }
}
