extension Reference {
    /// The output extent of a convolution or pooling window sweep along one dimension (floor mode).
    ///
    /// `⌊(size + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1`, as in `torch.nn.Conv2d`.
    public static func convolutionOutputSize(
        inputSize: Int, kernelSize: Int, stride: Int, padding: Int, dilation: Int
    ) -> Int {
        precondition(stride > 0 && dilation > 0 && kernelSize > 0 && padding >= 0,
                     "invalid window: kernel \(kernelSize), stride \(stride), padding \(padding), dilation \(dilation)")
        let span = inputSize + 2 * padding - dilation * (kernelSize - 1) - 1
        precondition(span >= 0, "window of size \(kernelSize) (dilation \(dilation)) does not fit input \(inputSize) with padding \(padding)")
        return span / stride + 1
    }

    /// 2-D cross-correlation with zero padding, stride, dilation and groups, as `F.conv2d`.
    ///
    /// `stride`, `padding` and `dilation` are `[height, width]`.
    // input (N,C,H,W), weight (K,C/g,R,S), bias (K) → output (N,K,P,Q)
    public static func conv2d(
        _ x: ReferenceArray, weight: ReferenceArray, bias: ReferenceArray?,
        stride: [Int], padding: [Int], dilation: [Int], groups: Int
    ) -> ReferenceArray {
        let (batch, channels, height, width) = x.nchw
        let (filters, channelsPerGroup, kernelHeight, kernelWidth) = weight.nchw
        precondition(stride.count == 2 && padding.count == 2 && dilation.count == 2,
                     "stride, padding and dilation must be [height, width]")
        precondition(groups > 0 && channels % groups == 0 && filters % groups == 0,
                     "groups \(groups) must divide input channels \(channels) and filters \(filters)")
        precondition(channelsPerGroup == channels / groups,
                     "weight shape \(weight.shape) does not match \(channels) input channels in \(groups) groups")
        if let bias {
            precondition(bias.shape == [filters], "bias shape \(bias.shape) must be [\(filters)]")
        }

        let outputHeight = convolutionOutputSize(
            inputSize: height, kernelSize: kernelHeight, stride: stride[0], padding: padding[0], dilation: dilation[0])
        let outputWidth = convolutionOutputSize(
            inputSize: width, kernelSize: kernelWidth, stride: stride[1], padding: padding[1], dilation: dilation[1])
        let filtersPerGroup = filters / groups
        var output = ReferenceArray(shape: [batch, filters, outputHeight, outputWidth], repeating: 0)

        for n in 0..<batch {
            for k in 0..<filters {
                let group = k / filtersPerGroup
                for p in 0..<outputHeight {
                    for q in 0..<outputWidth {
                        var sum = bias?.values[k] ?? 0
                        for localChannel in 0..<channelsPerGroup {
                            let c = group * channelsPerGroup + localChannel
                            for r in 0..<kernelHeight {
                                let h = p * stride[0] - padding[0] + r * dilation[0]
                                if h < 0 || h >= height { continue }  // zero padding contributes nothing
                                for s in 0..<kernelWidth {
                                    let w = q * stride[1] - padding[1] + s * dilation[1]
                                    if w < 0 || w >= width { continue }
                                    let input = x.values[ReferenceArray.offset(
                                        n, c, h, w, channels: channels, height: height, width: width)]
                                    let tap = weight.values[ReferenceArray.offset(
                                        k, localChannel, r, s, channels: channelsPerGroup,
                                        height: kernelHeight, width: kernelWidth)]
                                    sum += input * tap
                                }
                            }
                        }
                        output.values[ReferenceArray.offset(
                            n, k, p, q, channels: filters, height: outputHeight, width: outputWidth)] = sum
                    }
                }
            }
        }
        return output
    }
}
