import ArgumentParser
import Foundation
import FoveaData
import FoveaModels
import FoveaTensor
import FoveaTrain

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images (JPEG or PNG) with saved weights and print the top classes with probabilities.",
        discussion: """
            Each image is decoded, converted to the model's channels, resized (bilinear, antialiased) to the model's
            input size and normalised with the mean and standard deviation recorded in the weights' sidecar.

            --explain DIR also writes, per image, its Grad-CAM explanation of the top class (or of --explain-class):
            DIR/NAME.gradcam.png, the heat map over the image, and DIR/NAME.gradcam.json, the map as numbers. The map
            comes from the last convolutional feature map, the one the network pools or flattens before its classifier.
            """)

    @Option(help: "A model.safetensors written by `fovea train` (its sidecar must be beside it), or an .onnx model.") var weights: String
    @Option(name: .customLong("top-k"), help: "How many classes to print per image.") var topK = 5
    @Flag(help: "One JSON object per image.") var json = false
    @Flag(help: "Print each image's penultimate-layer embedding instead of classes (zoo models).") var features = false
    @Option(help: ArgumentHelp("With --features: write the embeddings to FILE as a float32 .npy array (images × features).",
                               valueName: "FILE"))
    var npy: String?
    @Option(help: ArgumentHelp("Write each image's Grad-CAM overlay (PNG) and heat map (JSON) into DIR.", valueName: "DIR"))
    var explain: String?
    @Option(name: .customLong("explain-class"),
            help: ArgumentHelp("With --explain: explain this class (index or name) instead of each image's top class.", valueName: "CLASS"))
    var explainClass: String?
    @Option(help: ArgumentHelp("Arithmetic of convolutions and fully connected layers: fp32, bf16 (mixed precision) or int8 (a quantized model; its default).",
                               valueName: "fp32|bf16|int8"))
    var precision: Precision?
    @Argument(help: "Image files.") var images: [String]

    func run() throws {
        try runReportingErrors { try predict() }
    }

    private func predict() throws {
        do {
            guard topK >= 1 else { throw TrainingError.invalidOption("--top-k must be at least 1") }
            guard !images.isEmpty else { throw TrainingError.invalidOption("give at least one image") }
            if explainClass != nil && explain == nil { throw TrainingError.invalidOption("--explain-class needs --explain DIR") }
            if explain != nil && (features || npy != nil) { throw TrainingError.invalidOption("--explain does not go with --features") }
            let classifier = try ImageClassifier(weights: weights, warn: warn)
            classifier.precision = try precision.forModel(classifier.sidecar, weights: weights)
            let wantedClass = try explainClass.map { try classIndex($0, in: classifier.sidecar.classes) }
            let prepared = try images.map { try classifier.prepare(path: $0) }
            if features || npy != nil {
                try Precision.run(classifier.precision) { try printFeatures(classifier, prepared) }
                return
            }
            let results = try classifier.classify(prepared, names: images)
            var explanations: [String?] = Array(repeating: nil, count: images.count)
            if let explain {
                try FileManager.default.createDirectory(atPath: explain, withIntermediateDirectories: true)
                let maps = try classifier.explain(prepared, classes: Array(repeating: wantedClass, count: prepared.count))
                var used: Set<String> = []
                for (row, (path, explanation)) in zip(images, maps).enumerated() {
                    // Two inputs of the same file name (from different folders) get numbered outputs, never one file.
                    var stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
                    if !used.insert(stem).inserted { stem += "-\(row)"; used.insert(stem) }
                    let png = explain + "/" + stem + ".gradcam.png"
                    try writeAtomically(Data(explanation.overlayPNG()), to: png)
                    var object = explanation.jsonObject
                    object["image"] = path
                    object["class"] = classifier.sidecar.classes[explanation.map.classIndex]
                    try writeAtomically(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]),
                                        to: explain + "/" + stem + ".gradcam.json")
                    explanations[row] = png
                }
            }
            let classes = classifier.sidecar.classes
            for (row, path) in images.enumerated() {
                let top = results[row].top(min(topK, classes.count))
                if json {
                    var object: [String: Any] = ["image": path, "top": top.map {
                        ["class": classes[$0.index], "index": $0.index, "probability": Double($0.probability)]
                    }]
                    if let png = explanations[row] { object["explanation"] = png }
                    printJSON(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
                } else {
                    print(path)
                    for entry in top { print(String(format: "  %6.2f %%  %@", Double(entry.probability) * 100, classes[entry.index])) }
                    if let png = explanations[row] { print("  Grad-CAM: \(png)") }
                }
            }
        }
    }

    private func printFeatures(_ classifier: ImageClassifier, _ prepared: [PreparedImage]) throws {
        guard let structure = classifier.model as? any ClassifierStructure else {
            throw TrainingError.invalidOption("--features needs a zoo model's weights (its classifier is known); \(weights) is an imported graph")
        }
        let embedding = try structure.features(of: classifier.batch(prepared))
        let values = try embedding.toArray()
        if let index = values.firstIndex(where: { !$0.isFinite }) {
            throw TrainingError.nonFiniteOutput(input: "'\(images[index / embedding.shape[1]])' with the weights '\(weights)'",
                                                value: values[index])
        }
        if let npy {
            try writeAtomically(NumPyArray.encode(values, shape: embedding.shape), to: npy)
            print("wrote \(npy) (\(embedding.shape[0]) × \(embedding.shape[1]) float32)")
            return
        }
        let width = embedding.shape[1]
        for (row, path) in images.enumerated() {
            let object: [String: Any] = ["image": path, "features": values[(row * width)..<((row + 1) * width)].map(Double.init)]
            printJSON(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
        }
    }
}

/// A class given by name or index (`ClassSelection.index(of:in:)`), for the model's class names.
func classIndex(_ text: String, in classes: [String]) throws -> Int {
    if let index = ClassSelection.index(of: text, in: classes) { return index }
    if let index = Int(text) {
        throw TrainingError.invalidOption("class \(index) does not exist: the model has \(classes.count) classes (0…\(classes.count - 1))")
    }
    throw TrainingError.invalidOption("no class is named '\(text)'; the model's classes are \(classes.joined(separator: ", "))")
}
