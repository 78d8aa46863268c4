/* hafm/repet.h - REPET-SIM vocal/accompaniment separation (Rafii & Pardo 2012), weight-free.
 *
 * The accompaniment is taken to be what repeats: for every STFT frame the most similar frames of
 * the song (cosine similarity of mono magnitude spectra; at most max_neighbours of them, at least
 * min_distance seconds apart, similarity above threshold, picked greedily by similarity as nussl's
 * find_peak_indices does) are found, their per-bin median magnitude, capped by the frame's own
 * magnitude, models the repeating part, and the soft mask (model + eps) / (|X| + eps) keeps it.
 * Bins below highpass_hz go entirely to the accompaniment. Defaults follow nussl's RepetSim
 * (min distance 1 s, 100 neighbours, threshold 0, 100 Hz, soft mask) on a sqrt-Hann STFT of
 * 2^ceil(log2(0.032 s * rate)) samples (2048 at 44.1 kHz) with hop window/4.
 *
 * Optional stereo centre mask (centre > 0, two channels): the vocal mask is multiplied by
 * 1 - centre + centre * c(t,f), c = clamp(2 |L+R|^2 / (2(|L|^2+|R|^2)) - 1, 0, 1), which is 1 for
 * centre-panned, in-phase content and 0 for uncorrelated or side content.
 *
 * Vocal = iSTFT(X * vocal_mask); accompaniment = mixture - vocal (so the two always sum to the
 * mixture). Memory grows with the song: about 40 bytes per sample and channel (spectra,
 * magnitudes, masks) besides the caller's audio, plus a 256-row block of the similarity matrix.
 */
#ifndef HAFM_REPET_H
#define HAFM_REPET_H

#include "common.h"

typedef struct {
    double min_distance;     /* seconds between neighbour frames             [1] */
    int max_neighbours;      /* frames whose median models the repetition     [100] */
    double threshold;        /* minimum cosine similarity of a neighbour      [0] */
    double highpass_hz;      /* bins below go to the accompaniment            [100] */
    int window;              /* STFT window in samples; 0 = automatic         [0] */
    int hop;                 /* 0 = window / 4                                [0] */
    double centre;           /* stereo centre mask weight in [0, 1]           [0] */
} hafm_repet_params;

void hafm_repet_defaults(hafm_repet_params *p);

/* x, vocal, accomp: interleaved [n][channels]. accomp may be NULL. -1 + error on bad sizes. */
int hafm_repet_sim(float *vocal, float *accomp, const float *x, int64_t n, int channels,
                   int sample_rate, const hafm_repet_params *p);

/* The similarity indices of one row (exposed for tests): greedy peak picking in sim[n]; writes at
 * most max_peaks indices to out (in pick order) and returns how many. */
int hafm_repet_pick_peaks(int *out, const float *sim, int n, int max_peaks, int min_dist,
                          float threshold);

#endif
