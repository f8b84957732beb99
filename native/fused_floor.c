// The floor of issue 15's small-shape target in C: panorm's float32 layer-norm forward and its fused residual
// add, written with AVX-512 intrinsics in the algorithm of panorm's vector kernels (VectorKernel and
// FusedVectorKernel: an origin sampled from the row, the shifted sum and sum of squares in one pass, then the
// normalize pass), with no per-call checks at all. It answers one question: on rows that stay in the caches, how
// much of the fused kernels' cost over the norm alone is the work itself, whatever the language?
//
// Implementations, each over all rows of one call, one thread:
//   norm          y = norm(x)
//   addThenNorm   s = x + r, then y = norm(s)             (two passes over memory more than fused)
//   fused         s = x + r stored, its sums in the same pass, y = norm(s) from s
//   fusedNoSum    the sums of x + r, then y from x + r added again (s not kept)
//   int8          q = round(y / scale) in [-127, 127] with scale = max|y| / 127 per row, no residual: y waits in
//                 a row buffer for its row's scale, as in the Java kernel
// Timing: the four in turn, batch after batch (about 2 million elements per batch), 10 rounds of warm-up and 60
// measured; prints each one's median time per call and its ratio to norm's, the way FusedInterleaved does for
// the Java kernels.
//
// Build: native/build.sh (then native/build/fused_floor ROWSxC...), e.g. fused_floor 1x4096 8x4096 64x1024.
// C must be a multiple of 32; the CPU must have AVX-512F.

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "timing.h"

typedef struct {
    int rows, c;
    const float *x, *r, *gamma, *beta;
    float *s, *y;
    float *row;      // int8: y waits here for the row's scale
    int8_t *q;       // int8: the output
    float *scales;   // int8: one per row
} call_t;

// The statistics' origin: a sample of the row, as the Java kernels take one.
static float origin_of(const float *v, int c) { return (v[0] + v[c / 2] + v[c - 1]) / 3; }

static float origin_of_sum(const float *x, const float *r, int c) {
    return (x[0] + r[0] + x[c / 2] + r[c / 2] + x[c - 1] + r[c - 1]) / 3;
}

// A row's statistics as the normalize pass uses them: y = ((v - origin) * rstd + shift) * gamma + beta.
typedef struct {
    float origin, rstd, shift;
} stats_t;

// The statistics from the shifted sums of a row, sums and squares still lane by lane.
static stats_t stats_of(float origin, __m512 sums, __m512 squares, int c) {
    float offset = _mm512_reduce_add_ps(sums) / c;
    float variance = _mm512_reduce_add_ps(squares) / c - offset * offset;
    float rstd = 1.0f / sqrtf(variance + 1e-5f);
    return (stats_t){origin, rstd, -offset * rstd};
}

// The statistics of row xr in one pass over it, the norm's first pass.
static stats_t row_stats(const float *xr, int c) {
    float origin = origin_of(xr, c);
    __m512 vo = _mm512_set1_ps(origin), s0 = _mm512_setzero_ps(), s1 = s0, q0 = s0, q1 = s0;
    for (int i = 0; i < c; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(xr + i), vo), d1 = _mm512_sub_ps(_mm512_loadu_ps(xr + i + 16), vo);
        s0 = _mm512_add_ps(s0, d0);
        s1 = _mm512_add_ps(s1, d1);
        q0 = _mm512_fmadd_ps(d0, d0, q0);
        q1 = _mm512_fmadd_ps(d1, d1, q1);
    }
    return stats_of(origin, _mm512_add_ps(s0, s1), _mm512_add_ps(q0, q1), c);
}

// One vector of y at column i, from v's values there.
static __m512 y_at(const call_t *k, __m512 v, stats_t st, int i) {
    __m512 t = _mm512_fmadd_ps(_mm512_sub_ps(v, _mm512_set1_ps(st.origin)), _mm512_set1_ps(st.rstd),
                               _mm512_set1_ps(st.shift));
    return _mm512_fmadd_ps(t, _mm512_loadu_ps(k->gamma + i), _mm512_loadu_ps(k->beta + i));
}

// The normalize pass: y from the row v.
static void normalize(const call_t *k, const float *v, float *y, stats_t st) {
    for (int i = 0; i < k->c; i += 16) {
        _mm512_storeu_ps(y + i, y_at(k, _mm512_loadu_ps(v + i), st, i));
    }
}

static void norm_rows(const call_t *k, const float *x, float *y) {
    int c = k->c;
    for (int row = 0; row < k->rows; row++) {
        const float *xr = x + (size_t)row * c;
        normalize(k, xr, y + (size_t)row * c, row_stats(xr, c));
    }
}

static void norm(const call_t *k) { norm_rows(k, k->x, k->y); }

static void add_then_norm(const call_t *k) {
    size_t n = (size_t)k->rows * k->c;
    for (size_t i = 0; i < n; i += 16) {
        _mm512_storeu_ps(k->s + i, _mm512_add_ps(_mm512_loadu_ps(k->x + i), _mm512_loadu_ps(k->r + i)));
    }
    norm_rows(k, k->s, k->y);
}

static void fused(const call_t *k) {
    int c = k->c;
    for (int row = 0; row < k->rows; row++) {
        const float *xr = k->x + (size_t)row * c, *rr = k->r + (size_t)row * c;
        float *sr = k->s + (size_t)row * c;
        float origin = origin_of_sum(xr, rr, c);
        __m512 vo = _mm512_set1_ps(origin), s0 = _mm512_setzero_ps(), s1 = s0, q0 = s0, q1 = s0;
        for (int i = 0; i < c; i += 32) {
            __m512 v0 = _mm512_add_ps(_mm512_loadu_ps(xr + i), _mm512_loadu_ps(rr + i));
            __m512 v1 = _mm512_add_ps(_mm512_loadu_ps(xr + i + 16), _mm512_loadu_ps(rr + i + 16));
            _mm512_storeu_ps(sr + i, v0);
            _mm512_storeu_ps(sr + i + 16, v1);
            __m512 d0 = _mm512_sub_ps(v0, vo), d1 = _mm512_sub_ps(v1, vo);
            s0 = _mm512_add_ps(s0, d0);
            s1 = _mm512_add_ps(s1, d1);
            q0 = _mm512_fmadd_ps(d0, d0, q0);
            q1 = _mm512_fmadd_ps(d1, d1, q1);
        }
        normalize(k, sr, k->y + (size_t)row * c, stats_of(origin, _mm512_add_ps(s0, s1), _mm512_add_ps(q0, q1), c));
    }
}

static void fused_no_sum(const call_t *k) {
    int c = k->c;
    for (int row = 0; row < k->rows; row++) {
        const float *xr = k->x + (size_t)row * c, *rr = k->r + (size_t)row * c;
        float *yr = k->y + (size_t)row * c;
        float origin = origin_of_sum(xr, rr, c);
        __m512 vo = _mm512_set1_ps(origin), s0 = _mm512_setzero_ps(), s1 = s0, q0 = s0, q1 = s0;
        for (int i = 0; i < c; i += 32) {
            __m512 d0 = _mm512_sub_ps(_mm512_add_ps(_mm512_loadu_ps(xr + i), _mm512_loadu_ps(rr + i)), vo);
            __m512 d1 = _mm512_sub_ps(_mm512_add_ps(_mm512_loadu_ps(xr + i + 16), _mm512_loadu_ps(rr + i + 16)), vo);
            s0 = _mm512_add_ps(s0, d0);
            s1 = _mm512_add_ps(s1, d1);
            q0 = _mm512_fmadd_ps(d0, d0, q0);
            q1 = _mm512_fmadd_ps(d1, d1, q1);
        }
        stats_t st = stats_of(origin, _mm512_add_ps(s0, s1), _mm512_add_ps(q0, q1), c);
        for (int i = 0; i < c; i += 16) { // x + r again instead of a stored s
            __m512 v = _mm512_add_ps(_mm512_loadu_ps(xr + i), _mm512_loadu_ps(rr + i));
            _mm512_storeu_ps(yr + i, y_at(k, v, st, i));
        }
    }
}

static void int8_rows(const call_t *k) {
    int c = k->c;
    for (int row = 0; row < k->rows; row++) {
        const float *xr = k->x + (size_t)row * c;
        stats_t st = row_stats(xr, c);
        __m512 m = _mm512_setzero_ps();
        for (int i = 0; i < c; i += 16) {
            __m512 y = y_at(k, _mm512_loadu_ps(xr + i), st, i);
            _mm512_storeu_ps(k->row + i, y);
            m = _mm512_max_ps(m, _mm512_abs_ps(y));
        }
        float max = _mm512_reduce_max_ps(m);
        float scale = max > 0 ? max / 127 : 1;
        k->scales[row] = scale;
        __m512 inverse = _mm512_set1_ps(1 / scale);
        __m512i low = _mm512_set1_epi32(-127), high = _mm512_set1_epi32(127);
        int8_t *qr = k->q + (size_t)row * c;
        for (int i = 0; i < c; i += 16) {
            __m512i v = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(k->row + i), inverse),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm_storeu_si128((__m128i *)(qr + i), _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(v, low), high)));
        }
    }
}

static float *allocate(size_t n) {
    float *p = aligned_alloc(64, n * sizeof(float));
    if (!p) {
        fprintf(stderr, "fused_floor: out of memory\n");
        exit(1);
    }
    return p;
}

enum { WARMUP = 10, ROUNDS = 60, KINDS = 5 };

static void run(int rows, int c) {
    size_t n = (size_t)rows * c;
    call_t k = {rows, c, allocate(n), allocate(n), allocate((size_t)c), allocate((size_t)c), allocate(n), allocate(n),
                allocate((size_t)c), (int8_t *)allocate(n / 4 + 16), allocate((size_t)rows)};
    for (size_t i = 0; i < n; i++) {
        ((float *)k.x)[i] = sinf((float)i * 0.1f);
        ((float *)k.r)[i] = cosf((float)i * 0.07f);
    }
    for (int i = 0; i < c; i++) {
        ((float *)k.gamma)[i] = 1 + (float)i * 1e-4f;
        ((float *)k.beta)[i] = (float)i * 1e-3f;
    }
    void (*kinds[KINDS])(const call_t *) = {norm, add_then_norm, fused, fused_no_sum, int8_rows};
    const char *names[KINDS] = {"norm", "addThenNorm", "fused", "fusedNoSum", "int8"};
    long calls = (long)(2e6 / (double)n) + 1;
    static double times[KINDS][ROUNDS];
    for (int round = 0; round < WARMUP + ROUNDS; round++) {
        for (int kind = 0; kind < KINDS; kind++) {
            double start = now_seconds();
            for (long i = 0; i < calls; i++) kinds[kind](&k);
            if (round >= WARMUP) times[kind][round - WARMUP] = (now_seconds() - start) / (double)calls;
        }
    }
    printf("%dx%d f32, C with AVX-512 (%ld calls per batch, %d rounds)\n", rows, c, calls, ROUNDS);
    double first = 0;
    for (int kind = 0; kind < KINDS; kind++) {
        qsort(times[kind], ROUNDS, sizeof(double), compare_doubles);
        double median = times[kind][ROUNDS / 2];
        if (kind == 0) first = median;
        printf("  %-12s median %9.3f us  best %9.3f us  median / norm %5.2f\n", names[kind], median * 1e6,
               times[kind][0] * 1e6, median / first);
    }
    volatile float sink = k.y[n / 2] + k.s[n / 2] + k.q[n / 2] * k.scales[0]; // keeps the results live
    (void)sink;
    free((void *)k.x), free((void *)k.r), free((void *)k.gamma), free((void *)k.beta), free(k.s), free(k.y);
    free(k.row), free(k.q), free(k.scales);
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: fused_floor ROWSxC... (C a multiple of 32), e.g. fused_floor 1x4096 8x4096\n");
        return argc < 2 ? 1 : 0;
    }
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "fused_floor: this CPU has no AVX-512F\n");
        return 1;
    }
    for (int a = 1; a < argc; a++) {
        int rows, c;
        if (sscanf(argv[a], "%dx%d", &rows, &c) != 2 || rows < 1 || c < 32 || c % 32 != 0) {
            fprintf(stderr, "fused_floor: '%s' is not ROWSxC with C a positive multiple of 32\n", argv[a]);
            return 1;
        }
        run(rows, c);
    }
    return 0;
}
