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
 * mixture). hafm_repet_sim holds the whole song: about 40 bytes per sample and channel (spectra,
 * magnitudes, masks) besides the caller's audio, plus a 256-row block of the similarity matrix.
 *
 * hafm_repet_stream bounds that: the song is cut into segments of `block` seconds that overlap
 * by block/6, each separated on its own by hafm_repet_sim (so a frame's neighbours are searched
 * within its segment, a window of `block` seconds around it), and the vocals of consecutive
 * segments are cross-faded (sin^2 / cos^2, which sum to 1) over the overlap. A segment is cut
 * only once half a hop of further input has arrived (hop = block - overlap), so the last
 * segment is never shorter than overlap + hop/2, and a song of up to block + hop/2 seconds is
 * one segment: exactly hafm_repet_sim's result. Memory: one segment's working set plus
 * block + hop/2 seconds of input, whatever the song's length; output leaves per segment.
 * Measured on the synthetic stems of the tests (3 min, 44.1 kHz stereo): vocal SI-SDR 15.49 dB
 * whole-song, 15.53 dB with 40 s segments (22.1 dB SI-SDR between the two vocals), 14.60 dB with
 * 20 s; vsep on 10 min of stereo: peak RSS 181 MB with 40 s segments, 2.3 GB whole-song.
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
    double block;            /* hafm_repet_stream segment, seconds; 0 = whole song [40] */
} hafm_repet_params;

void hafm_repet_defaults(hafm_repet_params *p);

/* x, vocal, accomp: interleaved [n][channels]. accomp may be NULL. -1 + error on bad sizes. */
int hafm_repet_sim(float *vocal, float *accomp, const float *x, int64_t n, int channels,
                   int sample_rate, const hafm_repet_params *p);

/* Streaming separation. emit receives the stems in order, frames interleaved [frames][channels],
 * valid during the call; their concatenation has as many frames as were pushed. */
typedef void (*hafm_repet_emit)(void *ctx, const float *vocal, const float *accomp, int64_t frames);
typedef struct hafm_repet_stream hafm_repet_stream;

hafm_repet_stream *hafm_repet_stream_new(const hafm_repet_params *p, int channels, int sample_rate,
                                         hafm_repet_emit emit, void *ctx);
/* x: [n][channels]. -1 + error when a segment fails. */
int hafm_repet_stream_push(hafm_repet_stream *st, const float *x, int64_t n);
/* Separates what is left (the end of the song); -1 + error, also for a song of no samples. The
 * stream can then take the next song. */
int hafm_repet_stream_finish(hafm_repet_stream *st);
/* Bookkeeping for tests: the most input frames held at once so far, and the segment length and
 * overlap in frames (0, 0 for whole-song processing). */
int64_t hafm_repet_stream_peak_frames(const hafm_repet_stream *st);
void hafm_repet_stream_geometry(const hafm_repet_stream *st, int64_t *segment, int64_t *overlap);
void hafm_repet_stream_free(hafm_repet_stream *st);

/* The similarity indices of one row (exposed for tests): greedy peak picking in sim[n]; writes at
 * most max_peaks indices to out (in pick order) and returns how many. */
int hafm_repet_pick_peaks(int *out, const float *sim, int n, int max_peaks, int min_dist,
                          float threshold);

#endif
