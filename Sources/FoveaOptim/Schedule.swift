#if canImport(Glibc)
import Glibc
#endif

/// A learning-rate schedule: the rate for a given step (an optimizer step or an epoch, as the trainer
/// chooses) from the base rate. A pure function of the step, so a resumed run continues exactly.
public indirect enum LearningRateSchedule: Equatable, Sendable, CustomStringConvertible {
    /// The base rate throughout.
    case constant
    /// Multiply by `gamma` every `stepSize` steps (torch StepLR).
    case step(stepSize: Int, gamma: Float)
    /// Multiply by `gamma` at each milestone (torch MultiStepLR).
    case multiStep(milestones: [Int], gamma: Float)
    /// Multiply by `gamma` every step (torch ExponentialLR).
    case exponential(gamma: Float)
    /// Cosine annealing from the base rate to `minimum` over `totalSteps` (torch CosineAnnealingLR, one half-period).
    case cosine(totalSteps: Int, minimum: Float)
    /// One-cycle policy (Smith & Topin 2017; torch OneCycleLR with cosine annealing): from base/`divisor` up to
    /// the base rate over the first `warmupFraction` of `totalSteps`, then down to base/(`divisor`·`finalDivisor`).
    case oneCycle(totalSteps: Int, warmupFraction: Float, divisor: Float, finalDivisor: Float)
    /// Linear warm-up from `startFactor`×rate to the full rate over `steps` steps, then `then` counted from zero
    /// (torch LinearLR followed by SequentialLR).
    case warmup(steps: Int, startFactor: Float, then: LearningRateSchedule)

    /// The learning rate at `step` (0-based count of steps already taken).
    public func learningRate(base: Float, step: Int) -> Float {
        switch self {
        case .constant:
            return base
        case let .step(stepSize, gamma):
            return base * powf(gamma, Float(step / max(stepSize, 1)))
        case let .multiStep(milestones, gamma):
            return base * powf(gamma, Float(milestones.filter { step >= $0 }.count))
        case let .exponential(gamma):
            return base * powf(gamma, Float(step))
        case let .cosine(totalSteps, minimum):
            let t = Double(min(step, totalSteps)) / Double(max(totalSteps, 1))
            return minimum + (base - minimum) * Float((1 + cos(Double.pi * t)) / 2)
        case let .oneCycle(totalSteps, warmupFraction, divisor, finalDivisor):
            let initial = base / divisor, final = initial / finalDivisor
            let peakStep = Double(warmupFraction) * Double(totalSteps) - 1
            let lastStep = Double(totalSteps - 1)
            let s = Double(min(step, totalSteps - 1))
            func anneal(_ from: Float, _ to: Float, _ fraction: Double) -> Float {
                to + (from - to) * Float((1 + cos(Double.pi * min(max(fraction, 0), 1))) / 2)
            }
            if s <= peakStep { return anneal(initial, base, peakStep > 0 ? s / peakStep : 1) }
            return anneal(base, final, (s - peakStep) / max(lastStep - peakStep, 1))
        case let .warmup(steps, startFactor, then):
            if step < steps { return base * (startFactor + (1 - startFactor) * Float(step) / Float(max(steps, 1))) }
            return then.learningRate(base: base, step: step - steps)
        }
    }

    public var description: String {
        switch self {
        case .constant: return "constant"
        case let .step(stepSize, gamma): return "step(every \(stepSize) × \(gamma))"
        case let .multiStep(milestones, gamma): return "multi-step(at \(milestones) × \(gamma))"
        case let .exponential(gamma): return "exponential(× \(gamma))"
        case let .cosine(totalSteps, minimum): return "cosine(\(totalSteps) → \(minimum))"
        case let .oneCycle(totalSteps, fraction, divisor, finalDivisor):
            return "one-cycle(\(totalSteps), warm-up \(fraction), ÷\(divisor), ÷\(finalDivisor))"
        case let .warmup(steps, startFactor, then): return "warm-up(\(steps) from ×\(startFactor)) then \(then)"
        }
    }
}

/// Reduce-on-plateau (torch ReduceLROnPlateau, mode "min" or "max", relative threshold): multiplies the rate
/// by `factor` when the monitored metric has not improved for more than `patience` evaluations.
public struct ReduceOnPlateau: Equatable, Sendable, Codable {
    public var factor: Float
    public var patience: Int
    public var threshold: Double
    public var minimum: Float
    /// True when larger is better (accuracy), false when smaller is (loss).
    public var maximize: Bool
    /// The best metric so far and evaluations since it improved.
    public private(set) var best: Double?
    public private(set) var badEvaluations = 0
    /// The scale applied to the scheduled rate so far.
    public private(set) var scale: Float = 1

    /// Creates the policy.
    public init(factor: Float = 0.1, patience: Int = 10, threshold: Double = 1e-4, minimum: Float = 0, maximize: Bool = false) {
        (self.factor, self.patience, self.threshold, self.minimum, self.maximize) = (factor, patience, threshold, minimum, maximize)
    }

    /// Records one evaluation of the metric; returns the new scale.
    @discardableResult
    public mutating func record(_ metric: Double) -> Float {
        let improved: Bool
        if let best {
            improved = maximize ? metric > best * (1 + threshold) : metric < best * (1 - threshold)
        } else {
            improved = true
        }
        if improved {
            best = metric
            badEvaluations = 0
        } else {
            badEvaluations += 1
            if badEvaluations > patience {
                scale *= factor
                badEvaluations = 0
            }
        }
        return scale
    }

    /// The rate to use given the scheduled rate (never below `minimum`).
    public func apply(to rate: Float) -> Float { max(rate * scale, minimum) }
}
