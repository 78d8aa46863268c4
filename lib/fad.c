/* fad.c - Frechet Audio Distance in double precision (see hafm/fad.h). */
#include "hafm/fad.h"
#include "hafm/safetensors.h"

#include <cblas.h>
#include <lapacke.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FAD_MAX_DIM 65536
#define FAD_BLOCK 4096   /* rows centred at a time: bounds the scratch for long songs */

int hafm_fad_stats_init(hafm_fad_stats *s, int dim) {
    memset(s, 0, sizeof *s);
    if (dim < 1 || dim > FAD_MAX_DIM) {
        hafm_error("embedding dimension %d out of range [1, %d]", dim, FAD_MAX_DIM);
        return -1;
    }
    s->dim = dim;
    s->mean = hafm_xcalloc((size_t)dim, sizeof(double));
    s->m2 = hafm_xcalloc((size_t)dim * dim, sizeof(double));
    return 0;
}

void hafm_fad_stats_free(hafm_fad_stats *s) {
    free(s->mean);
    free(s->m2);
    memset(s, 0, sizeof *s);
}

void hafm_fad_stats_reset(hafm_fad_stats *s) {
    s->n = 0;
    memset(s->mean, 0, (size_t)s->dim * sizeof(double));
    memset(s->m2, 0, (size_t)s->dim * s->dim * sizeof(double));
}

/* Chan, Golub & LeVeque: combining (na, ma, M2a) with (nb, mb, M2b) exactly. */
static void merge_moments(hafm_fad_stats *a, int64_t nb, const double *mb, const double *m2b) {
    int d = a->dim;
    if (nb == 0) return;
    if (a->n == 0) {
        a->n = nb;
        memcpy(a->mean, mb, (size_t)d * sizeof(double));
        memcpy(a->m2, m2b, (size_t)d * d * sizeof(double));
        return;
    }
    double na = (double)a->n, n = na + (double)nb;
    double *delta = hafm_xmalloc((size_t)d * sizeof(double));
    for (int i = 0; i < d; i++) delta[i] = mb[i] - a->mean[i];
    double w = na * (double)nb / n;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            a->m2[(size_t)i * d + j] += m2b[(size_t)i * d + j] + w * delta[i] * delta[j];
    for (int i = 0; i < d; i++) a->mean[i] += delta[i] * ((double)nb / n);
    a->n += nb;
    free(delta);
}

/* x: rows [n, d] as double; the batch's own mean and scatter, then merged. */
static void add_block(hafm_fad_stats *s, double *xc, int64_t n) {
    int d = s->dim;
    double *mb = hafm_xcalloc((size_t)d, sizeof(double));
    double *m2b = hafm_xcalloc((size_t)d * d, sizeof(double));
    for (int64_t r = 0; r < n; r++)
        for (int j = 0; j < d; j++) mb[j] += xc[r * d + j];
    for (int j = 0; j < d; j++) mb[j] /= (double)n;
    for (int64_t r = 0; r < n; r++)
        for (int j = 0; j < d; j++) xc[r * d + j] -= mb[j];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, (int)n, 1.0, xc, d, 0.0, m2b, d);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < i; j++) m2b[(size_t)i * d + j] = m2b[(size_t)j * d + i];
    merge_moments(s, n, mb, m2b);
    free(mb);
    free(m2b);
}

void hafm_fad_stats_add_f32(hafm_fad_stats *s, const float *x, int64_t n) {
    int d = s->dim;
    int64_t blk = n < FAD_BLOCK ? n : FAD_BLOCK;
    if (n <= 0) return;
    double *buf = hafm_xmalloc((size_t)blk * d * sizeof(double));
    for (int64_t r0 = 0; r0 < n; r0 += blk) {
        int64_t m = n - r0 < blk ? n - r0 : blk;
        for (int64_t i = 0; i < m * d; i++) buf[i] = (double)x[r0 * d + i];
        add_block(s, buf, m);
    }
    free(buf);
}

void hafm_fad_stats_add_f64(hafm_fad_stats *s, const double *x, int64_t n) {
    int d = s->dim;
    int64_t blk = n < FAD_BLOCK ? n : FAD_BLOCK;
    if (n <= 0) return;
    double *buf = hafm_xmalloc((size_t)blk * d * sizeof(double));
    for (int64_t r0 = 0; r0 < n; r0 += blk) {
        int64_t m = n - r0 < blk ? n - r0 : blk;
        memcpy(buf, x + r0 * d, (size_t)(m * d) * sizeof(double));
        add_block(s, buf, m);
    }
    free(buf);
}

int hafm_fad_stats_merge(hafm_fad_stats *dst, const hafm_fad_stats *src) {
    if (dst->dim != src->dim) {
        hafm_error("embedding dimensions differ: %d vs %d", dst->dim, src->dim);
        return -1;
    }
    merge_moments(dst, src->n, src->mean, src->m2);
    return 0;
}

int hafm_fad_stats_cov(const hafm_fad_stats *s, double *cov) {
    if (s->n < 2) {
        hafm_error("a covariance needs at least 2 frames, got %" PRId64, s->n);
        return -1;
    }
    size_t dd = (size_t)s->dim * s->dim;
    double inv = 1.0 / (double)(s->n - 1);
    for (size_t i = 0; i < dd; i++) cov[i] = s->m2[i] * inv;
    return 0;
}

/* Symmetric eigendecomposition in place: a[d,d] -> eigenvectors (columns), w ascending. */
static int sym_eig(double *a, double *w, int d, char jobz) {
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, jobz, 'U', d, a, d, w);
    if (info != 0) {
        hafm_error("LAPACK dsyevd failed (info %d)", (int)info);
        return -1;
    }
    return 0;
}

int hafm_trace_sqrt_product(const double *C1, const double *C2, int d, double *out) {
    size_t dd = (size_t)d * d;
    double *v = hafm_xmalloc(dd * sizeof(double));
    double *b = hafm_xmalloc(dd * sizeof(double));
    double *r = hafm_xmalloc(dd * sizeof(double));
    double *w = hafm_xmalloc((size_t)d * sizeof(double));
    int rc = -1;
    memcpy(v, C1, dd * sizeof(double));
    if (sym_eig(v, w, d, 'V') < 0) goto done;
    /* R = V diag(sqrt(max(w,0))) V^T; negative eigenvalues of a PSD matrix are rounding noise. */
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            b[(size_t)i * d + j] = v[(size_t)i * d + j] * sqrt(w[j] > 0 ? w[j] : 0.0);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, d, 1.0, b, d, v, d, 0.0, r, d);
    /* M = R C2 R, symmetrised against rounding before the symmetric solver reads one triangle. */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, r, d, C2, d, 0.0, b, d);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, b, d, r, d, 0.0, v, d);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < i; j++) {
            double m = 0.5 * (v[(size_t)i * d + j] + v[(size_t)j * d + i]);
            v[(size_t)i * d + j] = v[(size_t)j * d + i] = m;
        }
    if (sym_eig(v, w, d, 'N') < 0) goto done;
    double tr = 0;
    for (int i = 0; i < d; i++) tr += sqrt(w[i] > 0 ? w[i] : 0.0);
    *out = tr;
    rc = 0;
done:
    free(v);
    free(b);
    free(r);
    free(w);
    return rc;
}

int hafm_frechet_distance(const double *mu1, const double *C1, const double *mu2,
                          const double *C2, int d, double *out) {
    double diff = 0, tr1 = 0, tr2 = 0, trs;
    for (int i = 0; i < d; i++) {
        double m = mu1[i] - mu2[i];
        diff += m * m;
        tr1 += C1[(size_t)i * d + i];
        tr2 += C2[(size_t)i * d + i];
    }
    if (hafm_trace_sqrt_product(C1, C2, d, &trs) < 0) return -1;
    *out = diff + tr1 + tr2 - 2.0 * trs;
    return 0;
}

int hafm_fad(const hafm_fad_stats *ref, const hafm_fad_stats *eval, double *out) {
    if (ref->dim != eval->dim) {
        hafm_error("embedding dimensions differ: reference %d, evaluated %d", ref->dim, eval->dim);
        return -1;
    }
    size_t dd = (size_t)ref->dim * ref->dim;
    double *c1 = hafm_xmalloc(dd * sizeof(double));
    double *c2 = hafm_xmalloc(dd * sizeof(double));
    int rc = -1;
    if (hafm_fad_stats_cov(ref, c1) < 0) { hafm_error_prefix("reference set"); goto done; }
    if (hafm_fad_stats_cov(eval, c2) < 0) { hafm_error_prefix("evaluated set"); goto done; }
    rc = hafm_frechet_distance(ref->mean, c1, eval->mean, c2, ref->dim, out);
done:
    free(c1);
    free(c2);
    return rc;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int hafm_fad_inf(const hafm_fad_stats *ref, const float *x, int64_t n, int dim, int steps,
                 int64_t min_n, uint64_t seed, hafm_fad_inf_result *out) {
    memset(out, 0, sizeof *out);
    if (dim != ref->dim) {
        hafm_error("embedding dimensions differ: reference %d, evaluated %d", ref->dim, dim);
        return -1;
    }
    if (steps < 2 || min_n < 2 || min_n >= n) {
        hafm_error("FAD-inf needs at least 2 steps and 2 <= minimum subset (%" PRId64
                   ") < evaluated frames (%" PRId64 ")", min_n, n);
        return -1;
    }
    out->steps = steps;
    out->sizes = hafm_xmalloc((size_t)steps * sizeof(int64_t));
    out->fad = hafm_xmalloc((size_t)steps * sizeof(double));
    hafm_fad_stats s;
    if (hafm_fad_stats_init(&s, dim) < 0) return -1;
    uint64_t rng = seed;
    float *sub = seed ? hafm_xmalloc((size_t)n * dim * sizeof(float)) : NULL;
    int rc = 0;
    for (int k = 0; k < steps && rc == 0; k++) {
        /* numpy's linspace then int(): truncation toward zero */
        int64_t m = (int64_t)((double)min_n + (double)(n - min_n) * k / (steps - 1));
        if (k == steps - 1) m = n;
        out->sizes[k] = m;
        hafm_fad_stats_reset(&s);
        if (seed) {
            for (int64_t i = 0; i < m; i++) {
                uint64_t row = splitmix64(&rng) % (uint64_t)n;
                memcpy(sub + i * dim, x + row * dim, (size_t)dim * sizeof(float));
            }
            hafm_fad_stats_add_f32(&s, sub, m);
        } else {
            hafm_fad_stats_add_f32(&s, x, m);
        }
        rc = hafm_fad(ref, &s, &out->fad[k]);
    }
    free(sub);
    hafm_fad_stats_free(&s);
    if (rc < 0) {
        hafm_fad_inf_free(out);
        return -1;
    }
    /* least squares y = slope * (1/size) + intercept, as numpy.polyfit(deg=1) */
    double sx = 0, sy = 0, sxx = 0, sxy = 0, N = steps;
    for (int k = 0; k < steps; k++) {
        double xi = 1.0 / (double)out->sizes[k], yi = out->fad[k];
        sx += xi; sy += yi; sxx += xi * xi; sxy += xi * yi;
    }
    double mx = sx / N, my = sy / N;
    double cxx = sxx - N * mx * mx, cxy = sxy - N * mx * my;
    out->slope = cxx > 0 ? cxy / cxx : 0;
    out->intercept = my - out->slope * mx;
    double ssr = 0, sst = 0;
    for (int k = 0; k < steps; k++) {
        double xi = 1.0 / (double)out->sizes[k], yi = out->fad[k];
        double e = yi - (out->slope * xi + out->intercept);
        ssr += e * e;
        sst += (yi - my) * (yi - my);
    }
    out->r2 = sst > 0 ? 1.0 - ssr / sst : 1.0;
    return 0;
}

void hafm_fad_inf_free(hafm_fad_inf_result *r) {
    free(r->sizes);
    free(r->fad);
    memset(r, 0, sizeof *r);
}

#define STATS_FORMAT "hafm-fad-stats-1"

int hafm_fad_stats_save(const hafm_fad_stats *s, const char *path,
                        const char *meta_key, const char *meta_value) {
    hafm_st_writer *w = hafm_st_writer_new();
    int64_t shp[2] = { s->dim, s->dim };
    char nbuf[32];
    snprintf(nbuf, sizeof nbuf, "%" PRId64, s->n);
    int rc = -1;
    if (hafm_st_writer_add(w, "mean", HAFM_DT_F64, 1, shp, s->mean) < 0) goto done;
    if (hafm_st_writer_add(w, "m2", HAFM_DT_F64, 2, shp, s->m2) < 0) goto done;
    if (hafm_st_writer_meta(w, "format", STATS_FORMAT) < 0) goto done;
    if (hafm_st_writer_meta(w, "n", nbuf) < 0) goto done;
    if (meta_key && hafm_st_writer_meta(w, meta_key, meta_value) < 0) goto done;
    rc = hafm_st_writer_save(w, path);
done:
    hafm_st_writer_free(w);
    return rc;
}

int hafm_fad_stats_load(hafm_fad_stats *s, const char *path) {
    memset(s, 0, sizeof *s);
    hafm_safetensors *st = hafm_st_open(path);
    if (!st) return -1;
    const char *fmt = hafm_st_meta(st, "format"), *ns = hafm_st_meta(st, "n");
    const hafm_st_tensor *mean = hafm_st_find(st, "mean"), *m2 = hafm_st_find(st, "m2");
    long n;
    int rc = -1;
    if (!fmt || strcmp(fmt, STATS_FORMAT) != 0 || !ns || hafm_parse_long(ns, 0, INT64_MAX, &n) < 0 ||
        !mean || !m2 || mean->ndim != 1 || mean->shape[0] < 1 || mean->shape[0] > FAD_MAX_DIM ||
        mean->dtype != HAFM_DT_F64 || m2->dtype != HAFM_DT_F64 ||
        m2->ndim != 2 || m2->shape[0] != mean->shape[0] ||
        m2->shape[1] != mean->shape[0]) {
        hafm_error("%s: not a hafm FAD statistics file", path);
        goto done;
    }
    if (hafm_fad_stats_init(s, (int)mean->shape[0]) < 0) goto done;
    memcpy(s->mean, mean->data, mean->nbytes);
    memcpy(s->m2, m2->data, m2->nbytes);
    s->n = n;
    rc = 0;
done:
    hafm_st_close(st);
    return rc;
}
