import ArgumentParser
import Foundation
import FoveaData
import FoveaTrain

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate saved weights on a dataset's test split and print the report.")

    @Option(help: "A model.safetensors written by `fovea train` (its sidecar model.json must be beside it).") var weights: String
    @Option(help: "Dataset: mnist or fashion-mnist.") var dataset = "fashion-mnist"
    @Option(name: .customLong("data-dir"), help: "Folder holding the dataset's files.") var dataDir: String?
    @Option(help: "Which split to evaluate: test or train.") var split = "test"
    @Option(name: .customLong("batch-size"), help: "Evaluation batch size.") var batchSize = 1000
    @Option(help: "Also write the report to this JSON file.") var output: String?
    @Flag(help: "Print the report as JSON on stdout.") var json = false

    func run() throws {
        try runReportingErrors {
            guard let which = IDXDataset.Split(rawValue: split) else {
                throw TrainingError.invalidOption("--split must be test or train (got \(split))")
            }
            guard batchSize > 0 else { throw TrainingError.invalidOption("--batch-size must be at least 1") }
            let (model, sidecar) = try ModelFile.load(weights)
            let info = try DatasetInfo.named(dataset)
            guard info.classCount == sidecar.classes.count else {
                throw TrainingError.badModelFile(path: weights, reason:
                    "the model has \(sidecar.classes.count) classes, dataset \(info.name) has \(info.classCount)")
            }
            let data = try IDXDataset(dataset: info, split: which, dataDirectory: dataDir)
            let set = ImageClassificationSet(dataset: data, info: info, mean: sidecar.mean.first ?? 0, std: sidecar.std.first ?? 1)
            let report = try evaluate(model: model, on: set, batchSize: batchSize, split: split)
            if let output { try report.jsonData().write(to: URL(fileURLWithPath: output), options: .atomic) }
            if json { printJSON(try report.jsonData()) } else { print(report.textSummary()) }
        }
    }
}
