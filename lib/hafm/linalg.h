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

#endif
