// The native baseline: oneDNN's layer normalization called from C, timed the way panorm's JMH suite
// times its benchmarks, so that the two can be put in one table. Also times a plain memory copy,
// the bandwidth roof for tensors much larger than the caches.
//
// Timing method (shared with the JMH suite): warm-up iterations, then measured iterations, each one
// calling the primitive repeatedly for a fixed time; an iteration's score is its mean time per call,
// and the result is the median of the measured iterations.
//
// Output: one tab-separated line per measurement (see print_header), meant for tools and for
// scripts/bench.sh; errors go to stderr with a non-zero exit status.
//
// Build and run: native/build.sh, then native/build/layernorm_bench --help.

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oneapi/dnnl/dnnl.h"
#include "timing.h"

// libgomp, bundled with the oneDNN artifact; not declared in oneDNN's headers.
void omp_set_num_threads(int threads);

typedef enum { FORWARD_INFERENCE, FORWARD_TRAINING, BACKWARD } pass_t;

static const char *pass_names[] = {"forward", "training", "backward"};

typedef struct {
    int warmup_iterations;
    int iterations;
    double iteration_seconds;
} timing_t;

static void die(const char *what, const char *detail) {
    fprintf(stderr, "layernorm_bench: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static void check(dnnl_status_t status, const char *call) {
    if (status != dnnl_success) {
        fprintf(stderr, "layernorm_bench: %s failed with status %d\n", call, (int)status);
        exit(1);
    }
}

typedef void (*operation_t)(void *context);

typedef struct {
    double median_ns;
    double min_ns;
} score_t;

// Times `operation` with the shared method: each iteration runs for iteration_seconds; the result
// is the median over iterations of the mean time per call.
static score_t measure(operation_t operation, void *context, const timing_t *timing) {
    double *scores = calloc((size_t)timing->iterations, sizeof(double));
    if (!scores) die("out of memory", NULL);
    for (int i = -timing->warmup_iterations; i < timing->iterations; i++) {
        long calls = 0;
        long batch = 1;
        double start = now_seconds(), elapsed;
        do {
            for (long b = 0; b < batch; b++) operation(context);
            calls += batch;
            elapsed = now_seconds() - start;
            if (elapsed < timing->iteration_seconds / 100) batch *= 2; // read the clock rarely on fast calls
        } while (elapsed < timing->iteration_seconds);
        if (i >= 0) scores[i] = elapsed / (double)calls * 1e9;
    }
    qsort(scores, (size_t)timing->iterations, sizeof(double), compare_doubles);
    int n = timing->iterations;
    score_t score = {n % 2 ? scores[n / 2] : (scores[n / 2 - 1] + scores[n / 2]) / 2, scores[0]};
    free(scores);
    return score;
}

// ---- layer normalization ----

enum { SRC, DST, SCALE, SHIFT, MEAN, VARIANCE, DIFF_DST, DIFF_SRC, DIFF_SCALE, DIFF_SHIFT, SCRATCHPAD, DST_SCALE,
       ROLE_COUNT };

typedef struct {
    dnnl_primitive_t primitive;
    dnnl_stream_t stream;
    dnnl_exec_arg_t args[ROLE_COUNT];
    int arg_count;
} layernorm_t;

static void run_layernorm(void *context) {
    layernorm_t *ln = context;
    check(dnnl_primitive_execute(ln->primitive, ln->stream, ln->arg_count, ln->args), "dnnl_primitive_execute");
    check(dnnl_stream_wait(ln->stream), "dnnl_stream_wait");
}

static void *allocate(size_t bytes) {
    void *memory = NULL;
    if (posix_memalign(&memory, 64, bytes ? bytes : 64) != 0) die("out of memory", NULL);
    memset(memory, 0, bytes);
    return memory;
}

static uint16_t to_bf16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    bits += 0x7fff + ((bits >> 16) & 1); // round to nearest even
    return (uint16_t)(bits >> 16);
}

// Fills data with a reproducible pseudo-random pattern in [-2, 2).
static void fill(void *data, dnnl_data_type_t type, size_t count, uint32_t seed) {
    for (size_t i = 0; i < count; i++) {
        seed = seed * 1664525u + 1013904223u;
        float value = (float)(seed >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
        if (type == dnnl_bf16) ((uint16_t *)data)[i] = to_bf16(value);
        else ((float *)data)[i] = value;
    }
}

static dnnl_memory_t memory_for(dnnl_engine_t engine, const_dnnl_memory_desc_t desc, void **data, dnnl_data_type_t type,
                                uint32_t seed) {
    size_t bytes = dnnl_memory_desc_get_size(desc);
    *data = allocate(bytes);
    fill(*data, type, bytes / (type == dnnl_bf16 ? 2 : 4), seed);
    dnnl_memory_t memory;
    check(dnnl_memory_create(&memory, desc, engine, *data), "dnnl_memory_create");
    return memory;
}

// dst_type differs from type only for int8 output (f32-s8): dst is s8, quantized with one static scale (the
// attribute scales, mask 0), which oneDNN divides by and saturates to [-128, 127].
static score_t time_layernorm(dnnl_engine_t engine, pass_t pass, dnnl_data_type_t type, dnnl_data_type_t dst_type,
                              long rows, long channels, int threads, const timing_t *timing) {
    omp_set_num_threads(threads); // oneDNN reads it when it creates a primitive and when it runs one
    dnnl_dims_t data_dims = {rows, channels}, stat_dims = {rows}, param_dims = {channels};
    dnnl_memory_desc_t data_md, dst_md, stat_md, param_md, scale_md;
    dnnl_dims_t one = {1};
    check(dnnl_memory_desc_create_with_tag(&data_md, 2, data_dims, type, dnnl_ab), "dnnl_memory_desc_create_with_tag");
    check(dnnl_memory_desc_create_with_tag(&dst_md, 2, data_dims, dst_type, dnnl_ab), "dnnl_memory_desc_create_with_tag");
    check(dnnl_memory_desc_create_with_tag(&scale_md, 1, one, dnnl_f32, dnnl_a), "dnnl_memory_desc_create_with_tag");
    check(dnnl_memory_desc_create_with_tag(&stat_md, 1, stat_dims, dnnl_f32, dnnl_a), "dnnl_memory_desc_create_with_tag");
    check(dnnl_memory_desc_create_with_tag(&param_md, 1, param_dims, dnnl_f32, dnnl_a), "dnnl_memory_desc_create_with_tag");
    dnnl_primitive_attr_t attr;
    check(dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create");
    check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "dnnl_primitive_attr_set_scratchpad_mode");
    int quantized = dst_type != type;
    if (quantized) check(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_DST, 0), "dnnl_primitive_attr_set_scales_mask");
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    float eps = 1e-5f;

    dnnl_primitive_desc_t forward_pd, pd;
    check(dnnl_layer_normalization_forward_primitive_desc_create(&forward_pd, engine,
            pass == FORWARD_INFERENCE ? dnnl_forward_inference : dnnl_forward_training, data_md, dst_md, stat_md, eps,
            flags, attr), "dnnl_layer_normalization_forward_primitive_desc_create");
    if (pass == BACKWARD) {
        check(dnnl_layer_normalization_backward_primitive_desc_create(&pd, engine, dnnl_backward, data_md, data_md,
                data_md, stat_md, eps, flags, forward_pd, attr), "dnnl_layer_normalization_backward_primitive_desc_create");
    } else {
        pd = forward_pd;
    }

    layernorm_t ln = {0};
    check(dnnl_primitive_create(&ln.primitive, pd), "dnnl_primitive_create");
    check(dnnl_stream_create(&ln.stream, engine, dnnl_stream_default_flags), "dnnl_stream_create");
    static const int arg_kinds[ROLE_COUNT] = {DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_SCALE, DNNL_ARG_SHIFT,
            DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC, DNNL_ARG_DIFF_SCALE,
            DNNL_ARG_DIFF_SHIFT, DNNL_ARG_SCRATCHPAD, DNNL_ARG_ATTR_SCALES | DNNL_ARG_DST};
    int used[ROLE_COUNT] = {0};
    used[SRC] = used[SCALE] = 1;
    if (pass == BACKWARD) {
        used[MEAN] = used[VARIANCE] = used[DIFF_DST] = used[DIFF_SRC] = used[DIFF_SCALE] = used[DIFF_SHIFT] = 1;
    } else {
        used[DST] = used[SHIFT] = 1;
        used[MEAN] = used[VARIANCE] = pass == FORWARD_TRAINING;
    }
    const_dnnl_memory_desc_t scratchpad_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    used[SCRATCHPAD] = scratchpad_md && dnnl_memory_desc_get_size(scratchpad_md) > 0;
    used[DST_SCALE] = quantized;

    void *data[ROLE_COUNT] = {0};
    dnnl_memory_t memory[ROLE_COUNT] = {0};
    for (int role = 0; role < ROLE_COUNT; role++) {
        if (!used[role]) continue;
        const_dnnl_memory_desc_t desc = role == SCRATCHPAD ? scratchpad_md
                : role == DST ? dst_md
                : role == DST_SCALE ? scale_md
                : role == MEAN || role == VARIANCE ? stat_md
                : role == SCALE || role == SHIFT || role == DIFF_SCALE || role == DIFF_SHIFT ? param_md : data_md;
        dnnl_data_type_t element = desc == data_md ? type : desc == dst_md ? dst_type : dnnl_f32;
        memory[role] = memory_for(engine, desc, &data[role], element, 12345u + (uint32_t)role);
        if (role == DST_SCALE) *(float *)data[role] = 0.05f;
        if (role == VARIANCE) { // a plausible variance: positive
            for (long r = 0; r < rows; r++) ((float *)data[role])[r] = 1.0f + (float)(r % 7) * 0.25f;
        }
        ln.args[ln.arg_count].arg = arg_kinds[role];
        ln.args[ln.arg_count].memory = memory[role];
        ln.arg_count++;
    }

    score_t score = measure(run_layernorm, &ln, timing);

    for (int role = 0; role < ROLE_COUNT; role++) {
        if (memory[role]) dnnl_memory_destroy(memory[role]);
        free(data[role]);
    }
    dnnl_stream_destroy(ln.stream);
    dnnl_primitive_destroy(ln.primitive);
    if (pd != forward_pd) dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_desc_destroy(forward_pd);
    dnnl_primitive_attr_destroy(attr);
    dnnl_memory_desc_destroy(data_md);
    dnnl_memory_desc_destroy(dst_md);
    dnnl_memory_desc_destroy(scale_md);
    dnnl_memory_desc_destroy(stat_md);
    dnnl_memory_desc_destroy(param_md);
    return score;
}

// ---- plain copy: the bandwidth roof ----

typedef struct {
    char *from, *to;
    size_t bytes;
    int threads;
} copy_t;

typedef struct {
    copy_t *copy;
    int part;
} copy_part_t;

static void *copy_part(void *argument) {
    copy_part_t *part = argument;
    copy_t *copy = part->copy;
    size_t chunk = (copy->bytes / (size_t)copy->threads + 63) & ~(size_t)63;
    size_t start = chunk * (size_t)part->part;
    if (start < copy->bytes) {
        size_t length = copy->bytes - start < chunk ? copy->bytes - start : chunk;
        memcpy(copy->to + start, copy->from + start, length);
    }
    return NULL;
}

static void run_copy(void *context) {
    copy_t *copy = context;
    pthread_t workers[64];
    copy_part_t parts[64];
    for (int t = 0; t < copy->threads; t++) {
        parts[t] = (copy_part_t){copy, t};
        if (t > 0 && pthread_create(&workers[t], NULL, copy_part, &parts[t]) != 0) die("pthread_create failed", NULL);
    }
    copy_part(&parts[0]);
    for (int t = 1; t < copy->threads; t++) pthread_join(workers[t], NULL);
}

static score_t time_copy(size_t bytes, int threads, const timing_t *timing) {
    copy_t copy = {allocate(bytes), allocate(bytes), bytes, threads};
    memset(copy.from, 1, bytes);
    score_t score = measure(run_copy, &copy, timing);
    free(copy.from);
    free(copy.to);
    return score;
}

static void *nothing(void *argument) {
    return argument;
}

// ---- command line ----

static void usage(FILE *out) {
    fprintf(out,
        "usage: layernorm_bench [options] [ROWSxC ...]\n"
        "Times oneDNN's layer normalization (scale and shift, eps 1e-5) from C on each shape, and a plain\n"
        "memory copy, printing one tab-separated line per measurement.\n"
        "  --pass forward|training|backward[,...]  passes to time (default forward)\n"
        "  --dtype f32|bf16|f32-s8[,...]           data types of src/dst (default f32; scale/shift are f32); f32-s8:\n"
        "                                          f32 src, s8 dst with one static scale (forward only)\n"
        "  --threads N[,...]                       OpenMP threads (default 1,2)\n"
        "  --copy MiB                              also time copying MiB mebibytes (default 0: no copy)\n"
        "  --multithreaded-process                 start (and join) a thread first, as every JVM has many: glibc's\n"
        "                                          malloc then takes locks, which oneDNN's allocations per call pay\n"
        "  --warmup N --iterations N --time MS     timing method (default 3, 6, 200 ms per iteration)\n"
        "shapes default to the JMH grid: 1x768 8x768 32x768 128x1024 512x1024 2048x4096 8192x1024\n"
        "1x65536 3x1000 257x768\n");
}

static long parse_long(const char *text, const char *what) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < 0) die("not a non-negative number", what);
    return value;
}

// Splits a comma-separated list in place; returns the number of items (at most max).
static int split(char *list, char **items, int max) {
    int n = 0;
    for (char *item = strtok(list, ","); item && n < max; item = strtok(NULL, ",")) items[n++] = item;
    return n;
}

int main(int argc, char **argv) {
    static const char *default_shapes[] = {"1x768", "8x768", "32x768", "128x1024", "512x1024", "2048x4096",
            "8192x1024", "1x65536", "3x1000", "257x768"};
    timing_t timing = {3, 6, 0.2};
    char *passes[3], *dtypes[3], *thread_items[16];
    char pass_list[] = "forward", dtype_list[] = "f32", thread_list[] = "1,2";
    int pass_count = split(pass_list, passes, 3), dtype_count = split(dtype_list, dtypes, 2);
    int thread_count = split(thread_list, thread_items, 16);
    long copy_mib = 0;
    int multithreaded = 0;
    const char **shapes = default_shapes;
    int shape_count = (int)(sizeof default_shapes / sizeof *default_shapes);

    int first_shape = argc;
    for (int i = 1; i < argc; i++) {
        const char *option = argv[i];
        if (!strcmp(option, "--help") || !strcmp(option, "-h")) {
            usage(stdout);
            return 0;
        }
        if (option[0] != '-') {
            first_shape = i;
            break;
        }
        if (!strcmp(option, "--multithreaded-process")) {
            multithreaded = 1;
            continue;
        }
        if (i + 1 >= argc) die("missing value after", option);
        char *value = argv[++i];
        if (!strcmp(option, "--pass")) pass_count = split(value, passes, 3);
        else if (!strcmp(option, "--dtype")) dtype_count = split(value, dtypes, 3);
        else if (!strcmp(option, "--threads")) thread_count = split(value, thread_items, 16);
        else if (!strcmp(option, "--copy")) copy_mib = parse_long(value, option);
        else if (!strcmp(option, "--warmup")) timing.warmup_iterations = (int)parse_long(value, option);
        else if (!strcmp(option, "--iterations")) timing.iterations = (int)parse_long(value, option);
        else if (!strcmp(option, "--time")) timing.iteration_seconds = (double)parse_long(value, option) / 1000;
        else {
            usage(stderr);
            die("unknown option", option);
        }
    }
    if (timing.iterations < 1) die("--iterations must be at least 1", NULL);
    if (first_shape < argc) {
        shapes = (const char **)&argv[first_shape];
        shape_count = argc - first_shape;
    }

    int threads[16];
    for (int t = 0; t < thread_count; t++) {
        threads[t] = (int)parse_long(thread_items[t], "--threads");
        if (threads[t] < 1 || threads[t] > 64) die("--threads must be between 1 and 64", thread_items[t]);
    }

    if (multithreaded) { // glibc leaves its single-threaded fast paths for good once a thread has started
        pthread_t thread;
        if (pthread_create(&thread, NULL, nothing, NULL) != 0) die("pthread_create failed", NULL);
        pthread_join(thread, NULL);
    }
    dnnl_engine_t engine;
    check(dnnl_engine_create(&engine, dnnl_cpu, 0), "dnnl_engine_create");
    const dnnl_version_t *version = dnnl_version();
    printf("# oneDNN %d.%d.%d (%s), cpu runtime %d\n", version->major, version->minor, version->patch, version->hash,
           version->cpu_runtime);
    printf("# process: %s\n", multithreaded ? "multi-threaded (like a JVM)" : "single-threaded");
    printf("# timing: %d warm-up and %d measured iterations of %.0f ms; median of the per-iteration means\n",
           timing.warmup_iterations, timing.iterations, timing.iteration_seconds * 1000);
    // A copy reports its size in bytes as one row of that many channels.
    printf("kind\tpass\tdtype\trows\tchannels\tthreads\tmedian_ns\tmin_ns\n");
    fflush(stdout);

    for (int s = 0; s < shape_count; s++) {
        long rows, channels;
        char tail;
        if (sscanf(shapes[s], "%ldx%ld%c", &rows, &channels, &tail) != 2 || rows < 1 || channels < 1) {
            die("a shape is ROWSxC with positive numbers, got", shapes[s]);
        }
        for (int p = 0; p < pass_count; p++) {
            pass_t pass;
            if (!strcmp(passes[p], "forward")) pass = FORWARD_INFERENCE;
            else if (!strcmp(passes[p], "training")) pass = FORWARD_TRAINING;
            else if (!strcmp(passes[p], "backward")) pass = BACKWARD;
            else die("unknown pass", passes[p]);
            for (int d = 0; d < dtype_count; d++) {
                dnnl_data_type_t type, dst_type;
                if (!strcmp(dtypes[d], "f32")) type = dst_type = dnnl_f32;
                else if (!strcmp(dtypes[d], "bf16")) type = dst_type = dnnl_bf16;
                else if (!strcmp(dtypes[d], "f32-s8")) type = dnnl_f32, dst_type = dnnl_s8;
                else die("unknown dtype", dtypes[d]);
                if (dst_type != type && pass != FORWARD_INFERENCE) die("f32-s8 is forward only, not", passes[p]);
                for (int t = 0; t < thread_count; t++) {
                    score_t score = time_layernorm(engine, pass, type, dst_type, rows, channels, threads[t], &timing);
                    printf("layernorm\t%s\t%s\t%ld\t%ld\t%d\t%.1f\t%.1f\n", pass_names[pass], dtypes[d], rows, channels,
                           threads[t], score.median_ns, score.min_ns);
                    fflush(stdout);
                }
            }
        }
    }
    if (copy_mib > 0) {
        for (int t = 0; t < thread_count; t++) {
            score_t score = time_copy((size_t)copy_mib << 20, threads[t], &timing);
            printf("copy\t-\t-\t1\t%ld\t%d\t%.1f\t%.1f\n", copy_mib << 20, threads[t], score.median_ns,
                   score.min_ns);
            fflush(stdout);
        }
    }
    dnnl_engine_destroy(engine);
    return 0;
}
