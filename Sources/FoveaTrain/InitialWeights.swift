import Foundation
import FoveaData
import FoveaModels
import FoveaNN
import FoveaOptim
import FoveaTensor

/// Trained weights to start a run from (`fovea train --init-from FILE`): a Fovea `model.safetensors` with its sidecar,
/// a torchvision state dict saved as safetensors (no sidecar), a Fovea checkpoint, or an `.onnx` file whose
/// initializers carry state-dict names (Fovea's export without `--fold-batch-norm`).
public struct InitialWeights {
    /// The file read.
    public let path: String
    /// Its tensors by state-dict key.
    public let tensors: [String: SafeTensors.Entry]
    /// The zoo architecture the file says it holds, when it says (sidecar, checkpoint options, ONNX metadata).
    public let architecture: String?
    /// The class names of its head, when known.
    public let classes: [String]?
    /// The normalisation its weights were trained with, when known: a fine-tuning run feeds its images the same way.
    public let mean: [Float]?, std: [Float]?
    /// What kind of file it was, for messages.
    public let kind: String

    /// Reads `path`; every check of its kind of file applies (digest, header, sidecar fields, ONNX import).
    public static func read(_ path: String) throws -> InitialWeights {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingError.badModelFile(path: path, reason: "--init-from: no such file")
        }
        if ModelFile.isONNX(path) {
            let (model, sidecar) = try ModelFile.loadONNX(path)
            var tensors: [String: SafeTensors.Entry] = [:]
            for (name, tensor) in model.stateEntries() {
                tensors[name] = SafeTensors.Entry(name: name, shape: tensor.shape, values: try tensor.toArray())
            }
            let zoo = ModelZoo.names.contains(sidecar.architecture) ? sidecar.architecture : nil
            return InitialWeights(path: path, tensors: tensors, architecture: zoo, classes: sidecar.classes,
                                  mean: sidecar.mean, std: sidecar.std, kind: "ONNX model")
        }
        let file = try SafeTensors.read(path: path)
        if file.metadata[Checkpoint.metadataKey] != nil {
            let (options, _) = try Checkpoint.readMetadata(path)
            var tensors: [String: SafeTensors.Entry] = [:]
            for (name, entry) in file.entries where name.hasPrefix("model/") { tensors[String(name.dropFirst(6))] = entry }
            return InitialWeights(path: path, tensors: tensors, architecture: options.model,
                                  classes: try? checkpointClasses(options), mean: nil, std: nil, kind: "checkpoint")
        }
        if FileManager.default.fileExists(atPath: ModelFile.sidecarPath(for: path)) {
            let sidecar = try ModelFile.readSidecar(for: path)
            return InitialWeights(path: path, tensors: file.entries, architecture: sidecar.architecture, classes: sidecar.classes,
                                  mean: sidecar.mean, std: sidecar.std, kind: "Fovea model")
        }
        return InitialWeights(path: path, tensors: file.entries, architecture: file.metadata["architecture"], classes: nil,
                              mean: nil, std: nil, kind: "state dict")
    }

    /// The class names a checkpoint's run trained on: its dataset's, after its `--classes`.
    static func checkpointClasses(_ options: TrainingOptions) throws -> [String]? {
        guard options.dataset != "imagefolder" else { return nil }
        let names = try DatasetInfo.named(options.dataset).classNames
        return try options.classes.map { try ClassSelection($0, classNames: names).names } ?? names
    }

    /// Refuses a file that says it holds another architecture than `modelArchitecture` (a file that does not say is
    /// judged by its keys in `apply`).
    public func checkArchitecture(_ modelArchitecture: String) throws {
        if let architecture, architecture != modelArchitecture {
            throw TrainingError.badModelFile(path: path, reason:
                "--init-from holds a \(architecture) (\(kind)), but the run builds --model \(modelArchitecture)")
        }
    }

    /// What `apply` did, tensor by tensor.
    public struct Summary: Equatable, Sendable {
        /// Tensors copied from the file.
        public var loaded: [String] = []
        /// Head tensors of the model initialised afresh (the class count or the classes differ).
        public var replaced: [String] = []
        /// Tensors of the file not used (its old head; an ONNX graph's constants).
        public var leftOut: [String] = []
        /// Batch-norm step counters the file does not carry (ONNX), kept at zero.
        public var kept: [String] = []

        /// One paragraph for the run's log.
        public func describe(_ path: String) -> String {
            func list(_ names: [String]) -> String {
                names.isEmpty ? "none" : names.prefix(6).joined(separator: ", ") + (names.count > 6 ? ", … (\(names.count))" : "")
            }
            var text = "--init-from \(path): loaded \(loaded.count) tensors; replaced \(replaced.count) (\(list(replaced)))"
            text += "; left out \(leftOut.count) (\(list(leftOut)))"
            if !kept.isEmpty { text += "; \(kept.count) batch-norm counters not in the file start at 0" }
            return text
        }
    }

    /// Copies the weights into `model` (a zoo `architecture` built for `classes`), strictly as `load(safetensors:)` does
    /// except for the head: when the file's head has another class count, or `newHead` asks, the head keeps the fresh
    /// initialisation the model was built with. Class names that differ at an equal count are an error unless `newHead`
    /// (the head would answer with the wrong names). Nothing is changed when anything disagrees.
    public func apply(to model: Layer, architecture modelArchitecture: String, classes datasetClasses: [String],
                      newHead: Bool) throws -> Summary {
        func bad(_ reason: String) -> TrainingError { .badModelFile(path: path, reason: reason) }
        try checkArchitecture(modelArchitecture)
        guard let structure = model as? any ClassifierStructure, let mainHead = structure.headPaths.first else {
            throw bad("cannot identify the classifier of --model \(modelArchitecture), so its head cannot be replaced")
        }
        let headWeight = mainHead + ".weight"
        guard let fileHead = tensors[headWeight] else {
            throw bad("cannot identify the classifier: the file has no \(headWeight), the head of \(modelArchitecture) "
                + "(is it another architecture, or an ONNX export with --fold-batch-norm?)")
        }
        let modelHead = model.namedParameters().first { $0.0 == headWeight }?.1.value.shape ?? []
        var replaceHead = newHead
        if fileHead.shape.count == 2, modelHead.count == 2, fileHead.shape[1] == modelHead[1], fileHead.shape[0] != modelHead[0] {
            replaceHead = true
        }
        if !replaceHead, let classes, classes != datasetClasses {
            let differing = zip(classes, datasetClasses).enumerated().first { $0.element.0 != $0.element.1 }
            let detail = differing.map { "class \($0.offset) is '\($0.element.0)' in the file and '\($0.element.1)' in the dataset" }
                ?? "the file has \(classes.count) classes, the dataset \(datasetClasses.count)"
            throw bad("the file's class names disagree with the dataset's (\(detail)); pass --new-head to train a new classifier")
        }
        let onnx = kind == "ONNX model"
        var exceptions = ModelFile.AssignmentExceptions()
        if replaceHead { exceptions.keepsModelValue = structure.isHeadKey }
        // ONNX does not carry batch-norm step counters, and a graph holds constants of its own (a shortcut's channel
        // selection, shape tensors) that are not state.
        exceptions.mayBeMissing = { onnx && $0.hasSuffix(".num_batches_tracked") }
        exceptions.mayBeUnused = { (replaceHead && structure.isHeadKey($0)) || onnx }
        let assignment = try ModelFile.assign(tensors, to: model, path: path, target: modelArchitecture, except: exceptions)
        return Summary(loaded: assignment.loaded, replaced: assignment.keptModelValues, leftOut: assignment.unused,
                       kept: assignment.missing)
    }
}

/// Which parameters a phase of a run trains, and at which rate, from `--freeze`, `--fine-tune` and the learning-rate
/// flags: what `Trainer` applies at the start of every epoch (and so after a resume).
public struct ParameterSchedule: Equatable, Sendable {
    /// Per parameter (in `namedParameters()` order): frozen or not, and its learning-rate factor.
    public var frozen: [Bool]
    public var scales: [Float]

    /// The plan for `epoch` of a run with `options` over `model`.
    ///
    /// `--fine-tune E1,E2` (fastai's `fine_tune`): epochs 1…E1 train the head alone at the base rate; epochs after E1
    /// train everything (but what `--freeze` still freezes) at half the base rate, stage s of S (stem 0) at
    /// 1/R^((S−s)/S) of it, R = `--discriminative-lr-ratio`, the head at the full half. Without it, `--freeze` holds
    /// for the whole run. `--head-lr-multiplier` multiplies the head's factor in every phase.
    public static func plan(for epoch: Int, options: TrainingOptions, model: Layer) throws -> ParameterSchedule {
        let names = model.namedParameters().map(\.0)
        let (frozen, scales) = (names.map { _ in false }, names.map { _ in Float(1) })
        var plan = ParameterSchedule(frozen: frozen, scales: scales)
        let policy = try FreezePolicy(options.freeze)
        let phaseOne = options.fineTune.map { epoch <= $0[0] } ?? false
        guard policy != .none || phaseOne || options.fineTune != nil || options.headLearningRateMultiplier != 1 else {
            return plan
        }
        guard let structure = model as? any ClassifierStructure else {
            throw TrainingError.invalidOption("--freeze, --fine-tune and --head-lr-multiplier need a zoo model (its head and stages)")
        }
        let stageCount = structure.stagePaths.count
        for (index, name) in names.enumerated() {
            let stage = structure.stageIndex(of: name)
            if phaseOne {
                plan.frozen[index] = stage != nil
            } else {
                switch policy {
                case .none: break
                case .backbone: plan.frozen[index] = stage != nil
                case let .stages(count): plan.frozen[index] = stage.map { $0 < count } ?? false
                }
            }
            var scale: Float = 1
            if options.fineTune != nil && !phaseOne {
                scale = 0.5
                if let stage, options.discriminativeRatio != 1 {
                    scale *= powf(options.discriminativeRatio, -Float(stageCount - stage) / Float(stageCount))
                }
            }
            if stage == nil { scale *= options.headLearningRateMultiplier }
            plan.scales[index] = scale
        }
        return plan
    }

    /// Sets every parameter's `isFrozen`, the optimizer's factors, and — with `--freeze-batch-norm` — evaluation mode
    /// for batch norms whose scale and shift are frozen (call after `model.train()`).
    func apply(to model: Layer, optimizer: Optimizer, freezeBatchNorm: Bool) {
        let parameters = model.parameters()
        for (index, parameter) in parameters.enumerated() { parameter.isFrozen = frozen[index] }
        let position = Dictionary(parameters.enumerated().map { (ObjectIdentifier($0.element), $0.offset) }) { first, _ in first }
        optimizer.learningRateScales = optimizer.parameters.map { position[ObjectIdentifier($0)].map { scales[$0] } ?? 1 }
        guard freezeBatchNorm else { return }
        for (_, layer) in model.namedLayers() {
            if let norm = layer as? BatchNorm2D, norm.weight.isFrozen { norm.isTraining = false }
        }
    }
}

/// `--freeze`: nothing, the whole trunk (all but the head), or the first N stages (the stem being the first).
public enum FreezePolicy: Equatable, Sendable {
    case none, backbone, stages(Int)

    /// Parses `none`, `backbone` or `stages:N` (N ≥ 1).
    public init(_ text: String) throws {
        switch text {
        case "none": self = .none
        case "backbone": self = .backbone
        default:
            guard text.hasPrefix("stages:"), let count = Int(text.dropFirst(7)), count >= 1 else {
                throw TrainingError.invalidOption("--freeze must be none, backbone or stages:N with N ≥ 1 (got '\(text.prefix(40))')")
            }
            self = .stages(count)
        }
    }
}
