/* sampling.c - RNG, classifier-free guidance, temperature / top-k / top-p sampling. */
#include "hafm/sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void hafm_rand_seed(hafm_rand *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t hafm_rand_u64(hafm_rand *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double hafm_rand_uniform(hafm_rand *r) { return (double)(hafm_rand_u64(r) >> 11) * 0x1.0p-53; }

uint64_t hafm_rand_below(hafm_rand *r, uint64_t n)
{
    /* Rejection keeps it unbiased: drop the top partial copy of [0, n). */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = hafm_rand_u64(r); while (x >= limit);
    return x % n;
}

float hafm_rand_normal(hafm_rand *r)
{
    double u1 = hafm_rand_uniform(r), u2 = hafm_rand_uniform(r);
    return (float)(sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2));
}

void hafm_sampler_default(hafm_sampler *s)
{
    s->cfg_scale = 3.0f;
    s->temperature = 0.9f;
    s->top_k = 250;
    s->top_p = 1.0f;
}

void hafm_cfg_combine(float *out, const float *cond, const float *uncond, float scale, int V)
{
    if (scale == 1.0f) {   /* exactly the conditional logits, not u + (c - u) rounded */
        for (int i = 0; i < V; i++) out[i] = cond[i];
        return;
    }
    for (int i = 0; i < V; i++) out[i] = uncond[i] + scale * (cond[i] - uncond[i]);
}

/* order[V] = token indices by descending logit, ties by ascending index: a stable LSD radix sort
 * of order-preserving keys, 8 bits a pass (a comparison sort of the vocabulary was about a tenth
 * of a small stage's decode step). -0 counts as +0, as a float comparison has it. */
static void sort_desc(const float *logits, int V, int *order, int *tmp, uint32_t *key)
{
    for (int i = 0; i < V; i++) {
        float f = logits[i] == 0.0f ? 0.0f : logits[i];
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        key[i] = ~(u & 0x80000000u ? ~u : u | 0x80000000u);   /* ascending key = descending logit */
        order[i] = i;
    }
    for (int shift = 0; shift < 32; shift += 8) {
        int count[257] = { 0 };
        for (int i = 0; i < V; i++) count[((key[i] >> shift) & 255) + 1]++;
        if (count[((key[0] >> shift) & 255) + 1] == V) continue;   /* one digit value: order unchanged */
        for (int d = 0; d < 256; d++) count[d + 1] += count[d];
        for (int i = 0; i < V; i++) tmp[count[(key[order[i]] >> shift) & 255]++] = order[i];
        memcpy(order, tmp, (size_t)V * sizeof *order);
    }
}

int hafm_sample(float *logits, int V, const hafm_sampler *s, hafm_rand *rng, int *work)
{
    if (s->temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    sort_desc(logits, V, work, work + V, (uint32_t *)(work + 2 * (size_t)V));
    int n = (s->top_k > 0 && s->top_k < V) ? s->top_k : V;
    float maxl = logits[work[0]];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        float p = expf((logits[work[i]] - maxl) / s->temperature);
        logits[work[i]] = p;   /* logits now holds unnormalised probabilities of the kept tokens */
        sum += p;
    }
    if (s->top_p < 1.0f) {
        /* Smallest prefix of the sorted tokens whose mass reaches top_p (at least one token). */
        double acc = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            acc += logits[work[i]];
            if (acc >= s->top_p * sum) { keep = i + 1; break; }
        }
        n = keep;
        sum = 0.0;
        for (int i = 0; i < n; i++) sum += logits[work[i]];
    }
    double u = hafm_rand_uniform(rng) * sum, acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += logits[work[i]];
        if (u < acc) return work[i];
    }
    return work[n - 1];
}
