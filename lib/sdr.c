/* sdr.c - museval v4 SDR, uSDR and SI-SDR (see hafm/sdr.h). */
#include "hafm/sdr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t hafm_sdr_nframes(int64_t n, int64_t window, int64_t hop) {
    if (n <= 0 || window <= 0 || hop <= 0) return 0;
    if (window >= n) return 1;
    return (n - window + hop) / hop;
}

/* museval's _any_source_silent on one frame of one signal */
static int frame_silent(const float *x, int64_t a, int64_t b, int channels) {
    for (int64_t i = a; i < b; i++) {
        double s = 0;
        for (int c = 0; c < channels; c++) s += x[i * channels + c];
        if (s != 0) return 0;
    }
    return 1;
}

static double safe_db(double num, double den) {
    if (den == 0) return INFINITY;
    return 10.0 * log10(num / den);
}

int64_t hafm_sdr_frames(double *out, const float *refs, const float *ests, int nsrc, int64_t n,
                        int channels, int64_t window, int64_t hop) {
    if (nsrc < 1 || n < 1 || channels < 1 || window < 1 || hop < 1) {
        hafm_error("SDR: empty signals or bad frame size");
        return -1;
    }
    int64_t nwin = hafm_sdr_nframes(n, window, hop);
    size_t plane = (size_t)n * channels;
    for (int64_t t = 0; t < nwin; t++) {
        int64_t a = t * hop, b = a + window < n ? a + window : n;
        int silent = 0;
        for (int j = 0; j < nsrc && !silent; j++)
            silent = frame_silent(refs + j * plane, a, b, channels) ||
                     frame_silent(ests + j * plane, a, b, channels);
        for (int j = 0; j < nsrc; j++) {
            if (silent) {
                out[j * nwin + t] = NAN;
                continue;
            }
            const float *s = refs + j * plane, *e = ests + j * plane;
            double num = 0, den = 0;
            for (int64_t i = a * channels; i < b * channels; i++) {
                double d = (double)e[i] - (double)s[i];
                num += (double)s[i] * s[i];
                den += d * d;
            }
            out[j * nwin + t] = safe_db(num, den);
        }
    }
    return nwin;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double hafm_nanmedian(const double *x, int64_t n) {
    double *v = hafm_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(x[i])) v[m++] = x[i];
    double med = NAN;
    if (m > 0) {
        qsort(v, (size_t)m, sizeof(double), cmp_double);
        med = m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
    }
    free(v);
    return med;
}

double hafm_usdr(const float *ref, const float *est, int64_t n, int channels) {
    const double delta = 1e-7;
    double num = 0, den = 0;
    for (int64_t i = 0; i < n * channels; i++) {
        double d = (double)ref[i] - (double)est[i];
        num += (double)ref[i] * ref[i];
        den += d * d;
    }
    return 10.0 * log10((delta + num) / (delta + den));
}

double hafm_si_sdr(const float *ref, const float *est, int64_t n, int channels, int channel) {
    double ms = 0, me = 0;
    for (int64_t i = 0; i < n; i++) {
        ms += ref[i * channels + channel];
        me += est[i * channels + channel];
    }
    ms /= (double)n;
    me /= (double)n;
    double ss = 0, se = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = ref[i * channels + channel] - ms, e = est[i * channels + channel] - me;
        ss += s * s;
        se += s * e;
    }
    if (ss == 0) return NAN;
    double a = se / ss, num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = a * (ref[i * channels + channel] - ms), e = est[i * channels + channel] - me;
        num += t * t;
        den += (t - e) * (t - e);
    }
    return safe_db(num, den);
}
