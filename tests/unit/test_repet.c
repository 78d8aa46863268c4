/* test_repet.c - REPET-SIM: peak picking, median, and separation quality on synthetic stems
 * (a harmonic vocal with vibrato over a repeating accompaniment loop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hafm/repet.h"
#include "hafm/sdr.h"
#include "fadvsep_synth.h"
#include "fadvsep_util.h"

static void test_pick_peaks(void **state) {
    float sim[10] = { 0.1f, 0.9f, 0.8f, 0.2f, 1.0f, 0.3f, 0.95f, -0.5f, 0.7f, 0.7f };
    int idx[10];
    /* min distance 1: 4, then 6 (5 and 3 excluded), 1, 8 (ties -> lowest index) */
    int n = hafm_repet_pick_peaks(idx, sim, 10, 4, 1, 0.0f);
    assert_int_equal(n, 4);
    assert_int_equal(idx[0], 4);
    assert_int_equal(idx[1], 6);
    assert_int_equal(idx[2], 1);
    assert_int_equal(idx[3], 8);
    /* threshold removes small similarities; the count stops early */
    n = hafm_repet_pick_peaks(idx, sim, 10, 10, 0, 0.75f);
    assert_int_equal(n, 4);
    /* long rows cross block boundaries */
    float *big = malloc(1000 * sizeof(float));
    for (int i = 0; i < 1000; i++) big[i] = (float)((i * 37) % 1000) / 1000.0f;
    int out[100];
    n = hafm_repet_pick_peaks(out, big, 1000, 100, 3, 0.0f);
    for (int a = 0; a < n; a++)
        for (int b = 0; b < a; b++) assert_true(abs(out[a] - out[b]) > 3);
    assert_true(big[out[0]] >= big[out[1]]);
    free(big);
}

static void sisdr_stereo(double out[2], const float *ref, const float *est, int64_t n) {
    out[0] = 0.5 * (hafm_si_sdr(ref, est, n, 2, 0) + hafm_si_sdr(ref, est, n, 2, 1));
    out[1] = 0;
}

static void test_separation_quality(void **state) {
    const int rate = 44100;
    const int64_t n = 12 * rate;
    float *v = malloc((size_t)n * 2 * sizeof(float)), *a = malloc((size_t)n * 2 * sizeof(float));
    float *mix = malloc((size_t)n * 2 * sizeof(float));
    float *ev = malloc((size_t)n * 2 * sizeof(float)), *ea = malloc((size_t)n * 2 * sizeof(float));
    synth_stems(v, a, n, rate);
    for (int64_t i = 0; i < n * 2; i++) mix[i] = v[i] + a[i];
    double base_v[2], base_a[2], rv[2], ra[2], cv[2], ca[2];
    sisdr_stereo(base_v, v, mix, n);
    sisdr_stereo(base_a, a, mix, n);
    hafm_repet_params p;
    hafm_repet_defaults(&p);
    assert_int_equal(hafm_repet_sim(ev, ea, mix, n, 2, rate, &p), 0);
    sisdr_stereo(rv, v, ev, n);
    sisdr_stereo(ra, a, ea, n);
    double dsum = 0;
    for (int64_t i = 0; i < n * 2; i++) dsum = fmax(dsum, fabs(ev[i] + ea[i] - mix[i]));
    p.centre = 1.0;
    assert_int_equal(hafm_repet_sim(ev, ea, mix, n, 2, rate, &p), 0);
    sisdr_stereo(cv, v, ev, n);
    sisdr_stereo(ca, a, ea, n);
    printf("OK (repet-sim, 12 s synthetic stems) SI-SDR vocal: mixture %.2f dB, REPET-SIM %.2f dB, "
           "+centre %.2f dB; accompaniment: mixture %.2f, REPET-SIM %.2f, +centre %.2f; "
           "max |vocal+accomp-mix| %.3g\n", base_v[0], rv[0], cv[0], base_a[0], ra[0], ca[0], dsum);
    assert_true(rv[0] > base_v[0] + 3.0);
    assert_true(ra[0] > base_a[0]);
    assert_true(cv[0] > rv[0]);
    assert_true(dsum < 1e-5);
    free(v); free(a); free(mix); free(ev); free(ea);
}

static void test_mono_and_short(void **state) {
    float x[3000], voc[3000], acc[3000];
    for (int i = 0; i < 3000; i++) x[i] = sinf(i * 0.05f);
    hafm_repet_params p;
    hafm_repet_defaults(&p);
    p.centre = 1.0;   /* ignored for mono */
    assert_int_equal(hafm_repet_sim(voc, acc, x, 3000, 1, 8000, &p), 0);
    for (int i = 0; i < 3000; i++) assert_true(isfinite(voc[i]) && fabsf(voc[i] + acc[i] - x[i]) < 1e-5f);
    assert_int_equal(hafm_repet_sim(voc, acc, x, 0, 1, 8000, &p), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_peaks),
        cmocka_unit_test(test_separation_quality),
        cmocka_unit_test(test_mono_and_short),
    };
    return cmocka_run_group_tests_name("repet", tests, NULL, NULL);
}
