/* kmeans.c - nearest-centroid assignment, k-means++, Lloyd and mini-batch k-means. */
#include "hafm/kmeans.h"
#include "hafm/linalg.h"
#include "hafm/safetensors.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Points per distance GEMM block. */
#define ASSIGN_BLOCK 1024

/* ---- random numbers ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void hafm_rng_seed(hafm_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t hafm_rng_next(hafm_rng *r)
{
    uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double hafm_rng_uniform(hafm_rng *r) { return (hafm_rng_next(r) >> 11) * 0x1.0p-53; }

double hafm_rng_normal(hafm_rng *r)
{
    double u1 = 1.0 - hafm_rng_uniform(r), u2 = hafm_rng_uniform(r);   /* u1 in (0, 1] */
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- codebooks ------------------------------------------------------------------------------- */

static void row_norms(float *out, const float *x, int64_t n, int d)
{
    #pragma omp parallel for schedule(static) if (n * d > 65536)
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[i * d + j] * x[i * d + j];
        out[i] = (float)s;
    }
}

int hafm_codebook_init(hafm_codebook *cb, int k, int d, const float *centers)
{
    if (k < 1 || d < 1) {
        hafm_error("codebook of %d x %d centroids: both must be >= 1", k, d);
        return -1;
    }
    cb->k = k;
    cb->d = d;
    cb->features[0] = cb->cmvn[0] = 0;
    cb->centers = hafm_aligned_alloc((size_t)k * d * sizeof(float));
    cb->norm2 = hafm_aligned_alloc((size_t)k * sizeof(float));
    memcpy(cb->centers, centers, (size_t)k * d * sizeof(float));
    row_norms(cb->norm2, cb->centers, k, d);
    return 0;
}

void hafm_codebook_free(hafm_codebook *cb)
{
    free(cb->centers);
    free(cb->norm2);
    cb->centers = cb->norm2 = NULL;
}

/* Minimal NumPy .npy reader: versions 1-3, 2-D, '<f4' or '<f8', C order. */
static int load_npy(hafm_codebook *cb, const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        hafm_error("%s:", path);
        return -1;
    }
    unsigned char pre[12];
    int rc = -1;
    char *hdr = NULL;
    float *f = NULL;
    double *dd = NULL;
    if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        hafm_error("%s: not a NumPy .npy file", path);
        goto out;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, fp) != 2) goto truncated;
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        hafm_error("%s: unsupported .npy version %d", path, pre[6]);
        goto out;
    }
    if (hlen > (1u << 20)) {
        hafm_error("%s: .npy header too long", path);
        goto out;
    }
    hdr = hafm_xmalloc(hlen + 1);
    if (fread(hdr, 1, hlen, fp) != hlen) goto truncated;
    hdr[hlen] = 0;
    const char *descr = strstr(hdr, "'descr'"), *fo = strstr(hdr, "'fortran_order'"), *sh = strstr(hdr, "'shape'");
    if (!descr || !fo || !sh) {
        hafm_error("%s: malformed .npy header", path);
        goto out;
    }
    int is_f8;
    if (strncmp(descr + 7, ": '<f4'", 7) == 0) is_f8 = 0;
    else if (strncmp(descr + 7, ": '<f8'", 7) == 0) is_f8 = 1;
    else {
        hafm_error("%s: .npy dtype must be little-endian float32 or float64", path);
        goto out;
    }
    if (strncmp(fo + 15, ": False", 7) != 0) {
        hafm_error("%s: .npy array must be in C order", path);
        goto out;
    }
    long k, d;
    char close;
    if (sscanf(sh + 7, " : (%ld , %ld %c", &k, &d, &close) != 3 || close != ')' || k < 1 || d < 1 ||
        k > (1 << 24) || d > (1 << 20)) {
        hafm_error("%s: .npy array must be 2-D [K, D] (centroids x dimensions)", path);
        goto out;
    }
    size_t numel = (size_t)k * d;
    if (is_f8) {
        dd = hafm_xmalloc(numel * sizeof(double));
        if (fread(dd, sizeof(double), numel, fp) != numel) goto truncated;
        f = hafm_xmalloc(numel * sizeof(float));
        for (size_t i = 0; i < numel; i++) f[i] = (float)dd[i];
    } else {
        f = hafm_xmalloc(numel * sizeof(float));
        if (fread(f, sizeof(float), numel, fp) != numel) goto truncated;
    }
    for (size_t i = 0; i < numel; i++)
        if (!isfinite(f[i])) {
            hafm_error("%s: centroid %zu holds a non-finite value", path, i / d);
            goto out;
        }
    rc = hafm_codebook_init(cb, (int)k, (int)d, f);
    goto out;
truncated:
    hafm_error("%s: truncated .npy file", path);
out:
    free(hdr), free(f), free(dd);
    fclose(fp);
    return rc;
}

static int has_npy_magic(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    char b[6];
    int yes = fread(b, 1, 6, fp) == 6 && memcmp(b, "\x93NUMPY", 6) == 0;
    fclose(fp);
    return yes;
}

int hafm_codebook_load(hafm_codebook *cb, const char *path)
{
    memset(cb, 0, sizeof *cb);
    if (has_npy_magic(path)) return load_npy(cb, path);
    hafm_safetensors *st = hafm_st_open(path);
    if (!st) return -1;
    int rc = -1;
    const hafm_st_tensor *t = hafm_st_find(st, "cluster_centers");
    if (!t) {
        hafm_error("%s: no tensor 'cluster_centers' (a k-means codebook [K, D])", path);
    } else if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[0] > (1 << 24) || t->shape[1] > (1 << 20)) {
        hafm_error("%s: tensor 'cluster_centers' must be 2-D [K, D]", path);
    } else {
        float *c = hafm_st_load_f32(st, "cluster_centers", 2, t->shape);
        if (c) {
            int finite = 1;
            for (int64_t i = 0; i < t->numel && finite; i++) finite = isfinite(c[i]);
            if (!finite) hafm_error("%s: 'cluster_centers' holds non-finite values", path);
            else rc = hafm_codebook_init(cb, (int)t->shape[0], (int)t->shape[1], c);
            free(c);
            const char *features = hafm_st_meta(st, "features"), *cmvn = hafm_st_meta(st, "cmvn");
            if (rc == 0 && features) snprintf(cb->features, sizeof cb->features, "%s", features);
            if (rc == 0 && cmvn) snprintf(cb->cmvn, sizeof cb->cmvn, "%s", cmvn);
        }
    }
    hafm_st_close(st);
    return rc;
}

static int save_npy(const hafm_codebook *cb, const char *path)
{
    hafm_outfile *of = hafm_outfile_open(path);
    if (!of) return -1;
    char dict[128];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", cb->k, cb->d);
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    char header[256];
    memcpy(header, "\x93NUMPY\x01\x00", 8);
    int hlen = len + pad + 1;
    header[8] = (char)(hlen & 0xff);
    header[9] = (char)(hlen >> 8);
    memcpy(header + 10, dict, len);
    memset(header + 10 + len, ' ', pad);
    header[10 + len + pad] = '\n';
    FILE *fp = hafm_outfile_fp(of);
    if (fwrite(header, 1, 10 + hlen, fp) != (size_t)(10 + hlen) ||
        fwrite(cb->centers, sizeof(float), (size_t)cb->k * cb->d, fp) != (size_t)cb->k * cb->d) {
        hafm_error("%s: write failed:", path);
        hafm_outfile_abort(of);
        return -1;
    }
    return hafm_outfile_commit(of);
}

int hafm_codebook_save(const hafm_codebook *cb, const char *path)
{
    size_t len = strlen(path);
    if (len >= 4 && strcmp(path + len - 4, ".npy") == 0) return save_npy(cb, path);
    hafm_st_writer *w = hafm_st_writer_new();
    int64_t shape[2] = {cb->k, cb->d};
    int rc = hafm_st_writer_add(w, "cluster_centers", HAFM_DT_F32, 2, shape, cb->centers);
    if (rc == 0) rc = hafm_st_writer_meta(w, "format", "pt");
    if (rc == 0 && cb->features[0]) rc = hafm_st_writer_meta(w, "features", cb->features);
    if (rc == 0 && cb->cmvn[0]) rc = hafm_st_writer_meta(w, "cmvn", cb->cmvn);
    if (rc == 0) rc = hafm_st_writer_save(w, path);
    hafm_st_writer_free(w);
    return rc;
}

/* ---- assignment ------------------------------------------------------------------------------ */

static double exact_dist2(const float *x, const float *c, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++) {
        double diff = (double)x[j] - c[j];
        s += diff * diff;
    }
    return s;
}

/* Labels of x[n, d] against centers[k, d] with norms cn[k]; dist2 optional. xn: |x|^2.
 * Blocks of points go to the OpenMP threads, each with a single-threaded BLAS product: a
 * second (BLAS) thread pool would spin against the OpenMP one. */
static void assign_raw(int32_t *labels, float *dist2, const float *x, const float *xn, int64_t n, int d,
                       const float *centers, const float *cn, int k)
{
    int threads = strcmp(hafm_backend_name(), "openblas") == 0 ? hafm_get_threads() : 1;
    int64_t block = (n + threads - 1) / threads;
    if (block > ASSIGN_BLOCK) block = ASSIGN_BLOCK;
    if (block < 1) block = 1;
    int64_t nblocks = (n + block - 1) / block;
    int blas_threads = openblas_get_num_threads();
    if (threads > 1 && nblocks > 1) openblas_set_num_threads(1);
    float *g = hafm_aligned_alloc((size_t)threads * block * k * sizeof(float));
    #pragma omp parallel for schedule(dynamic) num_threads(threads) if (nblocks > 1)
    for (int64_t bi = 0; bi < nblocks; bi++) {
        int64_t b0 = bi * block, rows = n - b0 < block ? n - b0 : block;
        float *gb = g + (size_t)omp_get_thread_num() * block * k;
        hafm_sgemm(0, 1, (int)rows, k, d, -2.0f, x + b0 * d, d, centers, d, 0.0f, gb, k);
        for (int64_t r = 0; r < rows; r++) {
            const float *gr = gb + r * k;
            const float *xr = x + (b0 + r) * d;
            float best = gr[0] + cn[0];
            int bj = 0;
            for (int j = 1; j < k; j++) {
                float v = gr[j] + cn[j];
                if (v < best) best = v, bj = j;
            }
            /* |x|^2 + |c|^2 - 2x.c loses about eps*(|x|^2 + |c|^2) to rounding: any centre within
             * a generous multiple of that is re-decided exactly. */
            float slack = 1e-5f * (xn[b0 + r] + cn[bj]) + 1e-30f;
            double bd = exact_dist2(xr, centers + (size_t)bj * d, d);
            for (int j = 0; j < k; j++) {
                if (j == bj || gr[j] + cn[j] > best + slack) continue;
                double dj = exact_dist2(xr, centers + (size_t)j * d, d);
                if (dj < bd || (dj == bd && j < bj)) bd = dj, bj = j;
            }
            labels[b0 + r] = bj;
            if (dist2) dist2[b0 + r] = (float)bd;
        }
    }
    free(g);
    if (threads > 1 && nblocks > 1) openblas_set_num_threads(blas_threads);
}

void hafm_kmeans_assign(int32_t *labels, float *dist2, const float *x, int64_t n, const hafm_codebook *cb)
{
    if (n <= 0) return;
    float *xn = hafm_aligned_alloc((size_t)n * sizeof(float));
    row_norms(xn, x, n, cb->d);
    assign_raw(labels, dist2, x, xn, n, cb->d, cb->centers, cb->norm2, cb->k);
    free(xn);
}

double hafm_kmeans_inertia(const float *x, int64_t n, const hafm_codebook *cb)
{
    if (n <= 0) return 0;
    int32_t *labels = hafm_xmalloc((size_t)n * sizeof(int32_t));
    float *d2 = hafm_xmalloc((size_t)n * sizeof(float));
    hafm_kmeans_assign(labels, d2, x, n, cb);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += d2[i];
    free(labels), free(d2);
    return s;
}

/* ---- k-means++ ------------------------------------------------------------------------------- */

int hafm_kmeans_plusplus(float *centers, const float *x, int64_t n, int d, int k, hafm_rng *rng)
{
    if (n < k || k < 1) {
        hafm_error("k-means++: %lld points for %d centroids (need at least as many points)", (long long)n, k);
        return -1;
    }
    int trials = 2 + (int)log((double)k);
    float *xn = hafm_aligned_alloc((size_t)n * sizeof(float));
    float *closest = hafm_aligned_alloc((size_t)n * sizeof(float));
    float *cand_d = hafm_aligned_alloc((size_t)trials * n * sizeof(float));
    float *cand_x = hafm_aligned_alloc((size_t)trials * d * sizeof(float));
    double *cum = hafm_xmalloc((size_t)n * sizeof(double));
    int64_t *cand = hafm_xmalloc((size_t)trials * sizeof(int64_t));
    row_norms(xn, x, n, d);

    int64_t first = (int64_t)(hafm_rng_uniform(rng) * n);
    memcpy(centers, x + first * d, (size_t)d * sizeof(float));
    /* distances of every point to one row c: |x|^2 - 2 x.c + |c|^2, clamped at 0 */
    hafm_sgemm(0, 1, 1, (int)n, d, -2.0f, centers, d, x, d, 0.0f, closest, (int)n);
    double pot = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = closest[i] + xn[i] + xn[first];
        closest[i] = v > 0 ? v : 0;
        pot += closest[i];
    }
    for (int c = 1; c < k; c++) {
        double acc = 0;
        for (int64_t i = 0; i < n; i++) cum[i] = acc += closest[i];
        for (int t = 0; t < trials; t++) {
            double target = hafm_rng_uniform(rng) * pot;
            int64_t lo = 0, hi = n - 1;      /* first index with cum > target */
            while (lo < hi) {
                int64_t mid = (lo + hi) / 2;
                if (cum[mid] > target) hi = mid;
                else lo = mid + 1;
            }
            cand[t] = lo;
            memcpy(cand_x + (size_t)t * d, x + lo * d, (size_t)d * sizeof(float));
        }
        hafm_sgemm(0, 1, trials, (int)n, d, -2.0f, cand_x, d, x, d, 0.0f, cand_d, (int)n);
        int best = 0;
        double best_pot = INFINITY;
        for (int t = 0; t < trials; t++) {
            float *row = cand_d + (size_t)t * n;
            float cnorm = xn[cand[t]];
            double p = 0;
            #pragma omp parallel for schedule(static) reduction(+:p) if (n > 16384)
            for (int64_t i = 0; i < n; i++) {
                float v = row[i] + xn[i] + cnorm;
                v = v > 0 ? v : 0;
                row[i] = v < closest[i] ? v : closest[i];
                p += row[i];
            }
            if (p < best_pot) best_pot = p, best = t;
        }
        memcpy(closest, cand_d + (size_t)best * n, (size_t)n * sizeof(float));
        pot = best_pot;
        memcpy(centers + (size_t)c * d, x + cand[best] * d, (size_t)d * sizeof(float));
    }
    free(xn), free(closest), free(cand_d), free(cand_x), free(cum), free(cand);
    return 0;
}

/* ---- Lloyd ----------------------------------------------------------------------------------- */

typedef struct {
    int64_t i;
    float d;
} far_point;

static int by_distance_desc(const void *a, const void *b)
{
    const far_point *p = a, *q = b;
    if (p->d != q->d) return p->d < q->d ? 1 : -1;
    return p->i < q->i ? -1 : p->i > q->i;
}

/* New centres = means of their points; empty clusters take the farthest points (as
 * scikit-learn does), which leave their old clusters. */
static void update_centers(float *centers, const float *x, const int32_t *labels, const float *dist2,
                           int64_t n, int d, int k)
{
    double *sum = hafm_xcalloc((size_t)k * d, sizeof(double));
    int64_t *count = hafm_xcalloc(k, sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) count[labels[i]]++;
    #pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < d; j0 += 16) {
        int j1 = j0 + 16 < d ? j0 + 16 : d;
        for (int64_t i = 0; i < n; i++) {
            double *s = sum + (size_t)labels[i] * d;
            const float *xi = x + i * d;
            for (int j = j0; j < j1; j++) s[j] += xi[j];
        }
    }
    int empty = 0;
    for (int c = 0; c < k; c++) empty += count[c] == 0;
    if (empty) {
        far_point *fp = hafm_xmalloc((size_t)n * sizeof *fp);
        for (int64_t i = 0; i < n; i++) fp[i] = (far_point){i, dist2[i]};
        qsort(fp, n, sizeof *fp, by_distance_desc);
        int64_t next = 0;
        for (int c = 0; c < k && next < n; c++) {
            if (count[c]) continue;
            int64_t p = fp[next++].i;
            int old = labels[p];
            if (count[old] <= 1) continue;
            for (int j = 0; j < d; j++) {
                sum[(size_t)old * d + j] -= x[p * d + j];
                sum[(size_t)c * d + j] = x[p * d + j];
            }
            count[old]--;
            count[c] = 1;
        }
        free(fp);
    }
    for (int c = 0; c < k; c++)
        if (count[c])
            for (int j = 0; j < d; j++) centers[(size_t)c * d + j] = (float)(sum[(size_t)c * d + j] / count[c]);
    free(sum), free(count);
}

int hafm_kmeans_lloyd(float *centers, const float *x, int64_t n, int d, int k, int max_iter,
                      double tol, double *inertia, hafm_kmeans_log_fn log, void *ctx)
{
    if (n < 1 || k < 1 || max_iter < 1) {
        hafm_error("k-means: need points, centroids and at least one iteration");
        return -1;
    }
    /* tolerance relative to the data: tol x mean per-dimension variance */
    double var_sum = 0;
    #pragma omp parallel for schedule(static) reduction(+:var_sum)
    for (int j = 0; j < d; j++) {
        double s = 0, sq = 0;
        for (int64_t i = 0; i < n; i++) s += x[i * d + j];
        double mean = s / n;
        for (int64_t i = 0; i < n; i++) sq += (x[i * d + j] - mean) * (x[i * d + j] - mean);
        var_sum += sq / n;
    }
    double tol_abs = tol * var_sum / d;
    float *xn = hafm_aligned_alloc((size_t)n * sizeof(float));
    float *cn = hafm_aligned_alloc((size_t)k * sizeof(float));
    float *dist2 = hafm_aligned_alloc((size_t)n * sizeof(float));
    float *old = hafm_aligned_alloc((size_t)k * d * sizeof(float));
    int32_t *labels = hafm_xmalloc((size_t)n * sizeof(int32_t));
    int32_t *prev = hafm_xmalloc((size_t)n * sizeof(int32_t));
    row_norms(xn, x, n, d);
    int it, converged_labels = 0;
    for (it = 1; it <= max_iter; it++) {
        row_norms(cn, centers, k, d);
        assign_raw(labels, dist2, x, xn, n, d, centers, cn, k);
        if (it > 1 && memcmp(labels, prev, (size_t)n * sizeof(int32_t)) == 0) {
            converged_labels = 1;   /* centres are already the means of this assignment */
            break;
        }
        double in = 0;
        for (int64_t i = 0; i < n; i++) in += dist2[i];
        memcpy(old, centers, (size_t)k * d * sizeof(float));
        update_centers(centers, x, labels, dist2, n, d, k);
        double shift = 0;
        for (int64_t j = 0; j < (int64_t)k * d; j++) shift += (double)(centers[j] - old[j]) * (centers[j] - old[j]);
        if (log) log(ctx, it, in, shift);
        memcpy(prev, labels, (size_t)n * sizeof(int32_t));
        if (shift <= tol_abs) {
            it++;
            break;
        }
    }
    if (!converged_labels) {
        row_norms(cn, centers, k, d);
        assign_raw(labels, dist2, x, xn, n, d, centers, cn, k);
    }
    double in = 0;
    for (int64_t i = 0; i < n; i++) in += dist2[i];
    if (inertia) *inertia = in;
    free(xn), free(cn), free(dist2), free(old), free(labels), free(prev);
    return it - 1;
}

typedef struct {
    hafm_kmeans_run_log_fn log;
    void *ctx;
    int run;
} run_log;

static void forward_log(void *vctx, int iter, double inertia, double shift)
{
    run_log *rl = vctx;
    rl->log(rl->ctx, rl->run, iter, inertia, shift);
}

int hafm_kmeans_fit(float *centers, const float *x, int64_t n, int d, int k, int n_init, int max_iter,
                    double tol, uint64_t seed, double *inertia, hafm_kmeans_run_log_fn log, void *ctx)
{
    float *trial = hafm_aligned_alloc((size_t)k * d * sizeof(float));
    double best = INFINITY;
    for (int r = 0; r < (n_init > 0 ? n_init : 1); r++) {
        hafm_rng rng;
        hafm_rng_seed(&rng, seed + (uint64_t)r);
        if (hafm_kmeans_plusplus(trial, x, n, d, k, &rng) < 0) {
            free(trial);
            return -1;
        }
        double in;
        run_log rl = {log, ctx, r};
        if (hafm_kmeans_lloyd(trial, x, n, d, k, max_iter, tol, &in, log ? forward_log : NULL, &rl) < 0) {
            free(trial);
            return -1;
        }
        if (in < best) {
            best = in;
            memcpy(centers, trial, (size_t)k * d * sizeof(float));
        }
    }
    if (inertia) *inertia = best;
    free(trial);
    return 0;
}

/* ---- mini-batch ------------------------------------------------------------------------------ */

double hafm_kmeans_minibatch_step(float *centers, int64_t *counts, const float *batch, int64_t b,
                                  int d, int k)
{
    if (b <= 0) return 0;
    float *xn = hafm_aligned_alloc((size_t)b * sizeof(float));
    float *cn = hafm_aligned_alloc((size_t)k * sizeof(float));
    float *dist2 = hafm_aligned_alloc((size_t)b * sizeof(float));
    int32_t *labels = hafm_xmalloc((size_t)b * sizeof(int32_t));
    row_norms(xn, batch, b, d);
    row_norms(cn, centers, k, d);
    assign_raw(labels, dist2, batch, xn, b, d, centers, cn, k);
    double in = 0;
    for (int64_t i = 0; i < b; i++) in += dist2[i];
    double *sum = hafm_xcalloc((size_t)k * d, sizeof(double));
    int64_t *nb = hafm_xcalloc(k, sizeof(int64_t));
    for (int64_t i = 0; i < b; i++) {
        nb[labels[i]]++;
        for (int j = 0; j < d; j++) sum[(size_t)labels[i] * d + j] += batch[i * d + j];
    }
    /* c <- (c * n_old + sum) / (n_old + n_batch): the running mean of every point it absorbed */
    for (int c = 0; c < k; c++) {
        if (!nb[c]) continue;
        int64_t total = counts[c] + nb[c];
        for (int j = 0; j < d; j++)
            centers[(size_t)c * d + j] = (float)(((double)centers[(size_t)c * d + j] * counts[c] + sum[(size_t)c * d + j]) / total);
        counts[c] = total;
    }
    free(xn), free(cn), free(dist2), free(labels), free(sum), free(nb);
    return in;
}
