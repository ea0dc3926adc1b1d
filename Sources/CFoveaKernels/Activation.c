// SiLU for inference. oneDNN 2.6 applies SiLU (its `swish` post-op) to a convolution's output at a cost above the
// convolution's own on EfficientNet's shapes (a 1×1 expansion of one 112×112 image from 16 to 96 channels: 477 µs with
// the post-op, 217 µs with ReLU6 in its place; Benchmarks/NOTES.md), so inference convolutions followed by SiLU run
// without the post-op and Fovea applies it here, in place, while the output is still in cache. The elements are shared
// out over oneDNN's OpenMP team through libgomp's GOMP_parallel, like MaxPool.c.
#include "FoveaKernels.h"
#include "Team.h"
#include "VectorMath.h"
#include <immintrin.h>

#define CLONES __attribute__((target_clones("avx2", "default")))

typedef struct {
    float *values;
    long count;
} job;

// AVX-512 has what the portable loop below builds by hand: 2ⁿ·p in one instruction (vscalefps) and a 14-bit
// reciprocal estimate (vrcp14ps), after which one Newton step suffices: about 17 instructions per 16 values instead of
// 24. SiLU is a quarter of EfficientNet-B0's inference time, all of it in these instructions.
__attribute__((target("avx512f")))
static void silu_range_avx512(float *values, long first, long end) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (long i = first; i < end; i += 16) {
        // Lanes past `end` are masked out of the load and the store.
        const __mmask16 mask = end - i >= 16 ? 0xFFFF : (__mmask16)((1u << (end - i)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(mask, values + i);
        // e^−x = 2^t, t = −x·log₂e in [−126, 100] (as in VectorMath.h), t = n + f with |f| ≤ ½.
        const __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x, _mm512_set1_ps(-1.44269504f)),
                                                     _mm512_set1_ps(-126.0f)), _mm512_set1_ps(100.0f));
        const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512 f = _mm512_sub_ps(t, n);
        __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.5403530e-4f), f, _mm512_set1_ps(1.3333558e-3f));
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291e-3f));
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.24022651f));
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.69314718f));
        p = _mm512_fmadd_ps(p, f, one);
        const __m512 d = _mm512_add_ps(_mm512_scalef_ps(p, n), one);
        __m512 r = _mm512_rcp14_ps(d);
        r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, one), r);
        _mm512_mask_storeu_ps(values + i, mask, _mm512_mul_ps(x, r));
    }
}

// Not static: target_clones needs an external symbol for its resolver.
CLONES
void fovea_silu_range(float *values, long first, long end) {
    long i = first;
    for (; i + 16 <= end; i += 16) STORE16(values + i, SILU16(LOAD16(values + i)));
    if (i < end) {
        // The tail through a zero-padded vector (SiLU(0) = 0 is not stored: only the tail's own lanes are copied back).
        float tail[16] = {0};
        for (long k = i; k < end; k++) tail[k - i] = values[k];
        STORE16(tail, SILU16(LOAD16(tail)));
        for (long k = i; k < end; k++) values[k] = tail[k - i];
    }
}

// __builtin_cpu_supports reads what the runtime's constructor found at load time: cheap, and safe from any thread.
int fovea_cpu_has_avx512(void) { return __builtin_cpu_supports("avx512f") ? 1 : 0; }

static void silu_range(float *values, long first, long end) {
    if (fovea_cpu_has_avx512()) silu_range_avx512(values, first, end);
    else fovea_silu_range(values, first, end);
}

static void share(void *data) {
    const job *work = data;
    long first, end;
    thread_share_vectors(work->count, &first, &end);
    if (first < end) silu_range(work->values, first, end);
}

void fovea_silu_inplace(float *values, long count) {
    job work = {values, count};
    // Below a few thousand elements waking the team costs more than the loop.
    if (count < 4096) {
        silu_range(values, 0, count);
        return;
    }
    GOMP_parallel(share, &work, 0, 0);
}

void fovea_silu_portable(float *values, long count) { fovea_silu_range(values, 0, count); }
