/* test_kmeans.c - k-means against NumPy / scikit-learn fixtures (tests/ref/kmeans_ref.py):
 * Lloyd from given centres, k-means++ inertia vs scikit-learn, determinism, exact assignment
 * with lowest-index ties, mini-batch, codebook files (incl. the golden HuBERT codebooks). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hafm.h"
#include "hafm/kmeans.h"

#define K 24
#define D 16
#define N 2000

static void *read_data(const char *rel, size_t *nbytes)
{
    char path[1024];
    const char *data = getenv("HAFM_DATA") ? getenv("HAFM_DATA") : "tests/data";
    snprintf(path, sizeof path, "%s/hubert/kmeans/%s", data, rel);
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("%s: cannot open", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc(n + 1);
    assert_int_equal(fread(buf, 1, n, fp), (size_t)n);
    buf[n] = 0;
    fclose(fp);
    if (nbytes) *nbytes = n;
    return buf;
}

static float *points(void)
{
    size_t nb;
    float *x = read_data("points.f32", &nb);
    assert_int_equal(nb, (size_t)N * D * 4);
    return x;
}

typedef struct {
    double inertia[64];
    int iters;
} iter_log;

static void log_iter(void *ctx, int iter, double inertia, double shift)
{
    (void)shift;
    iter_log *l = ctx;
    assert_int_equal(iter, l->iters + 1);
    if (l->iters < 64) l->inertia[l->iters++] = inertia;
}

static void test_lloyd_from_init(void **state)
{
    (void)state;
    float *x = points(), *c = read_data("init.f32", NULL), *ref = read_data("lloyd10.f32", NULL);
    char *txt = read_data("lloyd10.txt", NULL);
    iter_log l = {{0}, 0};
    double inertia;
    int it = hafm_kmeans_lloyd(c, x, N, D, K, 10, 0.0, &inertia, log_iter, &l);
    assert_int_equal(it, 10);
    assert_int_equal(l.iters, 10);
    double md = 0, mrel = 0;
    for (int i = 0; i < K * D; i++) md = fmax(md, fabs(c[i] - ref[i]));
    char *p = txt;
    for (int i = 0; i < 10; i++) {
        double r = strtod(p, &p);
        mrel = fmax(mrel, fabs(l.inertia[i] - r) / r);
    }
    printf("# OK (10 Lloyd iterations from given centres vs float64 NumPy) max_diff=%.3g, "
           "inertia per iteration max_rel_diff=%.3g\n", md, mrel);
    assert_true(md <= 1e-4);
    assert_true(mrel <= 1e-6);
    free(x), free(c), free(ref), free(txt);
}

static void test_plusplus_vs_sklearn(void **state)
{
    (void)state;
    float *x = points(), *c = malloc(K * D * sizeof(float));
    char *txt = read_data("sklearn.txt", NULL), *p = txt;
    double sk[10];
    for (int i = 0; i < 10; i++) sk[i] = strtod(p, &p);
    double one, ten;
    assert_int_equal(hafm_kmeans_fit(c, x, N, D, K, 1, 300, 1e-4, 0, &one, NULL, NULL), 0);
    assert_int_equal(hafm_kmeans_fit(c, x, N, D, K, 10, 300, 1e-4, 0, &ten, NULL, NULL), 0);
    printf("# OK (k-means++ + Lloyd, n_init 1: inertia %.1f, sklearn seeds 0-4: %.1f..%.1f)\n", one,
           fmin(fmin(sk[0], sk[1]), fmin(sk[2], fmin(sk[3], sk[4]))), fmax(fmax(sk[0], sk[1]), fmax(sk[2], fmax(sk[3], sk[4]))));
    printf("# %s (n_init 10: inertia %.1f vs sklearn n_init 10 random_state 0: %.1f, rel_diff=%+.3g)\n",
           ten <= 1.01 * sk[5] ? "OK" : "FAIL", ten, sk[5], ten / sk[5] - 1);
    assert_true(ten <= 1.01 * sk[5]);
    /* the inertia reported is that of the returned centres */
    hafm_codebook cb;
    hafm_codebook_init(&cb, K, D, c);
    assert_true(fabs(hafm_kmeans_inertia(x, N, &cb) - ten) <= 1e-6 * ten);
    hafm_codebook_free(&cb);
    free(x), free(c), free(txt);
}

static void test_deterministic(void **state)
{
    (void)state;
    float *x = points(), *a = malloc(K * D * sizeof(float)), *b = malloc(K * D * sizeof(float));
    double ia, ib;
    assert_int_equal(hafm_kmeans_fit(a, x, N, D, K, 2, 50, 1e-4, 1234, &ia, NULL, NULL), 0);
    assert_int_equal(hafm_kmeans_fit(b, x, N, D, K, 2, 50, 1e-4, 1234, &ib, NULL, NULL), 0);
    assert_memory_equal(a, b, K * D * sizeof(float));
    assert_true(ia == ib);
    printf("# OK (same seed, same centres and inertia %.1f)\n", ia);
    free(x), free(a), free(b);
}

/* Assignment equals a brute-force double argmin, lowest index on exact ties. */
static void test_assign_exact(void **state)
{
    (void)state;
    enum { KK = 500, DD = 96, NN = 3000 };
    hafm_rng rng;
    hafm_rng_seed(&rng, 99);
    float *c = malloc(KK * DD * sizeof(float)), *x = malloc(NN * DD * sizeof(float));
    /* a common offset of 40 makes |x|^2 ~ 1.5e5, so the GEMM form rounds at ~1e-2 */
    for (int i = 0; i < KK * DD; i++) c[i] = (float)(40.0 + 3.0 * hafm_rng_normal(&rng));
    memcpy(c + 7 * DD, c + 3 * DD, DD * sizeof(float));   /* centroid 7 duplicates centroid 3 */
    for (int i = 0; i < NN; i++) {
        int src = (int)(hafm_rng_uniform(&rng) * KK);
        for (int j = 0; j < DD; j++) x[i * DD + j] = c[src * DD + j] + (float)(2.5 * hafm_rng_normal(&rng));
    }
    memcpy(x, c + 3 * DD, DD * sizeof(float));             /* exactly on the duplicated centroid */
    /* near-ties: points a hair off the midpoint of two centroids, margins far below the float
     * rounding of |x|^2 - 2x.c + |c|^2 */
    for (int i = 1; i < 200; i++) {
        int a = (int)(hafm_rng_uniform(&rng) * KK), b = (int)(hafm_rng_uniform(&rng) * KK);
        double eps = (i % 2 ? 1 : -1) * 2e-7 * i;
        for (int j = 0; j < DD; j++)
            x[i * DD + j] = (float)(0.5 * (c[a * DD + j] + c[b * DD + j]) + eps * (c[a * DD + j] - c[b * DD + j]));
    }
    hafm_codebook cb;
    assert_int_equal(hafm_codebook_init(&cb, KK, DD, c), 0);
    int32_t *lab = malloc(NN * sizeof(int32_t));
    float *d2 = malloc(NN * sizeof(float));
    hafm_kmeans_assign(lab, d2, x, NN, &cb);
    int wrong = 0;
    double min_margin = INFINITY;
    for (int i = 0; i < NN; i++) {
        double best = INFINITY, second = INFINITY;
        int bi = -1;
        for (int k = 0; k < KK; k++) {
            double s = 0;
            for (int j = 0; j < DD; j++) s += ((double)x[i * DD + j] - c[k * DD + j]) * ((double)x[i * DD + j] - c[k * DD + j]);
            if (s < best) second = best, best = s, bi = k;
            else if (s < second) second = s;
        }
        wrong += lab[i] != bi;
        if (second - best < min_margin && second > best) min_margin = second - best;
        assert_true(fabs(d2[i] - best) <= 1e-6 * (best + 1));
    }
    assert_int_equal(lab[0], 3);
    printf("# OK (assignment vs brute-force float64 argmin: %d of %d differ, smallest nonzero margin %.3g; tie -> lowest index)\n",
           wrong, NN, min_margin);
    assert_int_equal(wrong, 0);
    hafm_codebook_free(&cb);
    free(c), free(x), free(lab), free(d2);
}

static void test_minibatch(void **state)
{
    (void)state;
    float *x = points(), *c = malloc(K * D * sizeof(float)), *full = malloc(K * D * sizeof(float));
    double full_inertia;
    assert_int_equal(hafm_kmeans_fit(full, x, N, D, K, 10, 300, 1e-4, 0, &full_inertia, NULL, NULL), 0);
    /* as scikit-learn's MiniBatchKMeans: the init is fitted on a subset (3 x batch, 3 inits) */
    assert_int_equal(hafm_kmeans_fit(c, x, 768, D, K, 3, 100, 1e-4, 5, NULL, NULL, NULL), 0);
    int64_t counts[K] = {0};
    for (int epoch = 0; epoch < 20; epoch++)
        for (int b0 = 0; b0 < N; b0 += 256)
            hafm_kmeans_minibatch_step(c, counts, x + (size_t)b0 * D, N - b0 < 256 ? N - b0 : 256, D, K);
    hafm_codebook cb;
    hafm_codebook_init(&cb, K, D, c);
    double mb = hafm_kmeans_inertia(x, N, &cb);
    printf("# OK (mini-batch 256 x 20 epochs: inertia %.1f vs full Lloyd %.1f, ratio %.3f)\n", mb, full_inertia, mb / full_inertia);
    assert_true(mb <= 1.15 * full_inertia);
    hafm_codebook_free(&cb);
    free(x), free(c), free(full);
}

static void test_codebook_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_kmeans.XXXXXX";
    assert_non_null(mkdtemp(dir));
    float *x = points();
    hafm_codebook cb, a, b;
    assert_int_equal(hafm_codebook_init(&cb, K, D, x), 0);
    char p1[64], p2[64];
    snprintf(p1, sizeof p1, "%s/c.npy", dir);
    snprintf(p2, sizeof p2, "%s/c.safetensors", dir);
    assert_int_equal(hafm_codebook_save(&cb, p1), 0);
    assert_int_equal(hafm_codebook_save(&cb, p2), 0);
    assert_int_equal(hafm_codebook_load(&a, p1), 0);
    assert_int_equal(hafm_codebook_load(&b, p2), 0);
    assert_int_equal(a.k, K);
    assert_int_equal(b.d, D);
    assert_memory_equal(a.centers, x, K * D * 4);
    assert_memory_equal(b.centers, x, K * D * 4);
    hafm_codebook_free(&a), hafm_codebook_free(&b), hafm_codebook_free(&cb);
    /* corrupt files */
    FILE *fp = fopen(p1, "r+b");
    fseek(fp, 0, SEEK_END);
    assert_int_equal(ftruncate(fileno(fp), ftell(fp) - 4), 0);
    fclose(fp);
    assert_int_equal(hafm_codebook_load(&a, p1), -1);
    printf("# error: %s\n", hafm_last_error());
    fp = fopen(p1, "wb");
    static const char bad[] = "\x93NUMPY\x01\x00\x40\x00{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }      \n";
    fwrite(bad, 1, sizeof bad - 1, fp);
    fwrite(bad, 1, 16, fp);
    fclose(fp);
    assert_int_equal(hafm_codebook_load(&a, p1), -1);
    printf("# error: %s\n", hafm_last_error());
    assert_int_equal(hafm_codebook_load(&a, "/nonexistent.safetensors"), -1);
    unlink(p1), unlink(p2), rmdir(dir);
    free(x);

    /* the golden HuBERT codebooks: .npy and .safetensors hold the same centroids */
    const char *shared = getenv("HAFM_SHARED");
    const char *pairs[2][2] = {{"hubert_small_seed5_L2_km16", "16x96"}, {"hubert_base_seed2024_L9_km500", "500x768"}};
    for (int i = 0; i < 2; i++) {
        char n1[1024], n2[1024];
        snprintf(n1, sizeof n1, "%s/golden/hubert/kmeans/%s.npy", shared ? shared : "", pairs[i][0]);
        snprintf(n2, sizeof n2, "%s/golden/hubert/kmeans/%s.safetensors", shared ? shared : "", pairs[i][0]);
        if (!shared || access(n1, R_OK) != 0) {
            printf("# skip golden codebook %s: $HAFM_SHARED not available\n", pairs[i][0]);
            continue;
        }
        assert_int_equal(hafm_codebook_load(&a, n1), 0);
        assert_int_equal(hafm_codebook_load(&b, n2), 0);
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%d", a.k, a.d);
        assert_string_equal(shape, pairs[i][1]);
        assert_memory_equal(a.centers, b.centers, (size_t)a.k * a.d * 4);
        /* every centroid is its own nearest centroid */
        int32_t *lab = malloc(a.k * sizeof(int32_t));
        hafm_kmeans_assign(lab, NULL, a.centers, a.k, &a);
        for (int j = 0; j < a.k; j++) assert_int_equal(lab[j], j);
        printf("# OK (golden codebook %s [%s]: npy == safetensors)\n", pairs[i][0], shape);
        free(lab);
        hafm_codebook_free(&a), hafm_codebook_free(&b);
    }
}

int main(void)
{
    hafm_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lloyd_from_init),
        cmocka_unit_test(test_plusplus_vs_sklearn),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_assign_exact),
        cmocka_unit_test(test_minibatch),
        cmocka_unit_test(test_codebook_files),
    };
    return cmocka_run_group_tests_name("kmeans", tests, NULL, NULL);
}
