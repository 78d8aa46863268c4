/* hafm/mfcc.h - weight-free semantic features: MFCC (+ deltas), log-mel filterbanks, and MFCC with
 * chroma.
 *
 * These are the targets HuBERT's own first training iteration clusters (39-d MFCC with deltas
 * and delta-deltas, k-means 100): the phonetic content they carry is weaker than a trained
 * HuBERT layer, but they need no checkpoint. hubert-tok offers them as an alternative feature
 * extractor (`--features mfcc|logmel`); a codebook for them is fitted with hafm-kmeans.
 *
 * Frames are aligned with HuBERT's: 16 kHz input, 400-sample (25 ms) window, 320-sample hop
 * (50 Hz), T = floor((N - 400) / 320) + 1, frame t covering samples [320t, 320t + 400).
 * Per frame: DC removal, pre-emphasis 0.97, Hamming window, 512-point FFT (fftw3f), power
 * spectrum, triangular mel filters (HTK mel scale, 20 Hz to 7600 Hz), natural log with a floor
 * of 1e-10; MFCC: orthonormal DCT-II, the first 13 coefficients (c0 included), sinusoidal
 * lifter 22, then deltas and delta-deltas (regression over +-2 frames, edges replicated).
 * Chroma (kind HAFM_FEAT_CHROMA, 13 MFCC without deltas then 12 chroma = 25 dims): a 20 ms
 * frame is too short to resolve a semitone below 1 kHz, so chroma comes from a longer Hann window
 * (chroma_win samples, 4096 = 256 ms, zero outside the input) centred on the frame's centre
 * (sample 320t + 200), FFT of the same length, no pre-emphasis. Each bin between chroma_fmin and
 * chroma_fmax adds its magnitude to the pitch class of its nearest equal-tempered semitone
 * (A4 = 440 Hz, class 0 = C), weighted by 1 - 2 |cents off| / 100 so that bins between two
 * semitones count for little; the 12 sums are divided by their total (a silent frame, total
 * below 1e-3, gets 1/12 each). MFCC carries the timbre and loudness, chroma the harmony.
 * Optional cepstral mean (and variance) normalisation over the whole input, every dimension.
 */
#ifndef HAFM_MFCC_H
#define HAFM_MFCC_H

#include "common.h"

typedef enum { HAFM_FEAT_MFCC = 0, HAFM_FEAT_LOGMEL = 1, HAFM_FEAT_CHROMA = 2 } hafm_feat_kind;
typedef enum { HAFM_CMVN_NONE = 0, HAFM_CMVN_MEAN = 1, HAFM_CMVN_MEANVAR = 2 } hafm_cmvn;

typedef struct {
    hafm_feat_kind kind;
    int sample_rate;     /* 16000 */
    int win, hop, n_fft; /* 400, 320, 512 */
    int n_mels;          /* 40 (MFCC, chroma) or 80 (log-mel) */
    float fmin, fmax;    /* 20, 7600 Hz */
    float preemph;       /* 0.97 */
    int n_ceps;          /* MFCC: 13 */
    float lifter;        /* MFCC: 22 (0 = none) */
    int deltas;          /* MFCC: 0, 1 or 2 orders of deltas appended (2 -> 39 dims); chroma: 0 */
    int chroma_win;      /* chroma: analysis window and FFT length, 4096 */
    float chroma_fmin, chroma_fmax; /* chroma: 65.4 (C2) to 2093 Hz (C7) */
    hafm_cmvn cmvn;      /* default: mean and variance */
} hafm_mfcc_config;

void hafm_mfcc_config_default(hafm_mfcc_config *c, hafm_feat_kind kind);
int  hafm_mfcc_dim(const hafm_mfcc_config *c);
int64_t hafm_mfcc_frames(const hafm_mfcc_config *c, int64_t n);

typedef struct hafm_mfcc hafm_mfcc;
hafm_mfcc *hafm_mfcc_new(const hafm_mfcc_config *c);   /* NULL + error on a bad config */
void hafm_mfcc_free(hafm_mfcc *m);
/* Features of n samples (at c->sample_rate) as [*frames, dim] (free()); NULL + error when the
 * input is shorter than one window. */
float *hafm_mfcc_compute(hafm_mfcc *m, const float *wav, int64_t n, int64_t *frames);

#endif
