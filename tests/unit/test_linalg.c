/* test_linalg.c - hafm_sgemm against a naive double-precision product, all transpose cases,
 * padded leading dimensions, beta accumulation and the K = 0 edge. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include "hafm.h"

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void check_case(int ta, int tb, int M, int N, int K, float alpha, float beta)
{
    unsigned seed = (unsigned)(M * 131 + N * 7 + K + ta * 3 + tb);
    int a_rows = ta ? K : M, a_cols = ta ? M : K;
    int b_rows = tb ? N : K, b_cols = tb ? K : N;
    int lda = a_cols + 3, ldb = b_cols + 1, ldc = N + 2;
    float *A = malloc(sizeof(float) * (size_t)a_rows * lda);
    float *B = malloc(sizeof(float) * (size_t)b_rows * ldb);
    float *C = malloc(sizeof(float) * (size_t)M * ldc);
    double *R = malloc(sizeof(double) * (size_t)M * N);
    for (int i = 0; i < a_rows * lda; i++) A[i] = frand(&seed);
    for (int i = 0; i < b_rows * ldb; i++) B[i] = frand(&seed);
    for (int i = 0; i < M * ldc; i++) C[i] = frand(&seed);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += a * b;
            }
            R[(size_t)i * N + j] = alpha * acc + beta * C[(size_t)i * ldc + j];
        }
    hafm_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double max_diff = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double d = fabs(C[(size_t)i * ldc + j] - R[(size_t)i * N + j]);
            if (d > max_diff) max_diff = d;
        }
    printf("# sgemm ta=%d tb=%d %dx%dx%d max_diff=%.3g\n", ta, tb, M, N, K, max_diff);
    assert_true(max_diff <= 1e-5 * (K + 1));
    free(A); free(B); free(C); free(R);
}

static void test_sgemm_cases(void **state)
{
    (void)state;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_case(ta, tb, 1, 1, 1, 1.0f, 0.0f);
            check_case(ta, tb, 17, 33, 65, 0.5f, 1.0f);
            check_case(ta, tb, 64, 3, 200, 1.0f, -0.25f);
        }
    check_case(0, 0, 5, 7, 0, 1.0f, 0.5f);   /* K = 0: C = beta C */
    check_case(1, 0, 256, 256, 256, 1.0f, 0.5f);  /* large enough for the CUDA backend to take it */
}

static void test_sgemv(void **state)
{
    (void)state;
    float A[6] = { 1, 2, 3, 4, 5, 6 };   /* [2,3] */
    float x3[3] = { 1, 1, 1 }, x2[2] = { 1, -1 };
    float y2[2] = { 10, 10 }, y3[3] = { 0, 0, 0 };
    hafm_sgemv(0, 2, 3, 1.0f, A, 3, x3, 1.0f, y2);
    assert_true(y2[0] == 16 && y2[1] == 25);
    hafm_sgemv(1, 2, 3, 1.0f, A, 3, x2, 0.0f, y3);
    assert_true(y3[0] == -3 && y3[1] == -3 && y3[2] == -3);
    assert_string_equal(hafm_backend_name(), "openblas");
}

/* The read-rate probe reads what it says: a plausible rate, and more bytes take longer. */
static void test_read_bandwidth(void **state)
{
    (void)state;
    double bw = hafm_read_bandwidth((size_t)16 << 20, 3);
    printf("# read bandwidth over 16 MiB: %.1f GB/s\n", bw / 1e9);
    assert_true(bw > 1e8 && bw < 1e13);
    double t0 = hafm_now();
    hafm_read_bandwidth((size_t)64 << 20, 1);
    double t_big = hafm_now() - t0;
    t0 = hafm_now();
    hafm_read_bandwidth((size_t)1 << 20, 1);
    assert_true(hafm_now() - t0 < t_big);
}

int main(void)
{
    hafm_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgemm_cases),
        cmocka_unit_test(test_sgemv),
        cmocka_unit_test(test_read_bandwidth),
    };
    return cmocka_run_group_tests_name("linalg", tests, NULL, NULL);
}
