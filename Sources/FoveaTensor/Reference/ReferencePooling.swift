extension Reference {
    /// The output extent of a pooling window sweep along one dimension, with PyTorch's ceil-mode rule.
    ///
    /// In ceil mode the division rounds up, but a last window that would start in the right padding
    /// (at or beyond `size + padding`) is dropped, so every window touches the input or left padding.
    public static func poolingOutputSize(
        inputSize: Int, kernelSize: Int, stride: Int, padding: Int, ceilMode: Bool
    ) -> Int {
        precondition(kernelSize > 0 && stride > 0 && padding >= 0,
                     "invalid window: kernel \(kernelSize), stride \(stride), padding \(padding)")
        precondition(padding <= kernelSize / 2,
                     "padding \(padding) must be at most half the kernel size \(kernelSize)")
        let span = inputSize + 2 * padding - kernelSize
        precondition(span >= 0, "window of size \(kernelSize) does not fit input \(inputSize) with padding \(padding)")
        var outputSize = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1
        if ceilMode && (outputSize - 1) * stride >= inputSize + padding {
            outputSize -= 1
        }
        return outputSize
    }

    /// 2-D max pooling where padding acts as −∞, as `F.max_pool2d` (dilation 1); NaN propagates.
    ///
    /// `kernel`, `stride` and `padding` are `[height, width]`.
    // input (N,C,H,W) → output (N,C,P,Q)
    public static func maxPool2d(
        _ x: ReferenceArray, kernel: [Int], stride: [Int], padding: [Int], ceilMode: Bool
    ) -> ReferenceArray {
        let (batch, channels, height, width) = x.nchw
        precondition(kernel.count == 2 && stride.count == 2 && padding.count == 2,
                     "kernel, stride and padding must be [height, width]")
        let outputHeight = poolingOutputSize(
            inputSize: height, kernelSize: kernel[0], stride: stride[0], padding: padding[0], ceilMode: ceilMode)
        let outputWidth = poolingOutputSize(
            inputSize: width, kernelSize: kernel[1], stride: stride[1], padding: padding[1], ceilMode: ceilMode)
        var output = ReferenceArray(shape: [batch, channels, outputHeight, outputWidth], repeating: 0)

        for n in 0..<batch {
            for c in 0..<channels {
                for p in 0..<outputHeight {
                    for q in 0..<outputWidth {
                        let top = p * stride[0] - padding[0]
                        let left = q * stride[1] - padding[1]
                        var maximum = -Double.infinity
                        for h in max(top, 0)..<min(top + kernel[0], height) {
                            for w in max(left, 0)..<min(left + kernel[1], width) {
                                let value = x.values[ReferenceArray.offset(
                                    n, c, h, w, channels: channels, height: height, width: width)]
                                // Once NaN is taken nothing compares greater, so NaN sticks, as in PyTorch.
                                if value > maximum || value.isNaN {
                                    maximum = value
                                }
                            }
                        }
                        output.values[ReferenceArray.offset(
                            n, c, p, q, channels: channels, height: outputHeight, width: outputWidth)] = maximum
                    }
                }
            }
        }
        return output
    }

    /// 2-D average pooling with zero padding, as `F.avg_pool2d` (no divisor override).
    ///
    /// The window is first clipped to the padded input (`min(start + kernel, size + padding)`); its
    /// area there is the divisor when `countIncludePad` is true. Otherwise the divisor is the area
    /// of the window clipped to the real input. So a ceil-mode window hanging past the right padding
    /// never counts the cells beyond it.
    // input (N,C,H,W) → output (N,C,P,Q)
    public static func avgPool2d(
        _ x: ReferenceArray, kernel: [Int], stride: [Int], padding: [Int], ceilMode: Bool, countIncludePad: Bool
    ) -> ReferenceArray {
        let (batch, channels, height, width) = x.nchw
        precondition(kernel.count == 2 && stride.count == 2 && padding.count == 2,
                     "kernel, stride and padding must be [height, width]")
        let outputHeight = poolingOutputSize(
            inputSize: height, kernelSize: kernel[0], stride: stride[0], padding: padding[0], ceilMode: ceilMode)
        let outputWidth = poolingOutputSize(
            inputSize: width, kernelSize: kernel[1], stride: stride[1], padding: padding[1], ceilMode: ceilMode)
        var output = ReferenceArray(shape: [batch, channels, outputHeight, outputWidth], repeating: 0)

        for n in 0..<batch {
            for c in 0..<channels {
                for p in 0..<outputHeight {
                    for q in 0..<outputWidth {
                        var top = p * stride[0] - padding[0]
                        var left = q * stride[1] - padding[1]
                        var bottom = min(top + kernel[0], height + padding[0])
                        var right = min(left + kernel[1], width + padding[1])
                        let paddedArea = (bottom - top) * (right - left)
                        top = max(top, 0)
                        left = max(left, 0)
                        bottom = min(bottom, height)
                        right = min(right, width)
                        let inputArea = (bottom - top) * (right - left)

                        var sum = 0.0
                        for h in top..<bottom {
                            for w in left..<right {
                                sum += x.values[ReferenceArray.offset(
                                    n, c, h, w, channels: channels, height: height, width: width)]
                            }
                        }
                        let divisor = countIncludePad ? paddedArea : inputArea
                        output.values[ReferenceArray.offset(
                            n, c, p, q, channels: channels, height: outputHeight, width: outputWidth)]
                            = sum / Double(divisor)
                    }
                }
            }
        }
        return output
    }

    /// 2-D adaptive average pooling to a fixed output size, as `F.adaptive_avg_pool2d`.
    ///
    /// Output cell i along a dimension of input size H averages input rows ⌊i·H/out⌋ ..< ⌈(i+1)·H/out⌉.
    // input (N,C,H,W), outputSize [P, Q] → output (N,C,P,Q)
    public static func adaptiveAvgPool2d(_ x: ReferenceArray, outputSize: [Int]) -> ReferenceArray {
        let (batch, channels, height, width) = x.nchw
        precondition(outputSize.count == 2 && outputSize[0] > 0 && outputSize[1] > 0,
                     "output size must be two positive extents, got \(outputSize)")
        let (outputHeight, outputWidth) = (outputSize[0], outputSize[1])
        var output = ReferenceArray(shape: [batch, channels, outputHeight, outputWidth], repeating: 0)

        for n in 0..<batch {
            for c in 0..<channels {
                for p in 0..<outputHeight {
                    let top = adaptiveStart(p, inputSize: height, outputSize: outputHeight)
                    let bottom = adaptiveEnd(p, inputSize: height, outputSize: outputHeight)
                    for q in 0..<outputWidth {
                        let left = adaptiveStart(q, inputSize: width, outputSize: outputWidth)
                        let right = adaptiveEnd(q, inputSize: width, outputSize: outputWidth)
                        var sum = 0.0
                        for h in top..<bottom {
                            for w in left..<right {
                                sum += x.values[ReferenceArray.offset(
                                    n, c, h, w, channels: channels, height: height, width: width)]
                            }
                        }
                        output.values[ReferenceArray.offset(
                            n, c, p, q, channels: channels, height: outputHeight, width: outputWidth)]
                            = sum / Double((bottom - top) * (right - left))
                    }
                }
            }
        }
        return output
    }

    /// ⌊index · inputSize / outputSize⌋: the first input cell of adaptive window `index`.
    static func adaptiveStart(_ index: Int, inputSize: Int, outputSize: Int) -> Int {
        (index * inputSize) / outputSize
    }

    /// ⌈(index + 1) · inputSize / outputSize⌉: one past the last input cell of adaptive window `index`.
    static func adaptiveEnd(_ index: Int, inputSize: Int, outputSize: Int) -> Int {
        ((index + 1) * inputSize + outputSize - 1) / outputSize
    }
}
