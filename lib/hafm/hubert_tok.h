/* hafm/hubert_tok.h - the semantic tokenizer behind hubert-tok: audio -> 50 Hz features
 * (HuBERT layer L, or the weight-free MFCC / log-mel / chroma of hafm/mfcc.h) -> nearest k-means
 * centroid, written as tracks of a hafm stream. */
#ifndef HAFM_HUBERT_TOK_H
#define HAFM_HUBERT_TOK_H

#include "audio.h"
#include "hubert.h"
#include "kmeans.h"
#include "mfcc.h"
#include "stream.h"

typedef enum { HAFM_SEM_HUBERT = 0, HAFM_SEM_MFCC, HAFM_SEM_LOGMEL, HAFM_SEM_CHROMA } hafm_sem_features;

typedef struct {
    hafm_sem_features features;
    const char *model;        /* HuBERT safetensors (HAFM_SEM_HUBERT) */
    int layer;                /* hidden_states[layer] */
    const char *centroids;    /* codebook file; NULL: features only */
    hafm_cmvn cmvn;           /* MFCC / log-mel normalisation */
    /* take features / cmvn from the codebook's metadata when it names them (hafm-kmeans
     * records them); otherwise a codebook naming other features is refused */
    int features_from_centroids, cmvn_from_centroids;
    double noise;             /* std of Gaussian noise added to the 16 kHz input (0: none) */
    uint64_t seed;            /* noise seed */
    int window, context;      /* HuBERT window and context in frames (0: defaults) */
    const char *tool;         /* producer name for the tracks */
} hafm_sem_opts;

typedef struct hafm_sem hafm_sem;

/* Loads the codebook and the model and checks that they fit (features kind, dimension).
 * NULL + error. */
hafm_sem *hafm_sem_open(const hafm_sem_opts *o);
void hafm_sem_free(hafm_sem *s);
int  hafm_sem_dim(const hafm_sem *s);
int  hafm_sem_vocab(const hafm_sem *s);   /* 0 without a codebook */

/* Tokenizes audio a (any rate, any channels: mixed to mono, resampled to 16 kHz) into the
 * current item of w: a tokens track `tokens_name` ([1], rate 50, vocab K) unless it is NULL or
 * there is no codebook, and a features track `features_name` ([D], rate 50) unless NULL.
 * Both end with source_samples/source_rate of a. -1 + error (too short, ...). */
int hafm_sem_write(hafm_sem *s, hafm_writer *w, const hafm_audio *a, const char *tokens_name,
                   const char *features_name);

/* Frames and tokens of 16 kHz mono audio without a stream (tokens[*frames], features
 * [*frames, D] optional; free()). */
int hafm_sem_tokens(hafm_sem *s, const float *wav, int64_t n, int32_t **tokens, float **features, int64_t *frames);

#endif
