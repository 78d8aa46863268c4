/* test_mfcc.c - MFCC / log-mel features against a float64 NumPy reference
 * (tests/ref/mfcc_ref.py), chroma of known chords, frame alignment with HuBERT, edge cases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hafm.h"
#include "hafm/mfcc.h"

static void *read_data(const char *rel, size_t *nbytes)
{
    char path[1024];
    const char *data = getenv("HAFM_DATA") ? getenv("HAFM_DATA") : "tests/data";
    snprintf(path, sizeof path, "%s/hubert/%s", data, rel);
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("%s: cannot open", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    void *buf = malloc(n);
    assert_int_equal(fread(buf, 1, n, fp), (size_t)n);
    fclose(fp);
    *nbytes = n;
    return buf;
}

/* Max |diff| relative to the reference's largest magnitude: float32 spectra and logs carry
 * about 1e-6 relative error; the features span up to ~100 (c0) and ~3 (after CMVN). */
static void compare(const char *input, const char *suffix, hafm_feat_kind kind, hafm_cmvn cmvn)
{
    char rel[256];
    size_t nb, rb;
    snprintf(rel, sizeof rel, "inputs/%s.f32", input);
    float *wav = read_data(rel, &nb);
    int64_t n = nb / 4, T;
    hafm_mfcc_config c;
    hafm_mfcc_config_default(&c, kind);
    c.cmvn = cmvn;
    hafm_mfcc *m = hafm_mfcc_new(&c);
    assert_non_null(m);
    float *f = hafm_mfcc_compute(m, wav, n, &T);
    assert_non_null(f);
    int dim = hafm_mfcc_dim(&c);
    assert_int_equal(T, (n - 400) / 320 + 1);
    snprintf(rel, sizeof rel, "mfcc/%s_%s.f32", input, suffix);
    float *ref = read_data(rel, &rb);
    assert_int_equal(rb, (size_t)T * dim * 4);
    double md = 0, scale = 0;
    for (int64_t i = 0; i < T * dim; i++) {
        md = fmax(md, fabs(f[i] - ref[i]));
        scale = fmax(scale, fabs(ref[i]));
    }
    int ok = md <= 1e-5 * scale;
    printf("# %s (%s %s, [%lld, %d]) max_diff=%.3g (max|ref| %.3g)\n", ok ? "OK" : "FAIL", input, suffix,
           (long long)T, dim, md, scale);
    assert_true(ok);
    if (kind == HAFM_FEAT_CHROMA) {   /* shares in [0, 1]: held to an absolute bound of their own */
        double mc = 0;
        for (int64_t t = 0; t < T; t++)
            for (int j = dim - 12; j < dim; j++) mc = fmax(mc, fabs(f[t * dim + j] - ref[t * dim + j]));
        printf("# %s (%s chroma shares) max_diff=%.3g\n", mc <= 1e-5 ? "OK" : "FAIL", input, mc);
        assert_true(mc <= 1e-5);
    }
    free(wav), free(f), free(ref);
    hafm_mfcc_free(m);
}

static void test_mfcc_reference(void **state)
{
    (void)state;
    compare("synth_1s", "mfcc", HAFM_FEAT_MFCC, HAFM_CMVN_NONE);
    compare("real_2s", "mfcc", HAFM_FEAT_MFCC, HAFM_CMVN_NONE);
    compare("synth_1s", "mfcc_cmvn", HAFM_FEAT_MFCC, HAFM_CMVN_MEANVAR);
    compare("real_2s", "mfcc_cmvn", HAFM_FEAT_MFCC, HAFM_CMVN_MEANVAR);
    compare("synth_1s", "logmel", HAFM_FEAT_LOGMEL, HAFM_CMVN_NONE);
    compare("real_2s", "logmel", HAFM_FEAT_LOGMEL, HAFM_CMVN_NONE);
    compare("synth_1s", "chroma", HAFM_FEAT_CHROMA, HAFM_CMVN_NONE);
    compare("real_2s", "chroma", HAFM_FEAT_CHROMA, HAFM_CMVN_NONE);
}

/* A C major triad (C4 E4 G4, equal amplitude) then an A minor one (A3 C4 E4): every frame's
 * chroma puts its three largest shares on the chord's pitch classes, and shares sum to 1. */
static void test_chroma_chords(void **state)
{
    (void)state;
    const double cmaj[3] = {261.63, 329.63, 392.00}, amin[3] = {220.00, 261.63, 329.63};
    const int cmaj_pc[3] = {0, 4, 7}, amin_pc[3] = {9, 0, 4};
    int64_t n = 32000, T;
    float *wav = malloc(n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        const double *f = i < n / 2 ? cmaj : amin;
        double v = 0;
        for (int k = 0; k < 3; k++) v += 0.2 * sin(2 * M_PI * f[k] * i / 16000);
        wav[i] = (float)v;
    }
    hafm_mfcc_config c;
    hafm_mfcc_config_default(&c, HAFM_FEAT_CHROMA);
    c.cmvn = HAFM_CMVN_NONE;
    assert_int_equal(hafm_mfcc_dim(&c), 25);
    hafm_mfcc *m = hafm_mfcc_new(&c);
    assert_non_null(m);
    float *f = hafm_mfcc_compute(m, wav, n, &T);
    assert_non_null(f);
    int checked = 0;
    double least_chord = 1, most_other = 0;
    for (int64_t t = 0; t < T; t++) {
        int64_t centre = t * 320 + 200;
        /* frames whose 4096-sample window straddles the chord change or the ends are skipped */
        if (centre < 2048 || centre + 2048 > n || llabs(centre - n / 2) < 2048) continue;
        const float *ch = f + t * 25 + 13;
        const int *pc = centre < n / 2 ? cmaj_pc : amin_pc;
        double sum = 0, chord = 1, other = 0;
        for (int k = 0; k < 12; k++) {
            sum += ch[k];
            int in = k == pc[0] || k == pc[1] || k == pc[2];
            if (in) chord = fmin(chord, ch[k]);
            else other = fmax(other, ch[k]);
        }
        assert_true(fabs(sum - 1) < 1e-5);
        assert_true(chord > other);
        least_chord = fmin(least_chord, chord), most_other = fmax(most_other, other);
        checked++;
    }
    printf("# OK (%d frames of C major / A minor: least chord share %.3f > largest other %.3f)\n", checked,
           least_chord, most_other);
    assert_true(checked > 40);
    free(wav), free(f);
    hafm_mfcc_free(m);
}

/* A 1 kHz tone: the log-mel maximum sits in the filter whose centre is nearest 1 kHz. */
static void test_tone_band(void **state)
{
    (void)state;
    int64_t n = 16000, T;
    float *wav = malloc(n * sizeof(float));
    for (int64_t i = 0; i < n; i++) wav[i] = 0.5f * sinf(2 * (float)M_PI * 1000.0f * i / 16000);
    hafm_mfcc_config c;
    hafm_mfcc_config_default(&c, HAFM_FEAT_LOGMEL);
    c.cmvn = HAFM_CMVN_NONE;
    hafm_mfcc *m = hafm_mfcc_new(&c);
    float *f = hafm_mfcc_compute(m, wav, n, &T);
    int best = 0;
    for (int j = 1; j < 80; j++)
        if (f[10 * 80 + j] > f[10 * 80 + best]) best = j;
    double lo = 1127.0 * log1p(20.0 / 700), hi = 1127.0 * log1p(7600.0 / 700);
    double center = 700.0 * (exp((lo + (hi - lo) * (best + 1) / 81) / 1127.0) - 1);
    double step = 700.0 * (exp((lo + (hi - lo) * (best + 2) / 81) / 1127.0) - 1) - center;
    printf("# OK (1 kHz tone peaks in mel band %d, centre %.0f Hz, spacing %.0f Hz)\n", best, center, step);
    assert_true(fabs(center - 1000.0) <= step);
    free(wav), free(f);
    hafm_mfcc_free(m);
}

/* A gain adds a constant to every log-mel energy, i.e. only to c0 and not to the deltas: after
 * mean normalisation the features of 0.3 x and x agree (up to the pre-emphasised DC floor). */
static void test_gain_invariance(void **state)
{
    (void)state;
    size_t nb;
    float *wav = read_data("inputs/real_2s.f32", &nb);
    int64_t n = nb / 4, T1, T2;
    float *quiet = malloc(nb);
    for (int64_t i = 0; i < n; i++) quiet[i] = 0.3f * wav[i];
    hafm_mfcc_config c;
    hafm_mfcc_config_default(&c, HAFM_FEAT_MFCC);
    hafm_mfcc *m = hafm_mfcc_new(&c);
    float *a = hafm_mfcc_compute(m, wav, n, &T1), *b = hafm_mfcc_compute(m, quiet, n, &T2);
    assert_int_equal(T1, T2);
    double md = 0;
    for (int64_t i = 0; i < T1 * 39; i++) md = fmax(md, fabs(a[i] - b[i]));
    printf("# OK (MFCC+CMVN of x and 0.3 x) max_diff=%.3g\n", md);
    assert_true(md < 1e-4);
    free(wav), free(quiet), free(a), free(b);
    hafm_mfcc_free(m);
}

static void test_edges(void **state)
{
    (void)state;
    hafm_mfcc_config c;
    hafm_mfcc_config_default(&c, HAFM_FEAT_MFCC);
    assert_int_equal(hafm_mfcc_dim(&c), 39);
    hafm_mfcc *m = hafm_mfcc_new(&c);
    float zeros[800] = {0};
    int64_t T;
    assert_null(hafm_mfcc_compute(m, zeros, 399, &T));
    assert_non_null(strstr(hafm_last_error(), "too short"));
    /* digital silence: finite features (log floor), CMVN leaves constant dimensions at 0 */
    float *f = hafm_mfcc_compute(m, zeros, 800, &T);
    assert_non_null(f);
    assert_int_equal(T, 2);
    for (int i = 0; i < 2 * 39; i++) assert_true(f[i] == 0.0f);
    free(f);
    hafm_mfcc_free(m);
    c.fmax = 9000;   /* above Nyquist */
    assert_null(hafm_mfcc_new(&c));
    printf("# OK (too short, silence, bad config)\n");
}

int main(void)
{
    hafm_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mfcc_reference),
        cmocka_unit_test(test_tone_band),
        cmocka_unit_test(test_chroma_chords),
        cmocka_unit_test(test_gain_invariance),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests_name("mfcc", tests, NULL, NULL);
}
