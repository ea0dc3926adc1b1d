// Vector types and math shared by Fovea's C kernels (clang vector extensions). Macros rather than functions: a function taking
// vectors would be tied to one instruction set, and the loops that use them are built for several (target_clones).
#ifndef FOVEA_VECTOR_MATH_H
#define FOVEA_VECTOR_MATH_H

typedef float floats8 __attribute__((vector_size(32)));
typedef float unaligned_floats8 __attribute__((vector_size(32), aligned(4)));
typedef int ints8 __attribute__((vector_size(32)));
typedef float floats16 __attribute__((vector_size(64)));
typedef float unaligned_floats16 __attribute__((vector_size(64), aligned(4)));
typedef int ints16 __attribute__((vector_size(64)));

#define LOAD8(p) ((floats8) * (const unaligned_floats8 *)(p))
#define STORE8(p, v) (*(unaligned_floats8 *)(p) = (v))
#define LOAD16(p) ((floats16) * (const unaligned_floats16 *)(p))
#define STORE16(p, v) (*(unaligned_floats16 *)(p) = (v))

// e^x for every lane, as 2^t with t = x·log₂e clamped to [−126, 100] (so that 1/(1 + e^x) below stays a normal float;
// SiLU of x < −69 then comes out below 10⁻²⁸ in magnitude instead of its exact, even smaller value): t = n + f with n
// the nearest integer (by the 1.5·2²³ rounding trick, which also leaves n in the low mantissa bits) and |f| ≤ ½; 2^f by
// its Taylor polynomial to degree 6 (relative error below 2·10⁻⁷ there), times 2ⁿ put together in the exponent bits.
#define EXP16(x)                                                                                                   \
    ({                                                                                                             \
        const floats16 zero_ = {0};                                                                                \
        const floats16 t_ = __builtin_elementwise_min(__builtin_elementwise_max((x) * 1.44269504f, zero_ - 126),   \
                                                      zero_ + 100);                                                \
        const floats16 shifted_ = t_ + 12582912.0f;                                                                \
        const floats16 f_ = t_ - (shifted_ - 12582912.0f);                                                         \
        floats16 p_ = f_ * 1.5403530e-4f + 1.3333558e-3f;                                                          \
        p_ = p_ * f_ + 9.6181291e-3f;                                                                              \
        p_ = p_ * f_ + 5.5504109e-2f;                                                                              \
        p_ = p_ * f_ + 0.24022651f;                                                                                \
        p_ = p_ * f_ + 0.69314718f;                                                                                \
        p_ = p_ * f_ + 1.0f;                                                                                       \
        p_ * (floats16)(((ints16)shifted_ + 127) << 23);                                                           \
    })

// 1/d for every lane, 1 ≤ d ≤ 1 + 2¹⁰⁰ (here 1 + e^−x): an estimate from the exponent bits (within 12 %), then three
// Newton steps r ← r + r·(1 − d·r), each squaring the relative error (≈ 4·10⁻⁸ after the third). Multiply-adds only:
// cheaper than a vector division where there is one 512-bit divider.
#define RECIPROCAL16(d)                                                                                            \
    ({                                                                                                             \
        const floats16 d_ = (d);                                                                                   \
        floats16 r_ = (floats16)(0x7EF311C7 - (ints16)d_);                                                         \
        r_ = r_ + r_ * (1.0f - d_ * r_);                                                                           \
        r_ = r_ + r_ * (1.0f - d_ * r_);                                                                           \
        r_ + r_ * (1.0f - d_ * r_);                                                                                \
    })

// SiLU (x·σ(x) = x / (1 + e^−x)) for every lane.
#define SILU16(x)                                                                                                  \
    ({                                                                                                             \
        const floats16 x_ = (x);                                                                                   \
        x_ * RECIPROCAL16(1.0f + EXP16(-x_));                                                                      \
    })

#endif
