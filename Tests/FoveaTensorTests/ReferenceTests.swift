import Foundation
import Testing
@testable import FoveaTensor

// Sanity checks of the Double reference kernels themselves, each against an independent route
// (a second formulation, an identity, or a value worked out by hand in the comment beside it).

/// A reproducible array of standard-normal values.
private func sample(_ shape: [Int], seed: UInt64) -> ReferenceArray {
    var generator = SeededGenerator(seed: seed)
    let count = ReferenceArray.elementCount(of: shape)
    return ReferenceArray(shape: shape, values: (0..<count).map { _ in generator.nextNormal() })
}

/// The largest absolute elementwise difference of two arrays of equal length.
private func largestDifference(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "compared arrays differ in length: \(a.count) vs \(b.count)")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// One convolution configuration: input, weight shapes and window parameters.
struct ReferenceConvolutionSetup: Sendable, CustomStringConvertible {
    var input: [Int]
    var weight: [Int]
    var stride: [Int]
    var padding: [Int]
    var dilation: [Int]
    var groups: Int
    var description: String { "x\(input) w\(weight) s\(stride) p\(padding) d\(dilation) g\(groups)" }
}

/// Convolution written the other way round: every input tap scatters into the outputs it reaches,
/// over an explicitly zero-padded copy of the input. Shares no loop structure with `Reference.conv2d`.
private func scatterConvolution(_ x: ReferenceArray, weight: ReferenceArray, bias: ReferenceArray?,
                                _ setup: ReferenceConvolutionSetup) -> ReferenceArray {
    let (batch, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (filters, groupChannels, kernelHeight, kernelWidth) =
        (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
    let paddedHeight = height + 2 * setup.padding[0], paddedWidth = width + 2 * setup.padding[1]
    var padded = ReferenceArray(shape: [batch, channels, paddedHeight, paddedWidth], repeating: 0)
    for n in 0..<batch { for c in 0..<channels { for h in 0..<height { for w in 0..<width {
        padded[n, c, h + setup.padding[0], w + setup.padding[1]] = x[n, c, h, w]
    } } } }
    let outputHeight = (paddedHeight - setup.dilation[0] * (kernelHeight - 1) - 1) / setup.stride[0] + 1
    let outputWidth = (paddedWidth - setup.dilation[1] * (kernelWidth - 1) - 1) / setup.stride[1] + 1
    var output = ReferenceArray(shape: [batch, filters, outputHeight, outputWidth], repeating: 0)
    let filtersPerGroup = filters / setup.groups
    for n in 0..<batch { for c in 0..<channels { for h in 0..<paddedHeight { for w in 0..<paddedWidth {
        let group = c / groupChannels
        for k in (group * filtersPerGroup)..<((group + 1) * filtersPerGroup) {
            for r in 0..<kernelHeight { for s in 0..<kernelWidth {
                let rowOffset = h - r * setup.dilation[0], columnOffset = w - s * setup.dilation[1]
                guard rowOffset >= 0, columnOffset >= 0,
                      rowOffset % setup.stride[0] == 0, columnOffset % setup.stride[1] == 0 else { continue }
                let p = rowOffset / setup.stride[0], q = columnOffset / setup.stride[1]
                guard p < outputHeight, q < outputWidth else { continue }
                output[n, k, p, q] += padded[n, c, h, w] * weight[k, c % groupChannels, r, s]
            } }
        }
    } } } }
    if let bias {
        for n in 0..<batch { for k in 0..<filters { for p in 0..<outputHeight { for q in 0..<outputWidth {
            output[n, k, p, q] += bias.values[k]
        } } } }
    }
    return output
}

@Suite("Reference convolution")
struct ReferenceConvolutionTests {
    static let cases: [ReferenceConvolutionSetup] = [
        ReferenceConvolutionSetup(input: [2, 3, 5, 6], weight: [4, 3, 3, 3], stride: [1, 1], padding: [1, 1],
                        dilation: [1, 1], groups: 1),
        ReferenceConvolutionSetup(input: [1, 4, 7, 6], weight: [6, 2, 3, 2], stride: [2, 1], padding: [1, 2],
                        dilation: [1, 2], groups: 2),
        ReferenceConvolutionSetup(input: [2, 3, 6, 5], weight: [3, 1, 3, 3], stride: [2, 2], padding: [1, 0],
                        dilation: [2, 1], groups: 3),
    ]

    @Test(arguments: cases)
    func matchesScatterFormulation(_ setup: ReferenceConvolutionSetup) {
        let x = sample(setup.input, seed: 1), weight = sample(setup.weight, seed: 2)
        let bias = sample([setup.weight[0]], seed: 3)
        let direct = Reference.conv2d(x, weight: weight, bias: bias, stride: setup.stride, padding: setup.padding,
                                      dilation: setup.dilation, groups: setup.groups)
        let scattered = scatterConvolution(x, weight: weight, bias: bias, setup)
        #expect(direct.shape == scattered.shape)
        #expect(largestDifference(direct.values, scattered.values) < 1e-12)
    }

    @Test func identityKernelReturnsInput() {
        let x = sample([2, 3, 4, 5], seed: 4)
        var weight = ReferenceArray(shape: [3, 3, 1, 1], repeating: 0)
        for c in 0..<3 { weight[c, c, 0, 0] = 1 }
        let y = Reference.conv2d(x, weight: weight, bias: nil, stride: [1, 1], padding: [0, 0],
                                 dilation: [1, 1], groups: 1)
        #expect(y == x)
    }

    @Test func groupedEqualsSeparateConvolutions() {
        // Two groups = two independent convolutions on the channel halves, stacked along channels.
        let x = sample([2, 4, 5, 5], seed: 5), weight = sample([6, 2, 3, 3], seed: 6)
        let grouped = Reference.conv2d(x, weight: weight, bias: nil, stride: [1, 1], padding: [1, 1],
                                       dilation: [1, 1], groups: 2)
        func slice(_ array: ReferenceArray, channels range: Range<Int>) -> ReferenceArray {
            var part = ReferenceArray(shape: [array.shape[0], range.count, array.shape[2], array.shape[3]], repeating: 0)
            for n in 0..<array.shape[0] { for (local, c) in range.enumerated() {
                for h in 0..<array.shape[2] { for w in 0..<array.shape[3] { part[n, local, h, w] = array[n, c, h, w] } }
            } }
            return part
        }
        let halves = (0..<2).map { group in
            Reference.conv2d(slice(x, channels: (2 * group)..<(2 * group + 2)),
                             weight: slice(weight.transposedFirstTwo(), channels: (3 * group)..<(3 * group + 3))
                                .transposedFirstTwo(),
                             bias: nil, stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1)
        }
        #expect(grouped == Reference.concatenateChannels(halves))
    }

    @Test func outputSizeByHand() {
        // (7 + 2·1 − 1·(3 − 1) − 1) / 2 + 1 = 6 / 2 + 1 = 4.
        #expect(Reference.convolutionOutputSize(inputSize: 7, kernelSize: 3, stride: 2, padding: 1, dilation: 1) == 4)
        // Dilation 2 makes a 3-tap kernel span 5: (7 − 4 − 1) / 1 + 1 = 3.
        #expect(Reference.convolutionOutputSize(inputSize: 7, kernelSize: 3, stride: 1, padding: 0, dilation: 2) == 3)
    }

    @Test func linearEqualsOneByOneConvolution() {
        let x = sample([3, 5], seed: 7), weight = sample([4, 5], seed: 8), bias = sample([4], seed: 9)
        let dense = Reference.linear(x, weight: weight, bias: bias)
        let convolved = Reference.conv2d(ReferenceArray(shape: [3, 5, 1, 1], values: x.values),
                                         weight: ReferenceArray(shape: [4, 5, 1, 1], values: weight.values),
                                         bias: bias, stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1)
        #expect(dense.shape == [3, 4])
        #expect(largestDifference(dense.values, convolved.values) < 1e-12)
    }
}

private extension ReferenceArray {
    /// Swaps the first two dimensions of a rank-4 array, so channel slicing can cut along filters.
    func transposedFirstTwo() -> ReferenceArray {
        var result = ReferenceArray(shape: [shape[1], shape[0], shape[2], shape[3]], repeating: 0)
        for a in 0..<shape[0] { for b in 0..<shape[1] { for h in 0..<shape[2] { for w in 0..<shape[3] {
            result[b, a, h, w] = self[a, b, h, w]
        } } } }
        return result
    }
}

@Suite("Reference pooling")
struct ReferencePoolingTests {
    /// 0, 1, …, 15 laid out as one 4×4 image.
    let ramp = ReferenceArray(shape: [1, 1, 4, 4], values: (0..<16).map(Double.init))

    @Test func maxPoolByHand() {
        // 2×2 windows of the ramp: {0,1,4,5}, {2,3,6,7}, {8,9,12,13}, {10,11,14,15}.
        let y = Reference.maxPool2d(ramp, kernel: [2, 2], stride: [2, 2], padding: [0, 0], ceilMode: false)
        #expect(y == ReferenceArray(shape: [1, 1, 2, 2], values: [5, 7, 13, 15]))
    }

    @Test func maxPoolPaddingIsNegativeInfinity() {
        // With zero padding the border windows of an all −1 input would yield 0.
        let x = ReferenceArray(shape: [1, 2, 3, 3], repeating: -1)
        let y = Reference.maxPool2d(x, kernel: [3, 3], stride: [1, 1], padding: [1, 1], ceilMode: false)
        #expect(y == x)
    }

    @Test func ceilModeDropsWindowStartingInRightPadding() {
        // H = 5, k = 3, s = 3, p = 1: ⌈(5 + 2 − 3) / 3⌉ + 1 = 3, but window 3 would start at
        // 2·3 − 1 = 5 ≥ H, inside the right padding only, so PyTorch keeps 2.
        #expect(Reference.poolingOutputSize(inputSize: 5, kernelSize: 3, stride: 3, padding: 1, ceilMode: true) == 2)
        // H = 5, k = 2, s = 2, p = 0: ⌈3 / 2⌉ + 1 = 3; the last window starts at 4 < 5 and stays.
        #expect(Reference.poolingOutputSize(inputSize: 5, kernelSize: 2, stride: 2, padding: 0, ceilMode: true) == 3)
        #expect(Reference.poolingOutputSize(inputSize: 5, kernelSize: 2, stride: 2, padding: 0, ceilMode: false) == 2)
        let y = Reference.maxPool2d(ReferenceArray(shape: [1, 1, 5, 5], values: (0..<25).map(Double.init)),
                                    kernel: [2, 2], stride: [2, 2], padding: [0, 0], ceilMode: true)
        // The partial last row/column windows hold only row 4 / column 4: maxima 9, 19, 24 in the last column.
        #expect(y.shape == [1, 1, 3, 3])
        #expect(y[0, 0, 0, 2] == 9 && y[0, 0, 1, 2] == 19 && y[0, 0, 2, 2] == 24)
    }

    @Test(arguments: [false, true])
    func averageOfConstantExcludingPaddingIsConstant(ceilMode: Bool) {
        // Width 7, k 2, s 2, p 1 in ceil mode exercises the dropped-last-window rule as well.
        let x = ReferenceArray(shape: [2, 3, 6, 7], repeating: 2.5)
        let y = Reference.avgPool2d(x, kernel: [3, 2], stride: [2, 2], padding: [1, 1], ceilMode: ceilMode,
                                    countIncludePad: false)
        #expect(y.values.allSatisfy { abs($0 - 2.5) < 1e-15 })
    }

    @Test func averageIncludingPaddingByHand() {
        // Ones 2×2, k 2, s 1, p 1: corner windows see 1 real cell of 4, edges 2 of 4, the centre 4 of 4.
        let y = Reference.avgPool2d(ReferenceArray(shape: [1, 1, 2, 2], repeating: 1), kernel: [2, 2],
                                    stride: [1, 1], padding: [1, 1], ceilMode: false, countIncludePad: true)
        #expect(y == ReferenceArray(shape: [1, 1, 3, 3], values: [0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25]))
    }

    @Test func ceilModeWindowPastPaddingIsNotCounted() {
        // Ones 3×3, k 2, s 2, ceil: the second window spans index 2 only (index 3 lies beyond
        // H + padding = 3), so even countIncludePad divides by the clipped extent and every mean is 1.
        let y = Reference.avgPool2d(ReferenceArray(shape: [1, 1, 3, 3], repeating: 1), kernel: [2, 2],
                                    stride: [2, 2], padding: [0, 0], ceilMode: true, countIncludePad: true)
        #expect(y == ReferenceArray(shape: [1, 1, 2, 2], repeating: 1))
    }

    @Test func adaptiveToInputSizeIsIdentity() {
        let x = sample([2, 3, 5, 4], seed: 10)
        #expect(Reference.adaptiveAvgPool2d(x, outputSize: [5, 4]) == x)
    }

    @Test func adaptiveToOneIsGlobalMean() {
        let x = sample([2, 3, 5, 4], seed: 11)
        let y = Reference.adaptiveAvgPool2d(x, outputSize: [1, 1])
        for n in 0..<2 { for c in 0..<3 {
            let start = (n * 3 + c) * 20
            let mean = x.values[start..<(start + 20)].reduce(0, +) / 20
            #expect(abs(y[n, c, 0, 0] - mean) < 1e-14)
        } }
    }

    @Test func adaptiveOverlappingWindowsByHand() {
        // H = 5 → 3: windows [⌊0⌋, ⌈5/3⌉) = [0, 2), [⌊5/3⌋, ⌈10/3⌉) = [1, 4), [⌊10/3⌋, 5) = [3, 5)
        // over 0…4, so means 0.5, 2 and 3.5.
        let x = ReferenceArray(shape: [1, 1, 5, 1], values: [0, 1, 2, 3, 4])
        #expect(Reference.adaptiveAvgPool2d(x, outputSize: [3, 1])
                == ReferenceArray(shape: [1, 1, 3, 1], values: [0.5, 2, 3.5]))
    }
}

@Suite("Reference normalisation and activations")
struct ReferenceNormalizationTests {
    @Test func batchNormTrainingStandardises() {
        let x = sample([4, 3, 2, 3], seed: 12).map { $0 * 3 + 1 }
        let epsilon = 1e-5
        let result = Reference.batchNormTraining(x, scale: ReferenceArray(shape: [3], repeating: 1),
                                                 shift: ReferenceArray(shape: [3], repeating: 0), epsilon: epsilon)
        for c in 0..<3 {
            var values: [Double] = []
            for n in 0..<4 { for h in 0..<2 { for w in 0..<3 { values.append(result.output[n, c, h, w]) } } }
            let mean = values.reduce(0, +) / 24
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 24
            #expect(abs(mean) < 1e-12)
            // Normalised variance is σ² / (σ² + ε), not exactly 1.
            #expect(abs(variance - result.variance[c] / (result.variance[c] + epsilon)) < 1e-12)
            #expect(abs(result.unbiasedVariance[c] - result.variance[c] * 24 / 23) < 1e-12)
        }
        let replayed = Reference.batchNormInference(
            x, scale: ReferenceArray(shape: [3], repeating: 1), shift: ReferenceArray(shape: [3], repeating: 0),
            runningMean: result.mean, runningVariance: result.variance, epsilon: epsilon)
        #expect(replayed == result.output)
    }

    @Test func batchNormStatisticsByHand() {
        // One channel holding 1 and 3: mean 2, biased variance 1, unbiased 2; ε = 0, scale 2, shift 1
        // maps 1 → −1·2 + 1 = −1 and 3 → 1·2 + 1 = 3.
        let result = Reference.batchNormTraining(ReferenceArray(shape: [2, 1, 1, 1], values: [1, 3]),
                                                 scale: ReferenceArray(shape: [1], values: [2]),
                                                 shift: ReferenceArray(shape: [1], values: [1]), epsilon: 0)
        #expect(result.mean == [2] && result.variance == [1] && result.unbiasedVariance == [2])
        #expect(result.output.values == [-1, 3])
    }

    @Test func localResponseNormWithoutAlphaIsIdentity() {
        let x = sample([2, 5, 3, 3], seed: 13)
        #expect(Reference.localResponseNorm(x, size: 3, alpha: 0, beta: 0.75, k: 1) == x)
    }

    @Test func localResponseNormEvenWindowByHand() {
        // size 2 covers channels c − 1 … c: channel 0 sees only itself, channel 2 sees 1 and 2.
        let a = [1.0, 2.0, 3.0], (alpha, beta, k) = (0.4, 0.75, 2.0)
        let y = Reference.localResponseNorm(ReferenceArray(shape: [1, 3, 1, 1], values: a),
                                            size: 2, alpha: alpha, beta: beta, k: k)
        let expected = [a[0] / pow(k + alpha / 2 * (a[0] * a[0]), beta),
                        a[1] / pow(k + alpha / 2 * (a[0] * a[0] + a[1] * a[1]), beta),
                        a[2] / pow(k + alpha / 2 * (a[1] * a[1] + a[2] * a[2]), beta)]
        #expect(largestDifference(y.values, expected) < 1e-14)
    }

    @Test func activationsAtHandPoints() {
        let x = ReferenceArray(shape: [5], values: [-4, -3, 0, 1, 7])
        #expect(Reference.relu(x).values == [0, 0, 0, 1, 7])
        #expect(Reference.relu6(x).values == [0, 0, 0, 1, 6])
        #expect(Reference.leakyRelu(x, negativeSlope: 0.25).values == [-1, -0.75, 0, 1, 7])
        // relu6(x + 3) is 0, 0, 3, 4, 6, so hard-swish is 0, 0, 0, 4/6, 7.
        #expect(largestDifference(Reference.hardSwish(x).values, [0, 0, 0, 4.0 / 6, 7]) < 1e-15)
        let sigmoid = Reference.sigmoid(x)
        #expect(sigmoid[2] == 0.5)
        #expect(largestDifference(Reference.silu(x).values, zip(x.values, sigmoid.values).map(*)) < 1e-14)
        // tanh(x) = 2σ(2x) − 1.
        let viaSigmoid = Reference.sigmoid(x.map { 2 * $0 }).values.map { 2 * $0 - 1 }
        #expect(largestDifference(Reference.tanh(x).values, viaSigmoid) < 1e-14)
        #expect(Reference.relu(ReferenceArray(shape: [1], values: [.nan])).values[0].isNaN)
    }
}

@Suite("Reference losses, arithmetic and gradients")
struct ReferenceLossTests {
    /// Logits with one row of huge values, which would overflow `exp` without the max shift.
    let logits = ReferenceArray(shape: [3, 4], values: [0.5, -1, 2, 0, 1000, 999, 998, 1000, -3, 0.25, 0.25, 1])

    @Test func softmaxRowsSumToOneAndLogSoftmaxIsItsLog() {
        let probabilities = Reference.softmax(logits), logProbabilities = Reference.logSoftmax(logits)
        for n in 0..<3 {
            #expect(abs((0..<4).map { probabilities[n, $0] }.reduce(0, +) - 1) < 1e-14)
            for k in 0..<4 { #expect(abs(log(probabilities[n, k]) - logProbabilities[n, k]) < 1e-13) }
        }
        // Two equal maxima (1000, 1000) and no overflow.
        #expect(probabilities[1, 0] == probabilities[1, 3] && probabilities[1, 0].isFinite)
    }

    @Test func crossEntropyWithoutSmoothingIsNegativeLogLikelihood() {
        let labels = [2, 1, 0], logProbabilities = Reference.logSoftmax(logits)
        let expected = -(0..<3).map { logProbabilities[$0, labels[$0]] }.reduce(0, +) / 3
        #expect(abs(Reference.crossEntropy(logits: logits, labels: labels, labelSmoothing: 0) - expected) < 1e-14)
    }

    @Test func crossEntropyMixesTowardsUniform() {
        let labels = [2, 1, 0]
        let sharp = Reference.crossEntropy(logits: logits, labels: labels, labelSmoothing: 0)
        let uniform = Reference.crossEntropy(logits: logits, labels: labels, labelSmoothing: 1)
        // The loss is linear in ε between its ε = 0 and ε = 1 values.
        let mixed = Reference.crossEntropy(logits: logits, labels: labels, labelSmoothing: 0.1)
        #expect(abs(mixed - (0.9 * sharp + 0.1 * uniform)) < 1e-13)
        // Equal logits give p = 1/K everywhere, so the loss is log K whatever ε is.
        let flat = ReferenceArray(shape: [2, 5], repeating: 0.3)
        #expect(abs(Reference.crossEntropy(logits: flat, labels: [4, 0], labelSmoothing: 0.2) - log(5)) < 1e-14)
    }

    @Test func numericalGradientOfCrossEntropyIsSoftmaxMinusOneHot() {
        // d/dz of mean cross-entropy (ε = 0) is (softmax(z) − onehot(y)) / N.
        let z = sample([3, 4], seed: 14), labels = [3, 0, 2]
        let numeric = Reference.numericalGradient(
            of: { Reference.crossEntropy(logits: $0, labels: labels, labelSmoothing: 0) }, at: z)
        var analytic = Reference.softmax(z)
        for n in 0..<3 { analytic[n, labels[n]] -= 1 }
        #expect(largestDifference(numeric.values, analytic.map { $0 / 3 }.values) < 1e-8)
    }

    @Test func dropoutScalesKeptAndZeroesDropped() {
        let x = ReferenceArray(shape: [4], values: [1, -2, 3, 4])
        let y = Reference.dropout(x, keepMask: [true, false, true, false], probability: 0.5)
        #expect(y.values == [2, 0, 6, 0])
        #expect(Reference.dropout(x, keepMask: [true, true, true, true], probability: 1).values == [0, 0, 0, 0])
    }

    @Test func channelArithmeticPlacesElements() {
        let a = sample([2, 2, 2, 3], seed: 15), b = sample([2, 3, 2, 3], seed: 16)
        let joined = Reference.concatenateChannels([a, b])
        #expect(joined.shape == [2, 5, 2, 3])
        #expect(joined[1, 1, 1, 2] == a[1, 1, 1, 2] && joined[1, 2, 0, 1] == b[1, 0, 0, 1])
        #expect(joined[0, 4, 1, 0] == b[0, 2, 1, 0])
        let scale = ReferenceArray(shape: [2, 2, 1, 1], values: [1, 2, 3, 4])
        let scaled = Reference.multiplyChannels(a, by: scale)
        #expect(scaled[1, 0, 1, 2] == 3 * a[1, 0, 1, 2] && scaled[0, 1, 0, 0] == 2 * a[0, 1, 0, 0])
        #expect(Reference.add(a, a) == a.map { 2 * $0 })
    }
}
