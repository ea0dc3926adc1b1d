import ArgumentParser
import Foundation
import FoveaTensor
import FoveaTrain

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model from the zoo on a dataset and write metrics, report and weights.",
        discussion: """
            Writes DIR/metrics.jsonl (one JSON object per epoch), DIR/report.json (test-set report),
            DIR/model.safetensors with its sidecar DIR/model.json, and DIR/checkpoint-last.safetensors (every epoch
            and every --checkpoint-every steps) and DIR/checkpoint-best.safetensors (best test accuracy) when
            --output DIR is given. --resume DIR continues an interrupted run bit for bit.
            """)

    @Option(help: "Architecture name (see `fovea models`).") var model = "lenet5"
    @Option(help: "Dataset: mnist or fashion-mnist.") var dataset = "fashion-mnist"
    @Option(name: .customLong("data-dir"), help: "Folder holding the dataset's files.") var dataDir: String?
    @Option(help: "Number of passes over the training set.") var epochs = 10
    @Option(name: .customLong("batch-size"), help: "Training mini-batch size.") var batchSize = 128
    @Option(help: "Optimizer: sgd, adam, adamw (decoupled weight decay) or rmsprop.") var optimizer = "sgd"
    @Option(help: "Base learning rate.") var lr: Float = 0.05
    @Option(help: "SGD and RMSprop momentum.") var momentum: Float = 0.9
    @Option(help: "Adam/AdamW first-moment decay.") var beta1: Float = 0.9
    @Option(help: "Adam/AdamW second-moment decay.") var beta2: Float = 0.999
    @Option(help: "Adam/AdamW/RMSprop epsilon.") var eps: Float = 1e-8
    @Option(name: .customLong("rmsprop-alpha"), help: "RMSprop square-average decay.") var rmspropAlpha: Float = 0.99
    @Flag(name: .customLong("rmsprop-tf"), help: "RMSprop with TensorFlow's epsilon inside the square root (EfficientNet).")
    var rmspropTensorFlow = false
    @Option(name: .customLong("weight-decay-policy"), help: "all, or exclude-bias-norm to skip biases and normalisation parameters.")
    var weightDecayPolicy = "all"
    @Option(name: .customLong("clip-grad-norm"), help: "Clip the global gradient norm to this value.") var clipGradNorm: Float?
    @Flag(help: "Use Nesterov momentum.") var nesterov = false
    @Option(name: .customLong("weight-decay"), help: "L2 weight decay (added to the gradient).") var weightDecay: Float = 5e-4
    @Option(help: "Learning-rate schedule: constant, step, multistep, exponential, cosine or onecycle.") var schedule = "cosine"
    @Option(name: .customLong("schedule-unit"), help: "Advance the schedule every optimizer step or every epoch.")
    var scheduleUnit = "step"
    @Option(name: .customLong("warmup-epochs"), help: "Linear warm-up epochs (from 1 % of --lr) before the schedule.")
    var warmupEpochs = 0
    @Option(name: .customLong("step-epochs"), help: "For --schedule step: epochs between decays.") var stepEpochs = 30
    @Option(parsing: .upToNextOption, help: "For --schedule multistep: epochs at which the rate is multiplied by --gamma.")
    var milestones: [Int] = []
    @Option(help: "Decay factor for step and multistep; per-epoch factor for exponential.") var gamma: Float = 0.1
    @Option(name: .customLong("label-smoothing"), help: "Label smoothing ε for the cross-entropy loss.") var labelSmoothing: Float = 0
    @Option(help: "Seed for initialisation and shuffling; the same seed gives the same run.") var seed: UInt64 = 0
    @Option(name: .customLong("limit-train"), help: "Train on the first N training samples only.") var limitTrain: Int?
    @Option(name: .customLong("limit-test"), help: "Evaluate on the first N test samples only.") var limitTest: Int?
    @Option(help: "Directory for metrics.jsonl, report.json, model.safetensors and checkpoints.") var output: String?
    @Option(help: "Continue the run in DIR from its last checkpoint, with its saved options (other options are ignored).")
    var resume: String?
    @Option(name: .customLong("checkpoint-every"), help: "Also checkpoint every N optimizer steps (always at epoch ends).")
    var checkpointEvery: Int?
    @Option(name: .customLong("kill-after-step"), help: .hidden) var killAfterStep: Int?
    @Option(name: .customLong("ema-decay"), help: "Keep a moving average of the weights (e.g. 0.999); evaluated and saved as model-ema.safetensors.")
    var emaDecay: Float?
    @Option(name: .customLong("early-stopping"), help: "Stop after N epochs without improvement of --monitor.")
    var earlyStopping: Int?
    @Option(help: "Sum gradients over N batches per optimizer step (an effective batch of N × --batch-size).")
    var accumulate = 1
    @Option(help: "Write TensorBoard event files (loss, accuracy, learning rate per epoch) to DIR.") var tensorboard: String?
    @Option(help: "Metric for the best checkpoint and early stopping: test_accuracy or test_loss.") var monitor = "test_accuracy"
    @Flag(help: "Print the final report as JSON on stdout.") var json = false
    @Flag(help: "No progress output.") var quiet = false

    func run() throws {
        var options = TrainingOptions()
        options.model = model
        options.dataset = dataset
        options.dataDirectory = dataDir
        options.epochs = epochs
        options.batchSize = batchSize
        options.optimizer = optimizer
        options.learningRate = lr
        options.momentum = momentum
        options.nesterov = nesterov
        options.weightDecay = weightDecay
        options.schedule = schedule
        options.stepEpochs = stepEpochs
        options.stepGamma = gamma
        options.milestones = milestones
        options.scheduleUnit = scheduleUnit
        options.warmupEpochs = warmupEpochs
        options.beta1 = beta1
        options.beta2 = beta2
        options.epsilon = eps
        options.rmspropAlpha = rmspropAlpha
        options.rmspropTensorFlow = rmspropTensorFlow
        options.weightDecayPolicy = weightDecayPolicy
        options.clipGradientNorm = clipGradNorm
        options.labelSmoothing = labelSmoothing
        options.seed = seed
        options.limitTrain = limitTrain
        options.limitTest = limitTest
        options.outputDirectory = output
        options.checkpointEvery = checkpointEvery
        options.emaDecay = emaDecay
        options.earlyStoppingPatience = earlyStopping
        options.monitor = monitor
        options.tensorboardDirectory = tensorboard
        options.accumulationSteps = accumulate
        try runReportingErrors {
            if let resume {
                let checkpoint = (resume as NSString).appendingPathComponent(Trainer.lastCheckpointName)
                guard FileManager.default.fileExists(atPath: checkpoint) else {
                    throw TrainingError.badModelFile(path: checkpoint, reason: "no checkpoint to resume from")
                }
                options = try Checkpoint.readMetadata(checkpoint).0
                options.outputDirectory = resume
            }
            let trainer = try Trainer(options: options, progress: ProgressReporter(quiet: quiet))
            trainer.killAfterStep = killAfterStep
            let result = try trainer.fit(resume: resume != nil)
            if KernelProfile.enabled { FileHandle.standardError.write(Data((KernelProfile.summary() + "\n").utf8)) }
            if json {
                printJSON(try result.report.jsonData())
            } else {
                print(result.report.textSummary())
                let seconds = result.history.reduce(0) { $0 + $1.seconds }
                print(String(format: "trained %d epochs in %.1f s (%.1f s per epoch)", result.history.count, seconds,
                             seconds / Double(max(result.history.count, 1))))
                for file in result.files { print("wrote \(file)") }
            }
        }
    }
}
