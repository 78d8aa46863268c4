/* conv1d.c - time-major 1-D convolution kernels over hafm_sgemm (see hafm/conv1d.h). */
#include "hafm/conv1d.h"
#include "hafm/linalg.h"
#include "vmath.h"

#include <math.h>
#include <string.h>
#include <omp.h>
#include <cblas.h>

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

/* ---- narrow layers: a direct kernel over overlapping windows --------------------------------
 * With time-major data and dilation 1, output row t of a convolution reads the contiguous window
 * inp[t*stride*Cin .. + K*Cin). BLAS cannot take such overlapping rows (lda < row length) and is
 * slow for few output channels anyway, so narrow layers use this kernel: 4 rows x 16 channels of
 * FMA accumulators, each output summed over the window in order (so a row's result does not
 * depend on its position in a block, as it does inside BLAS tiles). */

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HAVE_AVX2_FMA 1
#endif

/* Rows t0 .. t1-1 of window_gemm. */
static void window_rows(float *out, int64_t ldo, const float *A, int64_t lda, const float *Bt, const float *W,
                        const float *bias, int64_t t0, int64_t t1, int J, int N, int accumulate)
{
    int n0 = 0;
#ifdef HAVE_AVX2_FMA
    for (; n0 + 16 <= N; n0 += 16) {
        __m256 b0init = _mm256_setzero_ps(), b1init = _mm256_setzero_ps();
        if (bias && !accumulate) { b0init = _mm256_loadu_ps(bias + n0); b1init = _mm256_loadu_ps(bias + n0 + 8); }
        int64_t t = t0;
        for (; t + 4 <= t1; t += 4) {
            const float *a0 = A + t * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
            float *o = out + t * ldo + n0;
            __m256 c00, c01, c10, c11, c20, c21, c30, c31;
            if (accumulate) {
                c00 = _mm256_loadu_ps(o); c01 = _mm256_loadu_ps(o + 8);
                c10 = _mm256_loadu_ps(o + ldo); c11 = _mm256_loadu_ps(o + ldo + 8);
                c20 = _mm256_loadu_ps(o + 2 * ldo); c21 = _mm256_loadu_ps(o + 2 * ldo + 8);
                c30 = _mm256_loadu_ps(o + 3 * ldo); c31 = _mm256_loadu_ps(o + 3 * ldo + 8);
            } else {
                c00 = c10 = c20 = c30 = b0init;
                c01 = c11 = c21 = c31 = b1init;
            }
            const float *b = Bt + n0;
            for (int j = 0; j < J; j++, b += N) {
                __m256 w0 = _mm256_loadu_ps(b), w1 = _mm256_loadu_ps(b + 8);
                __m256 x = _mm256_broadcast_ss(a0 + j);
                c00 = _mm256_fmadd_ps(x, w0, c00); c01 = _mm256_fmadd_ps(x, w1, c01);
                x = _mm256_broadcast_ss(a1 + j);
                c10 = _mm256_fmadd_ps(x, w0, c10); c11 = _mm256_fmadd_ps(x, w1, c11);
                x = _mm256_broadcast_ss(a2 + j);
                c20 = _mm256_fmadd_ps(x, w0, c20); c21 = _mm256_fmadd_ps(x, w1, c21);
                x = _mm256_broadcast_ss(a3 + j);
                c30 = _mm256_fmadd_ps(x, w0, c30); c31 = _mm256_fmadd_ps(x, w1, c31);
            }
            _mm256_storeu_ps(o, c00); _mm256_storeu_ps(o + 8, c01);
            _mm256_storeu_ps(o + ldo, c10); _mm256_storeu_ps(o + ldo + 8, c11);
            _mm256_storeu_ps(o + 2 * ldo, c20); _mm256_storeu_ps(o + 2 * ldo + 8, c21);
            _mm256_storeu_ps(o + 3 * ldo, c30); _mm256_storeu_ps(o + 3 * ldo + 8, c31);
        }
        for (; t < t1; t++) {
            const float *a0 = A + t * lda;
            float *o = out + t * ldo + n0;
            __m256 c00 = accumulate ? _mm256_loadu_ps(o) : b0init, c01 = accumulate ? _mm256_loadu_ps(o + 8) : b1init;
            const float *b = Bt + n0;
            for (int j = 0; j < J; j++, b += N) {
                __m256 x = _mm256_broadcast_ss(a0 + j);
                c00 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b), c00);
                c01 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 8), c01);
            }
            _mm256_storeu_ps(o, c00); _mm256_storeu_ps(o + 8, c01);
        }
    }
    if (N - n0 < 8 && (J & 7) == 0) {
        /* a few output channels (the decoder's last layer): vector dot products of the window
         * with the weight rows W [N, J] */
        for (int n = n0; n < N; n++)
            for (int64_t t = t0; t < t1; t++) {
                const float *a = A + t * lda, *w = W + (size_t)n * J;
                __m256 acc = _mm256_setzero_ps();
                for (int j = 0; j < J; j += 8)
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(w + j), acc);
                __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
                s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
                s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
                float init = accumulate ? out[t * ldo + n] : bias ? bias[n] : 0.0f;
                out[t * ldo + n] = init + _mm_cvtss_f32(s4);
            }
        return;
    }
#endif
    /* remaining channels: the same per-output order, one fused multiply-add per step */
    for (int n = n0; n < N; n++)
        for (int64_t t = t0; t < t1; t++) {
            const float *a = A + t * lda;
            float acc = accumulate ? out[t * ldo + n] : bias ? bias[n] : 0.0f;
            for (int j = 0; j < J; j++) acc = fmaf(a[j], Bt[(size_t)j * N + n], acc);
            out[t * ldo + n] = acc;
        }
}

/* out[t, 0:N] (+)= sum_j A[t*lda + j] * Bt[j, 0:N], t < M, j < J; Bt [J, N] (W [N, J] is the same
 * weight untransposed); out row stride ldo. accumulate 0: out starts from bias (or 0). Rows are
 * split among the OpenMP threads only while BLAS runs single-threaded (hafm_blas_single_begin):
 * beside a pool of spinning BLAS workers a second pool made two threads slower than one. */
static void window_gemm(float *out, int64_t ldo, const float *A, int64_t lda, const float *Bt, const float *W,
                        const float *bias, int64_t M, int J, int N, int accumulate)
{
    int threads = omp_in_parallel() || openblas_get_num_threads() > 1 ? 1 : omp_get_max_threads();
    if (threads <= 1 || M * J * N < (1 << 16)) {
        window_rows(out, ldo, A, lda, Bt, W, bias, 0, M, J, N, accumulate);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t r0 = M * t / nt & ~(int64_t)3, r1 = t == nt - 1 ? M : M * (t + 1) / nt & ~(int64_t)3;
        window_rows(out, ldo, A, lda, Bt, W, bias, r0, r1, J, N, accumulate);
    }
}

/* Which layers take the window kernel: few output channels (BLAS does poorly there), and a
 * window small enough for the weights to stay in the L1 cache. */
static int use_window(int Cin, int Cout, int K, int dilation)
{
    return dilation == 1 && Cout <= 32 && (int64_t)K * Cin * Cout <= 8192;
}

/* Per-tap GEMMs on narrow inputs have a tiny inner dimension; gathering the taps into one row
 * (im2col) gives one GEMM with K*Cin inner dimension instead. */
static int use_im2col(int Cin, int K, int stride, int dilation)
{
    if (K == 1) return 0;
    if (dilation > 1) return 1;
    return (int64_t)stride * Cin < 64;
}

size_t conv1d_scratch_floats(int64_t Lp, int Cin, int Cout, int K, int stride, int dilation)
{
    if (use_window(Cin, Cout, K, dilation)) return (size_t)K * Cin * Cout;
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
    if (use_window(Cin, Cout, K, dilation)) {
        int J = K * Cin;
        for (int j = 0; j < J; j++)
            for (int o = 0; o < Cout; o++) scratch[(size_t)j * Cout + o] = weight[(size_t)o * J + j];
        window_gemm(out, Cout, inp, (int64_t)stride * Cin, scratch, weight, bias, Lout, J, Cout, 0);
        return;
    }
    float beta = 0.0f;
    if (bias) { fill_bias(out, bias, Lout, Cout); beta = 1.0f; }
    if (use_im2col(Cin, K, stride, dilation)) {
        int64_t row = (int64_t)K * Cin;
#pragma omp parallel for schedule(static) if (Lout * row > (1 << 16) && !omp_in_parallel())
        for (int64_t t = 0; t < Lout; t++)
            for (int k = 0; k < K; k++)
                memcpy(scratch + t * row + (int64_t)k * Cin, inp + (t * stride + (int64_t)k * dilation) * Cin,
                       (size_t)Cin * sizeof(float));
        hafm_sgemm_omp(0, 1, (int)Lout, Cout, (int)row, 1.0f, scratch, (int)row, weight, (int)row, beta, out, Cout);
        return;
    }
    if (dilation == 1) {
        /* Taps m*s .. m*s+s-1 of every output row t are the contiguous input row t+m of the
         * [Lp/s, s*Cin] view, so each block of `stride` taps is one GEMM on a strided view. */
        for (int m = 0; m * stride < K; m++) {
            int bl = K - m * stride < stride ? K - m * stride : stride;
            hafm_sgemm_omp(0, 1, (int)Lout, Cout, bl * Cin, 1.0f, inp + (int64_t)m * stride * Cin, stride * Cin,
                           weight + (int64_t)m * stride * Cin, K * Cin, beta, out, Cout);
            beta = 1.0f;
        }
        return;
    }
    for (int k = 0; k < K; k++) {   /* only reached for stride * Cin >= 64 without im2col */
        hafm_sgemm_omp(0, 1, (int)Lout, Cout, Cin, 1.0f, inp + (int64_t)k * dilation * Cin, stride * Cin,
                       weight + (int64_t)k * Cin, K * Cin, beta, out, Cout);
        beta = 1.0f;
    }
}

void conv1d_accumulate_1x1(float *out, const float *inp, const float *weight, float *scratch, int64_t L,
                           int Cin, int Cout)
{
    if (use_window(Cin, Cout, 1, 1)) {
        for (int j = 0; j < Cin; j++)
            for (int o = 0; o < Cout; o++) scratch[(size_t)j * Cout + o] = weight[(size_t)o * Cin + j];
        window_gemm(out, Cout, inp, Cin, scratch, weight, NULL, L, Cin, Cout, 1);
        return;
    }
    hafm_sgemm_omp(0, 1, (int)L, Cout, Cin, 1.0f, inp, Cin, weight, Cin, 1.0f, out, Cout);
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
        hafm_sgemm_omp(0, 0, (int)(T - j0), bl * Cout, Cin, 1.0f, inp + (hist + j0 - m) * Cin, Cin,
                       weight + (int64_t)m * stride * Cout, K * Cout, 1.0f, out + j0 * ldc, (int)ldc);
    }
}

static void elu_range(float *out, const float *inp, size_t n)
{
    size_t i = 0;
#ifdef HAFM_HAVE_EXP8
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    size_t n8 = n & ~(size_t)7;
    for (size_t k = 0; k < n8; k += 8) {
        __m256 x = _mm256_loadu_ps(inp + k);
        __m256 e = _mm256_sub_ps(hafm_exp8(_mm256_min_ps(x, zero)), one);
        _mm256_storeu_ps(out + k, _mm256_blendv_ps(e, x, _mm256_cmp_ps(x, zero, _CMP_GT_OQ)));
    }
    i = n8;
#endif
    for (; i < n; i++) {
        float x = inp[i];
        out[i] = x > 0.0f ? x : hafm_expm1f_neg(x);
    }
}

void elu_forward(float *out, const float *inp, size_t n)
{
    int threads = omp_in_parallel() || openblas_get_num_threads() > 1 ? 1 : omp_get_max_threads();
    if (threads <= 1 || n < (1 << 15)) {
        elu_range(out, inp, n);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        size_t a = n * t / nt & ~(size_t)7, b = t == nt - 1 ? n : n * (t + 1) / nt & ~(size_t)7;
        elu_range(out + a, inp + a, b - a);
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
