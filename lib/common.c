/* common.c - errors, options, element types, atomic output files, threads. */
#define _GNU_SOURCE
#include "hafm/common.h"
#include "hafm/linalg.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const char *hafm_progname = "hafm";

/* ---- errors ------------------------------------------------------------------------------- */

#define ERRBUF 1024
static _Thread_local char last_error[ERRBUF];

static void format_error(char *buf, size_t cap, const char *fmt, va_list ap)
{
    int saved = errno;
    vsnprintf(buf, cap, fmt, ap);
    size_t n = strlen(fmt);
    if (n > 0 && fmt[n - 1] == ':') {
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, " %s", strerror(saved));
    }
}

void hafm_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    format_error(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

void hafm_error_prefix(const char *fmt, ...)
{
    char prefix[ERRBUF], old[ERRBUF];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* built by hand: snprintf("%s: %s") into a buffer of the same size trips -Wformat-truncation */
    size_t np = strnlen(prefix, ERRBUF - 3), no = strnlen(old, ERRBUF - 3 - np);
    memcpy(last_error, prefix, np);
    memcpy(last_error + np, ": ", 2);
    memcpy(last_error + np + 2, old, no);
    last_error[np + 2 + no] = '\0';
}

const char *hafm_last_error(void)
{
    return last_error[0] ? last_error : "unknown error";
}

/* ---- atomic output files -------------------------------------------------------------------
 * Temporary paths still open are kept in a small registry so that hafm_die() (and a fatal
 * signal) can unlink them: a failing command never leaves a partial file behind. */

struct hafm_outfile {
    FILE *fp;
    char *path;     /* final path, or "-" */
    char *tmp;      /* temporary path, NULL for stdout */
};

#define MAX_OPEN_OUTFILES 64
static hafm_outfile *open_outfiles[MAX_OPEN_OUTFILES];

static void register_outfile(hafm_outfile *f)
{
    for (int i = 0; i < MAX_OPEN_OUTFILES; i++)
        if (!open_outfiles[i]) { open_outfiles[i] = f; return; }
}

static void unregister_outfile(hafm_outfile *f)
{
    for (int i = 0; i < MAX_OPEN_OUTFILES; i++)
        if (open_outfiles[i] == f) open_outfiles[i] = NULL;
}

static void remove_open_outfiles(void)
{
    for (int i = 0; i < MAX_OPEN_OUTFILES; i++)
        if (open_outfiles[i] && open_outfiles[i]->tmp) unlink(open_outfiles[i]->tmp);
}

static void fatal_signal(int sig)
{
    remove_open_outfiles();
    signal(sig, SIG_DFL);
    raise(sig);
}

hafm_outfile *hafm_outfile_open(const char *path)
{
    hafm_outfile *f = hafm_xcalloc(1, sizeof *f);
    f->path = hafm_xstrdup(path);
    if (strcmp(path, "-") == 0) {
        f->fp = stdout;
        return f;
    }
    static unsigned counter;
    size_t n = strlen(path) + 64;
    f->tmp = hafm_xmalloc(n);
    snprintf(f->tmp, n, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
    int fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 || !(f->fp = fdopen(fd, "wb"))) {
        hafm_error("cannot create %s:", path);
        if (fd >= 0) { close(fd); unlink(f->tmp); }
        free(f->tmp); free(f->path); free(f);
        return NULL;
    }
    register_outfile(f);
    return f;
}

FILE *hafm_outfile_fp(hafm_outfile *f) { return f->fp; }
const char *hafm_outfile_tmpname(const hafm_outfile *f) { return f->tmp ? f->tmp : "-"; }

static void outfile_free(hafm_outfile *f)
{
    unregister_outfile(f);
    free(f->tmp);
    free(f->path);
    free(f);
}

int hafm_outfile_commit(hafm_outfile *f)
{
    int rc = 0;
    if (!f->tmp) {
        if (fflush(f->fp) != 0 || ferror(f->fp)) { hafm_error("write error on standard output:"); rc = -1; }
        outfile_free(f);
        return rc;
    }
    if (fflush(f->fp) != 0 || ferror(f->fp)) { hafm_error("write error on %s:", f->path); rc = -1; }
    if (rc == 0 && fsync(fileno(f->fp)) != 0 && errno != EINVAL) { hafm_error("fsync %s:", f->path); rc = -1; }
    if (fclose(f->fp) != 0 && rc == 0) { hafm_error("close %s:", f->path); rc = -1; }
    if (rc == 0 && rename(f->tmp, f->path) != 0) { hafm_error("rename to %s:", f->path); rc = -1; }
    if (rc != 0) unlink(f->tmp);
    outfile_free(f);
    return rc;
}

void hafm_outfile_abort(hafm_outfile *f)
{
    if (!f) return;
    if (f->tmp) {
        fclose(f->fp);
        unlink(f->tmp);
    }
    outfile_free(f);
}

int hafm_close_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        hafm_error("write error on standard output:");
        return -1;
    }
    return 0;
}

/* ---- messages and exits ------------------------------------------------------------------- */

static void vreport(const char *fmt, va_list ap)
{
    char buf[ERRBUF];
    format_error(buf, sizeof buf, fmt, ap);
    fprintf(stderr, "%s: %s\n", hafm_progname, buf);
}

void hafm_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
}

void hafm_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    remove_open_outfiles();
    exit(1);
}

void hafm_die_last(void)
{
    fprintf(stderr, "%s: %s\n", hafm_progname, hafm_last_error());
    remove_open_outfiles();
    exit(1);
}

void hafm_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", hafm_progname);
    remove_open_outfiles();
    exit(2);
}

void hafm_bad_option(int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':') hafm_usage_error("option '%s' needs an argument", arg);
    if (optopt) hafm_usage_error("unknown option '-%c'", optopt);
    hafm_usage_error("unknown option '%s'", arg);
}

void hafm_print_version(void)
{
    printf("%s (hafm) %s\n", hafm_progname, HAFM_VERSION);
    exit(hafm_close_stdout() == 0 ? 0 : 1);
}

void hafm_init(int argc, char **argv)
{
    (void)argc;
    if (argv && argv[0]) {
        const char *slash = strrchr(argv[0], '/');
        hafm_progname = slash ? slash + 1 : argv[0];
    }
    signal(SIGINT, fatal_signal);
    signal(SIGTERM, fatal_signal);
    signal(SIGHUP, fatal_signal);
    const char *env = getenv("HAFM_THREADS");
    long n = 0;
    if (env && *env) {
        if (hafm_parse_long(env, 1, 1024, &n) != 0)
            hafm_usage_error("HAFM_THREADS: expected an integer in [1, 1024], got '%s'", env);
    }
    hafm_set_threads((int)n);   /* 0: all online CPUs */
    hafm_backend_init();
}

/* ---- memory ------------------------------------------------------------------------------- */

static void out_of_memory(size_t n)
{
    fprintf(stderr, "%s: out of memory (%zu bytes)\n", hafm_progname, n);
    remove_open_outfiles();
    exit(1);
}

void *hafm_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *hafm_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size);
    return p;
}

void *hafm_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *hafm_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = hafm_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* ---- option parsing ----------------------------------------------------------------------- */

int hafm_parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int hafm_parse_double(const char *s, double lo, double hi, double *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end != '\0' || isnan(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

long hafm_opt_long(const char *opt, const char *arg, long lo, long hi)
{
    long v;
    if (hafm_parse_long(arg, lo, hi, &v) != 0) {
        if (hi == LONG_MAX)
            hafm_usage_error("%s: expected an integer >= %ld, got '%s'", opt, lo, arg ? arg : "");
        hafm_usage_error("%s: expected an integer in [%ld, %ld], got '%s'", opt, lo, hi, arg ? arg : "");
    }
    return v;
}

double hafm_opt_double(const char *opt, const char *arg, double lo, double hi)
{
    double v;
    if (hafm_parse_double(arg, lo, hi, &v) != 0) {
        if (isinf(hi))
            hafm_usage_error("%s: expected a number >= %g, got '%s'", opt, lo, arg ? arg : "");
        hafm_usage_error("%s: expected a number in [%g, %g], got '%s'", opt, lo, hi, arg ? arg : "");
    }
    return v;
}

int hafm_opt_double_list(const char *opt, const char *arg, double *out, int max, double lo, double hi)
{
    char *copy = hafm_xstrdup(arg), *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max) hafm_usage_error("%s: at most %d values", opt, max);
        out[n++] = hafm_opt_double(opt, tok, lo, hi);
    }
    free(copy);
    if (!n) hafm_usage_error("%s: expected a comma-separated list", opt);
    return n;
}

/* ---- element types ------------------------------------------------------------------------ */

static const struct { hafm_dtype t; const char *name; size_t size; } dtypes[] = {
    { HAFM_DT_U8, "u8", 1 },   { HAFM_DT_I16, "i16", 2 }, { HAFM_DT_U16, "u16", 2 },
    { HAFM_DT_I32, "i32", 4 }, { HAFM_DT_I64, "i64", 8 }, { HAFM_DT_F16, "f16", 2 },
    { HAFM_DT_BF16, "bf16", 2 }, { HAFM_DT_F32, "f32", 4 }, { HAFM_DT_F64, "f64", 8 },
    { HAFM_DT_BOOL, "bool", 1 }, { HAFM_DT_I8, "i8", 1 },
};
#define NDTYPES (sizeof dtypes / sizeof dtypes[0])

size_t hafm_dtype_size(hafm_dtype t)
{
    for (size_t i = 0; i < NDTYPES; i++)
        if (dtypes[i].t == t) return dtypes[i].size;
    return 0;
}

const char *hafm_dtype_name(hafm_dtype t)
{
    for (size_t i = 0; i < NDTYPES; i++)
        if (dtypes[i].t == t) return dtypes[i].name;
    return "invalid";
}

hafm_dtype hafm_dtype_from_name(const char *name)
{
    for (size_t i = 0; i < NDTYPES; i++)
        if (strcmp(dtypes[i].name, name) == 0) return dtypes[i].t;
    return HAFM_DT_INVALID;
}

int hafm_dtype_is_float(hafm_dtype t)
{
    return t == HAFM_DT_F16 || t == HAFM_DT_BF16 || t == HAFM_DT_F32 || t == HAFM_DT_F64;
}

uint16_t hafm_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);  /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);                                            /* nearest even */
    return (uint16_t)(x >> 16);
}

float hafm_bf16_to_f32(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t hafm_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);          /* NaN */
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);         /* overflow -> inf */
    if (absx < 0x38800000u) {                                           /* subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign;                   /* below half the smallest */
        uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(absx >> 23);                             /* 14..24 */
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((absx - 0x38000000u) >> 13);
    uint32_t rem = absx & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

float hafm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
        if (mant == 0) x = sign;
        else {                                  /* subnormal: normalise */
            int e = -1;
            do { e++; mant <<= 1; } while (!(mant & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        x = sign | 0x7f800000u | (mant << 13);
    } else {
        x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* Source may be unaligned (msgpack payloads, mmapped files): every load goes through memcpy,
 * which compilers turn into plain loads. The host is little-endian (checked at build time). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hafm assumes a little-endian host"
#endif

#define CONVERT_LOOP(T, EXPR)                                         \
    for (size_t i = 0; i < n; i++) {                                  \
        T v;                                                          \
        memcpy(&v, (const char *)src + i * sizeof(T), sizeof(T));     \
        out[i] = EXPR;                                                \
    }

void hafm_convert_to_f32(float *out, const void *src, hafm_dtype t, size_t n)
{
    switch (t) {
    case HAFM_DT_U8:   CONVERT_LOOP(uint8_t, (float)v); break;
    case HAFM_DT_BOOL: CONVERT_LOOP(uint8_t, (float)(v != 0)); break;
    case HAFM_DT_I8:   CONVERT_LOOP(int8_t, (float)v); break;
    case HAFM_DT_I16:  CONVERT_LOOP(int16_t, (float)v); break;
    case HAFM_DT_U16:  CONVERT_LOOP(uint16_t, (float)v); break;
    case HAFM_DT_I32:  CONVERT_LOOP(int32_t, (float)v); break;
    case HAFM_DT_I64:  CONVERT_LOOP(int64_t, (float)v); break;
    case HAFM_DT_F16:  CONVERT_LOOP(uint16_t, hafm_f16_to_f32(v)); break;
    case HAFM_DT_BF16: CONVERT_LOOP(uint16_t, hafm_bf16_to_f32(v)); break;
    case HAFM_DT_F32:  memcpy(out, src, n * sizeof(float)); break;
    case HAFM_DT_F64:  CONVERT_LOOP(double, (float)v); break;
    default:           memset(out, 0, n * sizeof(float)); break;
    }
}

static int32_t saturate_i32(double v)
{
    if (isnan(v)) return 0;
    if (v >= 2147483647.0) return INT32_MAX;
    if (v <= -2147483648.0) return INT32_MIN;
    return (int32_t)lrint(v);
}

void hafm_convert_to_i32(int32_t *out, const void *src, hafm_dtype t, size_t n)
{
    switch (t) {
    case HAFM_DT_U8:   CONVERT_LOOP(uint8_t, (int32_t)v); break;
    case HAFM_DT_BOOL: CONVERT_LOOP(uint8_t, (int32_t)(v != 0)); break;
    case HAFM_DT_I8:   CONVERT_LOOP(int8_t, (int32_t)v); break;
    case HAFM_DT_I16:  CONVERT_LOOP(int16_t, (int32_t)v); break;
    case HAFM_DT_U16:  CONVERT_LOOP(uint16_t, (int32_t)v); break;
    case HAFM_DT_I32:  memcpy(out, src, n * sizeof(int32_t)); break;
    case HAFM_DT_I64:  CONVERT_LOOP(int64_t, saturate_i32((double)v)); break;
    case HAFM_DT_F16:  CONVERT_LOOP(uint16_t, saturate_i32(hafm_f16_to_f32(v))); break;
    case HAFM_DT_BF16: CONVERT_LOOP(uint16_t, saturate_i32(hafm_bf16_to_f32(v))); break;
    case HAFM_DT_F32:  CONVERT_LOOP(float, saturate_i32(v)); break;
    case HAFM_DT_F64:  CONVERT_LOOP(double, saturate_i32(v)); break;
    default:           memset(out, 0, n * sizeof(int32_t)); break;
    }
}

/* ---- threads and time --------------------------------------------------------------------- */

static int thread_count = 1;

void hafm_set_threads(int n)
{
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    thread_count = n;
    openblas_set_num_threads(n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

int hafm_get_threads(void) { return thread_count; }

char *hafm_find_model(const char *opt, const char *env, const char *file)
{
    if (opt) return hafm_xstrdup(opt);
    const char *e = env ? getenv(env) : NULL;
    if (e && *e) return hafm_xstrdup(e);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    const char *dir = dirname(exe);   /* may write into exe: taken once */
    const char *rel[] = { "../share/hafm/models", "../models" };
    for (int i = 0; i < 2; i++) {
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s/%s", dir, rel[i], file);
        if (access(path, R_OK) == 0) return hafm_xstrdup(path);
    }
    return NULL;
}

void hafm_keep_freed_memory(void)
{
    /* blocks up to 1 GiB come from the heap rather than their own mappings, freed space at
     * the top of the heap is kept, and the heap grows in steps of 256 MiB */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
    mallopt(M_TOP_PAD, 256 << 20);
}

double hafm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
