/* transformer_kernels.c - the stage Transformer's kernels, each forward beside its backward
 * (llm.c style: outputs first, sizes last, shapes in comments).
 *
 * Reductions over rows (weight gradients) are parallelised over the reduced tensor's elements,
 * never with atomics or thread-order-dependent merges, so a training run is bit-reproducible for a
 * given thread count (hafm-train's resume relies on it). */
#include "hafm/transformer.h"
#include "hafm/linalg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HAVE_AVX2_FMA 1
#endif

/* dst[c] += sum over rows n (in order) of src[n * ld + c] * (scale ? scale[n] : 1) * (mul ? mul[n * ld_mul + c] : 1).
 * Threads own column ranges and walk the rows contiguously: weight-gradient reductions read
 * their [N, C] inputs once, in memory order, and each column's sum keeps the row order. */
void hafm_colsum_add(float *dst, const float *src, int ld, const float *mul, int ld_mul, const float *scale, int N, int C)
{
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int c0 = (int)((int64_t)C * t / nt), c1 = (int)((int64_t)C * (t + 1) / nt), w = c1 - c0;
        if (w > 0) {
            float *acc = calloc((size_t)w, sizeof(float));
            if (!acc) hafm_die("out of memory");
            for (int n = 0; n < N; n++) {
                const float *row = src + (size_t)n * ld + c0;
                if (mul) {
                    const float *mrow = mul + (size_t)n * ld_mul + c0;
                    float sc = scale ? scale[n] : 1.0f;
                    for (int c = 0; c < w; c++) acc[c] += row[c] * mrow[c] * sc;
                } else {
                    for (int c = 0; c < w; c++) acc[c] += row[c];
                }
            }
            for (int c = 0; c < w; c++) dst[c0 + c] += acc[c];
            free(acc);
        }
    }
}

/* ---- RMSNorm ---------------------------------------------------------------------------------- */
void hafm_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps)
{   /* out, inp [N,C]; rstd [N] (may be NULL) */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float ss = 0.0f;
        for (int i = 0; i < C; i++) ss += x[i] * x[i];
        float r = 1.0f / sqrtf(ss / C + eps);
        for (int i = 0; i < C; i++) y[i] = x[i] * r * weight[i];
        if (rstd) rstd[n] = r;
    }
}

void hafm_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, const float *rstd, int N, int C)
{   /* dinp [N,C] +=, dweight [C] += */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float r = rstd[n], dot = 0.0f;
        for (int i = 0; i < C; i++) dot += dy[i] * weight[i] * x[i];
        float k = dot * r * r * r / C;
        for (int i = 0; i < C; i++) dx[i] += dy[i] * weight[i] * r - x[i] * k;
    }
    hafm_colsum_add(dweight, dout, C, inp, C, rstd, N, C);
}

/* ---- QK-norm: RMSNorm over each head's hd elements, one scale [hd] shared by the heads ------- */
void hafm_qknorm_forward(float *out, float *rstd, const float *inp, int ld_in, const float *weight,
                         int N, int d, int H, float eps)
{   /* inp rows of stride ld_in, out [N,d], rstd [N,H] (may be NULL) */
    int hd = d / H;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            const float *x = inp + (size_t)n * ld_in + h * hd;
            float *y = out + (size_t)n * d + h * hd;
            float ss = 0.0f;
            for (int i = 0; i < hd; i++) ss += x[i] * x[i];
            float r = 1.0f / sqrtf(ss / hd + eps);
            for (int i = 0; i < hd; i++) y[i] = x[i] * r * weight[i];
            if (rstd) rstd[(size_t)n * H + h] = r;
        }
}

void hafm_qknorm_backward(float *dinp, int ld_in, float *dweight, const float *dout, const float *inp,
                          const float *weight, const float *rstd, int N, int d, int H)
{   /* dinp rows of stride ld_in (overwritten), dweight [hd] += */
    int hd = d / H;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            const float *x = inp + (size_t)n * ld_in + h * hd, *dy = dout + (size_t)n * d + h * hd;
            float *dx = dinp + (size_t)n * ld_in + h * hd;
            float r = rstd[(size_t)n * H + h], dot = 0.0f;
            for (int i = 0; i < hd; i++) dot += dy[i] * weight[i] * x[i];
            float k = dot * r * r * r / hd;
            for (int i = 0; i < hd; i++) dx[i] = dy[i] * weight[i] * r - x[i] * k;
        }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < hd; i++) {
        float acc = 0.0f;
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++)
                acc += dout[(size_t)n * d + h * hd + i] * inp[(size_t)n * ld_in + h * hd + i] * rstd[(size_t)n * H + h];
        dweight[i] += acc;
    }
}

/* ---- GEGLU: out = gelu(a) * b, a and b the two halves of each input row ----------------------- */
static inline float gelu(float x) { return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2)); }
static inline float gelu_grad(float x)
{
    return 0.5f * (1.0f + erff(x * (float)M_SQRT1_2)) + x * expf(-0.5f * x * x) * 0.3989422804014327f;
}

void hafm_geglu_forward(float *out, const float *inp, int N, int F)
{   /* inp [N,2F], out [N,F] */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *a = inp + (size_t)n * 2 * F, *b = a + F;
        float *y = out + (size_t)n * F;
        for (int i = 0; i < F; i++) y[i] = gelu(a[i]) * b[i];
    }
}

void hafm_geglu_forward_part(float *out, const float *inp, int N, int F, int part, int parts)
{   /* inp [N,2F], out [N,F]: units [part F / parts, (part + 1) F / parts) of every row */
    int i0 = (int)((int64_t)F * part / parts), i1 = (int)((int64_t)F * (part + 1) / parts);
    for (int n = 0; n < N; n++) {
        const float *a = inp + (size_t)n * 2 * F, *b = a + F;
        float *y = out + (size_t)n * F;
        for (int i = i0; i < i1; i++) y[i] = gelu(a[i]) * b[i];
    }
}

void hafm_geglu_backward(float *dinp, const float *dout, const float *inp, int N, int F)
{   /* dinp [N,2F] overwritten */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *a = inp + (size_t)n * 2 * F, *b = a + F, *dy = dout + (size_t)n * F;
        float *da = dinp + (size_t)n * 2 * F, *db = da + F;
        for (int i = 0; i < F; i++) {
            da[i] = dy[i] * b[i] * gelu_grad(a[i]);
            db[i] = dy[i] * gelu(a[i]);
        }
    }
}

/* ---- linear layers ------------------------------------------------------------------------------ */
void hafm_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int IN, int OUT)
{   /* out [N,OUT] = inp [N,IN] weight[OUT,IN]^T + bias[OUT] */
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OUT, bias, (size_t)OUT * sizeof *out);
    }
    hafm_sgemm_omp(0, 1, N, OUT, IN, 1.0f, inp, IN, weight, IN, bias ? 1.0f : 0.0f, out, OUT);
}

void hafm_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, int N, int IN, int OUT)
{   /* dinp [N,IN] overwritten (if not NULL), dweight [OUT,IN] +=, dbias [OUT] += */
    if (dinp) hafm_sgemm_omp(0, 0, N, IN, OUT, 1.0f, dout, OUT, weight, IN, 0.0f, dinp, IN);
    hafm_sgemm_omp(1, 0, OUT, IN, N, 1.0f, dout, OUT, inp, IN, 1.0f, dweight, IN);
    if (dbias) hafm_colsum_add(dbias, dout, OUT, NULL, 0, NULL, N, OUT);
}

/* Decode-time products: a handful of rows against a large weight, which is memory bound, so each
 * weight row is read once for all M inputs and the rows are split among threads. */
static inline float bf16f(uint16_t h)
{
    union { uint32_t u; float f; } v = { .u = (uint32_t)h << 16 };
    return v.f;
}

typedef uint32_t u32_unaligned __attribute__((aligned(1), may_alias));

static inline float u32f(uint32_t u)
{
    union { uint32_t u; float f; } v = { .u = u };
    return v.f;
}

/* Rows [o0, o1) of out [M,OUT] = inp [M,IN] weight[OUT,IN]^T + bias, bf16 weights. */
static void gemv_bf16_rows(float *out, const float *inp, const uint16_t *weight, const float *bias, int M, int IN,
                           int OUT, int o0, int o1)
{
    if (o0 >= o1) return;
    if (M == 2) {
        /* Two bf16 weights per 32-bit load: the even one is (u << 16), the odd one (u & 0xffff0000),
         * each a float; the inputs are split into even and odd halves once to match. */
        int H2 = IN / 2;
        float *xs = hafm_aligned_alloc((size_t)4 * (H2 + 1) * sizeof(float));
        float *xe0 = xs, *xo0 = xs + (H2 + 1), *xe1 = xs + 2 * (H2 + 1), *xo1 = xs + 3 * (H2 + 1);
        for (int k = 0; k < H2; k++) {
            xe0[k] = inp[2 * k];
            xo0[k] = inp[2 * k + 1];
            xe1[k] = inp[IN + 2 * k];
            xo1[k] = inp[IN + 2 * k + 1];
        }
        for (int o = o0; o < o1; o++) {
            const uint16_t *w = weight + (size_t)o * IN;
            const u32_unaligned *wp = (const u32_unaligned *)w;
            float a0 = 0.0f, a1 = 0.0f;
#pragma omp simd reduction(+:a0, a1)
            for (int k = 0; k < H2; k++) {
                uint32_t u = wp[k];
                float lo = u32f(u << 16), hi = u32f(u & 0xffff0000u);
                a0 += lo * xe0[k] + hi * xo0[k];
                a1 += lo * xe1[k] + hi * xo1[k];
            }
            if (IN & 1) {
                float wl = bf16f(w[IN - 1]);
                a0 += wl * inp[IN - 1];
                a1 += wl * inp[2 * IN - 1];
            }
            float b = bias ? bias[o] : 0.0f;
            out[o] = a0 + b;
            out[OUT + o] = a1 + b;
        }
        free(xs);
        return;
    }
    for (int o = o0; o < o1; o++) {
        const uint16_t *w = weight + (size_t)o * IN;
        for (int m = 0; m < M; m++) {
            const float *x = inp + (size_t)m * IN;
            float a = 0.0f;
#pragma omp simd reduction(+:a)
            for (int i = 0; i < IN; i++) a += bf16f(w[i]) * x[i];
            out[(size_t)m * OUT + o] = a + (bias ? bias[o] : 0.0f);
        }
    }
}

static void gemv_f32_rows(float *out, const float *inp, const float *weight, const float *bias, int M, int IN,
                          int OUT, int o0, int o1)
{
    if (M == 2) {
        const float *x0 = inp, *x1 = inp + IN;
        for (int o = o0; o < o1; o++) {
            const float *w = weight + (size_t)o * IN;
            float a0 = 0.0f, a1 = 0.0f;
#pragma omp simd reduction(+:a0, a1)
            for (int i = 0; i < IN; i++) {
                a0 += w[i] * x0[i];
                a1 += w[i] * x1[i];
            }
            float b = bias ? bias[o] : 0.0f;
            out[o] = a0 + b;
            out[OUT + o] = a1 + b;
        }
        return;
    }
    for (int o = o0; o < o1; o++) {
        const float *w = weight + (size_t)o * IN;
        for (int m = 0; m < M; m++) {
            const float *x = inp + (size_t)m * IN;
            float a = 0.0f;
#pragma omp simd reduction(+:a)
            for (int i = 0; i < IN; i++) a += w[i] * x[i];
            out[(size_t)m * OUT + o] = a + (bias ? bias[o] : 0.0f);
        }
    }
}

/* Part `part` of `parts` of n items, in blocks of 8 so threads do not share cache lines of out. */
static void split_range(int *i0, int *i1, int n, int part, int parts)
{
    int blocks = (n + 7) / 8;
    int b0 = (int)((int64_t)blocks * part / parts), b1 = (int)((int64_t)blocks * (part + 1) / parts);
    *i0 = b0 * 8 < n ? b0 * 8 : n;
    *i1 = b1 * 8 < n ? b1 * 8 : n;
}

void hafm_gemv_bf16_part(float *out, const float *inp, const uint16_t *weight, const float *bias, int M, int IN,
                         int OUT, int part, int parts)
{
    int o0, o1;
    split_range(&o0, &o1, OUT, part, parts);
    gemv_bf16_rows(out, inp, weight, bias, M, IN, OUT, o0, o1);
}

void hafm_gemv_f32_part(float *out, const float *inp, const float *weight, const float *bias, int M, int IN,
                        int OUT, int part, int parts)
{
    int o0, o1;
    split_range(&o0, &o1, OUT, part, parts);
    gemv_f32_rows(out, inp, weight, bias, M, IN, OUT, o0, o1);
}

void hafm_gemv_bf16(float *out, const float *inp, const uint16_t *weight, const float *bias, int M, int IN, int OUT)
{   /* out [M,OUT] = inp [M,IN] weight[OUT,IN]^T + bias */
#pragma omp parallel
    hafm_gemv_bf16_part(out, inp, weight, bias, M, IN, OUT, omp_get_thread_num(), omp_get_num_threads());
}

void hafm_gemv_f32(float *out, const float *inp, const float *weight, const float *bias, int M, int IN, int OUT)
{
#pragma omp parallel
    hafm_gemv_f32_part(out, inp, weight, bias, M, IN, OUT, omp_get_thread_num(), omp_get_num_threads());
}

/* ---- attention ------------------------------------------------------------------------------------ */
int hafm_rel_bucket(int n, int buckets, int max_distance)
{
    /* T5's causal bucketing, in float32 like the PyTorch reference so both agree at every n. */
    int exact = buckets / 2;
    if (n < exact) return n;
    float v = logf((float)n / (float)exact) / (float)log((double)max_distance / exact) * (float)(buckets - exact);
    int b = exact + (int)v;
    return b < buckets - 1 ? b : buckets - 1;
}

/* Rows at or above this many queries go through sgemm; single decode steps use direct loops. */
#define ATT_GEMM_MIN_T 8
/* Query rows per block of the sgemm path. */
#define ATT_BLOCK 64

#ifdef HAVE_AVX2_FMA
/* 8 bf16 -> 8 floats */
static inline __m256 bf16x8(const uint16_t *p)
{
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* exp(x) for x <= 0 (softmax after the maximum is subtracted), eight at a time: Cephes' expf
 * (range reduction by ln 2 in two parts, degree-5 polynomial), within 2 ulp of expf; below
 * -87.3 it gives 0. At a 4500-token context the scalar expf was a sixth of a decode step. */
static inline __m256 exp_nonpos8(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* s[j] = exp(s[j] - mx) for j < n; returns their sum */
static float exp_shift_sum(float *s, int n, float mx)
{
    __m256 m = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp_nonpos8(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
        _mm256_storeu_ps(s + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float lanes[8], sum = 0.0f;
    _mm256_storeu_ps(lanes, acc);
    for (int i = 0; i < 8; i++) sum += lanes[i];
    for (; j < n; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    return sum;
}

/* One 8-float slice of a key or value row: bf16 rows of hd (head-major cache) or fp32 rows
 * with a stride (the fp32 cache, [pos, d] with the head's hd columns). */
static inline __m256 kv8(const uint16_t *hrow, const float *frow, int i)
{
    return hrow ? bf16x8(hrow + i) : _mm256_loadu_ps(frow + i);
}

/* The kernels below take nv = hd / 8 as a constant at each call (always inlined): 4 for the
 * shipped models' heads of 32, 8 for the paper's 64, every loop over nv unrolled and in registers. */
#define HD_INLINE static inline __attribute__((always_inline))

/* s[j] = scale * q . k_j + bias(j) for j <= pi, keys rows of 8 nv, bf16 (kb, contiguous) or fp32
 * (kf, rows ld apart): eight keys at a time, their eight dot products reduced together. Returns
 * the maximum. */
HD_INLINE float scores_hd(const int nv, float *s, const float *q, const uint16_t *kb, const float *kf, int64_t ld,
                          int pi, float scale, const float *rel_bias, const int *buckets, int H, int h)
{
    const int hd = 8 * nv;
    __m256 qv[8];
    for (int c = 0; c < nv; c++) qv[c] = _mm256_loadu_ps(q + 8 * c);
    float mx = -INFINITY;
    __m256 vmx = _mm256_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 8 <= pi + 1; j += 8) {
        __m256 acc[8];
        for (int r = 0; r < 8; r++) {
            const uint16_t *kh = kb ? kb + (size_t)(j + r) * hd : NULL;
            const float *kj = kb ? NULL : kf + (size_t)(j + r) * ld;
            __m256 a = _mm256_mul_ps(qv[0], kv8(kh, kj, 0));
            for (int c = 1; c < nv; c++) a = _mm256_fmadd_ps(qv[c], kv8(kh, kj, 8 * c), a);
            acc[r] = a;
        }
        /* transpose-and-add: lane r of the result is the sum of acc[r] */
        __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
        __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
        __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
        __m256 lo = _mm256_permute2f128_ps(u0, u1, 0x20), hi = _mm256_permute2f128_ps(u0, u1, 0x31);
        __m256 dots = _mm256_mul_ps(_mm256_add_ps(lo, hi), _mm256_set1_ps(scale));
        if (buckets[pi - j] == buckets[pi - j - 7]) {
            /* buckets grow with distance, so the eight keys share one: at long contexts nearly
             * every block is past the last bucket's distance */
            dots = _mm256_add_ps(dots, _mm256_set1_ps(rel_bias[buckets[pi - j] * H + h]));
            _mm256_storeu_ps(s + j, dots);
            vmx = _mm256_max_ps(vmx, dots);
        } else {
            _mm256_storeu_ps(s + j, dots);
            for (int r = 0; r < 8; r++) {
                s[j + r] += rel_bias[buckets[pi - j - r] * H + h];
                if (s[j + r] > mx) mx = s[j + r];
            }
        }
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, vmx);
    for (int r = 0; r < 8; r++) mx = lanes[r] > mx ? lanes[r] : mx;
    for (; j <= pi; j++) {
        float a = 0.0f;
        if (kb) {
            const uint16_t *kj = kb + (size_t)j * hd;
            for (int i = 0; i < hd; i++) a += q[i] * bf16f(kj[i]);
        } else {
            const float *kj = kf + (size_t)j * ld;
            for (int i = 0; i < hd; i++) a += q[i] * kj[i];
        }
        s[j] = a * scale + rel_bias[buckets[pi - j] * H + h];
        if (s[j] > mx) mx = s[j];
    }
    return mx;
}

/* o[8 nv] = scale * sum_j p[j] * v_j, values bf16 rows of 8 nv (vb) or fp32 rows ld apart (vf),
 * the output in registers throughout (the softmax's normalisation is the scale: one pass less) */
HD_INLINE void weighted_values_hd(const int nv, float *o, const float *p, const uint16_t *vb, const float *vf,
                                  int64_t ld, int n, float scale)
{
    const int hd = 8 * nv;
    __m256 ov[8];
    for (int c = 0; c < nv; c++) ov[c] = _mm256_setzero_ps();
    for (int j = 0; j < n; j++) {
        const uint16_t *vh = vb ? vb + (size_t)j * hd : NULL;
        const float *vj = vb ? NULL : vf + (size_t)j * ld;
        __m256 w = _mm256_set1_ps(p[j]);
        for (int c = 0; c < nv; c++) ov[c] = _mm256_fmadd_ps(w, kv8(vh, vj, 8 * c), ov[c]);
    }
    __m256 k = _mm256_set1_ps(scale);
    for (int c = 0; c < nv; c++) _mm256_storeu_ps(o + 8 * c, _mm256_mul_ps(k, ov[c]));
}

/* One (batch, head, query) row of decode attention with the kernels above. */
HD_INLINE void attend_row_hd(const int nv, float *o, float *lse_out, float *s, const float *qi, const uint16_t *kb,
                             const float *kf, int64_t ld_k, const uint16_t *vb, const float *vf, int64_t ld_v, int pi,
                             float scale, const float *rel_bias, const int *buckets, int H, int h)
{
    float mx = scores_hd(nv, s, qi, kb, kf, ld_k, pi, scale, rel_bias, buckets, H, h);
    float sum = exp_shift_sum(s, pi + 1, mx);
    weighted_values_hd(nv, o, s, vb, vf, ld_v, pi + 1, 1.0f / sum);
    if (lse_out) *lse_out = mx + logf(sum);
}
#endif

/* The direct path for a few query rows: part `part` of `parts` of the (b, h, t) rows. Keys and
 * values either fp32 (k, v with row strides ld_k, ld_v and batch strides) or bf16 head-major
 * (kh, vh [B, H, max_len, hd]). */
void hafm_attention_decode_part(float *out, float *lse, const float *q, const float *k, const float *v,
                                const uint16_t *kh, const uint16_t *vh, int max_len, int ld_k, int ld_v,
                                int64_t k_bstride, int64_t v_bstride, const float *rel_bias, const int *buckets,
                                int B, int T, int pos0, int d, int H, int part, int parts)
{
    int hd = d / H, Lk = pos0 + T, rows = B * H * T;
    int r0 = (int)((int64_t)rows * part / parts), r1 = (int)((int64_t)rows * (part + 1) / parts);
    if (r0 >= r1) return;
    float scale = 1.0f / sqrtf((float)hd);
    float *s = hafm_aligned_alloc((size_t)Lk * sizeof(float));
    for (int r = r0; r < r1; r++) {
        int b = r / (H * T), h = r / T % H, t = r % T;
        const float *qi = q + ((size_t)b * T + t) * d + h * hd;
        int pi = pos0 + t;
        float mx = -INFINITY;
        float *restrict o = out + ((size_t)b * T + t) * d + h * hd;
#ifdef HAVE_AVX2_FMA
        if (hd == 64 || hd == 32) {   /* the paper's d 512 / 8 heads; the shipped models' 128 / 4 */
            const uint16_t *kb = kh ? kh + ((size_t)b * H + h) * max_len * hd : NULL;
            const uint16_t *vb = vh ? vh + ((size_t)b * H + h) * max_len * hd : NULL;
            const float *kf = kh ? NULL : k + b * k_bstride + h * hd, *vf = vh ? NULL : v + b * v_bstride + h * hd;
            float *lr = lse ? lse + ((size_t)b * H + h) * T + t : NULL;
            if (hd == 64)
                attend_row_hd(8, o, lr, s, qi, kb, kf, ld_k, vb, vf, ld_v, pi, scale, rel_bias, buckets, H, h);
            else
                attend_row_hd(4, o, lr, s, qi, kb, kf, ld_k, vb, vf, ld_v, pi, scale, rel_bias, buckets, H, h);
            continue;
        }
#endif
        if (kh) {
            const uint16_t *kb = kh + ((size_t)b * H + h) * max_len * hd;
            for (int j = 0; j <= pi; j++) {
                const uint16_t *kj = kb + (size_t)j * hd;
                float a = 0.0f;
#pragma omp simd reduction(+:a)
                for (int i = 0; i < hd; i++) a += qi[i] * bf16f(kj[i]);
                s[j] = a * scale + rel_bias[buckets[pi - j] * H + h];
                if (s[j] > mx) mx = s[j];
            }
        } else {
            const float *kb = k + b * k_bstride + h * hd;
            for (int j = 0; j <= pi; j++) {
                const float *kj = kb + (size_t)j * ld_k;
                float a = 0.0f;
#pragma omp simd reduction(+:a)
                for (int i = 0; i < hd; i++) a += qi[i] * kj[i];
                s[j] = a * scale + rel_bias[buckets[pi - j] * H + h];
                if (s[j] > mx) mx = s[j];
            }
        }
        float sum = 0.0f;
        for (int j = 0; j <= pi; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
        float inv = 1.0f / sum;
        for (int i = 0; i < hd; i++) o[i] = 0.0f;
        if (kh) {
            const uint16_t *vb = vh + ((size_t)b * H + h) * max_len * hd;
            for (int j = 0; j <= pi; j++) {
                const uint16_t *restrict vj = vb + (size_t)j * hd;
                float p = s[j] * inv;
#pragma omp simd
                for (int i = 0; i < hd; i++) o[i] += p * bf16f(vj[i]);
            }
        } else {
            const float *vb = v + b * v_bstride + h * hd;
            for (int j = 0; j <= pi; j++) {
                const float *vj = vb + (size_t)j * ld_v;
                float p = s[j] * inv;
                for (int i = 0; i < hd; i++) o[i] += p * vj[i];
            }
        }
        if (lse) lse[((size_t)b * H + h) * T + t] = mx + logf(sum);
    }
    free(s);
}

void hafm_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                            int ld_k, int ld_v, int64_t k_bstride, int64_t v_bstride,
                            const float *rel_bias, const int *buckets, int B, int T, int pos0, int d, int H)
{
    int hd = d / H, Lk = pos0 + T;
    float scale = 1.0f / sqrtf((float)hd);
    if (T < ATT_GEMM_MIN_T) {
#pragma omp parallel
        hafm_attention_decode_part(out, lse, q, k, v, NULL, NULL, 0, ld_k, ld_v, k_bstride, v_bstride, rel_bias,
                                   buckets, B, T, pos0, d, H, omp_get_thread_num(), omp_get_num_threads());
        return;
    }
    /* Query rows in blocks, each against only the keys it can see: causal attention costs about
     * half of the full square. Heads in parallel, each thread with its own scores block and
     * single-threaded products (the transformer's passes run BLAS on one thread). */
    int nthr = omp_get_max_threads();
    float *S_all = hafm_aligned_alloc((size_t)nthr * ATT_BLOCK * Lk * sizeof(float));
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            float *S = S_all + (size_t)omp_get_thread_num() * ATT_BLOCK * Lk;
            for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
                int M = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK, N = pos0 + t0 + M;
                const float *qb = q + ((size_t)b * T + t0) * d + h * hd;
                const float *kb = k + b * k_bstride + h * hd, *vb = v + b * v_bstride + h * hd;
                hafm_sgemm(0, 1, M, N, hd, scale, qb, d, kb, ld_k, 0.0f, S, N);
                for (int t = 0; t < M; t++) {
                    float *s = S + (size_t)t * N;
                    int pi = pos0 + t0 + t;
                    float mx = -INFINITY;
                    for (int j = 0; j <= pi; j++) {
                        s[j] += rel_bias[buckets[pi - j] * H + h];
                        if (s[j] > mx) mx = s[j];
                    }
                    float sum = 0.0f;
                    for (int j = 0; j <= pi; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
                    float inv = 1.0f / sum;
                    for (int j = 0; j <= pi; j++) s[j] *= inv;
                    for (int j = pi + 1; j < N; j++) s[j] = 0.0f;
                    if (lse) lse[((size_t)b * H + h) * T + t0 + t] = mx + logf(sum);
                }
                hafm_sgemm(0, 0, M, hd, N, 1.0f, S, N, vb, ld_v, 0.0f, out + ((size_t)b * T + t0) * d + h * hd, d);
            }
        }
    free(S_all);
}

void hafm_attention_forward_bf16kv(float *out, const float *q, const uint16_t *k, const uint16_t *v, int max_len,
                                   const float *rel_bias, const int *buckets, int B, int T, int pos0, int d, int H)
{   /* k, v [B, H, max_len, hd]: each head's keys contiguous, so a decode step streams them. (Keys
     * transposed per head, scores vectorised over the keys, measured slower: 27 against 41
     * tokens per CPU-second for stage 3 at a 3001-token context.) */
    int hd = d / H, Lk = pos0 + T;
    if (T >= ATT_GEMM_MIN_T) {
        /* prefill chunks: widen the visible keys and values once, then the sgemm path */
        float *kf = hafm_aligned_alloc((size_t)B * Lk * d * sizeof(float));
        float *vf = hafm_aligned_alloc((size_t)B * Lk * d * sizeof(float));
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int r = 0; r < Lk; r++) {
                    size_t src = (((size_t)b * H + h) * max_len + r) * hd, dst = ((size_t)b * Lk + r) * d + h * hd;
                    for (int i = 0; i < hd; i++) {
                        kf[dst + i] = bf16f(k[src + i]);
                        vf[dst + i] = bf16f(v[src + i]);
                    }
                }
        hafm_attention_forward(out, NULL, q, kf, vf, d, d, (int64_t)Lk * d, (int64_t)Lk * d, rel_bias, buckets, B, T, pos0, d, H);
        free(kf);
        free(vf);
        return;
    }
#pragma omp parallel
    hafm_attention_decode_part(out, NULL, q, NULL, NULL, k, v, max_len, 0, 0, 0, 0, rel_bias, buckets, B, T, pos0, d,
                               H, omp_get_thread_num(), omp_get_num_threads());
}

void hafm_attention_backward(float *dq, float *dk, float *dv, float *drel_bias, const float *dout,
                             const float *out, const float *lse, const float *q, const float *k,
                             const float *v, int ld_k, int ld_v, const float *rel_bias,
                             const int *buckets, int B, int T, int d, int H)
{
    int hd = d / H, nb = 0;
    float scale = 1.0f / sqrtf((float)hd);
    for (int n = 0; n < T; n++)
        if (buckets[n] + 1 > nb) nb = buckets[n] + 1;
    /* Heads in parallel (each (b, h) writes its own columns of dq, dk, dv), each thread with its
     * own blocks; the relative-bias gradients of each (b, h) are summed in row order and added
     * in (b, h) order, so the result does not depend on the thread count. */
    int nthr = omp_get_max_threads();
    float *P_all = hafm_aligned_alloc((size_t)nthr * 2 * ATT_BLOCK * T * sizeof(float));
    float *part = hafm_xcalloc((size_t)B * H * nb, sizeof(float));
    memset(dk, 0, (size_t)B * T * d * sizeof(float));
    memset(dv, 0, (size_t)B * T * d * sizeof(float));
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            float *P = P_all + (size_t)omp_get_thread_num() * 2 * ATT_BLOCK * T, *dS = P + (size_t)ATT_BLOCK * T;
            float *acc = part + ((size_t)b * H + h) * nb;
            const float *kb = k + (size_t)b * T * ld_k + h * hd, *vb = v + (size_t)b * T * ld_v + h * hd;
            const float *lb = lse + ((size_t)b * H + h) * T;
            float *dkb = dk + (size_t)b * T * d + h * hd, *dvb = dv + (size_t)b * T * d + h * hd;
            for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
                int M = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK, N = t0 + M;
                const float *qb = q + ((size_t)b * T + t0) * d + h * hd;
                const float *dob = dout + ((size_t)b * T + t0) * d + h * hd, *ob = out + ((size_t)b * T + t0) * d + h * hd;
                /* The probabilities are recomputed from the saved log-sum-exp rather than stored:
                 * [T,T] per head and layer would not fit for 10 s windows of stage 3. */
                hafm_sgemm(0, 1, M, N, hd, scale, qb, d, kb, ld_k, 0.0f, P, N);
                hafm_sgemm(0, 1, M, N, hd, 1.0f, dob, d, vb, ld_v, 0.0f, dS, N);
                for (int t = 0; t < M; t++) {
                    int pi = t0 + t;
                    float Dt = 0.0f;
                    for (int i = 0; i < hd; i++) Dt += dob[(size_t)t * d + i] * ob[(size_t)t * d + i];
                    float *p = P + (size_t)t * N, *ds = dS + (size_t)t * N;
                    for (int j = 0; j <= pi; j++) {
                        p[j] = expf(p[j] + rel_bias[buckets[pi - j] * H + h] - lb[pi]);
                        ds[j] = p[j] * (ds[j] - Dt);
                        acc[buckets[pi - j]] += ds[j];
                    }
                    for (int j = pi + 1; j < N; j++) p[j] = ds[j] = 0.0f;
                }
                hafm_sgemm(0, 0, M, hd, N, scale, dS, N, kb, ld_k, 0.0f, dq + ((size_t)b * T + t0) * d + h * hd, d);
                hafm_sgemm(1, 0, N, hd, M, scale, dS, N, qb, d, 1.0f, dkb, d);
                hafm_sgemm(1, 0, N, hd, M, 1.0f, P, N, dob, d, 1.0f, dvb, d);
            }
        }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < nb; i++) drel_bias[i * H + h] += part[((size_t)b * H + h) * nb + i];
    free(P_all);
    free(part);
}
