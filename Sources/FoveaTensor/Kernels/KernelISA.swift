import CDNNL

/// The instruction set oneDNN dispatches to on this machine (its effective ISA, which `ONEDNN_MAX_CPU_ISA` can lower).
enum KernelISA {
    private static let isa = dnnl_get_effective_cpu_isa()

    /// Whether oneDNN runs bfloat16 convolutions and inner products natively: AVX-512 BF16 (Zen 4, Cooper Lake) or AMX
    /// (Sapphire Rapids). The ISA values are nested bit sets, so AMX contains AVX-512 BF16's bits.
    static var hasBFloat16: Bool { isa.rawValue & dnnl_cpu_isa_avx512_core_bf16.rawValue == dnnl_cpu_isa_avx512_core_bf16.rawValue }

    /// Whether oneDNN has int8 convolution and inner-product kernels here: AVX2 and later (with VNNI or AMX-INT8 where the
    /// CPU has them).
    static var hasInt8: Bool { isa.rawValue & dnnl_cpu_isa_avx2.rawValue == dnnl_cpu_isa_avx2.rawValue }

    /// oneDNN's name for the ISA, as its verbose output and the bench report print it.
    static var name: String {
        switch isa {
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx2: return "avx2"
        case dnnl_cpu_isa_avx: return "avx"
        case dnnl_cpu_isa_sse41: return "sse41"
        default: return "isa 0x\(String(isa.rawValue, radix: 16))"
        }
    }
}

extension Precision {
    /// oneDNN's element type for the operands a kernel multiplies in this precision.
    var operandType: dnnl_data_type_t { self == .bf16 ? dnnl_bf16 : dnnl_f32 }

    /// oneDNN's name of the instruction set it runs on (e.g. `avx512_core_amx`), for reports.
    public static var instructionSet: String { KernelISA.name }
}
