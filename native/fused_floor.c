// The floor of issue 15's small-shape target in C: panorm's float32 layer-norm forward and its fused residual
// add, written with AVX-512 or AVX2 intrinsics (whichever the build targets) in the algorithm of panorm's vector
// kernels (VectorKernel and FusedVectorKernel: an origin sampled from the row, the shifted sum and sum of squares in
// one pass, then the normalize pass), with no per-call checks at all. It answers one question: on rows that stay in
// the caches, how much of the fused kernels' cost over the norm alone is the work itself, whatever the language?
//
// Implementations, each over all rows of one call, one thread:
//   norm          y = norm(x)
//   addThenNorm   s = x + r, then y = norm(s)             (two passes over memory more than fused)
//   fused         s = x + r stored, its sums in the same pass, y = norm(s) from s
//   fusedNoSum    the sums of x + r, then y from x + r added again (s not kept)
//   int8          q = round(y / scale) in [-127, 127] with scale = max|y| / 127 per row, no residual: y waits in
//                 a row buffer for its row's scale, as in the Java kernel
// Timing: the five in turn, batch after batch (about 2 million elements per batch), 10 rounds of warm-up and 60
// measured; prints each one's median time per call and its ratio to norm's, the way FusedInterleaved does for
// the Java kernels.
//
// Build: native/build.sh, which makes native/build/fused_floor (AVX-512F) and native/build/fused_floor_avx2 (AVX2
// and FMA, as the Java kernels' 8 lanes on such a CPU); then fused_floor ROWSxC..., e.g. fused_floor 1x4096 8x4096.
// C must be a multiple of 32; the CPU must have the build's instruction set.

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "timing.h"

// The few vector operations the kernels use, one vector of LANES floats (vf) per instruction set.
#ifdef __AVX512F__
enum { LANES = 16 };
#define ISA "AVX-512"
#define ISA_SUPPORTED() __builtin_cpu_supports("avx512f")
typedef __m512 vf;
static inline vf vload(const float *p) { return _mm512_loadu_ps(p); }
static inline void vstore(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf vset1(float f) { return _mm512_set1_ps(f); }
static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vmax_abs(vf m, vf y) { return _mm512_max_ps(m, _mm512_abs_ps(y)); }
static inline float vsum(vf v) { return _mm512_reduce_add_ps(v); }
static inline float vmax(vf v) { return _mm512_reduce_max_ps(v); }
// LANES bytes of round_half_even(v * inverse) saturated to [-127, 127].
static inline void vquantize(int8_t *q, vf v, vf inverse) {
    __m512i i = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v, inverse), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    i = _mm512_min_epi32(_mm512_max_epi32(i, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
    _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(i));
}
#else
enum { LANES = 8 };
#define ISA "AVX2"
#define ISA_SUPPORTED() (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
typedef __m256 vf;
static inline vf vload(const float *p) { return _mm256_loadu_ps(p); }
static inline void vstore(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vset1(float f) { return _mm256_set1_ps(f); }
static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vmax_abs(vf m, vf y) { return _mm256_max_ps(m, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), y)); }
static inline float vsum(vf v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}
static inline float vmax(vf v) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}
// LANES bytes of round_half_even(v * inverse) saturated to [-127, 127] (the packs saturate as well).
static inline void vquantize(int8_t *q, vf v, vf inverse) {
    __m256i i = _mm256_cvtps_epi32(_mm256_mul_ps(v, inverse)); // the default rounding: to nearest, ties to even
    i = _mm256_min_epi32(_mm256_max_epi32(i, _mm256_set1_epi32(-127)), _mm256_set1_epi32(127));
    __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64((__m128i *)q, _mm_packs_epi16(words, words));
}
#endif

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
static stats_t stats_of(float origin, vf sums, vf squares, int c) {
    float offset = vsum(sums) / c;
    float variance = vsum(squares) / c - offset * offset;
    float rstd = 1.0f / sqrtf(variance + 1e-5f);
    return (stats_t){origin, rstd, -offset * rstd};
}

// The statistics of row xr in one pass over it, the norm's first pass.
static stats_t row_stats(const float *xr, int c) {
    float origin = origin_of(xr, c);
    vf vo = vset1(origin), s0 = vset1(0), s1 = s0, q0 = s0, q1 = s0;
    for (int i = 0; i < c; i += 2 * LANES) {
        vf d0 = vsub(vload(xr + i), vo), d1 = vsub(vload(xr + i + LANES), vo);
        s0 = vadd(s0, d0);
        s1 = vadd(s1, d1);
        q0 = vfma(d0, d0, q0);
        q1 = vfma(d1, d1, q1);
    }
    return stats_of(origin, vadd(s0, s1), vadd(q0, q1), c);
}

// One vector of y at column i, from v's values there.
static vf y_at(const call_t *k, vf v, stats_t st, int i) {
    vf t = vfma(vsub(v, vset1(st.origin)), vset1(st.rstd),
                               vset1(st.shift));
    return vfma(t, vload(k->gamma + i), vload(k->beta + i));
}

// The normalize pass: y from the row v.
static void normalize(const call_t *k, const float *v, float *y, stats_t st) {
    for (int i = 0; i < k->c; i += LANES) {
        vstore(y + i, y_at(k, vload(v + i), st, i));
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
    for (size_t i = 0; i < n; i += LANES) {
        vstore(k->s + i, vadd(vload(k->x + i), vload(k->r + i)));
    }
    norm_rows(k, k->s, k->y);
}

static void fused(const call_t *k) {
    int c = k->c;
    for (int row = 0; row < k->rows; row++) {
        const float *xr = k->x + (size_t)row * c, *rr = k->r + (size_t)row * c;
        float *sr = k->s + (size_t)row * c;
        float origin = origin_of_sum(xr, rr, c);
        vf vo = vset1(origin), s0 = vset1(0), s1 = s0, q0 = s0, q1 = s0;
        for (int i = 0; i < c; i += 2 * LANES) {
            vf v0 = vadd(vload(xr + i), vload(rr + i));
            vf v1 = vadd(vload(xr + i + LANES), vload(rr + i + LANES));
            vstore(sr + i, v0);
            vstore(sr + i + LANES, v1);
            vf d0 = vsub(v0, vo), d1 = vsub(v1, vo);
            s0 = vadd(s0, d0);
            s1 = vadd(s1, d1);
            q0 = vfma(d0, d0, q0);
            q1 = vfma(d1, d1, q1);
        }
        normalize(k, sr, k->y + (size_t)row * c, stats_of(origin, vadd(s0, s1), vadd(q0, q1), c));
    }
}

static void fused_no_sum(const call_t *k) {
    int c = k->c;
    for (int row = 0; row < k->rows; row++) {
        const float *xr = k->x + (size_t)row * c, *rr = k->r + (size_t)row * c;
        float *yr = k->y + (size_t)row * c;
        float origin = origin_of_sum(xr, rr, c);
        vf vo = vset1(origin), s0 = vset1(0), s1 = s0, q0 = s0, q1 = s0;
        for (int i = 0; i < c; i += 2 * LANES) {
            vf d0 = vsub(vadd(vload(xr + i), vload(rr + i)), vo);
            vf d1 = vsub(vadd(vload(xr + i + LANES), vload(rr + i + LANES)), vo);
            s0 = vadd(s0, d0);
            s1 = vadd(s1, d1);
            q0 = vfma(d0, d0, q0);
            q1 = vfma(d1, d1, q1);
        }
        stats_t st = stats_of(origin, vadd(s0, s1), vadd(q0, q1), c);
        for (int i = 0; i < c; i += LANES) { // x + r again instead of a stored s
            vf v = vadd(vload(xr + i), vload(rr + i));
            vstore(yr + i, y_at(k, v, st, i));
        }
    }
}

static void int8_rows(const call_t *k) {
    int c = k->c;
    for (int row = 0; row < k->rows; row++) {
        const float *xr = k->x + (size_t)row * c;
        stats_t st = row_stats(xr, c);
        vf m = vset1(0);
        for (int i = 0; i < c; i += LANES) {
            vf y = y_at(k, vload(xr + i), st, i);
            vstore(k->row + i, y);
            m = vmax_abs(m, y);
        }
        float max = vmax(m);
        float scale = max > 0 ? max / 127 : 1;
        k->scales[row] = scale;
        vf inverse = vset1(1 / scale);
        int8_t *qr = k->q + (size_t)row * c;
        for (int i = 0; i < c; i += LANES) vquantize(qr + i, vload(k->row + i), inverse);
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
                allocate((size_t)c), (int8_t *)allocate(n / 4 + LANES), allocate((size_t)rows)};
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
    printf("%dx%d f32, C with " ISA " (%ld calls per batch, %d rounds)\n", rows, c, calls, ROUNDS);
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
    if (!ISA_SUPPORTED()) {
        fprintf(stderr, "fused_floor: this build needs %s, which this CPU lacks%s\n", ISA,
                LANES == 16 ? " (native/build/fused_floor_avx2 runs on AVX2)" : "");
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
