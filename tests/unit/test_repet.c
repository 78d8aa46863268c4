/* test_repet.c - REPET-SIM: peak picking, median, and separation quality on synthetic stems
 * (a harmonic vocal with vibrato over a repeating accompaniment loop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
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

/* Collects what a hafm_repet_stream emits; checks it comes in order and within the segment. */
typedef struct {
    float *v, *a;
    int64_t n, calls, max_call;
} collected;

static void collect(void *ctx, const float *v, const float *a, int64_t n) {
    collected *c = ctx;
    memcpy(c->v + c->n * 2, v, (size_t)n * 2 * sizeof(float));
    memcpy(c->a + c->n * 2, a, (size_t)n * 2 * sizeof(float));
    c->n += n;
    c->calls++;
    if (n > c->max_call) c->max_call = n;
}

/* Pushes mix [n][2] in uneven pieces. */
static hafm_repet_stream *run_stream(collected *c, const float *mix, int64_t n, int rate,
                                     const hafm_repet_params *p) {
    hafm_repet_stream *st = hafm_repet_stream_new(p, 2, rate, collect, c);
    assert_non_null(st);
    for (int64_t i = 0, piece = 1; i < n; i += piece, piece = piece * 3 + 7) {
        if (piece > n - i) piece = n - i;
        assert_int_equal(hafm_repet_stream_push(st, mix + i * 2, piece), 0);
    }
    assert_int_equal(hafm_repet_stream_finish(st), 0);
    assert_int_equal(c->n, n);
    return st;
}

/* A song shorter than one segment is one whole-song separation, bit for bit. */
static void test_stream_short_is_whole_song(void **state) {
    const int rate = 8000;
    const int64_t n = 20 * rate;
    float *v = malloc((size_t)n * 2 * sizeof(float)), *a = malloc((size_t)n * 2 * sizeof(float));
    float *mix = malloc((size_t)n * 2 * sizeof(float));
    float *wv = malloc((size_t)n * 2 * sizeof(float)), *wa = malloc((size_t)n * 2 * sizeof(float));
    synth_stems(v, a, n, rate);
    for (int64_t i = 0; i < n * 2; i++) mix[i] = v[i] + a[i];
    hafm_repet_params p;
    hafm_repet_defaults(&p);
    assert_int_equal(hafm_repet_sim(wv, wa, mix, n, 2, rate, &p), 0);
    collected c = { v, a, 0, 0, 0 };   /* the stems are not needed any more: reuse them */
    hafm_repet_stream *st = run_stream(&c, mix, n, rate, &p);
    assert_int_equal(c.calls, 1);
    assert_memory_equal(c.v, wv, (size_t)n * 2 * sizeof(float));
    assert_memory_equal(c.a, wa, (size_t)n * 2 * sizeof(float));
    /* the stream takes the next song; block 0 is the whole song too */
    hafm_repet_stream_free(st);
    p.block = 0;
    c.n = c.calls = 0;
    st = run_stream(&c, mix, n, rate, &p);
    assert_memory_equal(c.v, wv, (size_t)n * 2 * sizeof(float));
    assert_int_equal(hafm_repet_stream_finish(st), -1);   /* no samples */
    hafm_repet_stream_free(st);
    printf("OK (repet stream, 20 s < 40 s block) identical to whole-song: max_diff=0\n");
    free(v); free(a); free(mix); free(wv); free(wa);
}

/* A long song in 20 s segments: bounded input buffer and output pieces, vocal + accompaniment =
 * mixture, quality close to whole-song processing and well above the mixture. */
static void test_stream_long_bounded(void **state) {
    const int rate = 8000;
    const int64_t n = 95 * rate;
    float *v = malloc((size_t)n * 2 * sizeof(float)), *a = malloc((size_t)n * 2 * sizeof(float));
    float *mix = malloc((size_t)n * 2 * sizeof(float));
    float *wv = malloc((size_t)n * 2 * sizeof(float));
    collected c = { malloc((size_t)n * 2 * sizeof(float)), malloc((size_t)n * 2 * sizeof(float)), 0, 0, 0 };
    synth_stems(v, a, n, rate);
    for (int64_t i = 0; i < n * 2; i++) mix[i] = v[i] + a[i];
    hafm_repet_params p;
    hafm_repet_defaults(&p);
    p.block = 20;
    hafm_repet_stream *st = run_stream(&c, mix, n, rate, &p);
    int64_t seg, ovl;
    hafm_repet_stream_geometry(st, &seg, &ovl);
    assert_int_equal(seg, 20 * rate);
    assert_int_equal(ovl, seg / 6);
    int64_t bound = seg + (seg - ovl) / 2;
    int64_t peak = hafm_repet_stream_peak_frames(st);
    assert_true(peak <= bound);
    assert_true(c.max_call <= bound);
    assert_true(c.calls >= (n - seg) / (seg - ovl));
    hafm_repet_stream_free(st);
    double dsum = 0;
    for (int64_t i = 0; i < n * 2; i++) dsum = fmax(dsum, fabs(c.v[i] + c.a[i] - mix[i]));
    assert_true(dsum < 1e-5);
    p.block = 0;
    assert_int_equal(hafm_repet_sim(wv, NULL, mix, n, 2, rate, &p), 0);
    double base[2], blk[2], whole[2], agree[2];
    sisdr_stereo(base, v, mix, n);
    sisdr_stereo(blk, v, c.v, n);
    sisdr_stereo(whole, v, wv, n);
    sisdr_stereo(agree, wv, c.v, n);
    printf("OK (repet stream, 95 s at 8 kHz, 20 s blocks, %d calls, peak %lld <= %lld frames) vocal SI-SDR: "
           "mixture %.2f dB, whole-song %.2f dB, blocks %.2f dB; blocks vs whole-song %.1f dB\n",
           (int)c.calls, (long long)peak, (long long)bound,
           base[0], whole[0], blk[0], agree[0]);
    assert_true(blk[0] > base[0] + 3.0);
    free(v); free(a); free(mix); free(wv); free(c.v); free(c.a);
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
        cmocka_unit_test(test_stream_short_is_whole_song),
        cmocka_unit_test(test_stream_long_bounded),
    };
    return cmocka_run_group_tests_name("repet", tests, NULL, NULL);
}
