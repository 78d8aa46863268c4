/* bench_sgemm - achieved GFLOP/s of hafm_sgemm on square and model-shaped products, and the
 * streaming read rate: the hardware figures every other benchmark compares itself with. */
#include "hafm.h"
#include <stdlib.h>

static double gflops(int M, int N, int K, int reps)
{
    float *A = hafm_aligned_alloc(sizeof(float) * (size_t)M * K);
    float *B = hafm_aligned_alloc(sizeof(float) * (size_t)K * N);
    float *C = hafm_aligned_alloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)(i % 5) * 0.1f;
    hafm_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);   /* warm-up */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = hafm_now();
        hafm_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        double dt = hafm_now() - t0;
        if (dt < best) best = dt;
    }
    free(A); free(B); free(C);
    return 2.0 * M * N * K / best / 1e9;
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    double sq = gflops(2048, 2048, 2048, 5);
    printf("bench sgemm_2048: %.1f GFLOP/s  (%.0f%% of the ~200 GFLOP/s quoted for this machine, %d threads, %s)\n",
           sq, 100.0 * sq / 200.0, hafm_get_threads(), hafm_backend_name());
    double tall = gflops(750, 512, 1536, 20);   /* a conv-as-GEMM shape: 10 s of 75 Hz frames */
    printf("bench sgemm_750x512x1536: %.1f GFLOP/s  (%.0f%% of sgemm_2048)\n", tall, 100.0 * tall / sq);
    double bw = hafm_read_bandwidth((size_t)512 << 20, 5) / 1e9;
    printf("bench memory_read: %.1f GB/s  (%.0f%% of the ~50 GB/s quoted for this machine, %d threads, 512 MiB streamed)\n",
           bw, 100.0 * bw / 50.0, hafm_get_threads());
    return 0;
}
