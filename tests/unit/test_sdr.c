/* test_sdr.c - museval v4 SDR, uSDR and SI-SDR against ../shared/golden/sdr (museval 0.4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hafm/sdr.h"
#include "fadvsep_util.h"

#define N 264600
#define C 2

static cJSON *expected;
static float *refs, *ests;

static int setup(void **state) {
    const char *p = golden_path("sdr", "expected_sdr.json");
    if (!p || !(expected = load_json(p))) return 0;
    size_t n1 = 0, n2 = 0;
    refs = slurp(golden_path("sdr", "refs_2src_264600x2.f32"), &n1);
    ests = slurp(golden_path("sdr", "ests_2src_264600x2.f32"), &n2);
    if (n1 != 2u * N * C * 4 || n2 != n1) expected = NULL;
    return 0;
}

#define NEED_GOLDEN() do { if (!expected) { fprintf(stderr, "SKIP: HAFM_SHARED golden/sdr missing\n"); skip(); } } while (0)

static void test_museval_frames(void **state) {
    NEED_GOLDEN();
    const cJSON *m = cJSON_GetObjectItem(expected, "museval_v4");
    int win = (int)json_num(m, "window"), hop = (int)json_num(m, "hop");
    double out[2 * 8];
    int64_t nwin = hafm_sdr_frames(out, refs, ests, 2, N, C, win, hop);
    const cJSON *fr = cJSON_GetObjectItem(m, "SDR_frames");
    assert_int_equal(nwin, cJSON_GetArraySize(cJSON_GetArrayItem(fr, 0)));
    double dmax = 0, dmed = 0;
    for (int j = 0; j < 2; j++) {
        for (int t = 0; t < nwin; t++)
            dmax = fmax(dmax, fabs(out[j * nwin + t] - cJSON_GetArrayItem(cJSON_GetArrayItem(fr, j), t)->valuedouble));
        double med = hafm_nanmedian(out + j * nwin, nwin);
        dmed = fmax(dmed, fabs(med - cJSON_GetArrayItem(cJSON_GetObjectItem(m, "SDR_median_over_frames"), j)->valuedouble));
    }
    printf("OK (museval v4 SDR) %lld frames max_diff frames=%.3g median=%.3g dB\n", (long long)nwin, dmax, dmed);
    assert_true(dmax < 1e-6 && dmed < 1e-6);
}

static void test_usdr_sisdr(void **state) {
    NEED_GOLDEN();
    double du = 0, ds = 0;
    for (int j = 0; j < 2; j++) {
        const float *r = refs + (size_t)j * N * C, *e = ests + (size_t)j * N * C;
        du = fmax(du, fabs(hafm_usdr(r, e, N, C) - cJSON_GetArrayItem(cJSON_GetObjectItem(expected, "uSDR_mdx21"), j)->valuedouble));
        for (int c = 0; c < C; c++) {
            double want = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(expected, "SI_SDR_per_channel"), j), c)->valuedouble;
            ds = fmax(ds, fabs(hafm_si_sdr(r, e, N, C, c) - want));
        }
    }
    printf("OK (uSDR, SI-SDR) max_diff uSDR=%.3g SI-SDR=%.3g dB\n", du, ds);
    assert_true(du < 1e-6 && ds < 1e-6);
}

static void test_silent_and_median(void **state) {
    float s[8] = { 1, 1, 0, 0, 0, 0, 1, -1 }, e[8] = { 1, 1, 1, 0, 0, 0, 0, 0 };
    double out[4];
    /* window 2, hop 2 -> frames {0,1} (fine), {2,3} (reference silent -> NaN) */
    assert_int_equal(hafm_sdr_frames(out, s, e, 1, 4, 2, 1, 1), 4);
    assert_true(isinf(out[0]) && out[0] > 0);   /* perfect estimate */
    assert_true(isnan(out[2]));                   /* silent reference frame */
    assert_true(isnan(out[3]));                   /* L = -R sums to 0: silent for museval */
    double v[5] = { NAN, 3, 1, NAN, 2 };
    assert_true(hafm_nanmedian(v, 5) == 2);
    double w[4] = { 4, 1, 3, 2 };
    assert_true(hafm_nanmedian(w, 4) == 2.5);
    double z[2] = { NAN, NAN };
    assert_true(isnan(hafm_nanmedian(z, 2)));
    assert_int_equal(hafm_sdr_nframes(264600, 44100, 44100), 6);
    assert_int_equal(hafm_sdr_nframes(264599, 44100, 44100), 5);
    assert_int_equal(hafm_sdr_nframes(100, 44100, 44100), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_museval_frames),
        cmocka_unit_test(test_usdr_sisdr),
        cmocka_unit_test(test_silent_and_median),
    };
    return cmocka_run_group_tests_name("sdr", tests, setup, NULL);
}
