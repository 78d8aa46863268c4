/* test_musicfit.c - chord fit, beat fit and log-mel distance on synthetic audio whose answer is
 * known, labels parsing, and the loudness-matched mix of hafm-accompany. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hafm/musicfit.h"
#include "hafm/accompany.h"

#define SR 24000

/* A chord of equal-tempered sine partials (MIDI notes) with two harmonics, amplitude amp. */
static void add_chord(float *x, int64_t from, int64_t to, const int *notes, int n, float amp)
{
    for (int i = 0; i < n; i++) {
        double f = 440.0 * pow(2.0, (notes[i] - 69) / 12.0);
        for (int64_t t = from; t < to; t++)
            x[t] += amp * (float)(sin(2 * M_PI * f * t / SR) + 0.3 * sin(4 * M_PI * f * t / SR));
    }
}

static void test_chord_fit(void **state)
{
    (void)state;
    int64_t n = 4 * SR;
    float *x = calloc((size_t)n, sizeof *x);
    const int cmaj[] = { 60, 64, 67 }, gmaj[] = { 55, 59, 62 };
    add_chord(x, 0, 2 * SR, cmaj, 3, 0.1f);
    add_chord(x, 2 * SR, n, gmaj, 3, 0.1f);
    hafm_chord_span right[] = { { 0, 2, 1u << 0 | 1u << 4 | 1u << 7 }, { 2, 4, 1u << 7 | 1u << 11 | 1u << 2 } };
    /* F# major and C# major: no pitch class in common with the chords played */
    hafm_chord_span wrong[] = { { 0, 2, 1u << 6 | 1u << 10 | 1u << 1 }, { 2, 4, 1u << 1 | 1u << 5 | 1u << 8 } };
    hafm_song_labels l = { right, 2, NULL, 0 };
    int used;
    double good = hafm_chord_fit(x, n, SR, &l, &used);
    assert_int_equal(used, 2);
    l.chords = wrong;
    double bad = hafm_chord_fit(x, n, SR, &l, &used);
    printf("OK (chord fit) played chords %.3f, disjoint chords %.3f\n", good, bad);
    assert_true(good > 0.9);
    assert_true(bad < 0.1);
    /* spans beyond the audio are left out; silence gives NaN */
    hafm_chord_span late[] = { { 5, 6, 1 } };
    l.chords = late;
    l.n_chords = 1;
    assert_true(isnan(hafm_chord_fit(x, n, SR, &l, &used)));
    assert_int_equal(used, 0);
    free(x);
}

static void test_beat_fit(void **state)
{
    (void)state;
    int64_t n = 8 * SR;
    float *x = calloc((size_t)n, sizeof *x);
    unsigned seed = 1;
    /* noise bursts of 30 ms on every beat (0.5 s apart, starting at 0.25 s) */
    for (double b = 0.25; b < 8; b += 0.5)
        for (int64_t t = (int64_t)(b * SR); t < (int64_t)((b + 0.03) * SR) && t < n; t++) {
            seed = seed * 1103515245u + 12345u;
            x[t] = 0.5f * ((float)(seed >> 8) / (float)(1u << 24) - 0.5f);
        }
    double beats[16], off[16];
    for (int i = 0; i < 16; i++) {
        beats[i] = 0.25 + 0.5 * i;
        off[i] = 0.5 * i;   /* half a beat away */
    }
    hafm_song_labels l = { NULL, 0, beats, 16 };
    int used;
    double on = hafm_beat_fit(x, n, SR, &l, 0.05, &used);
    assert_int_equal(used, 16);
    l.beats = off;
    double between = hafm_beat_fit(x, n, SR, &l, 0.05, &used);
    printf("OK (beat fit) on the beats %.2f, between them %.2f\n", on, between);
    assert_true(on > 3.0);
    assert_true(between < 0.5);
    free(x);
}

static void test_mel_distance(void **state)
{
    (void)state;
    int64_t n = 2 * SR;
    float *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
    const int c[] = { 60, 64, 67 }, d[] = { 62, 66, 69 };
    add_chord(a, 0, n, c, 3, 0.1f);
    add_chord(b, 0, n, d, 3, 0.1f);
    double same = hafm_mel_distance(a, a, n, SR), other = hafm_mel_distance(a, b, n, SR);
    /* half the amplitude: every band above the floor is log10(4) = 0.602 lower */
    for (int64_t t = 0; t < n; t++) b[t] = 0.5f * a[t];
    double half = hafm_mel_distance(a, b, n, SR);
    printf("OK (mel distance) same %.3g, other chord %.3f, half amplitude %.3f\n", same, other, half);
    assert_true(same == 0);
    assert_true(other > 0.1);
    assert_true(half > 0.1 && half <= 0.603);
    free(a);
    free(b);
}

static void test_labels(void **state)
{
    (void)state;
    char path[] = "/tmp/test_musicfit.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *json = "{\"beats\":[0.5,1.0],\"chords\":[{\"start\":0,\"end\":1.5,\"pitch_classes\":[0,4,7]},"
                       "{\"start\":1.5,\"end\":3,\"pitch_classes\":[2,5,9,0]}]}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    hafm_song_labels l;
    assert_int_equal(hafm_labels_read(path, &l), 0);
    assert_int_equal(l.n_chords, 2);
    assert_int_equal(l.n_beats, 2);
    assert_int_equal(l.chords[0].pcs, 1u << 0 | 1u << 4 | 1u << 7);
    assert_int_equal(l.chords[1].pcs, 1u << 2 | 1u << 5 | 1u << 9 | 1u << 0);
    hafm_labels_free(&l);
    FILE *fp = fopen(path, "w");
    fputs("{\"beats\":[0.5],\"chords\":[{\"start\":2,\"end\":1,\"pitch_classes\":[0]}]}", fp);
    fclose(fp);
    assert_int_equal(hafm_labels_read(path, &l), -1);
    fp = fopen(path, "w");
    fputs("{\"beats\":", fp);
    fclose(fp);
    assert_int_equal(hafm_labels_read(path, &l), -1);
    unlink(path);
    assert_int_equal(hafm_labels_read(path, &l), -1);
}

/* The mix puts the accompaniment balance_db below the vocal (measured again by libebur128) and
 * keeps its peak under 0.99. */
static void test_mix_loudness(void **state)
{
    (void)state;
    hafm_audio v = { calloc(3 * 44100 * 2, sizeof(float)), 3 * 44100, 2, 44100 };
    hafm_audio a = { calloc(3 * SR, sizeof(float)), 3 * SR, 1, SR };
    for (int64_t t = 0; t < v.frames; t++) v.data[2 * t] = v.data[2 * t + 1] = 0.2f * (float)sin(2 * M_PI * 220 * t / 44100);
    for (int64_t t = 0; t < a.frames; t++) a.data[t] = 0.01f * (float)sin(2 * M_PI * 330 * t / SR);
    hafm_audio mix;
    hafm_accompany_report rep;
    assert_int_equal(hafm_mix_loudness(&v, &a, 2.0, &mix, &rep), 0);
    assert_int_equal(mix.sample_rate, 44100);
    assert_int_equal(mix.channels, 2);
    assert_int_equal(mix.frames, v.frames);
    /* the accompaniment alone: the mix minus the vocal (no peak limiting happened here) */
    assert_true(rep.peak_gain_db == 0);
    hafm_audio acc = { malloc((size_t)mix.frames * 2 * sizeof(float)), mix.frames, 2, 44100 };
    double peak = 0;
    for (int64_t i = 0; i < mix.frames * 2; i++) {
        acc.data[i] = mix.data[i] - v.data[i];
        peak = fmax(peak, fabs(mix.data[i]));
    }
    double lv, la;
    assert_int_equal(hafm_loudness(&v, &lv), 0);
    assert_int_equal(hafm_loudness(&acc, &la), 0);
    printf("OK (mix) vocal %.2f LUFS, accompaniment %.2f LUFS: %.3f LU apart (2 asked), peak %.3f\n", lv, la, lv - la, peak);
    assert_true(fabs(lv - la - 2.0) < 0.1);
    hafm_audio_free(&mix);
    /* a loud pair is limited to 0.99 */
    for (int64_t i = 0; i < v.frames * 2; i++) v.data[i] *= 4.9f;
    assert_int_equal(hafm_mix_loudness(&v, &a, -3.0, &mix, &rep), 0);
    peak = 0;
    for (int64_t i = 0; i < mix.frames * 2; i++) peak = fmax(peak, fabs(mix.data[i]));
    printf("OK (mix) limited peak %.4f, gain %.2f dB\n", peak, rep.peak_gain_db);
    assert_true(peak <= 0.99 + 1e-6);
    assert_true(rep.peak_gain_db < 0);
    hafm_audio_free(&mix);
    hafm_audio_free(&acc);
    hafm_audio_free(&v);
    hafm_audio_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chord_fit),   cmocka_unit_test(test_beat_fit),
        cmocka_unit_test(test_mel_distance), cmocka_unit_test(test_labels),
        cmocka_unit_test(test_mix_loudness),
    };
    return cmocka_run_group_tests_name("musicfit", tests, NULL, NULL);
}
