/* Times oneDNN forward-inference convolutions directly, outside Fovea, in three precisions, so Debian's oneDNN 2.6
 * can be compared with Intel's oneDNN 3.x from PyPI on the same machine (e.g. whether AMX bf16/int8 kernels are
 * picked and how fast they are):
 *   f32  - src, weights, dst f32
 *   bf16 - src, weights, dst bf16
 *   int8 - src u8, weights s8, dst u8, per-output-channel scales (v2: output scales, mask 1<<1;
 *          v3: weights scales mask 1, src and dst scales mask 0, passed as memories at execution)
 * on ResNet-18 shapes at batch 16: 64->64 56x56, 128->128 28x28, 256->256 14x14, 512->512 7x7 (3x3, stride 1,
 * pad 1) and the stem 3->64 7x7 stride 2 pad 3 at 224x224. oneDNN chooses all layouts (format_tag_any); inputs are
 * filled with small values through a reorder from plain nchw/oihw; 3 warm-ups, then the best of N runs (default 20,
 * or the first argument). One line per case: version, dtype, shape, implementation, best ms, GFLOP/s (GOP/s for
 * int8) counted as 2*N*K*C*R*S*P*Q. Direct convolution algorithm, bias-free.
 * ONEDNN_PRECISION_QUICK=1 runs only the 512->512 7x7 case with 2 repetitions and checks 8 sampled outputs against
 * a direct sum (smoke test).
 * Build against Debian's oneDNN 2.6 (API v2):
 *   cc -O2 Benchmarks/onednn-precision.c -o /tmp/onednn-precision-26 -ldnnl
 * Build against oneDNN 3.x from PyPI (API v3). The current `onednn`/`onednn-devel` wheels (2026.1.0 = oneDNN 3.13.2)
 * use the SYCL CPU runtime and find no SYCL CPU device here (no OpenCL Unified Runtime adapter is shipped), so
 * dnnl_engine_create(cpu) fails; the OpenMP (GNU libgomp) wheels of oneDNN 3.2.0 work:
 *   python3 -m venv /tmp/onednn3-gomp && /tmp/onednn3-gomp/bin/pip install onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0
 *   cc -O2 -I/tmp/onednn3-gomp/include Benchmarks/onednn-precision.c -o /tmp/onednn-precision-3 \
 *      -L/tmp/onednn3-gomp/lib -Wl,-rpath,/tmp/onednn3-gomp/lib -Wl,--disable-new-dtags -ldnnl
 * (the same with /tmp/onednn3 after `pip install onednn onednn-devel` builds against 3.13.2 but cannot create the engine)
 * Both Debian's 2.6 and the onednn-cpu-gomp 3.2 use OpenMP (libgomp) threading. */
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_version.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if DNNL_VERSION_MAJOR >= 3
#define V3 1
typedef const_dnnl_memory_desc_t md_t;
#else
#define V3 0
typedef const dnnl_memory_desc_t *md_t;
#endif

#define CHECK(x) do { dnnl_status_t st_ = (x); if (st_ != dnnl_success) { \
    fprintf(stderr, "line %d: %s failed with status %d\n", __LINE__, #x, (int)st_); exit(1); } } while (0)

static dnnl_engine_t eng;
static dnnl_stream_t strm;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static md_t make_md(int nd, const dnnl_dims_t dims, dnnl_data_type_t dt, dnnl_format_tag_t tag) {
#if V3
    dnnl_memory_desc_t m;
    CHECK(dnnl_memory_desc_create_with_tag(&m, nd, dims, dt, tag));
    return m;
#else
    dnnl_memory_desc_t *m = malloc(sizeof *m);
    CHECK(dnnl_memory_desc_init_by_tag(m, nd, dims, dt, tag));
    return m;
#endif
}

static void free_md(md_t m) {
#if V3
    dnnl_memory_desc_destroy((dnnl_memory_desc_t)m);
#else
    free((void *)m);
#endif
}

static uint16_t to_bf16(float f) { uint32_t u; memcpy(&u, &f, 4); return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16); }

/* Fills a plain memory of the given dtype with small values; kind 0 = activations (non-negative), 1 = weights. */
static void fill(dnnl_memory_t m, dnnl_data_type_t dt, size_t count, int kind) {
    void *p;
    CHECK(dnnl_memory_map_data(m, &p));
    for (size_t i = 0; i < count; i++) {
        int v = kind == 0 ? (int)(i % 5) : (int)(i % 5) - 2; /* 0..4 or -2..2 */
        switch (dt) {
        case dnnl_f32: ((float *)p)[i] = v * 0.125f; break;
        case dnnl_bf16: ((uint16_t *)p)[i] = to_bf16(v * 0.125f); break;
        case dnnl_u8: ((uint8_t *)p)[i] = (uint8_t)v; break;
        case dnnl_s8: ((int8_t *)p)[i] = (int8_t)v; break;
        default: break;
        }
    }
    CHECK(dnnl_memory_unmap_data(m, p));
}

/* Allocates a memory with the layout the primitive chose and fills it (padding zeroed) via a reorder from plain. */
static dnnl_memory_t make_filled(md_t chosen, int nd, const dnnl_dims_t dims, dnnl_data_type_t dt,
                                 dnnl_format_tag_t plain_tag, int kind) {
    md_t plain = make_md(nd, dims, dt, plain_tag);
    size_t count = 1;
    for (int i = 0; i < nd; i++) count *= (size_t)dims[i];
    dnnl_memory_t pm, cm;
    CHECK(dnnl_memory_create(&pm, plain, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&cm, chosen, eng, DNNL_MEMORY_ALLOCATE));
    fill(pm, dt, count, kind);
    dnnl_primitive_desc_t rpd;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, plain, eng, chosen, eng, NULL));
    dnnl_primitive_t r;
    CHECK(dnnl_primitive_create(&r, rpd));
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, pm}, {DNNL_ARG_TO, cm}};
    CHECK(dnnl_primitive_execute(r, strm, 2, a));
    CHECK(dnnl_stream_wait(strm));
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(pm);
    free_md(plain);
    return cm;
}

static dnnl_memory_t make_scales(dnnl_dim_t n, float v) {
    dnnl_dims_t d = {n};
    md_t md = make_md(1, d, dnnl_f32, dnnl_a);
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
    float *p;
    CHECK(dnnl_memory_map_data(m, (void **)&p));
    for (dnnl_dim_t i = 0; i < n; i++) p[i] = v;
    CHECK(dnnl_memory_unmap_data(m, p));
    free_md(md);
    return m;
}


typedef struct { const char *name; int C, K, H, R, S, P; } shape_t;   /* S = stride, P = padding */
typedef struct { const char *name; dnnl_data_type_t src, wei, dst; int is_int8; } prec_t;

static float from_bf16(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }

/* Smoke-test check: reorders dst to plain nchw and compares a few output points with a direct sum over the values
 * fill() wrote. Returns the number of mismatches. */
static int check(dnnl_memory_t md, md_t d_md, const prec_t *pr, const shape_t *sh, int N, int OH, const float *kscale) {
    dnnl_dims_t dd = {N, sh->K, OH, OH};
    md_t plain = make_md(4, dd, pr->dst, dnnl_nchw);
    dnnl_memory_t pm;
    CHECK(dnnl_memory_create(&pm, plain, eng, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, d_md, eng, plain, eng, NULL));
    dnnl_primitive_t r;
    CHECK(dnnl_primitive_create(&r, rpd));
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, md}, {DNNL_ARG_TO, pm}};
    CHECK(dnnl_primitive_execute(r, strm, 2, a));
    CHECK(dnnl_stream_wait(strm));
    void *p;
    CHECK(dnnl_memory_map_data(pm, &p));
    int bad = 0;
    double unit = pr->is_int8 ? 1.0 : 0.125;
    for (int t = 0; t < 8; t++) {
        int n = (t * 5) % N, k = (t * 37 + 3) % sh->K, oh = (t * 3) % OH, ow = (t * 5 + 1) % OH;
        double acc = 0;
        for (int c = 0; c < sh->C; c++)
            for (int r = 0; r < sh->R; r++)
                for (int q = 0; q < sh->R; q++) {
                    int h = oh * sh->S - sh->P + r, w = ow * sh->S - sh->P + q;
                    if (h < 0 || h >= sh->H || w < 0 || w >= sh->H) continue;
                    size_t si = (((size_t)n * sh->C + c) * sh->H + h) * sh->H + w;
                    size_t wi = (((size_t)k * sh->C + c) * sh->R + r) * sh->R + q;
                    acc += (double)(si % 5) * unit * ((double)(wi % 5) - 2) * unit;
                }
        size_t di = (((size_t)n * sh->K + k) * OH + oh) * OH + ow;
        double want, got, tol;
        if (pr->is_int8) {
            want = acc * kscale[k];
            want = want < 0 ? 0 : want > 255 ? 255 : want;
            got = ((uint8_t *)p)[di];
            tol = 1.01;
        } else {
            want = acc;
            got = pr->dst == dnnl_bf16 ? from_bf16(((uint16_t *)p)[di]) : ((float *)p)[di];
            tol = (pr->dst == dnnl_bf16 ? 1e-2 : 1e-4) * (1 + (want < 0 ? -want : want));
        }
        if ((got - want > tol) || (want - got > tol)) {
            if (bad++ < 3) printf("  check %s: n%d k%d (%d,%d) got %g want %g\n", pr->name, n, k, oh, ow, got, want);
        }
    }
    CHECK(dnnl_memory_unmap_data(pm, p));
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(pm);
    free_md(plain);
    return bad;
}

static void run(const char *ver, const prec_t *pr, const shape_t *sh, int N, int reps, int verify) {
    int OH = (sh->H + 2 * sh->P - sh->R) / sh->S + 1;
    dnnl_dims_t sd = {N, sh->C, sh->H, sh->H}, wd = {sh->K, sh->C, sh->R, sh->R}, dd = {N, sh->K, OH, OH};
    dnnl_dims_t strides = {sh->S, sh->S}, pad = {sh->P, sh->P};
    md_t s_any = make_md(4, sd, pr->src, dnnl_format_tag_any);
    md_t w_any = make_md(4, wd, pr->wei, dnnl_format_tag_any);
    md_t d_any = make_md(4, dd, pr->dst, dnnl_format_tag_any);

    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr));
    float *oscales = NULL;
    if (pr->is_int8) {
#if V3
        CHECK(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_SRC, 0));
        CHECK(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_WEIGHTS, 1));
        CHECK(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_DST, 0));
#else
        oscales = malloc(sizeof(float) * sh->K);
        for (int k = 0; k < sh->K; k++) oscales[k] = 0.02f + 0.0001f * (k % 7);
        CHECK(dnnl_primitive_attr_set_output_scales(attr, sh->K, 1 << 1, oscales));
#endif
    }

    char shape[64];
    snprintf(shape, sizeof shape, "b%d %d->%d %dx%d k%d s%d", N, sh->C, sh->K, sh->H, sh->H, sh->R, sh->S);

    dnnl_primitive_desc_t pd;
    dnnl_status_t stt;
#if V3
    stt = dnnl_convolution_forward_primitive_desc_create(&pd, eng, dnnl_forward_inference, dnnl_convolution_direct,
            s_any, w_any, NULL, d_any, strides, NULL, pad, pad, attr);
#else
    dnnl_convolution_desc_t cd;
    CHECK(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
            s_any, w_any, NULL, d_any, strides, pad, pad));
    stt = dnnl_primitive_desc_create(&pd, &cd, attr, eng, NULL);
#endif
    if (stt != dnnl_success) {
        printf("oneDNN %s  %-4s  %-26s  %-34s  (no implementation, status %d)\n", ver, pr->name, shape, "-", (int)stt);
        fflush(stdout);
        goto out;
    }
    const char *impl = "?";
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));

    md_t s_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    md_t w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    md_t d_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_memory_t ms = make_filled(s_md, 4, sd, pr->src, dnnl_nchw, 0);
    dnnl_memory_t mw = make_filled(w_md, 4, wd, pr->wei, dnnl_oihw, 1);
    dnnl_memory_t md;
    CHECK(dnnl_memory_create(&md, d_md, eng, DNNL_MEMORY_ALLOCATE));

    dnnl_exec_arg_t args[6] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
    int nargs = 3;
    dnnl_memory_t sc_src = NULL, sc_wei = NULL, sc_dst = NULL;
#if V3
    if (pr->is_int8) {
        sc_src = make_scales(1, 0.5f);
        sc_wei = make_scales(sh->K, 0.04f);
        sc_dst = make_scales(1, 1.0f);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, sc_src};
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, sc_wei};
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_SCALES | DNNL_ARG_DST, sc_dst};
    }
#else
    (void)make_scales;
#endif

    dnnl_primitive_t prim;
    CHECK(dnnl_primitive_create(&prim, pd));
    for (int i = 0; i < 3; i++) { CHECK(dnnl_primitive_execute(prim, strm, nargs, args)); CHECK(dnnl_stream_wait(strm)); }
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t = now();
        CHECK(dnnl_primitive_execute(prim, strm, nargs, args));
        CHECK(dnnl_stream_wait(strm));
        t = now() - t;
        if (t < best) best = t;
    }
    double ops = 2.0 * N * sh->K * sh->C * sh->R * sh->R * (double)OH * OH;
    printf("oneDNN %s  %-4s  %-26s  %-34s  %9.3f ms  %8.1f %s\n", ver, pr->name, shape, impl, best * 1e3,
           ops / best * 1e-9, pr->is_int8 ? "GOP/s" : "GFLOP/s");
    fflush(stdout);
    if (verify) {
        float *ks = malloc(sizeof(float) * sh->K);
        for (int k = 0; k < sh->K; k++) ks[k] = oscales ? oscales[k] : 0.5f * 0.04f / 1.0f; /* v3: src*wei/dst */
        int bad = check(md, d_md, pr, sh, N, OH, ks);
        printf("  check %s: %s\n", pr->name, bad ? "MISMATCH" : "8 sampled outputs match a direct sum");
        free(ks);
    }

    dnnl_primitive_destroy(prim);
    dnnl_memory_destroy(ms); dnnl_memory_destroy(mw); dnnl_memory_destroy(md);
    if (sc_src) dnnl_memory_destroy(sc_src);
    if (sc_wei) dnnl_memory_destroy(sc_wei);
    if (sc_dst) dnnl_memory_destroy(sc_dst);
    dnnl_primitive_desc_destroy(pd);
out:
    free(oscales);
    dnnl_primitive_attr_destroy(attr);
    free_md(s_any); free_md(w_any); free_md(d_any);
}

int main(int argc, char **argv) {
    const shape_t shapes[] = {
        {"a", 64, 64, 56, 3, 1, 1},
        {"b", 128, 128, 28, 3, 1, 1},
        {"c", 256, 256, 14, 3, 1, 1},
        {"d", 512, 512, 7, 3, 1, 1},
        {"e", 3, 64, 224, 7, 2, 3},
    };
    const prec_t precs[] = {
        {"f32", dnnl_f32, dnnl_f32, dnnl_f32, 0},
        {"bf16", dnnl_bf16, dnnl_bf16, dnnl_bf16, 0},
        {"int8", dnnl_u8, dnnl_s8, dnnl_u8, 1},
    };
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    if (reps < 1) reps = 1;
    const char *q = getenv("ONEDNN_PRECISION_QUICK");
    int quick = q && *q && strcmp(q, "0") != 0;
    if (quick) reps = 2;

    const dnnl_version_t *v = dnnl_version();
    char ver[32];
    snprintf(ver, sizeof ver, "%d.%d.%d", v->major, v->minor, v->patch);
    printf("# oneDNN %s (hash %s, headers %d.%d.%d, API v%d), cpu runtime 0x%x, effective ISA 0x%x, best of %d%s\n",
           ver, v->hash ? v->hash : "-", DNNL_VERSION_MAJOR, DNNL_VERSION_MINOR, DNNL_VERSION_PATCH, V3 ? 3 : 2,
           v->cpu_runtime, (unsigned)dnnl_get_effective_cpu_isa(), reps, quick ? " (quick: case d only)" : "");
    fflush(stdout);

    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        if (quick && strcmp(shapes[s].name, "d") != 0) continue;
        for (size_t p = 0; p < sizeof precs / sizeof precs[0]; p++) run(ver, &precs[p], &shapes[s], 16, reps, quick);
    }
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
    return 0;
}
