/* vmath.h - branch-free float exp, expm1, sigmoid and tanh that gcc vectorizes in plain loops
 * (libm's scalar calls would dominate the ELU and LSTM gate cost). Internal to lib/. */
#ifndef HAFM_VMATH_H
#define HAFM_VMATH_H

#include <stdint.h>
#include <string.h>

/* e^x for x in [-87, 88] (clamped), Cephes expf polynomial: about 1 ulp. */
static inline float hafm_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round to nearest by the 1.5 * 2^23 trick: floorf would be a libm call without
     * -fno-trapping-math, and the loop would not vectorize */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* e^x - 1 for x <= 0 (ELU's negative branch). The absolute error stays near 1e-7 where the
 * relative one grows (x -> 0), which is what the ELU output needs. */
static inline float hafm_expm1f_neg(float x)
{
    return hafm_expf(x) - 1.0f;
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HAFM_HAVE_EXP8 1
/* hafm_expf on eight lanes (gcc does not if-convert the scalar version's clamps into a
 * vector loop without -fno-trapping-math). */
static inline __m256 hafm_exp8(__m256 x)
{
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#endif

static inline float hafm_sigmoidf(float x)
{
    return 1.0f / (1.0f + hafm_expf(-x));
}

static inline float hafm_tanhf(float x)
{
    return 2.0f / (1.0f + hafm_expf(-2.0f * x)) - 1.0f;
}

#endif
