/* hafm/musicfit.h - how well an accompaniment fits a song, measured against the song's labels
 * (examples/corpus labels.json: chords with pitch classes, beats), and how close a reconstruction
 * is to its reference (SI-SDR, log-mel distance). Used by examples/train's evaluation.
 *
 * Harmonic fit (chord fit): the chroma of the audio (STFT power of 80-2000 Hz folded onto 12
 * pitch classes, equal temperament, A = 440 Hz) summed over each labelled chord span; the share
 * of that energy on the chord's pitch classes, averaged over spans weighted by their duration.
 * A triad holds 3 of 12 pitch classes, so audio unrelated to the chords scores about 0.25 (more
 * when it shares the key), audio that plays the chords close to 1.
 *
 * Rhythmic fit (beat fit): the onset strength (half-wave rectified spectral flux of the
 * log-compressed magnitude) at each labelled beat (its maximum within +-tol) divided by the
 * mean of the same maximum at every frame; 1 is chance, larger means onsets fall on the beats.
 */
#ifndef HAFM_MUSICFIT_H
#define HAFM_MUSICFIT_H

#include "common.h"

typedef struct {
    double start, end;   /* seconds */
    unsigned pcs;        /* bit p set: pitch class p (0 = C) belongs to the chord */
} hafm_chord_span;

typedef struct {
    hafm_chord_span *chords;
    int n_chords;
    double *beats;       /* seconds */
    int n_beats;
} hafm_song_labels;

/* Reads the chords (start, end, pitch_classes) and beats of a labels.json. */
int  hafm_labels_read(const char *path, hafm_song_labels *out);
void hafm_labels_free(hafm_song_labels *l);

/* Chroma frames of mono audio x[n] at rate sr: out [frames][12] (malloc'd), frames in *frames,
 * frame t centred on t * hop / sr seconds (n_fft 4096 at 24 kHz, scaled with the rate). */
float *hafm_chroma(const float *x, int64_t n, int sr, int64_t *frames, double *hop_seconds);

/* Onset strength envelope of mono audio: out [frames] (malloc'd), frame t at t * hop / sr. */
float *hafm_onset_strength(const float *x, int64_t n, int sr, int64_t *frames, double *hop_seconds);

/* Chord fit in [0, 1] over the spans that lie (at least partly) in the audio and carry energy;
 * NaN when none does. *spans_used receives their number. */
double hafm_chord_fit(const float *x, int64_t n, int sr, const hafm_song_labels *l, int *spans_used);

/* Beat fit (>= 0, 1 = chance) over the beats inside the audio, tol seconds either side (e.g.
 * 0.05); NaN without beats or onsets. *beats_used receives the beats counted. */
double hafm_beat_fit(const float *x, int64_t n, int sr, const hafm_song_labels *l, double tol, int *beats_used);

/* Mean absolute difference of log10 mel power spectra (64 bands up to sr/2, 1024-point frames
 * at 24 kHz scaled with the rate, hop a quarter frame, floor 1e-5) over the common length. */
double hafm_mel_distance(const float *ref, const float *est, int64_t n, int sr);

#endif
