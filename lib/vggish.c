/* vggish.c - VGGish front end and network (see hafm/vggish.h). */
#include "hafm/vggish.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WIN 400
#define HOP 160
#define NFFT 512
#define MEL_LO 125.0
#define MEL_HI 7500.0
#define LOG_OFFSET 0.01

static double hz_to_mel(double f) { return 1127.0 * log(1.0 + f / 700.0); }

void hafm_vggish_mel_matrix(double *m) {
    const int nb = HAFM_VGGISH_FFT_BINS, nm = HAFM_VGGISH_BANDS;
    double edges[HAFM_VGGISH_BANDS + 2];
    double lo = hz_to_mel(MEL_LO), hi = hz_to_mel(MEL_HI);
    for (int i = 0; i < nm + 2; i++) edges[i] = lo + (hi - lo) * i / (nm + 1);
    for (int k = 0; k < nb; k++) {
        double mel = hz_to_mel(8000.0 * k / (nb - 1));
        for (int b = 0; b < nm; b++) {
            double l = edges[b], c = edges[b + 1], u = edges[b + 2];
            double lower = (mel - l) / (c - l), upper = (u - mel) / (u - c);
            double w = lower < upper ? lower : upper;
            m[k * nm + b] = k == 0 || w < 0 ? 0.0 : w;
        }
    }
}

int64_t hafm_vggish_num_examples(int64_t n) {
    int64_t frames = n >= WIN ? 1 + (n - WIN) / HOP : 0;
    return frames / HAFM_VGGISH_FRAMES;
}

/* Magnitudes of the 512-point DFT of a real frame, in double precision: the golden front end is
 * float64 and a float32 FFT's noise floor (~1e-6 of the peak) shows up through log(mel + 0.01)
 * on tonal input, where most bands are near zero. Iterative radix-2, twiddles precomputed. */
typedef struct { double cos_t[NFFT / 2], sin_t[NFFT / 2]; int rev[NFFT]; } fft512_tables;

static void fft512_init(fft512_tables *tb) {
    for (int k = 0; k < NFFT / 2; k++) {
        tb->cos_t[k] = cos(2.0 * M_PI * k / NFFT);
        tb->sin_t[k] = -sin(2.0 * M_PI * k / NFFT);
    }
    for (int i = 0; i < NFFT; i++) {
        int r = 0;
        for (int b = 1, j = i; b < NFFT; b <<= 1, j >>= 1) r = (r << 1) | (j & 1);
        tb->rev[i] = r;
    }
}

static void fft512_mag(const fft512_tables *tb, double *mag, const double *frame) {
    double re[NFFT], im[NFFT];
    for (int i = 0; i < NFFT; i++) {
        re[i] = frame[tb->rev[i]];
        im[i] = 0;
    }
    for (int len = 2; len <= NFFT; len <<= 1) {
        int half = len / 2, step = NFFT / len;
        for (int i = 0; i < NFFT; i += len)
            for (int j = 0; j < half; j++) {
                double wr = tb->cos_t[j * step], wi = tb->sin_t[j * step];
                double xr = re[i + j + half] * wr - im[i + j + half] * wi;
                double xi = re[i + j + half] * wi + im[i + j + half] * wr;
                re[i + j + half] = re[i + j] - xr;
                im[i + j + half] = im[i + j] - xi;
                re[i + j] += xr;
                im[i + j] += xi;
            }
    }
    for (int k = 0; k < HAFM_VGGISH_FFT_BINS; k++) mag[k] = hypot(re[k], im[k]);
}

/* xf or xd: float or double samples */
static int64_t logmel(float *out, const float *xf, const double *xd, int64_t n) {
    int64_t ex = hafm_vggish_num_examples(n);
    if (ex == 0) return 0;
    int64_t frames = ex * HAFM_VGGISH_FRAMES;
    double *mel = hafm_xmalloc((size_t)HAFM_VGGISH_FFT_BINS * HAFM_VGGISH_BANDS * sizeof(double));
    fft512_tables *tb = hafm_xmalloc(sizeof *tb);
    double window[WIN];
    for (int i = 0; i < WIN; i++) window[i] = 0.5 - 0.5 * cos(2.0 * M_PI * i / WIN);
    hafm_vggish_mel_matrix(mel);
    fft512_init(tb);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < frames; t++) {
        double frame[NFFT] = { 0 }, mag[HAFM_VGGISH_FFT_BINS], acc[HAFM_VGGISH_BANDS] = { 0 };
        for (int i = 0; i < WIN; i++)
            frame[i] = (xf ? (double)xf[t * HOP + i] : xd[t * HOP + i]) * window[i];
        fft512_mag(tb, mag, frame);
        for (int k = 1; k < HAFM_VGGISH_FFT_BINS; k++) {
            const double *row = mel + (size_t)k * HAFM_VGGISH_BANDS;
            for (int b = 0; b < HAFM_VGGISH_BANDS; b++) acc[b] += mag[k] * row[b];
        }
        for (int b = 0; b < HAFM_VGGISH_BANDS; b++)
            out[t * HAFM_VGGISH_BANDS + b] = (float)log(acc[b] + LOG_OFFSET);
    }
    free(tb);
    free(mel);
    return ex;
}

int64_t hafm_vggish_logmel(float *out, const float *x, int64_t n) { return logmel(out, x, NULL, n); }

int64_t hafm_vggish_logmel_f64(float *out, const double *x, int64_t n) { return logmel(out, NULL, x, n); }
