/* linalg.c - hafm_sgemm and friends over OpenBLAS, dispatching large problems to cuBLAS when the
 * library is built with CUDA=1 and a device is present (lib/linalg_cuda.c). */
#include "hafm/linalg.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <cblas.h>
#include <omp.h>

#ifdef HAFM_CUDA
/* lib/linalg_cuda.c: returns 0 when it ran the product on the GPU, -1 to fall back. */
int hafm_cuda_available(void);
int hafm_cuda_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* Below this many multiply-adds the copies to and from the device cost more than they save. */
#define CUDA_MIN_MACS (1LL << 24)
#endif

void hafm_backend_init(void)
{
    /* The CUDA probe is lazy (first large product) so tools that never multiply matrices do
     * not touch the driver or print the fallback notice. */
}

const char *hafm_backend_name(void)
{
#ifdef HAFM_CUDA
    if (hafm_cuda_available()) return "cublas";
#endif
    return "openblas";
}

void hafm_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
#ifdef HAFM_CUDA
    if ((long long)M * N * K >= CUDA_MIN_MACS &&
        hafm_cuda_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
        return;
#endif
    if (K <= 0) {   /* BLAS leaves C untouched for K == 0 only when beta == 1 */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] *= beta;
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int hafm_blas_single_begin(void)
{
    int saved = openblas_get_num_threads();
    if (saved > 1 && strcmp(hafm_backend_name(), "openblas") == 0) openblas_set_num_threads(1);
    return saved;
}

void hafm_blas_single_end(int saved)
{
    if (openblas_get_num_threads() != saved) openblas_set_num_threads(saved);
}

void hafm_sgemm_omp(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc)
{
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (threads <= 1 || openblas_get_num_threads() > 1 || (int64_t)M * N * K < (1 << 18) ||
        strcmp(hafm_backend_name(), "openblas") != 0) {
        hafm_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int split_n = N > M, len = split_n ? N : M;
    if (len < 32 * threads) threads = len / 32 > 1 ? len / 32 : 1;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        /* slice edges on multiples of 16 rows: whole register tiles of the BLAS kernel */
        int a = t ? (int)((int64_t)len * t / nt) & ~15 : 0;
        int b = t == nt - 1 ? len : (int)((int64_t)len * (t + 1) / nt) & ~15;
        if (b > a && split_n)
            hafm_sgemm(trans_a, trans_b, M, b - a, K, alpha, A, lda, trans_b ? B + (size_t)a * ldb : B + a, ldb,
                       beta, C + a, ldc);
        else if (b > a)
            hafm_sgemm(trans_a, trans_b, b - a, N, K, alpha, trans_a ? A + a : A + (size_t)a * lda, lda, B, ldb, beta,
                       C + (size_t)a * ldc, ldc);
    }
}

void hafm_sgemm_strided_batched(int trans_a, int trans_b, int M, int N, int K, float alpha,
                                const float *A, int lda, int64_t stride_a,
                                const float *B, int ldb, int64_t stride_b, float beta,
                                float *C, int ldc, int64_t stride_c, int batch)
{
    for (int b = 0; b < batch; b++)
        hafm_sgemm(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb,
                   beta, C + b * stride_c, ldc);
}

void hafm_sgemv(int trans_a, int M, int N, float alpha, const float *A, int lda,
                const float *x, float beta, float *y)
{
    if (M <= 0 || N <= 0) return;
    cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, M, N, alpha, A, lda, x, 1, beta, y, 1);
}

void *hafm_aligned_alloc(size_t nbytes)
{
    size_t n = (nbytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) {
        hafm_error("out of memory (%zu bytes)", nbytes);
        hafm_die_last();
    }
    return p;
}

/* A decode step reads every weight once: with 4 KiB pages that is a TLB miss every 4 KiB, and
 * the bf16 weight GEMVs streamed 11 -> 13 GB/s a core, a plain read 18 -> 26, on huge pages
 * (this machine's THP is "madvise", so nothing gets them unasked). */
void *hafm_stream_alloc(size_t nbytes)
{
    const size_t huge = (size_t)2 << 20;
    if (nbytes < 2 * huge) return hafm_aligned_alloc(nbytes);
    size_t n = (nbytes + huge - 1) & ~(huge - 1);
    void *p = NULL;
    if (posix_memalign(&p, huge, n) != 0 || !p) {
        hafm_error("out of memory (%zu bytes)", nbytes);
        hafm_die_last();
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(p, n, MADV_HUGEPAGE);   /* advice only: without THP the buffer still works */
#endif
    return p;
}

double hafm_read_bandwidth(size_t bytes, int reps)
{
    size_t n = bytes / sizeof(float);
    float *a = hafm_stream_alloc(n * sizeof(float));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 7);   /* each thread touches the pages it reads */
    double best = 0.0;
    volatile float sink = 0.0f;   /* keeps the sums from being optimised away */
    for (int r = 0; r < reps; r++) {
        double t0 = hafm_now();
        float total = 0.0f;
#pragma omp parallel for simd schedule(static) reduction(+:total)
        for (size_t i = 0; i < n; i++) total += a[i];
        double dt = hafm_now() - t0;
        sink += total;
        if (dt > 0 && n * sizeof(float) / dt > best) best = n * sizeof(float) / dt;
    }
    (void)sink;
    free(a);
    return best;
}
