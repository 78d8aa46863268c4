/* vggish.c - VGGish front end and network (see hafm/vggish.h). */
#include "hafm/vggish.h"
#include "hafm/linalg.h"
#include "hafm/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WIN 400
#define HOP 160
#define NFFT 512
#define MEL_LO 125.0
#define MEL_HI 7500.0
#define LOG_OFFSET 0.01

static double hz_to_mel(double f) { return 1127.0 * log(1.0 + f / 700.0); }

void hafm_vggish_mel_matrix(double *m) {
    const int nb = HAFM_VGGISH_FFT_BINS, nm = HAFM_VGGISH_BANDS;
    double edges[HAFM_VGGISH_BANDS + 2];
    double lo = hz_to_mel(MEL_LO), hi = hz_to_mel(MEL_HI);
    for (int i = 0; i < nm + 2; i++) edges[i] = lo + (hi - lo) * i / (nm + 1);
    for (int k = 0; k < nb; k++) {
        double mel = hz_to_mel(8000.0 * k / (nb - 1));
        for (int b = 0; b < nm; b++) {
            double l = edges[b], c = edges[b + 1], u = edges[b + 2];
            double lower = (mel - l) / (c - l), upper = (u - mel) / (u - c);
            double w = lower < upper ? lower : upper;
            m[k * nm + b] = k == 0 || w < 0 ? 0.0 : w;
        }
    }
}

int64_t hafm_vggish_num_examples(int64_t n) {
    int64_t frames = n >= WIN ? 1 + (n - WIN) / HOP : 0;
    return frames / HAFM_VGGISH_FRAMES;
}

/* Magnitudes of the 512-point DFT of a real frame, in double precision: the golden front end is
 * float64 and a float32 FFT's noise floor (~1e-6 of the peak) shows up through log(mel + 0.01)
 * on tonal input, where most bands are near zero. Iterative radix-2, twiddles precomputed. */
typedef struct { double cos_t[NFFT / 2], sin_t[NFFT / 2]; int rev[NFFT]; } fft512_tables;

static void fft512_init(fft512_tables *tb) {
    for (int k = 0; k < NFFT / 2; k++) {
        tb->cos_t[k] = cos(2.0 * M_PI * k / NFFT);
        tb->sin_t[k] = -sin(2.0 * M_PI * k / NFFT);
    }
    for (int i = 0; i < NFFT; i++) {
        int r = 0;
        for (int b = 1, j = i; b < NFFT; b <<= 1, j >>= 1) r = (r << 1) | (j & 1);
        tb->rev[i] = r;
    }
}

static void fft512_mag(const fft512_tables *tb, double *mag, const double *frame) {
    double re[NFFT], im[NFFT];
    for (int i = 0; i < NFFT; i++) {
        re[i] = frame[tb->rev[i]];
        im[i] = 0;
    }
    for (int len = 2; len <= NFFT; len <<= 1) {
        int half = len / 2, step = NFFT / len;
        for (int i = 0; i < NFFT; i += len)
            for (int j = 0; j < half; j++) {
                double wr = tb->cos_t[j * step], wi = tb->sin_t[j * step];
                double xr = re[i + j + half] * wr - im[i + j + half] * wi;
                double xi = re[i + j + half] * wi + im[i + j + half] * wr;
                re[i + j + half] = re[i + j] - xr;
                im[i + j + half] = im[i + j] - xi;
                re[i + j] += xr;
                im[i + j] += xi;
            }
    }
    for (int k = 0; k < HAFM_VGGISH_FFT_BINS; k++) mag[k] = hypot(re[k], im[k]);
}

/* xf or xd: float or double samples */
static int64_t logmel(float *out, const float *xf, const double *xd, int64_t n) {
    int64_t ex = hafm_vggish_num_examples(n);
    if (ex == 0) return 0;
    int64_t frames = ex * HAFM_VGGISH_FRAMES;
    double *mel = hafm_xmalloc((size_t)HAFM_VGGISH_FFT_BINS * HAFM_VGGISH_BANDS * sizeof(double));
    fft512_tables *tb = hafm_xmalloc(sizeof *tb);
    double window[WIN];
    for (int i = 0; i < WIN; i++) window[i] = 0.5 - 0.5 * cos(2.0 * M_PI * i / WIN);
    hafm_vggish_mel_matrix(mel);
    fft512_init(tb);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < frames; t++) {
        double frame[NFFT] = { 0 }, mag[HAFM_VGGISH_FFT_BINS], acc[HAFM_VGGISH_BANDS] = { 0 };
        for (int i = 0; i < WIN; i++)
            frame[i] = (xf ? (double)xf[t * HOP + i] : xd[t * HOP + i]) * window[i];
        fft512_mag(tb, mag, frame);
        for (int k = 1; k < HAFM_VGGISH_FFT_BINS; k++) {
            const double *row = mel + (size_t)k * HAFM_VGGISH_BANDS;
            for (int b = 0; b < HAFM_VGGISH_BANDS; b++) acc[b] += mag[k] * row[b];
        }
        for (int b = 0; b < HAFM_VGGISH_BANDS; b++)
            out[t * HAFM_VGGISH_BANDS + b] = (float)log(acc[b] + LOG_OFFSET);
    }
    free(tb);
    free(mel);
    return ex;
}

int64_t hafm_vggish_logmel(float *out, const float *x, int64_t n) { return logmel(out, x, NULL, n); }

int64_t hafm_vggish_logmel_f64(float *out, const double *x, int64_t n) { return logmel(out, NULL, x, n); }

/* ---- network --------------------------------------------------------------------------------- */

#define NCONV 6
#define NFC 3

struct hafm_vggish {
    int cin[NCONV], cout[NCONV];
    float *cw[NCONV], *cb[NCONV];      /* OIHW [cout, cin*9], [cout] */
    int fin[NFC], fout[NFC];
    float *fw[NFC], *fb[NFC];          /* [fin, fout] (so x @ W), [fout] */
};

static const int pool_after[NCONV] = { 1, 1, 0, 1, 0, 1 };

static const hafm_st_tensor *find_either(const hafm_safetensors *st, const char *a, const char *b) {
    const hafm_st_tensor *t = hafm_st_find(st, a);
    return t ? t : hafm_st_find(st, b);
}

static float *load_tensor(const hafm_safetensors *st, const hafm_st_tensor *t, int ndim) {
    if (t->ndim != ndim) {
        hafm_error("%s: tensor '%s': expected %d dimensions, got %d", hafm_st_path(st), t->name, ndim, t->ndim);
        return NULL;
    }
    return hafm_st_load_f32(st, t->name, t->ndim, t->shape);
}

void hafm_vggish_free(hafm_vggish *m) {
    if (!m) return;
    for (int i = 0; i < NCONV; i++) { free(m->cw[i]); free(m->cb[i]); }
    for (int i = 0; i < NFC; i++) { free(m->fw[i]); free(m->fb[i]); }
    free(m);
}

hafm_vggish *hafm_vggish_load(const char *path) {
    static const char *torch_conv[NCONV] = { "features.0", "features.3", "features.6", "features.8",
                                             "features.11", "features.13" };
    static const char *tf_conv[NCONV] = { "vggish/conv1", "vggish/conv2", "vggish/conv3/conv3_1",
                                          "vggish/conv3/conv3_2", "vggish/conv4/conv4_1", "vggish/conv4/conv4_2" };
    static const char *torch_fc[NFC] = { "embeddings.0", "embeddings.2", "embeddings.4" };
    static const char *tf_fc[NFC] = { "vggish/fc1/fc1_1", "vggish/fc1/fc1_2", "vggish/fc2" };
    hafm_safetensors *st = hafm_st_open(path);
    if (!st) return NULL;
    hafm_vggish *m = hafm_xcalloc(1, sizeof *m);
    char a[96], b[96];
    int tf = hafm_st_find(st, "vggish/conv1/weights") != NULL;
    if (!tf && !hafm_st_find(st, "features.0.weight")) {
        hafm_error("%s: not VGGish weights (neither 'features.0.weight' nor 'vggish/conv1/weights')", path);
        goto fail;
    }
    int prev = 1;
    for (int i = 0; i < NCONV; i++) {
        snprintf(a, sizeof a, "%s.weight", torch_conv[i]);
        snprintf(b, sizeof b, "%s/weights", tf_conv[i]);
        const hafm_st_tensor *w = find_either(st, tf ? b : a, tf ? b : a);
        if (!w) { hafm_error("%s: tensor '%s' missing", path, tf ? b : a); goto fail; }
        float *raw = load_tensor(st, w, 4);
        if (!raw) goto fail;
        int co = (int)(tf ? w->shape[3] : w->shape[0]), ci = (int)(tf ? w->shape[2] : w->shape[1]);
        if (ci != prev || w->shape[tf ? 0 : 2] != 3 || w->shape[tf ? 1 : 3] != 3) {
            free(raw);
            hafm_error("%s: tensor '%s': not a 3x3 convolution from %d channels", path, w->name, prev);
            goto fail;
        }
        m->cin[i] = ci;
        m->cout[i] = co;
        if (tf) {   /* HWIO -> OIHW */
            m->cw[i] = hafm_xmalloc((size_t)co * ci * 9 * sizeof(float));
            for (int k = 0; k < 9; k++)
                for (int c = 0; c < ci; c++)
                    for (int o = 0; o < co; o++) m->cw[i][((size_t)o * ci + c) * 9 + k] = raw[((size_t)k * ci + c) * co + o];
            free(raw);
        } else {
            m->cw[i] = raw;
        }
        snprintf(a, sizeof a, tf ? "%s/biases" : "%s.bias", tf ? tf_conv[i] : torch_conv[i]);
        int64_t shp[1] = { co };
        if (!(m->cb[i] = hafm_st_load_f32(st, a, 1, shp))) goto fail;
        prev = co;
    }
    int flat = prev * (HAFM_VGGISH_FRAMES / 16) * (HAFM_VGGISH_BANDS / 16);
    for (int i = 0; i < NFC; i++) {
        snprintf(a, sizeof a, tf ? "%s/weights" : "%s.weight", tf ? tf_fc[i] : torch_fc[i]);
        const hafm_st_tensor *w = hafm_st_find(st, a);
        if (!w) { hafm_error("%s: tensor '%s' missing", path, a); goto fail; }
        float *raw = load_tensor(st, w, 2);
        if (!raw) goto fail;
        int fin = (int)(tf ? w->shape[0] : w->shape[1]), fout = (int)(tf ? w->shape[1] : w->shape[0]);
        if (fin != flat) {
            free(raw);
            hafm_error("%s: tensor '%s': %d inputs, expected %d", path, a, fin, flat);
            goto fail;
        }
        m->fin[i] = fin;
        m->fout[i] = fout;
        if (!tf) {   /* torch Linear [out, in] -> [in, out] */
            m->fw[i] = hafm_xmalloc((size_t)fin * fout * sizeof(float));
            for (int o = 0; o < fout; o++)
                for (int c = 0; c < fin; c++) m->fw[i][(size_t)c * fout + o] = raw[(size_t)o * fin + c];
            free(raw);
        } else {
            m->fw[i] = raw;
        }
        snprintf(a, sizeof a, tf ? "%s/biases" : "%s.bias", tf ? tf_fc[i] : torch_fc[i]);
        int64_t shp[1] = { fout };
        if (!(m->fb[i] = hafm_st_load_f32(st, a, 1, shp))) goto fail;
        flat = fout;
    }
    hafm_st_close(st);
    return m;
fail:
    hafm_st_close(st);
    hafm_vggish_free(m);
    return NULL;
}

int hafm_vggish_dim(const hafm_vggish *m) { return m->fout[NFC - 1]; }

/* 3x3 same convolution + bias + ReLU: out [co, H, W], in [ci, H, W] (im2col + sgemm) */
static void conv3x3_relu(float *out, const float *in, const float *w, const float *b, int ci, int co,
                         int H, int W, float *cols) {
    for (int c = 0; c < ci; c++)
        for (int k = 0; k < 9; k++) {
            int dy = k / 3 - 1, dx = k % 3 - 1;
            float *d = cols + ((size_t)c * 9 + k) * H * W;
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int iy = y + dy, ix = x + dx;
                    d[y * W + x] = iy >= 0 && iy < H && ix >= 0 && ix < W ? in[((size_t)c * H + iy) * W + ix] : 0.0f;
                }
        }
    hafm_sgemm(0, 0, co, H * W, ci * 9, 1.0f, w, ci * 9, cols, H * W, 0.0f, out, H * W);
    for (int o = 0; o < co; o++)
        for (int i = 0; i < H * W; i++) {
            float v = out[(size_t)o * H * W + i] + b[o];
            out[(size_t)o * H * W + i] = v > 0 ? v : 0;
        }
}

/* 2x2 max pool, stride 2: [c, H, W] -> [c, H/2, W/2] */
static void maxpool2(float *out, const float *in, int c, int H, int W) {
    for (int k = 0; k < c; k++)
        for (int y = 0; y < H / 2; y++)
            for (int x = 0; x < W / 2; x++) {
                const float *p = in + ((size_t)k * H + 2 * y) * W + 2 * x;
                float m = fmaxf(fmaxf(p[0], p[1]), fmaxf(p[W], p[W + 1]));
                out[((size_t)k * (H / 2) + y) * (W / 2) + x] = m;
            }
}

int hafm_vggish_embed(hafm_vggish *m, float *emb, const float *examples, int64_t n) {
    if (n <= 0) return 0;
    const int H0 = HAFM_VGGISH_FRAMES, W0 = HAFM_VGGISH_BANDS;
    int maxc = 1;
    for (int i = 0; i < NCONV; i++) maxc = m->cout[i] > maxc ? m->cout[i] : maxc;
    int flat = m->fin[0];
    float *feat = hafm_xmalloc((size_t)n * flat * sizeof(float));
    /* one example at a time: the convolutions' sgemm calls are the parallel part */
    {
        float *a = hafm_xmalloc((size_t)maxc * H0 * W0 * sizeof(float));
        float *b = hafm_xmalloc((size_t)maxc * H0 * W0 * sizeof(float));
        float *cols = hafm_xmalloc((size_t)maxc * 9 * H0 * W0 * sizeof(float));
        for (int64_t e = 0; e < n; e++) {
            int H = H0, W = W0, C = 1;
            memcpy(a, examples + (size_t)e * H0 * W0, (size_t)H0 * W0 * sizeof(float));
            for (int i = 0; i < NCONV; i++) {
                conv3x3_relu(b, a, m->cw[i], m->cb[i], C, m->cout[i], H, W, cols);
                C = m->cout[i];
                if (pool_after[i]) {
                    maxpool2(a, b, C, H, W);
                    H /= 2;
                    W /= 2;
                } else {
                    memcpy(a, b, (size_t)C * H * W * sizeof(float));
                }
            }
            /* flatten in (H, W, C) order, as TF and the torch port's transposes do */
            float *f = feat + (size_t)e * flat;
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int c = 0; c < C; c++) f[((size_t)y * W + x) * C + c] = a[((size_t)c * H + y) * W + x];
        }
        free(a);
        free(b);
        free(cols);
    }
    float *cur = feat;
    for (int i = 0; i < NFC; i++) {
        float *nxt = i == NFC - 1 ? emb : hafm_xmalloc((size_t)n * m->fout[i] * sizeof(float));
        for (int64_t e = 0; e < n; e++) memcpy(nxt + (size_t)e * m->fout[i], m->fb[i], (size_t)m->fout[i] * sizeof(float));
        hafm_sgemm(0, 0, (int)n, m->fout[i], m->fin[i], 1.0f, cur, m->fin[i], m->fw[i], m->fout[i], 1.0f, nxt, m->fout[i]);
        if (i < NFC - 1)   /* the embedding is taken before the last ReLU */
            for (size_t k = 0; k < (size_t)n * m->fout[i]; k++) nxt[k] = nxt[k] > 0 ? nxt[k] : 0;
        free(cur);
        cur = nxt;
    }
    return 0;
}
