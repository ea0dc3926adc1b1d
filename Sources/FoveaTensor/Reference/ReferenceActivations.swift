import Foundation

extension Reference {
    /// `max(x, 0)` elementwise, as `F.relu`; NaN stays NaN.
    // input (any shape) → output (same shape)
    public static func relu(_ x: ReferenceArray) -> ReferenceArray {
        x.map { clamp($0, lower: 0, upper: .infinity) }
    }

    /// `min(max(x, 0), 6)` elementwise, as `F.relu6`; NaN stays NaN.
    // input (any shape) → output (same shape)
    public static func relu6(_ x: ReferenceArray) -> ReferenceArray {
        x.map { clamp($0, lower: 0, upper: 6) }
    }

    /// `x` where positive, else `negativeSlope · x`, as `F.leaky_relu`.
    // input (any shape) → output (same shape)
    public static func leakyRelu(_ x: ReferenceArray, negativeSlope: Double) -> ReferenceArray {
        x.map { $0 > 0 ? $0 : $0 * negativeSlope }
    }

    /// `x · σ(x) = x / (1 + e^−x)` elementwise, as `F.silu`.
    // input (any shape) → output (same shape)
    public static func silu(_ x: ReferenceArray) -> ReferenceArray {
        x.map { $0 / (1 + exp(-$0)) }
    }

    /// `1 / (1 + e^−x)` elementwise, as `torch.sigmoid`.
    // input (any shape) → output (same shape)
    public static func sigmoid(_ x: ReferenceArray) -> ReferenceArray {
        x.map { 1 / (1 + exp(-$0)) }
    }

    /// The hyperbolic tangent elementwise, as `torch.tanh`.
    // input (any shape) → output (same shape)
    public static func tanh(_ x: ReferenceArray) -> ReferenceArray {
        // Qualified: inside `Reference` the bare name would find this very function.
        x.map { Foundation.tanh($0) }
    }

    /// `x · relu6(x + 3) / 6` elementwise, as `F.hardswish`.
    // input (any shape) → output (same shape)
    public static func hardSwish(_ x: ReferenceArray) -> ReferenceArray {
        x.map { $0 * clamp($0 + 3, lower: 0, upper: 6) / 6 }
    }

    /// Clamps to `[lower, upper]`, letting NaN through as PyTorch's clamp does.
    static func clamp(_ value: Double, lower: Double, upper: Double) -> Double {
        if value.isNaN { return value }
        if value < lower { return lower }
        if value > upper { return upper }
        return value
    }
}
