/* hafm/sampling.h - seeded random numbers, classifier-free guidance and token sampling. */
#ifndef HAFM_SAMPLING_H
#define HAFM_SAMPLING_H

#include <stdint.h>

/* xoshiro256** seeded through splitmix64: the same seed gives the same numbers everywhere, and
 * the whole state is 4 words, so a trainer can checkpoint it. */
typedef struct { uint64_t s[4]; } hafm_rand;

void     hafm_rand_seed(hafm_rand *r, uint64_t seed);
uint64_t hafm_rand_u64(hafm_rand *r);
double   hafm_rand_uniform(hafm_rand *r);              /* [0, 1) with 53 random bits */
uint64_t hafm_rand_below(hafm_rand *r, uint64_t n);    /* uniform in [0, n), n > 0, unbiased */
float    hafm_rand_normal(hafm_rand *r);               /* standard normal (Box-Muller) */

typedef struct {
    float cfg_scale;     /* logits = u + scale (c - u); 1 = conditional only */
    float temperature;   /* 0 = greedy (argmax) */
    int   top_k;         /* 0 = no limit */
    float top_p;         /* 1 = no nucleus cut */
} hafm_sampler;

/* Paper defaults: scale 3, temperature 0.9, top-k 250, top-p off. */
void hafm_sampler_default(hafm_sampler *s);

/* out[V] = uncond + scale * (cond - uncond). */
void hafm_cfg_combine(float *out, const float *cond, const float *uncond, float scale, int V);

/* Draws a token from logits[V] (modified in place: scratch) with temperature, top-k, top-p.
 * work holds 3 V ints. Uses exactly one random number per call when temperature > 0, none when 0. */
int hafm_sample(float *logits, int V, const hafm_sampler *s, hafm_rand *rng, int *work);

#endif
