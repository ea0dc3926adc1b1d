import ArgumentParser
import Foundation
import FoveaTensor
import FoveaTrain

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model from the zoo on a dataset and write metrics, report and weights.",
        discussion: """
            Writes DIR/metrics.jsonl (one JSON object per epoch), DIR/report.json (test-set report) and
            DIR/model.safetensors with its sidecar DIR/model.json when --output DIR is given.
            """)

    @Option(help: "Architecture name (see `fovea models`).") var model = "lenet5"
    @Option(help: "Dataset: mnist or fashion-mnist.") var dataset = "fashion-mnist"
    @Option(name: .customLong("data-dir"), help: "Folder holding the dataset's files.") var dataDir: String?
    @Option(help: "Number of passes over the training set.") var epochs = 10
    @Option(name: .customLong("batch-size"), help: "Training mini-batch size.") var batchSize = 128
    @Option(help: "Optimizer: sgd.") var optimizer = "sgd"
    @Option(help: "Base learning rate.") var lr: Float = 0.05
    @Option(help: "SGD momentum.") var momentum: Float = 0.9
    @Flag(help: "Use Nesterov momentum.") var nesterov = false
    @Option(name: .customLong("weight-decay"), help: "L2 weight decay (added to the gradient).") var weightDecay: Float = 5e-4
    @Option(help: "Learning-rate schedule, stepped every iteration: constant, step or cosine.") var schedule = "cosine"
    @Option(name: .customLong("step-epochs"), help: "For --schedule step: epochs between decays.") var stepEpochs = 30
    @Option(name: .customLong("step-gamma"), help: "For --schedule step: decay factor.") var stepGamma: Float = 0.1
    @Option(name: .customLong("label-smoothing"), help: "Label smoothing ε for the cross-entropy loss.") var labelSmoothing: Float = 0
    @Option(help: "Seed for initialisation and shuffling; the same seed gives the same run.") var seed: UInt64 = 0
    @Option(name: .customLong("limit-train"), help: "Train on the first N training samples only.") var limitTrain: Int?
    @Option(name: .customLong("limit-test"), help: "Evaluate on the first N test samples only.") var limitTest: Int?
    @Option(help: "Directory for metrics.jsonl, report.json and model.safetensors.") var output: String?
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
        options.stepGamma = stepGamma
        options.labelSmoothing = labelSmoothing
        options.seed = seed
        options.limitTrain = limitTrain
        options.limitTest = limitTest
        options.outputDirectory = output
        try runReportingErrors {
            let trainer = try Trainer(options: options, progress: ProgressReporter(quiet: quiet))
            let result = try trainer.fit()
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
