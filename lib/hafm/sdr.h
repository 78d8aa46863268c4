/* hafm/sdr.h - separation quality: museval v4 SDR, global SDR (uSDR) and SI-SDR.
 *
 * Signals are float32, interleaved [n][channels], as an audio track holds them.
 *
 * museval v4 (SiSEC 2018, bss_eval_images with time-invariant distortion filters) splits the
 * image decomposition into s_true + e_spat + e_interf + e_artif and reports
 * SDR = 10 log10(|s_true|^2 / |e_spat + e_interf + e_artif|^2) per frame. The three error
 * terms telescope: e_spat = P_j s - s, e_interf = P s - P_j s, e_artif = est - P s, so their sum
 * is est - s whatever the projection filters are, and the frame SDR is computed here directly
 * as 10 log10(sum s^2 / sum (est - s)^2) over the frame and all channels; this is the same
 * number without the 2048 x 2048 filter solves (the golden test checks it against museval).
 * Frames: window and hop in samples, floor((n - window + hop) / hop) of them (a partial tail is
 * dropped; one frame of the whole signal when window >= n). A frame where any reference or any
 * estimate is silent (its channel sum is 0 at every sample) is NaN, as in museval; the track's
 * score is the median over the non-NaN frames (museval's aggregation, np.nanmedian).
 */
#ifndef HAFM_SDR_H
#define HAFM_SDR_H

#include "common.h"

/* Number of museval frames for n samples. */
int64_t hafm_sdr_nframes(int64_t n, int64_t window, int64_t hop);

/* Frame SDRs of nsrc sources: refs/ests [nsrc][n][channels]; out [nsrc][nframes] (NaN frames
 * as described above). Returns the number of frames, -1 on error (sizes). */
int64_t hafm_sdr_frames(double *out, const float *refs, const float *ests, int nsrc, int64_t n,
                        int channels, int64_t window, int64_t hop);

/* Median ignoring NaN; NaN when every value is NaN. Sorts a copy. */
double hafm_nanmedian(const double *x, int64_t n);

/* Global SDR of the MDX challenge 2021 (uSDR): 10 log10((delta + sum s^2) / (delta + sum (s - est)^2)),
 * delta = 1e-7, over all samples and channels. */
double hafm_usdr(const float *ref, const float *est, int64_t n, int channels);

/* Scale-invariant SDR of one channel (stride = channels, offset = channel), Le Roux et al. 2019
 * with the means removed first: a = <est, s> / <s, s>; 10 log10(|a s|^2 / |a s - est|^2).
 * NaN for a constant reference. */
double hafm_si_sdr(const float *ref, const float *est, int64_t n, int channels, int channel);

#endif
