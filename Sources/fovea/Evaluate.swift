import ArgumentParser
import Foundation
import FoveaData
import FoveaTensor
import FoveaTrain

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate saved weights on a dataset's test split and print the report.",
        discussion: "A model trained on some of a dataset's classes (train --classes) is evaluated on the samples of those classes.")

    @Option(help: "A model.safetensors written by `fovea train` (its sidecar model.json must be beside it), or an .onnx model.") var weights: String
    @Option(help: "Dataset: mnist, fashion-mnist, cifar10 or cifar100.") var dataset = "fashion-mnist"
    @Option(name: .customLong("data-dir"), help: "Folder holding the dataset's files.") var dataDir: String?
    @Option(help: "Which split to evaluate: test or train.") var split = "test"
    @Option(name: .customLong("batch-size"), help: "Evaluation batch size.") var batchSize = 1000
    @Option(help: "Also write the report to this JSON file.") var output: String?
    @Option(help: ArgumentHelp("Arithmetic of convolutions and fully connected layers: fp32, bf16 (mixed precision) or int8 (a quantized model; its default).",
                               valueName: "fp32|bf16|int8"))
    var precision: Precision?
    @Flag(help: "Print the report as JSON on stdout.") var json = false

    func run() throws {
        try runReportingErrors {
            guard let which = IDXDataset.Split(rawValue: split) else {
                throw TrainingError.invalidOption("--split must be test or train (got \(split))")
            }
            if let problem = TrainingOptions.outOfRange("--batch-size", batchSize, 1...TrainingOptions.maximumBatchSize) {
                throw TrainingError.invalidOption(problem)
            }
            let (model, sidecar) = try ModelFile.loadAny(weights, warn: warn)
            let set = try Self.imageSet(for: sidecar, weights: weights, dataset: dataset, dataDir: dataDir, split: which)
            let report = try Precision.run(try precision.forModel(sidecar, weights: weights)) {
                try evaluate(model: model, on: set, batchSize: batchSize, split: split)
            }
            if let output { try writeAtomically(report.jsonData(), to: output) }
            if json { printJSON(try report.jsonData()) } else { print(report.textSummary()) }
        }
    }

    /// The `split` of `dataset` as the model of `weights` sees it: its classes (a model trained on some of a dataset's
    /// classes gets the samples of those, found by name), its input shape and its normalisation; an error names what
    /// disagrees. Shared with `fovea quantize`, which calibrates on the training split.
    static func imageSet(for sidecar: ModelSidecar, weights: String, dataset: String, dataDir: String?,
                         split: IDXDataset.Split) throws -> ImageClassificationSet {
        if dataset == "imagefolder" {
            guard let dataDir else { throw TrainingError.invalidOption("--dataset imagefolder needs --data-dir") }
            let validation = (dataDir as NSString).appendingPathComponent(split == .train ? "train" : "val")
            var folder = try ImageFolder(root: FileManager.default.fileExists(atPath: validation) ? validation : dataDir)
            // A model trained on some of the classes (--classes) is evaluated on those.
            if folder.classNames != sidecar.classes, let selection = try? ClassSelection(sidecar.classes, classNames: folder.classNames),
               selection.names == sidecar.classes {
                folder = folder.subset(try selectSamples(labels: folder.samples.map(\.label), selection: selection,
                                                         limitPerClass: nil, seed: 0), classNames: selection.names)
            }
            guard folder.classNames == sidecar.classes else {
                throw TrainingError.badModelFile(path: weights, reason: "the model's classes differ from the folders in \(folder.root)")
            }
            let size = sidecar.inputShape.last ?? 224
            return ImageClassificationSet(folder: folder, transforms: ImageClassificationSet.evaluationTransforms(size: size),
                                          shape: sidecar.inputShape, info: .imageFolder(classNames: folder.classNames, size: size),
                                          mean: sidecar.mean, std: sidecar.std)
        } else {
            var info = try DatasetInfo.named(dataset)
            var data = try loadImages(info, directory: info.resolveDirectory(dataDirectory: dataDir), split: split)
            // A model trained on some of the classes (--classes) is evaluated on those, found by name.
            let names = (data as? CIFARDataset)?.classNames ?? info.classNames
            if sidecar.classes.count != info.classCount, let selection = try? ClassSelection(sidecar.classes, classNames: names),
               selection.names == sidecar.classes {
                let samples = try selectSamples(labels: data.labels, selection: selection, limitPerClass: nil, seed: 0)
                data = LabeledImageSubset(data, samples: samples, classCount: selection.labels.count)
                info = info.renamingClasses(selection.names)
            }
            guard info.classCount == sidecar.classes.count else {
                throw TrainingError.badModelFile(path: weights, reason:
                    "the model has \(sidecar.classes.count) classes, dataset \(info.name) has \(info.classCount)")
            }
            guard [data.channels, data.height, data.width] == sidecar.inputShape else {
                throw TrainingError.badModelFile(path: weights, reason:
                    "the model takes \(sidecar.inputShape) images, \(info.name) has \([data.channels, data.height, data.width])")
            }
            if sidecar.classes.count == info.classCount { info = info.renamingClasses(sidecar.classes) }
            return ImageClassificationSet(images: data, info: info, mean: sidecar.mean, std: sidecar.std)
        }
    }
}
