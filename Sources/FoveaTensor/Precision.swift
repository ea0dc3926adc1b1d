import Foundation

/// The arithmetic that convolutions and inner products run in.
///
/// `bf16` is mixed precision as PyTorch's CPU autocast does it: a convolution or fully connected layer converts its
/// input and weights to bfloat16 (8 bits of mantissa) for the multiplications, which oneDNN runs on AMX or AVX-512 BF16,
/// and accumulates in float32. In training it returns float32, and the gradients it passes back are float32 too. In
/// inference (nothing recorded) a convolution stores its result as bfloat16, as autocast does: the next convolution
/// reads it as it is, and anything else reads it widened to float32 (exactly) on first use — so activations between
/// convolutions cross memory at half the width and are not converted again. Depthwise convolutions stay float32
/// (memory-bound: no matrix unit helps them, and converting their input costs more than it saves), except in inference
/// on an input that is bfloat16 already; so does a convolution followed by SiLU in inference (Fovea's own SiLU kernel
/// works in float32). Everything else — batch
/// norm and its statistics, activations, pooling, softmax, the loss, the optimizer and the weights themselves (the
/// float32 master copy) — stays float32, so checkpoints, model files and exact resume are unchanged.
///
/// The precision in force is per thread: `Precision.run(.bf16) { … }` switches it for what `body` runs on the calling
/// thread, as `Autodiff.withoutRecording` does for the tape.
public enum Precision: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    /// Single precision everywhere (the default).
    case fp32
    /// bfloat16 multiplications with float32 accumulation in convolutions and inner products.
    case bf16
    /// Inference only: convolutions and inner products whose input was calibrated (`ActivationQuantizer`) multiply
    /// 8-bit integers — the input quantized per tensor, the weights per output channel, symmetric — with int32 sums,
    /// scaled back to float32 by the kernel. Layers without calibration run in fp32.
    case int8

    public var description: String { rawValue }

    /// The precision in force on the calling thread: `fp32` unless inside `run(_:_:)`.
    public static var current: Precision {
        pthread_getspecific(key).map { Precision.allCases[Int(bitPattern: $0) - 1] } ?? .fp32
    }

    /// Runs `body` with `precision` in force on this thread, then restores the previous one.
    public static func run<R>(_ precision: Precision, _ body: () throws -> R) rethrows -> R {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: Precision.allCases.firstIndex(of: precision)! + 1))
        defer { pthread_setspecific(key, previous) }
        return try body()
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether this CPU has native instructions for it (bf16: AVX-512 BF16 or AMX, as oneDNN sees the machine, so
    /// `ONEDNN_MAX_CPU_ISA` limits it too).
    public var isSupported: Bool {
        switch self {
        case .fp32: return true
        case .bf16: return KernelISA.hasBFloat16
        case .int8: return KernelISA.hasInt8
        }
    }

    /// Why this CPU cannot run it natively, or nil where it can.
    public var unsupportedReason: String? {
        if isSupported { return nil }
        let needed = self == .bf16 ? "bfloat16 instructions that oneDNN uses (AVX-512 BF16 or AMX" : "int8 kernels in oneDNN (AVX2 or later"
        return "this CPU has no \(needed); oneDNN sees \(KernelISA.name))"
    }

    /// What to run for a request of `self`: `self` where the CPU supports it, otherwise fp32 and a sentence saying why
    /// (for the warning a command prints).
    public func resolved() -> (precision: Precision, warning: String?) {
        unsupportedReason.map { (.fp32, $0 + "; running in fp32 instead") } ?? (self, nil)
    }
}
