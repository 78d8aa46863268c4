/* stft.c - STFT / iSTFT over fftw3f (see hafm/stft.h). */
#include "hafm/stft.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void hafm_window_hann(float *w, int n, int periodic) {
    int den = periodic ? n : n - 1;
    for (int i = 0; i < n; i++)
        w[i] = den > 0 ? (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / den)) : 1.0f;
}

void hafm_window_sqrt_hann(float *w, int n, int periodic) {
    hafm_window_hann(w, n, periodic);
    for (int i = 0; i < n; i++) w[i] = sqrtf(w[i]);
}

int hafm_stft_init(hafm_stft *s, int n_fft, int win_length, int hop, const float *window) {
    memset(s, 0, sizeof *s);
    if (n_fft < 2 || n_fft > (1 << 22) || win_length < 1 || win_length > n_fft || hop < 1) {
        hafm_error("STFT: bad sizes (n_fft %d, window %d, hop %d)", n_fft, win_length, hop);
        return -1;
    }
    s->n_fft = n_fft;
    s->win_length = win_length;
    s->hop = hop;
    s->nbins = n_fft / 2 + 1;
    s->window = hafm_xmalloc((size_t)win_length * sizeof(float));
    if (window) memcpy(s->window, window, (size_t)win_length * sizeof(float));
    else hafm_window_hann(s->window, win_length, 1);
    float *buf = fftwf_alloc_real((size_t)n_fft);
    fftwf_complex *spec = fftwf_alloc_complex((size_t)s->nbins);
    /* planning is not thread-safe in FFTW; executing a plan with new arrays is */
#pragma omp critical(hafm_fftw_plan)
    {
        s->plan_fwd = fftwf_plan_dft_r2c_1d(n_fft, buf, spec, FFTW_ESTIMATE);
        s->plan_inv = fftwf_plan_dft_c2r_1d(n_fft, spec, buf, FFTW_ESTIMATE);
    }
    fftwf_free(buf);
    fftwf_free(spec);
    if (!s->plan_fwd || !s->plan_inv) {
        hafm_error("STFT: FFTW planning failed for n_fft %d", n_fft);
        hafm_stft_free(s);
        return -1;
    }
    return 0;
}

void hafm_stft_free(hafm_stft *s) {
#pragma omp critical(hafm_fftw_plan)
    {
        if (s->plan_fwd) fftwf_destroy_plan(s->plan_fwd);
        if (s->plan_inv) fftwf_destroy_plan(s->plan_inv);
    }
    free(s->window);
    memset(s, 0, sizeof *s);
}

int64_t hafm_stft_frames(const hafm_stft *s, int64_t n, int center) {
    if (center) return n > 0 ? 1 + n / s->hop : 0;
    return n >= s->win_length ? 1 + (n - s->win_length) / s->hop : 0;
}

/* Index into a reflect-padded signal (no edge repeat), bouncing as often as needed. */
static int64_t reflect_index(int64_t i, int64_t n) {
    if (n == 1) return 0;
    int64_t period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

void hafm_stft_forward(const hafm_stft *s, float *spec, const float *x, int64_t n, int stride, int center) {
    int64_t frames = hafm_stft_frames(s, n, center);
    int64_t pad = center ? s->win_length / 2 : 0;
    const int nf = s->n_fft, wl = s->win_length, nb = s->nbins;
#pragma omp parallel
    {
        float *buf = fftwf_alloc_real((size_t)nf);
        fftwf_complex *out = fftwf_alloc_complex((size_t)nb);
        memset(buf, 0, (size_t)nf * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t t = 0; t < frames; t++) {
            int64_t start = t * s->hop - pad;
            if (start >= 0 && start + wl <= n) {
                for (int i = 0; i < wl; i++) buf[i] = x[(start + i) * stride] * s->window[i];
            } else {
                for (int i = 0; i < wl; i++) buf[i] = x[reflect_index(start + i, n) * stride] * s->window[i];
            }
            fftwf_execute_dft_r2c(s->plan_fwd, buf, out);
            memcpy(spec + (size_t)t * nb * 2, out, (size_t)nb * 2 * sizeof(float));
        }
        fftwf_free(buf);
        fftwf_free(out);
    }
}

void hafm_stft_inverse(const hafm_stft *s, float *y, int stride, const float *spec, int64_t frames,
                       int64_t n, int center) {
    const int nf = s->n_fft, wl = s->win_length, nb = s->nbins;
    int64_t pad = center ? wl / 2 : 0;
    int64_t len = (frames - 1) * s->hop + wl;   /* padded length covered by frames */
    if (frames <= 0) len = 0;
    double *acc = hafm_xcalloc((size_t)(len > 0 ? len : 1), sizeof(double));
    double *env = hafm_xcalloc((size_t)(len > 0 ? len : 1), sizeof(double));
    float *buf = fftwf_alloc_real((size_t)nf);
    fftwf_complex *in = fftwf_alloc_complex((size_t)nb);
    const float scale = 1.0f / (float)nf;
    for (int64_t t = 0; t < frames; t++) {
        memcpy(in, spec + (size_t)t * nb * 2, (size_t)nb * 2 * sizeof(float));
        in[0][1] = 0;
        if (nf % 2 == 0) in[nb - 1][1] = 0;
        fftwf_execute_dft_c2r(s->plan_inv, in, buf);
        int64_t off = t * s->hop;
        for (int i = 0; i < wl; i++) {
            acc[off + i] += (double)(buf[i] * scale * s->window[i]);
            env[off + i] += (double)s->window[i] * s->window[i];
        }
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t j = i + pad;
        float v = 0;
        if (j < len && env[j] > 1e-11) v = (float)(acc[j] / env[j]);
        y[i * stride] = v;
    }
    fftwf_free(buf);
    fftwf_free(in);
    free(acc);
    free(env);
}

void hafm_stft_magnitude(float *mag, const float *spec, int64_t nbins) {
    for (int64_t k = 0; k < nbins; k++) mag[k] = hypotf(spec[2 * k], spec[2 * k + 1]);
}
