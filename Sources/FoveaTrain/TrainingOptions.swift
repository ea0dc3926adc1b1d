import FoveaData
import FoveaNN
import FoveaTensor
import FoveaOptim
#if canImport(Glibc)
import Glibc
#endif

/// Everything that defines a training run; the CLI fills it from flags.
public struct TrainingOptions: Codable, Equatable, Sendable {
    public var model = "lenet5"
    public var dataset = "fashion-mnist"
    /// Dataset directory; `nil` uses `FOVEA_DATA` or the dataset's default location.
    public var dataDirectory: String?
    public var epochs = 10
    public var batchSize = 128
    public var optimizer = "sgd"
    public var learningRate: Float = 0.05
    public var momentum: Float = 0.9
    public var weightDecay: Float = 5e-4
    public var nesterov = false
    /// Adam/AdamW: moment decay rates; Adam/AdamW/RMSprop: ε.
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    /// RMSprop: square-average decay and TensorFlow-style ε (inside the root, averages start at one).
    public var rmspropAlpha: Float = 0.99
    public var rmspropTensorFlow = false
    /// `all` or `exclude-bias-norm` (no decay on parameters with fewer than two dimensions).
    public var weightDecayPolicy = "all"
    /// Clip the global gradient norm to this value.
    public var clipGradientNorm: Float?
    /// `constant`, `step`, `multistep`, `exponential`, `cosine` or `onecycle`.
    public var schedule = "cosine"
    /// Whether the schedule advances every optimizer `step` or every `epoch`.
    public var scheduleUnit = "step"
    /// Linear warm-up epochs in front of the schedule (from 1 % of the rate).
    public var warmupEpochs = 0
    /// step: epochs between decays; multistep: the epochs at which to decay; both and exponential: the factor.
    public var stepEpochs = 30
    public var milestones: [Int] = []
    public var stepGamma: Float = 0.1
    public var labelSmoothing: Float = 0
    /// MixUp and CutMix (batch-level): α of each one's Beta(α, α) for λ, 0 turning it off; the probability that a batch
    /// is mixed; the probability of CutMix rather than MixUp when both are on. Soft targets carry `labelSmoothing`.
    public var mixUpAlpha = 0.0
    public var cutMixAlpha = 0.0
    public var mixProbability = 1.0
    public var mixSwitchProbability = 0.5
    public var seed: UInt64 = 0
    /// Use only the first N training samples.
    public var limitTrain: Int?
    /// Use only the first N test samples.
    public var limitTest: Int?
    /// Where metrics, reports and the model are written; `nil` writes nothing.
    public var outputDirectory: String?
    /// Keep an exponential moving average of the weights with this decay, evaluate and save it too.
    public var emaDecay: Float?
    /// Stop when the monitored metric has not improved for this many epochs.
    public var earlyStoppingPatience: Int?
    /// `test_accuracy` (higher is better) or `test_loss` (lower is better): decides the best checkpoint and early stopping.
    public var monitor = "test_accuracy"
    /// Write TensorBoard event files (loss, accuracy, learning rate per epoch) to this directory.
    public var tensorboardDirectory: String?
    /// Training-time transforms, applied in order to each training sample (after the random-resized crop and flip
    /// of image folders); random erasing acts last, on the normalised sample.
    public var augmentations: [ImageTransform] = []
    /// Sum gradients over this many batches before each optimizer step.
    public var accumulationSteps = 1
    /// Also write the last checkpoint every N optimizer steps (it is always written at epoch ends).
    public var checkpointEvery: Int?
    /// For the plateau schedule: epochs without improvement of `monitor` before the rate is multiplied by `gamma`.
    public var plateauPatience = 5
    /// Image folders: side of the square input and the validation folder (default DIR/val).
    public var imageSize = 224
    public var validationDirectory: String?
    /// Data-loading worker threads; nil picks 0 for in-memory datasets and 2 for image folders.
    public var workers: Int?
    /// Fine-tuning: start from this file's weights (Fovea model, torchvision safetensors, Fovea checkpoint or `.onnx`).
    public var initFrom: String?
    /// Initialise a new classifier even when the file's head has the dataset's class count.
    public var newHead = false
    /// `none`, `backbone` (all but the head) or `stages:N` (the first N stages, the stem being the first).
    public var freeze = "none"
    /// Keep the batch norms of frozen parts in evaluation mode (running statistics neither used from the batch nor updated).
    public var freezeBatchNorm = false
    /// Factor on the head's learning rate.
    public var headLearningRateMultiplier: Float = 1
    /// `[E1, E2]`: the head alone for E1 epochs, then everything for E2 with discriminative rates (`epochs` = E1 + E2).
    public var fineTune: [Int]?
    /// With `fineTune`, phase two: the stem learns at 1/R of the head's rate, later stages geometrically closer.
    public var discriminativeRatio: Float = 100
    /// Keep only these classes (names or indices), relabelled 0…k−1 in this order, in training and test sets.
    public var classes: [String]?
    /// Keep only the first N training samples of each class, in an order shuffled under `seed`.
    public var limitPerClass: Int?
    /// Normalisation to use instead of the training split's statistics: the `--init-from` weights', recorded by the
    /// trainer so that a resumed run feeds its images the same way.
    public var mean: [Float]?
    public var std: [Float]?
    /// Batch size for evaluation passes.
    public var evaluationBatchSize = 1000
    /// Drop each epoch's last training batch when it is smaller than `batchSize`.
    public var dropLast = false
    /// Leave samples whose files cannot be loaded out of their batch (counted and named in metrics and progress)
    /// instead of stopping with the file's error.
    public var skipBadFiles = false
    /// Image folders: largest width × height accepted from an image header.
    public var maximumImagePixels = ImageDecoder.defaultPixelLimit
    /// Data-parallel training (under mpirun): batch-norm statistics over every rank's share of the batch, instead of
    /// each rank's own.
    public var syncBatchNorm = false
    /// Data-parallel training: size of a gradient bucket in MB (PyTorch DDP's default 25).
    public var bucketMegabytes = 25.0
    /// Data-parallel training: start each bucket's allreduce during the backward pass, as soon as its gradients are
    /// final (false: all after it).
    public var overlapCommunication = true
    /// The arithmetic of convolutions and inner products (`bf16`: mixed precision, see `Precision`); training runs and
    /// its evaluations use it, and a resumed run keeps it. Weights, checkpoints and everything else stay float32.
    public var precision = Precision.fp32

    /// Default options (LeNet-5 on Fashion-MNIST, SGD 0.05 with momentum 0.9, cosine schedule).
    public init() {}

    /// Decodes options saved by any version: keys that are missing take their default values.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = TrainingOptions()
        model = try container.decodeIfPresent(type(of: defaults.model), forKey: .model) ?? defaults.model
        dataset = try container.decodeIfPresent(type(of: defaults.dataset), forKey: .dataset) ?? defaults.dataset
        dataDirectory = try container.decodeIfPresent(String.self, forKey: .dataDirectory) ?? defaults.dataDirectory
        epochs = try container.decodeIfPresent(type(of: defaults.epochs), forKey: .epochs) ?? defaults.epochs
        batchSize = try container.decodeIfPresent(type(of: defaults.batchSize), forKey: .batchSize) ?? defaults.batchSize
        optimizer = try container.decodeIfPresent(type(of: defaults.optimizer), forKey: .optimizer) ?? defaults.optimizer
        learningRate = try container.decodeIfPresent(type(of: defaults.learningRate), forKey: .learningRate) ?? defaults.learningRate
        momentum = try container.decodeIfPresent(type(of: defaults.momentum), forKey: .momentum) ?? defaults.momentum
        weightDecay = try container.decodeIfPresent(type(of: defaults.weightDecay), forKey: .weightDecay) ?? defaults.weightDecay
        nesterov = try container.decodeIfPresent(type(of: defaults.nesterov), forKey: .nesterov) ?? defaults.nesterov
        beta1 = try container.decodeIfPresent(type(of: defaults.beta1), forKey: .beta1) ?? defaults.beta1
        beta2 = try container.decodeIfPresent(type(of: defaults.beta2), forKey: .beta2) ?? defaults.beta2
        epsilon = try container.decodeIfPresent(type(of: defaults.epsilon), forKey: .epsilon) ?? defaults.epsilon
        rmspropAlpha = try container.decodeIfPresent(type(of: defaults.rmspropAlpha), forKey: .rmspropAlpha) ?? defaults.rmspropAlpha
        rmspropTensorFlow = try container.decodeIfPresent(type(of: defaults.rmspropTensorFlow), forKey: .rmspropTensorFlow) ?? defaults.rmspropTensorFlow
        weightDecayPolicy = try container.decodeIfPresent(type(of: defaults.weightDecayPolicy), forKey: .weightDecayPolicy) ?? defaults.weightDecayPolicy
        clipGradientNorm = try container.decodeIfPresent(Float.self, forKey: .clipGradientNorm) ?? defaults.clipGradientNorm
        schedule = try container.decodeIfPresent(type(of: defaults.schedule), forKey: .schedule) ?? defaults.schedule
        scheduleUnit = try container.decodeIfPresent(type(of: defaults.scheduleUnit), forKey: .scheduleUnit) ?? defaults.scheduleUnit
        warmupEpochs = try container.decodeIfPresent(type(of: defaults.warmupEpochs), forKey: .warmupEpochs) ?? defaults.warmupEpochs
        stepEpochs = try container.decodeIfPresent(type(of: defaults.stepEpochs), forKey: .stepEpochs) ?? defaults.stepEpochs
        milestones = try container.decodeIfPresent(type(of: defaults.milestones), forKey: .milestones) ?? defaults.milestones
        stepGamma = try container.decodeIfPresent(type(of: defaults.stepGamma), forKey: .stepGamma) ?? defaults.stepGamma
        labelSmoothing = try container.decodeIfPresent(type(of: defaults.labelSmoothing), forKey: .labelSmoothing) ?? defaults.labelSmoothing
        mixUpAlpha = try container.decodeIfPresent(type(of: defaults.mixUpAlpha), forKey: .mixUpAlpha) ?? defaults.mixUpAlpha
        cutMixAlpha = try container.decodeIfPresent(type(of: defaults.cutMixAlpha), forKey: .cutMixAlpha) ?? defaults.cutMixAlpha
        mixProbability = try container.decodeIfPresent(type(of: defaults.mixProbability), forKey: .mixProbability) ?? defaults.mixProbability
        mixSwitchProbability = try container.decodeIfPresent(type(of: defaults.mixSwitchProbability), forKey: .mixSwitchProbability) ?? defaults.mixSwitchProbability
        seed = try container.decodeIfPresent(type(of: defaults.seed), forKey: .seed) ?? defaults.seed
        limitTrain = try container.decodeIfPresent(Int.self, forKey: .limitTrain) ?? defaults.limitTrain
        limitTest = try container.decodeIfPresent(Int.self, forKey: .limitTest) ?? defaults.limitTest
        outputDirectory = try container.decodeIfPresent(String.self, forKey: .outputDirectory) ?? defaults.outputDirectory
        emaDecay = try container.decodeIfPresent(Float.self, forKey: .emaDecay) ?? defaults.emaDecay
        earlyStoppingPatience = try container.decodeIfPresent(Int.self, forKey: .earlyStoppingPatience) ?? defaults.earlyStoppingPatience
        monitor = try container.decodeIfPresent(type(of: defaults.monitor), forKey: .monitor) ?? defaults.monitor
        tensorboardDirectory = try container.decodeIfPresent(String.self, forKey: .tensorboardDirectory) ?? defaults.tensorboardDirectory
        augmentations = try container.decodeIfPresent(type(of: defaults.augmentations), forKey: .augmentations) ?? defaults.augmentations
        accumulationSteps = try container.decodeIfPresent(type(of: defaults.accumulationSteps), forKey: .accumulationSteps) ?? defaults.accumulationSteps
        checkpointEvery = try container.decodeIfPresent(Int.self, forKey: .checkpointEvery) ?? defaults.checkpointEvery
        workers = try container.decodeIfPresent(Int.self, forKey: .workers) ?? defaults.workers
        imageSize = try container.decodeIfPresent(Int.self, forKey: .imageSize) ?? defaults.imageSize
        plateauPatience = try container.decodeIfPresent(Int.self, forKey: .plateauPatience) ?? defaults.plateauPatience
        validationDirectory = try container.decodeIfPresent(String.self, forKey: .validationDirectory) ?? defaults.validationDirectory
        evaluationBatchSize = try container.decodeIfPresent(type(of: defaults.evaluationBatchSize), forKey: .evaluationBatchSize) ?? defaults.evaluationBatchSize
        dropLast = try container.decodeIfPresent(Bool.self, forKey: .dropLast) ?? defaults.dropLast
        skipBadFiles = try container.decodeIfPresent(Bool.self, forKey: .skipBadFiles) ?? defaults.skipBadFiles
        maximumImagePixels = try container.decodeIfPresent(Int.self, forKey: .maximumImagePixels) ?? defaults.maximumImagePixels
        initFrom = try container.decodeIfPresent(String.self, forKey: .initFrom) ?? defaults.initFrom
        newHead = try container.decodeIfPresent(Bool.self, forKey: .newHead) ?? defaults.newHead
        freeze = try container.decodeIfPresent(String.self, forKey: .freeze) ?? defaults.freeze
        freezeBatchNorm = try container.decodeIfPresent(Bool.self, forKey: .freezeBatchNorm) ?? defaults.freezeBatchNorm
        headLearningRateMultiplier = try container.decodeIfPresent(Float.self, forKey: .headLearningRateMultiplier)
            ?? defaults.headLearningRateMultiplier
        fineTune = try container.decodeIfPresent([Int].self, forKey: .fineTune) ?? defaults.fineTune
        discriminativeRatio = try container.decodeIfPresent(Float.self, forKey: .discriminativeRatio) ?? defaults.discriminativeRatio
        classes = try container.decodeIfPresent([String].self, forKey: .classes) ?? defaults.classes
        limitPerClass = try container.decodeIfPresent(Int.self, forKey: .limitPerClass) ?? defaults.limitPerClass
        mean = try container.decodeIfPresent([Float].self, forKey: .mean) ?? defaults.mean
        std = try container.decodeIfPresent([Float].self, forKey: .std) ?? defaults.std
        syncBatchNorm = try container.decodeIfPresent(Bool.self, forKey: .syncBatchNorm) ?? defaults.syncBatchNorm
        bucketMegabytes = try container.decodeIfPresent(Double.self, forKey: .bucketMegabytes) ?? defaults.bucketMegabytes
        overlapCommunication = try container.decodeIfPresent(Bool.self, forKey: .overlapCommunication) ?? defaults.overlapCommunication
        precision = try container.decodeIfPresent(Precision.self, forKey: .precision) ?? defaults.precision
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, dataset, epochs, optimizer, nesterov, schedule, seed
        case dataDirectory = "data_dir", batchSize = "batch_size", learningRate = "lr", momentum, weightDecay = "weight_decay"
        case stepEpochs = "step_epochs", stepGamma = "gamma", labelSmoothing = "label_smoothing", milestones
        case mixUpAlpha = "mixup", cutMixAlpha = "cutmix", mixProbability = "mix_prob", mixSwitchProbability = "mix_switch_prob"
        case beta1, beta2, epsilon = "eps", rmspropAlpha = "rmsprop_alpha", rmspropTensorFlow = "rmsprop_tf"
        case weightDecayPolicy = "weight_decay_policy", clipGradientNorm = "clip_grad_norm", scheduleUnit = "schedule_unit"
        case warmupEpochs = "warmup_epochs"
        case limitTrain = "limit_train", limitTest = "limit_test", outputDirectory = "output"
        case evaluationBatchSize = "eval_batch_size", checkpointEvery = "checkpoint_every", monitor
        case imageSize = "image_size", validationDirectory = "val_dir", plateauPatience = "plateau_patience"
        case dropLast = "drop_last", skipBadFiles = "skip_bad_files", maximumImagePixels = "max_image_pixels"
        case initFrom = "init_from", newHead = "new_head", freeze, freezeBatchNorm = "freeze_batch_norm"
        case headLearningRateMultiplier = "head_lr_multiplier", fineTune = "fine_tune", discriminativeRatio = "discriminative_lr_ratio"
        case classes, limitPerClass = "limit_per_class", mean, std
        case syncBatchNorm = "sync_batch_norm", bucketMegabytes = "bucket_mb", overlapCommunication = "overlap_communication"
        case precision
        case workers, augmentations = "augment", accumulationSteps = "accumulate", tensorboardDirectory = "tensorboard", emaDecay = "ema_decay", earlyStoppingPatience = "early_stopping_patience"
    }

    /// Checks ranges; returns the first problem in words, or nil.
    public func problem() -> String? {
        // Upper bounds keep every product of counts (steps = epochs × batches, batch × image) far from overflow
        // and every allocation within a machine.
        if let problem = Self.outOfRange("--epochs", epochs, 1...Self.maximumCount)
            ?? Self.outOfRange("--batch-size", batchSize, 1...Self.maximumBatchSize)
            ?? Self.outOfRange("eval_batch_size", evaluationBatchSize, 1...Self.maximumBatchSize) { return problem }
        if precision == .int8 {
            return "--precision int8 is for inference: train in fp32 or bf16, then make an int8 model with fovea quantize"
        }
        if !(learningRate > 0) || !learningRate.isFinite { return "--lr must be a positive number (got \(learningRate))" }
        if !(0..<1).contains(momentum) { return "--momentum must be in [0, 1) (got \(momentum))" }
        if !(weightDecay >= 0 && weightDecay.isFinite) { return "--weight-decay must be a finite number ≥ 0 (got \(weightDecay))" }
        if !(stepGamma > 0 && stepGamma.isFinite) {
            return "--gamma must be a positive finite factor (got \(stepGamma)); a factor ≤ 0 would make the learning rate ≤ 0"
        }
        if nesterov && momentum == 0 { return "--nesterov needs a positive --momentum" }
        if !Self.schedules.contains(schedule) {
            return "--schedule must be one of \(Self.schedules.joined(separator: ", ")) (got \(schedule))"
        }
        if !Self.optimizers.contains(optimizer) {
            return "--optimizer must be one of \(Self.optimizers.joined(separator: ", ")) (got \(optimizer))"
        }
        if !["step", "epoch"].contains(scheduleUnit) { return "--schedule-unit must be step or epoch (got \(scheduleUnit))" }
        if WeightDecayPolicy(rawValue: weightDecayPolicy) == nil {
            return "--weight-decay-policy must be all or exclude-bias-norm (got \(weightDecayPolicy))"
        }
        if !(0..<1).contains(beta1) || !(0..<1).contains(beta2) { return "--beta1 and --beta2 must be in [0, 1)" }
        if !(epsilon >= 0 && epsilon.isFinite) { return "--eps must be a finite number ≥ 0 (got \(epsilon))" }
        if !(0..<1).contains(rmspropAlpha) { return "--rmsprop-alpha must be in [0, 1)" }
        if let clipGradientNorm, !(clipGradientNorm > 0) { return "--clip-grad-norm must be positive" }
        if warmupEpochs < 0 || warmupEpochs >= epochs { return "--warmup-epochs must be in 0..<epochs" }
        if schedule == "multistep" && milestones.isEmpty { return "--schedule multistep needs --milestones" }
        if let problem = Self.outOfRange("--step-epochs", stepEpochs, 1...Self.maximumCount) { return problem }
        if let milestone = milestones.first(where: { !(1...Self.maximumCount).contains($0) }) {
            return "--milestones must each be 1 to \(Self.maximumCount) (got \(milestone))"
        }
        if !(0..<1).contains(labelSmoothing) { return "--label-smoothing must be in [0, 1) (got \(labelSmoothing))" }
        if !(mixUpAlpha >= 0 && mixUpAlpha.isFinite) { return "--mixup must be a finite α ≥ 0, 0 for off (got \(mixUpAlpha))" }
        if !(cutMixAlpha >= 0 && cutMixAlpha.isFinite) { return "--cutmix must be a finite α ≥ 0, 0 for off (got \(cutMixAlpha))" }
        if !(0...1).contains(mixProbability) { return "--mix-probability must be in [0, 1] (got \(mixProbability))" }
        if !(0...1).contains(mixSwitchProbability) {
            return "--mix-switch-probability must be in [0, 1] (got \(mixSwitchProbability))"
        }
        if let limitTrain, limitTrain < 1 { return "--limit-train must be at least 1" }
        if let limitTest, limitTest < 1 { return "--limit-test must be at least 1" }
        if let checkpointEvery, let problem = Self.outOfRange("--checkpoint-every", checkpointEvery, 1...Self.maximumCount) {
            return problem
        }
        if !(0...Self.maximumCount).contains(plateauPatience) { return "--plateau-patience must be 0 to \(Self.maximumCount)" }
        if let problem = Self.outOfRange("--image-size", imageSize, 8...ModelSidecar.maximumInputSide) { return problem }
        if let workers, workers < 0 || workers > 64 { return "--workers must be in 0…64" }
        if maximumImagePixels < 1 { return "--max-image-pixels must be at least 1 (got \(maximumImagePixels))" }
        if let problem = Self.outOfRange("--accumulate", accumulationSteps, 1...Self.maximumBatchSize) { return problem }
        if let emaDecay, !(0..<1).contains(emaDecay) { return "--ema-decay must be in [0, 1)" }
        if let earlyStoppingPatience,
           let problem = Self.outOfRange("--early-stopping", earlyStoppingPatience, 1...Self.maximumCount) { return problem }
        if !["test_accuracy", "test_loss"].contains(monitor) { return "--monitor must be test_accuracy or test_loss" }
        for transform in augmentations {
            do { try transform.validate() } catch { return "\(error)" }
        }
        return fineTuningProblem()
    }

    /// The range checks of the fine-tuning and subset options.
    func fineTuningProblem() -> String? {
        do { _ = try FreezePolicy(freeze) } catch { return "\(error)" }
        if !(headLearningRateMultiplier > 0 && headLearningRateMultiplier.isFinite) {
            return "--head-lr-multiplier must be a positive finite factor (got \(headLearningRateMultiplier))"
        }
        if !(discriminativeRatio >= 1 && discriminativeRatio.isFinite) {
            return "--discriminative-lr-ratio must be a finite ratio ≥ 1 (got \(discriminativeRatio))"
        }
        if let fineTune {
            guard fineTune.count == 2, fineTune.allSatisfy({ (1...Self.maximumCount).contains($0) }) else {
                return "--fine-tune takes E1,E2: two epoch counts of at least 1 (got \(fineTune.map(String.init).joined(separator: ",")))"
            }
            if fineTune[0] + fineTune[1] != epochs {
                return "--fine-tune \(fineTune[0]),\(fineTune[1]) runs \(fineTune[0] + fineTune[1]) epochs, but --epochs is \(epochs)"
            }
            if warmupEpochs >= fineTune.min()! { return "--warmup-epochs must be shorter than both --fine-tune phases" }
            if schedule == "plateau" { return "--fine-tune restarts the schedule in phase two; --schedule plateau cannot" }
        }
        if !(bucketMegabytes > 0 && bucketMegabytes <= 4096) { return "--bucket-mb must be in (0, 4096] (got \(bucketMegabytes))" }
        if let limitPerClass, limitPerClass < 1 { return "--limit-per-class must be at least 1 (got \(limitPerClass))" }
        if let classes {
            if classes.isEmpty { return "--classes names no class" }
            if classes.count > ModelSidecar.maximumClasses { return "--classes names more than \(ModelSidecar.maximumClasses) classes" }
        }
        if let initFrom, initFrom.isEmpty { return "--init-from needs a file" }
        for (name, values) in [("mean", mean), ("std", std)] {
            if let values, values.isEmpty || values.count > 3 || !values.allSatisfy(\.isFinite) { return "\(name) \(values) is not a normalisation" }
        }
        if let std, !std.allSatisfy({ $0 >= 1e-6 }) { return "std \(std) has a value below 1e-6" }
        if (mean == nil) != (std == nil) { return "mean and std come together" }
        return nil
    }

    /// "FLAG must be LOW to HIGH (got VALUE)" when `value` is outside `range`, else nil: the check of every bounded count.
    public static func outOfRange(_ flag: String, _ value: Int, _ range: ClosedRange<Int>) -> String? {
        range.contains(value) ? nil : "\(flag) must be \(range.lowerBound) to \(range.upperBound) (got \(value))"
    }

    /// The largest epoch count, milestone, patience or checkpoint interval accepted.
    public static let maximumCount = 1_000_000
    /// The largest batch size (and accumulation count) accepted.
    public static let maximumBatchSize = 65_536

    /// Optimizer names `--optimizer` accepts.
    public static let optimizers = ["sgd", "adam", "adamw", "rmsprop"]
    /// Schedule names `--schedule` accepts.
    public static let schedules = ["constant", "step", "multistep", "exponential", "cosine", "onecycle", "plateau"]

    /// The learning-rate schedule in units of the schedule's step (an optimizer step, or an epoch when
    /// `scheduleUnit` is `epoch`), with the warm-up in front.
    /// `epochs` (default: the run's) is the length of the phase it covers.
    public func learningRateSchedule(stepsPerEpoch: Int, epochs: Int? = nil) -> LearningRateSchedule {
        let unit = scheduleUnit == "epoch" ? 1 : stepsPerEpoch
        let warmup = warmupEpochs * unit
        let remaining = ((epochs ?? self.epochs) - warmupEpochs) * unit
        let main: LearningRateSchedule
        switch schedule {
        case "cosine": main = .cosine(totalSteps: remaining, minimum: 0)
        case "step": main = .step(stepSize: stepEpochs * unit, gamma: stepGamma)
        case "multistep": main = .multiStep(milestones: milestones.map { max($0 - warmupEpochs, 0) * unit }, gamma: stepGamma)
        case "exponential": main = .exponential(gamma: scheduleUnit == "epoch" ? stepGamma : powf(stepGamma, 1 / Float(unit)))
        case "onecycle": main = .oneCycle(totalSteps: remaining, warmupFraction: 0.3, divisor: 25, finalDivisor: 1e4)
        default: main = .constant
        }
        return warmup > 0 ? .warmup(steps: warmup, startFactor: 0.01, then: main) : main
    }

    /// The optimizer these options describe, over `parameters`.
    public func makeOptimizer(_ parameters: [Parameter]) throws -> Optimizer {
        let policy = WeightDecayPolicy(rawValue: weightDecayPolicy) ?? .all
        switch optimizer {
        case "adam", "adamw":
            return try Adam(parameters: parameters, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                            weightDecay: weightDecay, decoupled: optimizer == "adamw", weightDecayPolicy: policy)
        case "rmsprop":
            return try RMSprop(parameters: parameters, learningRate: learningRate, alpha: rmspropAlpha, epsilon: epsilon,
                               momentum: momentum, weightDecay: weightDecay, tensorFlowStyle: rmspropTensorFlow,
                               weightDecayPolicy: policy)
        default:
            return try SGD(parameters: parameters, learningRate: learningRate, momentum: momentum, weightDecay: weightDecay,
                           nesterov: nesterov, weightDecayPolicy: policy)
        }
    }
}
