/* lstm.c - LSTM layers: the input projection of a chunk as one GEMM, then the sequential
 * recurrent matrix-vector step. */
#include "hafm/lstm.h"
#include "hafm/linalg.h"
#include "vmath.h"

#include <stdlib.h>
#include <string.h>

void lstm_layer_forward(float *out, float *gates, float *h, float *c, const float *inp,
                        const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh,
                        int64_t T, int In, int H)
{
    if (T <= 0) return;
    int G = 4 * H;
    for (int64_t t = 0; t < T; t++)
        for (int j = 0; j < G; j++) gates[t * G + j] = b_ih[j] + b_hh[j];
    hafm_sgemm(0, 1, (int)T, G, In, 1.0f, inp, In, w_ih, In, 1.0f, gates, G);

    /* The recurrent product goes through the BLAS thread pool like every other product, so one
     * set of threads serves the whole model (a second pool spinning beside it halves both). */
    for (int64_t t = 0; t < T; t++) {
        float *gt = gates + t * G;
        hafm_sgemv(0, G, H, 1.0f, w_hh, H, h, 1.0f, gt);
        for (int u = 0; u < H; u++) {
            float ig = hafm_sigmoidf(gt[u]);
            float fg = hafm_sigmoidf(gt[H + u]);
            float gg = hafm_tanhf(gt[2 * H + u]);
            float og = hafm_sigmoidf(gt[3 * H + u]);
            float cn = fg * c[u] + ig * gg;
            c[u] = cn;
            h[u] = og * hafm_tanhf(cn);
        }
        memcpy(out + t * H, h, (size_t)H * sizeof(float));
    }
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
