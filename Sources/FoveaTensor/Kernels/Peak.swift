import CDNNL
import Dispatch

/// The machine's attainable single-precision throughput, measured rather than taken from a data sheet.
public enum MachinePeak {
    /// GFLOP/s of oneDNN's sgemm on square matrices of `size` (2·size³ FLOPs a call) on all of oneDNN's threads: the best
    /// of repeated calls over about `seconds` after one warm-up call. A large GEMM is the most compute-bound kernel there is,
    /// so this is the ceiling a direct convolution can reach here (Winograd convolutions, counted at their direct FLOPs,
    /// can exceed it).
    public static func measureGFLOPs(size: Int = 1536, seconds: Double = 1) throws -> Double {
        guard size > 0, seconds > 0 else {
            throw TensorError.invalidArgument(operation: "MachinePeak.measureGFLOPs",
                                              message: "size \(size) and seconds \(seconds) must be positive")
        }
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
        try multiply()
        var best = Double.infinity
        let start = DispatchTime.now().uptimeNanoseconds
        var calls = 0
        while calls < 3 || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds {
            let t = DispatchTime.now().uptimeNanoseconds
            try multiply()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
            calls += 1
        }
        withExtendedLifetime((a, b, c)) {}
        return 2 * Double(size) * Double(size) * Double(size) / best / 1e9
    }
}
