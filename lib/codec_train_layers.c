/* codec_train_layers.c - forward and backward kernels of the SEANet layers (hafm/codec_train.h).
 *
 * Convolutions are im2col + one hafm_sgemm over the whole batch; the LSTM batches its input
 * projection over all frames and runs one [B,H]x[H,4H] product per time step. */
#include "hafm/codec_train.h"
#include "hafm/common.h"
#include "hafm/linalg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- weight norm --------------------------------------------------------------------------- */

void ct_weightnorm_forward(float *w, float *norm, const float *g, const float *v, int n0, int rest)
{
    for (int r = 0; r < n0; r++) {
        const float *vr = v + (size_t)r * rest;
        double ss = 0.0;
        for (int j = 0; j < rest; j++) ss += (double)vr[j] * vr[j];
        float n = (float)sqrt(ss);
        norm[r] = n;
        float scale = g[r] / n;
        for (int j = 0; j < rest; j++) w[(size_t)r * rest + j] = vr[j] * scale;
    }
}

/* w = g v / n:  dg = (dw.v)/n,  dv = (g/n) (dw - (dw.v)/n^2 v) */
void ct_weightnorm_backward(float *dg, float *dv, const float *dw, const float *g, const float *v,
                            const float *norm, int n0, int rest)
{
    for (int r = 0; r < n0; r++) {
        const float *vr = v + (size_t)r * rest, *dwr = dw + (size_t)r * rest;
        double dot = 0.0;
        for (int j = 0; j < rest; j++) dot += (double)dwr[j] * vr[j];
        float n = norm[r];
        dg[r] += (float)(dot / n);
        float a = g[r] / n, bcoef = (float)(dot / ((double)n * n));
        for (int j = 0; j < rest; j++) dv[(size_t)r * rest + j] += a * (dwr[j] - bcoef * vr[j]);
    }
}

/* ---- padding ------------------------------------------------------------------------------- */

int ct_conv_out_len(int L, int stride) { return (L + stride - 1) / stride; }

void ct_conv_padding(int L, int k, int stride, int dil, int *left, int *right)
{
    int k_eff = (k - 1) * dil + 1;
    *left = k_eff - stride;                          /* causal: all the fixed padding on the left */
    *right = ct_conv_out_len(L, stride) * stride - L; /* "extra" up to a whole last frame */
}

int ct_pad_map(int *map, int L, int left, int right)
{
    /* Short inputs are first extended with zeros so that the reflection exists, and the
     * extension is dropped again at the end (EnCodec's pad1d). */
    int maxpad = left > right ? left : right;
    int L2 = L <= maxpad ? maxpad + 1 : L;
    int Lp = L + left + right;
    for (int p = 0; p < Lp; p++) {
        int j = p - left;
        if (j < 0) j = -j;
        if (j >= L2) j = 2 * (L2 - 1) - j;
        map[p] = j < L ? j : -1;
    }
    return Lp;
}

/* ---- conv1d -------------------------------------------------------------------------------- */

static int conv_is_pointwise(int K, int stride) { return K == 1 && stride == 1; }

/* col[(ci*K + k)][b*Tout + t] = inp[ci][b][map[t*s + k*d]] */
static void im2col(float *col, const float *inp, const int *map, int B, int Cin, int L, int Tout,
                   int K, int stride, int dil)
{
    const long rows = (long)Cin * K;
#pragma omp parallel for schedule(static) if ((size_t)rows * B * Tout > CT_OMP_MIN)
    for (long r = 0; r < rows; r++) {
        int ci = (int)(r / K), k = (int)(r % K);
        for (int b = 0; b < B; b++) {
            const float *x = inp + ((size_t)ci * B + b) * L;
            float *dst = col + (size_t)r * B * Tout + (size_t)b * Tout;
            for (int t = 0; t < Tout; t++) {
                int src = map[t * stride + k * dil];
                dst[t] = src >= 0 ? x[src] : 0.0f;
            }
        }
    }
}

/* dinp[ci][b][map[...]] += dcol[...]; one thread per input channel, so no two write the same row */
static void col2im_add(float *dinp, const float *dcol, const int *map, int B, int Cin, int L, int Tout,
                       int K, int stride, int dil)
{
#pragma omp parallel for schedule(static) if ((size_t)Cin * K * B * Tout > CT_OMP_MIN)
    for (int ci = 0; ci < Cin; ci++) {
        for (int k = 0; k < K; k++) {
            const float *src_row = dcol + ((size_t)ci * K + k) * B * Tout;
            for (int b = 0; b < B; b++) {
                float *dx = dinp + ((size_t)ci * B + b) * L;
                const float *src = src_row + (size_t)b * Tout;
                for (int t = 0; t < Tout; t++) {
                    int p = map[t * stride + k * dil];
                    if (p >= 0) dx[p] += src[t];
                }
            }
        }
    }
}

static int *conv_map(int L, int K, int stride, int dil)
{
    int left, right;
    ct_conv_padding(L, K, stride, dil, &left, &right);
    int *map = hafm_xmalloc(sizeof(int) * (size_t)(L + left + right));
    ct_pad_map(map, L, left, right);
    return map;
}

static void add_bias_rows(float *out, const float *b, int C, size_t n)
{
#pragma omp parallel for schedule(static) if ((size_t)C * n > CT_OMP_MIN)
    for (int c = 0; c < C; c++) {
        float bc = b[c];
        float *o = out + (size_t)c * n;
        for (size_t i = 0; i < n; i++) o[i] += bc;
    }
}

static void sum_rows_add(float *db, const float *d, int C, size_t n)
{
#pragma omp parallel for schedule(static) if ((size_t)C * n > CT_OMP_MIN)
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        const float *r = d + (size_t)c * n;
        for (size_t i = 0; i < n; i++) s += r[i];
        db[c] += (float)s;
    }
}

void ct_conv1d_forward(float *out, float *col, const float *inp, const float *w, const float *b,
                       int B, int Cin, int L, int Cout, int K, int stride, int dil)
{
    int Tout = ct_conv_out_len(L, stride);
    int N = B * Tout, CK = Cin * K;
    const float *cols = inp;
    if (!conv_is_pointwise(K, stride)) {
        int *map = conv_map(L, K, stride, dil);
        im2col(col, inp, map, B, Cin, L, Tout, K, stride, dil);
        free(map);
        cols = col;
    }
    hafm_sgemm(0, 0, Cout, N, CK, 1.0f, w, CK, cols, N, 0.0f, out, N);   /* [Cout,CK] x [CK,N] */
    add_bias_rows(out, b, Cout, (size_t)N);
}

void ct_conv1d_backward(float *dinp, float *dw, float *db, float *col, float *dcol,
                        const float *dout, const float *inp, const float *w,
                        int B, int Cin, int L, int Cout, int K, int stride, int dil)
{
    int Tout = ct_conv_out_len(L, stride);
    int N = B * Tout, CK = Cin * K;
    sum_rows_add(db, dout, Cout, (size_t)N);
    if (conv_is_pointwise(K, stride)) {
        hafm_sgemm(0, 1, Cout, CK, N, 1.0f, dout, N, inp, N, 1.0f, dw, CK);   /* dout x inp^T */
        hafm_sgemm(1, 0, CK, N, Cout, 1.0f, w, CK, dout, N, 1.0f, dinp, N);   /* w^T x dout */
        return;
    }
    int *map = conv_map(L, K, stride, dil);
    im2col(col, inp, map, B, Cin, L, Tout, K, stride, dil);   /* recomputed: cheaper than keeping it */
    hafm_sgemm(0, 1, Cout, CK, N, 1.0f, dout, N, col, N, 1.0f, dw, CK);
    hafm_sgemm(1, 0, CK, N, Cout, 1.0f, w, CK, dout, N, 0.0f, dcol, N);
    col2im_add(dinp, dcol, map, B, Cin, L, Tout, K, stride, dil);
    free(map);
}

/* ---- transposed conv1d ------------------------------------------------------------------------ */

void ct_convtr1d_forward(float *out, float *col, const float *inp, const float *w, const float *b,
                         int B, int Cin, int T, int Cout, int K, int stride)
{
    int N = B * T, CK = Cout * K, Lout = T * stride;
    hafm_sgemm(1, 0, CK, N, Cin, 1.0f, w, CK, inp, N, 0.0f, col, N);   /* w^T [CK,Cin] x inp [Cin,N] */
    /* overlap-add; frames past Lout are the trimmed right padding (K - stride samples) */
#pragma omp parallel for schedule(static) if ((size_t)Cout * K * B * T > CT_OMP_MIN)
    for (int co = 0; co < Cout; co++) {
        for (int bb = 0; bb < B; bb++) {
            float *y = out + ((size_t)co * B + bb) * Lout;
            for (int i = 0; i < Lout; i++) y[i] = b[co];
            for (int k = 0; k < K; k++) {
                const float *src = col + ((size_t)co * K + k) * N + (size_t)bb * T;
                for (int t = 0; t < T; t++) {
                    int p = t * stride + k;
                    if (p < Lout) y[p] += src[t];
                }
            }
        }
    }
}

void ct_convtr1d_backward(float *dinp, float *dw, float *db, float *dcol, const float *dout,
                          const float *inp, const float *w, int B, int Cin, int T, int Cout, int K,
                          int stride)
{
    int N = B * T, CK = Cout * K, Lout = T * stride;
    sum_rows_add(db, dout, Cout, (size_t)B * Lout);
#pragma omp parallel for schedule(static) if ((size_t)Cout * K * B * T > CT_OMP_MIN)
    for (int co = 0; co < Cout; co++) {
        for (int k = 0; k < K; k++) {
            float *dst = dcol + ((size_t)co * K + k) * N;
            for (int bb = 0; bb < B; bb++) {
                const float *dy = dout + ((size_t)co * B + bb) * Lout;
                for (int t = 0; t < T; t++) {
                    int p = t * stride + k;
                    dst[(size_t)bb * T + t] = p < Lout ? dy[p] : 0.0f;
                }
            }
        }
    }
    hafm_sgemm(0, 1, Cin, CK, N, 1.0f, inp, N, dcol, N, 1.0f, dw, CK);   /* inp x dcol^T */
    hafm_sgemm(0, 0, Cin, N, CK, 1.0f, w, CK, dcol, N, 1.0f, dinp, N);   /* w x dcol */
}

/* ---- ELU ----------------------------------------------------------------------------------- */

void ct_elu_forward(float *out, const float *inp, size_t n)
{
    const long nn = (long)n;
#pragma omp parallel for schedule(static) if (n > CT_OMP_MIN)
    for (long i = 0; i < nn; i++) out[i] = inp[i] > 0.0f ? inp[i] : expm1f(inp[i]);
}

/* d elu/dx = 1 for x > 0, exp(x) = out + 1 otherwise (x > 0 exactly when out > 0) */
void ct_elu_backward(float *dinp, const float *dout, const float *out, size_t n)
{
    const long nn = (long)n;
#pragma omp parallel for schedule(static) if (n > CT_OMP_MIN)
    for (long i = 0; i < nn; i++) dinp[i] += out[i] > 0.0f ? dout[i] : dout[i] * (out[i] + 1.0f);
}

/* ---- LSTM ---------------------------------------------------------------------------------- */

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

void ct_lstm_forward(float *h, float *c, float *acts, const float *x, const float *wih,
                     const float *whh, const float *bih, const float *bhh, int T, int B, int H)
{
    const int G = 4 * H;
    hafm_sgemm(0, 1, T * B, G, H, 1.0f, x, H, wih, H, 0.0f, acts, G);   /* x W_ih^T for all frames */
    for (int t = 0; t < T; t++) {
        float *a = acts + (size_t)t * B * G;
        if (t > 0) hafm_sgemm(0, 1, B, G, H, 1.0f, h + (size_t)(t - 1) * B * H, H, whh, H, 1.0f, a, G);
        for (int bb = 0; bb < B; bb++) {
            float *ab = a + (size_t)bb * G;
            const float *cprev = t > 0 ? c + ((size_t)(t - 1) * B + bb) * H : NULL;
            float *ct = c + ((size_t)t * B + bb) * H, *ht = h + ((size_t)t * B + bb) * H;
            for (int j = 0; j < H; j++) {
                float i = sigmoidf(ab[j] + bih[j] + bhh[j]);
                float f = sigmoidf(ab[H + j] + bih[H + j] + bhh[H + j]);
                float g = tanhf(ab[2 * H + j] + bih[2 * H + j] + bhh[2 * H + j]);
                float o = sigmoidf(ab[3 * H + j] + bih[3 * H + j] + bhh[3 * H + j]);
                float cc = (cprev ? f * cprev[j] : 0.0f) + i * g;
                ab[j] = i; ab[H + j] = f; ab[2 * H + j] = g; ab[3 * H + j] = o;
                ct[j] = cc;
                ht[j] = o * tanhf(cc);
            }
        }
    }
}

void ct_lstm_backward(float *dx, float *dwih, float *dwhh, float *dbih, float *dbhh, float *dgates,
                      float *dh, const float *x, const float *h, const float *c, const float *acts,
                      const float *wih, const float *whh, int T, int B, int H)
{
    const int G = 4 * H;
    float *dc_next = hafm_xcalloc((size_t)B * H, sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        for (int bb = 0; bb < B; bb++) {
            const float *a = acts + ((size_t)t * B + bb) * G;
            const float *ct = c + ((size_t)t * B + bb) * H;
            const float *cprev = t > 0 ? c + ((size_t)(t - 1) * B + bb) * H : NULL;
            const float *dht = dh + ((size_t)t * B + bb) * H;
            float *dg = dgates + ((size_t)t * B + bb) * G;
            float *dcn = dc_next + (size_t)bb * H;
            for (int j = 0; j < H; j++) {
                float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
                float tc = tanhf(ct[j]);
                float d_o = dht[j] * tc;
                float dcc = dcn[j] + dht[j] * o * (1.0f - tc * tc);
                float d_i = dcc * g, d_g = dcc * i, d_f = cprev ? dcc * cprev[j] : 0.0f;
                dcn[j] = dcc * f;
                dg[j] = d_i * i * (1.0f - i);
                dg[H + j] = d_f * f * (1.0f - f);
                dg[2 * H + j] = d_g * (1.0f - g * g);
                dg[3 * H + j] = d_o * o * (1.0f - o);
            }
        }
        if (t > 0)   /* dh[t-1] += dgates[t] W_hh */
            hafm_sgemm(0, 0, B, H, G, 1.0f, dgates + (size_t)t * B * G, G, whh, H, 1.0f,
                       dh + (size_t)(t - 1) * B * H, H);
    }
    free(dc_next);
    const int TB = T * B;
    hafm_sgemm(1, 0, G, H, TB, 1.0f, dgates, G, x, H, 1.0f, dwih, H);
    if (T > 1) hafm_sgemm(1, 0, G, H, TB - B, 1.0f, dgates + (size_t)B * G, G, h, H, 1.0f, dwhh, H);
    hafm_sgemm(0, 0, TB, H, G, 1.0f, dgates, G, wih, H, 1.0f, dx, H);
    for (int j = 0; j < G; j++) {
        double s = 0.0;
        for (int r = 0; r < TB; r++) s += dgates[(size_t)r * G + j];
        dbih[j] += (float)s;
        dbhh[j] += (float)s;
    }
}

void ct_to_time_major(float *out, const float *inp, int C, int B, int T)
{
#pragma omp parallel for schedule(static) if ((size_t)C * B * T > CT_OMP_MIN)
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++)
            for (int ch = 0; ch < C; ch++)
                out[((size_t)t * B + b) * C + ch] = inp[((size_t)ch * B + b) * T + t];
}

void ct_from_time_major(float *out, const float *inp, int C, int B, int T)
{
#pragma omp parallel for schedule(static) if ((size_t)C * B * T > CT_OMP_MIN)
    for (int ch = 0; ch < C; ch++)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                out[((size_t)ch * B + b) * T + t] = inp[((size_t)t * B + b) * C + ch];
}
