// Per-channel reductions and broadcasts over activations whose channels are the innermost, contiguous lanes of each
// pixel (nChw8c / nChw16c blocks, nhwc): squeeze-excitation's global average pooling and channel scaling, and their
// gradients. oneDNN 2.6 runs these as a pooling and a binary primitive whose fixed costs dominate on one image's
// activations (EfficientNet-B0 runs its first blocks image by image so that they stay in cache; see
// Benchmarks/NOTES.md). The loops run on oneDNN's OpenMP team through libgomp's GOMP_parallel, like MaxPool.c.
#include "FoveaKernels.h"
#include "Team.h"
#include "VectorMath.h"
#include <stdlib.h>
#include <string.h>

#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

typedef struct {
    const float *a, *b;      // sums: Σ a (b null) or Σ a·b; scaling: a (null: ones) and the factors b
    float *result;           // sums: the output, or threads × groups × lanes partial sums; scaling: the output
    long groups, pixels, lanes;
    float scale;             // sums: multiplies each total
    int split_pixels;        // sums: every thread takes a share of each plane's pixels (few planes), not of the planes
    long threads;            // sums with split_pixels: how many threads wrote partial sums
} job;

// One plane's sum over pixels [first, end) of TERM(offset), for 16 or 8 lanes: four pixels at a time into independent
// accumulators (the adds' latency, not the loads, would limit a single chain).
#define PLANE_SUM(TYPE, LOAD, STORE, WIDTH, TERM)                                                                    \
    do {                                                                                                           \
        TYPE s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};                                                               \
        long p = first;                                                                                            \
        for (; p + 4 <= end; p += 4) {                                                                             \
            const long at = p * WIDTH;                                                                             \
            s0 += TERM(LOAD, at);                                                                                  \
            s1 += TERM(LOAD, at + WIDTH);                                                                          \
            s2 += TERM(LOAD, at + 2 * WIDTH);                                                                      \
            s3 += TERM(LOAD, at + 3 * WIDTH);                                                                      \
        }                                                                                                          \
        for (; p < end; p++) s0 += TERM(LOAD, p * WIDTH);                                                          \
        STORE(out, ((s0 + s1) + (s2 + s3)) * scale);                                                               \
    } while (0)
#define VALUE(LOAD, at) LOAD(a + (at))
#define PRODUCT(LOAD, at) (LOAD(a + (at)) * LOAD(b + (at)))

// Not static: target_clones needs an external symbol for its resolver.
// Sums over pixels [first, end) of planes [first_group, end_group), times `scale`, into output rows of `lanes`.
CLONES
void fovea_channel_sums_planes(const job *work, float *output, long first_group, long end_group, long first, long end,
                               float scale) {
    const long lanes = work->lanes, vectors = lanes / 8;
    for (long group = first_group; group < end_group; group++) {
        float *out = output + group * lanes;
        const float *a = work->a + group * work->pixels * lanes;
        const float *b = work->b ? work->b + group * work->pixels * lanes : 0;
        if (lanes == 16) {
            if (b) PLANE_SUM(floats16, LOAD16, STORE16, 16, PRODUCT); else PLANE_SUM(floats16, LOAD16, STORE16, 16, VALUE);
        } else if (lanes == 8) {
            if (b) PLANE_SUM(floats8, LOAD8, STORE8, 8, PRODUCT); else PLANE_SUM(floats8, LOAD8, STORE8, 8, VALUE);
        } else {
            // nhwc with many channels: one row of lanes per pixel, accumulated in the output row (it stays in L1).
            memset(out, 0, (size_t)lanes * sizeof(float));
            for (long p = first; p < end; p++) {
                const long row = p * lanes;
                for (long v = 0; v < vectors; v++) {
                    const long at = row + v * 8;
                    STORE8(out + v * 8, LOAD8(out + v * 8) + (b ? PRODUCT(LOAD8, at) : VALUE(LOAD8, at)));
                }
            }
            for (long l = 0; l < lanes; l++) out[l] *= scale;
        }
    }
}

static void sums_share(void *data) {
    job *work = data;
    long first, end;
    if (!work->split_pixels) {
        thread_share(work->groups, &first, &end);
        fovea_channel_sums_planes(work, work->result, first, end, 0, work->pixels, work->scale);
        return;
    }
    thread_share(work->pixels, &first, &end);
    const long thread = omp_get_thread_num();
    if (thread == 0) work->threads = omp_get_num_threads();
    fovea_channel_sums_planes(work, work->result + thread * work->groups * work->lanes, 0, work->groups, first, end, 1);
}

static void channel_sums(const float *a, const float *b, long groups, long pixels, long lanes, float scale, float *output) {
    const long threads = omp_get_max_threads() > 0 ? omp_get_max_threads() : 1;
    job work = {a, b, output, groups, pixels, lanes, scale, 0, 1};
    // Planes shared out when there are enough of them to balance; otherwise (one image's few channel blocks) each
    // thread sums a share of every plane into partial sums of its own, added up here.
    float *partial = groups >= 4 * threads ? 0 : malloc((size_t)(threads * groups * lanes) * sizeof(float));
    if (partial) {
        work.result = partial;
        work.split_pixels = 1;
    }
    GOMP_parallel(sums_share, &work, (unsigned)threads, 0);
    if (!partial) return;
    for (long i = 0; i < groups * lanes; i++) {
        float total = 0;
        for (long t = 0; t < work.threads; t++) total += partial[t * groups * lanes + i];
        output[i] = total * scale;
    }
    free(partial);
}

void fovea_channel_sums(const float *input, long groups, long pixels, long lanes, float scale, float *output) {
    channel_sums(input, 0, groups, pixels, lanes, scale, output);
}

void fovea_channel_dot(const float *a, const float *b, long groups, long pixels, long lanes, float *output) {
    channel_sums(a, b, groups, pixels, lanes, 1, output);
}

// Rows (group, pixel) [first, end) of the output: each pixel's lanes times the group's factors.
CLONES
void fovea_scale_channels_rows(const job *work, long first, long end) {
    const long lanes = work->lanes, pixels = work->pixels, vectors = lanes / 8;
    const float *x = work->a;
    float *y = work->result;
    for (long row = first; row < end;) {
        const long group = row / pixels, stop = (group + 1) * pixels < end ? (group + 1) * pixels : end;
        const float *f = work->b + group * lanes;
        if (lanes == 16) {
            const floats16 factor = LOAD16(f);
            if (x) for (; row < stop; row++) STORE16(y + row * 16, LOAD16(x + row * 16) * factor);
            else for (; row < stop; row++) STORE16(y + row * 16, factor);
        } else if (lanes == 8) {
            const floats8 factor = LOAD8(f);
            if (x) for (; row < stop; row++) STORE8(y + row * 8, LOAD8(x + row * 8) * factor);
            else for (; row < stop; row++) STORE8(y + row * 8, factor);
        } else {
            for (; row < stop; row++) {
                for (long v = 0; v < vectors; v++) {
                    const long at = row * lanes + v * 8;
                    STORE8(y + at, x ? LOAD8(x + at) * LOAD8(f + v * 8) : LOAD8(f + v * 8));
                }
            }
        }
    }
}

static void scale_share(void *data) {
    const job *work = data;
    long first, end;
    thread_share(work->groups * work->pixels, &first, &end);
    fovea_scale_channels_rows(work, first, end);
}

void fovea_scale_channels(const float *input, const float *factors, long groups, long pixels, long lanes, float *output) {
    job work = {input, factors, output, groups, pixels, lanes, 1, 0, 0};
    GOMP_parallel(scale_share, &work, 0, 0);
}
