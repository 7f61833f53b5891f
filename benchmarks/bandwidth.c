// DRAM read bandwidth: threads sum disjoint slices of one anonymous buffer.
//   bandwidth SIZE_MIB THREADS REPS HUGE
// HUGE=1 asks for 2 MiB transparent huge pages (madvise(MADV_HUGEPAGE) on a 2 MiB-aligned
// region), HUGE=0 forbids them (MADV_NOHUGEPAGE), i.e. plain 4 KiB pages.
// Prints one JSON object: median / best GB/s over REPS and the huge-page bytes obtained.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define ALIGN_2M ((size_t)2 << 20)

typedef struct {
    const uint64_t* p;
    size_t n;
    uint64_t sum;
} slice_t;

static pthread_barrier_t start_barrier, done_barrier;
static int reps_total;
static volatile uint64_t sink;

static uint64_t sum_slice(const uint64_t* p, size_t n) {
    // Independent accumulators so the loop is bound by loads, not by an add chain.
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3];
        a4 += p[i + 4]; a5 += p[i + 5]; a6 += p[i + 6]; a7 += p[i + 7];
    }
    for (; i < n; ++i) a0 += p[i];
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

static void* worker(void* arg) {
    slice_t* s = (slice_t*)arg;
    for (int r = 0; r < reps_total; ++r) {
        pthread_barrier_wait(&start_barrier);
        s->sum += sum_slice(s->p, s->n);
        pthread_barrier_wait(&done_barrier);
    }
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long anon_huge_kib(void) {
    FILE* f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "AnonHugePages: %ld kB", &kib) == 1) break;
    }
    fclose(f);
    return kib;
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

int main(int argc, char** argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s SIZE_MIB THREADS REPS HUGE\n", argv[0]);
        return 2;
    }
    size_t bytes = (size_t)atol(argv[1]) << 20;
    int threads = atoi(argv[2]);
    int reps = atoi(argv[3]);
    int huge = atoi(argv[4]);
    if (threads < 1 || reps < 1 || bytes == 0) return 2;

    char* raw = mmap(NULL, bytes + ALIGN_2M, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    uint64_t* buf = (uint64_t*)(((uintptr_t)raw + ALIGN_2M - 1) & ~(uintptr_t)(ALIGN_2M - 1));
    if (madvise(buf, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) perror("madvise");
    size_t n = bytes / sizeof(uint64_t);
    for (size_t i = 0; i < n; ++i) buf[i] = i;  // fault every page in before timing

    reps_total = reps + 1;  // one untimed warm-up pass
    pthread_barrier_init(&start_barrier, NULL, threads + 1);
    pthread_barrier_init(&done_barrier, NULL, threads + 1);
    pthread_t* tids = calloc(threads, sizeof(pthread_t));
    slice_t* slices = calloc(threads, sizeof(slice_t));
    size_t per = (n / threads) & ~(size_t)7;
    for (int t = 0; t < threads; ++t) {
        slices[t].p = buf + (size_t)t * per;
        slices[t].n = t == threads - 1 ? n - (size_t)t * per : per;
        pthread_create(&tids[t], NULL, worker, &slices[t]);
    }
    double* gbs = calloc(reps, sizeof(double));
    for (int r = 0; r < reps_total; ++r) {
        double t0 = now();
        pthread_barrier_wait(&start_barrier);
        pthread_barrier_wait(&done_barrier);
        double dt = now() - t0;
        if (r > 0) gbs[r - 1] = (double)bytes / dt / 1e9;
    }
    for (int t = 0; t < threads; ++t) {
        pthread_join(tids[t], NULL);
        sink += slices[t].sum;
    }
    long huge_kib = anon_huge_kib();
    qsort(gbs, reps, sizeof(double), cmp_double);
    double median = reps % 2 ? gbs[reps / 2] : 0.5 * (gbs[reps / 2 - 1] + gbs[reps / 2]);
    printf("{\"threads\": %d, \"huge\": %d, \"bytes\": %zu, \"reps\": %d, "
           "\"median_gbs\": %.3f, \"best_gbs\": %.3f, \"anon_huge_kib\": %ld}\n",
           threads, huge, bytes, reps, median, gbs[reps - 1], huge_kib);
    return 0;
}
