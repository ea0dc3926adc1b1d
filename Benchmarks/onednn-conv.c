/* Times oneDNN 2.6's convolution kernels directly on one 3x3 shape (padding 1), outside Fovea: forward training,
 * backward data and backward weights, for each activation layout (nChw16c, nChw8c, nhwc) and algorithm (direct,
 * Winograd, auto), best of 20 runs after 3 warm-ups, with the implementation oneDNN picked. Used to choose Fovea's
 * Winograd threshold (Benchmarks/NOTES.md).
 *   cc -O2 Benchmarks/onednn-conv.c -o /tmp/onednn-conv -ldnnl && /tmp/onednn-conv N C K H STRIDE
 * e.g. /tmp/onednn-conv 128 32 32 16 1 (ResNet-20's 32-channel layers in a training batch of 128). */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define CHECK(x) do { dnnl_status_t st_ = (x); if (st_ != dnnl_success) { printf("fail %s: %d\n", #x, st_); return -1; } } while (0)
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
dnnl_engine_t eng; dnnl_stream_t st;
static dnnl_memory_t mem(const dnnl_memory_desc_t *md) { dnnl_memory_t m; dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE);
  void *p; dnnl_memory_get_data_handle(m, &p); size_t n = dnnl_memory_desc_get_size(md); memset(p, 0, n); float *f = p; for (size_t i = 0; i < n/4; i++) f[i] = (i % 7) * 0.1f; return m; }
int run(int N, int C, int K, int H, int S, dnnl_format_tag_t tag, dnnl_alg_kind_t alg, int which, int reps) {
  int OH = (H + 2 - 3) / S + 1;
  dnnl_dims_t sd = {N, C, H, H}, wd = {K, C, 3, 3}, dd = {N, K, OH, OH}, str = {S, S}, pad = {1, 1};
  dnnl_memory_desc_t s, w, d; dnnl_memory_desc_init_by_tag(&s, 4, sd, dnnl_f32, tag); dnnl_memory_desc_init_by_tag(&w, 4, wd, dnnl_f32, dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&d, 4, dd, dnnl_f32, tag);
  dnnl_convolution_desc_t fd; CHECK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, alg, &s, &w, NULL, &d, str, pad, pad));
  dnnl_primitive_desc_t fpd; if (dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL) != dnnl_success) { printf("  no impl\n"); return 0; }
  dnnl_primitive_desc_t pd = fpd; dnnl_convolution_desc_t bd;
  if (which == 1) { CHECK(dnnl_convolution_backward_data_desc_init(&bd, alg, &s, &w, &d, str, pad, pad)); if (dnnl_primitive_desc_create(&pd, &bd, NULL, eng, fpd)) { printf("  no impl\n"); return 0; } }
  if (which == 2) { CHECK(dnnl_convolution_backward_weights_desc_init(&bd, alg, &s, &w, NULL, &d, str, pad, pad)); if (dnnl_primitive_desc_create(&pd, &bd, NULL, eng, fpd)) { printf("  no impl\n"); return 0; } }
  const char *impl; dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
  const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, which == 2 ? dnnl_query_diff_weights_md : dnnl_query_weights_md, 0);
  dnnl_memory_t ms = mem(&s), mw = mem(wmd), md = mem(&d);
  dnnl_primitive_t p; CHECK(dnnl_primitive_create(&p, pd));
  dnnl_exec_arg_t a[3];
  if (which == 0) { a[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, ms}; a[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mw}; a[2] = (dnnl_exec_arg_t){DNNL_ARG_DST, md}; }
  if (which == 1) { a[0] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, ms}; a[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mw}; a[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, md}; }
  if (which == 2) { a[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, ms}; a[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, mw}; a[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, md}; }
  for (int i = 0; i < 3; i++) { dnnl_primitive_execute(p, st, 3, a); dnnl_stream_wait(st); }
  double best = 1e9; for (int i = 0; i < reps; i++) { double t = now(); dnnl_primitive_execute(p, st, 3, a); dnnl_stream_wait(st); t = now() - t; if (t < best) best = t; }
  double fl = 2.0 * N * K * OH * OH * C * 9;
  printf("  %-6s %-30s %8.3f ms %6.1f GFLOP/s\n", which == 0 ? "fwd" : which == 1 ? "bwd_d" : "bwd_w", impl, best * 1e3, fl / best * 1e-9);
  dnnl_primitive_destroy(p); dnnl_memory_destroy(ms); dnnl_memory_destroy(mw); dnnl_memory_destroy(md);
  if (pd != fpd) dnnl_primitive_desc_destroy(pd);
  dnnl_primitive_desc_destroy(fpd);
  return 0;
}
int main(int argc, char **argv) {
  if (argc != 6) { fprintf(stderr, "usage: %s N C K H STRIDE (batch, input and output channels, height = width, stride)\n", argv[0]); return 2; }
  dnnl_engine_create(&eng, dnnl_cpu, 0); dnnl_stream_create(&st, eng, dnnl_stream_default_flags);
  int N = atoi(argv[1]), C = atoi(argv[2]), K = atoi(argv[3]), H = atoi(argv[4]), S = atoi(argv[5]);
  if (N < 1 || C < 1 || K < 1 || H < 3 || S < 1) { fprintf(stderr, "all sizes must be positive and H at least 3\n"); return 2; }
  struct { const char *n; dnnl_format_tag_t t; } tags[] = {{"nChw16c", dnnl_nChw16c}, {"nChw8c", dnnl_nChw8c}, {"nhwc", dnnl_nhwc}};
  for (int t = 0; t < 3; t++) for (int alg = 0; alg < 3; alg++) {
    printf("%s %s\n", tags[t].n, alg == 2 ? "auto" : alg ? "winograd" : "direct");
    for (int w = 0; w < 3; w++) run(N, C, K, H, S, tags[t].t, alg == 2 ? dnnl_convolution_auto : alg ? dnnl_convolution_winograd : dnnl_convolution_direct, w, 20);
  }
}
