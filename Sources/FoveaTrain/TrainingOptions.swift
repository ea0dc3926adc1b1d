import FoveaOptim

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
    /// `constant`, `step` or `cosine`.
    public var schedule = "cosine"
    /// For the step schedule: epochs between decays and the decay factor.
    public var stepEpochs = 30
    public var stepGamma: Float = 0.1
    public var labelSmoothing: Float = 0
    public var seed: UInt64 = 0
    /// Use only the first N training samples.
    public var limitTrain: Int?
    /// Use only the first N test samples.
    public var limitTest: Int?
    /// Where metrics, reports and the model are written; `nil` writes nothing.
    public var outputDirectory: String?
    /// Batch size for evaluation passes.
    public var evaluationBatchSize = 1000

    /// Default options (LeNet-5 on Fashion-MNIST, SGD 0.05 with momentum 0.9, cosine schedule).
    public init() {}

    enum CodingKeys: String, CodingKey {
        case model, dataset, epochs, optimizer, nesterov, schedule, seed
        case dataDirectory = "data_dir", batchSize = "batch_size", learningRate = "lr", momentum, weightDecay = "weight_decay"
        case stepEpochs = "step_epochs", stepGamma = "step_gamma", labelSmoothing = "label_smoothing"
        case limitTrain = "limit_train", limitTest = "limit_test", outputDirectory = "output"
        case evaluationBatchSize = "eval_batch_size"
    }

    /// Checks ranges; returns the first problem in words, or nil.
    public func problem() -> String? {
        if epochs < 1 { return "--epochs must be at least 1 (got \(epochs))" }
        if batchSize < 1 { return "--batch-size must be at least 1 (got \(batchSize))" }
        if !(learningRate > 0) || !learningRate.isFinite { return "--lr must be a positive number (got \(learningRate))" }
        if momentum < 0 || momentum >= 1 { return "--momentum must be in [0, 1) (got \(momentum))" }
        if weightDecay < 0 { return "--weight-decay must not be negative (got \(weightDecay))" }
        if nesterov && momentum == 0 { return "--nesterov needs a positive --momentum" }
        if !["constant", "step", "cosine"].contains(schedule) { return "--schedule must be constant, step or cosine (got \(schedule))" }
        if optimizer != "sgd" { return "--optimizer \(optimizer) is not available; this build trains with sgd" }
        if stepEpochs < 1 { return "--step-epochs must be at least 1" }
        if labelSmoothing < 0 || labelSmoothing >= 1 { return "--label-smoothing must be in [0, 1)" }
        if let limitTrain, limitTrain < 1 { return "--limit-train must be at least 1" }
        if let limitTest, limitTest < 1 { return "--limit-test must be at least 1" }
        return nil
    }

    /// The learning-rate schedule for `stepsPerEpoch` optimizer steps per epoch (stepped every step).
    public func learningRateSchedule(stepsPerEpoch: Int) -> LearningRateSchedule {
        switch schedule {
        case "cosine": return .cosine(totalSteps: epochs * stepsPerEpoch, minimum: 0)
        case "step": return .step(stepSize: stepEpochs * stepsPerEpoch, gamma: stepGamma)
        default: return .constant
        }
    }
}
