import Foundation
import FoveaData
import FoveaTensor
import Testing

/// Sample mean and variance with their standard errors (the variance's from the sample's fourth central moment).
struct SampleMoments {
    var mean = 0.0, variance = 0.0, meanError = 0.0, varianceError = 0.0

    init(_ values: [Double]) {
        let n = Double(values.count)
        mean = values.reduce(0, +) / n
        let deviations = values.map { $0 - mean }
        variance = deviations.reduce(0) { $0 + $1 * $1 } / (n - 1)
        let fourth = deviations.reduce(0) { $0 + $1 * $1 * $1 * $1 } / n
        meanError = (variance / n).squareRoot()
        varianceError = (max(fourth - variance * variance, 0) / n).squareRoot()
    }
}

/// Kolmogorov–Smirnov distance between the sample and a distribution function.
func kolmogorovSmirnov(_ values: [Double], cdf: (Double) -> Double) -> Double {
    let sorted = values.sorted(), n = Double(values.count)
    var distance = 0.0
    for (index, value) in sorted.enumerated() {
        let f = cdf(value)
        distance = max(distance, abs(Double(index + 1) / n - f), abs(f - Double(index) / n))
    }
    return distance
}

@Suite("Gamma and Beta samplers")
struct RandomDistributionTests {
    static let drawCount = 20_000

    @Test("Gamma(k) has mean k and variance k", arguments: [0.1, 0.3, 1, 2.5, 9])
    func gammaMoments(shape: Double) throws {
        let gamma = try GammaDistribution(shape: shape)
        var generator = SeededGenerator(seed: 50)
        let moments = SampleMoments((0..<Self.drawCount).map { _ in gamma.sample(using: &generator) })
        // Five standard errors: a correct sampler fails with probability ~1e-6, a wrong shape or missing boost always.
        #expect(abs(moments.mean - shape) < 5 * (shape / Double(Self.drawCount)).squareRoot(), "mean \(moments.mean)")
        #expect(abs(moments.variance - shape) < 5 * moments.varianceError, "variance \(moments.variance)")
    }

    @Test("Beta(α, β) has mean α/(α+β) and variance αβ/((α+β)²(α+β+1))",
          arguments: [(0.2, 0.2), (0.4, 0.4), (1.0, 1.0), (4.0, 4.0), (2.0, 5.0), (0.5, 3.0)])
    func betaMoments(alpha: Double, beta: Double) throws {
        let distribution = try BetaDistribution(alpha: alpha, beta: beta)
        let sum = alpha + beta
        let (mean, variance) = (alpha / sum, alpha * beta / (sum * sum * (sum + 1)))
        #expect(abs(distribution.mean - mean) < 1e-15 && abs(distribution.variance - variance) < 1e-15)
        var generator = SeededGenerator(seed: 51)
        let values = (0..<Self.drawCount).map { _ in distribution.sample(using: &generator) }
        #expect(values.allSatisfy { (0...1).contains($0) })
        let moments = SampleMoments(values)
        #expect(abs(moments.mean - mean) < 5 * (variance / Double(Self.drawCount)).squareRoot(), "mean \(moments.mean) vs \(mean)")
        #expect(abs(moments.variance - variance) < 5 * moments.varianceError, "variance \(moments.variance) vs \(variance)")
    }

    @Test("Beta draws follow the distribution function (Kolmogorov–Smirnov)")
    func betaDistributionFunction() throws {
        // Closed-form distribution functions: Beta(1, 1) is uniform, Beta(½, ½) the arcsine law, Beta(2, 1) has F(x) = x².
        let cases: [(Double, Double, (Double) -> Double)] = [
            (1, 1, { $0 }), (0.5, 0.5, { 2 / Double.pi * asin($0.squareRoot()) }), (2, 1, { $0 * $0 }),
        ]
        for (alpha, beta, cdf) in cases {
            let distribution = try BetaDistribution(alpha: alpha, beta: beta)
            var generator = SeededGenerator(seed: 52)
            let values = (0..<5000).map { _ in distribution.sample(using: &generator) }
            // 1.95/√n is the 0.1 % critical value.
            let distance = kolmogorovSmirnov(values, cdf: cdf)
            #expect(distance < 1.95 / (5000.0).squareRoot(), "Beta(\(alpha), \(beta)): KS distance \(distance)")
        }
    }

    @Test("very small shapes neither underflow to 0/0 nor leave [0, 1]")
    func tinyShapes() throws {
        let distribution = try BetaDistribution(alpha: 0.01, beta: 0.01)
        var generator = SeededGenerator(seed: 53)
        let values = (0..<2000).map { _ in distribution.sample(using: &generator) }
        #expect(values.allSatisfy { $0.isFinite && (0...1).contains($0) })
        // Beta(0.01, 0.01) puts almost all mass near 0 and 1, half on each side.
        let low = values.filter { $0 < 0.5 }.count
        #expect(abs(Double(low) / 2000 - 0.5) < 0.06, "\(low) of 2000 below ½")
    }

    @Test("parameters that are not positive and finite are typed errors")
    func badParameters() {
        for bad in [0, -1, Double.nan, .infinity] {
            #expect(throws: TensorError.self) { try GammaDistribution(shape: bad) }
            #expect(throws: TensorError.self) { try BetaDistribution(alpha: bad, beta: 1) }
            #expect(throws: TensorError.self) { try BetaDistribution(alpha: 1, beta: bad) }
        }
    }
}

@Suite("MixUp and CutMix")
struct BatchMixingTests {
    /// (N, C, H, W) images whose every element is distinct: sample s, flat position p holds s·1000 + p + ½.
    func distinctImages(_ n: Int, _ channels: Int, _ height: Int, _ width: Int) throws -> Tensor {
        let size = channels * height * width
        return try Tensor(shape: [n, channels, height, width], values: (0..<(n * size)).map { Float(($0 / size) * 1000 + $0 % size) + 0.5 })
    }

    func randomImages(_ shape: [Int], seed: UInt64) throws -> Tensor {
        var generator = SeededGenerator(seed: seed)
        return try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) })
    }

    @Test("MixUp with λ = 1 is the identity; with λ = ½ each pixel is the mean of the pair")
    func mixUpIdentities() throws {
        let images = try randomImages([4, 3, 5, 6], seed: 60)
        let x = try images.toArray(), size = 90
        #expect(try BatchMixing.mixUp(images, lambda: 1).toArray() == x)
        let half = try BatchMixing.mixUp(images, lambda: 0.5).toArray()
        for index in 0..<x.count {
            let partner = (index / size + 3) % 4 * size + index % size
            #expect(half[index] == (x[index] + x[partner]) / 2, "element \(index)")
        }
        // λ = 0.3 against the definition in Double.
        let mixed = try BatchMixing.mixUp(images, lambda: 0.3).toArray()
        let expected = (0..<x.count).map { 0.3 * Double(x[$0]) + 0.7 * Double(x[($0 / size + 3) % 4 * size + $0 % size]) }
        #expect(zip(mixed, expected).allSatisfy { abs(Double($0) - $1) < 1e-6 * max(1, abs($1)) })
    }

    @Test("MixUp targets are λ·onehot(own) + (1 − λ)·onehot(partner), then smoothed")
    func mixUpTargets() throws {
        let labels: [Int32] = [2, 0, 0, 3]
        let images = try randomImages([4, 1, 2, 2], seed: 61)
        for smoothing in [0.0, 0.2] {
            let (_, targets) = try BatchMixing.apply(.mixUp(lambda: 0.7), images: images, labels: labels, classCount: 4,
                                                     labelSmoothing: smoothing)
            #expect(targets.shape == [4, 4])
            let t = try targets.toArray()
            // Sample i's partner is sample i − 1 (sample 0's is sample 3): partner labels 3, 2, 0, 0.
            let unsmoothed: [[Double]] = [[0, 0, 0.7, 0.3], [0.7, 0, 0.3, 0], [1, 0, 0, 0], [0.3, 0, 0, 0.7]]
            for sample in 0..<4 {
                for k in 0..<4 {
                    let expected = (1 - smoothing) * unsmoothed[sample][k] + smoothing / 4
                    #expect(abs(Double(t[sample * 4 + k]) - expected) < 1e-7, "sample \(sample), class \(k)")
                }
            }
        }
    }

    @Test("CutMix boxes: ⌊½·√(1 − λ)·size⌋ half-sides around the centre, clipped to the image")
    func cutMixBoxes() {
        // λ = 0.75 on 32×32: half-sides ⌊0.25·32⌋ = 8.
        #expect(BatchMixing.cutMixBox(lambda: 0.75, height: 32, width: 32, centerRow: 16, centerColumn: 10)
                    == PixelBox(top: 8, left: 2, bottom: 24, right: 18))
        #expect(BatchMixing.cutMixBox(lambda: 0.75, height: 32, width: 32, centerRow: 3, centerColumn: 30)
                    == PixelBox(top: 0, left: 22, bottom: 11, right: 32))
        // Non-square: λ = 0.19 on 20×10 gives half-sides ⌊0.45·20⌋ = 9 and ⌊0.45·10⌋ = 4.
        #expect(BatchMixing.cutMixBox(lambda: 0.19, height: 20, width: 10, centerRow: 12, centerColumn: 5)
                    == PixelBox(top: 3, left: 1, bottom: 20, right: 9))
        // λ = 1: an empty box; λ = 0 at the centre: the whole image.
        #expect(BatchMixing.cutMixBox(lambda: 1, height: 8, width: 8, centerRow: 4, centerColumn: 4).area == 0)
        #expect(BatchMixing.cutMixBox(lambda: 0, height: 8, width: 8, centerRow: 4, centerColumn: 4)
                    == PixelBox(top: 0, left: 0, bottom: 8, right: 8))
    }

    @Test("CutMix pastes the partner's window, leaves the rest, and weighs targets by pixel area",
          arguments: [PixelBox(top: 1, left: 2, bottom: 4, right: 7), PixelBox(top: 0, left: 0, bottom: 5, right: 8),
                      PixelBox(top: 3, left: 3, bottom: 3, right: 6)])
    func cutMixPaste(box: PixelBox) throws {
        let (n, channels, height, width) = (3, 2, 5, 8)
        let images = try distinctImages(n, channels, height, width)
        let labels: [Int32] = [0, 1, 2]
        let (mixed, targets) = try BatchMixing.apply(.cutMix(box: box), images: images, labels: labels, classCount: 3)
        let x = try images.toArray(), y = try mixed.toArray(), t = try targets.toArray()
        let size = channels * height * width
        for sample in 0..<n {
            let partner = (sample + n - 1) % n
            var fromPartner = 0
            for c in 0..<channels {
                for row in 0..<height {
                    for column in 0..<width {
                        let offset = (c * height + row) * width + column
                        let inside = (box.top..<box.bottom).contains(row) && (box.left..<box.right).contains(column)
                        let source = inside ? partner : sample
                        #expect(y[sample * size + offset] == x[source * size + offset], "sample \(sample) (\(c), \(row), \(column))")
                        if y[sample * size + offset] == x[partner * size + offset] { fromPartner += 1 }
                    }
                }
            }
            // Labels are distinct, so the partner's class weight is the share of pixels that came from the partner.
            let share = Double(fromPartner) / Double(size)
            #expect(abs(Double(t[sample * 3 + Int(labels[partner])]) - share) < 1e-6)
            #expect(abs(Double(t[sample * 3 + Int(labels[sample])]) - (1 - share)) < 1e-6)
        }
    }

    @Test("drawing: mix probability, the switch between MixUp and CutMix, and reproducible batch streams")
    func drawing() throws {
        func kinds(_ mixing: BatchMixing, draws: Int = 2000) -> (none: Int, mixUp: Int, cutMix: Int) {
            var counts = (none: 0, mixUp: 0, cutMix: 0)
            for batch in 0..<draws {
                var generator = BatchMixing.generator(seed: 7, epoch: 1, batch: batch)
                switch mixing.draw(height: 16, width: 12, using: &generator) {
                case .none: counts.none += 1
                case let .mixUp(lambda): counts.mixUp += 1; #expect((0...1).contains(lambda))
                case let .cutMix(box):
                    counts.cutMix += 1
                    #expect(box.top >= 0 && box.left >= 0 && box.bottom <= 16 && box.right <= 12)
                }
            }
            return counts
        }
        #expect(kinds(try BatchMixing(mixUpAlpha: 0.2)) == (0, 2000, 0))
        #expect(kinds(try BatchMixing(cutMixAlpha: 1)) == (0, 0, 2000))
        #expect(kinds(try BatchMixing(mixUpAlpha: 0.2, cutMixAlpha: 1, probability: 0)) == (2000, 0, 0))
        #expect(kinds(try BatchMixing()) == (2000, 0, 0))
        #expect(kinds(try BatchMixing(mixUpAlpha: 0.2, cutMixAlpha: 1, switchProbability: 0)) == (0, 2000, 0))
        #expect(kinds(try BatchMixing(mixUpAlpha: 0.2, cutMixAlpha: 1, switchProbability: 1)) == (0, 0, 2000))
        // Binomial counts: standard deviation ≈ 20 of 2000 draws; 100 is five of them.
        let switched = kinds(try BatchMixing(mixUpAlpha: 0.2, cutMixAlpha: 1, switchProbability: 0.3))
        #expect(switched.none == 0 && abs(switched.cutMix - 600) < 100, "\(switched)")
        let sometimes = kinds(try BatchMixing(mixUpAlpha: 0.2, cutMixAlpha: 1, probability: 0.6))
        #expect(abs(sometimes.none - 800) < 100 && abs(sometimes.cutMix - 600) < 100, "\(sometimes)")

        // The same (seed, epoch, batch) draws the same mix; other batches draw others.
        let mixing = try BatchMixing(mixUpAlpha: 0.4, cutMixAlpha: 1)
        func draw(_ seed: UInt64, _ epoch: Int, _ batch: Int) -> BatchMix {
            var generator = BatchMixing.generator(seed: seed, epoch: epoch, batch: batch)
            return mixing.draw(height: 32, width: 32, using: &generator)
        }
        #expect(draw(3, 2, 5) == draw(3, 2, 5))
        let others = [draw(3, 2, 6), draw(3, 3, 5), draw(4, 2, 5)]
        #expect(others.allSatisfy { $0 != draw(3, 2, 5) })
        // The batch stream is not the per-sample augmentation stream of the same numbers.
        #expect(BatchMixing.generator(seed: 3, epoch: 2, batch: 5) != SeededGenerator(seed: 3, stream: 2, 5))
    }

    @Test("drawn MixUp λ follow Beta(α, α) of MixUp's α, not CutMix's")
    func drawnLambda() throws {
        let mixing = try BatchMixing(mixUpAlpha: 0.4, cutMixAlpha: 3, switchProbability: 0.5)
        var lambdas: [Double] = []
        for batch in 0..<8000 {
            var generator = BatchMixing.generator(seed: 11, epoch: 1, batch: batch)
            if case let .mixUp(lambda) = mixing.draw(height: 8, width: 8, using: &generator) { lambdas.append(lambda) }
        }
        // Beta(0.4, 0.4): mean ½, variance 1/(4·1.8) ≈ 0.139; Beta(3, 3) would give 1/28 ≈ 0.036.
        let moments = SampleMoments(lambdas)
        #expect(abs(moments.mean - 0.5) < 5 * moments.meanError, "mean \(moments.mean)")
        #expect(abs(moments.variance - 1 / 7.2) < 5 * moments.varianceError, "variance \(moments.variance)")
    }

    @Test("bad input is a typed error, never a crash")
    func badInput() throws {
        let images = try randomImages([2, 1, 4, 4], seed: 62)
        #expect(throws: TensorError.self) { try BatchMixing(mixUpAlpha: -1) }
        #expect(throws: TensorError.self) { try BatchMixing(cutMixAlpha: .infinity) }
        #expect(throws: TensorError.self) { try BatchMixing(mixUpAlpha: 1, probability: 1.5) }
        #expect(throws: TensorError.self) { try BatchMixing(mixUpAlpha: 1, switchProbability: -0.1) }
        #expect(throws: TensorError.self) { try BatchMixing.apply(.none, images: images, labels: [0], classCount: 2) }
        #expect(throws: TensorError.self) {
            try BatchMixing.apply(.none, images: Tensor.zeros([2, 16]), labels: [0, 1], classCount: 2)
        }
        do {
            _ = try BatchMixing.apply(.mixUp(lambda: 0.5), images: images, labels: [0, 5], classCount: 3)
            Issue.record("label 5 of 3 classes accepted")
        } catch let TensorError.invalidArgument(_, message) {
            #expect(message.contains("label 5 at index 1"), "\(message)")
        }
        #expect(throws: TensorError.self) { try BatchMixing.mixUp(images, lambda: 1.2) }
        #expect(throws: TensorError.self) {
            try BatchMixing.cutMix(images, box: PixelBox(top: 0, left: 2, bottom: 3, right: 5))
        }
        #expect(throws: TensorError.self) {
            try BatchMixing.apply(.none, images: images, labels: [0, 1], classCount: 2, labelSmoothing: 1)
        }
    }
}
