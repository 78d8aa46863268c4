/* musicfit.c - chord and beat fit of an accompaniment, log-mel distance (hafm/musicfit.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "hafm/musicfit.h"
#include "hafm/stft.h"

/* ---- labels ---------------------------------------------------------------------------------- */
void hafm_labels_free(hafm_song_labels *l)
{
    free(l->chords);
    free(l->beats);
    memset(l, 0, sizeof *l);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        hafm_error("cannot open %s:", path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = hafm_xmalloc(cap + 1);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) buf = hafm_xrealloc(buf, (cap *= 2) + 1);
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) {
        free(buf);
        hafm_error("cannot read %s:", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int hafm_labels_read(const char *path, hafm_song_labels *out)
{
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = slurp(path, &len);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *chords = root ? cJSON_GetObjectItemCaseSensitive(root, "chords") : NULL;
    const cJSON *beats = root ? cJSON_GetObjectItemCaseSensitive(root, "beats") : NULL;
    if (!cJSON_IsArray(chords) || !cJSON_IsArray(beats)) {
        cJSON_Delete(root);
        hafm_error("%s: not a labels file (expected arrays 'chords' and 'beats')", path);
        return -1;
    }
    out->chords = hafm_xcalloc((size_t)cJSON_GetArraySize(chords) + 1, sizeof *out->chords);
    out->beats = hafm_xcalloc((size_t)cJSON_GetArraySize(beats) + 1, sizeof *out->beats);
    const cJSON *c, *b;
    cJSON_ArrayForEach(c, chords) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, "start");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(c, "end");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(c, "pitch_classes");
        if (!cJSON_IsNumber(s) || !cJSON_IsNumber(e) || !cJSON_IsArray(p) || !(e->valuedouble > s->valuedouble))
            goto bad;
        hafm_chord_span *span = &out->chords[out->n_chords++];
        span->start = s->valuedouble;
        span->end = e->valuedouble;
        const cJSON *pc;
        cJSON_ArrayForEach(pc, p) {
            if (!cJSON_IsNumber(pc) || pc->valuedouble < 0 || pc->valuedouble > 11) goto bad;
            span->pcs |= 1u << (int)pc->valuedouble;
        }
    }
    cJSON_ArrayForEach(b, beats) {
        if (!cJSON_IsNumber(b) || b->valuedouble < 0) goto bad;
        out->beats[out->n_beats++] = b->valuedouble;
    }
    cJSON_Delete(root);
    return 0;
bad:
    cJSON_Delete(root);
    hafm_labels_free(out);
    hafm_error("%s: a chord needs start < end and pitch_classes in 0-11, a beat a time >= 0", path);
    return -1;
}

/* ---- spectra --------------------------------------------------------------------------------- */
/* The power spectrogram [frames][nbins] of x (centred frames), periodic Hann. */
static float *power_spectrogram(const float *x, int64_t n, int n_fft, int hop, int64_t *frames, int *nbins)
{
    hafm_stft s;
    if (hafm_stft_init(&s, n_fft, n_fft, hop, NULL) < 0) return NULL;
    /* reflect padding needs more samples than half a frame: pad short inputs with zeros */
    int64_t m = n > n_fft ? n : n_fft + 1;
    float *buf = hafm_xcalloc((size_t)m, sizeof *buf);
    memcpy(buf, x, (size_t)n * sizeof *buf);
    int64_t T = hafm_stft_frames(&s, m, 1);
    float *spec = hafm_xmalloc((size_t)T * s.nbins * 2 * sizeof *spec);
    hafm_stft_forward(&s, spec, buf, m, 1, 1);
    float *pow = hafm_xmalloc((size_t)T * s.nbins * sizeof *pow);
    for (int64_t i = 0; i < T * s.nbins; i++) pow[i] = spec[2 * i] * spec[2 * i] + spec[2 * i + 1] * spec[2 * i + 1];
    *frames = T;
    *nbins = s.nbins;
    free(spec);
    free(buf);
    hafm_stft_free(&s);
    return pow;
}

/* A frame length of about `seconds`, a power of two. */
static int pow2_frame(int sr, double seconds)
{
    int n = 64;
    while (n < seconds * sr) n *= 2;
    return n;
}

float *hafm_chroma(const float *x, int64_t n, int sr, int64_t *frames, double *hop_seconds)
{
    int n_fft = pow2_frame(sr, 4096.0 / 24000), hop = n_fft / 4, nbins;
    int64_t T;
    float *pow = power_spectrogram(x, n, n_fft, hop, &T, &nbins);
    if (!pow) return NULL;
    int *pc = hafm_xmalloc((size_t)nbins * sizeof *pc);
    for (int k = 0; k < nbins; k++) {
        double f = (double)k * sr / n_fft;
        pc[k] = f < 80 || f > 2000 ? -1 : (int)(((long)lround(12 * log2(f / 440.0)) + 69 + 1200) % 12);
    }
    float *chroma = hafm_xcalloc((size_t)T * 12, sizeof *chroma);
    for (int64_t t = 0; t < T; t++)
        for (int k = 0; k < nbins; k++)
            if (pc[k] >= 0) chroma[t * 12 + pc[k]] += pow[t * nbins + k];
    free(pc);
    free(pow);
    *frames = T;
    *hop_seconds = (double)hop / sr;
    return chroma;
}

float *hafm_onset_strength(const float *x, int64_t n, int sr, int64_t *frames, double *hop_seconds)
{
    int n_fft = pow2_frame(sr, 1024.0 / 24000), hop = n_fft / 4, nbins;
    int64_t T;
    float *pow = power_spectrogram(x, n, n_fft, hop, &T, &nbins);
    if (!pow) return NULL;
    /* log compression (as in onset detectors) makes quiet and loud onsets count alike */
    for (int64_t i = 0; i < T * nbins; i++) pow[i] = log1pf(1000.0f * sqrtf(pow[i]));
    float *env = hafm_xcalloc((size_t)T, sizeof *env);
    for (int64_t t = 1; t < T; t++) {
        double s = 0;
        for (int k = 0; k < nbins; k++) {
            float d = pow[t * nbins + k] - pow[(t - 1) * nbins + k];
            if (d > 0) s += d;
        }
        env[t] = (float)(s / nbins);
    }
    free(pow);
    *frames = T;
    *hop_seconds = (double)hop / sr;
    return env;
}

double hafm_chord_fit(const float *x, int64_t n, int sr, const hafm_song_labels *l, int *spans_used)
{
    int64_t T;
    double hop;
    *spans_used = 0;
    float *chroma = hafm_chroma(x, n, sr, &T, &hop);
    if (!chroma) return NAN;
    double duration = (double)n / sr, weighted = 0, weights = 0;
    for (int i = 0; i < l->n_chords; i++) {
        const hafm_chord_span *c = &l->chords[i];
        if (c->start >= duration) continue;
        double end = c->end < duration ? c->end : duration, on = 0, all = 0;
        for (int64_t t = (int64_t)ceil(c->start / hop); t < T && t * hop < end; t++)
            for (int p = 0; p < 12; p++) {
                all += chroma[t * 12 + p];
                if (c->pcs >> p & 1) on += chroma[t * 12 + p];
            }
        if (!(all > 0)) continue;
        weighted += (end - c->start) * on / all;
        weights += end - c->start;
        (*spans_used)++;
    }
    free(chroma);
    return weights > 0 ? weighted / weights : NAN;
}

double hafm_beat_fit(const float *x, int64_t n, int sr, const hafm_song_labels *l, double tol, int *beats_used)
{
    int64_t T;
    double hop;
    *beats_used = 0;
    float *env = hafm_onset_strength(x, n, sr, &T, &hop);
    if (!env) return NAN;
    int w = (int)lround(tol / hop);
    /* the neighbourhood maximum at every frame: beats and chance measured the same way */
    double *peak = hafm_xmalloc((size_t)T * sizeof *peak), chance = 0;
    for (int64_t t = 0; t < T; t++) {
        float m = 0;
        for (int64_t u = t - w; u <= t + w; u++)
            if (u >= 0 && u < T && env[u] > m) m = env[u];
        peak[t] = m;
        chance += m;
    }
    chance /= T;
    double on_beats = 0;
    for (int i = 0; i < l->n_beats; i++) {
        int64_t t = (int64_t)lround(l->beats[i] / hop);
        if (t >= T || l->beats[i] * sr >= n) continue;
        on_beats += peak[t];
        (*beats_used)++;
    }
    free(peak);
    free(env);
    if (*beats_used == 0 || !(chance > 0)) return NAN;
    return on_beats / *beats_used / chance;
}

/* HTK mel scale */
static double hz_to_mel(double f) { return 2595.0 * log10(1.0 + f / 700.0); }
static double mel_to_hz(double m) { return 700.0 * (pow(10.0, m / 2595.0) - 1.0); }

double hafm_mel_distance(const float *ref, const float *est, int64_t n, int sr)
{
    enum { BANDS = 64 };
    int n_fft = pow2_frame(sr, 1024.0 / 24000), hop = n_fft / 4, nbins;
    int64_t T, T2;
    float *pr = power_spectrogram(ref, n, n_fft, hop, &T, &nbins);
    float *pe = power_spectrogram(est, n, n_fft, hop, &T2, &nbins);
    if (!pr || !pe) {
        free(pr);
        free(pe);
        return NAN;
    }
    /* triangular filters between BANDS + 2 points equally spaced in mel from 0 to sr/2 */
    float *fb = hafm_xcalloc((size_t)BANDS * nbins, sizeof *fb);
    double top = hz_to_mel(sr / 2.0);
    for (int b = 0; b < BANDS; b++) {
        double lo = mel_to_hz(top * b / (BANDS + 1)), mid = mel_to_hz(top * (b + 1) / (BANDS + 1)),
               hi = mel_to_hz(top * (b + 2) / (BANDS + 1));
        for (int k = 0; k < nbins; k++) {
            double f = (double)k * sr / n_fft;
            double v = f <= lo || f >= hi ? 0 : f <= mid ? (f - lo) / (mid - lo) : (hi - f) / (hi - mid);
            fb[b * nbins + k] = (float)v;
        }
    }
    double sum = 0;
    for (int64_t t = 0; t < T; t++)
        for (int b = 0; b < BANDS; b++) {
            double mr = 0, me = 0;
            for (int k = 0; k < nbins; k++) {
                mr += fb[b * nbins + k] * pr[t * nbins + k];
                me += fb[b * nbins + k] * pe[t * nbins + k];
            }
            sum += fabs(log10(mr + 1e-5) - log10(me + 1e-5));
        }
    free(fb);
    free(pr);
    free(pe);
    return sum / ((double)T * BANDS);
}
