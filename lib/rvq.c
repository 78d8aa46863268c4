/* rvq.c - residual vector quantiser kernels (see hafm/rvq.h). */
#include "hafm/rvq.h"
#include "hafm/linalg.h"

#include <string.h>

void rvq_codebook_norms(float *norms, const float *embed, int bins, int D)
{
    for (int j = 0; j < bins; j++) {
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += embed[(size_t)j * D + d] * embed[(size_t)j * D + d];
        norms[j] = s;
    }
}

void rvq_nearest_forward(int32_t *codes, int code_stride, float *dist, const float *x,
                         const float *embed, const float *norms, int64_t T, int D, int bins)
{
    if (T <= 0) return;
    hafm_sgemm(0, 1, (int)T, bins, D, 1.0f, x, D, embed, D, 0.0f, dist, bins);
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * D;
        float x2 = 0.0f;
        for (int d = 0; d < D; d++) x2 += xt[d] * xt[d];
        const float *dt = dist + t * bins;
        /* Same association as the reference: (||x||^2 - 2 x.c) + ||c||^2; strict '<' keeps
         * the lowest index among equal distances. */
        int best = 0;
        float bestd = (x2 - 2.0f * dt[0]) + norms[0];
        for (int j = 1; j < bins; j++) {
            float d = (x2 - 2.0f * dt[j]) + norms[j];
            if (d < bestd) { bestd = d; best = j; }
        }
        codes[t * code_stride] = best;
    }
}

void rvq_encode_forward(int32_t *codes, float *resid, float *dist, const float *const *embed,
                        const float *const *norms, int64_t T, int D, int bins, int n)
{
    for (int k = 0; k < n; k++) {
        rvq_nearest_forward(codes + k, n, dist, resid, embed[k], norms[k], T, D, bins);
        for (int64_t t = 0; t < T; t++) {
            const float *e = embed[k] + (size_t)codes[t * n + k] * D;
            for (int d = 0; d < D; d++) resid[t * D + d] -= e[d];
        }
    }
}

void rvq_decode_forward(float *out, const int32_t *codes, int code_stride, const float *const *embed,
                        int64_t T, int D, int n)
{
    memset(out, 0, (size_t)T * D * sizeof(float));
    for (int64_t t = 0; t < T; t++)
        for (int k = 0; k < n; k++) {
            const float *e = embed[k] + (size_t)codes[t * code_stride + k] * D;
            for (int d = 0; d < D; d++) out[t * D + d] += e[d];
        }
}
