/* codec_train_rvq.c - the residual vector quantiser as EnCodec trains it (encodec/quantization/
 * core_vq.py): k-means init on the first batch, EMA codebooks, dead-code replacement,
 * commitment loss and the straight-through estimator; plus the generator's random numbers. */
#include "hafm/codec_train.h"
#include "hafm/common.h"
#include "hafm/linalg.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers: xoshiro256** seeded by splitmix64 ------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ct_rng_seed(ct_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ct_rng_next(ct_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ct_rng_uniform(ct_rng *r) { return (double)(ct_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t ct_rng_below(ct_rng *r, uint64_t n) { return (uint64_t)(ct_rng_uniform(r) * (double)n); }

float ct_rng_normal(ct_rng *r)
{
    double u1 = ct_rng_uniform(r), u2 = ct_rng_uniform(r);
    return (float)(sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2));
}

/* ---- codebook kernels ------------------------------------------------------------------------ */

void ct_rvq_params_default(ct_rvq_params *p)
{
    p->decay = 0.99f;
    p->epsilon = 1e-5f;
    p->dead_threshold = 2.0f;
    p->kmeans_iters = 50;
    p->track_mean = 0;
}

void ct_codebook_search(int32_t *codes, const float *x, const float *embed, int N, int D, int bins)
{
    float *enorm = hafm_xmalloc(sizeof(float) * (size_t)bins);
    for (int c = 0; c < bins; c++) {
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += embed[(size_t)c * D + d] * embed[(size_t)c * D + d];
        enorm[c] = s;
    }
    const int chunk = 1024;
    float *dots = hafm_xmalloc(sizeof(float) * (size_t)chunk * bins);
    for (int n0 = 0; n0 < N; n0 += chunk) {
        int nn = N - n0 < chunk ? N - n0 : chunk;
        hafm_sgemm(0, 1, nn, bins, D, 1.0f, x + (size_t)n0 * D, D, embed, D, 0.0f, dots, bins);
#pragma omp parallel for schedule(static) if ((size_t)nn * bins > CT_OMP_MIN)
        for (int i = 0; i < nn; i++) {
            const float *row = dots + (size_t)i * bins;
            float xn = 0.0f;
            for (int d = 0; d < D; d++) xn += x[(size_t)(n0 + i) * D + d] * x[(size_t)(n0 + i) * D + d];
            /* ||x||^2 - 2 x.e + ||e||^2, the reference's order of terms; strict < keeps the lowest index */
            float best = FLT_MAX;
            int32_t arg = 0;
            for (int c = 0; c < bins; c++) {
                float dist = xn - 2.0f * row[c] + enorm[c];
                if (dist < best) { best = dist; arg = c; }
            }
            codes[n0 + i] = arg;
        }
    }
    free(dots);
    free(enorm);
}

/* EnCodec's sample_vectors: distinct random rows when there are enough, else with repetition.
 * idx receives k row indices. */
static void sample_rows(int *idx, int N, int k, ct_rng *rng)
{
    if (N >= k) {
        int *perm = hafm_xmalloc(sizeof(int) * (size_t)N);
        for (int i = 0; i < N; i++) perm[i] = i;
        for (int i = 0; i < k; i++) {   /* partial Fisher-Yates = the first k of a random permutation */
            int j = i + (int)ct_rng_below(rng, (uint64_t)(N - i));
            int tmp = perm[i]; perm[i] = perm[j]; perm[j] = tmp;
            idx[i] = perm[i];
        }
        free(perm);
    } else {
        for (int i = 0; i < k; i++) idx[i] = (int)ct_rng_below(rng, (uint64_t)N);
    }
}

void ct_kmeans(float *means, float *counts, const float *x, int N, int D, int k, int iters, ct_rng *rng)
{
    int *idx = hafm_xmalloc(sizeof(int) * (size_t)k);
    sample_rows(idx, N, k, rng);
    for (int c = 0; c < k; c++) memcpy(means + (size_t)c * D, x + (size_t)idx[c] * D, sizeof(float) * D);
    free(idx);
    int32_t *assign = hafm_xmalloc(sizeof(int32_t) * (size_t)N);
    double *sums = hafm_xmalloc(sizeof(double) * (size_t)k * D);
    for (int it = 0; it < iters; it++) {
        ct_codebook_search(assign, x, means, N, D, k);
        memset(sums, 0, sizeof(double) * (size_t)k * D);
        for (int c = 0; c < k; c++) counts[c] = 0.0f;
        for (int i = 0; i < N; i++) {
            counts[assign[i]] += 1.0f;
            for (int d = 0; d < D; d++) sums[(size_t)assign[i] * D + d] += x[(size_t)i * D + d];
        }
        for (int c = 0; c < k; c++) {
            if (counts[c] == 0.0f) continue;   /* an empty cluster keeps its mean */
            for (int d = 0; d < D; d++) means[(size_t)c * D + d] = (float)(sums[(size_t)c * D + d] / counts[c]);
        }
    }
    free(sums);
    free(assign);
}

void ct_codebook_ema_update(float *embed, float *embed_avg, float *cluster_size, const float *x,
                            const int32_t *codes, int N, int D, int bins, float decay, float epsilon)
{
    float *count = hafm_xcalloc((size_t)bins, sizeof(float));
    float *sum = hafm_xcalloc((size_t)bins * D, sizeof(float));
    for (int i = 0; i < N; i++) {
        count[codes[i]] += 1.0f;
        for (int d = 0; d < D; d++) sum[(size_t)codes[i] * D + d] += x[(size_t)i * D + d];
    }
    double total = 0.0;
    for (int c = 0; c < bins; c++) {
        cluster_size[c] = cluster_size[c] * decay + count[c] * (1.0f - decay);
        total += cluster_size[c];
    }
    for (size_t j = 0; j < (size_t)bins * D; j++) embed_avg[j] = embed_avg[j] * decay + sum[j] * (1.0f - decay);
    /* Laplace smoothing keeps unused codes finite: (n_c + eps) / (n + bins*eps) * n */
    for (int c = 0; c < bins; c++) {
        float smoothed = (float)((cluster_size[c] + epsilon) / (total + bins * (double)epsilon) * total);
        for (int d = 0; d < D; d++) embed[(size_t)c * D + d] = embed_avg[(size_t)c * D + d] / smoothed;
    }
    free(sum);
    free(count);
}

int ct_codebook_expire(float *embed, float *embed_avg, float *cluster_size, const float *x, int N, int D,
                       int bins, float threshold, ct_rng *rng)
{
    if (threshold <= 0.0f) return 0;
    int expired = 0;
    for (int c = 0; c < bins; c++) expired += cluster_size[c] < threshold;
    if (!expired) return 0;
    int *idx = hafm_xmalloc(sizeof(int) * (size_t)bins);
    sample_rows(idx, N, bins, rng);
    /* The reference replaces only `embed`, which the EMA update then overwrites from embed_avg /
     * cluster_size in the same step, so its replacement never takes effect and a code that lost
     * its data stays dead. Here the EMA state is reset with it: the code restarts as a sample
     * seen `threshold` times. */
    for (int c = 0; c < bins; c++)
        if (cluster_size[c] < threshold) {
            const float *row = x + (size_t)idx[c] * D;
            memcpy(embed + (size_t)c * D, row, sizeof(float) * D);
            for (int d = 0; d < D; d++) embed_avg[(size_t)c * D + d] = row[d] * threshold;
            cluster_size[c] = threshold;
        }
    free(idx);
    return expired;
}

/* ---- the quantiser --------------------------------------------------------------------------- */

/* Moves the whole codebook by the distance between the batch's mean and the mean the EMA
 * statistics hold (sum of embed_avg / sum of cluster_size): the codebook keeps its shape and
 * follows the latent's offset, which in a young encoder drifts by more than the latent's spread
 * in a step. embed_avg moves by cluster_size times the shift, so embed = avg / size holds. */
static void track_mean(float *embed, float *embed_avg, const float *cluster_size, const float *x, int N, int D,
                       int bins)
{
    double total = 0.0;
    for (int c = 0; c < bins; c++) total += cluster_size[c];
    if (total <= 0.0) return;
    for (int d = 0; d < D; d++) {
        double batch = 0.0, ema = 0.0;
        for (int i = 0; i < N; i++) batch += x[(size_t)i * D + d];
        for (int c = 0; c < bins; c++) ema += embed_avg[(size_t)c * D + d];
        float shift = (float)(batch / N - ema / total);
        for (int c = 0; c < bins; c++) {
            embed[(size_t)c * D + d] += shift;
            embed_avg[(size_t)c * D + d] += shift * cluster_size[c];
        }
    }
}

float ct_rvq_train_forward(ct_model *m, float *q, int32_t *codes, const float *z, int B, int T, int n_q,
                           const ct_rvq_params *p, ct_rng *rng, int train)
{
    const ct_config *cfg = ct_model_config(m);
    const int D = cfg->dimension, bins = cfg->bins, N = B * T;
    float *r = hafm_xmalloc(sizeof(float) * (size_t)N * D);
    float *qsum = hafm_xcalloc((size_t)N * D, sizeof(float));
    float *qk = hafm_xmalloc(sizeof(float) * (size_t)N * D);
    for (int d = 0; d < D; d++)   /* [D][N] -> frames as rows */
        for (int i = 0; i < N; i++) r[(size_t)i * D + d] = z[(size_t)d * N + i];
    double commit = 0.0;
    for (int k = 0; k < n_q; k++) {
        float *embed = ct_model_embed(m, k), *cs = ct_model_cluster_size(m, k);
        int32_t *ck = codes + (size_t)k * N;
        if (train && !*ct_model_inited(m, k)) {
            ct_kmeans(embed, cs, r, N, D, bins, p->kmeans_iters, rng);
            /* embed_avg is the running sum of each code's vectors, so it starts as mean * count.
             * (The reference copies the means, as if every count were 1: the first update then
             * divides each code by its count.) */
            float *avg = ct_model_embed_avg(m, k);
            for (int c = 0; c < bins; c++)
                for (int d = 0; d < D; d++) avg[(size_t)c * D + d] = embed[(size_t)c * D + d] * cs[c];
            *ct_model_inited(m, k) = 1;
        }
        if (train && p->track_mean) track_mean(embed, ct_model_embed_avg(m, k), cs, r, N, D, bins);
        /* Dead codes are re-seeded from this batch before it is assigned (the reference does it
         * after, with no effect): while the latent of a young encoder drifts by more than its
         * spread from step to step, codes fitted to earlier batches all lie behind it, and
         * only fresh ones keep the batch from falling to a single code. */
        if (train) ct_codebook_expire(embed, ct_model_embed_avg(m, k), cs, r, N, D, bins, p->dead_threshold, rng);
        ct_codebook_search(ck, r, embed, N, D, bins);
        double se = 0.0;
        for (int i = 0; i < N; i++)
            for (int d = 0; d < D; d++) {
                float v = embed[(size_t)ck[i] * D + d];
                qk[(size_t)i * D + d] = v;
                se += (double)(v - r[(size_t)i * D + d]) * (v - r[(size_t)i * D + d]);
            }
        commit += se / ((double)N * D);
        /* the output used the codebook as it was; the EMA update happens after, as in the reference */
        if (train) ct_codebook_ema_update(embed, ct_model_embed_avg(m, k), cs, r, ck, N, D, bins, p->decay, p->epsilon);
        for (size_t j = 0; j < (size_t)N * D; j++) { qsum[j] += qk[j]; r[j] -= qk[j]; }
    }
    for (int d = 0; d < D; d++)
        for (int i = 0; i < N; i++) q[(size_t)d * N + i] = qsum[(size_t)i * D + d];
    free(r); free(qsum); free(qk);
    return n_q > 0 ? (float)(commit / n_q) : 0.0f;
}

/* Straight-through: quantized = x + sg(q - x), so the residuals after stage 0 carry no gradient
 * and only stage 0's commitment term mse(sg(q0), z) reaches z:  d/dz = 2 (z - q0) / (N D). */
void ct_rvq_backward(float *dz, const float *dq, const float *z, const float *q0, int D, int N, int n_q,
                     float commit_weight)
{
    const float scale = commit_weight * 2.0f / ((float)n_q * (float)N * (float)D);
    const long n = (long)N * D;
#pragma omp parallel for schedule(static) if ((size_t)n > CT_OMP_MIN)
    for (long j = 0; j < n; j++) dz[j] += dq[j] + scale * (z[j] - q0[j]);
}
