/// Errors raised by tensor operations: shapes that do not fit and failures inside oneDNN.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    /// An operation got an input whose shape does not fit; `operation` names the op or layer.
    case shapeMismatch(operation: String, expected: String, actual: [Int])
    /// Two inputs of an operation disagree in shape.
    case incompatibleShapes(operation: String, [Int], [Int])
    /// An argument is outside its valid range (e.g. a stride of 0).
    case invalidArgument(operation: String, message: String)
    /// oneDNN refused or failed a call; `call` is the C function, `status` its status code.
    case kernelFailure(call: String, status: Int32)
    /// A value that must be finite (a loss, a gradient) is NaN or infinite.
    case nonFinite(what: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(operation, expected, actual):
            return "\(operation): expected input of shape \(expected), got \(actual)"
        case let .incompatibleShapes(operation, a, b):
            return "\(operation): shapes \(a) and \(b) do not fit together"
        case let .invalidArgument(operation, message):
            return "\(operation): \(message)"
        case let .kernelFailure(call, status):
            return "oneDNN call \(call) failed with status \(status) (\(kernelStatusName(status)))"
        case let .nonFinite(what):
            return "\(what) is not finite (NaN or infinity)"
        }
    }
}

func kernelStatusName(_ status: Int32) -> String {
    switch status {
    case 1: return "out of memory"
    case 2: return "invalid arguments"
    case 3: return "unimplemented for these shapes and layouts"
    case 4: return "iterator ends"
    case 5: return "runtime error"
    case 6: return "not required"
    default: return "status \(status)"
    }
}
