import Foundation
import FoveaData
import FoveaDistributed
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
    /// With --skip-bad-files: samples of this epoch's training and test passes that could not be loaded and were left
    /// out, and the first few of their files (nil when none was).
    public var skippedSamples: Int?
    public var skippedFiles: [String]?

    enum CodingKeys: String, CodingKey {
        case epoch, seconds
        case trainLoss = "train_loss", trainAccuracy = "train_accuracy", testLoss = "test_loss"
        case testAccuracy = "test_accuracy", learningRate = "lr", imagesPerSecond = "images_per_second"
        case emaTestLoss = "ema_test_loss", emaTestAccuracy = "ema_test_accuracy"
        case skippedSamples = "skipped_samples", skippedFiles = "skipped_files"
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

/// A labelled image set with its normalisation and training-time augmentations, ready to be cut into batches:
/// in-memory byte images (MNIST family, CIFAR) or an image folder decoded on demand.
public struct ImageClassificationSet: Sendable {
    /// Where the samples come from.
    public enum Source: Sendable {
        case memory(any LabeledImages)
        /// Image files with the transforms that bring each to `shape` (C, H, W).
        case folder(ImageFolder, transforms: [ImageTransform], shape: [Int])
    }

    public private(set) var source: Source
    /// Name and class names of the dataset.
    public let info: DatasetInfo
    /// Per-channel normalisation of pixels scaled to [0, 1]: (p/255 − mean) / std.
    public let mean: [Float]
    public let std: [Float]
    /// Transforms applied to in-memory training samples (never in evaluation); random erasing acts last, on the
    /// normalised sample.
    public var augmentations: [ImageTransform] = []
    /// Seeds each sample's augmentation generator together with (epoch, index).
    public var seed: UInt64 = 0
    /// Image folders: the largest width × height accepted from an image header (larger files are bad samples).
    public var pixelLimit = ImageDecoder.defaultPixelLimit

    /// Wraps in-memory images with per-channel normalisation.
    public init(images: any LabeledImages, info: DatasetInfo, mean: [Float], std: [Float]) {
        (self.source, self.info, self.mean, self.std) = (.memory(images), info, mean, std)
        normalisationTables = Self.tables(channels: images.channels, mean: mean, std: std)
    }

    /// Wraps a grey dataset with one mean and standard deviation.
    public init(dataset: IDXDataset, info: DatasetInfo, mean: Float, std: Float) {
        self.init(images: dataset, info: info, mean: [mean], std: [std])
    }

    /// Wraps an image folder whose images `transforms` bring to `shape`.
    public init(folder: ImageFolder, transforms: [ImageTransform], shape: [Int], info: DatasetInfo, mean: [Float], std: [Float]) {
        (self.source, self.info, self.mean, self.std) = (.folder(folder, transforms: transforms, shape: shape), info, mean, std)
        normalisationTables = Self.tables(channels: shape[0], mean: mean, std: std)
    }

    /// Number of samples.
    public var count: Int {
        switch source {
        case let .memory(images): return images.count
        case let .folder(folder, _, _): return folder.count
        }
    }

    /// The evaluation preprocessing of image folders: shorter side to size·256/224, centre crop.
    public static func evaluationTransforms(size: Int) -> [ImageTransform] {
        [.resizeShorterSide(size: size * 256 / 224), .centerCrop(size: size)]
    }

    /// The same set restricted to its first `count` samples.
    public func prefix(_ count: Int) -> ImageClassificationSet {
        var copy = self
        switch source {
        case .memory: return self
        case let .folder(folder, transforms, shape):
            copy.source = .folder(folder.prefix(count), transforms: transforms, shape: shape)
        }
        return copy
    }

    /// True for image folders (decoded from disk).
    public var isFolder: Bool { if case .folder = source { return true } else { return false } }

    /// Sample shape (C, H, W).
    public var sampleShape: [Int] {
        switch source {
        case let .memory(images): return [images.channels, images.height, images.width]
        case let .folder(_, _, shape): return shape
        }
    }

    /// The order of `epoch`: a Fisher–Yates shuffle from (seed, epoch), or identity.
    public func order(epoch: Int, seed: UInt64, shuffle: Bool) -> [Int] {
        epochOrder(count: count, epoch: epoch, seed: seed, shuffle: shuffle)
    }

    /// The bytes (C×H×W) and label of sample `index`; with `epoch`, after its random augmentation.
    public func sampleBytes(_ index: Int, epoch: Int?) throws -> (DecodedImage, Int32) {
        var generator = SeededGenerator(seed: seed, stream: UInt64(epoch ?? 0), UInt64(index))
        switch source {
        case let .memory(images):
            let size = images.sampleSize
            var image = DecodedImage(channels: images.channels, height: images.height, width: images.width,
                                     pixels: Array(images.pixels[(index * size)..<((index + 1) * size)]))
            if epoch != nil {
                for transform in augmentations { image = transform.apply(image, generator: &generator) }
                if image.channels != images.channels {
                    throw TransformError.channelCountChanged(transforms: augmentations.map(\.description).joined(separator: ", "),
                                                             expected: images.channels, found: image.channels)
                }
                if image.height != images.height || image.width != images.width {
                    image = Resize.bilinear(image, height: images.height, width: images.width)
                }
            }
            return (image, images.labels[index])
        case let .folder(folder, transforms, shape):
            let (path, label) = folder.samples[index]
            var image: DecodedImage
            do { image = try ImageDecoder.decode(path: path, channels: shape[0], pixelLimit: pixelLimit) } catch {
                throw DatasetError.badSample(index: index, path: path, reason: "\(error)")
            }
            for transform in transforms where epoch != nil || !transform.isRandom { image = transform.apply(image, generator: &generator) }
            if image.channels != shape[0] {
                throw TransformError.channelCountChanged(transforms: transforms.map(\.description).joined(separator: ", "),
                                                         expected: shape[0], found: image.channels)
            }
            if image.height != shape[1] || image.width != shape[2] { image = Resize.bilinear(image, height: shape[1], width: shape[2]) }
            return (image, label)
        }
    }

    /// Writes sample `index` normalised as C×H×W floats to `destination` and returns its label.
    /// In-memory samples without augmentation are read straight from the byte buffer.
    public func sample(_ index: Int, epoch: Int?, into destination: UnsafeMutablePointer<Float>) throws -> Int32 {
        if case let .memory(images) = source, epoch == nil || augmentations.isEmpty {
            let size = images.sampleSize, plane = images.height * images.width
            images.pixels.withUnsafeBufferPointer { pixels in
                let base = pixels.baseAddress! + index * size
                for c in 0..<images.channels {
                    let table = normalisationTables[c]
                    for i in 0..<plane { destination[c * plane + i] = table[Int(base[c * plane + i])] }
                }
            }
            return images.labels[index]
        }
        // Image folders: decode, crop, resize, flip and normalise in one fused pass, the same values as below.
        if case let .folder(folder, transforms, shape) = source,
           let pipeline = ImagePipeline(transforms: transforms, shape: shape, mean: mean, std: std, pixelLimit: pixelLimit) {
            let (path, label) = folder.samples[index]
            var generator = SeededGenerator(seed: seed, stream: UInt64(epoch ?? 0), UInt64(index))
            let loaded: Bool
            do { loaded = try pipeline.load(path: path, augment: epoch != nil, generator: &generator, into: destination) } catch {
                throw DatasetError.badSample(index: index, path: path, reason: "\(error)")
            }
            if loaded {
                if let epoch { erase(destination, channels: shape[0], height: shape[1], width: shape[2], index: index, epoch: epoch) }
                return label
            }
        }
        let (image, label) = try sampleBytes(index, epoch: epoch)
        let plane = image.height * image.width
        for c in 0..<image.channels {
            let table = normalisationTables[c]
            for i in 0..<plane { destination[c * plane + i] = table[Int(image.pixels[c * plane + i])] }
        }
        if let epoch { erase(destination, channels: image.channels, height: image.height, width: image.width, index: index, epoch: epoch) }
        return label
    }

    /// Random erasing of the normalised training sample, where torchvision applies it: its zero is the mean colour.
    /// Its generator is a stream of its own, so erasing does not shift the draws of the byte transforms.
    func erase(_ destination: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int, index: Int, epoch: Int) {
        let transforms: [ImageTransform]
        switch source {
        case .memory: transforms = augmentations
        case let .folder(_, folderTransforms, _): transforms = folderTransforms
        }
        var generator = SeededGenerator(seed: seed, stream: UInt64(epoch), UInt64(index), 0xE7A5E)
        for case let .randomErasing(probability, scale, ratio, randomValue) in transforms {
            guard let region = RandomErasing.drawRegion(height: height, width: width, probability: probability, scale: scale,
                                                        ratio: ratio, generator: &generator) else { continue }
            RandomErasing.erase(destination, channels: channels, height: height, width: width, region: region,
                                randomValue: randomValue, generator: &generator)
        }
    }

    /// Per channel: the normalised value of each byte, (p/255 − mean)/std.
    let normalisationTables: [[Float]]

    static func tables(channels: Int, mean: [Float], std: [Float]) -> [[Float]] {
        (0..<channels).map { c in
            let (m, s) = (mean[min(c, mean.count - 1)], std[min(c, std.count - 1)])
            return (0..<256).map { (Float($0) / 255 - m) / s }
        }
    }

    /// A loader over this set: training batches are augmented (`train`), evaluation batches are not; `dropLast`
    /// drops an epoch's short last batch, `skipBadSamples` leaves samples that fail to load out of their batch.
    public func loader(batchSize: Int, workers: Int, train: Bool, dropLast: Bool = false,
                       skipBadSamples: Bool = false) -> DataLoader {
        let set = self
        return DataLoader(sampleShape: sampleShape, batchSize: batchSize, workers: workers, dropLast: dropLast,
                          skipBadSamples: skipBadSamples) { index, epoch, destination in
            try set.sample(index, epoch: train ? epoch : nil, into: destination)
        }
    }

    /// The batch of samples at `indices` (no augmentation), for quick use outside a loader.
    public func batch(_ indices: ArraySlice<Int>) throws -> (Tensor, [Int32]) {
        let set = self
        let loader = DataLoader(sampleShape: sampleShape, batchSize: indices.count, workers: 0) { index, _, destination in
            try set.sample(index, epoch: nil, into: destination)
        }
        return try loader.batches(order: Array(indices), epoch: 0).next() ?? (Tensor.zeros([0] + sampleShape), [])
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
    /// The run's options; a fresh run from `--init-from` weights records their normalisation here (`mean`, `std`), so
    /// its checkpoints resume with it.
    public private(set) var options: TrainingOptions
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
        if options.dataset == "imagefolder" { return try loadImageFolders() }
        var info = try DatasetInfo.named(options.dataset)
        let directory = info.resolveDirectory(dataDirectory: options.dataDirectory)
        func load(_ split: IDXDataset.Split, _ limit: Int?) throws -> any LabeledImages {
            try loadImages(info, directory: directory, split: split, limit: limit)
        }
        var train = try load(.train, options.limitTrain)
        var test = try load(.test, options.limitTest)
        if let names = (train as? CIFARDataset)?.classNames { info = info.renamingClasses(names) }
        // Statistics of the full training split, so --limit-train and --classes do not change the preprocessing; the
        // normalisation of --init-from weights when the run starts from them.
        var (mean, std): ([Float], [Float])
        if let given = try givenNormalization(channels: train.channels) {
            (mean, std) = given
        } else {
            let statistics = try (options.limitTrain == nil ? train : load(.train, nil)).channelStatistics()
            (mean, std) = (statistics.mean.map(Float.init), statistics.std.map { Float(max($0, 1e-6)) })
        }
        if options.classes != nil || options.limitPerClass != nil {
            let selection = try classSelection(info.classNames)
            if let selection { info = info.renamingClasses(selection.names) }
            let trainSamples = try subset(train.labels, selection, limitPerClass: options.limitPerClass)
            let testSamples = try subset(test.labels, selection, limitPerClass: nil)
            train = LabeledImageSubset(train, samples: trainSamples, classCount: info.classCount)
            test = LabeledImageSubset(test, samples: testSamples, classCount: info.classCount)
        }
        var trainSet = ImageClassificationSet(images: train, info: info, mean: mean, std: std)
        trainSet.augmentations = options.augmentations
        trainSet.seed = options.seed
        return (trainSet, ImageClassificationSet(images: test, info: info, mean: mean, std: std))
    }

    /// The normalisation recorded in the options (from `--init-from` weights), checked against the images' channels.
    func givenNormalization(channels: Int) throws -> ([Float], [Float])? {
        guard let mean = options.mean, let std = options.std else { return nil }
        guard [1, channels].contains(mean.count), [1, channels].contains(std.count) else {
            throw TrainingError.invalidOption("the --init-from weights were trained on \(mean.count)-channel images "
                                              + "(mean \(mean)); the dataset has \(channels) channels")
        }
        return (mean, std)
    }

    /// `--classes` resolved against the dataset's class names (nil without it); an unknown name is a usage error.
    func classSelection(_ classNames: [String]) throws -> ClassSelection? {
        guard let classes = options.classes else { return nil }
        do { return try ClassSelection(classes, classNames: classNames) } catch {
            throw TrainingError.invalidOption("\(error)")
        }
    }

    /// The samples `--classes` and `--limit-per-class` keep of a split with `labels`.
    func subset(_ labels: [Int32], _ selection: ClassSelection?, limitPerClass: Int?) throws -> [(index: Int, label: Int32)] {
        let samples: [(index: Int, label: Int32)]
        do { samples = try selectSamples(labels: labels, selection: selection, limitPerClass: limitPerClass, seed: options.seed) } catch {
            throw TrainingError.invalidOption("\(error)")
        }
        return samples
    }

    /// ImageNet-style `train/` and `val/` folders (or `--val-dir`): random-resized crops and flips, then
    /// `options.augmentations`, for training;
    /// shorter side to size·256/224 and a centre crop for evaluation, ImageNet's mean and standard deviation.
    func loadImageFolders() throws -> (train: ImageClassificationSet, test: ImageClassificationSet) {
        guard let root = options.dataDirectory else {
            throw TrainingError.invalidOption("--dataset imagefolder needs --data-dir DIR with DIR/train and DIR/val")
        }
        var train = try ImageFolder(root: (root as NSString).appendingPathComponent("train"))
        var validation = try ImageFolder(root: options.validationDirectory ?? (root as NSString).appendingPathComponent("val"))
        guard train.classNames == validation.classNames else {
            throw DatasetError.unexpectedShape(path: validation.root, expected: "the classes of \(train.root): \(train.classNames)",
                                               found: [validation.classNames.count])
        }
        train = options.limitTrain.map { train.prefix($0) } ?? train
        validation = options.limitTest.map { validation.prefix($0) } ?? validation
        if options.classes != nil || options.limitPerClass != nil {
            let selection = try classSelection(train.classNames)
            let names = selection?.names ?? train.classNames
            train = train.subset(try subset(train.samples.map(\.label), selection, limitPerClass: options.limitPerClass), classNames: names)
            validation = validation.subset(try subset(validation.samples.map(\.label), selection, limitPerClass: nil), classNames: names)
        }
        let size = options.imageSize
        let info = DatasetInfo.imageFolder(classNames: train.classNames, size: size)
        let (mean, std): ([Float], [Float]) = try givenNormalization(channels: 3) ?? ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        var trainSet = ImageClassificationSet(folder: train, transforms: [
            .randomResizedCrop(size: size, scale: 0.08...1, ratio: (3.0 / 4)...(4.0 / 3)), .horizontalFlip(probability: 0.5),
        ] + options.augmentations, shape: [3, size, size], info: info, mean: mean, std: std)
        trainSet.seed = options.seed
        trainSet.pixelLimit = options.maximumImagePixels
        var testSet = ImageClassificationSet(folder: validation, transforms: ImageClassificationSet.evaluationTransforms(size: size),
                                             shape: [3, size, size], info: info, mean: mean, std: std)
        testSet.pixelLimit = options.maximumImagePixels
        return (trainSet, testSet)
    }

    /// For tests of crash recovery: the process sends itself SIGKILL right after this optimizer step.
    public var killAfterStep: Int?
    /// With `killAfterStep` in data-parallel training: only this rank kills itself (nil: every rank).
    public var killRank: Int?

    /// Data-parallel training: the job's ranks (from `Communicator.launched()`, under mpirun). Every rank runs the same
    /// `fit` with the same options; each trains on its part of every batch, evaluates a shard of the test set, and
    /// rank 0 alone writes files. nil: one process.
    public var communicator: Communicator?
    /// The gradient synchronisation of the last `fit` in data-parallel training (its communication statistics).
    public private(set) var dataParallel: DistributedDataParallel?

    /// Whether this process writes the run's files and progress (rank 0, or the only process).
    var isPrimary: Bool { (communicator?.rank ?? 0) == 0 }

    /// Checkpoint written every `checkpointEvery` steps and at every epoch end (in the output directory).
    public static let lastCheckpointName = "checkpoint-last.safetensors"
    /// Checkpoint of the epoch with the best test accuracy.
    public static let bestCheckpointName = "checkpoint-best.safetensors"

    /// Runs the whole job: data, model, epochs, evaluation, files. With `resume`, continues from the output
    /// directory's last checkpoint so that the result is bit-identical to an uninterrupted run. Every step and evaluation
    /// runs in `options.precision` (fp32, with a warning, where the CPU lacks it).
    public func fit(resume: Bool = false) throws -> TrainingResult {
        let (precision, warning) = options.precision.resolved()
        if let warning, isPrimary { progress.announce("warning: --precision \(options.precision): \(warning)") }
        return try Precision.run(precision) { try fitInPrecision(resume: resume) }
    }

    private func fitInPrecision(resume: Bool) throws -> TrainingResult {
        // --init-from weights are read (and checked) before any data; a resumed run has them in its checkpoint.
        let initial = try options.initFrom.flatMap { resume ? nil : try InitialWeights.read($0) }
        if let initial {
            try initial.checkArchitecture(options.model)
            if let mean = initial.mean, let std = initial.std { (options.mean, options.std) = (mean, std) }
        }
        let (train, test) = try loadData()
        if let communicator, options.batchSize % communicator.size != 0 {
            throw TrainingError.invalidOption("--batch-size \(options.batchSize) is not divisible by the \(communicator.size) ranks: "
                                              + "each rank trains on batch-size ÷ ranks images of every batch")
        }
        Initialization.seed(options.seed)
        let model = try ModelZoo.make(options.model, classCount: train.info.classCount, inputChannels: train.sampleShape[0])
        if let initial {
            let summary = try initial.apply(to: model, architecture: options.model, classes: train.info.classNames,
                                            newHead: options.newHead)
            if isPrimary { progress.announce(summary.describe(initial.path)) }
        }
        // Every parameter stays in the optimizer; frozen ones get no gradient, hence no update and no state.
        let optimizer = try options.makeOptimizer(model.parameters())
        _ = try ParameterSchedule.plan(for: 1, options: options, model: model)
        let average = try options.emaDecay.map { try WeightAverage(model: model, decay: $0) }
        // In data-parallel training rank 0 alone writes the run's directory and TensorBoard files.
        let output = try options.outputDirectory.flatMap { isPrimary ? try OutputDirectory(path: $0) : nil }
        let tensorboard = try options.tensorboardDirectory.flatMap { isPrimary ? try TensorBoardWriter(directory: $0) : nil }
        var state = TrainingProgress()
        if options.schedule == "plateau" {
            state.plateau = ReduceOnPlateau(factor: options.stepGamma, patience: options.plateauPatience,
                                            maximize: options.monitor == "test_accuracy")
        }
        if resume {
            guard let directory = options.outputDirectory else { throw TrainingError.invalidOption("--resume needs the run's directory") }
            let path = (directory as NSString).appendingPathComponent(Self.lastCheckpointName)
            if let communicator {
                state = try restoreDistributed(from: path, communicator: communicator, model: model, optimizer: optimizer,
                                               average: average)
            } else {
                state = try Checkpoint.restore(from: path, model: model, optimizer: optimizer, average: average)
            }
        }
        let parallel = try communicator.map { communicator in
            try startDataParallel(communicator: communicator, model: model, train: train, test: test)
        }
        dataParallel = parallel
        for name in output?.removedLeftovers ?? [] { progress.note("removed \(name), left by an interrupted write") }
        func saveCheckpoint(_ name: String) throws {
            // Every rank takes part (the epoch's running sums are summed over the ranks); rank 0 writes.
            var progress = state
            if let communicator { progress = try globalProgress(state, communicator: communicator) }
            guard let output else { return }
            try Checkpoint.save(to: output.file(name), model: model, optimizer: optimizer, average: average, options: options,
                                progress: progress)
        }

        let workers = options.workers ?? (train.isFolder ? 2 : 0)
        let ranks = communicator?.size ?? 1, rank = communicator?.rank ?? 0
        // In data-parallel training each rank loads its part (batch-size ÷ ranks) of every batch.
        let trainLoader = train.loader(batchSize: options.batchSize / ranks, workers: workers, train: true,
                                       dropLast: false, skipBadSamples: options.skipBadFiles)
        let globalBatches = DataLoader(sampleShape: train.sampleShape, batchSize: options.batchSize, workers: 0,
                                       dropLast: options.dropLast) { _, _, _ in 0 }
        let batchesPerEpoch = globalBatches.batchCount(samples: train.count)
        guard train.count > 0 else { throw TrainingError.noSamples("the training split of \(train.info.name) has no samples") }
        guard batchesPerEpoch > 0 else {
            throw TrainingError.invalidOption("--drop-last with \(train.count) training samples and --batch-size "
                                              + "\(options.batchSize) leaves no batch to train on")
        }
        if resume, let problem = state.problem(epochs: options.epochs, batches: batchesPerEpoch, samples: train.count) {
            throw TrainingError.badModelFile(path: output?.file(Self.lastCheckpointName) ?? "checkpoint",
                                             reason: "checkpoint progress: \(problem)")
        }
        // Lines of an epoch that finished after the checkpoint are written again when it finishes again.
        if resume { try output?.writeMetrics(state.history) }
        if state.epochSamples < 0 { state.epochSamples = state.batch * options.batchSize }
        // Test samples skipped in the epoch's evaluation (training ones are counted in `state`).
        let skippedInTest = options.skipBadFiles ? SkippedSampleCollector() : nil
        let updatesPerEpoch = (batchesPerEpoch + options.accumulationSteps - 1) / options.accumulationSteps
        // With --fine-tune each phase runs the schedule over its own epochs, from its first epoch.
        let phases = options.fineTune.map { [(first: 1, epochs: $0[0]), (first: $0[0] + 1, epochs: $0[1])] }
            ?? [(first: 1, epochs: options.epochs)]
        let schedules = phases.map { options.learningRateSchedule(stepsPerEpoch: updatesPerEpoch, epochs: $0.epochs) }
        let mixing = try options.batchMixing()
        var lastReport: ClassificationReport?
        var lastMistakes: [Mistake] = []
        while state.epoch <= options.epochs && !state.stoppedEarly {
            let epoch = state.epoch
            model.train()
            try ParameterSchedule.plan(for: epoch, options: options, model: model)
                .apply(to: model, optimizer: optimizer, freezeBatchNorm: options.freezeBatchNorm)
            let phase = phases.lastIndex { $0.first <= epoch } ?? 0
            let schedule = schedules[phase], phaseStart = (phases[phase].first - 1) * updatesPerEpoch
            let order = train.order(epoch: epoch, seed: options.seed, shuffle: true)
            let start = Date()
            var learningRate = optimizer.learningRate
            let batchCount = globalBatches.batchCount(samples: order.count)
            let (localOrder, parts) = rankOrder(order, batchSize: options.batchSize, batches: batchCount, rank: rank, ranks: ranks)
            let stream = trainLoader.batches(order: localOrder, epoch: epoch, startBatch: state.batch)
            defer { stream.stop() }
            let skippedBefore = state.epochSkipped
            var ahead: Batch?? = .none
            while true {
                let batch: Batch?
                if parallel == nil {
                    guard let next = try stream.nextBatch() else { break }
                    // A batch whose samples were all skipped is passed over by the stream.
                    (batch, state.batch) = (next, next.number)
                } else {
                    // Every rank takes part in every batch; this rank's part may be empty (skipped files, or a last
                    // batch smaller than the ranks).
                    guard state.batch < batchCount else { break }
                    if case .none = ahead { ahead = .some(try stream.nextBatch()) }
                    if case let .some(.some(next)) = ahead, next.number == state.batch {
                        (batch, ahead) = (next, .none)
                    } else {
                        batch = nil
                    }
                }
                let labels = batch?.labels ?? []
                let update = (epoch - 1) * updatesPerEpoch + state.batch / options.accumulationSteps
                let scheduleStep = options.scheduleUnit == "epoch" ? epoch - phases[phase].first : update - phaseStart
                learningRate = schedule.learningRate(base: options.learningRate, step: scheduleStep)
                if let plateau = state.plateau { learningRate = plateau.apply(to: learningRate) }
                optimizer.learningRate = learningRate
                // The last group of an epoch may be shorter than --accumulate.
                let group = state.batch / options.accumulationSteps * options.accumulationSteps
                let groupSize = min(options.accumulationSteps, batchCount - group)
                // MixUp/CutMix, drawn from (seed, epoch, batch); evaluation batches are never mixed.
                var (inputs, targets): (Tensor?, Tensor?) = (nil, nil)
                if let images = batch?.images {
                    (inputs, targets) = try mixedBatch(images: images, labels: labels, mixing: mixing,
                                                       classCount: train.info.classCount, labelSmoothing: options.labelSmoothing,
                                                       seed: options.seed, epoch: epoch, batch: state.batch)
                }
                // This rank's share of the global batch: its samples over all ranks' (summed when files may be skipped).
                var share: Float = 1
                if let communicator {
                    let planned = parts[state.batch]
                    let global = options.skipBadFiles ? Int(try communicator.allreduce([Int64(labels.count)])[0]) : planned.total
                    share = global > 0 ? Float(labels.count) / Float(global) : 0
                }
                let (loss, hits) = try trainStep(model: model, optimizer: optimizer, images: inputs, labels: labels,
                                                 targets: targets, labelSmoothing: options.labelSmoothing,
                                                 clipGradientNorm: options.clipGradientNorm,
                                                 accumulation: (state.batch - group, groupSize), step: state.step, epoch: epoch,
                                                 parallel: parallel, share: share)
                try average?.update(from: model)
                state.lossSum += Double(loss) * Double(labels.count)
                state.correct += hits
                state.step += 1
                state.batch += 1
                state.epochSamples += labels.count
                noteSkipped(stream.skipped.dropFirst(state.epochSkipped - skippedBefore), in: &state)
                let done = min(state.batch * options.batchSize, order.count)
                progress.step(epoch: epoch, of: options.epochs, done: done, total: order.count,
                              loss: state.lossSum / Double(max(state.epochSamples, 1)),
                              accuracy: Double(state.correct) / Double(max(state.epochSamples, 1)), started: start)
                // Only between accumulation groups: partial gradient sums are not part of a checkpoint.
                if let every = options.checkpointEvery, state.step % every == 0, state.batch < batchCount,
                   state.batch % options.accumulationSteps == 0 {
                    try saveCheckpoint(Self.lastCheckpointName)
                }
                if let killAfterStep, state.step == killAfterStep, killRank == nil || killRank == rank { kill(getpid(), SIGKILL) }
            }
            // Batches skipped whole after the last one trained count as well.
            noteSkipped(stream.skipped.dropFirst(state.epochSkipped - skippedBefore), in: &state)
            // The epoch's figures over every rank's part.
            if let communicator { state = try globalProgress(state, communicator: communicator) }
            guard state.epochSamples > 0 else {
                throw TrainingError.noSamples("epoch \(epoch) trained on no sample: all \(state.epochSkipped) could not be loaded "
                    + "(e.g. \(state.epochSkippedFiles.joined(separator: ", "))); no model was written")
            }
            let seconds = Date().timeIntervalSince(start)
            // Running statistics (batch norm) are rank 0's on every rank, so that all evaluate the same model.
            try parallel?.broadcastBuffers()
            let collector = MistakeCollector(limit: 24)
            skippedInTest?.reset()
            let report = try evaluate(model: model, on: test, batchSize: options.evaluationBatchSize, split: "test",
                                      mistakes: collector, workers: workers, skipped: skippedInTest, communicator: communicator)
            lastReport = report
            lastMistakes = collector.mistakes
            let averagedReport = try average?.withAveragedWeights(in: model) {
                try evaluate(model: model, on: test, batchSize: options.evaluationBatchSize, split: "test", communicator: communicator)
            }
            let trained = Double(max(state.epochSamples, 1))
            var metrics = EpochMetrics(epoch: epoch, trainLoss: state.lossSum / trained,
                                       trainAccuracy: Double(state.correct) / trained,
                                       testLoss: report.loss ?? .nan, testAccuracy: report.accuracy,
                                       learningRate: Double(learningRate), seconds: seconds,
                                       imagesPerSecond: Double(state.epochSamples) / seconds,
                                       emaTestLoss: averagedReport?.loss, emaTestAccuracy: averagedReport?.accuracy)
            let testSkipped = skippedInTest?.samples ?? []
            if state.epochSkipped + testSkipped.count > 0 {
                metrics.skippedSamples = state.epochSkipped + testSkipped.count
                metrics.skippedFiles = Array((state.epochSkippedFiles + testSkipped.map { $0.path ?? "sample \($0.index)" })
                    .prefix(TrainingProgress.skippedFilesKept))
                progress.note("epoch \(epoch): left out \(state.epochSkipped) training and \(testSkipped.count) test samples "
                              + "that could not be loaded, e.g. \(metrics.skippedFiles?.joined(separator: ", ") ?? "")")
            }
            state.history.append(metrics)
            state.epoch += 1
            state.batch = 0
            state.lossSum = 0
            state.correct = 0
            (state.epochSamples, state.epochSkipped, state.epochSkippedFiles) = (0, 0, [])
            if state.plateau != nil {
                state.plateau?.record(options.monitor == "test_accuracy" ? report.accuracy : (report.loss ?? .infinity))
            }
            let maximize = options.monitor == "test_accuracy"
            let monitored = maximize ? report.accuracy : (report.loss ?? .infinity)
            let improved = state.bestMetric.map { maximize ? monitored > $0 : monitored < $0 } ?? true
            if improved { (state.bestMetric, state.bestEpoch) = (monitored, epoch) }
            if let patience = options.earlyStoppingPatience, let best = state.bestEpoch, epoch - best >= patience,
               epoch < options.epochs {
                state.stoppedEarly = true
            }
            try output?.writeMetrics(state.history)
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
        for parameter in model.parameters() { parameter.isFrozen = false }
        let report = try lastReport ?? evaluate(model: model, on: test, batchSize: options.evaluationBatchSize, split: "test",
                                                communicator: communicator)
        var files: [String] = []
        if let output {
            files.append(output.file("metrics.jsonl"))
            files.append(output.file("metrics.csv"))
            files.append(try output.writeReport(report))
            let thumbnails = try lastMistakes.map { mistake in
                let (image, _) = try test.sampleBytes(mistake.index, epoch: nil)
                return (mistake, image.pixels, [image.channels, image.height, image.width])
            }
            let html = HTMLReport(title: "\(options.model) on \(options.dataset)", history: state.history, report: report,
                                  mistakes: thumbnails, explanations: explainMistakes(lastMistakes, of: test, model: model))
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

extension Trainer {
    /// Grad-CAM overlays (PNG) of the predicted class for each mistake, for the report; none (with a note) when the
    /// model has no feature map to explain or the images cannot be read again.
    func explainMistakes(_ mistakes: [Mistake], of test: ImageClassificationSet, model: Layer) -> [[UInt8]?] {
        guard !mistakes.isEmpty else { return [] }
        do {
            let size = test.sampleShape.reduce(1, *)
            var prepared: [PreparedImage] = []
            for mistake in mistakes {
                var input = [Float](repeating: 0, count: size)
                _ = try input.withUnsafeMutableBufferPointer { try test.sample(mistake.index, epoch: nil, into: $0.baseAddress!) }
                prepared.append(PreparedImage(image: try test.sampleBytes(mistake.index, epoch: nil).0, input: input))
            }
            let shape = test.sampleShape
            let tensor = try Tensor(shape: [prepared.count] + shape, values: prepared.flatMap(\.input))
            let maps = try GradCAM.explain(model: model, input: tensor, classes: mistakes.map(\.predicted))
            return zip(maps, prepared).map { map, image in Explanation(map: map, image: image.image).overlayPNG(minimumSide: 84) }
        } catch {
            progress.note("report.html without Grad-CAM maps: \(error)")
            return []
        }
    }
}

/// Counts samples left out of training batches into the epoch's progress, keeping the first few of their files.
func noteSkipped(_ skipped: some Sequence<SkippedSample>, in state: inout TrainingProgress) {
    for sample in skipped {
        state.epochSkipped += 1
        if state.epochSkippedFiles.count < TrainingProgress.skippedFilesKept {
            state.epochSkippedFiles.append(sample.path ?? "sample \(sample.index)")
        }
    }
}

/// One optimisation step: forward, loss, backward, update. Returns the batch loss and the number of correct predictions.
/// Throws `TrainingError.nonFiniteLoss` before touching the weights if the loss is NaN or infinite.
///
/// With gradient accumulation (`accumulation.count > 1`), gradients of `count` consecutive batches are summed
/// (each loss scaled by 1/count) and the optimizer steps after the batch with `index == count − 1`.
/// A non-finite gradient stops with `TrainingError.nonFiniteGradient` naming the parameter, before any update.
///
/// With soft `targets` (N, classes) — MixUp/CutMix, label smoothing already folded in — the loss is the cross-entropy
/// against them and `labelSmoothing` is not applied again; a prediction then counts as correct when it equals the
/// arg-max of its target row (the first on ties), which is the sample's own label whenever λ > ½.
///
/// With `parallel` (data-parallel training) this rank's batch is its part of the global batch and `share` its
/// samples ÷ the global batch's: the loss is backpropagated scaled by `share` and, at the group's last batch, the
/// gradients are summed over the ranks (during the backward pass) before the update, so every rank makes the update
/// one process would make on the whole batch. A rank whose part is empty passes `images` nil.
public func trainStep(model: Layer, optimizer: Optimizer, images: Tensor?, labels: [Int32], targets: Tensor? = nil,
                      labelSmoothing: Float = 0, clipGradientNorm maximumNorm: Float? = nil,
                      accumulation: (index: Int, count: Int) = (0, 1),
                      step: Int, epoch: Int, parallel: DistributedDataParallel? = nil,
                      share: Float = 1) throws -> (loss: Float, correct: Int) {
    func classificationLoss(_ logits: Tensor) throws -> Tensor {
        if let targets { return try crossEntropy(logits: logits, targets: targets) }
        return try crossEntropy(logits: logits, labels: labels, labelSmoothing: labelSmoothing)
    }
    if accumulation.index == 0 { optimizer.zeroGrad() }
    let last = accumulation.index == accumulation.count - 1
    /// Forward and backward; the loss and the logits.
    func pass(_ images: Tensor) throws -> (Float, Tensor) {
        let logits = try model(images)
        var loss = try classificationLoss(logits)
        if let auxiliary = model as? any AuxiliaryClassifierModel {
            for head in auxiliary.auxiliaryLogits {
                let headLoss = try classificationLoss(head)
                loss = try loss + headLoss.scaled(by: auxiliary.auxiliaryLossWeight)
            }
        }
        let value = loss.scalarValue
        guard value.isFinite else { throw TrainingError.nonFiniteLoss(step: step, epoch: epoch, value: value) }
        try loss.backward(seed: Tensor(scalar: share / Float(max(accumulation.count, 1))))
        return (value, logits)
    }
    var result: (Float, Tensor)?
    if let parallel, last {
        if let images { result = try parallel.synchronize { try pass(images) } } else { try parallel.synchronizeWithoutBackward() }
    } else if let images {
        result = try pass(images)
    }
    if last {
        if let name = firstNonFiniteGradient(model: model, optimizer: optimizer) {
            throw TrainingError.nonFiniteGradient(step: step, epoch: epoch, parameter: name)
        }
        if let maximumNorm { try clipGradientNorm(optimizer.parameters, maximumNorm: maximumNorm) }
        try optimizer.step()
    }
    guard let (value, logits) = result else { return (0, 0) }
    let correct = try countCorrect(logits: logits, labels: targets.map(dominantClasses) ?? labels)
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
