// SiLU for inference. oneDNN 2.6 applies SiLU (its `swish` post-op) to a convolution's output at a cost above the
// convolution's own on EfficientNet's shapes (a 1×1 expansion of one 112×112 image from 16 to 96 channels: 477 µs with
// the post-op, 217 µs with ReLU6 in its place; Benchmarks/NOTES.md), so inference convolutions followed by SiLU run
// without the post-op and Fovea applies it here, in place, while the output is still in cache. The elements are shared
// out over oneDNN's OpenMP team through libgomp's GOMP_parallel, like MaxPool.c.
#include "FoveaKernels.h"
#include "VectorMath.h"

void GOMP_parallel(void (*function)(void *), void *data, unsigned threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);

#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

typedef struct {
    float *values;
    long count;
} job;

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

static void share(void *data) {
    const job *work = data;
    const long threads = omp_get_num_threads(), thread = omp_get_thread_num();
    // Shares in whole vectors (multiples of 16 elements) so that only the last share has a tail.
    const long vectors = (work->count + 15) / 16;
    long first = vectors * thread / threads * 16, end = vectors * (thread + 1) / threads * 16;
    end = end < work->count ? end : work->count;
    if (first < end) fovea_silu_range(work->values, first, end);
}

void fovea_silu_inplace(float *values, long count) {
    job work = {values, count};
    // Below a few thousand elements waking the team costs more than the loop.
    if (count < 4096) {
        fovea_silu_range(values, 0, count);
        return;
    }
    GOMP_parallel(share, &work, 0, 0);
}
