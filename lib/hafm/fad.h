/* hafm/fad.h - Frechet Audio Distance: embedding statistics and the distance between them.
 *
 * Everything is double precision: a set's mean and scatter are accumulated from float32
 * embeddings in float64 and merged online per file (Chan et al.'s pairwise update), so the
 * statistics of a set are exactly those of its concatenated frames, whatever the file order.
 *
 * FAD(ref, eval) = |mu_r - mu_e|^2 + tr C_r + tr C_e - 2 tr sqrt(C_r C_e)
 * with covariances of divisor n-1 (np.cov). tr sqrt(C_r C_e) is computed by the symmetric
 * method: R = C_r^(1/2) from LAPACK dsyevd, then the eigenvalues of the symmetric R C_e R,
 * clamped at 0, square-rooted and summed. C_r C_e is similar to R C_e R, so this is the same
 * trace without the non-symmetric sqrtm of the classic implementations, and it is stable for
 * singular covariances (fewer frames than dimensions).
 */
#ifndef HAFM_FAD_H
#define HAFM_FAD_H

#include "common.h"

typedef struct {
    int dim;
    int64_t n;       /* frames accumulated */
    double *mean;    /* [dim] */
    double *m2;      /* [dim, dim] sum of (x - mean)(x - mean)^T, full symmetric */
} hafm_fad_stats;

/* 0 / -1 (error set: dim out of range). */
int  hafm_fad_stats_init(hafm_fad_stats *s, int dim);
void hafm_fad_stats_free(hafm_fad_stats *s);
void hafm_fad_stats_reset(hafm_fad_stats *s);
/* Adds n frames x[n, dim] (float32 or float64 rows). */
void hafm_fad_stats_add_f32(hafm_fad_stats *s, const float *x, int64_t n);
void hafm_fad_stats_add_f64(hafm_fad_stats *s, const double *x, int64_t n);
/* dst += src (same dim; -1 and error otherwise). */
int hafm_fad_stats_merge(hafm_fad_stats *dst, const hafm_fad_stats *src);
/* Covariance with divisor n-1 into cov[dim, dim]; -1 (error) when n < 2. */
int hafm_fad_stats_cov(const hafm_fad_stats *s, double *cov);

/* tr sqrt(C1 C2) by the symmetric method. -1 (error) if LAPACK fails. */
int hafm_trace_sqrt_product(const double *C1, const double *C2, int dim, double *out);
/* Frechet distance between N(mu1, C1) and N(mu2, C2); 1 = reference, 2 = evaluated. */
int hafm_frechet_distance(const double *mu1, const double *C1, const double *mu2,
                          const double *C2, int dim, double *out);
/* FAD between two sets of statistics (each needs n >= 2; dims must match). */
int hafm_fad(const hafm_fad_stats *ref, const hafm_fad_stats *eval, double *out);

/* FAD-inf (fadtk's extrapolation to an infinite evaluation set): FAD of the reference against
 * `steps` subsets of the evaluation frames x[n, dim], sizes int(linspace(min_n, n, steps)),
 * then a least-squares line FAD = slope / size + intercept; FAD-inf is the intercept.
 * Subsets: seed == 0 takes prefixes x[:size] (deterministic in the frame order); otherwise
 * `size` rows drawn with replacement by a splitmix64 generator seeded with `seed`, as fadtk
 * draws them (fadtk itself is unseeded). */
typedef struct {
    int steps;
    int64_t *sizes;   /* [steps] */
    double *fad;      /* [steps] */
    double slope, intercept, r2;
} hafm_fad_inf_result;

int  hafm_fad_inf(const hafm_fad_stats *ref, const float *x, int64_t n, int dim, int steps,
                  int64_t min_n, uint64_t seed, hafm_fad_inf_result *out);
void hafm_fad_inf_free(hafm_fad_inf_result *r);

/* Statistics files (the per-file cache of the fad command): safetensors with tensors "mean"
 * F64 [dim], "m2" F64 [dim, dim] and metadata "n" (frames), "format" = "hafm-fad-stats-1". */
int hafm_fad_stats_save(const hafm_fad_stats *s, const char *path,
                        const char *meta_key, const char *meta_value);
/* Loads into an uninitialised s. Fails on any other content. */
int hafm_fad_stats_load(hafm_fad_stats *s, const char *path);

/* ---- sets of songs (the fad command) --------------------------------------------------------
 * A set is given as: a directory (its audio files, by name: .wav .flac .ogg .oga .opus .mp3 .aif
 * .aiff .au .caf .w64), "@LIST" (a file of paths, one per line, '#' comments), one audio file, or
 * a hafm stream (a file, or "-" for stdin) whose items each carry a features track (used as is)
 * or an audio track (embedded). Embeddings of audio: "vggish" or "encodec" (fadtk's encodec-emb:
 * the encoder's pre-quantisation latent of a mono EnCodec, 128-d at 75 frames/s for the 24 kHz
 * model), "hubert" (HF hidden_states[layer] of a HuBERT checkpoint, 50 frames/s), weights in
 * cfg->model. */
typedef struct {
    const char *emb;          /* "vggish", "encodec", "hubert" or "features" (features tracks only) */
    const char *model;        /* embedding weights (safetensors) */
    const char *track;        /* stream track to read; NULL: the item's only features track, else its audio */
    const char *cache_dir;    /* per-file statistics cache; NULL: none */
    int layer;                /* hubert: the layer */
} hafm_fad_config;

typedef struct {
    char *name;               /* file path or stream item key */
    hafm_fad_stats stats;
    int cached;               /* statistics came from the cache */
} hafm_fad_song;

typedef struct {
    hafm_fad_song *songs;
    int nsongs;
    hafm_fad_stats total;     /* merged over songs; dim 0 until the first song */
    float *frames;            /* [nframes, dim] when loaded with keep_frames */
    int64_t nframes;
} hafm_fad_set;

typedef struct hafm_fad_embedder hafm_fad_embedder;
/* NULL + error (unknown embedding, unreadable weights). */
hafm_fad_embedder *hafm_fad_embedder_new(const hafm_fad_config *cfg);
void hafm_fad_embedder_free(hafm_fad_embedder *e);

/* Loads every song of spec; keep_frames keeps the embeddings (FAD-inf) and bypasses the cache
 * for reading. Errors name the file or item. */
int hafm_fad_set_load(hafm_fad_set *set, const char *spec, hafm_fad_embedder *e, int keep_frames);
void hafm_fad_set_free(hafm_fad_set *set);

/* The cache file of an audio file for this embedder: DIR/<16 hex digits>.safetensors, the
 * digits an FNV-1a 64-bit hash of "hafm-fad-1", the embedding name, the weights file's identity
 * (resolved path, size, modification time, HuBERT layer) and every byte of the audio file. */
int hafm_fad_cache_path(const hafm_fad_embedder *e, const char *audio_path, char *out, size_t cap);

#endif
