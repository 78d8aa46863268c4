/* hafm/rvq.h - residual vector quantiser kernels (EnCodec ResidualVectorQuantization).
 *
 * Nearest codebook entry by squared Euclidean distance, computed as the reference does in its
 * expanded form ||x||^2 - 2 x.c + ||c||^2 with one GEMM per stage over all frames and the codebook
 * norms precomputed; on exact ties the lowest index wins (torch argmax returns the first maximum).
 */
#ifndef HAFM_RVQ_H
#define HAFM_RVQ_H

#include <stddef.h>
#include <stdint.h>

/* ||c_j||^2 per codebook row. norms [bins], embed [bins, D] */
void rvq_codebook_norms(float *norms, const float *embed, int bins, int D);

/* Nearest entry per frame. codes[t * code_stride] receives the index.
 * dist scratch [T, bins] (left holding x.c), x [T, D], embed [bins, D], norms [bins] */
void rvq_nearest_forward(int32_t *codes, int code_stride, float *dist, const float *x,
                         const float *embed, const float *norms, int64_t T, int D, int bins);

/* Encode with n stages: codes [T, n] (frame-major, as in a tokens track), resid [T, D] holds the
 * latent on entry and the final residual on exit. embed: n pointers to [bins, D]; norms: n
 * pointers to [bins]; dist scratch [T, bins]. */
void rvq_encode_forward(int32_t *codes, float *resid, float *dist, const float *const *embed,
                        const float *const *norms, int64_t T, int D, int bins, int n);

/* Decode: out [T, D] = 0 + sum over stages k in order of embed[k][codes[t, k]], codes [T, n]
 * (row stride code_stride >= n). Codes must lie in [0, bins). */
void rvq_decode_forward(float *out, const int32_t *codes, int code_stride, const float *const *embed,
                        int64_t T, int D, int n);

#endif
