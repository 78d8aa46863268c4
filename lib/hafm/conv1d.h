/* hafm/conv1d.h - 1-D convolution kernels of SEANet-style codecs (EnCodec), time-major.
 *
 * Every activation is time-major, [L, C] row-major: a frame of all channels is contiguous. That
 * makes a stride-s convolution with kernel 2s two plain GEMMs over views of the input (no im2col
 * copy), a transposed convolution two GEMMs writing straight into its output, and streaming a
 * matter of carrying whole rows between chunks. Weights are kept in kernel layout (see below);
 * the PyTorch layout is re-derivable by a permutation.
 *
 * Kernels are llm.c style: outputs first, sizes last, shapes in comments. A backward kernel for
 * training belongs beside each forward one.
 */
#ifndef HAFM_CONV1D_H
#define HAFM_CONV1D_H

#include <stddef.h>
#include <stdint.h>

/* PyTorch F.pad(x, (pl, pr), mode='reflect') along time, including the EnCodec reference's rule
 * for inputs not longer than the padding (zero-extend by e = max(pl,pr) - L + 1, reflect, drop the
 * last e rows).
 * out [pl + L + pr, C], inp [L, C], L >= 1 */
void pad1d_reflect_forward(float *out, const float *inp, int64_t L, int C, int pl, int pr);

/* Right "extra" padding of the reference's padded conv: what brings the input up to a whole
 * number of output frames. */
int64_t conv1d_extra_padding(int64_t L, int kernel_eff, int stride, int padding_total);

/* Convolution of an already padded input (no padding inside), accumulated as GEMMs.
 * out [Lout, Cout] = bias + sum_k inp[t*stride + k*dilation, :] . weight[:, k, :]
 * Lout = (Lp - (K-1)*dilation - 1) / stride + 1
 * inp [Lp, Cin], weight [Cout, K, Cin] (PyTorch [Cout, Cin, K] permuted), bias [Cout] or NULL,
 * scratch >= conv1d_scratch_floats(...) floats (im2col or packed weights for narrow layers; may be
 * NULL when that returns 0). */
void conv1d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    float *scratch, int64_t Lp, int Cin, int Cout, int K, int stride, int dilation);
size_t conv1d_scratch_floats(int64_t Lp, int Cin, int Cout, int K, int stride, int dilation);
int64_t conv1d_out_len(int64_t Lp, int K, int stride, int dilation);

/* A 1x1 convolution without bias added to out: out [L, Cout] += inp [L, Cin] . weight [Cout, Cin]^T
 * (residual shortcuts). scratch >= conv1d_scratch_floats(L, Cin, Cout, 1, 1, 1) floats. */
void conv1d_accumulate_1x1(float *out, const float *inp, const float *weight, float *scratch, int64_t L,
                           int Cin, int Cout);

/* Transposed convolution with the causal right trim (trim K - stride), so T frames give exactly
 * T*stride output rows. `hist` frames of history precede the T new frames in inp (0 at the
 * start of a signal, up to ceil(K/stride)-1 when streaming): they contribute to the first rows
 * but produce no rows themselves.
 * out [T*stride, Cout], inp [hist + T, Cin], weight [Cin, K, Cout] (PyTorch [Cin, Cout, K]
 * permuted), bias [Cout] or NULL */
void conv_transpose1d_forward(float *out, const float *inp, const float *weight, const float *bias,
                              int64_t T, int hist, int Cin, int Cout, int K, int stride);

/* ELU with alpha 1: x > 0 ? x : expm1(x). out may equal inp. out, inp [n] */
void elu_forward(float *out, const float *inp, size_t n);

/* Layout changes between PyTorch weights and kernel weights. */
void conv1d_weight_from_torch(float *out, const float *w, int Cout, int Cin, int K);      /* [Cout,Cin,K] -> [Cout,K,Cin] */
void conv1d_weight_to_torch(float *out, const float *w, int Cout, int Cin, int K);        /* inverse */
void convtr1d_weight_from_torch(float *out, const float *w, int Cin, int Cout, int K);    /* [Cin,Cout,K] -> [Cin,K,Cout] */
void convtr1d_weight_to_torch(float *out, const float *w, int Cin, int Cout, int K);      /* inverse */

/* Weight norm (torch.nn.utils.weight_norm, dim 0): w = g * v / ||v||, the norm over all but dim 0,
 * no epsilon. Also returns the norms so that v = w * vnorm / g stays re-derivable.
 * w, v [D0, n], g [D0], vnorm [D0] or NULL */
void weight_norm_forward(float *w, float *vnorm, const float *g, const float *v, int D0, int64_t n);

#endif
