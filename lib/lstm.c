/* lstm.c - LSTM layers: the input projection of a chunk as one GEMM, then the sequential
 * recurrent step, its hidden units split among the threads of one team. */
#include "hafm/lstm.h"
#include "hafm/linalg.h"
#include "vmath.h"
#include "team.h"

#include <stdlib.h>
#include <string.h>
#include <omp.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

/* g[rows] += W[rows, n] h[n]: four rows at a time, so each load of h feeds four FMAs. */
static void matvec_add(float *g, const float *W, const float *h, int rows, int n)
{
    int r = 0;
#if defined(__AVX2__) && defined(__FMA__)
    /* eight rows at a time: eight independent FMA chains hide the FMA latency */
    if (n % 8 == 0)
        for (; r + 8 <= rows; r += 8) {
            const float *w0 = W + (size_t)r * n;
            __m256 a[8];
            for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
            for (int j = 0; j < n; j += 8) {
                __m256 x = _mm256_loadu_ps(h + j);
                for (int k = 0; k < 8; k++) a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + (size_t)k * n + j), x, a[k]);
            }
            for (int k = 0; k < 8; k++) g[r + k] += hsum8(a[k]);
        }
    if (n % 8 == 0)
        for (; r + 4 <= rows; r += 4) {
            const float *w0 = W + (size_t)r * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int j = 0; j < n; j += 8) {
                __m256 x = _mm256_loadu_ps(h + j);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + j), x, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + j), x, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + j), x, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + j), x, a3);
            }
            g[r] += hsum8(a0); g[r + 1] += hsum8(a1); g[r + 2] += hsum8(a2); g[r + 3] += hsum8(a3);
        }
#endif
    for (; r < rows; r++) {
        float s = 0;
        for (int j = 0; j < n; j++) s += W[(size_t)r * n + j] * h[j];
        g[r] += s;
    }
}

/* Cell update of units [u0, u1) from the gate pre-activations gt [4H] (i, f, g, o blocks). */
static void cell_update(float *h, float *c, const float *gt, int H, int u0, int u1)
{
    int u = u0;
#ifdef HAFM_HAVE_EXP8
    const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    for (; u + 8 <= u1; u += 8) {
        __m256 ig = _mm256_div_ps(one, _mm256_add_ps(one, hafm_exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_loadu_ps(gt + u)))));
        __m256 fg = _mm256_div_ps(one, _mm256_add_ps(one, hafm_exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_loadu_ps(gt + H + u)))));
        __m256 gg = _mm256_sub_ps(_mm256_div_ps(two, _mm256_add_ps(one, hafm_exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), _mm256_loadu_ps(gt + 2 * H + u))))), one);
        __m256 og = _mm256_div_ps(one, _mm256_add_ps(one, hafm_exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_loadu_ps(gt + 3 * H + u)))));
        __m256 cn = _mm256_fmadd_ps(fg, _mm256_loadu_ps(c + u), _mm256_mul_ps(ig, gg));
        _mm256_storeu_ps(c + u, cn);
        __m256 tc = _mm256_sub_ps(_mm256_div_ps(two, _mm256_add_ps(one, hafm_exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), cn)))), one);
        _mm256_storeu_ps(h + u, _mm256_mul_ps(og, tc));
    }
#endif
    for (; u < u1; u++) {
        float ig = hafm_sigmoidf(gt[u]);
        float fg = hafm_sigmoidf(gt[H + u]);
        float gg = hafm_tanhf(gt[2 * H + u]);
        float og = hafm_sigmoidf(gt[3 * H + u]);
        float cn = fg * c[u] + ig * gg;
        c[u] = cn;
        h[u] = og * hafm_tanhf(cn);
    }
}

/* Below this hidden size a frame's step is too small to share (the barrier would dominate). */
#define LSTM_TEAM_MIN_H 128

void lstm_layer_forward(float *out, float *gates, float *h, float *c, const float *inp,
                        const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh,
                        int64_t T, int In, int H)
{
    if (T <= 0) return;
    int G = 4 * H;
    for (int64_t t = 0; t < T; t++)
        for (int j = 0; j < G; j++) gates[t * G + j] = b_ih[j] + b_hh[j];
    hafm_sgemm_omp(0, 1, (int)T, G, In, 1.0f, inp, In, w_ih, In, 1.0f, gates, G);

    /* Each thread owns a block of hidden units: it computes their four gate rows (reading its
     * share of w_hh, which is the step's cost: 4H x H weights a frame) and updates their cell,
     * so the threads meet once a frame. h is double-buffered (the frame's products read all of
     * the previous h while the owners write the new one); out keeps every frame's h. */
    int team = omp_get_max_threads();
    if (team > 2) team = 2;   /* more threads would each stream too little of w_hh per frame */
    if (H < LSTM_TEAM_MIN_H || H % 16) team = 1;
    float *hbuf = hafm_aligned_alloc((size_t)H * sizeof(float));
    hafm_team_barrier bar = {0, 0, 1};
#pragma omp parallel num_threads(team)
    {
        int p = omp_get_thread_num(), np = omp_get_num_threads();
#pragma omp single
        bar.n = np;
        int u0 = (int)((int64_t)H / 8 * p / np) * 8, u1 = p == np - 1 ? H : (int)((int64_t)H / 8 * (p + 1) / np) * 8;
        const float *hprev = h;
        for (int64_t t = 0; t < T; t++) {
            float *gt = gates + t * G, *hnext = t & 1 ? h : hbuf;
            for (int blk = 0; blk < 4; blk++)
                matvec_add(gt + blk * H + u0, w_hh + ((size_t)blk * H + u0) * H, hprev, u1 - u0, H);
            /* the cell state is per unit, so each owner updates its own units in place */
            cell_update(hnext, c, gt, H, u0, u1);
            memcpy(out + t * H + u0, hnext + u0, (size_t)(u1 - u0) * sizeof(float));
            hafm_team_wait(&bar);
            hprev = hnext;
        }
    }
    if (T & 1) memcpy(h, hbuf, (size_t)H * sizeof(float));   /* the last frame wrote hbuf */
    free(hbuf);
}

size_t hafm_lstm_scratch_floats(const hafm_lstm *l, int64_t T)
{
    return (size_t)T * 4 * l->hidden + 2 * (size_t)T * l->hidden;
}

void hafm_lstm_forward(float *out, float *state, float *scratch, const hafm_lstm *l,
                       const float *inp, int64_t T, int skip)
{
    int H = l->hidden;
    float *gates = scratch;
    float *buf[2] = {scratch + (size_t)T * 4 * H, scratch + (size_t)T * 5 * H};
    const float *x = inp;
    for (int n = 0; n < l->layers; n++) {
        float *y = buf[n & 1];
        lstm_layer_forward(y, gates, state + (size_t)n * 2 * H, state + (size_t)n * 2 * H + H, x,
                           l->w_ih[n], l->w_hh[n], l->b_ih[n], l->b_hh[n], T, H, H);
        x = y;
    }
    for (int64_t i = 0; i < T * H; i++) out[i] = x[i] + (skip ? inp[i] : 0.0f);
}

void hafm_lstm_free(hafm_lstm *l)
{
    for (int n = 0; n < l->layers; n++) {
        if (l->w_ih) free(l->w_ih[n]);
        if (l->w_hh) free(l->w_hh[n]);
        if (l->b_ih) free(l->b_ih[n]);
        if (l->b_hh) free(l->b_hh[n]);
    }
    free(l->w_ih); free(l->w_hh); free(l->b_ih); free(l->b_hh);
    memset(l, 0, sizeof *l);
}
