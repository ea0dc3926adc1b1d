import Foundation
import FoveaData
import FoveaNN
import FoveaTensor

/// Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class lies, from the model's last
/// convolutional feature map A (C maps of h×w) and the gradient of the class's logit y with respect to it:
/// αₖ = mean over positions of ∂y/∂Aₖ, heat = ReLU(Σₖ αₖ·Aₖ), normalised to [0, 1] by its largest value.
///
/// A is the map the network reduces to a vector before its classifier (global or adaptive average pooling, or
/// flattening; see `FeatureMapProbe`), so this works for every zoo model, for networks built from Fovea's layers
/// and for imported ONNX graphs. The gradient comes from the tape: one forward pass in evaluation mode with the
/// parameters held frozen (no tape above A, no parameter gradients), one backward pass seeded with the chosen class.
public enum GradCAM {
    /// One image's heat map.
    public struct Map: Sendable {
        /// The explained class and the probability the model gives it.
        public var classIndex: Int
        public var probability: Float
        /// Height × width of the feature map, row after row, in [0, 1] (all zero when no position has positive evidence).
        public var values: [Float]
        public var height: Int
        public var width: Int
        /// (C, h, w) of the feature map.
        public var featureShape: [Int]
    }

    /// Heat maps for each image of `input` (N, C, H, W), for `classes[i]` or, where nil, the most probable class.
    public static func explain(model: Layer, input: Tensor, classes: [Int?]) throws -> [Map] {
        let count = input.shape[0]
        guard classes.count == count else {
            throw TensorError.invalidArgument(operation: "Grad-CAM", message: "\(classes.count) classes for \(count) images")
        }
        model.eval()
        let parameters = model.parameters()
        let frozen = parameters.map(\.isFrozen)
        for parameter in parameters { parameter.isFrozen = true }
        defer { for (parameter, wasFrozen) in zip(parameters, frozen) { parameter.isFrozen = wasFrozen } }
        let (logits, probe) = try FeatureMapProbe.run { try model(input) }
        guard logits.shape.count == 2, logits.shape[0] == count else {
            throw TensorError.invalidArgument(operation: "Grad-CAM", message: "the model gives \(logits.shape), not (N, classes)")
        }
        guard let target = probe.target else {
            throw TensorError.invalidArgument(operation: "Grad-CAM", message:
                "\(type(of: model)) reduces no (N, C, H, W) feature map by pooling or flattening before its classifier")
        }
        let k = logits.shape[1]
        let scores = try logits.detached.toArray()
        var chosen: [Int] = [], probabilities: [Float] = []
        var seed = [Float](repeating: 0, count: count * k)
        for row in 0..<count {
            let rowScores = scores[(row * k)..<((row + 1) * k)]
            let best = rowScores.indices.max { rowScores[$0] < rowScores[$1] || (rowScores[$0] == rowScores[$1] && $0 > $1) }! - row * k
            let index = classes[row] ?? best
            guard (0..<k).contains(index) else {
                throw TensorError.invalidArgument(operation: "Grad-CAM", message: "class \(index) of \(k)")
            }
            let top = rowScores.max()!
            let total = rowScores.reduce(0.0) { $0 + exp(Double($1 - top)) }
            chosen.append(index)
            probabilities.append(Float(exp(Double(rowScores[row * k + index] - top)) / total))
            seed[row * k + index] = 1
        }
        // Logits that do not depend on the map (a model without parameters after it) leave its gradient zero.
        try logits.backward(seed: Tensor(shape: logits.shape, values: seed))
        let activations = try target.values.reordered(to: .plain).toArray()
        let gradients = try target.gradient.map { try $0.reordered(to: .plain).toArray() }
            ?? [Float](repeating: 0, count: activations.count)
        let (c, h, w) = (target.values.shape[1], target.values.shape[2], target.values.shape[3])
        let plane = h * w
        return (0..<count).map { n in
            var heat = [Double](repeating: 0, count: plane)
            for channel in 0..<c {
                let base = (n * c + channel) * plane
                var alpha = 0.0
                for i in 0..<plane { alpha += Double(gradients[base + i]) }
                alpha /= Double(plane)
                guard alpha != 0 else { continue }
                for i in 0..<plane { heat[i] += alpha * Double(activations[base + i]) }
            }
            let largest = heat.max() ?? 0
            let values = heat.map { largest > 0 && $0 > 0 ? Float($0 / largest) : 0 }
            return Map(classIndex: chosen[n], probability: probabilities[n], values: values, height: h, width: w,
                       featureShape: [c, h, w])
        }
    }

    /// The heat map interpolated bilinearly (half-pixel centres, as torch's `align_corners=False`) to height × width.
    public static func upsample(_ map: Map, height: Int, width: Int) -> [Float] {
        var result = [Float](repeating: 0, count: height * width)
        func source(_ i: Int, _ out: Int, _ size: Int) -> (Int, Int, Float) {
            let position = max(0, (Float(i) + 0.5) * Float(size) / Float(out) - 0.5)
            let low = min(Int(position), size - 1)
            return (low, min(low + 1, size - 1), position - Float(low))
        }
        for y in 0..<height {
            let (y0, y1, fy) = source(y, height, map.height)
            for x in 0..<width {
                let (x0, x1, fx) = source(x, width, map.width)
                let top = map.values[y0 * map.width + x0] * (1 - fx) + map.values[y0 * map.width + x1] * fx
                let bottom = map.values[y1 * map.width + x0] * (1 - fx) + map.values[y1 * map.width + x1] * fx
                result[y * width + x] = top * (1 - fy) + bottom * fy
            }
        }
        return result
    }

    /// A blue → cyan → yellow → red ramp ("jet") for t in [0, 1].
    static func color(_ t: Float) -> (Float, Float, Float) {
        func ramp(_ v: Float) -> Float { min(1, max(0, v)) }
        return (ramp(1.5 - abs(4 * t - 3)), ramp(1.5 - abs(4 * t - 2)), ramp(1.5 - abs(4 * t - 1)))
    }

    /// The image in grey, enlarged by a whole factor so that its longer side reaches `minimumSide`, with the heat map
    /// blended over it (half image, half colour); planar RGB bytes.
    public static func overlay(_ map: Map, on image: DecodedImage, minimumSide: Int = 224) -> DecodedImage {
        let factor = max(1, minimumSide / max(1, max(image.height, image.width)))
        let (height, width) = (image.height * factor, image.width * factor)
        let heat = upsample(map, height: height, width: width)
        let plane = image.height * image.width
        var pixels = [UInt8](repeating: 0, count: 3 * height * width)
        for y in 0..<height {
            for x in 0..<width {
                let source = (y / factor) * image.width + x / factor
                let grey: Float = image.channels == 3
                    ? (0.299 * Float(image.pixels[source]) + 0.587 * Float(image.pixels[plane + source])
                        + 0.114 * Float(image.pixels[2 * plane + source])) / 255
                    : Float(image.pixels[source]) / 255
                let (r, g, b) = color(heat[y * width + x])
                let i = y * width + x
                pixels[i] = UInt8((0.5 * grey + 0.5 * r) * 255 + 0.5)
                pixels[height * width + i] = UInt8((0.5 * grey + 0.5 * g) * 255 + 0.5)
                pixels[2 * height * width + i] = UInt8((0.5 * grey + 0.5 * b) * 255 + 0.5)
            }
        }
        return DecodedImage(channels: 3, height: height, width: width, pixels: pixels)
    }
}
