import Foundation
import FoveaData
import FoveaModels
import FoveaNN
import FoveaOptim
import FoveaTensor

/// One epoch's figures, as written to `metrics.jsonl`.
public struct EpochMetrics: Codable, Equatable, Sendable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var testLoss: Double
    public var testAccuracy: Double
    public var learningRate: Double
    /// Wall time of the training part of the epoch.
    public var seconds: Double
    /// Training images per second.
    public var imagesPerSecond: Double
    /// Test figures of the moving average of the weights, when one is kept.
    public var emaTestLoss: Double?
    public var emaTestAccuracy: Double?

    enum CodingKeys: String, CodingKey {
        case epoch, seconds
        case trainLoss = "train_loss", trainAccuracy = "train_accuracy", testLoss = "test_loss"
        case testAccuracy = "test_accuracy", learningRate = "lr", imagesPerSecond = "images_per_second"
        case emaTestLoss = "ema_test_loss", emaTestAccuracy = "ema_test_accuracy"
    }
}

/// What a finished run returns.
public struct TrainingResult {
    public var model: Layer
    public var history: [EpochMetrics]
    public var report: ClassificationReport
    /// Files written (empty without an output directory).
    public var files: [String]
}

/// A labelled image set with its normalisation and training-time augmentations, ready to be cut into batches.
public struct ImageClassificationSet {
    /// The images and labels.
    public let images: any LabeledImages
    /// Name and class names of the dataset.
    public let info: DatasetInfo
    /// Per-channel normalisation of pixels scaled to [0, 1]: (p/255 − mean) / std.
    public let mean: [Float]
    public let std: [Float]
    /// Applied in order to every sample of a training batch (never in evaluation).
    public var augmentations: [Augmentation] = []
    /// Seeds each sample's augmentation generator together with (epoch, index).
    public var seed: UInt64 = 0

    /// Wraps images with per-channel normalisation.
    public init(images: any LabeledImages, info: DatasetInfo, mean: [Float], std: [Float]) {
        (self.images, self.info, self.mean, self.std) = (images, info, mean, std)
    }

    /// Wraps a grey dataset with one mean and standard deviation.
    public init(dataset: IDXDataset, info: DatasetInfo, mean: Float, std: Float) {
        self.init(images: dataset, info: info, mean: [mean], std: [std])
    }

    /// Number of samples.
    public var count: Int { images.count }
    /// Sample shape (C, H, W).
    public var sampleShape: [Int] { [images.channels, images.height, images.width] }

    /// The batch of samples at `indices` as an (N, C, H, W) tensor and labels. With `epoch`, the augmentations
    /// run, each sample drawing from `SeededGenerator(seed: seed, stream: epoch, index)`.
    public func batch(_ indices: ArraySlice<Int>, epoch: Int? = nil) -> (Tensor, [Int32]) {
        let (channels, plane) = (images.channels, images.height * images.width)
        let size = images.sampleSize
        let tensor = Tensor.zeros([indices.count] + sampleShape)
        let output = tensor.storage.pointer
        var labels = [Int32](repeating: 0, count: indices.count)
        let tables = (0..<channels).map { c in (0..<256).map { (Float($0) / 255 - mean[min(c, mean.count - 1)]) / std[min(c, std.count - 1)] } }
        images.pixels.withUnsafeBufferPointer { pixels in
            for (slot, index) in indices.enumerated() {
                labels[slot] = images.labels[index]
                var sample = Array(pixels[(index * size)..<((index + 1) * size)])
                if let epoch, !augmentations.isEmpty {
                    var generator = SeededGenerator(seed: seed, stream: UInt64(epoch), UInt64(index))
                    for augmentation in augmentations {
                        augmentation.apply(&sample, channels: channels, height: images.height, width: images.width,
                                           generator: &generator)
                    }
                }
                for c in 0..<channels {
                    let table = tables[c]
                    for i in 0..<plane { output[slot * size + c * plane + i] = table[Int(sample[c * plane + i])] }
                }
            }
        }
        return (tensor, labels)
    }
}

/// Reads one split of a known dataset from `directory` with the reader its format needs.
public func loadImages(_ info: DatasetInfo, directory: String, split: IDXDataset.Split, limit: Int? = nil) throws -> any LabeledImages {
    switch info.name {
    case "cifar10": return try CIFARDataset(directory: directory, variant: .cifar10, split: split, limit: limit)
    case "cifar100": return try CIFARDataset(directory: directory, variant: .cifar100(fine: true), split: split, limit: limit)
    default: return try IDXDataset(directory: directory, split: split, classCount: info.classCount, limit: limit)
    }
}

/// Trains a model from `TrainingOptions`: the loop of `trainStep`, per-epoch evaluation, metrics and files.
public final class Trainer {
    public let options: TrainingOptions
    /// Receives progress; defaults to a terminal-aware printer.
    public var progress: ProgressReporter

    /// Creates a trainer; throws `TrainingError.invalidOption` for options out of range.
    public init(options: TrainingOptions, progress: ProgressReporter = ProgressReporter()) throws {
        if let problem = options.problem() { throw TrainingError.invalidOption(problem) }
        self.options = options
        self.progress = progress
    }

    /// Loads the training and test splits and their normalisation (per-channel mean/std of the full training split).
    public func loadData() throws -> (train: ImageClassificationSet, test: ImageClassificationSet) {
        var info = try DatasetInfo.named(options.dataset)
        let directory = info.resolveDirectory(dataDirectory: options.dataDirectory)
        func load(_ split: IDXDataset.Split, _ limit: Int?) throws -> any LabeledImages {
            try loadImages(info, directory: directory, split: split, limit: limit)
        }
        let train = try load(.train, options.limitTrain)
        let test = try load(.test, options.limitTest)
        if let names = (train as? CIFARDataset)?.classNames { info = info.renamingClasses(names) }
        // Statistics of the full training split, so --limit-train does not change the preprocessing.
        let statistics = try (options.limitTrain == nil ? train : load(.train, nil)).channelStatistics()
        let mean = statistics.mean.map(Float.init), std = statistics.std.map { Float(max($0, 1e-6)) }
        var trainSet = ImageClassificationSet(images: train, info: info, mean: mean, std: std)
        trainSet.augmentations = options.augmentations
        trainSet.seed = options.seed
        return (trainSet, ImageClassificationSet(images: test, info: info, mean: mean, std: std))
    }

    /// For tests of crash recovery: the process sends itself SIGKILL right after this optimizer step.
    public var killAfterStep: Int?

    /// Checkpoint written every `checkpointEvery` steps and at every epoch end (in the output directory).
    public static let lastCheckpointName = "checkpoint-last.safetensors"
    /// Checkpoint of the epoch with the best test accuracy.
    public static let bestCheckpointName = "checkpoint-best.safetensors"

    /// Runs the whole job: data, model, epochs, evaluation, files. With `resume`, continues from the output
    /// directory's last checkpoint so that the result is bit-identical to an uninterrupted run.
    public func fit(resume: Bool = false) throws -> TrainingResult {
        let (train, test) = try loadData()
        Initialization.seed(options.seed)
        let model = try ModelZoo.make(options.model, classCount: train.info.classCount, inputChannels: train.sampleShape[0])
        let optimizer = try options.makeOptimizer(model.parameters())
        let average = try options.emaDecay.map { try WeightAverage(model: model, decay: $0) }
        let output = try options.outputDirectory.map { try OutputDirectory(path: $0) }
        let tensorboard = try options.tensorboardDirectory.map { try TensorBoardWriter(directory: $0) }
        var state = TrainingProgress()
        if resume {
            guard let output else { throw TrainingError.invalidOption("--resume needs the run's directory") }
            state = try Checkpoint.restore(from: output.file(Self.lastCheckpointName), model: model, optimizer: optimizer,
                                           average: average)
            // Lines of an epoch that finished after the checkpoint are written again when it finishes again.
            try output.rewriteMetrics(state.history)
        } else {
            try output?.startMetrics()
        }
        func saveCheckpoint(_ name: String) throws {
            guard let output else { return }
            try Checkpoint.save(to: output.file(name), model: model, optimizer: optimizer, average: average, options: options,
                                progress: state)
        }

        let batchesPerEpoch = (train.count + options.batchSize - 1) / options.batchSize
        let updatesPerEpoch = (batchesPerEpoch + options.accumulationSteps - 1) / options.accumulationSteps
        let schedule = options.learningRateSchedule(stepsPerEpoch: updatesPerEpoch)
        var lastReport: ClassificationReport?
        var lastMistakes: [Mistake] = []
        while state.epoch <= options.epochs && !state.stoppedEarly {
            let epoch = state.epoch
            model.train()
            let order = train.images.batchOrder(epoch: epoch, seed: options.seed, shuffle: true)
            let start = Date()
            var learningRate = optimizer.learningRate
            let batchStarts = Array(stride(from: 0, to: order.count, by: options.batchSize))
            while state.batch < batchStarts.count {
                let batchStart = batchStarts[state.batch]
                let indices = order[batchStart..<min(batchStart + options.batchSize, order.count)]
                let (images, labels) = train.batch(indices, epoch: epoch)
                let update = (epoch - 1) * updatesPerEpoch + state.batch / options.accumulationSteps
                let scheduleStep = options.scheduleUnit == "epoch" ? epoch - 1 : update
                learningRate = schedule.learningRate(base: options.learningRate, step: scheduleStep)
                optimizer.learningRate = learningRate
                // The last group of an epoch may be shorter than --accumulate.
                let group = state.batch / options.accumulationSteps * options.accumulationSteps
                let groupSize = min(options.accumulationSteps, batchStarts.count - group)
                let (loss, hits) = try trainStep(model: model, optimizer: optimizer, images: images, labels: labels,
                                                 labelSmoothing: options.labelSmoothing,
                                                 clipGradientNorm: options.clipGradientNorm,
                                                 accumulation: (state.batch - group, groupSize), step: state.step, epoch: epoch)
                try average?.update(from: model)
                state.lossSum += Double(loss) * Double(indices.count)
                state.correct += hits
                state.step += 1
                state.batch += 1
                let done = batchStart + indices.count
                progress.step(epoch: epoch, of: options.epochs, done: done, total: order.count,
                              loss: state.lossSum / Double(done), accuracy: Double(state.correct) / Double(done), started: start)
                // Only between accumulation groups: partial gradient sums are not part of a checkpoint.
                if let every = options.checkpointEvery, state.step % every == 0, state.batch < batchStarts.count,
                   state.batch % options.accumulationSteps == 0 {
                    try saveCheckpoint(Self.lastCheckpointName)
                }
                if let killAfterStep, state.step == killAfterStep { kill(getpid(), SIGKILL) }
            }
            let seconds = Date().timeIntervalSince(start)
            let collector = MistakeCollector(limit: 24)
            let report = try evaluate(model: model, on: test, batchSize: options.evaluationBatchSize, split: "test",
                                      mistakes: collector)
            lastReport = report
            lastMistakes = collector.mistakes
            let averagedReport = try average?.withAveragedWeights(in: model) {
                try evaluate(model: model, on: test, batchSize: options.evaluationBatchSize, split: "test")
            }
            let metrics = EpochMetrics(epoch: epoch, trainLoss: state.lossSum / Double(order.count),
                                       trainAccuracy: Double(state.correct) / Double(order.count),
                                       testLoss: report.loss ?? .nan, testAccuracy: report.accuracy,
                                       learningRate: Double(learningRate), seconds: seconds,
                                       imagesPerSecond: Double(order.count) / seconds,
                                       emaTestLoss: averagedReport?.loss, emaTestAccuracy: averagedReport?.accuracy)
            state.history.append(metrics)
            state.epoch += 1
            state.batch = 0
            state.lossSum = 0
            state.correct = 0
            let maximize = options.monitor == "test_accuracy"
            let monitored = maximize ? report.accuracy : (report.loss ?? .infinity)
            let improved = state.bestMetric.map { maximize ? monitored > $0 : monitored < $0 } ?? true
            if improved { (state.bestMetric, state.bestEpoch) = (monitored, epoch) }
            if let patience = options.earlyStoppingPatience, let best = state.bestEpoch, epoch - best >= patience,
               epoch < options.epochs {
                state.stoppedEarly = true
            }
            try output?.appendMetrics(metrics)
            try output?.writeMetricsCSV(state.history)
            var scalars: [(tag: String, value: Double)] = [
                ("loss/train", metrics.trainLoss), ("loss/test", metrics.testLoss), ("accuracy/train", metrics.trainAccuracy),
                ("accuracy/test", metrics.testAccuracy), ("learning_rate", metrics.learningRate),
            ]
            if let ema = metrics.emaTestAccuracy { scalars.append(("accuracy/test_ema", ema)) }
            try tensorboard?.add(scalars: scalars, step: epoch)
            try saveCheckpoint(Self.lastCheckpointName)
            if improved { try saveCheckpoint(Self.bestCheckpointName) }
            progress.epochFinished(metrics, of: options.epochs)
            if state.stoppedEarly { progress.note("early stopping: \(options.monitor) has not improved since epoch \(state.bestEpoch ?? 0)") }
        }
        let report = try lastReport ?? evaluate(model: model, on: test, batchSize: options.evaluationBatchSize, split: "test")
        var files: [String] = []
        if let output {
            files.append(output.file("metrics.jsonl"))
            files.append(output.file("metrics.csv"))
            files.append(try output.writeReport(report))
            let sampleSize = test.images.sampleSize
            let html = HTMLReport(title: "\(options.model) on \(options.dataset)", history: state.history, report: report,
                                  mistakes: lastMistakes.map { mistake in
                                      (mistake, Array(test.images.pixels[(mistake.index * sampleSize)..<((mistake.index + 1) * sampleSize)]),
                                       test.sampleShape)
                                  })
            try writeAtomically(Data(html.render().utf8), to: output.file("report.html"))
            files.append(output.file("report.html"))
            let sidecar = ModelSidecar(architecture: options.model, classes: train.info.classNames,
                                       inputShape: train.sampleShape, dataset: train.info.name,
                                       mean: train.mean, std: train.std, options: options,
                                       testAccuracy: report.accuracy)
            files.append(contentsOf: try ModelFile.save(model, sidecar: sidecar, to: output.file("model.safetensors")))
            if let average {
                var averagedSidecar = sidecar
                averagedSidecar.testAccuracy = state.history.last?.emaTestAccuracy
                try average.withAveragedWeights(in: model) {
                    files.append(contentsOf: try ModelFile.save(model, sidecar: averagedSidecar, to: output.file("model-ema.safetensors")))
                }
            }
            files.append(output.file(Self.lastCheckpointName))
            files.append(output.file(Self.bestCheckpointName))
        }
        return TrainingResult(model: model, history: state.history, report: report, files: files)
    }
}

/// One optimisation step: forward, loss, backward, update. Returns the batch loss and the number of correct predictions.
/// Throws `TrainingError.nonFiniteLoss` before touching the weights if the loss is NaN or infinite.
///
/// With gradient accumulation (`accumulation.count > 1`), gradients of `count` consecutive batches are summed
/// (each loss scaled by 1/count) and the optimizer steps after the batch with `index == count − 1`.
/// A non-finite gradient stops with `TrainingError.nonFiniteGradient` naming the parameter, before any update.
public func trainStep(model: Layer, optimizer: Optimizer, images: Tensor, labels: [Int32], labelSmoothing: Float = 0,
                      clipGradientNorm maximumNorm: Float? = nil, accumulation: (index: Int, count: Int) = (0, 1),
                      step: Int, epoch: Int) throws -> (loss: Float, correct: Int) {
    let logits = try model(images)
    var loss = try crossEntropy(logits: logits, labels: labels, labelSmoothing: labelSmoothing)
    if let auxiliary = model as? any AuxiliaryClassifierModel {
        for head in auxiliary.auxiliaryLogits {
            let headLoss = try crossEntropy(logits: head, labels: labels, labelSmoothing: labelSmoothing)
            loss = try loss + headLoss.scaled(by: auxiliary.auxiliaryLossWeight)
        }
    }
    let value = loss.scalarValue
    guard value.isFinite else { throw TrainingError.nonFiniteLoss(step: step, epoch: epoch, value: value) }
    if accumulation.index == 0 { optimizer.zeroGrad() }
    try loss.backward(seed: Tensor(scalar: 1 / Float(max(accumulation.count, 1))))
    if accumulation.index == accumulation.count - 1 {
        if let name = firstNonFiniteGradient(model: model, optimizer: optimizer) {
            throw TrainingError.nonFiniteGradient(step: step, epoch: epoch, parameter: name)
        }
        if let maximumNorm { try clipGradientNorm(optimizer.parameters, maximumNorm: maximumNorm) }
        try optimizer.step()
    }
    let correct = try countCorrect(logits: logits, labels: labels)
    return (value, correct)
}

/// The state-dict name of the first parameter (in network order) whose gradient holds NaN or infinity.
func firstNonFiniteGradient(model: Layer, optimizer: Optimizer) -> String? {
    guard optimizer.parameters.contains(where: { $0.grad.map { !$0.isFinite } ?? false }) else { return nil }
    return model.namedParameters().first { $0.1.grad.map { !$0.isFinite } ?? false }?.0 ?? "a parameter"
}

/// Number of rows of `logits` whose arg-max equals the label.
func countCorrect(logits: Tensor, labels: [Int32]) throws -> Int {
    let classes = logits.shape[1]
    return try logits.withPlainElements { values in
        var correct = 0
        for (row, label) in labels.enumerated() {
            var best = 0
            for j in 1..<classes where values[row * classes + j] > values[row * classes + best] { best = j }
            if best == Int(label) { correct += 1 }
        }
        return correct
    }
}
