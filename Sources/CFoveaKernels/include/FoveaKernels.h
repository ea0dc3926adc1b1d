#ifndef FOVEA_KERNELS_H
#define FOVEA_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// The shape of one max pooling over `groups` planes of height×width pixels with `lanes` contiguous values per pixel
/// (plain NCHW: N·C planes of 1 lane; nChw8c/nChw16c: N·⌈C/b⌉ planes of b lanes; nhwc: N planes of C lanes). Plane g
/// starts at g·height·width·lanes in the input and at g·output_height·output_width·lanes in the output. Pairs are
/// (height, width); padding acts as −∞; the window area is at most 256 (one byte per recorded position).
typedef struct {
    long groups, lanes, height, width, output_height, output_width;
    long kernel_height, kernel_width, stride_height, stride_width, padding_height, padding_width;
} fovea_pool_geometry;

/// Max pooling forward: `output` gets each window's maximum and `indices` its position in the window (row-major,
/// counting padded positions): the first maximum when several are equal, the last NaN when there is one (PyTorch's
/// rule). Runs on oneDNN's OpenMP threads.
void fovea_max_pool_forward(const float *input, const fovea_pool_geometry *geometry, float *output, uint8_t *indices);

/// Max pooling backward: `input_gradient` (the input's shape and layout) gets each output gradient at the position
/// `indices` recorded, summed where windows overlap, zero elsewhere. Runs on oneDNN's OpenMP threads.
void fovea_max_pool_backward(const float *output_gradient, const uint8_t *indices, const fovea_pool_geometry *geometry,
                             float *input_gradient);

/// Channel reductions and broadcasts over `groups` planes of `pixels` pixels with `lanes` contiguous channel values per
/// pixel (nChw8c/nChw16c: N·⌈C/b⌉ planes of b lanes; nhwc: N planes of C lanes); value (g, p, l) is at (g·pixels + p)·lanes
/// + l, and per-plane results are g·lanes + l. All run on oneDNN's OpenMP threads.

/// `output[g, l]` = scale · Σ_p input[g, p, l] (scale 1/pixels: global average pooling).
void fovea_channel_sums(const float *input, long groups, long pixels, long lanes, float scale, float *output);

/// `output[g, l]` = Σ_p a[g, p, l] · b[g, p, l] (the gradient of a channel scaling with respect to its factors).
void fovea_channel_dot(const float *a, const float *b, long groups, long pixels, long lanes, float *output);

/// `output[g, p, l]` = input[g, p, l] · factors[g, l]; with a null `input`, factors[g, l] itself (a broadcast).
void fovea_scale_channels(const float *input, const float *factors, long groups, long pixels, long lanes, float *output);

/// 1 when the CPU has AVX-512 (AVX-512F), else 0.
int fovea_cpu_has_avx512(void);

/// SiLU, x·σ(x), of `count` floats in place (relative error below 4·10⁻⁶ against the exact value where that is above
/// 10⁻²⁸ in magnitude). Runs on oneDNN's OpenMP threads.
void fovea_silu_inplace(float *values, long count);

/// The same on the calling thread with the portable loop (AVX2 or baseline vectors), which `fovea_silu_inplace` uses
/// only where AVX-512 is missing: for tests on machines that have it.
void fovea_silu_portable(float *values, long count);

/// bfloat16 → float32: `target[i]` = `source[i]` widened (exact), for i < `count`. Runs on oneDNN's OpenMP threads.
void fovea_widen_bf16(const uint16_t *source, float *target, long count);

/// The same over [first, end) on the calling thread (for tests).
void fovea_widen_bf16_range(const uint16_t *source, float *target, long first, long end);

/// int8 → float32 (dequantization): `target[i]` = (float)`source[i]` × `scale`, for i < `count`; the source is
/// unsigned (u8) when `is_unsigned` is nonzero, else signed (s8). Runs on oneDNN's OpenMP threads.
void fovea_widen_int8(const void *source, int is_unsigned, float scale, float *target, long count);

/// The same over [first, end) on the calling thread (for tests).
void fovea_widen_int8_range(const void *source, int is_unsigned, float scale, float *target, long first, long end);

/// SHA-256 (FIPS 180-4), fed in pieces: init, update with each piece in order, final writes the 32-byte digest.
/// Blocks go through the CPU's SHA extensions where it has them, else through portable C.
typedef struct {
    uint32_t state[8];
    uint64_t length;
    uint8_t block[64];
    int filled;
    int portable;
} fovea_sha256_context;
void fovea_sha256_init(fovea_sha256_context *context);
/// The same, always in portable C (for tests that compare the two).
void fovea_sha256_init_portable(fovea_sha256_context *context);
void fovea_sha256_update(fovea_sha256_context *context, const void *data, size_t size);
void fovea_sha256_final(fovea_sha256_context *context, uint8_t digest[32]);

#endif
