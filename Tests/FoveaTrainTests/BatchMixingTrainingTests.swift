import Foundation
import FoveaData
import FoveaModels
import FoveaNN
import FoveaOptim
import FoveaTensor
@testable import FoveaTrain
import Testing

@Suite("MixUp and CutMix in training", .serialized)
struct BatchMixingTrainingTests {
    func batch(_ count: Int, seed: UInt64) throws -> (Tensor, [Int32]) {
        var generator = SeededGenerator(seed: seed)
        let images = try Tensor(shape: [count, 1, 28, 28], values: (0..<(count * 784)).map { _ in Float(generator.nextNormal()) })
        return (images, (0..<count).map { Int32(($0 * 3) % 10) })
    }

    /// Weights of a LeNet-5 after one SGD step on `images` with `labels` or soft `targets`.
    func weightsAfterOneStep(images: Tensor, labels: [Int32], targets: Tensor?, smoothing: Float) throws -> [[Float]] {
        Initialization.seed(5)
        let model = try LeNet5()
        let optimizer = try SGD(parameters: model.parameters(), learningRate: 0.1, momentum: 0.9)
        _ = try trainStep(model: model, optimizer: optimizer, images: images, labels: labels, targets: targets,
                          labelSmoothing: smoothing, step: 0, epoch: 1)
        return try model.parameters().map { try $0.value.toArray() }
    }

    @Test("one-hot targets train exactly like integer labels; mixed targets train differently", arguments: [Float(0), 0.1])
    func trainStepWithTargets(smoothing: Float) throws {
        let (images, labels) = try batch(8, seed: 70)
        let oneHot = try BatchMixing.mixedTargets(labels: labels, ownWeight: 1, classCount: 10, labelSmoothing: Double(smoothing))
        let viaLabels = try weightsAfterOneStep(images: images, labels: labels, targets: nil, smoothing: smoothing)
        // The step's own smoothing must not be applied a second time to targets that already carry it.
        let viaTargets = try weightsAfterOneStep(images: images, labels: labels, targets: oneHot, smoothing: smoothing)
        let difference = zip(viaLabels, viaTargets).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
        #expect(difference < 1e-6, "one-hot targets moved the weights \(difference) away from integer labels")
        let mixed = try BatchMixing.mixedTargets(labels: labels, ownWeight: 0.6, classCount: 10, labelSmoothing: Double(smoothing))
        let viaMixed = try weightsAfterOneStep(images: images, labels: labels, targets: mixed, smoothing: smoothing)
        let mixedDifference = zip(viaLabels, viaMixed).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
        #expect(mixedDifference > 1e-4, "mixed targets left the step unchanged")
    }

    @Test("a hit with mixed targets is a prediction equal to the target's arg-max, the first on ties")
    func accuracyAgainstSoftTargets() throws {
        let targets = try Tensor(shape: [4, 3], values: [0.3, 0.7, 0, 0.5, 0, 0.5, 0.1, 0.1, 0.8, 0.4, 0.35, 0.25])
        #expect(try dominantClasses(targets) == [1, 0, 2, 0])
        let logits = try Tensor(shape: [4, 3], values: [0, 5, 1, 0, 0, 9, 0, 0, 2, 3, 0, 0])
        // Predictions 1, 2, 2, 0 against dominant classes 1, 0, 2, 0.
        #expect(try countCorrect(logits: logits, labels: dominantClasses(targets)) == 3)
    }

    @Test("a batch's mix is drawn from (seed, epoch, batch) and applied; unmixed batches keep integer labels")
    func batchMixingInTheLoop() throws {
        let (images, labels) = try batch(6, seed: 71)
        var options = TrainingOptions()
        #expect(try options.batchMixing() == nil)
        let (same, none) = try mixedBatch(images: images, labels: labels, mixing: nil, classCount: 10, labelSmoothing: 0,
                                          seed: 1, epoch: 1, batch: 0)
        #expect(none == nil && same.storage === images.storage)

        options.mixUpAlpha = 0.4
        options.cutMixAlpha = 1
        let mixing = try #require(try options.batchMixing())
        var mixes: [BatchMix] = []
        for number in 0..<6 {
            let (inputs, targets) = try mixedBatch(images: images, labels: labels, mixing: mixing, classCount: 10,
                                                   labelSmoothing: 0.1, seed: 9, epoch: 2, batch: number)
            var generator = BatchMixing.generator(seed: 9, epoch: 2, batch: number)
            let mix = mixing.draw(height: 28, width: 28, using: &generator)
            mixes.append(mix)
            let expected = try BatchMixing.apply(mix, images: images, labels: labels, classCount: 10, labelSmoothing: 0.1)
            #expect(try inputs.toArray() == expected.images.toArray())
            #expect(try targets?.toArray() == expected.targets.toArray())
        }
        #expect(Set(mixes.map { if case .cutMix = $0 { "cutmix" } else { "mixup" } }).count == 2, "\(mixes)")

        options.mixProbability = 0
        #expect(try options.batchMixing() == nil)
    }

    @Test("options: validated, saved in checkpoints, and read from files that predate them")
    func options() throws {
        var options = TrainingOptions()
        #expect(options.problem() == nil)
        for (path, value, flag) in [(\TrainingOptions.mixUpAlpha, -0.1, "--mixup"), (\.cutMixAlpha, .infinity, "--cutmix"),
                                    (\.mixProbability, 1.5, "--mix-probability"),
                                    (\.mixSwitchProbability, .nan, "--mix-switch-probability")] {
            var bad = options
            bad[keyPath: path] = value
            #expect(bad.problem()?.hasPrefix(flag) == true, "\(flag) \(value): \(bad.problem() ?? "accepted")")
        }
        options.mixUpAlpha = 0.2
        options.cutMixAlpha = 1
        options.mixProbability = 0.7
        options.mixSwitchProbability = 0.25
        let data = try JSONEncoder().encode(options)
        #expect(try JSONDecoder().decode(TrainingOptions.self, from: data) == options)
        var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["mixup"] as? Double == 0.2 && object["mix_switch_prob"] as? Double == 0.25)
        for key in ["mixup", "cutmix", "mix_prob", "mix_switch_prob"] { object[key] = nil }
        let older = try JSONDecoder().decode(TrainingOptions.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(older.mixUpAlpha == 0 && older.cutMixAlpha == 0 && older.mixProbability == 1 && older.mixSwitchProbability == 0.5)
    }

    @Test("a mixed run is reproducible and differs from an unmixed one")
    func mixedRun() throws {
        let data = try temporaryDirectory("mix-data")
        try writeSyntheticMNIST(to: data, trainCount: 160, testCount: 40)
        var options = TrainingOptions()
        options.dataset = "mnist"
        options.dataDirectory = data
        options.epochs = 1
        options.batchSize = 32
        let plain = try Trainer(options: options, progress: ProgressReporter(quiet: true)).fit()
        options.mixUpAlpha = 0.4
        options.cutMixAlpha = 1
        let mixed = try Trainer(options: options, progress: ProgressReporter(quiet: true)).fit()
        let again = try Trainer(options: options, progress: ProgressReporter(quiet: true)).fit()
        #expect(mixed.history[0].trainLoss == again.history[0].trainLoss)
        #expect(mixed.history[0].testLoss == again.history[0].testLoss)
        #expect(mixed.history[0].trainLoss != plain.history[0].trainLoss)
    }

    @Test("a mixed run killed with SIGKILL mid-epoch and resumed ends bit-identical to an uninterrupted run")
    func exactResumeWithMixing() throws {
        let data = try temporaryDirectory("mix-resume-data")
        try writeSyntheticMNIST(to: data, trainCount: 400, testCount: 60)
        let common = ["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "2", "--batch-size", "32",
                      "--checkpoint-every", "5", "--mixup", "0.4", "--cutmix", "1", "--mix-probability", "0.8",
                      "--label-smoothing", "0.1", "--quiet"]
        let straight = try temporaryDirectory("mix-resume-a"), interrupted = try temporaryDirectory("mix-resume-b")
        #expect(try runFovea(common + ["--output", straight]).status == 0)
        // 13 steps per epoch: step 17 is in the middle of epoch 2, two steps past the checkpoint at step 15.
        let killed = try runFovea(common + ["--output", interrupted, "--kill-after-step", "17"])
        #expect(killed.status == 9 || killed.status == 137, "expected SIGKILL, got \(killed.status)")
        let (saved, _) = try Checkpoint.readMetadata(interrupted + "/" + Trainer.lastCheckpointName)
        #expect(saved.mixUpAlpha == 0.4 && saved.cutMixAlpha == 1 && saved.mixProbability == 0.8)
        let resumed = try runFovea(["train", "--resume", interrupted, "--quiet"])
        #expect(resumed.status == 0, "\(resumed.error)")
        let a = try Data(contentsOf: URL(fileURLWithPath: straight + "/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: interrupted + "/model.safetensors"))
        #expect(a == b, "resumed weights differ from the uninterrupted run")
    }

    @Test("bad mixing flags are usage errors")
    func usage() throws {
        #expect(try runFovea(["train", "--mixup=-1"]).status == 64)
        #expect(try runFovea(["train", "--cutmix", "1", "--mix-probability", "2"]).status == 64)
        #expect(try runFovea(["train", "--mixup", "0.2", "--mix-switch-probability=-0.5"]).status == 64)
    }
}
