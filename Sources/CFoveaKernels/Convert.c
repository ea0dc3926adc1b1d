// Widening of a whole block to float32 for the first consumer that reads Float (Storage.pointer): bfloat16, what an
// inference convolution under bf16 wrote (the upper half of a float32, so each value is a 16-bit shift), and u8/s8,
// what an int8 convolution wrote (value × scale). The loops are memory-bound and shared out over oneDNN's OpenMP team
// like SiLU (Activation.c).
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

typedef struct {
    const void *source;
    int is_unsigned;
    float scale;
    float *target;
    long count;
} int8_job;

__attribute__((target_clones("avx512f", "avx2", "default")))
void fovea_widen_int8_range(const void *source, int is_unsigned, float scale, float *target, long first, long end) {
    if (is_unsigned) {
        const uint8_t *values = source;
        for (long i = first; i < end; i++) target[i] = (float)values[i] * scale;
    } else {
        const int8_t *values = source;
        for (long i = first; i < end; i++) target[i] = (float)values[i] * scale;
    }
}

static void share_int8(void *data) {
    const int8_job *work = data;
    long first, end;
    thread_share_vectors(work->count, &first, &end);
    if (first < end) fovea_widen_int8_range(work->source, work->is_unsigned, work->scale, work->target, first, end);
}

void fovea_widen_int8(const void *source, int is_unsigned, float scale, float *target, long count) {
    int8_job work = {source, is_unsigned, scale, target, count};
    if (count < 16384) {
        fovea_widen_int8_range(source, is_unsigned, scale, target, 0, count);
        return;
    }
    GOMP_parallel(share_int8, &work, 0, 0);
}
