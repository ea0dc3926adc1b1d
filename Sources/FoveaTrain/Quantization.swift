import Foundation
import FoveaData
import FoveaNN
import FoveaTensor

/// What static post-training quantization measured for a model, kept in its sidecar (`quantization`): the input range of
/// every convolution and fully connected layer on the calibration images, and the output range of every convolution.
/// With it, the model runs in int8 (see `ActivationQuantizer` and `Precision.int8`): inputs per tensor from these
/// ranges, weights per output channel from the float32 weights the file keeps (batch norm folded in first), so the
/// architecture's state dict is unchanged; convolution outputs stay 8-bit on their ranges' scales between int8 layers.
public struct QuantizationRecord: Codable, Equatable, Sendable {
    /// `int8-static`: per-tensor activations from calibration, per-channel symmetric weights.
    public var scheme = QuantizationRecord.staticInt8
    /// What the ranges were measured on, in words (dataset, split, how many images).
    public var calibration: String
    /// Layer path (`layer1.0.conv1`, `fc`) → [lowest, highest] value of its input on the calibration images.
    public var inputs: [String: [Float]]
    /// Convolution path → [lowest, highest] value of its output (after its fused batch norm, residual and activation).
    /// Absent in records written before outputs were measured: those convolutions write float32 outputs.
    public var outputs: [String: [Float]]?

    /// The one scheme there is.
    public static let staticInt8 = "int8-static"

    public init(calibration: String, inputs: [String: [Float]], outputs: [String: [Float]]? = nil) {
        (self.calibration, self.inputs, self.outputs) = (calibration, inputs, outputs)
    }
}

/// Static post-training quantization: calibration of a model's layer inputs, and applying a record to a model.
public enum PostTrainingQuantization {
    /// The layers that can run in int8 (convolutions and fully connected layers) with their paths.
    static func quantizers(of model: Layer) -> [(String, ActivationQuantizer)] {
        model.namedLayers().compactMap { path, layer in
            if let conv = layer as? Conv2D { return (path, conv.inputQuantizer) }
            if let linear = layer as? Linear { return (path, linear.inputQuantizer) }
            return nil
        }
    }

    /// Runs the first `images` samples of `data` through `model` (evaluation mode, fp32, batches of `batchSize`) and
    /// records every convolution's and fully connected layer's input range; returns the record (`calibration` describes
    /// the images). Earlier ranges are forgotten first.
    public static func calibrate(_ model: Layer, on data: ImageClassificationSet, images: Int, batchSize: Int = 100,
                                 describing calibration: String) throws -> QuantizationRecord {
        guard images > 0 else { throw TrainingError.invalidOption("calibration needs at least one image (got \(images))") }
        guard data.count > 0 else { throw TrainingError.noSamples("the calibration set is empty") }
        let count = min(images, data.count)
        model.eval()
        for (_, quantizer) in quantizers(of: model) { (quantizer.range, quantizer.outputRange) = (nil, nil) }
        try ActivationQuantizer.calibrate {
            try Autodiff.withoutRecording {
                for start in stride(from: 0, to: count, by: batchSize) {
                    let (batch, _) = try data.batch(Array(start..<min(start + batchSize, count))[...])
                    _ = try model(batch)
                }
            }
        }
        return QuantizationRecord(calibration: calibration, inputs: ranges(of: model), outputs: ranges(of: model, \.outputRange))
    }

    /// The calibrated input ranges (or, with `\.outputRange`, output ranges) of `model`'s layers, by path (layers that
    /// never ran have none).
    public static func ranges(of model: Layer,
                              _ which: KeyPath<ActivationQuantizer, ClosedRange<Float>?> = \.range) -> [String: [Float]] {
        var result: [String: [Float]] = [:]
        for (path, quantizer) in quantizers(of: model) {
            if let range = quantizer[keyPath: which] { result[path] = [range.lowerBound, range.upperBound] }
        }
        return result
    }

    /// Gives `model`'s layers the ranges of `record`; layers it does not name stay fp32. A path that is no convolution
    /// or fully connected layer of the model, or a range that is not two finite numbers in order, is an error naming
    /// `path` (the file) and the layer.
    public static func apply(_ record: QuantizationRecord, to model: Layer, path: String) throws {
        guard record.scheme == QuantizationRecord.staticInt8 else {
            throw TrainingError.badModelFile(path: path, reason: "quantization scheme '\(record.scheme.prefix(40))' is not "
                                             + "\(QuantizationRecord.staticInt8)")
        }
        let layers = Dictionary(quantizers(of: model), uniquingKeysWith: { first, _ in first })
        var assignments: [(ActivationQuantizer, ReferenceWritableKeyPath<ActivationQuantizer, ClosedRange<Float>?>,
                           ClosedRange<Float>)] = []
        for (ranges, field, what) in [(record.inputs, \ActivationQuantizer.range, "range"),
                                      (record.outputs ?? [:], \ActivationQuantizer.outputRange, "output range")] {
            for (name, values) in ranges.sorted(by: { $0.key < $1.key }) {
                guard let quantizer = layers[name] else {
                    throw TrainingError.badModelFile(path: path, reason: "quantization names '\(name.prefix(100))', which is no "
                                                     + "convolution or fully connected layer of the model")
                }
                guard values.count == 2, values.allSatisfy(\.isFinite), values[0] <= values[1] else {
                    throw TrainingError.badModelFile(path: path, reason: "quantization \(what) of \(name) is \(values.prefix(4)); "
                                                     + "it must be [lowest, highest], finite")
                }
                assignments.append((quantizer, field, values[0]...values[1]))
            }
        }
        for (_, quantizer) in layers { (quantizer.range, quantizer.outputRange) = (nil, nil) }
        for (quantizer, field, range) in assignments { quantizer[keyPath: field] = range }
    }
}
