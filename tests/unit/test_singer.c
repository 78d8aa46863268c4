/* test_singer.c - the formant singer: formant peaks, pitch, vibrato, portamento, breath,
 * determinism. Measurements come from the rendered audio, not from the synthesiser's state. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fftw3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hafm/common.h"
#include "hafm/singer.h"

#define SR 24000

static double midi_hz(double p) { return 440.0 * pow(2.0, (p - 69) / 12); }

/* A steady singer: no vibrato, jitter, shimmer, drift or scoop, so spectra and pitch are clean. */
static void steady(hafm_singer_params *p, int voice)
{
    hafm_singer_defaults(p, voice);
    p->vibrato_depth = 0;
    p->vibrato_spread = 0;
    p->jitter = 0;
    p->shimmer = 0;
    p->drift = 0;
    p->scoop = 0;
    p->breathiness = 0;
}

static float *sing(const hafm_sung_note *notes, int n_notes, const hafm_singer_params *p, double seconds, int64_t *n)
{
    *n = (int64_t)(seconds * SR);
    float *out = malloc((size_t)*n * sizeof *out);
    assert_int_equal(hafm_singer_render(out, *n, SR, notes, n_notes, p), 0);
    return out;
}

/* Harmonic amplitudes (dB) of x[0..len) at multiples of f0: the spectral maximum within a third
 * of f0 of each harmonic, from a Hann-windowed FFT. Returns the count of harmonics below 4 kHz. */
static int harmonics(const float *x, int len, double f0, double *db)
{
    float *in = fftwf_alloc_real((size_t)len);
    fftwf_complex *spec = fftwf_alloc_complex((size_t)len / 2 + 1);
    fftwf_plan plan = fftwf_plan_dft_r2c_1d(len, in, spec, FFTW_ESTIMATE);
    for (int i = 0; i < len; i++)
        in[i] = x[i] * (float)(0.5 - 0.5 * cos(2 * M_PI * i / len));
    fftwf_execute(plan);
    int nh = (int)(4000 / f0);
    if (nh > 127)
        nh = 127;
    double bin_hz = (double)SR / len;
    for (int k = 1; k <= nh; k++) {
        int lo = (int)((k - 0.33) * f0 / bin_hz), hi = (int)((k + 0.33) * f0 / bin_hz);
        double best = 0;
        for (int b = lo; b <= hi; b++)
            best = fmax(best, hypot(spec[b][0], spec[b][1]));
        db[k] = 20 * log10(best + 1e-20);
    }
    fftwf_destroy_plan(plan);
    fftwf_free(in);
    fftwf_free(spec);
    return nh;
}

/* The local maximum of the harmonic envelope nearest to target (Hz). */
static double nearest_peak(const double *db, int nh, double f0, double target)
{
    double best = -1;
    for (int k = 1; k <= nh; k++) {
        int peak = (k == 1 || db[k] > db[k - 1]) && (k == nh || db[k] >= db[k + 1]);
        if (peak && (best < 0 || fabs(k * f0 - target) < fabs(best - target)))
            best = k * f0;
    }
    return best;
}

/* Each sustained vowel's spectrum peaks near its first two target formants. */
static void test_formant_peaks(void **state)
{
    (void)state;
    /* low fundamentals, so that the harmonics sample the formant envelope densely */
    static const struct { int voice; double pitch; } cases[] = {
        { HAFM_VOICE_BASS, 33 }, { HAFM_VOICE_TENOR, 36 }, { HAFM_VOICE_ALTO, 40 }, { HAFM_VOICE_SOPRANO, 40 } };
    double worst = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int v = 0; v < HAFM_VOWEL_COUNT; v++) {
            hafm_singer_params p;
            steady(&p, cases[c].voice);
            hafm_sung_note nt = { 0.2, 1.7, cases[c].pitch, 0.8, v, HAFM_CONS_NONE, 1 };
            int64_t n;
            float *x = sing(&nt, 1, &p, 2.0, &n);
            double f0 = midi_hz(cases[c].pitch), db[128];
            int nh = harmonics(x + SR / 2, SR, f0, db);
            double freq[5], bw[5], gain[5];
            hafm_singer_formants(cases[c].voice, v, freq, bw, gain);
            for (int f = 0; f < 2; f++) {
                /* a second formant 15 dB or more below the first (/u/ of most voices) is a
                 * shoulder on the first one's skirt in the table itself, not a peak */
                if (f == 1 && gain[1] - gain[0] < -15) {
                    printf("#   %s /%s/ F2 %4.0f Hz at %.0f dB: no separate peak expected\n",
                           hafm_voice_name(cases[c].voice), hafm_vowel_name(v), freq[1], gain[1]);
                    continue;
                }
                double peak = nearest_peak(db, nh, f0, freq[f]);
                double tol = fmax(1.05 * f0, 0.12 * freq[f]);
                double err = fabs(peak - freq[f]);
                printf("#   %s /%s/ F%d target %4.0f Hz, spectral peak %4.0f Hz (|diff| %3.0f, tol %3.0f)\n",
                       hafm_voice_name(cases[c].voice), hafm_vowel_name(v), f + 1, freq[f], peak, err, tol);
                assert_true(err <= tol);
                worst = fmax(worst, err / tol);
            }
            free(x);
        }
    }
    printf("# OK (formants) largest |peak - target| = %.2f of the tolerance\n", worst);
}

/* Frame-wise f0 by normalised autocorrelation with parabolic interpolation, in MIDI pitch. */
static int pitch_track(const float *x, int64_t n, double lo_hz, double hi_hz, double *pitch, double *times, int max)
{
    const int win = 480, hop = 120;   /* 20 ms: short against the vibrato period */
    int count = 0;
    int lag_lo = (int)(SR / hi_hz), lag_hi = (int)(SR / lo_hz) + 1;
    for (int64_t s = 0; s + win + lag_hi < n && count < max; s += hop) {
        double best = -1;
        int best_lag = 0;
        double r[2048];
        for (int lag = lag_lo - 1; lag <= lag_hi + 1; lag++) {
            double num = 0, e0 = 0, e1 = 0;
            for (int i = 0; i < win; i++) {
                num += (double)x[s + i] * x[s + i + lag];
                e0 += (double)x[s + i] * x[s + i];
                e1 += (double)x[s + i + lag] * x[s + i + lag];
            }
            r[lag] = num / sqrt(e0 * e1 + 1e-30);
        }
        for (int lag = lag_lo; lag <= lag_hi; lag++)
            if (r[lag] > best) {
                best = r[lag];
                best_lag = lag;
            }
        double a = r[best_lag - 1], b = r[best_lag], c = r[best_lag + 1];
        double shift = 0.5 * (a - c) / (a - 2 * b + c);
        double f0 = SR / (best_lag + shift);
        pitch[count] = 69 + 12 * log2(f0 / 440);
        times[count] = (s + win / 2.0) / SR;
        count++;
    }
    return count;
}

/* A held note with vibrato: mean pitch on the note, vibrato rate and depth as asked. */
static void test_pitch_and_vibrato(void **state)
{
    (void)state;
    hafm_singer_params p;
    steady(&p, HAFM_VOICE_TENOR);
    p.vibrato_rate = 5.5;
    p.vibrato_depth = 40;
    p.vibrato_delay = 0.25;
    hafm_sung_note nt = { 0.2, 3.4, 57, 0.8, HAFM_VOWEL_A, HAFM_CONS_NONE, 1 };
    int64_t n;
    float *x = sing(&nt, 1, &p, 3.6, &n);
    static double pitch[1000], times[1000];
    int m = pitch_track(x, n, 150, 320, pitch, times, 1000);
    /* vibrato is at full depth from onset + delay + fade-in; analyse 1.2 .. 3.2 s */
    double mean = 0, cents[1000];
    int k = 0;
    for (int i = 0; i < m; i++)
        if (times[i] >= 1.2 && times[i] <= 3.2)
            cents[k++] = 100 * (pitch[i] - 57), mean += pitch[i];
    mean /= k;
    double best_rate = 0, best_amp = 0;
    for (double f = 3; f <= 8; f += 0.005) {
        double re = 0, im = 0;
        for (int i = 0; i < k; i++) {
            double t = 1.2 + i * 120.0 / SR;
            re += cents[i] * cos(2 * M_PI * f * t);
            im += cents[i] * sin(2 * M_PI * f * t);
        }
        double amp = 2 * hypot(re, im) / k;
        if (amp > best_amp) {
            best_amp = amp;
            best_rate = f;
        }
    }
    printf("# OK (vibrato) mean pitch %.2f cents off, rate %.3f Hz (asked 5.5), depth %.1f cents (asked 40)\n",
           100 * (mean - 57), best_rate, best_amp);
    assert_true(fabs(100 * (mean - 57)) < 5);
    assert_true(fabs(best_rate - 5.5) < 0.1);
    assert_true(fabs(best_amp - 40) < 4);
    /* before the delay, no vibrato yet: the first 0.15 s of the note hold still */
    double lo = 1e9, hi = -1e9;
    for (int i = 0; i < m; i++)
        if (times[i] >= 0.32 && times[i] <= 0.42)
            lo = fmin(lo, pitch[i]), hi = fmax(hi, pitch[i]);
    printf("# OK (vibrato onset) swing before the delay %.1f cents\n", 100 * (hi - lo));
    assert_true(100 * (hi - lo) < 10);
    free(x);
}

/* Legato notes glide: the pitch leaves the first note at the second's onset and settles within
 * the portamento time; a phrase-start note does not glide. */
static void test_portamento(void **state)
{
    (void)state;
    hafm_singer_params p;
    steady(&p, HAFM_VOICE_TENOR);
    p.portamento = 0.08;
    hafm_sung_note nt[2] = { { 0.2, 1.2, 57, 0.8, HAFM_VOWEL_A, HAFM_CONS_NONE, 1 },
                             { 1.2, 2.2, 64, 0.8, HAFM_VOWEL_O, HAFM_CONS_NONE, 0 } };
    int64_t n;
    float *x = sing(nt, 2, &p, 2.4, &n);
    static double pitch[1000], times[1000];
    int m = pitch_track(x, n, 150, 400, pitch, times, 1000);
    double before = 0, mid = 0, after = 0;
    for (int i = 0; i < m; i++) {
        if (fabs(times[i] - 1.1) < 0.003)
            before = pitch[i];
        if (fabs(times[i] - 1.24) < 0.003)
            mid = pitch[i];
        if (fabs(times[i] - 1.45) < 0.003)
            after = pitch[i];
    }
    printf("# OK (portamento) %.2f before, %.2f mid-glide, %.2f after (notes 57 -> 64)\n", before, mid, after);
    assert_true(fabs(before - 57) < 0.1);
    assert_true(mid > 57.5 && mid < 63.5);
    assert_true(fabs(after - 64) < 0.1);
    free(x);
}

/* Silence before the breath, an inhalation quieter than the singing, and nothing long after. */
static void test_breath_and_silence(void **state)
{
    (void)state;
    hafm_singer_params p;
    hafm_singer_defaults(&p, HAFM_VOICE_ALTO);
    p.breath_level = 1;
    hafm_sung_note nt = { 1.0, 2.0, 64, 0.8, HAFM_VOWEL_E, HAFM_CONS_NONE, 1 };
    int64_t n;
    float *x = sing(&nt, 1, &p, 3.0, &n);
    double pre = 0, breath = 0, sung = 0, post = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = (double)i / SR, e = (double)x[i] * x[i];
        if (t < 0.5)
            pre = fmax(pre, fabs(x[i]));
        else if (t >= 0.65 && t < 0.92)
            breath += e / (0.27 * SR);
        else if (t >= 1.2 && t < 1.9)
            sung += e / (0.7 * SR);
        else if (t >= 2.6)
            post = fmax(post, fabs(x[i]));
    }
    double breath_db = 10 * log10(breath / sung);
    printf("# OK (breath) %.1f dB below the singing; peak before %.2g, 0.6 s after the release %.2g\n",
           -breath_db, pre, post);
    assert_true(pre == 0);
    assert_true(breath_db < -15 && breath_db > -60);
    assert_true(post < 1e-3 * sqrt(sung));
    free(x);
}

/* Louder singing is brighter (a shorter, more abrupt glottal closing): more of the energy above
 * 2 kHz at full voice than at a soft voice. */
static void test_loudness_brightness(void **state)
{
    (void)state;
    double high_db[2];
    static const double velocity[2] = { 0.35, 1.0 };
    for (int v = 0; v < 2; v++) {
        hafm_singer_params p;
        steady(&p, HAFM_VOICE_TENOR);
        hafm_sung_note nt = { 0.2, 0.95, 50, velocity[v], HAFM_VOWEL_A, HAFM_CONS_NONE, 1 };
        int64_t n;
        float *x = sing(&nt, 1, &p, 1.2, &n);
        double db[128], f0 = midi_hz(50), hi = 0, all = 0;
        int nh = harmonics(x + SR / 2, SR / 4, f0, db);
        for (int k = 1; k <= nh; k++) {
            double e = pow(10, db[k] / 10);
            all += e;
            hi += k * f0 > 2000 ? e : 0;
        }
        high_db[v] = 10 * log10(hi / all);
        free(x);
    }
    printf("# OK (brightness) energy above 2 kHz: %.1f dB soft, %.1f dB loud\n", high_db[0], high_db[1]);
    assert_true(high_db[1] > high_db[0] + 3);
}

/* Same notes and seed: the same samples; another seed: other samples. Bad input is refused. */
static void test_determinism_and_errors(void **state)
{
    (void)state;
    hafm_singer_params p;
    hafm_singer_defaults(&p, HAFM_VOICE_SOPRANO);
    hafm_sung_note nt[3] = { { 0.3, 0.8, 72, 0.8, HAFM_VOWEL_A, HAFM_CONS_PLOSIVE, 1 },
                             { 0.8, 1.3, 74, 0.8, HAFM_VOWEL_I, HAFM_CONS_FRICATIVE, 0 },
                             { 1.3, 2.0, 76, 0.8, HAFM_VOWEL_U, HAFM_CONS_NASAL, 0 } };
    int64_t n;
    float *a = sing(nt, 3, &p, 2.5, &n), *b = sing(nt, 3, &p, 2.5, &n);
    assert_memory_equal(a, b, (size_t)n * sizeof *a);
    p.seed++;
    float *c = sing(nt, 3, &p, 2.5, &n);
    assert_true(memcmp(a, c, (size_t)n * sizeof *a) != 0);
    hafm_sung_note bad[2] = { { 0.3, 1.0, 72, 0.8, 0, 0, 1 }, { 0.9, 1.3, 74, 0.8, 0, 0, 0 } };
    assert_int_equal(hafm_singer_render(a, n, SR, bad, 2, &p), -1);
    assert_non_null(strstr(hafm_last_error(), "overlaps"));
    assert_int_equal(hafm_singer_render(a, n, 4000, nt, 3, &p), -1);
    printf("# OK (determinism) %lld samples identical for one seed, different for the next\n", (long long)n);
    free(a);
    free(b);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formant_peaks),
        cmocka_unit_test(test_pitch_and_vibrato),
        cmocka_unit_test(test_portamento),
        cmocka_unit_test(test_breath_and_silence),
        cmocka_unit_test(test_loudness_brightness),
        cmocka_unit_test(test_determinism_and_errors),
    };
    return cmocka_run_group_tests_name("singer", tests, NULL, NULL);
}
