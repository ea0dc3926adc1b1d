import Foundation
import FoveaTensor
import FoveaNN

/// Elementwise functions and the value helpers the operators share.
extension Compiler {
    /// The elementwise function for unary operators that Fovea computes with `elementwise` (nil for other operators).
    func unaryFunction(_ op: String, _ a: Attributes) throws -> ((Tensor) throws -> Tensor)? {
        func function(_ value: @escaping @Sendable (Float) -> Float, _ derivative: @escaping @Sendable (Float, Float) -> Float)
            -> (Tensor) throws -> Tensor {
            let f = ElementwiseFunction(op, value: value, derivative: derivative)
            return { try elementwise($0, f) }
        }
        switch op {
        case "Abs": return function({ abs($0) }, { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) })
        case "Neg": return function({ -$0 }, { _, _ in -1 })
        case "Exp": return function({ exp($0) }, { _, y in y })
        case "Log": return function({ log($0) }, { x, _ in 1 / x })
        case "Sqrt": return function({ $0.squareRoot() }, { _, y in 0.5 / y })
        case "Reciprocal": return function({ 1 / $0 }, { _, y in -y * y })
        case "Floor": return function({ $0.rounded(.down) }, { _, _ in 0 })
        case "Ceil": return function({ $0.rounded(.up) }, { _, _ in 0 })
        case "Round": return function({ $0.rounded(.toNearestOrEven) }, { _, _ in 0 })
        case "Sign": return function({ $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }, { _, _ in 0 })
        case "Sin": return function({ sin($0) }, { x, _ in cos(x) })
        case "Cos": return function({ cos($0) }, { x, _ in -sin(x) })
        case "Tan": return function({ Foundation.tan($0) }, { _, y in 1 + y * y })
        case "Asin": return function({ asin($0) }, { x, _ in 1 / (1 - x * x).squareRoot() })
        case "Acos": return function({ acos($0) }, { x, _ in -1 / (1 - x * x).squareRoot() })
        case "Atan": return function({ atan($0) }, { x, _ in 1 / (1 + x * x) })
        case "Sinh": return function({ sinh($0) }, { x, _ in cosh(x) })
        case "Cosh": return function({ cosh($0) }, { x, _ in sinh(x) })
        case "Asinh": return function({ asinh($0) }, { x, _ in 1 / (x * x + 1).squareRoot() })
        case "Acosh": return function({ acosh($0) }, { x, _ in 1 / (x * x - 1).squareRoot() })
        case "Atanh": return function({ atanh($0) }, { x, _ in 1 / (1 - x * x) })
        case "Erf": return function({ erf($0) }, { x, _ in 2 / Float.pi.squareRoot() * exp(-x * x) })
        case "Softplus": return function({ $0 > 20 ? $0 : log1p(exp($0)) }, { x, _ in 1 / (1 + exp(-x)) })
        case "Softsign": return function({ $0 / (1 + abs($0)) }, { x, _ in 1 / ((1 + abs(x)) * (1 + abs(x))) })
        case "Elu":
            let alpha = try a.float("alpha", 1)
            return function({ $0 > 0 ? $0 : alpha * (exp($0) - 1) }, { x, y in x > 0 ? 1 : y + alpha })
        case "Celu":
            let alpha = try a.float("alpha", 1)
            return function({ max(0, $0) + min(0, alpha * (exp($0 / alpha) - 1)) }, { x, _ in x > 0 ? 1 : exp(x / alpha) })
        case "Selu":
            let alpha = try a.float("alpha", 1.67326319217681884765625), gamma = try a.float("gamma", 1.05070102214813232421875)
            return function({ $0 > 0 ? gamma * $0 : gamma * alpha * (exp($0) - 1) }, { x, _ in x > 0 ? gamma : gamma * alpha * exp(x) })
        case "ThresholdedRelu":
            let alpha = try a.float("alpha", 1)
            return function({ $0 > alpha ? $0 : 0 }, { x, _ in x > alpha ? 1 : 0 })
        case "HardSigmoid":
            let alpha = try a.float("alpha", 0.2), beta = try a.float("beta", 0.5)
            return function({ max(0, min(1, alpha * $0 + beta)) }, { x, _ in (0 < alpha * x + beta && alpha * x + beta < 1) ? alpha : 0 })
        case "Shrink":
            let bias = try a.float("bias", 0), lambda = try a.float("lambd", 0.5)
            return function({ $0 < -lambda ? $0 + bias : ($0 > lambda ? $0 - bias : 0) }, { x, _ in abs(x) > lambda ? 1 : 0 })
        case "Mish":
            return function({ $0 * Foundation.tanh(log1p(exp($0))) }, { x, _ in
                let t = Foundation.tanh(log1p(exp(x)))
                return t + x * (1 - t * t) / (1 + exp(-x))
            })
        default: return nil
        }
    }
}

/// Clip with constant or run-time bounds, for any bounds (infinite ones included).
func clipFunction(_ lower: Float, _ upper: Float) -> ElementwiseFunction {
    ElementwiseFunction("Clip", value: { min(max($0, lower), upper) }, derivative: { x, _ in x >= lower && x <= upper ? 1 : 0 })
}

/// An integer tensor as floats (exact up to 2²⁴).
func floatTensor(_ integers: ONNXIntegers) throws -> Tensor {
    try Tensor(shape: integers.shape, values: integers.values.map(Float.init))
}

/// A float tensor, or an integer one converted (operands of mixed-type Pow).
func numericTensor(_ value: ONNXValue) throws -> Tensor {
    switch value {
    case let .float(tensor): return tensor
    case let .integer(integers): return try floatTensor(integers)
    }
}

/// A float function applied to an integer tensor, rounded back toward zero (Neg, Abs, Sign, Relu of integers).
func integerMap(_ integers: ONNXIntegers, _ function: (Tensor) throws -> Tensor) throws -> ONNXIntegers {
    let values = try Autodiff.withoutRecording { try function(try floatTensor(integers)).toArray() }
    return ONNXIntegers(shape: integers.shape, values: values.map(integerPart))
}

/// `value` rounded toward zero, saturated to Int64's range (NaN is 0).
func integerPart(_ value: Float) -> Int64 {
    guard value.isFinite else { return value.isNaN ? 0 : (value > 0 ? .max : .min) }
    return abs(value) < 9.2e18 ? Int64(value.rounded(.towardZero)) : (value > 0 ? .max : .min)
}

/// A step argument that must be there.
func present(_ value: ONNXValue?) throws -> ONNXValue {
    guard let value else { throw TensorError.invalidArgument(operation: "input", message: "missing") }
    return value
}

/// The one element of a scalar (or one-element) argument.
func scalar(_ value: ONNXValue?, _ what: String) throws -> Float {
    switch value {
    case let .float(tensor)?:
        guard tensor.count == 1 else { throw TensorError.shapeMismatch(operation: what, expected: "one element", actual: tensor.shape) }
        return try tensor.toArray()[0]
    case let .integer(integers)?:
        guard integers.values.count == 1 else { throw TensorError.shapeMismatch(operation: what, expected: "one element", actual: integers.shape) }
        return Float(integers.values[0])
    case nil: throw TensorError.invalidArgument(operation: what, message: "missing")
    }
}

/// Integer Add, Sub, Mul, Div and Pow with two's-complement wrapping (no trap on overflow).
func integerArithmetic(_ op: String, _ a: Int64, _ b: Int64) throws -> Int64 {
    switch op {
    case "Add": return a &+ b
    case "Sub": return a &- b
    case "Mul": return a &* b
    case "Div":
        guard b != 0 else { throw TensorError.invalidArgument(operation: "Div", message: "integer division by zero") }
        return a.dividedReportingOverflow(by: b).partialValue
    default:
        guard b >= 0, b < 64 else { throw TensorError.invalidArgument(operation: "Pow", message: "integer exponent \(b)") }
        var result: Int64 = 1
        for _ in 0..<b { result = result &* a }
        return result
    }
}

/// A value of either type with a new shape of equal count.
func reshape(_ value: ONNXValue, _ shape: [Int]) throws -> ONNXValue {
    switch value {
    case let .float(tensor): return .float(try tensor.reshaped(shape))
    case let .integer(integers):
        guard (try? Indexing.checkedCount(shape, "reshape")) == integers.values.count else {
            throw TensorError.shapeMismatch(operation: "reshape", expected: "\(shape)", actual: integers.shape)
        }
        return .integer(ONNXIntegers(shape: shape, values: integers.values))
    }
}

/// A value of either type remapped by (shape, sources) from `Indexing`.
func remapValue(_ value: ONNXValue, _ mapping: ([Int], [Int])) throws -> ONNXValue {
    switch value {
    case let .float(tensor): return .float(try remap(tensor, to: mapping.0, sources: mapping.1))
    case let .integer(integers): return .integer(integers.remapped(mapping.0, mapping.1))
    }
}


/// Concatenation along `axis`: channels of 4-D float tensors on the fast path, anything else by remapping.
func concatenate(_ values: [ONNXValue], axis: Int) throws -> ONNXValue {
    guard let first = values.first else { throw TensorError.invalidArgument(operation: "Concat", message: "no inputs") }
    let rank = first.shape.count
    let axis = try Indexing.axis(axis, rank: rank)
    for value in values where value.shape.count != rank || (0..<rank).contains(where: { $0 != axis && value.shape[$0] != first.shape[$0] }) {
        throw TensorError.incompatibleShapes(operation: "Concat", first.shape, value.shape)
    }
    var shape = first.shape
    shape[axis] = values.reduce(0) { $0 + $1.shape[axis] }
    if case .integer = first {
        let parts = try values.map { try integerValue($0, "Concat input") }
        var result = [Int64](repeating: 0, count: shape.reduce(1, *))
        var offset = 0
        for part in parts {
            for (i, s) in Indexing.concatenationPart(part.shape, into: shape, axis: axis, offset: offset).enumerated() where s >= 0 {
                result[i] = part.values[s]
            }
            offset += part.shape[axis]
        }
        return .integer(ONNXIntegers(shape: shape, values: result))
    }
    let tensors = try values.map { try floatValue($0, "Concat input") }
    if rank == 4 && axis == 1 { return .float(try concatenateChannels(tensors, name: "Concat")) }
    if tensors.count == 1 { return .float(tensors[0]) }
    var result: Tensor?
    var offset = 0
    for tensor in tensors {
        let part = try remap(tensor, to: shape, sources: Indexing.concatenationPart(tensor.shape, into: shape, axis: axis, offset: offset),
                             name: "Concat")
        result = try result.map { try checkedBroadcast($0, part, .add, name: "Concat") } ?? part
        offset += tensor.shape[axis]
    }
    return .float(result ?? tensors[0])
}

/// Softmax along `axis`; `coerced` is the rule before opset 13 (flatten to 2-D at `axis`).
func softmax(_ x: Tensor, axis: Int, log: Bool, coerced: Bool) throws -> Tensor {
    let shape = x.shape
    guard !shape.isEmpty else { throw TensorError.shapeMismatch(operation: log ? "LogSoftmax" : "Softmax", expected: "at least 1-D", actual: shape) }
    let rank = shape.count
    let axis = try Indexing.axis(axis, rank: rank)
    if x.count == 0 { return x }
    let apply = { (t: Tensor) throws -> Tensor in log ? try logSoftmax(t) : try FoveaTensor.softmax(t) }
    if coerced || axis == rank - 1 {
        let rows = coerced ? shape[..<axis].reduce(1, *) : shape.dropLast().reduce(1, *)
        let flat = try x.reshaped([rows, x.count / max(rows, 1)])
        return try apply(flat).reshaped(shape)
    }
    // Move the axis last, normalise rows, move it back.
    var permutation = Array(0..<rank)
    permutation.remove(at: axis)
    permutation.append(axis)
    let moved = try x.transposed(permutation)
    let normalized = try apply(moved.reshaped([moved.count / shape[axis], shape[axis]])).reshaped(moved.shape)
    var inverse = [Int](repeating: 0, count: rank)
    for (i, p) in permutation.enumerated() { inverse[p] = i }
    return try normalized.transposed(inverse)
}


/// `broadcast(a, b, operation)` after checking that the result stays within the running graph's element limit.
func checkedBroadcast(_ a: Tensor, _ b: Tensor, _ operation: BroadcastOperation, name: String = "broadcast") throws -> Tensor {
    guard let shape = broadcastShape(a.shape, b.shape) else {
        throw TensorError.incompatibleShapes(operation: "\(name) (\(operation.rawValue))", a.shape, b.shape)
    }
    // An empty result has nothing to compute (and Fovea's channel kernels are not for empty tensors).
    if try Indexing.checkedCount(shape, name) == 0 { return Tensor.zeros(shape) }
    return try broadcast(a, b, operation, name: name)
}
