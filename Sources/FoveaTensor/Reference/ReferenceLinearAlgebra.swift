extension Reference {
    /// Fully connected layer `y = x·Wᵀ + b`, as `F.linear`.
    // input (N,In), weight (Out,In), bias (Out) → output (N,Out)
    public static func linear(_ x: ReferenceArray, weight: ReferenceArray, bias: ReferenceArray?) -> ReferenceArray {
        let (batch, inputFeatures) = x.rowsAndColumns
        let (outputFeatures, weightInputs) = weight.rowsAndColumns
        precondition(weightInputs == inputFeatures,
                     "weight \(weight.shape) does not take \(inputFeatures) input features")
        if let bias {
            precondition(bias.shape == [outputFeatures], "bias shape \(bias.shape) must be [\(outputFeatures)]")
        }
        var output = ReferenceArray(shape: [batch, outputFeatures], repeating: 0)
        for n in 0..<batch {
            for o in 0..<outputFeatures {
                var sum = bias?.values[o] ?? 0
                for i in 0..<inputFeatures {
                    sum += x.values[n * inputFeatures + i] * weight.values[o * inputFeatures + i]
                }
                output.values[n * outputFeatures + o] = sum
            }
        }
        return output
    }

    /// Inverted dropout with a given mask, as `F.dropout(training: true)`: kept elements scale by 1/(1−p).
    ///
    /// With `probability` 1 every element is multiplied by zero, as PyTorch does.
    // input (any shape), keepMask (same count) → output (same shape)
    public static func dropout(_ x: ReferenceArray, keepMask: [Bool], probability: Double) -> ReferenceArray {
        precondition(keepMask.count == x.count, "mask has \(keepMask.count) entries for \(x.count) elements")
        precondition(probability >= 0 && probability <= 1, "dropout probability \(probability) is outside [0, 1]")
        let keptScale = probability == 1 ? 0 : 1 / (1 - probability)
        var output = x
        for index in 0..<x.count {
            output.values[index] = x.values[index] * (keepMask[index] ? keptScale : 0)
        }
        return output
    }

    /// Elementwise sum of two arrays of the same shape.
    // a (any shape), b (same shape) → output (same shape)
    public static func add(_ a: ReferenceArray, _ b: ReferenceArray) -> ReferenceArray {
        precondition(a.shape == b.shape, "cannot add shapes \(a.shape) and \(b.shape)")
        var output = a
        for index in 0..<a.count {
            output.values[index] = a.values[index] + b.values[index]
        }
        return output
    }

    /// Per-sample, per-channel scaling broadcast over the spatial dimensions (squeeze-and-excitation).
    // input (N,C,H,W), scale (N,C,1,1) → output (N,C,H,W)
    public static func multiplyChannels(_ x: ReferenceArray, by scale: ReferenceArray) -> ReferenceArray {
        let (batch, channels, height, width) = x.nchw
        precondition(scale.shape == [batch, channels, 1, 1],
                     "scale shape \(scale.shape) must be [\(batch), \(channels), 1, 1]")
        var output = x
        for n in 0..<batch {
            for c in 0..<channels {
                let factor = scale.values[n * channels + c]
                for h in 0..<height {
                    for w in 0..<width {
                        let index = ReferenceArray.offset(n, c, h, w, channels: channels, height: height, width: width)
                        output.values[index] = x.values[index] * factor
                    }
                }
            }
        }
        return output
    }

    /// Concatenation along the channel dimension (dim 1), as `torch.cat(parts, dim: 1)`.
    // parts (N,C_i,H,W) → output (N,ΣC_i,H,W)
    public static func concatenateChannels(_ parts: [ReferenceArray]) -> ReferenceArray {
        precondition(!parts.isEmpty, "cannot concatenate zero arrays")
        let (batch, _, height, width) = parts[0].nchw
        for part in parts {
            let (partBatch, _, partHeight, partWidth) = part.nchw
            precondition(partBatch == batch && partHeight == height && partWidth == width,
                         "cannot concatenate shape \(part.shape) with \(parts[0].shape) along channels")
        }
        let totalChannels = parts.reduce(0) { $0 + $1.shape[1] }
        var output = ReferenceArray(shape: [batch, totalChannels, height, width], repeating: 0)
        for n in 0..<batch {
            var channelOffset = 0
            for part in parts {
                let partChannels = part.shape[1]
                for c in 0..<partChannels {
                    for h in 0..<height {
                        for w in 0..<width {
                            let source = ReferenceArray.offset(
                                n, c, h, w, channels: partChannels, height: height, width: width)
                            let destination = ReferenceArray.offset(
                                n, channelOffset + c, h, w, channels: totalChannels, height: height, width: width)
                            output.values[destination] = part.values[source]
                        }
                    }
                }
                channelOffset += partChannels
            }
        }
        return output
    }
}
