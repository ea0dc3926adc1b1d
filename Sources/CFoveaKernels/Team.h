// Running a kernel's loop on oneDNN's own OpenMP team: libgomp's entry point (what GCC emits for `#pragma omp
// parallel`), so that no second pool of threads competes with oneDNN's for the cores, and each thread's share of the
// work.
#ifndef FOVEA_TEAM_H
#define FOVEA_TEAM_H

void GOMP_parallel(void (*function)(void *), void *data, unsigned threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_get_max_threads(void);

// [first, end) of `count` items for the calling thread of the team: contiguous shares, sizes differing by at most one.
static inline void thread_share(long count, long *first, long *end) {
    const long threads = omp_get_num_threads(), thread = omp_get_thread_num();
    *first = count * thread / threads;
    *end = count * (thread + 1) / threads;
}

// The same in whole vectors of 16 items, so that only the last share has a tail.
static inline void thread_share_vectors(long count, long *first, long *end) {
    thread_share((count + 15) / 16, first, end);
    *first *= 16;
    *end = *end * 16 < count ? *end * 16 : count;
}

#endif
