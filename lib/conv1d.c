/* conv1d.c - time-major 1-D convolution kernels over hafm_sgemm (see hafm/conv1d.h). */
#include "hafm/conv1d.h"
#include "hafm/linalg.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

void pad1d_reflect_forward(float *out, const float *inp, int64_t L, int C, int pl, int pr)
{
    /* The reference zero-extends inputs that are not longer than the padding, so that reflection
     * is defined, and drops the extension afterwards (encodec/modules/conv.py pad1d). */
    int64_t maxpad = pl > pr ? pl : pr;
    int64_t e = L <= maxpad ? maxpad - L + 1 : 0;
    int64_t Lx = L + e;
    int64_t n = pl + L + pr;
    for (int64_t p = 0; p < n; p++) {
        int64_t q = p - pl;
        if (q < 0) q = -q;
        if (q >= Lx) q = 2 * (Lx - 1) - q;
        float *dst = out + p * C;
        if (q < L) memcpy(dst, inp + q * C, (size_t)C * sizeof(float));
        else memset(dst, 0, (size_t)C * sizeof(float));
    }
}

int64_t conv1d_extra_padding(int64_t L, int kernel_eff, int stride, int padding_total)
{
    /* n_frames = (L - k_eff + pt)/s + 1 rounded up; ideal = (n_frames - 1)*s + k_eff - pt */
    int64_t num = L - kernel_eff + padding_total;
    int64_t nf = num >= 0 ? (num + stride - 1) / stride + 1 : 1 - (-num) / stride;
    int64_t ideal = (nf - 1) * stride + (kernel_eff - padding_total);
    return ideal > L ? ideal - L : 0;
}

int64_t conv1d_out_len(int64_t Lp, int K, int stride, int dilation)
{
    int64_t keff = (int64_t)(K - 1) * dilation + 1;
    return Lp < keff ? 0 : (Lp - keff) / stride + 1;
}

/* Narrow inputs make per-tap GEMMs with tiny inner dimension; gathering the taps into one row
 * (im2col) gives one GEMM with K*Cin inner dimension instead. */
static int use_im2col(int Cin, int K, int stride, int dilation)
{
    if (K == 1) return 0;
    if (dilation > 1) return 1;
    return (int64_t)stride * Cin < 64;
}

size_t conv1d_scratch_floats(int64_t Lp, int Cin, int K, int stride, int dilation)
{
    if (!use_im2col(Cin, K, stride, dilation)) return 0;
    return (size_t)conv1d_out_len(Lp, K, stride, dilation) * K * Cin;
}

static void fill_bias(float *out, const float *bias, int64_t rows, int C)
{
    for (int64_t t = 0; t < rows; t++) memcpy(out + t * C, bias, (size_t)C * sizeof(float));
}

void conv1d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    float *scratch, int64_t Lp, int Cin, int Cout, int K, int stride, int dilation)
{
    int64_t Lout = conv1d_out_len(Lp, K, stride, dilation);
    if (Lout <= 0) return;
    float beta = 0.0f;
    if (bias) { fill_bias(out, bias, Lout, Cout); beta = 1.0f; }
    if (use_im2col(Cin, K, stride, dilation)) {
        int64_t row = (int64_t)K * Cin;
        for (int64_t t = 0; t < Lout; t++)
            for (int k = 0; k < K; k++)
                memcpy(scratch + t * row + (int64_t)k * Cin, inp + (t * stride + (int64_t)k * dilation) * Cin,
                       (size_t)Cin * sizeof(float));
        hafm_sgemm(0, 1, (int)Lout, Cout, (int)row, 1.0f, scratch, (int)row, weight, (int)row, beta, out, Cout);
        return;
    }
    if (dilation == 1) {
        /* Taps m*s .. m*s+s-1 of every output row t are the contiguous input row t+m of the
         * [Lp/s, s*Cin] view, so each block of `stride` taps is one GEMM on a strided view. */
        for (int m = 0; m * stride < K; m++) {
            int bl = K - m * stride < stride ? K - m * stride : stride;
            hafm_sgemm(0, 1, (int)Lout, Cout, bl * Cin, 1.0f, inp + (int64_t)m * stride * Cin, stride * Cin,
                       weight + (int64_t)m * stride * Cin, K * Cin, beta, out, Cout);
            beta = 1.0f;
        }
        return;
    }
    for (int k = 0; k < K; k++) {   /* only reached for stride * Cin >= 64 without im2col */
        hafm_sgemm(0, 1, (int)Lout, Cout, Cin, 1.0f, inp + (int64_t)k * dilation * Cin, stride * Cin,
                   weight + (int64_t)k * Cin, K * Cin, beta, out, Cout);
        beta = 1.0f;
    }
}

void conv_transpose1d_forward(float *out, const float *inp, const float *weight, const float *bias,
                              int64_t T, int hist, int Cin, int Cout, int K, int stride)
{
    if (T <= 0) return;
    int64_t ldc = (int64_t)stride * Cout;   /* out viewed as [T, stride*Cout]: frame j's rows */
    if (bias) fill_bias(out, bias, T * stride, Cout);
    else memset(out, 0, (size_t)(T * ldc) * sizeof(float));
    /* Output rows j*s + r (r < s) receive input frame j - m through taps m*s + r: block m is one
     * GEMM from the input shifted by m frames into the whole output row of frame j. */
    for (int m = 0; m * stride < K; m++) {
        int bl = K - m * stride < stride ? K - m * stride : stride;
        int64_t j0 = m - hist > 0 ? m - hist : 0;
        if (j0 >= T) break;
        hafm_sgemm(0, 0, (int)(T - j0), bl * Cout, Cin, 1.0f, inp + (hist + j0 - m) * Cin, Cin,
                   weight + (int64_t)m * stride * Cout, K * Cout, 1.0f, out + j0 * ldc, (int)ldc);
    }
}

void elu_forward(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x > 0.0f ? x : hafm_expm1f_neg(x);
    }
}

void conv1d_weight_from_torch(float *out, const float *w, int Cout, int Cin, int K)
{
    for (int o = 0; o < Cout; o++)
        for (int c = 0; c < Cin; c++)
            for (int k = 0; k < K; k++)
                out[((size_t)o * K + k) * Cin + c] = w[((size_t)o * Cin + c) * K + k];
}

void conv1d_weight_to_torch(float *out, const float *w, int Cout, int Cin, int K)
{
    for (int o = 0; o < Cout; o++)
        for (int c = 0; c < Cin; c++)
            for (int k = 0; k < K; k++)
                out[((size_t)o * Cin + c) * K + k] = w[((size_t)o * K + k) * Cin + c];
}

void convtr1d_weight_from_torch(float *out, const float *w, int Cin, int Cout, int K)
{
    for (int c = 0; c < Cin; c++)
        for (int o = 0; o < Cout; o++)
            for (int k = 0; k < K; k++)
                out[((size_t)c * K + k) * Cout + o] = w[((size_t)c * Cout + o) * K + k];
}

void convtr1d_weight_to_torch(float *out, const float *w, int Cin, int Cout, int K)
{
    for (int c = 0; c < Cin; c++)
        for (int o = 0; o < Cout; o++)
            for (int k = 0; k < K; k++)
                out[((size_t)c * Cout + o) * K + k] = w[((size_t)c * K + k) * Cout + o];
}

void weight_norm_forward(float *w, float *vnorm, const float *g, const float *v, int D0, int64_t n)
{
    for (int i = 0; i < D0; i++) {
        double ss = 0.0;
        for (int64_t j = 0; j < n; j++) ss += (double)v[i * n + j] * v[i * n + j];
        float norm = (float)sqrt(ss);
        float scale = g[i] / norm;   /* torch._weight_norm: v * (g / ||v||) */
        for (int64_t j = 0; j < n; j++) w[i * n + j] = v[i * n + j] * scale;
        if (vnorm) vnorm[i] = norm;
    }
}
