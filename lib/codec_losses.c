/* codec_losses.c - EnCodec's training losses with their gradients (hafm/codec_losses.h). */
#include "hafm/codec_losses.h"
#include "hafm/codec_train.h"
#include "hafm/common.h"
#include "hafm/linalg.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double ct_l1_loss(float *dy, float weight, const float *y, const float *x, size_t n)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += fabsf(y[i] - x[i]);
    if (dy) {
        float g = weight / (float)n;
        for (size_t i = 0; i < n; i++) dy[i] += y[i] > x[i] ? g : (y[i] < x[i] ? -g : 0.0f);
    }
    return acc / (double)n;
}

/* ---- framing and the STFT through FFTW --------------------------------------------------------
 * frames [B*F][n]: row b*F + f holds samples f*hop .. f*hop + n - 1 of the padded item b.
 * re/im [B*F][nb]: norm * sum_k w[k] x[k] e^{-2 pi i jk/n}, j = 0..n/2 (periodic Hann window).
 * The adjoint (the backward) of the half spectrum is a complex-to-real transform with the DC
 * and Nyquist bins doubled, halved afterwards: c2r counts every other bin twice. */

typedef struct {
    int n, hop, pad, nb;
    float *window;         /* Hann window times the normalisation */
    fftwf_plan r2c, c2r;   /* planned once; executed on per-thread aligned buffers */
} ct_stft;

static void stft_init(ct_stft *s, int n, int hop, int pad, double norm)
{
    s->n = n; s->hop = hop; s->pad = pad; s->nb = n / 2 + 1;
    s->window = hafm_xmalloc(sizeof(float) * (size_t)n);
    for (int k = 0; k < n; k++) s->window[k] = (float)((0.5 - 0.5 * cos(2.0 * M_PI * k / n)) * norm);
    float *in = fftwf_malloc(sizeof(float) * (size_t)n);
    fftwf_complex *out = fftwf_malloc(sizeof(fftwf_complex) * (size_t)s->nb);
    s->r2c = fftwf_plan_dft_r2c_1d(n, in, out, FFTW_ESTIMATE);
    s->c2r = fftwf_plan_dft_c2r_1d(n, out, in, FFTW_ESTIMATE);
    fftwf_free(in);
    fftwf_free(out);
}

static void stft_free(ct_stft *s)
{
    free(s->window);
    fftwf_destroy_plan(s->r2c);
    fftwf_destroy_plan(s->c2r);
}

static int stft_frames(const ct_stft *s, int L) { return (L + 2 * s->pad - s->n) / s->hop + 1; }

static void frame_signal(float *frames, const ct_stft *s, const float *x, const int *map, int B, int L, int F)
{
    const int n = s->n, BF = B * F;
#pragma omp parallel for schedule(static) if ((size_t)n * BF > CT_OMP_MIN)
    for (int r = 0; r < BF; r++) {
        const float *xb = x + (size_t)(r / F) * L;
        const int *m = map + (size_t)(r % F) * s->hop;
        float *dst = frames + (size_t)r * n;
        for (int k = 0; k < n; k++) dst[k] = m[k] >= 0 ? xb[m[k]] : 0.0f;
    }
}

/* overlap-add of d(frames) back onto the signal, through the padding map */
static void unframe_add(float *dx, const ct_stft *s, const float *dframes, const int *map, int B, int L, int F)
{
    const int n = s->n;
#pragma omp parallel for schedule(static) if ((size_t)n * B * F > CT_OMP_MIN)
    for (int b = 0; b < B; b++)
        for (int f = 0; f < F; f++) {
            const float *src = dframes + ((size_t)b * F + f) * n;
            const int *m = map + (size_t)f * s->hop;
            for (int k = 0; k < n; k++)
                if (m[k] >= 0) dx[(size_t)b * L + m[k]] += src[k];
        }
}

static void stft_forward(const ct_stft *s, float *re, float *im, const float *frames, int BF)
{
    const int n = s->n, nb = s->nb;
#pragma omp parallel if ((size_t)n * BF > CT_OMP_MIN)
    {
        float *in = fftwf_malloc(sizeof(float) * (size_t)n);
        fftwf_complex *out = fftwf_malloc(sizeof(fftwf_complex) * (size_t)nb);
#pragma omp for schedule(static)
        for (int r = 0; r < BF; r++) {
            const float *fr = frames + (size_t)r * n;
            for (int k = 0; k < n; k++) in[k] = fr[k] * s->window[k];
            fftwf_execute_dft_r2c(s->r2c, in, out);
            for (int j = 0; j < nb; j++) {
                re[(size_t)r * nb + j] = out[j][0];
                im[(size_t)r * nb + j] = out[j][1];
            }
        }
        fftwf_free(in);
        fftwf_free(out);
    }
}

static void stft_backward(const ct_stft *s, float *dframes, const float *dre, const float *dim, int BF)
{
    const int n = s->n, nb = s->nb;
#pragma omp parallel if ((size_t)n * BF > CT_OMP_MIN)
    {
        float *outr = fftwf_malloc(sizeof(float) * (size_t)n);
        fftwf_complex *in = fftwf_malloc(sizeof(fftwf_complex) * (size_t)nb);
#pragma omp for schedule(static)
        for (int r = 0; r < BF; r++) {
            for (int j = 0; j < nb; j++) {
                in[j][0] = dre[(size_t)r * nb + j];
                in[j][1] = dim[(size_t)r * nb + j];
            }
            in[0][0] *= 2.0f;
            in[nb - 1][0] *= 2.0f;
            fftwf_execute_dft_c2r(s->c2r, in, outr);
            float *df = dframes + (size_t)r * n;
            for (int k = 0; k < n; k++) df[k] = 0.5f * outr[k] * s->window[k];
        }
        fftwf_free(outr);
        fftwf_free(in);
    }
}

static int *reflect_map(int L, int pad)
{
    int *map = hafm_xmalloc(sizeof(int) * (size_t)(L + 2 * pad));
    ct_pad_map(map, L, pad, pad);
    return map;
}

/* ---- multi-scale mel ----------------------------------------------------------------------- */

#define MEL_FLOOR 1e-5f

typedef struct {
    ct_stft stft;
    float *fb;      /* [n_mels][nb] */
} mel_scale;

struct ct_mel_loss {
    int n_scales, n_mels;
    mel_scale sc[16];
};

static double hz_to_mel(double f) { return 2595.0 * log10(1.0 + f / 700.0); }
static double mel_to_hz(double m) { return 700.0 * (pow(10.0, m / 2595.0) - 1.0); }

/* torchaudio.functional.melscale_fbanks(norm=None, mel_scale="htk"), transposed */
static void mel_filterbank(float *fb, int n_mels, int nb, int sample_rate)
{
    double m_max = hz_to_mel(sample_rate / 2.0);
    double *f_pts = hafm_xmalloc(sizeof(double) * (size_t)(n_mels + 2));
    for (int i = 0; i < n_mels + 2; i++) f_pts[i] = mel_to_hz(m_max * i / (n_mels + 1));
    for (int f = 0; f < nb; f++) {
        double freq = (double)(sample_rate / 2) * f / (nb - 1);
        for (int m = 0; m < n_mels; m++) {
            double down = (freq - f_pts[m]) / (f_pts[m + 1] - f_pts[m]);
            double up = (f_pts[m + 2] - freq) / (f_pts[m + 2] - f_pts[m + 1]);
            double v = fmin(down, up);
            fb[(size_t)m * nb + f] = (float)(v > 0.0 ? v : 0.0);
        }
    }
    free(f_pts);
}

ct_mel_loss *ct_mel_loss_new(int sample_rate, int n_mels, int min_log2, int max_log2)
{
    if (min_log2 < 2 || max_log2 > 16 || min_log2 > max_log2 || max_log2 - min_log2 >= 16 || n_mels < 1) {
        hafm_error("mel loss: invalid scales 2^%d..2^%d or %d mels", min_log2, max_log2, n_mels);
        return NULL;
    }
    ct_mel_loss *ml = hafm_xcalloc(1, sizeof *ml);
    ml->n_mels = n_mels;
    for (int i = min_log2; i <= max_log2; i++) {
        mel_scale *s = &ml->sc[ml->n_scales++];
        int n = 1 << i, hop = n / 4;
        /* the normalised STFT (divided by the window's L2 norm) keeps the scales comparable */
        double wsum = 0.0;
        for (int k = 0; k < n; k++) {
            double w = 0.5 - 0.5 * cos(2.0 * M_PI * k / n);
            wsum += w * w;
        }
        stft_init(&s->stft, n, hop, (n - hop) / 2, 1.0 / sqrt(wsum));
        s->fb = hafm_xmalloc(sizeof(float) * (size_t)n_mels * s->stft.nb);
        mel_filterbank(s->fb, n_mels, s->stft.nb, sample_rate);
    }
    return ml;
}

void ct_mel_loss_free(ct_mel_loss *ml)
{
    if (!ml) return;
    for (int i = 0; i < ml->n_scales; i++) { stft_free(&ml->sc[i].stft); free(ml->sc[i].fb); }
    free(ml);
}

/* power mel [BF][n_mels] of a signal; keeps frames, re, im, power for the backward */
static void mel_forward(const mel_scale *s, int n_mels, float *mel, float *frames, float *re, float *im, float *pw,
                        const float *x, const int *map, int B, int L, int F)
{
    const ct_stft *st = &s->stft;
    const int BF = B * F;
    frame_signal(frames, st, x, map, B, L, F);
    stft_forward(st, re, im, frames, BF);
    for (size_t i = 0; i < (size_t)st->nb * BF; i++) pw[i] = re[i] * re[i] + im[i] * im[i];
    hafm_sgemm(0, 1, BF, n_mels, st->nb, 1.0f, pw, st->nb, s->fb, st->nb, 0.0f, mel, n_mels);   /* P Fb^T */
}

double ct_mel_loss_compute(ct_mel_loss *ml, float *dy, float weight, const float *y, const float *x, int B, int L)
{
    double total = 0.0;
    const int nm = ml->n_mels;
    for (int si = 0; si < ml->n_scales; si++) {
        const mel_scale *s = &ml->sc[si];
        const ct_stft *st = &s->stft;
        int F = stft_frames(st, L);
        if (F < 1) continue;
        const int BF = B * F;
        size_t nfr = (size_t)st->n * BF, nsp = (size_t)st->nb * BF, nmel = (size_t)nm * BF;
        int *map = reflect_map(L, st->pad);
        float *frames = hafm_xmalloc(sizeof(float) * nfr);
        float *re = hafm_xmalloc(sizeof(float) * nsp), *im = hafm_xmalloc(sizeof(float) * nsp);
        float *pw = hafm_xmalloc(sizeof(float) * nsp);
        float *mx = hafm_xmalloc(sizeof(float) * nmel), *my = hafm_xmalloc(sizeof(float) * nmel);
        mel_forward(s, nm, mx, frames, re, im, pw, x, map, B, L, F);
        mel_forward(s, nm, my, frames, re, im, pw, y, map, B, L, F);   /* y last: its buffers stay */
        double l1 = 0.0, l2 = 0.0;
        float *dm = dy ? hafm_xmalloc(sizeof(float) * nmel) : NULL;
        const float inv = 1.0f / (float)nmel, wscale = weight / (float)ml->n_scales;
        for (size_t i = 0; i < nmel; i++) {
            float d = my[i] - mx[i];
            float ly = log10f(my[i] + MEL_FLOOR), lx = log10f(mx[i] + MEL_FLOOR);
            l1 += fabsf(d);
            l2 += (double)(ly - lx) * (ly - lx);
            if (dm) {
                float g1 = d > 0 ? inv : (d < 0 ? -inv : 0.0f);
                float g2 = 2.0f * (ly - lx) * inv / ((my[i] + MEL_FLOOR) * (float)M_LN10);
                dm[i] = wscale * (g1 + g2);
            }
        }
        total += (l1 + l2) / (double)nmel;
        if (dm) {
            /* dP = Fb^T dM; dRe = 2 Re dP; dIm = 2 Im dP; dframes = C^T dRe + S^T dIm */
            hafm_sgemm(0, 0, BF, st->nb, nm, 1.0f, dm, nm, s->fb, st->nb, 0.0f, pw, st->nb);   /* dM Fb */
            for (size_t i = 0; i < nsp; i++) { re[i] *= 2.0f * pw[i]; im[i] *= 2.0f * pw[i]; }
            stft_backward(st, frames, re, im, BF);
            unframe_add(dy, st, frames, map, B, L, F);
            free(dm);
        }
        free(map); free(frames); free(re); free(im); free(pw); free(mx); free(my);
    }
    return total / ml->n_scales;
}

/* ---- balancer ---------------------------------------------------------------------------------- */

void ct_balancer_init(ct_balancer *bal, int n, const double *weights, double beta)
{
    memset(bal, 0, sizeof *bal);
    bal->n = n;
    for (int i = 0; i < n; i++) bal->weights[i] = weights[i];
    bal->beta = beta;
    bal->total_norm = 1.0;
    bal->epsilon = 1e-12;
}

void ct_balancer_combine(ct_balancer *bal, float *out, float *const *grads, int B, int L)
{
    double wsum = 0.0;
    for (int i = 0; i < bal->n; i++) wsum += bal->weights[i];
    memset(out, 0, sizeof(float) * (size_t)B * L);
    for (int i = 0; i < bal->n; i++) {
        double norm = 0.0;   /* per-item L2 norm, averaged over the batch */
        for (int b = 0; b < B; b++) {
            double ss = 0.0;
            for (int j = 0; j < L; j++) ss += (double)grads[i][(size_t)b * L + j] * grads[i][(size_t)b * L + j];
            norm += sqrt(ss);
        }
        norm /= B;
        bal->ema_fix[i] = bal->ema_fix[i] * bal->beta + 1.0;
        bal->ema_total[i] = bal->ema_total[i] * bal->beta + norm;
        double avg = bal->ema_total[i] / bal->ema_fix[i];
        float scale = (float)(bal->total_norm * bal->weights[i] / wsum / (bal->epsilon + avg));
        for (size_t j = 0; j < (size_t)B * L; j++) out[j] += scale * grads[i][j];
    }
}

/* ---- 2D convolution ---------------------------------------------------------------------------- */

int ct_conv2d_out_len(int n, int k, int stride, int dil, int pad) { return (n + 2 * pad - dil * (k - 1) - 1) / stride + 1; }

/* Output columns xo whose input column xo*stride + off lies in [0, W): [*lo, *hi). */
static void valid_cols(int *lo, int *hi, int off, int stride, int W, int Wo)
{
    int l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int h = W - 1 - off < 0 ? 0 : (W - 1 - off) / stride + 1;
    if (h > Wo) h = Wo;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* col[(ci*kh + i)*kw + j][y*Wo + x] = inp[ci][b][y*sh - ph + i*dh][x*sw - pw + j*dw] (one batch item).
 * The valid column range of each tap is found once, so the inner loops copy without tests. */
static void im2col2d(float *col, const float *inp, int b, int B, int Cin, int H, int W, int Ho, int Wo,
                     int kh, int kw, int sh, int sw, int dh, int dw, int ph, int pw)
{
    const long rows = (long)Cin * kh * kw;
#pragma omp parallel for schedule(static) if ((size_t)rows * Ho * Wo > CT_OMP_MIN)
    for (long r = 0; r < rows; r++) {
        int ci = (int)(r / (kh * kw)), i = (int)(r / kw % kh), j = (int)(r % kw);
        const float *x = inp + ((size_t)ci * B + b) * H * W;
        float *dst = col + (size_t)r * Ho * Wo;
        int off = j * dw - pw, lo, hi;
        valid_cols(&lo, &hi, off, sw, W, Wo);
        for (int yo = 0; yo < Ho; yo++) {
            int yi = yo * sh - ph + i * dh;
            float *d = dst + (size_t)yo * Wo;
            if (yi < 0 || yi >= H) { memset(d, 0, sizeof(float) * Wo); continue; }
            const long base = (long)yi * W + off;   /* input index of column 0 (may be < 0) */
            if (lo > 0) memset(d, 0, sizeof(float) * lo);
            if (sw == 1) memcpy(d + lo, x + base + lo, sizeof(float) * (hi - lo));
            else
                for (int xo = lo; xo < hi; xo++) d[xo] = x[base + (long)xo * sw];
            if (hi < Wo) memset(d + hi, 0, sizeof(float) * (Wo - hi));
        }
    }
}

static void col2im2d_add(float *dinp, const float *dcol, int b, int B, int Cin, int H, int W, int Ho, int Wo,
                         int kh, int kw, int sh, int sw, int dh, int dw, int ph, int pw)
{
#pragma omp parallel for schedule(static) if ((size_t)Cin * kh * kw * Ho * Wo > CT_OMP_MIN)
    for (int ci = 0; ci < Cin; ci++) {
        float *dx = dinp + ((size_t)ci * B + b) * H * W;
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++) {
                const float *src = dcol + (((size_t)ci * kh + i) * kw + j) * Ho * Wo;
                int off = j * dw - pw, lo, hi;
                valid_cols(&lo, &hi, off, sw, W, Wo);
                for (int yo = 0; yo < Ho; yo++) {
                    int yi = yo * sh - ph + i * dh;
                    if (yi < 0 || yi >= H) continue;
                    const long base = (long)yi * W + off;
                    const float *s = src + (size_t)yo * Wo;
                    if (sw == 1)
                        for (int xo = lo; xo < hi; xo++) dx[base + xo] += s[xo];
                    else
                        for (int xo = lo; xo < hi; xo++) dx[base + (long)xo * sw] += s[xo];
                }
            }
    }
}

void ct_conv2d_forward(float *out, float *col, const float *inp, const float *w, const float *b, int B, int Cin,
                       int H, int W, int Cout, int kh, int kw, int sh, int sw, int dh, int dw, int ph, int pw)
{
    const int Ho = ct_conv2d_out_len(H, kh, sh, dh, ph), Wo = ct_conv2d_out_len(W, kw, sw, dw, pw);
    const int K = Cin * kh * kw, P = Ho * Wo, ldo = B * P;
    /* one GEMM per batch item keeps the im2col buffer to one item's size */
    for (int bb = 0; bb < B; bb++) {
        im2col2d(col, inp, bb, B, Cin, H, W, Ho, Wo, kh, kw, sh, sw, dh, dw, ph, pw);
        hafm_sgemm(0, 0, Cout, P, K, 1.0f, w, K, col, P, 0.0f, out + (size_t)bb * P, ldo);
    }
    for (int c = 0; c < Cout; c++)
        for (size_t i = 0; i < (size_t)ldo; i++) out[(size_t)c * ldo + i] += b[c];
}

void ct_conv2d_backward(float *dinp, float *dw, float *db, float *col, float *dcol, const float *dout,
                        const float *inp, const float *w, int B, int Cin, int H, int W, int Cout, int kh, int kw,
                        int sh, int sw, int dh, int dwl, int ph, int pw)
{
    const int Ho = ct_conv2d_out_len(H, kh, sh, dh, ph), Wo = ct_conv2d_out_len(W, kw, sw, dwl, pw);
    const int K = Cin * kh * kw, P = Ho * Wo, ldo = B * P;
    if (db)
        for (int c = 0; c < Cout; c++) {
            double s = 0.0;
            for (size_t i = 0; i < (size_t)ldo; i++) s += dout[(size_t)c * ldo + i];
            db[c] += (float)s;
        }
    for (int bb = 0; bb < B; bb++) {
        const float *dob = dout + (size_t)bb * P;
        if (dw) {
            im2col2d(col, inp, bb, B, Cin, H, W, Ho, Wo, kh, kw, sh, sw, dh, dwl, ph, pw);
            hafm_sgemm(0, 1, Cout, K, P, 1.0f, dob, ldo, col, P, 1.0f, dw, K);   /* dout x col^T */
        }
        if (dinp) {
            hafm_sgemm(1, 0, K, P, Cout, 1.0f, w, K, dob, ldo, 0.0f, dcol, P);  /* w^T x dout */
            col2im2d_add(dinp, dcol, bb, B, Cin, H, W, Ho, Wo, kh, kw, sh, sw, dh, dwl, ph, pw);
        }
    }
}

/* ---- the multi-scale STFT discriminator ------------------------------------------------------- */

#define D_LAYERS 6        /* 5 feature layers + the output conv */
#define D_SLOPE 0.2f      /* LeakyReLU */

typedef struct {
    int cin, cout, kh, kw, sh, sw, dh, dw, ph, pw;
    size_t g, v, b, wofs;   /* offsets: params (g, v, b) and the folded weight */
} d_conv;

typedef struct {
    ct_stft stft;
    d_conv conv[D_LAYERS];
} d_scale;



/* activations of one scale for one signal */
typedef struct {
    int B, L, Fr, nb;
    int H[D_LAYERS + 1], W[D_LAYERS + 1];   /* [0]: the spectrogram input */
    float *frames;                          /* [n][B*Fr] */
    float *act[D_LAYERS + 1];               /* act[0] spectrogram [2][B][Fr][nb]; act[l+1] layer l's output */
} d_acts;

struct ct_msstftd {
    int n_scales;
    d_scale sc[8];
    float *params, *grads, *w, *dw, *norms;
    size_t nparams, nw, nnorm;
    /* the last ct_msstftd_gen_loss's activations of x and y, for ct_msstftd_disc_loss_kept */
    int kept;
    d_acts kept_x[8], kept_y[8];
};

static void d_add_conv(ct_msstftd *d, d_conv *c, int cin, int cout, int kh, int kw, int sh, int sw, int dh)
{
    c->cin = cin; c->cout = cout; c->kh = kh; c->kw = kw; c->sh = sh; c->sw = sw; c->dh = dh; c->dw = 1;
    c->ph = (kh - 1) * dh / 2;   /* get_2d_padding */
    c->pw = (kw - 1) / 2;
    c->b = d->nparams; d->nparams += (size_t)cout;
    c->g = d->nparams; d->nparams += (size_t)cout;
    c->v = d->nparams; d->nparams += (size_t)cout * cin * kh * kw;
    c->wofs = d->nw; d->nw += (size_t)cout * cin * kh * kw;
    d->nnorm += (size_t)cout;
}

static void d_acts_free(d_acts *a);

static void d_drop_kept(ct_msstftd *d)
{
    if (!d->kept) return;
    for (int s = 0; s < d->n_scales; s++) { d_acts_free(&d->kept_x[s]); d_acts_free(&d->kept_y[s]); }
    d->kept = 0;
}

ct_msstftd *ct_msstftd_new(int filters, int n_scales, const int *n_fft, const int *hop)
{
    if (n_scales < 1 || n_scales > 8 || filters < 1) { hafm_error("discriminator: 1 to 8 scales expected"); return NULL; }
    ct_msstftd *d = hafm_xcalloc(1, sizeof *d);
    d->n_scales = n_scales;
    for (int s = 0; s < n_scales; s++) {
        d_scale *sc = &d->sc[s];
        double wsum = 0.0;   /* torchaudio normalized=True: divide by the window's L2 norm */
        for (int k = 0; k < n_fft[s]; k++) {
            double w = 0.5 - 0.5 * cos(2.0 * M_PI * k / n_fft[s]);
            wsum += w * w;
        }
        stft_init(&sc->stft, n_fft[s], hop[s], 0, 1.0 / sqrt(wsum));
        d_add_conv(d, &sc->conv[0], 2, filters, 3, 9, 1, 1, 1);
        d_add_conv(d, &sc->conv[1], filters, filters, 3, 9, 1, 2, 1);
        d_add_conv(d, &sc->conv[2], filters, filters, 3, 9, 1, 2, 2);
        d_add_conv(d, &sc->conv[3], filters, filters, 3, 9, 1, 2, 4);
        d_add_conv(d, &sc->conv[4], filters, filters, 3, 3, 1, 1, 1);
        d_add_conv(d, &sc->conv[5], filters, 1, 3, 3, 1, 1, 1);
    }
    d->params = hafm_xcalloc(d->nparams, sizeof(float));
    d->grads = hafm_xcalloc(d->nparams, sizeof(float));
    d->w = hafm_xcalloc(d->nw, sizeof(float));
    d->dw = hafm_xcalloc(d->nw, sizeof(float));
    d->norms = hafm_xcalloc(d->nnorm, sizeof(float));
    return d;
}

ct_msstftd *ct_msstftd_new_default(int filters)
{
    static const int n_fft[5] = {1024, 2048, 512, 256, 128}, hop[5] = {256, 512, 128, 64, 32};
    return ct_msstftd_new(filters, 5, n_fft, hop);
}

void ct_msstftd_free(ct_msstftd *d)
{
    if (!d) return;
    d_drop_kept(d);
    for (int s = 0; s < d->n_scales; s++) stft_free(&d->sc[s].stft);
    free(d->params); free(d->grads); free(d->w); free(d->dw); free(d->norms);
    free(d);
}

size_t ct_msstftd_nparams(const ct_msstftd *d) { return d->nparams; }
float *ct_msstftd_params(ct_msstftd *d) { return d->params; }
float *ct_msstftd_grads(ct_msstftd *d) { return d->grads; }

void ct_msstftd_init_random(ct_msstftd *d, uint64_t seed)
{
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    for (int s = 0; s < d->n_scales; s++)
        for (int l = 0; l < D_LAYERS; l++) {
            d_conv *c = &d->sc[s].conv[l];
            int rest = c->cin * c->kh * c->kw;
            float bound = 1.0f / sqrtf((float)rest);   /* PyTorch's Conv2d default */
            float *v = d->params + c->v, *g = d->params + c->g, *b = d->params + c->b;
            for (size_t i = 0; i < (size_t)c->cout * rest; i++) v[i] = (float)((2.0 * ct_rng_uniform(&rng) - 1.0) * bound);
            for (int i = 0; i < c->cout; i++) b[i] = (float)((2.0 * ct_rng_uniform(&rng) - 1.0) * bound);
            for (int o = 0; o < c->cout; o++) {
                double ss = 0.0;
                for (int j = 0; j < rest; j++) ss += (double)v[(size_t)o * rest + j] * v[(size_t)o * rest + j];
                g[o] = (float)sqrt(ss);
            }
        }
}

static void d_fold(ct_msstftd *d)
{
    size_t nofs = 0;
    for (int s = 0; s < d->n_scales; s++)
        for (int l = 0; l < D_LAYERS; l++) {
            d_conv *c = &d->sc[s].conv[l];
            ct_weightnorm_forward(d->w + c->wofs, d->norms + nofs, d->params + c->g, d->params + c->v, c->cout,
                                  c->cin * c->kh * c->kw);
            nofs += (size_t)c->cout;
        }
}

static void d_unfold_grads(ct_msstftd *d)
{
    size_t nofs = 0;
    for (int s = 0; s < d->n_scales; s++)
        for (int l = 0; l < D_LAYERS; l++) {
            d_conv *c = &d->sc[s].conv[l];
            ct_weightnorm_backward(d->grads + c->g, d->grads + c->v, d->dw + c->wofs, d->params + c->g,
                                   d->params + c->v, d->norms + nofs, c->cout, c->cin * c->kh * c->kw);
            nofs += (size_t)c->cout;
        }
}

static void d_acts_free(d_acts *a)
{
    free(a->frames);
    for (int l = 0; l <= D_LAYERS; l++) free(a->act[l]);
}

static size_t d_col_size(const d_scale *sc, const d_acts *a)
{
    size_t m = 0;
    for (int l = 0; l < D_LAYERS; l++) {
        const d_conv *c = &sc->conv[l];
        size_t n = (size_t)c->cin * c->kh * c->kw * a->H[l + 1] * a->W[l + 1];
        if (n > m) m = n;
    }
    return m;
}

/* Runs one scale on sig [B][L]; the folded weights must be current. */
static void d_scale_forward(const ct_msstftd *d, const d_scale *sc, d_acts *a, const float *sig, int B, int L)
{
    const ct_stft *st = &sc->stft;
    memset(a, 0, sizeof *a);
    a->B = B; a->L = L;
    a->Fr = (L - st->n) / st->hop + 1;
    a->nb = st->nb;
    const int Fr = a->Fr, nb = a->nb, BF = B * Fr;
    int *map = hafm_xmalloc(sizeof(int) * (size_t)L);
    ct_pad_map(map, L, 0, 0);
    a->frames = hafm_xmalloc(sizeof(float) * (size_t)st->n * BF);
    frame_signal(a->frames, st, sig, map, B, L, Fr);
    free(map);
    float *re = hafm_xmalloc(sizeof(float) * (size_t)nb * BF), *im = hafm_xmalloc(sizeof(float) * (size_t)nb * BF);
    stft_forward(st, re, im, a->frames, BF);
    /* [B*Fr][nb] real and imaginary parts are already channels 0 and 1 of [B][time][freq] */
    a->H[0] = Fr; a->W[0] = nb;
    a->act[0] = hafm_xmalloc(sizeof(float) * 2 * (size_t)BF * nb);
    memcpy(a->act[0], re, sizeof(float) * (size_t)BF * nb);
    memcpy(a->act[0] + (size_t)BF * nb, im, sizeof(float) * (size_t)BF * nb);
    free(re); free(im);
    for (int l = 0; l < D_LAYERS; l++) {
        const d_conv *c = &sc->conv[l];
        a->H[l + 1] = ct_conv2d_out_len(a->H[l], c->kh, c->sh, c->dh, c->ph);
        a->W[l + 1] = ct_conv2d_out_len(a->W[l], c->kw, c->sw, c->dw, c->pw);
    }
    float *col = hafm_xmalloc(sizeof(float) * d_col_size(sc, a));
    for (int l = 0; l < D_LAYERS; l++) {
        const d_conv *c = &sc->conv[l];
        size_t n = (size_t)c->cout * B * a->H[l + 1] * a->W[l + 1];
        a->act[l + 1] = hafm_xmalloc(sizeof(float) * n);
        ct_conv2d_forward(a->act[l + 1], col, a->act[l], d->w + c->wofs, d->params + c->b, B, c->cin, a->H[l], a->W[l],
                          c->cout, c->kh, c->kw, c->sh, c->sw, c->dh, c->dw, c->ph, c->pw);
        if (l < D_LAYERS - 1)
            for (size_t i = 0; i < n; i++) if (a->act[l + 1][i] < 0.0f) a->act[l + 1][i] *= D_SLOPE;
    }
    free(col);
}

static size_t d_act_n(const d_scale *sc, const d_acts *a, int l)   /* elements of act[l] */
{
    int C = l == 0 ? 2 : sc->conv[l - 1].cout;
    return (size_t)C * a->B * a->H[l] * a->W[l];
}

/* Backward of one scale. dact[l] (l = 1..D_LAYERS, may be NULL) are gradients w.r.t. the layer
 * outputs after the activation; they are consumed. Param grads go to d->dw/grads when want_params,
 * the signal gradient is added to dsig when non-NULL. */
static void d_scale_backward(ct_msstftd *d, const d_scale *sc, const d_acts *a, float **dact, int want_params,
                             float *dsig)
{
    const int B = a->B;
    float *col = hafm_xmalloc(sizeof(float) * d_col_size(sc, a));
    float *dcol = hafm_xmalloc(sizeof(float) * d_col_size(sc, a));
    float *dcur = dact[D_LAYERS];
    dact[D_LAYERS] = NULL;
    for (int l = D_LAYERS - 1; l >= 0; l--) {
        const d_conv *c = &sc->conv[l];
        size_t nout = d_act_n(sc, a, l + 1);
        if (l < D_LAYERS - 1)   /* LeakyReLU: the output has the sign of the input */
            for (size_t i = 0; i < nout; i++) if (a->act[l + 1][i] < 0.0f) dcur[i] *= D_SLOPE;
        int need_input = l > 0 || dsig;
        float *dprev = need_input ? hafm_xcalloc(d_act_n(sc, a, l), sizeof(float)) : NULL;
        ct_conv2d_backward(dprev, want_params ? d->dw + c->wofs : NULL, want_params ? d->grads + c->b : NULL, col, dcol,
                           dcur, a->act[l], d->w + c->wofs, B, c->cin, a->H[l], a->W[l], c->cout, c->kh, c->kw, c->sh,
                           c->sw, c->dh, c->dw, c->ph, c->pw);
        free(dcur);
        dcur = dprev;
        if (l > 0 && dact[l]) {
            for (size_t i = 0; i < d_act_n(sc, a, l); i++) dcur[i] += dact[l][i];
            free(dact[l]);
            dact[l] = NULL;
        }
    }
    free(col); free(dcol);
    if (!dsig) { free(dcur); return; }
    const ct_stft *st = &sc->stft;
    const int Fr = a->Fr, nb = a->nb, BF = B * Fr;
    float *dframes = hafm_xmalloc(sizeof(float) * (size_t)st->n * BF);
    stft_backward(st, dframes, dcur, dcur + (size_t)BF * nb, BF);
    free(dcur);
    int *map = hafm_xmalloc(sizeof(int) * (size_t)a->L);
    ct_pad_map(map, a->L, 0, 0);
    unframe_add(dsig, st, dframes, map, B, a->L, Fr);
    free(map); free(dframes);
}

static int d_check_len(const ct_msstftd *d, int L)
{
    for (int s = 0; s < d->n_scales; s++)
        if (L < d->sc[s].stft.n) return -1;
    return 0;
}

/* The hinge loss of one scale on activations of x (real) and y (fake); parameter gradients into d->dw. */
static double d_scale_hinge(ct_msstftd *d, const d_scale *sc, const d_acts *ax, const d_acts *ay, float weight)
{
    double total = 0.0;
    for (int which = 0; which < 2; which++) {   /* real: relu(1 - D), fake: relu(1 + D) */
        const d_acts *a = which ? ay : ax;
        size_t n = d_act_n(sc, a, D_LAYERS);
        const float *o = a->act[D_LAYERS];
        float *dout[D_LAYERS + 1] = {0};
        dout[D_LAYERS] = hafm_xcalloc(n, sizeof(float));
        double acc = 0.0;
        float g = weight / (float)(n * d->n_scales);
        for (size_t i = 0; i < n; i++) {
            float m = which ? 1.0f + o[i] : 1.0f - o[i];
            if (m > 0.0f) { acc += m; dout[D_LAYERS][i] = which ? g : -g; }
        }
        total += acc / (double)n;
        d_scale_backward(d, sc, a, dout, 1, NULL);
    }
    return total;
}

double ct_msstftd_disc_loss(ct_msstftd *d, float weight, const float *y, const float *x, int B, int L)
{
    if (d_check_len(d, L)) return 0.0;
    d_fold(d);
    memset(d->dw, 0, sizeof(float) * d->nw);
    double total = 0.0;
    for (int s = 0; s < d->n_scales; s++) {
        d_acts ax, ay;
        d_scale_forward(d, &d->sc[s], &ax, x, B, L);
        d_scale_forward(d, &d->sc[s], &ay, y, B, L);
        total += d_scale_hinge(d, &d->sc[s], &ax, &ay, weight);
        d_acts_free(&ax);
        d_acts_free(&ay);
    }
    d_unfold_grads(d);
    return total / d->n_scales;
}

double ct_msstftd_disc_loss_kept(ct_msstftd *d, float weight)
{
    if (!d->kept) return 0.0;
    memset(d->dw, 0, sizeof(float) * d->nw);
    double total = 0.0;
    for (int s = 0; s < d->n_scales; s++) total += d_scale_hinge(d, &d->sc[s], &d->kept_x[s], &d->kept_y[s], weight);
    d_unfold_grads(d);
    d_drop_kept(d);
    return total / d->n_scales;
}

void ct_msstftd_gen_loss(ct_msstftd *d, double *adv, double *feat, float *d_adv, float w_adv,
                         float *d_feat, float w_feat, const float *y, const float *x, int B, int L)
{
    *adv = *feat = 0.0;
    d_drop_kept(d);
    if (d_check_len(d, L)) return;
    d_fold(d);
    const int nfeat = D_LAYERS - 1;
    for (int s = 0; s < d->n_scales; s++) {
        const d_scale *sc = &d->sc[s];
        d_acts ax, ay;
        d_scale_forward(d, sc, &ax, x, B, L);
        d_scale_forward(d, sc, &ay, y, B, L);
        size_t n = d_act_n(sc, &ay, D_LAYERS);
        float *dout_adv[D_LAYERS + 1] = {0}, *dout_feat[D_LAYERS + 1] = {0};
        dout_adv[D_LAYERS] = hafm_xcalloc(n, sizeof(float));
        double acc = 0.0;
        float g = w_adv / (float)(n * d->n_scales);
        for (size_t i = 0; i < n; i++) {
            float m = 1.0f - ay.act[D_LAYERS][i];
            if (m > 0.0f) { acc += m; dout_adv[D_LAYERS][i] = -g; }
        }
        *adv += acc / (double)n / d->n_scales;
        /* relative feature matching: mean|f(x) - f(y)| / mean|f(x)| per layer */
        dout_feat[D_LAYERS] = hafm_xcalloc(n, sizeof(float));
        for (int l = 1; l <= nfeat; l++) {
            size_t nl = d_act_n(sc, &ay, l);
            const float *fx = ax.act[l], *fy = ay.act[l];
            double ax_mean = 0.0, diff = 0.0;
            for (size_t i = 0; i < nl; i++) { ax_mean += fabsf(fx[i]); diff += fabsf(fx[i] - fy[i]); }
            ax_mean = ax_mean / (double)nl + 1e-12;
            *feat += diff / (double)nl / ax_mean / (nfeat * d->n_scales);
            dout_feat[l] = hafm_xcalloc(nl, sizeof(float));
            float gf = (float)(w_feat / ((double)nl * ax_mean * nfeat * d->n_scales));
            for (size_t i = 0; i < nl; i++) dout_feat[l][i] = fy[i] > fx[i] ? gf : (fy[i] < fx[i] ? -gf : 0.0f);
        }
        if (d_adv) d_scale_backward(d, sc, &ay, dout_adv, 0, d_adv);
        else free(dout_adv[D_LAYERS]);
        if (d_feat) d_scale_backward(d, sc, &ay, dout_feat, 0, d_feat);
        else for (int l = 0; l <= D_LAYERS; l++) free(dout_feat[l]);
        d->kept_x[s] = ax;
        d->kept_y[s] = ay;
    }
    d->kept = 1;
}
