/// Errors that stop a training or evaluation run.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// The loss became NaN or infinite.
    case nonFiniteLoss(step: Int, epoch: Int, value: Float)
    /// A gradient became NaN or infinite.
    case nonFiniteGradient(step: Int, epoch: Int, parameter: String)
    /// An option is out of range.
    case invalidOption(String)
    /// A model file or its sidecar is unusable.
    case badModelFile(path: String, reason: String)
    /// Writing an output file failed.
    case cannotWrite(path: String, reason: String)
    /// There is nothing to train on or evaluate (every sample skipped, an empty split); nothing is written.
    case noSamples(String)
    /// The model's outputs are NaN or infinite for an input, so it has no answer to give.
    case nonFiniteOutput(input: String, value: Float)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(step, epoch, value):
            return "training stopped: the loss is \(value) at step \(step) (epoch \(epoch)); lower --lr or check the data. "
                + "Files written before this step are intact."
        case let .nonFiniteGradient(step, epoch, parameter):
            return "training stopped: the gradient of \(parameter) is not finite at step \(step) (epoch \(epoch)); "
                + "lower --lr or clip gradients (--clip-grad-norm). The last checkpoint is intact."
        case let .invalidOption(message): return message
        case let .badModelFile(path, reason): return "\(path): \(reason)"
        case let .cannotWrite(path, reason): return "cannot write \(path): \(reason)"
        case let .noSamples(message): return message
        case let .nonFiniteOutput(input, value):
            return "the model's output for \(input) is \(value): its weights give no answer (they overflow on this input)"
        }
    }
}
