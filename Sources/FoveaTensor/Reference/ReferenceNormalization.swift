import Foundation

extension Reference {
    /// Batch normalisation with batch statistics, as `F.batch_norm(training: true)`.
    ///
    /// Per channel, the mean and biased variance over N, H, W normalise the input; the result is
    /// `(x − mean) / √(variance + ε) · scale + shift`. `unbiasedVariance` is `variance · n/(n−1)`
    /// (what PyTorch folds into the running variance); it is NaN when a channel has one element,
    /// where PyTorch refuses to train.
    // input (N,C,H,W), scale (C), shift (C) → output (N,C,H,W), mean (C), variance (C)
    public static func batchNormTraining(
        _ x: ReferenceArray, scale: ReferenceArray, shift: ReferenceArray, epsilon: Double
    ) -> (output: ReferenceArray, mean: [Double], variance: [Double], unbiasedVariance: [Double]) {
        let (batch, channels, height, width) = x.nchw
        precondition(scale.count == channels && shift.count == channels,
                     "scale \(scale.shape) and shift \(shift.shape) must have \(channels) elements")
        let elementsPerChannel = batch * height * width
        precondition(elementsPerChannel > 0, "batch norm needs at least one element per channel, got shape \(x.shape)")

        var mean = [Double](repeating: 0, count: channels)
        var variance = [Double](repeating: 0, count: channels)
        var unbiasedVariance = [Double](repeating: 0, count: channels)
        for c in 0..<channels {
            var sum = 0.0
            for n in 0..<batch {
                for h in 0..<height {
                    for w in 0..<width {
                        sum += x.values[ReferenceArray.offset(n, c, h, w, channels: channels, height: height, width: width)]
                    }
                }
            }
            mean[c] = sum / Double(elementsPerChannel)

            // Two passes (mean first, then squared deviations) keep the variance exact enough to be an oracle.
            var squaredDeviations = 0.0
            for n in 0..<batch {
                for h in 0..<height {
                    for w in 0..<width {
                        let value = x.values[ReferenceArray.offset(n, c, h, w, channels: channels, height: height, width: width)]
                        squaredDeviations += (value - mean[c]) * (value - mean[c])
                    }
                }
            }
            variance[c] = squaredDeviations / Double(elementsPerChannel)
            unbiasedVariance[c] = elementsPerChannel > 1 ? squaredDeviations / Double(elementsPerChannel - 1) : .nan
        }

        let output = batchNormInference(
            x, scale: scale, shift: shift, runningMean: mean, runningVariance: variance, epsilon: epsilon)
        return (output, mean, variance, unbiasedVariance)
    }

    /// Batch normalisation with fixed statistics, as `F.batch_norm(training: false)`.
    ///
    /// Each element becomes `(x − runningMean[c]) / √(runningVariance[c] + ε) · scale[c] + shift[c]`.
    // input (N,C,H,W), scale (C), shift (C), running statistics (C) → output (N,C,H,W)
    public static func batchNormInference(
        _ x: ReferenceArray, scale: ReferenceArray, shift: ReferenceArray,
        runningMean: [Double], runningVariance: [Double], epsilon: Double
    ) -> ReferenceArray {
        let (batch, channels, height, width) = x.nchw
        precondition(scale.count == channels && shift.count == channels,
                     "scale \(scale.shape) and shift \(shift.shape) must have \(channels) elements")
        precondition(runningMean.count == channels && runningVariance.count == channels,
                     "running statistics must have \(channels) elements")
        var output = x
        for n in 0..<batch {
            for c in 0..<channels {
                let standardDeviation = (runningVariance[c] + epsilon).squareRoot()
                for h in 0..<height {
                    for w in 0..<width {
                        let index = ReferenceArray.offset(n, c, h, w, channels: channels, height: height, width: width)
                        let normalised = (x.values[index] - runningMean[c]) / standardDeviation
                        output.values[index] = normalised * scale.values[c] + shift.values[c]
                    }
                }
            }
        }
        return output
    }

    /// Local response normalisation across channels, as `F.local_response_norm`.
    ///
    /// `b_c = a_c / (k + α/size · Σ a_{c'}²)^β`, the sum running over channels
    /// `c − size/2 … c + (size−1)/2` clipped to the input; the division is always by `size`
    /// because PyTorch zero-pads the channel dimension before averaging.
    // input (N,C,H,W) → output (N,C,H,W)
    public static func localResponseNorm(
        _ x: ReferenceArray, size: Int, alpha: Double, beta: Double, k: Double
    ) -> ReferenceArray {
        let (batch, channels, height, width) = x.nchw
        precondition(size > 0, "LRN window size must be positive, got \(size)")
        var output = x
        for n in 0..<batch {
            for c in 0..<channels {
                let first = max(c - size / 2, 0)
                let last = min(c + (size - 1) / 2, channels - 1)
                for h in 0..<height {
                    for w in 0..<width {
                        var sumOfSquares = 0.0
                        for neighbour in first...last {  // never empty: c itself is always inside
                            let value = x.values[ReferenceArray.offset(
                                n, neighbour, h, w, channels: channels, height: height, width: width)]
                            sumOfSquares += value * value
                        }
                        let index = ReferenceArray.offset(n, c, h, w, channels: channels, height: height, width: width)
                        let denominator = pow(k + alpha * (sumOfSquares / Double(size)), beta)
                        output.values[index] = x.values[index] / denominator
                    }
                }
            }
        }
        return output
    }
}
