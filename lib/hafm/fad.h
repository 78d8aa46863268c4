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

#endif
