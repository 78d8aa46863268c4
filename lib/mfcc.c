/* mfcc.c - MFCC / log-mel features on HuBERT's 50 Hz frame grid (see hafm/mfcc.h). */
#include "hafm/mfcc.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct hafm_mfcc {
    hafm_mfcc_config cfg;
    float *window;        /* [win] Hamming */
    float *fbank;         /* [n_mels, n_bins] */
    int *fb_lo, *fb_hi;   /* nonzero bin range of each filter */
    float *dct;           /* [n_ceps, n_mels], lifter folded in */
    fftwf_plan plan;
    int n_bins;
    /* chroma */
    float *chroma_window;   /* [chroma_win] Hann */
    int *chroma_class;      /* [chroma bins] pitch class of each bin, -1 outside the range */
    float *chroma_weight;   /* [chroma bins] closeness to that class's semitone */
    fftwf_plan chroma_plan;
};

void hafm_mfcc_config_default(hafm_mfcc_config *c, hafm_feat_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->sample_rate = 16000;
    c->win = 400;
    c->hop = 320;
    c->n_fft = 512;
    c->n_mels = kind == HAFM_FEAT_LOGMEL ? 80 : 40;
    c->fmin = 20.0f;
    c->fmax = 7600.0f;
    c->preemph = 0.97f;
    c->n_ceps = 13;
    c->lifter = 22.0f;
    c->deltas = kind == HAFM_FEAT_MFCC ? 2 : 0;
    c->chroma_win = 4096;
    c->chroma_fmin = 65.406f;
    c->chroma_fmax = 2093.0f;
    c->cmvn = HAFM_CMVN_MEANVAR;
}

int hafm_mfcc_dim(const hafm_mfcc_config *c)
{
    return c->kind == HAFM_FEAT_MFCC ? c->n_ceps * (1 + c->deltas) : c->kind == HAFM_FEAT_CHROMA ? c->n_ceps + 12 : c->n_mels;
}

int64_t hafm_mfcc_frames(const hafm_mfcc_config *c, int64_t n)
{
    return n < c->win ? 0 : (n - c->win) / c->hop + 1;
}

static double hz_to_mel(double f) { return 1127.0 * log(1.0 + f / 700.0); }

static int init_chroma(hafm_mfcc *m)
{
    const hafm_mfcc_config *c = &m->cfg;
    int n = c->chroma_win, nb = n / 2 + 1;
    m->chroma_window = hafm_xmalloc(n * sizeof(float));
    for (int i = 0; i < n; i++) m->chroma_window[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / n));
    m->chroma_class = hafm_xmalloc(nb * sizeof(int));
    m->chroma_weight = hafm_xmalloc(nb * sizeof(float));
    for (int b = 0; b < nb; b++) {
        double f = (double)b * c->sample_rate / n;
        m->chroma_class[b] = -1;
        m->chroma_weight[b] = 0;
        if (f < c->chroma_fmin || f > c->chroma_fmax) continue;
        double semis = 12.0 * log2(f / 440.0) + 69.0;   /* MIDI pitch; 60 = C4 */
        double nearest = floor(semis + 0.5);
        m->chroma_class[b] = (int)(((long)nearest % 12 + 12) % 12);
        m->chroma_weight[b] = (float)(1.0 - 2.0 * fabs(semis - nearest));
    }
    float *in = fftwf_malloc(n * sizeof(float));
    fftwf_complex *out = fftwf_malloc(nb * sizeof(fftwf_complex));
    m->chroma_plan = fftwf_plan_dft_r2c_1d(n, in, out, FFTW_ESTIMATE);
    fftwf_free(in);
    fftwf_free(out);
    if (!m->chroma_plan) {
        hafm_error("fftw: cannot plan a %d-point FFT", n);
        return -1;
    }
    return 0;
}

/* The 12 chroma shares of the chroma window centred on sample `centre` of wav[n]. */
static void chroma_frame(const hafm_mfcc *m, const float *wav, int64_t n, int64_t centre, float *buf,
                         fftwf_complex *spec, float *out)
{
    const hafm_mfcc_config *c = &m->cfg;
    int len = c->chroma_win, nb = len / 2 + 1;
    int64_t start = centre - len / 2;
    for (int i = 0; i < len; i++) {
        int64_t j = start + i;
        buf[i] = j >= 0 && j < n ? wav[j] * m->chroma_window[i] : 0.0f;
    }
    fftwf_execute_dft_r2c(m->chroma_plan, buf, spec);
    double sum[12] = {0}, total = 0;
    for (int b = 0; b < nb; b++) {
        if (m->chroma_class[b] < 0) continue;
        double mag = sqrt((double)spec[b][0] * spec[b][0] + (double)spec[b][1] * spec[b][1]) * m->chroma_weight[b];
        sum[m->chroma_class[b]] += mag;
        total += mag;
    }
    for (int k = 0; k < 12; k++) out[k] = total >= 1e-3 ? (float)(sum[k] / total) : 1.0f / 12;
}

void hafm_mfcc_free(hafm_mfcc *m)
{
    if (!m) return;
    if (m->plan) fftwf_destroy_plan(m->plan);
    if (m->chroma_plan) fftwf_destroy_plan(m->chroma_plan);
    free(m->chroma_window), free(m->chroma_class), free(m->chroma_weight);
    free(m->window), free(m->fbank), free(m->fb_lo), free(m->fb_hi), free(m->dct);
    free(m);
}

hafm_mfcc *hafm_mfcc_new(const hafm_mfcc_config *c)
{
    if (c->win < 2 || c->hop < 1 || c->n_fft < c->win || c->n_fft > 65536 || c->n_mels < 1 ||
        c->n_mels > 1024 || !(c->fmin >= 0 && c->fmin < c->fmax && c->fmax <= c->sample_rate / 2.0f) ||
        (c->kind != HAFM_FEAT_LOGMEL && (c->n_ceps < 1 || c->n_ceps > c->n_mels || c->deltas < 0 || c->deltas > 2)) ||
        (c->kind == HAFM_FEAT_CHROMA && (c->deltas != 0 || c->chroma_win < 16 || c->chroma_win > 65536 ||
                                         !(c->chroma_fmin > 0 && c->chroma_fmin < c->chroma_fmax &&
                                           c->chroma_fmax <= c->sample_rate / 2.0f)))) {
        hafm_error("invalid MFCC/log-mel configuration");
        return NULL;
    }
    hafm_mfcc *m = hafm_xcalloc(1, sizeof *m);
    m->cfg = *c;
    int nb = m->n_bins = c->n_fft / 2 + 1;
    m->window = hafm_xmalloc(c->win * sizeof(float));
    for (int i = 0; i < c->win; i++) m->window[i] = (float)(0.54 - 0.46 * cos(2.0 * M_PI * i / (c->win - 1)));
    /* triangular filters equally spaced on the mel scale, weights on the FFT bin frequencies */
    m->fbank = hafm_xcalloc((size_t)c->n_mels * nb, sizeof(float));
    m->fb_lo = hafm_xmalloc(c->n_mels * sizeof(int));
    m->fb_hi = hafm_xmalloc(c->n_mels * sizeof(int));
    double mlo = hz_to_mel(c->fmin), mhi = hz_to_mel(c->fmax);
    for (int f = 0; f < c->n_mels; f++) {
        double left = mlo + (mhi - mlo) * f / (c->n_mels + 1);
        double center = mlo + (mhi - mlo) * (f + 1) / (c->n_mels + 1);
        double right = mlo + (mhi - mlo) * (f + 2) / (c->n_mels + 1);
        m->fb_lo[f] = nb;
        m->fb_hi[f] = 0;
        for (int b = 0; b < nb; b++) {
            double mel = hz_to_mel((double)b * c->sample_rate / c->n_fft), w = 0;
            if (mel > left && mel <= center) w = (mel - left) / (center - left);
            else if (mel > center && mel < right) w = (right - mel) / (right - center);
            if (w > 0) {
                m->fbank[(size_t)f * nb + b] = (float)w;
                if (b < m->fb_lo[f]) m->fb_lo[f] = b;
                m->fb_hi[f] = b + 1;
            }
        }
        if (m->fb_hi[f] == 0) m->fb_lo[f] = 0;   /* a filter narrower than one bin stays empty */
    }
    if (c->kind != HAFM_FEAT_LOGMEL) {
        m->dct = hafm_xmalloc((size_t)c->n_ceps * c->n_mels * sizeof(float));
        for (int i = 0; i < c->n_ceps; i++) {
            double lift = c->lifter > 0 ? 1.0 + 0.5 * c->lifter * sin(M_PI * i / c->lifter) : 1.0;
            double norm = i == 0 ? sqrt(1.0 / c->n_mels) : sqrt(2.0 / c->n_mels);
            for (int j = 0; j < c->n_mels; j++)
                m->dct[(size_t)i * c->n_mels + j] = (float)(lift * norm * cos(M_PI * i * (j + 0.5) / c->n_mels));
        }
    }
    float *in = fftwf_malloc(c->n_fft * sizeof(float));
    fftwf_complex *out = fftwf_malloc(nb * sizeof(fftwf_complex));
    m->plan = fftwf_plan_dft_r2c_1d(c->n_fft, in, out, FFTW_ESTIMATE);
    fftwf_free(in);
    fftwf_free(out);
    if (!m->plan) {
        hafm_error("fftw: cannot plan a %d-point FFT", c->n_fft);
        hafm_mfcc_free(m);
        return NULL;
    }
    if (c->kind == HAFM_FEAT_CHROMA && init_chroma(m) < 0) {
        hafm_mfcc_free(m);
        return NULL;
    }
    return m;
}

/* HTK regression deltas of x[T, dim] (columns [src, src+n)) into columns [dst, dst+n). */
static void deltas(float *x, int64_t T, int dim, int src, int dst, int n)
{
    #pragma omp parallel for schedule(static) if (T * n > 16384)
    for (int64_t t = 0; t < T; t++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int k = 1; k <= 2; k++) {
                int64_t a = t + k < T ? t + k : T - 1, b = t - k >= 0 ? t - k : 0;
                acc += k * ((double)x[a * dim + src + j] - x[b * dim + src + j]);
            }
            x[t * dim + dst + j] = (float)(acc / 10.0);
        }
}

float *hafm_mfcc_compute(hafm_mfcc *m, const float *wav, int64_t n, int64_t *frames)
{
    const hafm_mfcc_config *c = &m->cfg;
    int64_t T = hafm_mfcc_frames(c, n);
    if (T < 1) {
        hafm_error("input too short: %lld samples, one feature frame needs %d", (long long)n, c->win);
        return NULL;
    }
    int dim = hafm_mfcc_dim(c), nb = m->n_bins;
    float *feat = hafm_xmalloc((size_t)T * dim * sizeof(float));
    #pragma omp parallel
    {
        float *buf = fftwf_malloc(c->n_fft * sizeof(float));
        fftwf_complex *spec = fftwf_malloc(nb * sizeof(fftwf_complex));
        float *power = hafm_xmalloc(nb * sizeof(float)), *logmel = hafm_xmalloc(c->n_mels * sizeof(float));
        int chroma = c->kind == HAFM_FEAT_CHROMA;
        float *cbuf = chroma ? fftwf_malloc(c->chroma_win * sizeof(float)) : NULL;
        fftwf_complex *cspec = chroma ? fftwf_malloc((c->chroma_win / 2 + 1) * sizeof(fftwf_complex)) : NULL;
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            const float *x = wav + t * c->hop;
            double mean = 0;
            for (int i = 0; i < c->win; i++) mean += x[i];
            mean /= c->win;
            /* pre-emphasis of the DC-free frame; its first sample uses itself as predecessor */
            for (int i = 0; i < c->win; i++) {
                double cur = x[i] - mean, prev = (i ? x[i - 1] : x[0]) - mean;
                buf[i] = (float)((cur - c->preemph * prev) * m->window[i]);
            }
            memset(buf + c->win, 0, (c->n_fft - c->win) * sizeof(float));
            fftwf_execute_dft_r2c(m->plan, buf, spec);
            for (int b = 0; b < nb; b++) power[b] = spec[b][0] * spec[b][0] + spec[b][1] * spec[b][1];
            for (int f = 0; f < c->n_mels; f++) {
                double e = 0;
                for (int b = m->fb_lo[f]; b < m->fb_hi[f]; b++) e += (double)m->fbank[(size_t)f * nb + b] * power[b];
                logmel[f] = (float)log(e > 1e-10 ? e : 1e-10);
            }
            float *out = feat + t * dim;
            if (c->kind == HAFM_FEAT_LOGMEL) {
                memcpy(out, logmel, c->n_mels * sizeof(float));
            } else {
                for (int i = 0; i < c->n_ceps; i++) {
                    double acc = 0;
                    for (int j = 0; j < c->n_mels; j++) acc += (double)m->dct[(size_t)i * c->n_mels + j] * logmel[j];
                    out[i] = (float)acc;
                }
                if (chroma) chroma_frame(m, wav, n, t * c->hop + c->win / 2, cbuf, cspec, out + c->n_ceps);
            }
        }
        if (chroma) fftwf_free(cbuf), fftwf_free(cspec);
        fftwf_free(buf);
        fftwf_free(spec);
        free(power), free(logmel);
    }
    if (c->kind == HAFM_FEAT_MFCC) {
        if (c->deltas >= 1) deltas(feat, T, dim, 0, c->n_ceps, c->n_ceps);
        if (c->deltas >= 2) deltas(feat, T, dim, c->n_ceps, 2 * c->n_ceps, c->n_ceps);
    }
    if (c->cmvn != HAFM_CMVN_NONE) {
        #pragma omp parallel for schedule(static)
        for (int j = 0; j < dim; j++) {
            double s = 0, sq = 0;
            for (int64_t t = 0; t < T; t++) s += feat[t * dim + j];
            double mean = s / T;
            for (int64_t t = 0; t < T; t++) sq += (feat[t * dim + j] - mean) * (feat[t * dim + j] - mean);
            /* a constant dimension (e.g. silence) is centred but not scaled */
            double scale = c->cmvn == HAFM_CMVN_MEANVAR && sq > 0 ? 1.0 / sqrt(sq / T) : 1.0;
            for (int64_t t = 0; t < T; t++) feat[t * dim + j] = (float)((feat[t * dim + j] - mean) * scale);
        }
    }
    *frames = T;
    return feat;
}
