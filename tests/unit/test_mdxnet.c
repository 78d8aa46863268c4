/* test_mdxnet.c - MDX-Net from ONNX against ../shared/golden/mdxnet (torch.onnx export of the
 * real ConvTDFNet on random weights; outputs from a float64 evaluation of the ONNX file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <unistd.h>

#include "hafm/mdxnet.h"
#include "hafm/onnx.h"
#include "fadvsep_util.h"

#define NEED(p) do { if (!(p)) { fprintf(stderr, "SKIP: HAFM_SHARED golden/mdxnet missing\n"); skip(); } } while (0)

static void test_onnx_reader(void **state) {
    const char *p = golden_path("mdxnet", "mdx_tiny_seed3.onnx");
    cJSON *j = p ? load_json(golden_path("mdxnet", "mdx_tiny_seed3.initializers.json")) : NULL;
    NEED(j);
    hafm_onnx *o = hafm_onnx_load(p);
    assert_non_null(o);
    assert_int_equal(hafm_onnx_opset(o), 11);
    assert_int_equal(hafm_onnx_num_nodes(o), 82);
    const cJSON *list = cJSON_IsArray(j) ? j : cJSON_GetObjectItem(j, "initializers");
    assert_int_equal(hafm_onnx_num_initializers(o), cJSON_GetArraySize(list));
    double worst = 0;
    for (int i = 0; i < cJSON_GetArraySize(list); i++) {
        const cJSON *e = cJSON_GetArrayItem(list, i);
        const hafm_onnx_tensor *t = hafm_onnx_initializer(o, cJSON_GetObjectItem(e, "name")->valuestring);
        assert_non_null(t);
        double sum = 0;
        for (int64_t k = 0; k < t->numel; k++) sum += t->data[k];
        double want = json_num(e, "sum");
        worst = fmax(worst, fabs(sum - want) / (fabs(want) + 1));
    }
    printf("OK (onnx initializers) %d tensors, max rel diff of sums %.3g\n", hafm_onnx_num_initializers(o), worst);
    assert_true(worst < 1e-5);
    hafm_onnx_free(o);
    cJSON_Delete(j);
}

static void test_tiny_net(void **state) {
    const char *p = golden_path("mdxnet", "mdx_tiny_seed3.onnx");
    size_t ni = 0, no = 0;
    float *in = p ? slurp(golden_path("mdxnet", "mdx_tiny_seed3.net_input.f32"), &ni) : NULL;
    float *want = in ? slurp(golden_path("mdxnet", "mdx_tiny_seed3.net_output.f32"), &no) : NULL;
    NEED(want);
    hafm_mdx *m = hafm_mdx_load(p);
    assert_non_null(m);
    assert_int_equal(hafm_mdx_dim_f(m), 64);
    assert_int_equal(ni, 4 * 64 * 32 * sizeof(float));
    float *out = malloc(ni);
    assert_int_equal(hafm_mdx_forward(m, out, in, 32), 0);
    double d = max_abs_diff_f(out, want, ni / 4), r = rms_diff_f(out, want, ni / 4);
    printf("OK (tiny net [1,4,64,32], %d steps) max_diff=%.3g rms=%.3g\n", hafm_mdx_steps(m), d, r);
    assert_true(d <= 3e-3 && r <= 4e-4);
    assert_int_equal(hafm_mdx_forward(m, out, in, 48), -1);   /* not a multiple of 32 */
    free(in); free(want); free(out);
    hafm_mdx_free(m);
}

static void check_separation(const char *model, int64_t N, int n_fft, int hop, const char *golden,
                             double tol_max, double tol_rms) {
    const char *p = golden_path("mdxnet", model);
    size_t nw = 0, ng = 0;
    char *wav = p ? slurp(golden_path("mdxnet", "input_clip_44k1_stereo_f32.wav"), &nw) : NULL;
    float *gold = wav ? slurp(golden_path("mdxnet", golden), &ng) : NULL;
    if (!gold) free(wav);
    NEED(gold);
    assert_int_equal(ng, (size_t)N * 2 * sizeof(float));
    hafm_mdx *m = hafm_mdx_load(p);
    assert_non_null(m);
    hafm_mdx_params prm;
    hafm_mdx_defaults(&prm);
    prm.n_fft = n_fft;
    prm.hop = hop;
    float *out = malloc((size_t)N * 2 * sizeof(float));
    float *planar = malloc((size_t)N * 2 * sizeof(float));
    double t0 = hafm_now();
    assert_int_equal(hafm_mdx_separate(m, &prm, out, (const float *)(wav + 44), N), 0);
    double secs = hafm_now() - t0;
    for (int64_t i = 0; i < N; i++) {
        planar[i] = out[2 * i];
        planar[N + i] = out[2 * i + 1];
    }
    double d = max_abs_diff_f(planar, gold, (size_t)N * 2), r = rms_diff_f(planar, gold, (size_t)N * 2);
    printf("OK (separation %s, %lld samples, %.2f s) max_diff=%.3g rms=%.3g\n", model, (long long)N, secs, d, r);
    assert_true(d <= tol_max && r <= tol_rms);
    free(out); free(planar); free(wav); free(gold);
    hafm_mdx_free(m);
}

static void test_tiny_separation(void **state) {
    check_separation("mdx_tiny_seed3.onnx", 11025, 256, 64, "mdx_tiny_seed3.sep_vocals.f32", 2e-5, 4e-6);
}

/* pushing the mixture in uneven pieces gives exactly the one-shot result */
static void test_stream_pieces(void **state) {
    const char *p = golden_path("mdxnet", "mdx_tiny_seed3.onnx");
    size_t nw = 0;
    char *wav = p ? slurp(golden_path("mdxnet", "input_clip_44k1_stereo_f32.wav"), &nw) : NULL;
    NEED(wav);
    const int64_t N = 20000;
    const float *mix = (const float *)(wav + 44);
    hafm_mdx *m = hafm_mdx_load(p);
    assert_non_null(m);
    hafm_mdx_params prm;
    hafm_mdx_defaults(&prm);
    prm.n_fft = 256;
    prm.hop = 64;
    float *whole = malloc((size_t)N * 2 * sizeof(float)), *pieces = malloc((size_t)N * 2 * sizeof(float));
    assert_int_equal(hafm_mdx_separate(m, &prm, whole, mix, N), 0);
    hafm_mdx_stream *s = hafm_mdx_stream_new(m, &prm);
    assert_non_null(s);
    int64_t at = 0, got = 0, sizes[] = { 1, 999, 3000, 17, 4000 };
    const float *o;
    for (int k = 0; at < N; k = (k + 1) % 5) {
        int64_t n = sizes[k] < N - at ? sizes[k] : N - at;
        int64_t r = hafm_mdx_stream_push(s, mix + 2 * at, n, 0, &o);
        assert_true(r >= 0 && got + r <= N);
        if (r > 0) memcpy(pieces + 2 * got, o, (size_t)r * 2 * sizeof(float));
        got += r;
        at += n;
        assert_true(at - got <= 1984 + 256);   /* the output lags by at most a chunk (+ trim) */
    }
    int64_t r = hafm_mdx_stream_push(s, NULL, 0, 1, &o);
    assert_int_equal(got + r, N);
    if (r > 0) memcpy(pieces + 2 * got, o, (size_t)r * 2 * sizeof(float));
    assert_int_equal(hafm_mdx_stream_push(s, mix, 1, 1, &o), -1);   /* after the end */
    double d = max_abs_diff_f(whole, pieces, (size_t)N * 2);
    printf("OK (streamed in pieces vs one push) max_diff=%.3g\n", d);
    assert_true(d == 0);
    hafm_mdx_stream_free(s);
    hafm_mdx_free(m);
    free(whole); free(pieces); free(wav);
}

/* 3 channels at 22.05 kHz in pieces: pairs (0,1) and (2,2), resampled to 44.1 kHz and back;
 * every frame comes out once, aligned, and vocal + accompaniment = mixture */
static void test_audio_any_format(void **state) {
    const char *p = golden_path("mdxnet", "mdx_tiny_seed3.onnx");
    NEED(p && access(p, R_OK) == 0);
    hafm_mdx *m = hafm_mdx_load(p);
    assert_non_null(m);
    hafm_mdx_params prm;
    hafm_mdx_defaults(&prm);
    prm.n_fft = 256;
    const int C = 3, rate = 22050;
    const int64_t N = 9000;
    float *x = malloc((size_t)N * C * sizeof(float));
    for (int64_t i = 0; i < N; i++)
        for (int c = 0; c < C; c++) x[i * C + c] = 0.3f * sinf(0.01f * (float)i * (c + 1)) + 0.05f * cosf(0.37f * (float)i);
    hafm_mdx_audio *a = hafm_mdx_audio_new(m, &prm, 0, C, rate);
    assert_non_null(a);
    float *v = malloc((size_t)N * C * sizeof(float)), *ac = malloc((size_t)N * C * sizeof(float));
    int64_t at = 0, got = 0;
    while (at <= N) {
        int64_t n = at + 1234 <= N ? 1234 : N - at;
        int final = at + n >= N;
        const float *pv, *pa;
        int64_t r = hafm_mdx_audio_push(a, x + at * C, n, final, &pv, &pa);
        assert_true(r >= 0 && got + r <= N);
        if (r > 0) {
            memcpy(v + got * C, pv, (size_t)r * C * sizeof(float));
            memcpy(ac + got * C, pa, (size_t)r * C * sizeof(float));
        }
        got += r;
        at += n;
        if (final) break;
    }
    assert_int_equal(got, N);
    double d = 0, e = 0;
    for (int64_t i = 0; i < N * C; i++) {
        d = fmax(d, fabs((double)v[i] + ac[i] - x[i]));
        e = fmax(e, fabs(v[i]));
    }
    printf("OK (3 channels at 22.05 kHz in pieces) max |v + a - x| = %.3g, max |v| = %.3g\n", d, e);
    /* accompaniment = x - vocal is rounded once: the identity holds to an ulp of the vocal
     * (the random tiny net is unscaled and outputs values of ~1e4) */
    assert_true(e > 0 && d <= 2 * FLT_EPSILON * e);
    hafm_mdx_audio_free(a);
    hafm_mdx_free(m);
    free(x); free(v); free(ac);
}

static void test_real_separation(void **state) {
    check_separation("mdx_vocals_seed3.onnx", 264600, 6144, 1024, "mdx_vocals_seed3.sep_vocals.f32", 3e-5, 3e-6);
}

static void test_bad_files(void **state) {
    char path[] = "/tmp/test_mdx_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a model at all", 18), 18);
    close(fd);
    assert_null(hafm_mdx_load(path));
    printf("OK (garbage refused: %s)\n", hafm_last_error());
    const char *p = golden_path("mdxnet", "mdx_tiny_seed3.onnx");
    size_t n = 0;
    char *buf = p ? slurp(p, &n) : NULL;
    if (buf) {   /* truncated model */
        FILE *f = fopen(path, "wb");
        fwrite(buf, 1, n / 2, f);
        fclose(f);
        assert_null(hafm_mdx_load(path));
        printf("OK (truncated refused: %s)\n", hafm_last_error());
        free(buf);
    }
    unlink(path);
    assert_null(hafm_mdx_load("/nonexistent/model.onnx"));
    /* a valid ONNX file of another architecture (Conv, Relu, Flatten, Gemm, Softmax) */
    char other[1024];
    const char *d = getenv("HAFM_DATA");
    snprintf(other, sizeof other, "%s/fadvsep/other_arch.onnx", d && *d ? d : "tests/data");
    hafm_onnx *o = hafm_onnx_load(other);
    assert_non_null(o);
    hafm_onnx_free(o);
    assert_null(hafm_mdx_load(other));
    printf("OK (other architecture refused: %s)\n", hafm_last_error());
    assert_non_null(strstr(hafm_last_error(), "not an MDX-Net"));
}

static void test_uvr_table(void **state) {
    const hafm_mdx_uvr_model *u = hafm_mdx_uvr_lookup("0ddfc0eb5792638ad5dc27850236c246");
    assert_non_null(u);
    assert_string_equal(u->name, "UVR_MDXNET_9482");
    assert_int_equal(u->n_fft, 6144);
    assert_true(u->compensate == 1.035);
    u = hafm_mdx_uvr_lookup("970b3f9492014d18fefeedfe4773cb42");
    assert_non_null(u);
    assert_int_equal(u->dim_f, 3072);
    assert_int_equal(u->n_fft, 7680);
    assert_true(u->compensate == 1.009);
    assert_null(hafm_mdx_uvr_lookup("00000000000000000000000000000000"));
    const char *big = golden_path("mdxnet", "mdx_vocals_seed3.onnx");
    NEED(big);
    char hex[33];
    /* the manifest's UVR hash of the golden model (last 10000 KiB of a 29.7 MB file) */
    assert_int_equal(hafm_mdx_uvr_hash(big, hex), 0);
    assert_string_equal(hex, "b9041bf5e9797525033acfdfbdf3fea2");
    assert_null(hafm_mdx_uvr_lookup(hex));
    /* a file under 10000 KiB is hashed whole (md5sum of the tiny model) */
    assert_int_equal(hafm_mdx_uvr_hash(golden_path("mdxnet", "mdx_tiny_seed3.onnx"), hex), 0);
    assert_string_equal(hex, "56067fd53e7d41de8a1c39c130f6e3fd");
    printf("OK (UVR table and MD5 of the last 10000 KiB)\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_onnx_reader),
        cmocka_unit_test(test_tiny_net),
        cmocka_unit_test(test_tiny_separation),
        cmocka_unit_test(test_stream_pieces),
        cmocka_unit_test(test_audio_any_format),
        cmocka_unit_test(test_real_separation),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_uvr_table),
    };
    return cmocka_run_group_tests_name("mdxnet", tests, NULL, NULL);
}
