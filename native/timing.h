// Clock and median helpers shared by the native benchmarks (layernorm_bench.c, fused_floor.c).
#ifndef PANORM_NATIVE_TIMING_H
#define PANORM_NATIVE_TIMING_H

#include <time.h>

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// For qsort over doubles, ascending.
static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
