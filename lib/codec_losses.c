/* codec_losses.c - EnCodec's training losses with their gradients (hafm/codec_losses.h). */
#include "hafm/codec_losses.h"
#include "hafm/codec_train.h"
#include "hafm/common.h"
#include "hafm/linalg.h"

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

/* ---- framing and the DFT as a matrix ----------------------------------------------------------
 * frames [n][B*F]: column b*F + f holds samples f*hop .. f*hop + n - 1 of the padded item b.
 * re/im [nb][B*F] = (window * cos / -sin) [nb][n] x frames. */

typedef struct {
    int n, hop, pad, nb;
    float *cosm, *sinm;    /* [nb][n], window and normalisation folded in */
} ct_stft;

static void stft_init(ct_stft *s, int n, int hop, int pad, double norm)
{
    s->n = n; s->hop = hop; s->pad = pad; s->nb = n / 2 + 1;
    s->cosm = hafm_xmalloc(sizeof(float) * (size_t)s->nb * n);
    s->sinm = hafm_xmalloc(sizeof(float) * (size_t)s->nb * n);
    for (int j = 0; j < s->nb; j++)
        for (int k = 0; k < n; k++) {
            double w = 0.5 - 0.5 * cos(2.0 * M_PI * k / n);   /* periodic Hann, as torch.hann_window */
            double ph = 2.0 * M_PI * (double)((long)j * k % n) / n;
            s->cosm[(size_t)j * n + k] = (float)(w * cos(ph) * norm);
            s->sinm[(size_t)j * n + k] = (float)(-w * sin(ph) * norm);
        }
}

static void stft_free(ct_stft *s) { free(s->cosm); free(s->sinm); }

static int stft_frames(const ct_stft *s, int L) { return (L + 2 * s->pad - s->n) / s->hop + 1; }

static void frame_signal(float *frames, const ct_stft *s, const float *x, const int *map, int B, int L, int F)
{
    const int n = s->n, BF = B * F;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < n; k++)
        for (int b = 0; b < B; b++)
            for (int f = 0; f < F; f++) {
                int src = map[f * s->hop + k];
                frames[(size_t)k * BF + (size_t)b * F + f] = src >= 0 ? x[(size_t)b * L + src] : 0.0f;
            }
}

/* overlap-add of d(frames) back onto the signal, through the padding map */
static void unframe_add(float *dx, const ct_stft *s, const float *dframes, const int *map, int B, int L, int F, float w)
{
    const int n = s->n, BF = B * F;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int k = 0; k < n; k++)
            for (int f = 0; f < F; f++) {
                int src = map[f * s->hop + k];
                if (src >= 0) dx[(size_t)b * L + src] += w * dframes[(size_t)k * BF + (size_t)b * F + f];
            }
}

static void stft_forward(const ct_stft *s, float *re, float *im, const float *frames, int BF)
{
    hafm_sgemm(0, 0, s->nb, BF, s->n, 1.0f, s->cosm, s->n, frames, BF, 0.0f, re, BF);
    hafm_sgemm(0, 0, s->nb, BF, s->n, 1.0f, s->sinm, s->n, frames, BF, 0.0f, im, BF);
}

static void stft_backward(const ct_stft *s, float *dframes, const float *dre, const float *dim, int BF)
{
    hafm_sgemm(1, 0, s->n, BF, s->nb, 1.0f, s->cosm, s->n, dre, BF, 0.0f, dframes, BF);
    hafm_sgemm(1, 0, s->n, BF, s->nb, 1.0f, s->sinm, s->n, dim, BF, 1.0f, dframes, BF);
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
        stft_init(&s->stft, n, hop, (n - hop) / 2, 1.0);
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

/* power mel [n_mels][BF] of a signal; keeps frames, re, im, power for the backward */
static void mel_forward(const mel_scale *s, int n_mels, float *mel, float *frames, float *re, float *im, float *pw,
                        const float *x, const int *map, int B, int L, int F)
{
    const ct_stft *st = &s->stft;
    const int BF = B * F;
    frame_signal(frames, st, x, map, B, L, F);
    stft_forward(st, re, im, frames, BF);
    for (size_t i = 0; i < (size_t)st->nb * BF; i++) pw[i] = re[i] * re[i] + im[i] * im[i];
    hafm_sgemm(0, 0, n_mels, BF, st->nb, 1.0f, s->fb, st->nb, pw, BF, 0.0f, mel, BF);
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
            hafm_sgemm(1, 0, st->nb, BF, nm, 1.0f, s->fb, st->nb, dm, BF, 0.0f, pw, BF);
            for (size_t i = 0; i < nsp; i++) { re[i] *= 2.0f * pw[i]; im[i] *= 2.0f * pw[i]; }
            stft_backward(st, frames, re, im, BF);
            unframe_add(dy, st, frames, map, B, L, F, 1.0f);
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
