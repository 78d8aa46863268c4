/* hafm/common.h - errors, element types, options, atomic output files, threads.
 *
 * Error convention (every lib function): return 0 (or a valid pointer) on success, -1 (or NULL)
 * on failure after calling hafm_error() with a one-line message (no program name, no newline).
 * The command prints it as "prog: message" through hafm_die()/hafm_report().
 */
#ifndef HAFM_COMMON_H
#define HAFM_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HAFM_VERSION "0.1.0"

#if defined(__GNUC__)
#define HAFM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define HAFM_NORETURN __attribute__((noreturn))
#else
#define HAFM_PRINTF(a, b)
#define HAFM_NORETURN
#endif

/* ---- errors ---------------------------------------------------------------------------- */
/* Sets the thread's last error. A format ending in ':' appends ": strerror(errno)" (sbase). */
void hafm_error(const char *fmt, ...) HAFM_PRINTF(1, 2);
/* Prefixes the current error with "context: " (e.g. the file name). */
void hafm_error_prefix(const char *fmt, ...) HAFM_PRINTF(1, 2);
const char *hafm_last_error(void);

/* Program name for messages; set once from argv[0] (basename) by hafm_init(). */
extern const char *hafm_progname;
/* Call first in main(): sets progname, thread count from $HAFM_THREADS, backend. */
void hafm_init(int argc, char **argv);
/* "prog: <last error>" to stderr, then exit(1). */
HAFM_NORETURN void hafm_die_last(void);
/* "prog: message" to stderr (':' at the end appends strerror), then exit(1). */
HAFM_NORETURN void hafm_die(const char *fmt, ...) HAFM_PRINTF(1, 2);
/* "prog: message" to stderr, no exit. */
void hafm_warn(const char *fmt, ...) HAFM_PRINTF(1, 2);
/* Usage error: "prog: message" + "Try 'prog --help'." to stderr, exit 2. */
HAFM_NORETURN void hafm_usage_error(const char *fmt, ...) HAFM_PRINTF(1, 2);
/* getopt_long's answer c ('?' or ':') for argv -> the usage error naming the option, exit 2.
 * Commands set opterr = 0 so that this is the only message. */
HAFM_NORETURN void hafm_bad_option(int c, char **argv);
/* Prints "prog (hafm) VERSION" to stdout and exits 0. */
HAFM_NORETURN void hafm_print_version(void);

/* Allocation that dies with "prog: out of memory" (commands and lib internals where a
 * failure cannot be reported more usefully). */
void *hafm_xmalloc(size_t n);
void *hafm_xcalloc(size_t n, size_t size);
void *hafm_xrealloc(void *p, size_t n);
char *hafm_xstrdup(const char *s);

/* ---- option parsing: range-checked, messages name the option ---------------------------- */
/* On failure these call hafm_usage_error("-x: expected an integer in [lo, hi], got 'arg'"). */
long   hafm_opt_long(const char *opt, const char *arg, long lo, long hi);
double hafm_opt_double(const char *opt, const char *arg, double lo, double hi);
/* A comma-separated list of at most max numbers, each in [lo, hi]; returns the count (>= 1). */
int hafm_opt_double_list(const char *opt, const char *arg, double *out, int max, double lo, double hi);
/* Non-dying variants: 0 ok, -1 not a number or out of range. */
int hafm_parse_long(const char *s, long lo, long hi, long *out);
int hafm_parse_double(const char *s, double lo, double hi, double *out);

/* ---- element types (stream payloads and safetensors) ------------------------------------- */
typedef enum {
    HAFM_DT_INVALID = 0,
    HAFM_DT_U8, HAFM_DT_I16, HAFM_DT_U16, HAFM_DT_I32, HAFM_DT_I64,
    HAFM_DT_F16, HAFM_DT_BF16, HAFM_DT_F32, HAFM_DT_F64,
    HAFM_DT_BOOL, HAFM_DT_I8
} hafm_dtype;

size_t      hafm_dtype_size(hafm_dtype t);           /* 0 for INVALID */
const char *hafm_dtype_name(hafm_dtype t);           /* stream names: "i16", "f32", ... */
hafm_dtype  hafm_dtype_from_name(const char *name);  /* stream names; INVALID if unknown */
int         hafm_dtype_is_float(hafm_dtype t);

/* Converts n little-endian elements of type t (unaligned source allowed) to float / int32.
 * Integer audio is NOT scaled here (see hafm_audio for PCM scaling). */
void hafm_convert_to_f32(float *out, const void *src, hafm_dtype t, size_t n);
void hafm_convert_to_i32(int32_t *out, const void *src, hafm_dtype t, size_t n);
/* float -> half / bfloat16 (round to nearest even) and back. */
uint16_t hafm_f32_to_f16(float f);
float    hafm_f16_to_f32(uint16_t h);
uint16_t hafm_f32_to_bf16(float f);
float    hafm_bf16_to_f32(uint16_t h);

/* ---- output files written atomically ----------------------------------------------------- */
/* hafm_outfile_open("x.wav") opens "x.wav.tmp.<pid>.<n>" in the same directory; commit fflush+
 * fsync+fclose+rename; abort closes and unlinks. Path "-" means stdout (commit flushes and
 * checks it; abort does nothing). Paths registered here are also unlinked by hafm_die*() so a
 * failing command never leaves a partial file. */
typedef struct hafm_outfile hafm_outfile;
hafm_outfile *hafm_outfile_open(const char *path);   /* NULL + hafm_error on failure */
FILE *hafm_outfile_fp(hafm_outfile *f);
const char *hafm_outfile_tmpname(const hafm_outfile *f); /* the temporary path ("-" for stdout) */
int  hafm_outfile_commit(hafm_outfile *f);           /* frees f; -1 + error on failure */
void hafm_outfile_abort(hafm_outfile *f);            /* frees f */

/* Checks that stdout was written without error (fflush + ferror); call before exit 0. */
int hafm_close_stdout(void);

/* ---- threads ----------------------------------------------------------------------------- */
/* One thread-count setting for every tool: --threads N or $HAFM_THREADS (default: number of
 * online CPUs). Applies to OpenBLAS and to the library's own OpenMP loops. */
void hafm_set_threads(int n);
int  hafm_get_threads(void);

/* A model file: opt if given, else $env if set and non-empty, else `file` in the shipped models
 * beside the executable (../share/hafm/models/ for an installed tool, ../models/ in the source
 * tree). Returns a copy to free, or NULL when there is none. */
char *hafm_find_model(const char *opt, const char *env, const char *file);

/* For training loops, which allocate and free the same large buffers every step: keep freed
 * memory in the process instead of returning it to the kernel each time, which cost page
 * faults and TLB shootdowns across threads (encodec-train's adversarial step: 7.0 s -> 3.0 s). */
void hafm_keep_freed_memory(void);

/* Monotonic seconds, for timings. */
double hafm_now(void);

#endif
