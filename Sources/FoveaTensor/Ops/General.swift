import Foundation

/// General N-dimensional operations on plain tensors: NumPy-style broadcasting arithmetic, elementwise functions, index
/// remapping (transpose, pad, slice, gather, tile, expand all are one), reductions and batched matrix products. They
/// exist for graphs that come from elsewhere (ONNX); the zoo's layers use the fused oneDNN kernels instead. All are
/// differentiable, and all take any layout (reordering to plain first) and return plain tensors.

/// An elementwise binary operation with NumPy broadcasting.
public enum BroadcastOperation: String, Sendable, CaseIterable {
    case add, subtract, multiply, divide, power, maximum, minimum

    func apply(_ a: Float, _ b: Float) -> Float {
        switch self {
        case .add: a + b
        case .subtract: a - b
        case .multiply: a * b
        case .divide: a / b
        case .power: pow(a, b)
        case .maximum: a.isNaN || b.isNaN ? .nan : Swift.max(a, b)
        case .minimum: a.isNaN || b.isNaN ? .nan : Swift.min(a, b)
        }
    }

    /// ∂(a op b)/∂a and ∂(a op b)/∂b at (a, b), given the result y.
    func derivatives(_ a: Float, _ b: Float, _ y: Float) -> (Float, Float) {
        switch self {
        case .add: (1, 1)
        case .subtract: (1, -1)
        case .multiply: (b, a)
        case .divide: (1 / b, -a / (b * b))
        case .power: (b * pow(a, b - 1), a > 0 ? y * log(a) : 0)
        case .maximum: a >= b ? (1, 0) : (0, 1)
        case .minimum: a <= b ? (1, 0) : (0, 1)
        }
    }
}

/// The shape two shapes broadcast to (NumPy rules: aligned from the right, each pair equal or one of them 1).
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var result = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        guard x == y || x == 1 || y == 1 else { return nil }
        result[i] = x == 1 ? y : x
    }
    return result
}

/// Row-major strides of `shape` as seen from `outputShape` it broadcasts to: 0 along broadcast axes.
func broadcastStrides(_ shape: [Int], to outputShape: [Int]) -> [Int] {
    var strides = [Int](repeating: 0, count: outputShape.count)
    var stride = 1
    for i in Swift.stride(from: shape.count - 1, through: 0, by: -1) {
        let axis = outputShape.count - shape.count + i
        strides[axis] = shape[i] == 1 ? 0 : stride
        stride *= shape[i]
    }
    return strides
}

/// Calls `body(outputIndex, offsetA, offsetB)` for every element of `shape` in row-major order, with the offsets that
/// `stridesA` and `stridesB` give (an odometer: no division per element).
func forEachBroadcast(_ shape: [Int], _ stridesA: [Int], _ stridesB: [Int], _ body: (Int, Int, Int) -> Void) {
    let count = shape.reduce(1, *)
    guard count > 0 else { return }
    let rank = shape.count
    if rank == 0 { body(0, 0, 0); return }
    var index = [Int](repeating: 0, count: rank)
    var (a, b) = (0, 0)
    let inner = shape[rank - 1], innerA = stridesA[rank - 1], innerB = stridesB[rank - 1]
    var output = 0
    while output < count {
        var (x, y) = (a, b)
        for _ in 0..<inner {
            body(output, x, y)
            output += 1
            x += innerA
            y += innerB
        }
        var axis = rank - 2
        while axis >= 0 {
            index[axis] += 1
            a += stridesA[axis]
            b += stridesB[axis]
            if index[axis] < shape[axis] { break }
            a -= stridesA[axis] * shape[axis]
            b -= stridesB[axis] * shape[axis]
            index[axis] = 0
            axis -= 1
        }
        if axis < 0 { break }
    }
}

/// Sums `gradient` (of `outputShape`) over the axes along which `shape` was broadcast, giving a gradient of `shape`.
func reduceBroadcastGradient(_ gradient: UnsafePointer<Float>, _ outputShape: [Int], to shape: [Int],
                             scaledBy factors: ((Int) -> Float)? = nil) -> Tensor {
    let result = Tensor.zeros(shape)
    let target = result.storage.pointer
    let strides = broadcastStrides(shape, to: outputShape)
    let none = [Int](repeating: 0, count: outputShape.count)
    forEachBroadcast(outputShape, strides, none) { output, offset, _ in
        target[offset] += gradient[output] * (factors?(output) ?? 1)
    }
    return result
}

/// `a op b` with NumPy broadcasting. Equal shapes under addition keep the fast (layout-preserving) path. Differentiable.
public func broadcast(_ a: Tensor, _ b: Tensor, _ operation: BroadcastOperation, name: String = "broadcast") throws -> Tensor {
    if operation == .add && a.shape == b.shape && a.layout == b.layout { return try a + b }
    if operation == .multiply, a.shape.count == 4, b.shape == [a.shape[0], a.shape[1], 1, 1] {
        return try multiplyChannels(a, by: b, name: name)
    }
    if operation == .multiply, b.shape.count == 4, a.shape == [b.shape[0], b.shape[1], 1, 1] {
        return try multiplyChannels(b, by: a, name: name)
    }
    guard let shape = broadcastShape(a.shape, b.shape) else {
        throw TensorError.incompatibleShapes(operation: "\(name) (\(operation.rawValue))", a.shape, b.shape)
    }
    let left = try a.detached.reordered(to: .plain), right = try b.detached.reordered(to: .plain)
    let (stridesA, stridesB) = (broadcastStrides(a.shape, to: shape), broadcastStrides(b.shape, to: shape))
    let result = Tensor(repeating: 0, shape: shape)
    let (x, y, z) = (left.storage.pointer, right.storage.pointer, result.storage.pointer)
    forEachBroadcast(shape, stridesA, stridesB) { output, i, j in z[output] = operation.apply(x[i], y[j]) }
    let (shapeA, shapeB) = (a.shape, b.shape)
    return result.recorded(from: [a, b]) { gradient in
        let g = try gradient.detached.reordered(to: .plain)
        var da = [Float](repeating: 0, count: shape.reduce(1, *)), db = da
        forEachBroadcast(shape, stridesA, stridesB) { output, i, j in
            let (p, q) = operation.derivatives(x[i], y[j], z[output])
            da[output] = p
            db[output] = q
        }
        let gradients = da.withUnsafeBufferPointer { pa in
            db.withUnsafeBufferPointer { pb in
                (reduceBroadcastGradient(g.storage.pointer, shape, to: shapeA) { pa[$0] },
                 reduceBroadcastGradient(g.storage.pointer, shape, to: shapeB) { pb[$0] })
            }
        }
        withExtendedLifetime((left, right, result)) {}
        return [gradients.0, gradients.1]
    }
}

/// An elementwise function with its derivative.
public struct ElementwiseFunction: Sendable {
    /// Name in messages.
    public let name: String
    /// y = f(x).
    public let value: @Sendable (Float) -> Float
    /// dy/dx from x and y.
    public let derivative: @Sendable (Float, Float) -> Float

    /// Creates a function from its value and derivative.
    public init(_ name: String, value: @escaping @Sendable (Float) -> Float,
                derivative: @escaping @Sendable (Float, Float) -> Float) {
        (self.name, self.value, self.derivative) = (name, value, derivative)
    }
}

/// `function` applied to every element. Differentiable.
public func elementwise(_ x: Tensor, _ function: ElementwiseFunction) throws -> Tensor {
    let source = try x.detached.reordered(to: .plain)
    let result = try Tensor.uninitialized(x.shape)
    let (a, y) = (source.storage.pointer, result.storage.pointer)
    for i in 0..<x.count { y[i] = function.value(a[i]) }
    return result.recorded(from: [x]) { gradient in
        let g = try gradient.detached.reordered(to: .plain)
        let dx = try Tensor.uninitialized(source.shape)
        for i in 0..<source.count { dx.storage.pointer[i] = g.storage.pointer[i] * function.derivative(a[i], y[i]) }
        withExtendedLifetime(source) {}
        return [dx]
    }
}

/// A tensor of `shape` whose element i is `x`'s element `sources[i]` in plain row-major order, or `fill` where
/// `sources[i]` is negative. Transposes, constant/edge/reflect padding, slices, gathers, tiles and broadcasts are all
/// this one operation. The gradient adds each output gradient into the element it came from. Differentiable.
public func remap(_ x: Tensor, to shape: [Int], sources: [Int], fill: Float = 0, name: String = "remap") throws -> Tensor {
    guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == sources.count else {
        throw TensorError.shapeMismatch(operation: name, expected: "\(sources.count) elements", actual: shape)
    }
    let count = x.count
    if let bad = sources.first(where: { $0 >= count }) {
        throw TensorError.invalidArgument(operation: name, message: "element \(bad) of a tensor of \(count) (shape \(x.shape))")
    }
    let source = try x.detached.reordered(to: .plain)
    let result = try Tensor.uninitialized(shape)
    let (a, y) = (source.storage.pointer, result.storage.pointer)
    for (i, s) in sources.enumerated() { y[i] = s >= 0 ? a[s] : fill }
    withExtendedLifetime(source) {}
    let inputShape = x.shape
    return result.recorded(from: [x]) { gradient in
        let g = try gradient.detached.reordered(to: .plain)
        let dx = Tensor.zeros(inputShape)
        for (i, s) in sources.enumerated() where s >= 0 { dx.storage.pointer[s] += g.storage.pointer[i] }
        return [dx]
    }
}

/// Row-major strides of `shape`.
public func rowMajorStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var stride = 1
    for i in Swift.stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i] = stride
        stride *= shape[i]
    }
    return strides
}

/// The transposed shape (axis i is input axis `permutation[i]`) and, per element of it, the row-major position of the
/// input element it copies: `remap`'s arguments for a transpose, for tensors of any element type.
public func transposeSources(_ shape: [Int], _ permutation: [Int]) throws -> ([Int], [Int]) {
    guard permutation.count == shape.count, Set(permutation) == Set(0..<shape.count) else {
        throw TensorError.invalidArgument(operation: "transpose", message: "permutation \(permutation) of \(shape.count) axes")
    }
    let outputShape = permutation.map { shape[$0] }
    let inputStrides = rowMajorStrides(shape)
    let strides = permutation.map { inputStrides[$0] }
    var sources = [Int](repeating: 0, count: shape.reduce(1, *))
    forEachBroadcast(outputShape, strides, strides) { output, offset, _ in sources[output] = offset }
    return (outputShape, sources)
}

/// Per element of `target` (a shape `shape` broadcasts to), the row-major position of the element of `shape` it copies.
public func broadcastSources(_ shape: [Int], to target: [Int]) -> [Int] {
    let strides = broadcastStrides(shape, to: target)
    var sources = [Int](repeating: 0, count: target.reduce(1, *))
    forEachBroadcast(target, strides, strides) { output, offset, _ in sources[output] = offset }
    return sources
}

extension Tensor {
    /// The axes reordered: result axis i is input axis `permutation[i]`. Differentiable.
    public func transposed(_ permutation: [Int]) throws -> Tensor {
        let (outputShape, sources) = try transposeSources(shape, permutation)
        return try remap(self, to: outputShape, sources: sources, name: "transpose")
    }
}

/// How a reduction combines the elements of a group.
public enum Reduction: String, Sendable, CaseIterable {
    case sum, mean, maximum, minimum, product, sumSquare, l1, l2, logSum, logSumExp
}

/// `x` reduced over `axes` (all axes when empty), keeping them as size 1 when `keepingDimensions`. Differentiable.
public func reduce(_ x: Tensor, _ reduction: Reduction, axes: [Int], keepingDimensions: Bool, name: String = "reduce") throws -> Tensor {
    let rank = x.shape.count
    let normalized = try Set(axes.map { axis -> Int in
        let a = axis < 0 ? axis + rank : axis
        guard (0..<max(rank, 1)).contains(a) else {
            throw TensorError.invalidArgument(operation: name, message: "axis \(axis) of a \(rank)-D tensor")
        }
        return a
    })
    let reduced = normalized.isEmpty ? Set(0..<rank) : normalized
    let kept = (0..<rank).map { reduced.contains($0) ? 1 : x.shape[$0] }
    let outputShape = keepingDimensions ? kept : (0..<rank).filter { !reduced.contains($0) }.map { x.shape[$0] }
    let groupCount = kept.reduce(1, *)
    let groupSize = groupCount == 0 ? 0 : x.count / groupCount
    let source = try x.detached.reordered(to: .plain)
    let a = source.storage.pointer
    // groupOf[i]: the output element input element i belongs to.
    var groupOf = [Int](repeating: 0, count: x.count)
    let strides = broadcastStrides(kept, to: x.shape)
    forEachBroadcast(x.shape, strides, strides) { input, group, _ in groupOf[input] = group }
    var accumulated = [Double](repeating: 0, count: groupCount)
    switch reduction {
    case .maximum: accumulated = [Double](repeating: -.infinity, count: groupCount)
    case .minimum: accumulated = [Double](repeating: .infinity, count: groupCount)
    case .product: accumulated = [Double](repeating: 1, count: groupCount)
    case .logSumExp:
        var peaks = [Double](repeating: -.infinity, count: groupCount)
        for i in 0..<x.count { peaks[groupOf[i]] = max(peaks[groupOf[i]], Double(a[i])) }
        for i in 0..<x.count { accumulated[groupOf[i]] += exp(Double(a[i]) - peaks[groupOf[i]]) }
        for g in 0..<groupCount { accumulated[g] = log(accumulated[g]) + peaks[g] }
    default: break
    }
    if reduction != .logSumExp {
        for i in 0..<x.count {
            let v = Double(a[i]), g = groupOf[i]
            switch reduction {
            case .sum, .mean, .logSum: accumulated[g] += v
            case .maximum: accumulated[g] = v.isNaN || accumulated[g].isNaN ? .nan : max(accumulated[g], v)
            case .minimum: accumulated[g] = v.isNaN || accumulated[g].isNaN ? .nan : min(accumulated[g], v)
            case .product: accumulated[g] *= v
            case .sumSquare, .l2: accumulated[g] += v * v
            case .l1: accumulated[g] += abs(v)
            case .logSumExp: break
            }
        }
        for g in 0..<groupCount {
            switch reduction {
            case .mean: accumulated[g] /= Double(max(groupSize, 1))
            case .l2: accumulated[g] = accumulated[g].squareRoot()
            case .logSum: accumulated[g] = log(accumulated[g])
            default: break
            }
        }
    }
    let result = try Tensor(shape: outputShape, values: accumulated.map { Float($0) })
    return result.recorded(from: [x]) { gradient in
        let g = try gradient.detached.reordered(to: .plain)
        let dx = try Tensor.uninitialized(source.shape)
        for i in 0..<source.count {
            let group = groupOf[i]
            let (v, y) = (a[i], Float(accumulated[group]))
            let local: Float = switch reduction {
            case .sum: 1
            case .mean: 1 / Float(max(groupSize, 1))
            case .maximum, .minimum: v == y ? 1 : 0
            case .product: v != 0 ? y / v : 0
            case .sumSquare: 2 * v
            case .l1: v > 0 ? 1 : (v < 0 ? -1 : 0)
            case .l2: y > 0 ? v / y : 0
            case .logSum: 1 / exp(y)
            case .logSumExp: exp(v - y)
            }
            dx.storage.pointer[i] = g.storage.pointer[group] * local
        }
        withExtendedLifetime(source) {}
        return [dx]
    }
}

/// Matrix product with NumPy's `matmul` rules: (…, M, K) · (…, K, N) → (…, M, N), batch axes broadcast, 1-D operands
/// promoted and the promoted axis dropped again. Accumulates in Float, row by row. Differentiable.
public func matmul(_ a: Tensor, _ b: Tensor, name: String = "matmul") throws -> Tensor {
    guard !a.shape.isEmpty, !b.shape.isEmpty else {
        throw TensorError.incompatibleShapes(operation: name, a.shape, b.shape)
    }
    let left = a.shape.count == 1 ? try a.reshaped([1, a.shape[0]]) : a
    let right = b.shape.count == 1 ? try b.reshaped([b.shape[0], 1]) : b
    let (m, k) = (left.shape[left.shape.count - 2], left.shape[left.shape.count - 1])
    let (k2, n) = (right.shape[right.shape.count - 2], right.shape[right.shape.count - 1])
    guard k == k2, let batch = broadcastShape(Array(left.shape.dropLast(2)), Array(right.shape.dropLast(2))) else {
        throw TensorError.incompatibleShapes(operation: name, a.shape, b.shape)
    }
    var outputShape = batch + [m, n]
    // Broadcast both to the full batch (a remap, so the gradient sums back), then one product per batch element.
    let fullA = try expanded(left, to: batch + [m, k]), fullB = try expanded(right, to: batch + [k, n])
    let result = try batchedProduct(fullA, fullB, batch: batch.reduce(1, *), m: m, k: k, n: n)
    if a.shape.count == 1 { outputShape.remove(at: outputShape.count - 2) }
    if b.shape.count == 1 { outputShape.removeLast() }
    return outputShape == result.shape ? result : try result.reshaped(outputShape)
}

/// `x` broadcast to `shape` (a view in NumPy; a copy here). Differentiable.
public func expanded(_ x: Tensor, to shape: [Int]) throws -> Tensor {
    if x.shape == shape { return x }
    guard broadcastShape(x.shape, shape) == shape else {
        throw TensorError.incompatibleShapes(operation: "expand", x.shape, shape)
    }
    return try remap(x, to: shape, sources: broadcastSources(x.shape, to: shape), name: "expand")
}

/// (B, M, K) · (B, K, N) → (B, M, N) over plain storage, with its gradient.
private func batchedProduct(_ a: Tensor, _ b: Tensor, batch: Int, m: Int, k: Int, n: Int) throws -> Tensor {
    let left = try a.detached.reordered(to: .plain), right = try b.detached.reordered(to: .plain)
    let outputShape = Array(a.shape.dropLast(2)) + [m, n]
    let result = Tensor.zeros(outputShape)
    multiply(left.storage.pointer, right.storage.pointer, into: result.storage.pointer, batch: batch, m: m, k: k, n: n,
             transposeA: false, transposeB: false)
    return result.recorded(from: [a, b]) { gradient in
        let g = try gradient.detached.reordered(to: .plain)
        let da = Tensor.zeros(left.shape), db = Tensor.zeros(right.shape)
        // dA = G·Bᵀ (M×N · N×K), dB = Aᵀ·G (K×M · M×N).
        multiply(g.storage.pointer, right.storage.pointer, into: da.storage.pointer, batch: batch, m: m, k: n, n: k,
                 transposeA: false, transposeB: true)
        multiply(left.storage.pointer, g.storage.pointer, into: db.storage.pointer, batch: batch, m: k, k: m, n: n,
                 transposeA: true, transposeB: false)
        return [da, db]
    }
}

/// C[b] += op(A[b]) · op(B[b]) for row-major blocks; op transposes when asked (A stored K×M, B stored N×K).
private func multiply(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into c: UnsafeMutablePointer<Float>,
                      batch: Int, m: Int, k: Int, n: Int, transposeA: Bool, transposeB: Bool) {
    for p in 0..<batch {
        let (A, B, C) = (a + p * m * k, b + p * k * n, c + p * m * n)
        for i in 0..<m {
            for l in 0..<k {
                let factor = transposeA ? A[l * m + i] : A[i * k + l]
                if transposeB {
                    for j in 0..<n { C[i * n + j] += factor * B[j * k + l] }
                } else {
                    let row = B + l * n
                    for j in 0..<n { C[i * n + j] += factor * row[j] }
                }
            }
        }
    }
}
