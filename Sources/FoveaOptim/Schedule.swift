#if canImport(Glibc)
import Glibc
#endif

/// A learning-rate schedule: the rate for a given optimizer step, from the base rate.
public enum LearningRateSchedule: Equatable, Sendable, CustomStringConvertible {
    /// The base rate throughout.
    case constant
    /// Multiply by `gamma` every `stepSize` steps (torch StepLR).
    case step(stepSize: Int, gamma: Float)
    /// Cosine annealing from the base rate to `minimum` over `totalSteps` (torch CosineAnnealingLR, one half-period).
    case cosine(totalSteps: Int, minimum: Float)

    /// The learning rate at `step` (0-based count of updates already made).
    public func learningRate(base: Float, step: Int) -> Float {
        switch self {
        case .constant:
            return base
        case let .step(stepSize, gamma):
            return base * powf(gamma, Float(step / max(stepSize, 1)))
        case let .cosine(totalSteps, minimum):
            let t = Double(min(step, totalSteps)) / Double(max(totalSteps, 1))
            return minimum + (base - minimum) * Float((1 + cos(Double.pi * t)) / 2)
        }
    }

    public var description: String {
        switch self {
        case .constant: return "constant"
        case let .step(stepSize, gamma): return "step(every \(stepSize) steps × \(gamma))"
        case let .cosine(totalSteps, minimum): return "cosine(\(totalSteps) steps → \(minimum))"
        }
    }
}
