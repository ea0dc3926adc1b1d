// bfloat16 → float32 widening of a whole block: what an inference convolution under bf16 wrote, for the first consumer
// that reads Float (Storage.pointer). A bfloat16 is the upper half of a float32, so each value is a 16-bit shift; the
// loop is memory-bound and shared out over oneDNN's OpenMP team like SiLU (Activation.c).
#include "FoveaKernels.h"
#include "Team.h"

typedef struct {
    const uint16_t *source;
    float *target;
    long count;
} job;

// Not static: target_clones needs an external symbol for its resolver.
__attribute__((target_clones("avx512f", "avx2", "default")))
void fovea_widen_bf16_range(const uint16_t *source, float *target, long first, long end) {
    uint32_t *bits = (uint32_t *)target;
    for (long i = first; i < end; i++) bits[i] = (uint32_t)source[i] << 16;
}

static void share(void *data) {
    const job *work = data;
    long first, end;
    thread_share_vectors(work->count, &first, &end);
    if (first < end) fovea_widen_bf16_range(work->source, work->target, first, end);
}

void fovea_widen_bf16(const uint16_t *source, float *target, long count) {
    job work = {source, target, count};
    // Below a few thousand elements waking the team costs more than the loop.
    if (count < 16384) {
        fovea_widen_bf16_range(source, target, 0, count);
        return;
    }
    GOMP_parallel(share, &work, 0, 0);
}
