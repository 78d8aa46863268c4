/* repet.c - REPET-SIM with an optional stereo centre mask (see hafm/repet.h). */
#include "hafm/repet.h"
#include "hafm/linalg.h"
#include "hafm/stft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SIM_BLOCK 256
#define PEAK_BLOCK 64
#define MASK_EPS 1e-12f

void hafm_repet_defaults(hafm_repet_params *p) {
    p->min_distance = 1.0;
    p->max_neighbours = 100;
    p->threshold = 0.0;
    p->highpass_hz = 100.0;
    p->window = 0;
    p->hop = 0;
    p->centre = 0.0;
}

/* Greedy argmax with exclusion zones [c - min_dist, c + min_dist]; block maxima keep each pick
 * at O(n / PEAK_BLOCK + min_dist) instead of O(n). Ties go to the lowest index, like np.argmax. */
int hafm_repet_pick_peaks(int *out, const float *sim, int n, int max_peaks, int min_dist,
                          float threshold) {
    int nblk = (n + PEAK_BLOCK - 1) / PEAK_BLOCK;
    float *v = hafm_xmalloc((size_t)n * sizeof(float));
    float *bmax = hafm_xmalloc((size_t)nblk * sizeof(float));
    int *barg = hafm_xmalloc((size_t)nblk * sizeof(int));
    for (int i = 0; i < n; i++) v[i] = sim[i] < threshold ? -INFINITY : sim[i];
    for (int b = 0; b < nblk; b++) {
        int a = b * PEAK_BLOCK, e = a + PEAK_BLOCK < n ? a + PEAK_BLOCK : n;
        bmax[b] = -INFINITY;
        barg[b] = a;
        for (int i = a; i < e; i++)
            if (v[i] > bmax[b]) { bmax[b] = v[i]; barg[b] = i; }
    }
    int count = 0;
    while (count < max_peaks) {
        int best = -1;
        for (int b = 0; b < nblk; b++)
            if (bmax[b] > -INFINITY && (best < 0 || bmax[b] > bmax[best])) best = b;
        if (best < 0) break;
        int c = barg[best];
        out[count++] = c;
        int lo = c - min_dist < 0 ? 0 : c - min_dist, hi = c + min_dist >= n ? n - 1 : c + min_dist;
        for (int i = lo; i <= hi; i++) v[i] = -INFINITY;
        for (int b = lo / PEAK_BLOCK; b <= hi / PEAK_BLOCK; b++) {
            int a = b * PEAK_BLOCK, e = a + PEAK_BLOCK < n ? a + PEAK_BLOCK : n;
            bmax[b] = -INFINITY;
            barg[b] = a;
            for (int i = a; i < e; i++)
                if (v[i] > bmax[b]) { bmax[b] = v[i]; barg[b] = i; }
        }
    }
    free(v);
    free(bmax);
    free(barg);
    return count;
}

/* numpy.median of m values (averages the two middle ones for even m); reorders x. */
static float median_inplace(float *x, int m) {
    int k = m / 2;
    int lo = 0, hi = m - 1;
    while (lo < hi) {   /* quickselect for the k-th smallest */
        float pivot = x[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (x[i] < pivot) i++;
            while (x[j] > pivot) j--;
            if (i <= j) { float t = x[i]; x[i] = x[j]; x[j] = t; i++; j--; }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else break;
    }
    float upper = x[k];
    if (m % 2) return upper;
    float lower = -INFINITY;   /* the largest of the elements below k */
    for (int i = 0; i < k; i++)
        if (x[i] > lower) lower = x[i];
    return 0.5f * (lower + upper);
}

int hafm_repet_sim(float *vocal, float *accomp, const float *x, int64_t n, int channels,
                   int sample_rate, const hafm_repet_params *p) {
    if (n < 1 || channels < 1 || sample_rate < 1) {
        hafm_error("REPET-SIM: empty audio");
        return -1;
    }
    int win = p->window;
    if (win <= 0) {
        win = 1;
        while (win < 0.032 * sample_rate) win *= 2;
    }
    int hop = p->hop > 0 ? p->hop : win / 4;
    if (hop < 1) hop = 1;
    float *w = hafm_xmalloc((size_t)win * sizeof(float));
    hafm_window_sqrt_hann(w, win, 1);
    hafm_stft s;
    if (hafm_stft_init(&s, win, win, hop, w) < 0) { free(w); return -1; }
    free(w);
    const int nb = s.nbins;
    const int64_t T64 = hafm_stft_frames(&s, n, 1);
    if (T64 > (1 << 30) / SIM_BLOCK) {
        hafm_error("REPET-SIM: audio too long (%lld frames)", (long long)T64);
        hafm_stft_free(&s);
        return -1;
    }
    const int T = (int)T64;
    size_t plane = (size_t)T * nb;
    float *spec = hafm_xmalloc(plane * 2 * channels * sizeof(float));
    float *mag = hafm_xmalloc(plane * channels * sizeof(float));
    float *mono = hafm_xcalloc(plane, sizeof(float));
    for (int c = 0; c < channels; c++) {
        float *sc = spec + plane * 2 * c, *mc = mag + plane * c;
        hafm_stft_forward(&s, sc, x + c, n, channels, 1);
#pragma omp parallel for schedule(static)
        for (int t = 0; t < T; t++) {
            hafm_stft_magnitude(mc + (size_t)t * nb, sc + (size_t)t * nb * 2, nb);
            for (int k = 0; k < nb; k++) mono[(size_t)t * nb + k] += mc[(size_t)t * nb + k] / channels;
        }
    }
    /* cosine similarity of frames: unit-norm rows of the mono magnitude */
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        double ss = 0;
        float *r = mono + (size_t)t * nb;
        for (int k = 0; k < nb; k++) ss += (double)r[k] * r[k];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int k = 0; k < nb; k++) r[k] *= inv;
    }
    int K = p->max_neighbours > 0 ? p->max_neighbours : 1;
    int min_dist = (int)lround(p->min_distance * sample_rate / hop);
    int *nbr = hafm_xmalloc((size_t)T * K * sizeof(int));
    int *nnbr = hafm_xmalloc((size_t)T * sizeof(int));
    float *sim = hafm_xmalloc((size_t)SIM_BLOCK * T * sizeof(float));
    for (int t0 = 0; t0 < T; t0 += SIM_BLOCK) {
        int m = T - t0 < SIM_BLOCK ? T - t0 : SIM_BLOCK;
        hafm_sgemm(0, 1, m, T, nb, 1.0f, mono + (size_t)t0 * nb, nb, mono, nb, 0.0f, sim, T);
#pragma omp parallel for schedule(dynamic, 8)
        for (int i = 0; i < m; i++)
            nnbr[t0 + i] = hafm_repet_pick_peaks(nbr + (size_t)(t0 + i) * K, sim + (size_t)i * T, T, K,
                                                 min_dist, (float)p->threshold);
    }
    free(sim);
    free(mono);
    int cutoff = (int)ceil(p->highpass_hz * (win - 1) / sample_rate) - 1;  /* nussl's rounding */
    if (cutoff < 0) cutoff = 0;
    if (cutoff > nb) cutoff = nb;
    float centre = p->centre > 0 && channels == 2 ? (float)p->centre : 0.0f;
    /* vocal mask per channel, in place of the magnitudes */
    for (int c = 0; c < channels; c++) {
        float *mc = mag + plane * c;
        float *vm = hafm_xmalloc(plane * sizeof(float));
#pragma omp parallel
        {
            /* the neighbours' spectra, transposed: buf[k][j], so each bin's values are contiguous */
            float *buf = hafm_xmalloc((size_t)nb * K * sizeof(float));
#pragma omp for schedule(dynamic, 16)
            for (int t = 0; t < T; t++) {
                const int *idx = nbr + (size_t)t * K;
                const int cnt = nnbr[t];
                const float *own = mc + (size_t)t * nb;
                float *vrow = vm + (size_t)t * nb;
                for (int j = 0; j < cnt; j++) {
                    const float *row = mc + (size_t)idx[j] * nb;
                    for (int k = 0; k < nb; k++) buf[(size_t)k * cnt + j] = row[k];
                }
                for (int k = 0; k < nb; k++) {
                    float v = own[k], mask = 1.0f;
                    if (k >= cutoff && cnt > 0) {
                        float *x = buf + (size_t)k * cnt;
                        /* min(median, v) is v whenever the lower middle value is >= v: fewer
                         * than cnt/2 (odd: cnt/2 + 1) values below v. Counting is cheap. */
                        int below = 0;
                        for (int j = 0; j < cnt; j++) below += x[j] < v;
                        if (below > (cnt - 1) / 2) {
                            float med = median_inplace(x, cnt);
                            if (med > v) med = v;
                            mask = (med + MASK_EPS) / (v + MASK_EPS);
                        }
                    }
                    vrow[k] = 1.0f - mask;
                }
            }
            free(buf);
        }
        memcpy(mc, vm, plane * sizeof(float));
        free(vm);
    }
    if (centre > 0) {
        const float *L = spec, *R = spec + plane * 2;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < plane; i++) {
            float sr = L[2 * i] + R[2 * i], si = L[2 * i + 1] + R[2 * i + 1];
            float el = L[2 * i] * L[2 * i] + L[2 * i + 1] * L[2 * i + 1];
            float er = R[2 * i] * R[2 * i] + R[2 * i + 1] * R[2 * i + 1];
            float cw = 2.0f * (sr * sr + si * si) / (2.0f * (el + er) + MASK_EPS) - 1.0f;
            cw = cw < 0 ? 0 : cw > 1 ? 1 : cw;
            float g = 1.0f - centre + centre * cw;
            mag[i] *= g;
            mag[plane + i] *= g;
        }
    }
    for (int c = 0; c < channels; c++) {
        float *sc = spec + plane * 2 * c;
        const float *vm = mag + plane * c;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < plane; i++) {
            sc[2 * i] *= vm[i];
            sc[2 * i + 1] *= vm[i];
        }
        hafm_stft_inverse(&s, vocal + c, channels, sc, T, n, 1);
    }
    if (accomp)
        for (int64_t i = 0; i < n * channels; i++) accomp[i] = x[i] - vocal[i];
    free(spec);
    free(mag);
    free(nbr);
    free(nnbr);
    hafm_stft_free(&s);
    return 0;
}
