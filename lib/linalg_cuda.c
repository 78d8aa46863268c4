/* linalg_cuda.c - the cuBLAS backend of hafm_sgemm (built with CUDA=1 only).
 *
 * Row-major C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T, so the
 * operands go to cuBLAS swapped and no transposition is ever materialised. Device buffers grow
 * and are reused across calls. Without a usable device the first call says so once on stderr
 * and every product runs on OpenBLAS. HAFM_BACKEND=cpu forces the CPU. */
#ifdef HAFM_CUDA
#include "hafm/common.h"

#include <stdlib.h>
#include <string.h>
#include <cuda_runtime_api.h>
#include <cublas_v2.h>

int hafm_cuda_available(void);
int hafm_cuda_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

static int state = -1;          /* -1 not probed, 0 unavailable, 1 ready */
static cublasHandle_t handle;
static float *dev_buf[3];
static size_t dev_cap[3];

int hafm_cuda_available(void)
{
    if (state >= 0) return state;
    state = 0;
    const char *forced = getenv("HAFM_BACKEND");
    if (forced && strcmp(forced, "cpu") == 0) return state;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        fprintf(stderr, "%s: no CUDA device (%s); using the CPU (OpenBLAS)\n", hafm_progname,
                err != cudaSuccess ? cudaGetErrorString(err) : "none found");
        return state;
    }
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "%s: cuBLAS initialisation failed; using the CPU (OpenBLAS)\n", hafm_progname);
        return state;
    }
    state = 1;
    return state;
}

static float *device_buffer(int slot, size_t nfloats)
{
    if (dev_cap[slot] >= nfloats) return dev_buf[slot];
    if (dev_buf[slot]) cudaFree(dev_buf[slot]);
    dev_buf[slot] = NULL;
    dev_cap[slot] = 0;
    if (cudaMalloc((void **)&dev_buf[slot], nfloats * sizeof(float)) != cudaSuccess) return NULL;
    dev_cap[slot] = nfloats;
    return dev_buf[slot];
}

int hafm_cuda_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (!hafm_cuda_available()) return -1;
    /* rows of A and B as stored */
    size_t a_rows = trans_a ? (size_t)K : (size_t)M;
    size_t b_rows = trans_b ? (size_t)N : (size_t)K;
    size_t na = a_rows * (size_t)lda, nb = b_rows * (size_t)ldb, nc = (size_t)M * (size_t)ldc;
    float *dA = device_buffer(0, na), *dB = device_buffer(1, nb), *dC = device_buffer(2, nc);
    if (!dA || !dB || !dC) return -1;
    if (cudaMemcpy(dA, A, na * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess) return -1;
    if (cudaMemcpy(dB, B, nb * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess) return -1;
    if (beta != 0.0f && cudaMemcpy(dC, C, nc * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess) return -1;
    cublasStatus_t st = cublasSgemm(handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                    N, M, K, &alpha, dB, ldb, dA, lda, &beta, dC, ldc);
    if (st != CUBLAS_STATUS_SUCCESS) return -1;
    if (cudaMemcpy(C, dC, nc * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess) return -1;
    return 0;
}
#else
/* ISO C forbids an empty translation unit. */
typedef int hafm_linalg_cuda_unused;
#endif
