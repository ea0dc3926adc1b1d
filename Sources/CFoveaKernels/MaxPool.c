// Max pooling for training. oneDNN 2.6's max pooling is about ten times slower in training, where it also records each
// window's arg-max, than in inference (128×6×28×28, 2×2/2 on nChw16c: 738 µs against 150 µs on this machine kind, see
// Benchmarks/NOTES.md), so Fovea records the arg-max itself. Planes are shared out over the OpenMP team oneDNN runs on
// (libgomp's GOMP_parallel, what GCC emits for `#pragma omp parallel`), so no second pool of threads competes with
// oneDNN's for the cores. The pixel loops work on eight lanes at a time with vector extensions; target_clones builds
// them for AVX-512, AVX2 and the baseline and picks one when the library loads.
#include "FoveaKernels.h"
#include "Team.h"
#include "VectorMath.h"
#include <math.h>
#include <string.h>

#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

typedef uint8_t bytes8 __attribute__((vector_size(8)));

// A macro rather than a function, like those of VectorMath.h: the loops that use it have clones.
#define SELECT8(mask, a, b) ((floats8)(((mask) & (ints8)(a)) | (~(mask) & (ints8)(b))))

// The window of output index i along one axis, clipped to the input: [start, end) and the window position of start.
static inline void window(long i, long kernel, long stride, long padding, long size, long *start, long *end, long *skipped) {
    long origin = i * stride - padding;
    *start = origin > 0 ? origin : 0;
    *end = origin + kernel < size ? origin + kernel : size;
    *skipped = *start - origin;
}

typedef struct {
    const fovea_pool_geometry *geometry;
    const float *values;     // forward: the input; backward: the output gradient
    uint8_t *indices;        // written forward, read backward
    float *result;           // forward: the output; backward: the input gradient
} job;

CLONES
void fovea_max_pool_forward_planes(const job *work, long first_group, long end_group) {
    const fovea_pool_geometry *g = work->geometry;
    const long lanes = g->lanes, kw = g->kernel_width, vectors = lanes % 8 == 0 ? lanes / 8 : 0;
    const long input_plane = g->height * g->width * lanes, output_plane = g->output_height * g->output_width * lanes;
    for (long group = first_group; group < end_group; group++) {
        const float *x = work->values + group * input_plane;
        for (long i = 0; i < g->output_height; i++) {
            long top, bottom, skipped_rows;
            window(i, g->kernel_height, g->stride_height, g->padding_height, g->height, &top, &bottom, &skipped_rows);
            for (long j = 0; j < g->output_width; j++) {
                long left, right, skipped_columns;
                window(j, kw, g->stride_width, g->padding_width, g->width, &left, &right, &skipped_columns);
                const long offset = group * output_plane + (i * g->output_width + j) * lanes;
                const float first = (float)(skipped_rows * kw + skipped_columns);
                for (long vector = 0; vector < vectors; vector++) {
                    floats8 best = {0}, argmax = {0};
                    best -= INFINITY;
                    argmax += first;
                    for (long r = top; r < bottom; r++) {
                        for (long s = left; s < right; s++) {
                            const floats8 v = LOAD8(x + (r * g->width + s) * lanes + vector * 8);
                            const floats8 position = argmax - argmax
                                + (float)((r - top + skipped_rows) * kw + s - left + skipped_columns);
                            const ints8 take = (v > best) | (v != v);
                            best = SELECT8(take, v, best);
                            argmax = SELECT8(take, position, argmax);
                        }
                    }
                    STORE8(work->result + offset + vector * 8, best);
                    const bytes8 bytes = __builtin_convertvector(__builtin_convertvector(argmax, ints8), bytes8);
                    memcpy(work->indices + offset + vector * 8, &bytes, sizeof bytes);
                }
                for (long l = vectors * 8; l < lanes; l++) {
                    float best = -INFINITY, argmax = first;
                    for (long r = top; r < bottom; r++) {
                        for (long s = left; s < right; s++) {
                            const float v = x[(r * g->width + s) * lanes + l];
                            if (v > best || v != v) {
                                best = v;
                                argmax = (float)((r - top + skipped_rows) * kw + s - left + skipped_columns);
                            }
                        }
                    }
                    work->result[offset + l] = best;
                    work->indices[offset + l] = (uint8_t)argmax;
                }
            }
        }
    }
}

CLONES
void fovea_max_pool_backward_planes(const job *work, long first_group, long end_group) {
    const fovea_pool_geometry *g = work->geometry;
    const long lanes = g->lanes, kw = g->kernel_width, vectors = lanes % 8 == 0 ? lanes / 8 : 0;
    const long input_plane = g->height * g->width * lanes, output_plane = g->output_height * g->output_width * lanes;
    for (long group = first_group; group < end_group; group++) {
        float *dx = work->result + group * input_plane;
        memset(dx, 0, (size_t)input_plane * sizeof(float));
        for (long i = 0; i < g->output_height; i++) {
            long top, bottom, skipped_rows;
            window(i, g->kernel_height, g->stride_height, g->padding_height, g->height, &top, &bottom, &skipped_rows);
            for (long j = 0; j < g->output_width; j++) {
                long left, right, skipped_columns;
                window(j, kw, g->stride_width, g->padding_width, g->width, &left, &right, &skipped_columns);
                const long offset = group * output_plane + (i * g->output_width + j) * lanes;
                for (long vector = 0; vector < vectors; vector++) {
                    const floats8 dy = LOAD8(work->values + offset + vector * 8), zero = {0};
                    bytes8 bytes;
                    memcpy(&bytes, work->indices + offset + vector * 8, sizeof bytes);
                    const ints8 argmax = __builtin_convertvector(bytes, ints8);
                    for (long r = top; r < bottom; r++) {
                        for (long s = left; s < right; s++) {
                            float *pixel = dx + (r * g->width + s) * lanes + vector * 8;
                            const int position = (int)((r - top + skipped_rows) * kw + s - left + skipped_columns);
                            STORE8(pixel, LOAD8(pixel) + SELECT8(argmax == position, dy, zero));
                        }
                    }
                }
                for (long l = vectors * 8; l < lanes; l++) {
                    const long position = work->indices[offset + l];
                    const long r = top - skipped_rows + position / kw, s = left - skipped_columns + position % kw;
                    dx[(r * g->width + s) * lanes + l] += work->values[offset + l];
                }
            }
        }
    }
}

static void forward_share(void *data) {
    const job *work = data;
    long first, end;
    thread_share(work->geometry->groups, &first, &end);
    fovea_max_pool_forward_planes(work, first, end);
}

static void backward_share(void *data) {
    const job *work = data;
    long first, end;
    thread_share(work->geometry->groups, &first, &end);
    fovea_max_pool_backward_planes(work, first, end);
}

void fovea_max_pool_forward(const float *input, const fovea_pool_geometry *geometry, float *output, uint8_t *indices) {
    job work = {geometry, input, indices, output};
    GOMP_parallel(forward_share, &work, 0, 0);
}

void fovea_max_pool_backward(const float *output_gradient, const uint8_t *indices, const fovea_pool_geometry *geometry,
                             float *input_gradient) {
    job work = {geometry, output_gradient, (uint8_t *)indices, input_gradient};
    GOMP_parallel(backward_share, &work, 0, 0);
}
