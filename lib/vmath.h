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
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
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

static inline float hafm_sigmoidf(float x)
{
    return 1.0f / (1.0f + hafm_expf(-x));
}

static inline float hafm_tanhf(float x)
{
    return 2.0f / (1.0f + hafm_expf(-2.0f * x)) - 1.0f;
}

#endif
