/* hafm/kmeans.h - k-means codebooks: nearest-centroid assignment and training.
 *
 * Distances are squared Euclidean, computed as |x|^2 - 2 x.c + |c|^2 with one GEMM per block of
 * points; near-ties of that float computation are re-decided in double precision, so the
 * assignment is the exact argmin (lowest index on exact ties) whenever the gap between the two
 * best squared distances exceeds double rounding.
 *
 * Training: k-means++ initialisation (greedy, as scikit-learn: 2 + ln k candidates per step),
 * Lloyd iterations, and mini-batch updates (Sculley 2010, per-centre learning rate 1/count) for
 * data streamed in batches. Deterministic under a seed for a given thread count.
 */
#ifndef HAFM_KMEANS_H
#define HAFM_KMEANS_H

#include "common.h"

typedef struct {
    int k, d;
    float *centers;     /* [k, d] */
    float *norm2;       /* [k] |c|^2 */
    /* what the centroids were fitted on, as hubert-tok names it ("" when unknown): the features
     * kind (hubert, mfcc, logmel) and the MFCC/log-mel normalisation (none, mean, meanvar);
     * safetensors metadata "features" and "cmvn" */
    char features[16], cmvn[16];
} hafm_codebook;

/* Copies centers [k, d]; features and cmvn start empty. */
int  hafm_codebook_init(hafm_codebook *cb, int k, int d, const float *centers);
/* Reads a codebook: safetensors tensor "cluster_centers" [K, D] (any float dtype), or a NumPy
 * .npy file holding a 2-D float32/float64 C-order array. */
int  hafm_codebook_load(hafm_codebook *cb, const char *path);
/* Writes by extension: ".npy" as NumPy float32, anything else as safetensors "cluster_centers"
 * (with features and cmvn as metadata when set). */
int  hafm_codebook_save(const hafm_codebook *cb, const char *path);
void hafm_codebook_free(hafm_codebook *cb);

/* labels[n] = argmin_k |x_i - c_k|^2 for x[n, d]; dist2[n] (optional) the squared distance. */
void hafm_kmeans_assign(int32_t *labels, float *dist2, const float *x, int64_t n, const hafm_codebook *cb);

/* ---- training ------------------------------------------------------------------------------ */

/* Deterministic random numbers (splitmix64-seeded xoshiro256**). */
typedef struct { uint64_t s[4]; } hafm_rng;
void     hafm_rng_seed(hafm_rng *r, uint64_t seed);
uint64_t hafm_rng_next(hafm_rng *r);
double   hafm_rng_uniform(hafm_rng *r);     /* [0, 1) */
double   hafm_rng_normal(hafm_rng *r);      /* N(0, 1) */

/* Greedy k-means++ on x[n, d] (n >= k) into centers[k, d]. */
int hafm_kmeans_plusplus(float *centers, const float *x, int64_t n, int d, int k, hafm_rng *rng);

/* Per-iteration report: iteration (1-based), inertia of the assignment made in that iteration
 * (before the centres move), squared centre shift. */
typedef void (*hafm_kmeans_log_fn)(void *ctx, int iter, double inertia, double shift);

/* Lloyd iterations from the given centers[k, d] until the total squared centre shift is at most
 * tol * (mean per-dimension variance of x) (scikit-learn's criterion), the assignment no longer
 * changes, or max_iter. Empty clusters take the points farthest from their centres. Returns the
 * number of iterations; *inertia = sum of squared distances to the final centres. */
int hafm_kmeans_lloyd(float *centers, const float *x, int64_t n, int d, int k, int max_iter,
                      double tol, double *inertia, hafm_kmeans_log_fn log, void *ctx);

/* n_init runs of k-means++ then Lloyd (seeds seed, seed+1, ...); keeps the run with the lowest
 * inertia (scikit-learn's n_init). log (optional) receives run (0-based), iteration, inertia,
 * shift. Returns 0, or -1 + error (n < k). */
typedef void (*hafm_kmeans_run_log_fn)(void *ctx, int run, int iter, double inertia, double shift);
int hafm_kmeans_fit(float *centers, const float *x, int64_t n, int d, int k, int n_init, int max_iter,
                    double tol, uint64_t seed, double *inertia, hafm_kmeans_run_log_fn log, void *ctx);

/* One mini-batch update of centers[k, d] with batch[b, d]; counts[k] accumulate the points each
 * centre has absorbed. Returns the batch inertia against the centres before the update. */
double hafm_kmeans_minibatch_step(float *centers, int64_t *counts, const float *batch, int64_t b,
                                  int d, int k);

/* Sum of squared distances of x[n, d] to their nearest centres. */
double hafm_kmeans_inertia(const float *x, int64_t n, const hafm_codebook *cb);

#endif
