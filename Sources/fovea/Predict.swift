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
            """)

    @Option(help: "A model.safetensors written by `fovea train` (its sidecar must be beside it), or an .onnx model.") var weights: String
    @Option(name: .customLong("top-k"), help: "How many classes to print per image.") var topK = 5
    @Flag(help: "One JSON object per image.") var json = false
    @Flag(help: "Print each image's penultimate-layer embedding instead of classes (zoo models).") var features = false
    @Option(help: ArgumentHelp("With --features: write the embeddings to FILE as a float32 .npy array (images × features).",
                               valueName: "FILE"))
    var npy: String?
    @Argument(help: "Image files.") var images: [String]

    func run() throws {
        try runReportingErrors {
            guard topK >= 1 else { throw TrainingError.invalidOption("--top-k must be at least 1") }
            guard !images.isEmpty else { throw TrainingError.invalidOption("give at least one image") }
            let (model, sidecar) = try ModelFile.loadAny(weights, warn: warn)
            let shape = sidecar.inputShape
            guard shape.count == 3 else { throw TrainingError.badModelFile(path: weights, reason: "sidecar input_shape must be [C, H, W]") }
            let (channels, height, width) = (shape[0], shape[1], shape[2])
            var batch: [Float] = []
            for path in images {
                let image = Resize.bilinear(try ImageDecoder.decode(path: path, channels: channels == 1 ? 1 : 3),
                                            height: height, width: width)
                let plane = height * width
                for c in 0..<channels {
                    let mean = sidecar.mean[min(c, sidecar.mean.count - 1)], std = sidecar.std[min(c, sidecar.std.count - 1)]
                    for i in 0..<plane { batch.append((Float(image.pixels[c * plane + i]) / 255 - mean) / std) }
                }
            }
            let input = try Tensor(shape: [images.count, channels, height, width], values: batch)
            if features || npy != nil {
                guard let classifier = model as? any ClassifierStructure else {
                    throw TrainingError.invalidOption("--features needs a zoo model's weights (its classifier is known); \(weights) is an imported graph")
                }
                let embedding = try classifier.features(of: input)
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
                return
            }
            model.eval()
            let probabilities = try Autodiff.withoutRecording {
                try softmax(model(input)).toArray()
            }
            let classCount = sidecar.classes.count
            if let index = probabilities.firstIndex(where: { !$0.isFinite }) {
                throw TrainingError.nonFiniteOutput(input: "'\(images[index / classCount])' with the weights '\(weights)'",
                                                    value: probabilities[index])
            }
            for (row, path) in images.enumerated() {
                let scores = Array(probabilities[(row * classCount)..<((row + 1) * classCount)])
                let top = scores.enumerated().sorted { $0.element > $1.element }.prefix(min(topK, classCount))
                if json {
                    let object: [String: Any] = ["image": path, "top": top.map {
                        ["class": sidecar.classes[$0.offset], "index": $0.offset, "probability": Double($0.element)]
                    }]
                    printJSON(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
                } else {
                    print(path)
                    for entry in top { print(String(format: "  %6.2f %%  %@", Double(entry.element) * 100, sidecar.classes[entry.offset])) }
                }
            }
        }
    }
}
