/* test_vggish.c - VGGish front end against mel_features.py (../shared/golden/fad). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hafm/vggish.h"
#include "hafm/safetensors.h"
#include <unistd.h>
#include "fadvsep_util.h"

static void test_mel_matrix(void **state) {
    const char *p = golden_path("fad", "vggish_melmatrix_257x64.f64");
    size_t n = 0;
    double *g = p ? slurp(p, &n) : NULL;
    if (!g) { fprintf(stderr, "SKIP: HAFM_SHARED golden/fad missing\n"); skip(); }
    assert_int_equal(n, 257 * 64 * sizeof(double));
    double m[257 * 64], dmax = 0;
    hafm_vggish_mel_matrix(m);
    for (int i = 0; i < 257 * 64; i++) dmax = fmax(dmax, fabs(m[i] - g[i]));
    printf("OK (vggish mel matrix) max_diff=%.3g\n", dmax);
    assert_true(dmax < 1e-12);
    free(g);
}

static void check_logmel(const char *input, const char *output, int64_t n, int64_t want_ex) {
    const char *pi = golden_path("fad", input);
    size_t ni = 0, no = 0;
    double *in = pi ? slurp(pi, &ni) : NULL;
    float *gold = in ? slurp(golden_path("fad", output), &no) : NULL;
    if (!gold) { free(in); fprintf(stderr, "SKIP: HAFM_SHARED golden/fad missing\n"); skip(); }
    assert_int_equal(ni, (size_t)n * sizeof(double));
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = (float)in[i];
    assert_int_equal(hafm_vggish_num_examples(n), want_ex);
    float *out = malloc((size_t)want_ex * 96 * 64 * sizeof(float));
    assert_int_equal(hafm_vggish_logmel_f64(out, in, n), want_ex);
    assert_int_equal(no, (size_t)want_ex * 96 * 64 * sizeof(float));
    double d = max_abs_diff_f(out, gold, (size_t)want_ex * 96 * 64);
    printf("OK (vggish log-mel %s) max_diff=%.3g\n", output, d);
    assert_true(d < 2e-6);
    /* from float32 samples the input rounding (6e-8 relative) moves the near-empty bands of a
     * pure tone by up to ~1e-4 through log(mel + 0.01): measured, not a tolerance on the math */
    assert_int_equal(hafm_vggish_logmel(out, x, n), want_ex);
    d = max_abs_diff_f(out, gold, (size_t)want_ex * 96 * 64);
    printf("OK (vggish log-mel %s, float32 input) max_diff=%.3g\n", output, d);
    assert_true(d < 2e-4);
    free(in); free(gold); free(x); free(out);
}

static void test_logmel_sine(void **state) {
    check_logmel("vggish_in_sine1k_16k_48000.f64", "vggish_logmel_sine1k_3x96x64.f32", 48000, 3);
}

static void test_logmel_noisechirp(void **state) {
    check_logmel("vggish_in_noisechirp_16k_37000.f64", "vggish_logmel_noisechirp_2x96x64.f32", 37000, 2);
}

static void test_short_input(void **state) {
    assert_int_equal(hafm_vggish_num_examples(15599), 0);   /* 95 frames */
    assert_int_equal(hafm_vggish_num_examples(15600), 1);   /* 96 frames: 400 + 95 * 160 */
    float x[100] = { 0 };
    assert_int_equal(hafm_vggish_logmel(NULL, x, 100), 0);
}

static char *data_path(const char *name) {
    static char buf[1024];
    const char *d = getenv("HAFM_DATA");
    snprintf(buf, sizeof buf, "%s/fadvsep/%s", d && *d ? d : "tests/data", name);
    return buf;
}

static void check_embed(const char *model, const char *what) {
    hafm_vggish *m = hafm_vggish_load(model);
    assert_non_null(m);
    assert_int_equal(hafm_vggish_dim(m), 16);
    float *x = slurp(data_path("vggish_tiny_in_2x96x64.f32"), NULL);
    float *want = slurp(data_path("vggish_tiny_emb_2x16.f32"), NULL);
    assert_non_null(x);
    assert_non_null(want);
    float emb[32];
    assert_int_equal(hafm_vggish_embed(m, emb, x, 2), 0);
    double d = max_abs_diff_f(emb, want, 32);
    printf("OK (vggish network, %s naming, vs torchvggish forward) max_diff=%.3g\n", what, d);
    assert_true(d < 1e-5);
    free(x);
    free(want);
    hafm_vggish_free(m);
}

static void test_network_torch_naming(void **state) {
    check_embed(data_path("vggish_tiny.safetensors"), "torch-port");
}

/* the same weights rewritten in the TF checkpoint's naming and layouts give the same embedding */
static void test_network_tf_naming(void **state) {
    static const char *torch_conv[6] = { "features.0", "features.3", "features.6", "features.8", "features.11", "features.13" };
    static const char *tf_conv[6] = { "vggish/conv1", "vggish/conv2", "vggish/conv3/conv3_1", "vggish/conv3/conv3_2",
                                      "vggish/conv4/conv4_1", "vggish/conv4/conv4_2" };
    static const char *torch_fc[3] = { "embeddings.0", "embeddings.2", "embeddings.4" };
    static const char *tf_fc[3] = { "vggish/fc1/fc1_1", "vggish/fc1/fc1_2", "vggish/fc2" };
    hafm_safetensors *st = hafm_st_open(data_path("vggish_tiny.safetensors"));
    assert_non_null(st);
    hafm_st_writer *w = hafm_st_writer_new();
    char a[64], b[64];
    for (int i = 0; i < 6; i++) {
        snprintf(a, sizeof a, "%s.weight", torch_conv[i]);
        const hafm_st_tensor *t = hafm_st_find(st, a);
        int64_t O = t->shape[0], I = t->shape[1];
        float *src = hafm_st_load_f32(st, a, 4, t->shape), *dst = malloc((size_t)t->numel * sizeof(float));
        for (int64_t o = 0; o < O; o++)
            for (int64_t c = 0; c < I; c++)
                for (int k = 0; k < 9; k++) dst[(k * I + c) * O + o] = src[(o * I + c) * 9 + k];
        int64_t hwio[4] = { 3, 3, I, O };
        snprintf(b, sizeof b, "%s/weights", tf_conv[i]);
        assert_int_equal(hafm_st_writer_add_f32(w, b, HAFM_DT_F32, 4, hwio, dst), 0);
        snprintf(a, sizeof a, "%s.bias", torch_conv[i]);
        snprintf(b, sizeof b, "%s/biases", tf_conv[i]);
        float *bias = hafm_st_load_f32(st, a, 1, &O);
        assert_int_equal(hafm_st_writer_add_f32(w, b, HAFM_DT_F32, 1, &O, bias), 0);
        free(src); free(dst); free(bias);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "%s.weight", torch_fc[i]);
        const hafm_st_tensor *t = hafm_st_find(st, a);
        int64_t O = t->shape[0], I = t->shape[1];
        float *src = hafm_st_load_f32(st, a, 2, t->shape), *dst = malloc((size_t)t->numel * sizeof(float));
        for (int64_t o = 0; o < O; o++)
            for (int64_t c = 0; c < I; c++) dst[c * O + o] = src[o * I + c];
        int64_t io[2] = { I, O };
        snprintf(b, sizeof b, "%s/weights", tf_fc[i]);
        assert_int_equal(hafm_st_writer_add_f32(w, b, HAFM_DT_F32, 2, io, dst), 0);
        snprintf(a, sizeof a, "%s.bias", torch_fc[i]);
        snprintf(b, sizeof b, "%s/biases", tf_fc[i]);
        float *bias = hafm_st_load_f32(st, a, 1, &O);
        assert_int_equal(hafm_st_writer_add_f32(w, b, HAFM_DT_F32, 1, &O, bias), 0);
        free(src); free(dst); free(bias);
    }
    char path[] = "/tmp/test_vggish_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(hafm_st_writer_save(w, path), 0);
    hafm_st_writer_free(w);
    hafm_st_close(st);
    check_embed(path, "TF-checkpoint");
    unlink(path);
}

static void test_network_errors(void **state) {
    hafm_st_writer *w = hafm_st_writer_new();
    float one = 1;
    int64_t shp[1] = { 1 };
    hafm_st_writer_add_f32(w, "features.0.bias", HAFM_DT_F32, 1, shp, &one);
    char path[] = "/tmp/test_vggish_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(hafm_st_writer_save(w, path), 0);
    hafm_st_writer_free(w);
    assert_null(hafm_vggish_load(path));
    printf("OK (foreign weights refused: %s)\n", hafm_last_error());
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mel_matrix),
        cmocka_unit_test(test_logmel_sine),
        cmocka_unit_test(test_logmel_noisechirp),
        cmocka_unit_test(test_short_input),
        cmocka_unit_test(test_network_torch_naming),
        cmocka_unit_test(test_network_tf_naming),
        cmocka_unit_test(test_network_errors),
    };
    return cmocka_run_group_tests_name("vggish", tests, NULL, NULL);
}
