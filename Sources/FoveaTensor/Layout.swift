import CDNNL

/// How a tensor's elements are arranged in memory. The logical shape is always NCHW (or NC).
///
/// Activations between convolutions live in oneDNN's channel-blocked layouts (`nChw8c` on AVX2),
/// which run convolutions, pooling and batch norm several times faster than plain NCHW.
public enum Layout: Int, Hashable, Sendable, CustomStringConvertible {
    /// Dense row-major order of the logical shape (NCHW for 4-D, NC for 2-D, …).
    case plain
    /// Channels in blocks of 8: (N, ⌈C/8⌉, H, W, 8), padded with zeros.
    case nChw8c
    /// Channels in blocks of 16: (N, ⌈C/16⌉, H, W, 16), padded with zeros.
    case nChw16c
    /// Channels last: (N, H, W, C).
    case nhwc

    public var description: String {
        switch self {
        case .plain: return "plain"
        case .nChw8c: return "nChw8c"
        case .nChw16c: return "nChw16c"
        case .nhwc: return "nhwc"
        }
    }

    /// Channel block size, or 1 for unblocked layouts.
    public var channelBlock: Int {
        switch self {
        case .nChw8c: return 8
        case .nChw16c: return 16
        case .plain, .nhwc: return 1
        }
    }

    func tag(rank: Int) -> dnnl_format_tag_t {
        switch (self, rank) {
        case (.plain, 1): return dnnl_a
        case (.plain, 2): return dnnl_ab
        case (.plain, 3): return dnnl_abc
        case (.plain, 4): return dnnl_abcd
        case (.plain, 5): return dnnl_abcde
        case (.nChw8c, 4): return dnnl_aBcd8b
        case (.nChw16c, 4): return dnnl_aBcd16b
        case (.nhwc, 4): return dnnl_acdb
        default: return dnnl_format_tag_undef
        }
    }

    /// The layout whose descriptor equals `md` for `shape` (of `md`'s element type), if it is one we know.
    static func matching(_ md: dnnl_memory_desc_t, shape: [Int]) -> Layout? {
        let candidates: [Layout] = shape.count == 4 ? [.nChw8c, .plain, .nChw16c, .nhwc] : [.plain]
        for layout in candidates {
            if let candidate = try? memoryDescriptor(shape, layout, md.data_type), descriptorsEqual(candidate, md) { return layout }
        }
        return nil
    }
}
