/* hafm/stft.h - short-time Fourier transform and its inverse over FFTW3 (single precision).
 *
 * Conventions follow torch.stft / torch.istft (and numpy frame-then-rfft when center is 0):
 * a frame is win_length samples starting at t*hop, multiplied by the window and zero-padded at
 * the end to n_fft before the real FFT; no scaling forward, 1/n_fft on the inverse.
 * center = 1 reflect-pads win_length/2 samples on both sides first (torch's center=True,
 * pad_mode='reflect', which for win_length == n_fft is exactly torch), so frame t is centred
 * on sample t*hop. Spectra are interleaved complex: spec[frame][bin][re, im], n_fft/2+1 bins.
 * Signals may be strided (one channel of interleaved audio: x = base + ch, stride = channels).
 * Forward frames run in parallel (OpenMP); an hafm_stft is read-only after init.
 */
#ifndef HAFM_STFT_H
#define HAFM_STFT_H

#include "common.h"

typedef struct {
    int n_fft, win_length, hop, nbins;
    float *window;        /* [win_length] */
    void *plan_fwd, *plan_inv;
} hafm_stft;

/* window NULL: periodic Hann of win_length. -1 (error) for sizes out of range. */
int  hafm_stft_init(hafm_stft *s, int n_fft, int win_length, int hop, const float *window);
void hafm_stft_free(hafm_stft *s);

/* w[n] = 0.5 - 0.5 cos(2 pi n / (periodic ? n : n-1)); sqrt of it with hafm_window_sqrt_hann. */
void hafm_window_hann(float *w, int n, int periodic);
void hafm_window_sqrt_hann(float *w, int n, int periodic);

/* Frames of a signal of n samples: center: 1 + n/hop; otherwise 1 + (n - win_length)/hop
 * (0 when n < win_length). */
int64_t hafm_stft_frames(const hafm_stft *s, int64_t n, int center);

/* spec [frames][nbins][2] for frames = hafm_stft_frames(s, n, center). */
void hafm_stft_forward(const hafm_stft *s, float *spec, const float *x, int64_t n, int stride, int center);

/* Inverse with the window-square overlap-add normalisation of torch.istft: y[n] (strided) from
 * spec [frames][nbins][2]; samples where the envelope is below 1e-11 are 0. The imaginary parts
 * of bin 0 and bin n_fft/2 are ignored (a real inverse FFT). */
void hafm_stft_inverse(const hafm_stft *s, float *y, int stride, const float *spec, int64_t frames,
                       int64_t n, int center);

/* Magnitude |X| of one spectrum frame of nbins bins. */
void hafm_stft_magnitude(float *mag, const float *spec, int64_t nbins);

#endif
