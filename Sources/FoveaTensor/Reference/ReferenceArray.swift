/// A dense N-dimensional array of Double in row-major (NCHW) order: the reference kernels' currency.
///
/// The reference kernels are the test oracle, so this type favours obviousness over speed: values
/// live in one flat `[Double]`, and shape mismatches are programmer errors caught by preconditions.
public struct ReferenceArray: Equatable, Sendable {
    /// The extent of every dimension, outermost first (e.g. N, C, H, W).
    public var shape: [Int]
    /// All elements in row-major order; `values.count` equals the product of `shape`.
    public var values: [Double]

    /// Creates an array from its shape and row-major values.
    public init(shape: [Int], values: [Double]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative extent in shape \(shape)")
        precondition(
            values.count == ReferenceArray.elementCount(of: shape),
            "shape \(shape) needs \(ReferenceArray.elementCount(of: shape)) values, got \(values.count)")
        self.shape = shape
        self.values = values
    }

    /// Creates an array from its shape and row-major single-precision values, widened to Double.
    public init(shape: [Int], floats: [Float]) {
        self.init(shape: shape, values: floats.map { Double($0) })
    }

    /// Creates an array of the given shape with every element equal to `value`.
    public init(shape: [Int], repeating value: Double) {
        self.init(shape: shape, values: Array(repeating: value, count: ReferenceArray.elementCount(of: shape)))
    }

    /// The values narrowed to single precision, in row-major order.
    public var floats: [Float] {
        values.map { Float($0) }
    }

    /// The number of elements (the product of the shape).
    public var count: Int {
        values.count
    }

    /// The number of dimensions.
    public var rank: Int {
        shape.count
    }

    /// The element at one multi-dimensional index, outermost dimension first.
    public subscript(_ indices: Int...) -> Double {
        get { values[flatIndex(indices)] }
        set { values[flatIndex(indices)] = newValue }
    }

    /// The row-major offset of a multi-dimensional index.
    public func flatIndex(_ indices: [Int]) -> Int {
        precondition(indices.count == shape.count, "index \(indices) has the wrong rank for shape \(shape)")
        var offset = 0
        for (dimension, index) in indices.enumerated() {
            precondition(index >= 0 && index < shape[dimension], "index \(indices) is outside shape \(shape)")
            offset = offset * shape[dimension] + index
        }
        return offset
    }

    /// Returns an array of the same shape with `transform` applied to every element.
    public func map(_ transform: (Double) -> Double) -> ReferenceArray {
        ReferenceArray(shape: shape, values: values.map(transform))
    }

    /// The product of the extents of `shape` (1 for a scalar's empty shape).
    public static func elementCount(of shape: [Int]) -> Int {
        shape.reduce(1, *)
    }
}

extension ReferenceArray {
    /// The four extents of an NCHW array, checked to be rank 4.
    var nchw: (batch: Int, channels: Int, height: Int, width: Int) {
        precondition(shape.count == 4, "expected an (N,C,H,W) array, got shape \(shape)")
        return (shape[0], shape[1], shape[2], shape[3])
    }

    /// The two extents of an (N,K) matrix, checked to be rank 2.
    var rowsAndColumns: (rows: Int, columns: Int) {
        precondition(shape.count == 2, "expected an (N,K) array, got shape \(shape)")
        return (shape[0], shape[1])
    }

    /// The row-major offset of element (n, c, h, w) in an NCHW array with these extents.
    static func offset(_ n: Int, _ c: Int, _ h: Int, _ w: Int, channels: Int, height: Int, width: Int) -> Int {
        ((n * channels + c) * height + h) * width + w
    }
}

/// Plain-Swift, Double-precision forward implementations of every kernel: the oracle for tests.
///
/// Semantics follow `torch.nn.functional` exactly; all image tensors are NCHW row-major.
/// Gradients are checked by central finite differences of these functions (`numericalGradient`).
public enum Reference {
    /// Central finite-difference gradient of a scalar function of an array.
    ///
    /// Each element is `(f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h`; the result has the shape of `x`.
    public static func numericalGradient(
        of function: (ReferenceArray) -> Double, at x: ReferenceArray, step: Double = 1e-6
    ) -> ReferenceArray {
        precondition(step > 0, "finite-difference step must be positive, got \(step)")
        var gradient = ReferenceArray(shape: x.shape, repeating: 0)
        var probe = x
        for index in 0..<x.count {
            let original = x.values[index]
            probe.values[index] = original + step
            let above = function(probe)
            probe.values[index] = original - step
            let below = function(probe)
            probe.values[index] = original
            gradient.values[index] = (above - below) / (2 * step)
        }
        return gradient
    }
}
