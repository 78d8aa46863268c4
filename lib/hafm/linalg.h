/* hafm/linalg.h - the tensor and matmul layer over BLAS, with an optional cuBLAS backend.
 *
 * All matrices are row-major float32. Every model in lib/ does its heavy lifting through these
 * calls, so building with CUDA=1 moves that work to the GPU without touching the models.
 * Without a device at run time the CUDA build falls back to OpenBLAS and says so once on stderr.
 */
#ifndef HAFM_LINALG_H
#define HAFM_LINALG_H

#include "common.h"

/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major; op(A) is [M,K], op(B) is [K,N].
 * lda/ldb/ldc are the row strides of A, B, C as stored. */
void hafm_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The same product split among the OpenMP threads, each running a
 * single-threaded BLAS product on a slice of C's rows (or columns, when wider than tall), when
 * BLAS itself runs one thread (see hafm_blas_single_begin); otherwise plain hafm_sgemm. */
void hafm_sgemm_omp(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc);

/* The machine's streaming read rate in bytes per second, measured now: the best of `reps` sums
 * over `bytes` of memory (much larger than the caches) by the library's threads. Memory-bound
 * benchmarks judge themselves against it as well as against a quoted figure. */
double hafm_read_bandwidth(size_t bytes, int reps);

/* One thread pool for a model's run: BLAS goes single-threaded and the library's OpenMP loops
 * (hafm_sgemm_omp among them) do the parallel work, so the BLAS workers do not spin beside the
 * OpenMP threads. Returns the BLAS thread count to hand back to hafm_blas_single_end. */
int hafm_blas_single_begin(void);
void hafm_blas_single_end(int saved);

/* Batched over `batch` independent problems with element strides between them. */
void hafm_sgemm_strided_batched(int trans_a, int trans_b, int M, int N, int K, float alpha,
                                const float *A, int lda, int64_t stride_a,
                                const float *B, int ldb, int64_t stride_b, float beta,
                                float *C, int ldc, int64_t stride_c, int batch);

/* y[M] = alpha * op(A) x + beta * y. */
void hafm_sgemv(int trans_a, int M, int N, float alpha, const float *A, int lda,
                const float *x, float beta, float *y);

/* Which backend runs hafm_sgemm: "openblas" or "cublas". */
const char *hafm_backend_name(void);
/* Called by hafm_init(); with CUDA built in, probes for a device once. */
void hafm_backend_init(void);

/* ---- small float helpers used by many models --------------------------------------------- */
void *hafm_aligned_alloc(size_t nbytes);   /* 64-byte aligned, dies on OOM; free with free() */
/* For large buffers streamed every step (decode weights, KV caches): 2 MiB aligned and, from
 * 4 MiB, asked for transparent huge pages; dies on OOM; free with free(). */
void *hafm_stream_alloc(size_t nbytes);

#endif
