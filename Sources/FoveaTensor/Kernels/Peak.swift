import CDNNL
import Dispatch

/// The machine's attainable single-precision throughput, measured rather than taken from a data sheet.
public enum MachinePeak {
    /// GFLOP/s of oneDNN's sgemm on square matrices of `size` (2·size³ FLOPs a call) on all of oneDNN's threads: the best
    /// of repeated calls over about `seconds` after one warm-up call. A large GEMM is the most compute-bound kernel there is,
    /// so this is the ceiling a direct convolution can reach here (Winograd convolutions, counted at their direct FLOPs,
    /// can exceed it).
    ///
    /// With `precision` bf16 it is oneDNN's matmul of bfloat16 matrices accumulating into f32 (AMX or AVX-512 BF16), the
    /// ceiling of the bf16 convolutions; with int8 its matmul of u8 by s8 into s32 (AMX-INT8, VNNI), in integer
    /// operations per second. On a CPU without that precision's instructions there is no peak (an error).
    public static func measureGFLOPs(precision: Precision = .fp32, size: Int = 1536, seconds: Double = 1) throws -> Double {
        guard size > 0, seconds > 0 else {
            throw TensorError.invalidArgument(operation: "MachinePeak.measureGFLOPs",
                                              message: "size \(size) and seconds \(seconds) must be positive")
        }
        if precision != .fp32 { return try measureMatmulGFLOPs(precision: precision, size: size, seconds: seconds) }
        let count = size * size
        let a = Storage(capacity: count), b = Storage(capacity: count), c = Storage(capacity: count)
        for i in 0..<count {
            a.pointer[i] = Float(i % 7) * 0.25 - 0.5
            b.pointer[i] = Float(i % 5) * 0.25 - 0.5
        }
        let n = Int64(size)
        func multiply() throws {
            kernelLock.lock()
            defer { kernelLock.unlock() }
            try check(dnnl_sgemm(CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "N")), n, n, n, 1, a.pointer, n, b.pointer, n,
                                 0, c.pointer, n), "dnnl_sgemm(\(size))")
        }
        let best = try bestSeconds(over: seconds, multiply)
        withExtendedLifetime((a, b, c)) {}
        return 2 * Double(size) * Double(size) * Double(size) / best / 1e9
    }

    /// GFLOP/s (int8: GOP/s) of oneDNN's matmul with operands in `precision` (bf16 × bf16 → f32, u8 × s8 → s32), timed as
    /// `measureGFLOPs` times sgemm.
    private static func measureMatmulGFLOPs(precision: Precision, size: Int, seconds: Double) throws -> Double {
        if let reason = precision.unsupportedReason {
            throw TensorError.invalidArgument(operation: "MachinePeak.measureGFLOPs", message: reason)
        }
        let dims = [size, size]
        let (leftType, rightType, resultType) = precision == .int8 ? (dnnl_u8, dnnl_s8, dnnl_s32) : (dnnl_bf16, dnnl_bf16, dnnl_f32)
        var a = try memoryDescriptor(dims, .plain, leftType)
        var b = try anyDescriptor(dims, rightType)
        var c = try memoryDescriptor(dims, .plain, resultType)
        var desc = dnnl_matmul_desc_t()
        try check(dnnl_matmul_desc_init(&desc, &a, &b, nil, &c), "dnnl_matmul_desc_init(\(precision))")
        let primitive = try PrimitiveCache.shared.primitive(PrimitiveKey(kind: "peak_matmul", values: [size, Int(leftType.rawValue)])) {
            try makePrimitiveDescriptor(&desc, name: "peak matmul \(precision)")
        }
        // Small integers times 1/4 are exact in bf16; the values do not change the speed.
        let plain = Storage(capacity: size * size)
        for i in 0..<(size * size) { plain.pointer[i] = Float(i % 7) * 0.25 - 0.5 }
        let left = try Tensor(shape: dims, layout: .plain, storage: plain).operand(in: .plain, leftType)
        let right = try Tensor.reorderRaw(plain, from: try memoryDescriptor(dims, .plain),
                                          to: primitive.descriptor(for: DNNL_ARG_WEIGHTS),
                                          key: PrimitiveKey(kind: "peak_matmul_b", values: [size, Int(leftType.rawValue)]))
        let result = Storage(capacity: size * size)
        func multiply() throws { try primitive.execute([(DNNL_ARG_SRC, left), (DNNL_ARG_WEIGHTS, right), (DNNL_ARG_DST, result)]) }
        return 2 * Double(size) * Double(size) * Double(size) / (try bestSeconds(over: seconds, multiply)) / 1e9
    }

    /// The shortest time of `body` over repeated calls for about `seconds` (at least 3), after one warm-up call.
    private static func bestSeconds(over seconds: Double, _ body: () throws -> Void) throws -> Double {
        try body()
        var best = Double.infinity
        let start = DispatchTime.now().uptimeNanoseconds
        var calls = 0
        while calls < 3 || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds {
            let t = DispatchTime.now().uptimeNanoseconds
            try body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
            calls += 1
        }
        return best
    }
}
