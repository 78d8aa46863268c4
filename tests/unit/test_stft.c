/* test_stft.c - STFT/iSTFT conventions: a direct DFT, perfect reconstruction, and the MDX-Net
 * golden chunk-0 spectrogram made with torch.stft (../shared/golden/mdxnet). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hafm/stft.h"
#include "fadvsep_util.h"

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* center=True, reflect padding: against a direct DFT of the padded frames (double precision) */
static void test_direct_dft(void **state) {
    const int nfft = 16, hop = 4, n = 37, ch = 2;
    float x[37 * 2];
    unsigned seed = 1;
    for (int i = 0; i < n * ch; i++) x[i] = frand(&seed);
    hafm_stft s;
    assert_int_equal(hafm_stft_init(&s, nfft, nfft, hop, NULL), 0);
    int64_t T = hafm_stft_frames(&s, n, 1);
    assert_int_equal(T, 1 + n / hop);
    float *spec = malloc((size_t)T * s.nbins * 2 * sizeof(float));
    hafm_stft_forward(&s, spec, x + 1, n, ch, 1);   /* right channel */
    double dmax = 0;
    for (int t = 0; t < T; t++)
        for (int k = 0; k < s.nbins; k++) {
            double re = 0, im = 0;
            for (int m = 0; m < nfft; m++) {
                int j = t * hop + m - nfft / 2;
                if (j < 0) j = -j;
                if (j >= n) j = 2 * (n - 1) - j;
                double w = 0.5 - 0.5 * cos(2 * M_PI * m / nfft);
                re += w * x[j * ch + 1] * cos(2 * M_PI * k * m / nfft);
                im -= w * x[j * ch + 1] * sin(2 * M_PI * k * m / nfft);
            }
            dmax = fmax(dmax, fabs(re - spec[(t * s.nbins + k) * 2]));
            dmax = fmax(dmax, fabs(im - spec[(t * s.nbins + k) * 2 + 1]));
        }
    printf("OK (stft vs direct DFT) max_diff=%.3g\n", dmax);
    assert_true(dmax < 1e-5);
    free(spec);
    hafm_stft_free(&s);
}

static void test_roundtrip(void **state) {
    const int n = 10000;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    unsigned seed = 7;
    for (int i = 0; i < n; i++) x[i] = frand(&seed);
    int sizes[][3] = { { 512, 512, 128 }, { 2048, 2048, 512 }, { 6144, 6144, 1024 }, { 512, 400, 160 } };
    for (int c = 0; c < 4; c++) {
        hafm_stft s;
        float w[6144];
        hafm_window_sqrt_hann(w, sizes[c][1], 1);
        assert_int_equal(hafm_stft_init(&s, sizes[c][0], sizes[c][1], sizes[c][2], c == 1 ? w : NULL), 0);
        int64_t T = hafm_stft_frames(&s, n, 1);
        float *spec = malloc((size_t)T * s.nbins * 2 * sizeof(float));
        hafm_stft_forward(&s, spec, x, n, 1, 1);
        hafm_stft_inverse(&s, y, 1, spec, T, n, 1);
        double d = max_abs_diff_f(x, y, n);
        printf("OK (istft(stft) n_fft %d win %d hop %d) max_diff=%.3g\n", sizes[c][0], sizes[c][1], sizes[c][2], d);
        assert_true(d < 2e-6);
        free(spec);
        hafm_stft_free(&s);
    }
    free(x);
    free(y);
}

static void test_frames_and_errors(void **state) {
    hafm_stft s;
    assert_int_equal(hafm_stft_init(&s, 512, 400, 160, NULL), 0);
    assert_int_equal(hafm_stft_frames(&s, 399, 0), 0);
    assert_int_equal(hafm_stft_frames(&s, 400, 0), 1);
    assert_int_equal(hafm_stft_frames(&s, 48000, 0), 298);
    hafm_stft_free(&s);
    assert_int_equal(hafm_stft_init(&s, 512, 513, 160, NULL), -1);
    assert_int_equal(hafm_stft_init(&s, 512, 512, 0, NULL), -1);
}

/* chunk 0 of the UVR pipeline is [3072 zeros | first 258048 samples of the clip] */
static void test_mdx_golden_chunk0(void **state) {
    const char *wav = golden_path("mdxnet", "input_clip_44k1_stereo_f32.wav");
    size_t nb = 0, ng = 0;
    char *raw = wav ? slurp(wav, &nb) : NULL;
    float *gold = raw ? slurp(golden_path("mdxnet", "mdx_vocals_seed3.stft_chunk0_frames.f32"), &ng) : NULL;
    if (!gold) { free(raw); fprintf(stderr, "SKIP: HAFM_SHARED golden/mdxnet missing\n"); skip(); }
    const int chunk = 261120, trim = 3072, dim_f = 2048;
    const float *clip = (const float *)(raw + 44);
    float *x = calloc((size_t)chunk * 2, sizeof(float));
    memcpy(x + trim * 2, clip, (size_t)(chunk - trim) * 2 * sizeof(float));
    hafm_stft s;
    assert_int_equal(hafm_stft_init(&s, 6144, 6144, 1024, NULL), 0);
    int64_t T = hafm_stft_frames(&s, chunk, 1);
    assert_int_equal(T, 256);
    float *spec = malloc((size_t)T * s.nbins * 2 * sizeof(float));
    const int sel[12] = { 0, 1, 2, 3, 126, 127, 128, 129, 252, 253, 254, 255 };
    double dmax = 0, ref = 0;
    for (int c = 0; c < 2; c++) {
        hafm_stft_forward(&s, spec, x + c, chunk, 2, 1);
        for (int part = 0; part < 2; part++)
            for (int k = 0; k < dim_f; k++)
                for (int j = 0; j < 12; j++) {
                    float g = gold[((size_t)(2 * c + part) * dim_f + k) * 12 + j];
                    float v = spec[((size_t)sel[j] * s.nbins + k) * 2 + part];
                    dmax = fmax(dmax, fabs((double)g - v));
                    ref = fmax(ref, fabs((double)g));
                }
    }
    printf("OK (stft vs torch.stft, mdx chunk 0) max_diff=%.3g (max |X| %.3g)\n", dmax, ref);
    assert_true(dmax < 1e-5 * ref);
    free(spec); free(x); free(raw); free(gold);
    hafm_stft_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_dft),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_frames_and_errors),
        cmocka_unit_test(test_mdx_golden_chunk0),
    };
    return cmocka_run_group_tests_name("stft", tests, NULL, NULL);
}
