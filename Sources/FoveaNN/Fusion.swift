import Foundation
import FoveaTensor

// Kernel fusion (DESIGN §2): in inference, batch norm folded into convolutions and activations and residual additions
// as oneDNN post-ops; in training, batch norm + ReLU and residual addition + ReLU as one primitive each, and
// ReLU → max pooling run as max pooling → ReLU.
// Everything else in training runs the layers one by one.

/// Fusion switch (inference: folded batch norm and post-ops; training: batch norm + ReLU, addition + ReLU, ReLU after
/// max pooling): on, unless the environment sets `FOVEA_NO_FUSION` (to measure what fusion gains, or to rule it out when
/// debugging).
public enum KernelFusion {
    private static let allowed = ProcessInfo.processInfo.environment["FOVEA_NO_FUSION"] == nil
    /// Off while an `OperationTrace` records on this thread, so that an exported graph shows each layer as written.
    public static var isEnabled: Bool { allowed && !OperationTrace.isActive }
}

extension Conv2D {
    /// `activation(norm(self(x)) + residual)`, with every part optional.
    ///
    /// When nothing is recorded and `norm` is in evaluation mode, this is a single convolution: the batch norm is
    /// folded into the weights and bias (w·γ/√(σ²+ε), (b − μ)·γ/√(σ²+ε) + β) and the addition and activation run as
    /// post-ops. Otherwise (training) the layers run one after the other, except that a batch norm directly followed by a
    /// ReLU (no residual) runs as one oneDNN primitive, and so do a residual addition and a following ReLU.
    public func callAsFunction(_ x: Tensor, normalizedBy norm: BatchNorm2D?, adding residual: Tensor? = nil,
                               activation: Activation? = nil) throws -> Tensor {
        guard KernelFusion.isEnabled, !Autodiff.isRecording, !(norm?.isTraining ?? false) else {
            var y = try self(x)
            if let norm {
                // Training: batch norm and a directly following ReLU run as one primitive.
                if residual == nil && activation == .relu && KernelFusion.isEnabled { return try norm(y, fusingReLU: true) }
                y = try norm(y)
            }
            // Training: the residual addition and a following ReLU in one pass.
            if let residual, activation == .relu && KernelFusion.isEnabled { return try addingReLU(y, residual) }
            if let residual { y = try y + residual }
            return try activation.map { try activate(y, $0) } ?? y
        }
        let name = "Conv2D(\(weight.value.shape[1] * geometry.groups)→\(weight.value.shape[0]))"
        // The folded (and kernel-formatted) weights are made once and reused until a parameter or statistic changes.
        var stamp = [weight.version, bias?.version ?? -1]
        if let norm {
            stamp += [ObjectIdentifier(norm).hashValue, norm.weight.version, norm.bias.version, norm.runningMean.version,
                      norm.runningVariance.version, Int(norm.epsilon.bitPattern)]
        }
        inputQuantizer.weightsAre(stamp)
        let (preparedWeight, preparedBias) = try prepared.weights(for: stamp) {
            guard let norm else { return (weight.value, bias?.value) }
            return try norm.fold(weight: weight.value, bias: bias?.value, convolution: name)
        }
        return try conv2d(x, weight: preparedWeight, bias: preparedBias, geometry: geometry, residual: residual,
                          activation: activation, prepared: prepared, quantizer: inputQuantizer, name: norm == nil ? name : name + "+BatchNorm2D")
    }
}

extension BatchNorm2D {
    /// The weight and bias of a convolution (weight (K, …), bias (K) or none) followed by this batch norm in
    /// evaluation mode, as one affine map per output channel.
    public func fold(weight: Tensor, bias: Tensor?, convolution: String) throws -> (Tensor, Tensor) {
        let channels = self.weight.value.count
        guard weight.shape.first == channels, bias.map({ $0.shape == [channels] }) ?? true else {
            throw TensorError.shapeMismatch(operation: "\(convolution) folded with BatchNorm2D(\(channels))",
                                            expected: "\(channels) output channels", actual: weight.shape)
        }
        let plainWeight = try weight.reordered(to: .plain)
        let perChannel = weight.count / channels
        let foldedWeight = Tensor.zeros(weight.shape), foldedBias = Tensor.zeros([channels])
        let (gamma, beta) = (try self.weight.value.reordered(to: .plain), try self.bias.value.reordered(to: .plain))
        let (mean, variance) = (runningMean.value, runningVariance.value)
        let source = plainWeight.storage.pointer, target = foldedWeight.storage.pointer
        for k in 0..<channels {
            let scale = gamma.storage.pointer[k] / (variance.storage.pointer[k] + epsilon).squareRoot()
            let base = k * perChannel
            for i in 0..<perChannel { target[base + i] = source[base + i] * scale }
            let b = bias.map { $0.storage.pointer[k] } ?? 0
            foldedBias.storage.pointer[k] = (b - mean.storage.pointer[k]) * scale + beta.storage.pointer[k]
        }
        return (foldedWeight, foldedBias)
    }
}

extension Sequential {
    /// The chain's output plus `residual` (e.g. an inverted-residual block's input). In inference, runs of
    /// convolution → batch norm → activation become single fused convolutions, and the residual addition is fused
    /// into the last convolution when the chain ends in one without an activation.
    public func callAsFunction(_ x: Tensor, adding residual: Tensor?) throws -> Tensor {
        guard KernelFusion.isEnabled, !Autodiff.isRecording else {
            var y = x
            var index = 0
            while index < layers.count {
                // Training: batch norm and a directly following ReLU run as one primitive.
                if KernelFusion.isEnabled, let norm = layers[index] as? BatchNorm2D, index + 1 < layers.count,
                   let next = layers[index + 1] as? ActivationLayer, next.activation == .relu {
                    y = try norm(y, fusingReLU: true)
                    index += 2
                } else if KernelFusion.isEnabled, let activation = layers[index] as? ActivationLayer, activation.activation == .relu,
                          index + 1 < layers.count, let pool = layers[index + 1] as? MaxPool2D {
                    // ReLU then max pooling, computed as max pooling then ReLU on the smaller map: the two commute, values
                    // and gradients alike (where a window's maximum is ≤ 0 both give it no gradient).
                    y = try relu(pool(y))
                    index += 2
                } else {
                    y = try layers[index](y)
                    index += 1
                }
            }
            return try residual.map { try y + $0 } ?? y
        }
        var y = x
        var index = 0
        while index < layers.count {
            guard let conv = layers[index] as? Conv2D else {
                // A nested chain that ends this one takes the residual along (e.g. MBConv's projection).
                if index == layers.count - 1, let residual, let chain = layers[index] as? Sequential {
                    return try chain(y, adding: residual)
                }
                y = try layers[index](y)
                index += 1
                continue
            }
            var next = index + 1
            var norm: BatchNorm2D?
            if next < layers.count, let candidate = layers[next] as? BatchNorm2D, !candidate.isTraining {
                norm = candidate
                next += 1
            }
            var activation: Activation?
            if next < layers.count, let layer = layers[next] as? ActivationLayer {
                activation = layer.activation
                next += 1
            }
            let fusedResidual = next == layers.count && activation == nil ? residual : nil
            y = try conv(y, normalizedBy: norm, adding: fusedResidual, activation: activation)
            if next == layers.count && fusedResidual != nil { return y }
            index = next
        }
        return try residual.map { try y + $0 } ?? y
    }
}

/// Switch for running the high-resolution head of mobile networks image by image in inference (see
/// `Sequential.callAsFunction(_:imageByImageDownTo:)`): on unless `FOVEA_NO_FUSION` or `FOVEA_WHOLE_BATCH` is set.
public enum ImageByImageInference {
    private static let allowed = ProcessInfo.processInfo.environment["FOVEA_WHOLE_BATCH"] == nil
    public static var isEnabled: Bool { allowed && KernelFusion.isEnabled }
}

extension Sequential {
    /// Inference in cache-sized pieces. The leading layers whose input still has at least 1/`divisor` of `x`'s height
    /// run on one image at a time; their outputs are joined into one batch for the remaining layers.
    ///
    /// The high-resolution layers of mobile networks (1×1 expansions to many channels, depthwise convolutions,
    /// squeeze-excitation scaling) are memory-bound on a whole batch: each activation is written to DRAM and read back.
    /// One image's activations stay in the caches. The low-resolution layers keep the whole batch, where their
    /// kernels are most efficient. Every layer treats images independently in inference, so the result is `self(x)`
    /// (up to the summation order inside kernels). While the tape records, while any layer of the chain is in training
    /// mode (batch norm would see one image's statistics), or for a single image, this is `self(x)`.
    public func callAsFunction(_ x: Tensor, imageByImageDownTo divisor: Int) throws -> Tensor {
        guard ImageByImageInference.isEnabled, !Autodiff.isRecording, divisor > 0, x.shape.count == 4, x.shape[0] > 1,
              !containsTrainingLayers else {
            return try self(x)
        }
        let height = x.shape[2]
        var prefix: Int?
        var parts: [Tensor] = []
        for image in 0..<x.shape[0] {
            var y = try x.batchSlice(image..<(image + 1))
            var index = 0
            // The first image decides how many layers the head has; the others have the same shapes.
            while index < (prefix ?? layers.count), y.shape.count == 4, prefix != nil || y.shape[2] * divisor >= height {
                y = try layers[index](y)
                index += 1
            }
            if prefix == nil { prefix = index }
            parts.append(y)
        }
        var y = try concatenateBatch(parts)
        for layer in layers[(prefix ?? 0)...] { y = try layer(y) }
        return y
    }
}
