import Foundation
import FoveaData
import FoveaNN
import FoveaTensor

/// An image brought to a model's input: the decoded image resized to (H, W) and its normalised C×H×W floats.
public struct PreparedImage: Sendable {
    /// The resized 8-bit image (what Grad-CAM overlays are drawn on).
    public var image: DecodedImage
    /// C×H×W floats, normalised with the model's mean and standard deviation.
    public var input: [Float]
}

/// One image's classification: a probability per class, in class order.
public struct Classification: Sendable {
    public var probabilities: [Float]

    public init(probabilities: [Float]) { self.probabilities = probabilities }

    /// The `k` most probable classes (index, probability), most probable first; ties keep class order.
    public func top(_ k: Int) -> [(index: Int, probability: Float)] {
        probabilities.enumerated().sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }
            .prefix(max(0, k)).map { ($0.offset, $0.element) }
    }
}

/// A trained classifier ready for inference: the model of a weights file (Fovea safetensors + sidecar, or ONNX), the
/// preprocessing its sidecar records (decode to its channels, bilinear antialiased resize to its input size, scale to
/// [0, 1], normalise), batched classification and Grad-CAM explanations. Used by `fovea predict` and `fovea serve`.
///
/// Not thread-safe: one thread at a time may run the model (the server keeps it on its batching thread). Preparing
/// images (`prepare`) touches no model state and may run on any thread.
public final class ImageClassifier: @unchecked Sendable {
    public let model: Layer
    public let sidecar: ModelSidecar
    /// The weights file it was loaded from.
    public let path: String
    /// (C, H, W) of the model's input.
    public let channels: Int, height: Int, width: Int
    /// The precision classification runs in: int8 for a quantized model (its sidecar has `quantization`), else fp32; set
    /// it to compare (e.g. a quantized model in fp32). Grad-CAM explanations run in fp32.
    public var precision: Precision

    /// Loads the model of `weights` (see `ModelFile.loadAny`) in evaluation mode.
    public convenience init(weights: String, warn: (String) -> Void = { _ in }) throws {
        let (model, sidecar) = try ModelFile.loadAny(weights, warn: warn)
        try self.init(model: model, sidecar: sidecar, path: weights)
    }

    /// Wraps a model and the sidecar that describes its input.
    public init(model: Layer, sidecar: ModelSidecar, path: String) throws {
        guard sidecar.inputShape.count == 3 else {
            throw TrainingError.badModelFile(path: path, reason: "sidecar input_shape must be [C, H, W]")
        }
        (self.model, self.sidecar, self.path) = (model, sidecar, path)
        (channels, height, width) = (sidecar.inputShape[0], sidecar.inputShape[1], sidecar.inputShape[2])
        precision = sidecar.quantization == nil ? .fp32 : Precision.int8.resolved().precision
        model.eval()
    }

    /// Number of classes.
    public var classCount: Int { sidecar.classes.count }

    /// Decodes a JPEG or PNG (chosen by its first bytes) and prepares it; `name` names it in errors.
    public func prepare(bytes: [UInt8], name: String, pixelLimit: Int = ImageDecoder.defaultPixelLimit) throws -> PreparedImage {
        prepare(try ImageDecoder.decode(bytes, path: name, channels: channels == 1 ? 1 : 3, pixelLimit: pixelLimit))
    }

    /// Reads, decodes and prepares the image file at `path`.
    public func prepare(path: String, pixelLimit: Int = ImageDecoder.defaultPixelLimit) throws -> PreparedImage {
        prepare(try ImageDecoder.decode(path: path, channels: channels == 1 ? 1 : 3, pixelLimit: pixelLimit))
    }

    /// Brings a decoded image (grey or RGB, converted to the model's channels) to the model's input.
    public func prepare(_ decoded: DecodedImage) -> PreparedImage {
        var decoded = decoded
        if decoded.channels != channels { decoded = Self.convert(decoded, to: channels) }
        let image = decoded.height == height && decoded.width == width ? decoded : Resize.bilinear(decoded, height: height, width: width)
        let plane = height * width
        var input = [Float](repeating: 0, count: channels * plane)
        for c in 0..<channels {
            let mean = sidecar.mean[min(c, sidecar.mean.count - 1)], std = sidecar.std[min(c, sidecar.std.count - 1)]
            let table = (0..<256).map { (Float($0) / 255 - mean) / std }
            for i in 0..<plane { input[c * plane + i] = table[Int(image.pixels[c * plane + i])] }
        }
        return PreparedImage(image: image, input: input)
    }

    /// Grey ↔ RGB (ITU-R 601 luma, as PIL's `convert("L")`).
    static func convert(_ image: DecodedImage, to channels: Int) -> DecodedImage {
        let plane = image.height * image.width
        if channels == 1 {
            var grey = [UInt8](repeating: 0, count: plane)
            for i in 0..<plane {
                let (r, g, b) = (Int(image.pixels[i]), Int(image.pixels[plane + i]), Int(image.pixels[2 * plane + i]))
                grey[i] = UInt8((r * 299 + g * 587 + b * 114 + 500) / 1000)
            }
            return DecodedImage(channels: 1, height: image.height, width: image.width, pixels: grey)
        }
        return DecodedImage(channels: 3, height: image.height, width: image.width,
                            pixels: Array(image.pixels.prefix(plane)) + Array(image.pixels.prefix(plane)) + Array(image.pixels.prefix(plane)))
    }

    /// The input tensor (N, C, H, W) of prepared images.
    public func batch(_ images: [PreparedImage]) throws -> Tensor {
        var values: [Float] = []
        values.reserveCapacity(images.count * channels * height * width)
        for image in images { values += image.input }
        return try Tensor(shape: [images.count, channels, height, width], values: values)
    }

    /// Classifies a batch in one run of the model (evaluation mode, no tape). Throws `TrainingError.nonFiniteOutput`
    /// naming the image (by `names`, or its position) whose probabilities are not finite.
    public func classify(_ images: [PreparedImage], names: [String]? = nil) throws -> [Classification] {
        try probabilities(images).enumerated().map { row, probabilities in
            if let value = probabilities.first(where: { !$0.isFinite }) {
                throw TrainingError.nonFiniteOutput(input: "'\(names?[row] ?? "image \(row)")' with the weights '\(path)'", value: value)
            }
            return Classification(probabilities: probabilities)
        }
    }

    /// Each image's softmax probabilities from one run of the model, unchecked (a row may hold NaN).
    public func probabilities(_ images: [PreparedImage]) throws -> [[Float]] {
        guard !images.isEmpty else { return [] }
        model.eval()
        let probabilities = try Precision.run(precision) {
            try Autodiff.withoutRecording { try softmax(model(batch(images))).toArray() }
        }
        let k = classCount
        guard probabilities.count == images.count * k else {
            throw TrainingError.badModelFile(path: path, reason: "the model gives \(probabilities.count / max(images.count, 1)) "
                                             + "outputs per image, its sidecar names \(k) classes")
        }
        return (0..<images.count).map { Array(probabilities[($0 * k)..<(($0 + 1) * k)]) }
    }

    /// Grad-CAM explanations of a batch, for `classes[i]` of image i or, where nil, its most probable class.
    public func explain(_ images: [PreparedImage], classes: [Int?]? = nil) throws -> [Explanation] {
        guard !images.isEmpty else { return [] }
        let wanted = classes ?? Array(repeating: nil, count: images.count)
        for case let index? in wanted where !(0..<classCount).contains(index) {
            throw TrainingError.invalidOption("class \(index) does not exist: the model has \(classCount) classes (0…\(classCount - 1))")
        }
        return try GradCAM.explain(model: model, input: batch(images), classes: wanted).enumerated().map { offset, map in
            Explanation(map: map, image: images[offset].image)
        }
    }
}

/// A Grad-CAM heat map together with the image it explains.
public struct Explanation: Sendable {
    public var map: GradCAM.Map
    /// The model-sized image the map is drawn over.
    public var image: DecodedImage

    /// The overlay as PNG: the image in grey with the heat map blended over it in a blue–red colour ramp, enlarged
    /// (pixels repeated, the map interpolated bilinearly) so that its longer side is at least `minimumSide`.
    public func overlayPNG(minimumSide: Int = 224) -> [UInt8] {
        let overlay = GradCAM.overlay(map, on: image, minimumSide: minimumSide)
        return PNGEncoder.encode(pixels: overlay.pixels, channels: 3, height: overlay.height, width: overlay.width)
    }

    /// The map as JSON-ready values: class, probability, size and the rows of the normalised map.
    public var jsonObject: [String: Any] {
        ["class_index": map.classIndex, "probability": Double(map.probability), "height": map.height, "width": map.width,
         "feature_map": map.featureShape, "heat_map": (0..<map.height).map { row in
             map.values[(row * map.width)..<((row + 1) * map.width)].map { (Double($0) * 1e4).rounded() / 1e4 }
         }]
    }
}
