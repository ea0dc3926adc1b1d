// Widening of a whole block to float32 for the first consumer that reads Float (Storage.pointer): bfloat16, what an
// inference convolution under bf16 wrote (the upper half of a float32, so each value is a 16-bit shift), and u8/s8,
// what an int8 convolution wrote (value × scale). The loops are memory-bound and shared out over oneDNN's OpenMP team
// like SiLU (Activation.c).
#include "FoveaKernels.h"
#include "Team.h"

// One widening job: `kind` says what `source` holds (bf16, u8 or s8; `scale` for the 8-bit ones).
typedef enum { widen_bf16, widen_u8, widen_s8 } widen_kind;

typedef struct {
    const void *source;
    widen_kind kind;
    float scale;
    float *target;
    long count;
} job;

// Not static: target_clones needs an external symbol for its resolver.
__attribute__((target_clones("avx512f", "avx2", "default")))
void fovea_widen_bf16_range(const uint16_t *source, float *target, long first, long end) {
    uint32_t *bits = (uint32_t *)target;
    for (long i = first; i < end; i++) bits[i] = (uint32_t)source[i] << 16;
}

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

static void run_range(const job *work, long first, long end) {
    if (work->kind == widen_bf16) fovea_widen_bf16_range(work->source, work->target, first, end);
    else fovea_widen_int8_range(work->source, work->kind == widen_u8, work->scale, work->target, first, end);
}

static void share(void *data) {
    const job *work = data;
    long first, end;
    thread_share_vectors(work->count, &first, &end);
    if (first < end) run_range(work, first, end);
}

static void run(job work) {
    // Below a few thousand elements waking the team costs more than the loop.
    if (work.count < 16384) {
        run_range(&work, 0, work.count);
        return;
    }
    GOMP_parallel(share, &work, 0, 0);
}

void fovea_widen_bf16(const uint16_t *source, float *target, long count) {
    run((job){source, widen_bf16, 1, target, count});
}

void fovea_widen_int8(const void *source, int is_unsigned, float scale, float *target, long count) {
    run((job){source, is_unsigned ? widen_u8 : widen_s8, scale, target, count});
}
