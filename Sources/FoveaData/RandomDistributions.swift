import FoveaTensor
#if canImport(Glibc)
import Glibc
#endif

/// The Gamma(shape, 1) distribution, sampled with Marsaglia & Tsang's squeeze method
/// ("A simple method for generating gamma variables", ACM TOMS 26(3), 2000).
///
/// Shapes below one use their boost Gamma(a) = Gamma(a + 1)·U^(1/a). Samples are produced as logarithms first,
/// because for small shapes (a = 0.1) a draw is often far below the smallest Double.
public struct GammaDistribution: Equatable, Sendable {
    /// The shape parameter k (mean and variance are both k).
    public let shape: Double

    /// Creates the distribution; throws `TensorError.invalidArgument` unless `shape` is positive and finite.
    public init(shape: Double) throws {
        guard shape > 0, shape.isFinite else {
            throw TensorError.invalidArgument(operation: "GammaDistribution", message: "shape \(shape) must be positive and finite")
        }
        self.shape = shape
    }

    /// The logarithm of one draw.
    public func logSample(using generator: inout SeededGenerator) -> Double {
        guard shape < 1 else { return Self.logSampleAtLeastOne(shape, using: &generator) }
        // 1 − U lies in (0, 1], so its logarithm is finite.
        let boost = log(1 - generator.nextDouble()) / shape
        return Self.logSampleAtLeastOne(shape + 1, using: &generator) + boost
    }

    /// One draw.
    public func sample(using generator: inout SeededGenerator) -> Double { exp(logSample(using: &generator)) }

    /// Marsaglia–Tsang for a ≥ 1: d·v with v = (1 + c·x)³, x standard normal, accepted by a squeeze or the log test.
    private static func logSampleAtLeastOne(_ a: Double, using generator: inout SeededGenerator) -> Double {
        let d = a - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = generator.nextNormal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = 1 - generator.nextDouble()
            let square = x * x
            if u < 1 - 0.0331 * square * square || log(u) < 0.5 * square + d * (1 - v + log(v)) {
                return log(d) + log(v)
            }
        }
    }
}

/// The Beta(α, β) distribution on [0, 1], sampled as X / (X + Y) with X ~ Gamma(α), Y ~ Gamma(β).
public struct BetaDistribution: Equatable, Sendable {
    /// The two shape parameters.
    public let alpha: Double, beta: Double
    private let first: GammaDistribution, second: GammaDistribution

    /// Creates the distribution; throws `TensorError.invalidArgument` unless both parameters are positive and finite.
    public init(alpha: Double, beta: Double) throws {
        guard alpha > 0, alpha.isFinite, beta > 0, beta.isFinite else {
            throw TensorError.invalidArgument(operation: "BetaDistribution",
                                              message: "parameters α = \(alpha), β = \(beta) must be positive and finite")
        }
        (self.alpha, self.beta) = (alpha, beta)
        (first, second) = (try GammaDistribution(shape: alpha), try GammaDistribution(shape: beta))
    }

    /// The mean α / (α + β).
    public var mean: Double { alpha / (alpha + beta) }
    /// The variance αβ / ((α + β)²(α + β + 1)).
    public var variance: Double { alpha * beta / ((alpha + beta) * (alpha + beta) * (alpha + beta + 1)) }

    /// One draw in [0, 1].
    public func sample(using generator: inout SeededGenerator) -> Double {
        let logX = first.logSample(using: &generator), logY = second.logSample(using: &generator)
        // X / (X + Y) = 1 / (1 + Y/X), from the logarithms so tiny X and Y do not give 0 / 0.
        return 1 / (1 + exp(logY - logX))
    }
}
