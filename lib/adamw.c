/* adamw.c - AdamW over a flat parameter vector (see hafm/adamw.h). */
#include "hafm/adamw.h"
#include "hafm/common.h"

#include <math.h>
#include <stdlib.h>

void hafm_adamw_init(hafm_adamw *opt, size_t n, float lr, float beta1, float beta2, float eps,
                     float weight_decay)
{
    opt->lr = lr;
    opt->beta1 = beta1;
    opt->beta2 = beta2;
    opt->eps = eps;
    opt->weight_decay = weight_decay;
    opt->t = 0;
    opt->n = n;
    opt->m = hafm_xcalloc(n ? n : 1, sizeof(float));
    opt->v = hafm_xcalloc(n ? n : 1, sizeof(float));
}

void hafm_adamw_update(float *params, const float *grads, float *m, float *v, const uint8_t *decay_mask,
                       size_t n, float lr, float b1, float b2, float eps, float weight_decay, int64_t t)
{
    /* bias corrections in double: beta^t underflows gracefully and stays exact for small t */
    const float c1 = (float)(1.0 - pow(b1, (double)t));
    const float c2 = (float)(1.0 - pow(b2, (double)t));
    const float decay = lr * weight_decay;
    const long nl = (long)n;
#pragma omp parallel for schedule(static) if (nl > 32768)
    for (long i = 0; i < nl; i++) {
        float g = grads[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        float mhat = m[i] / c1, vhat = v[i] / c2;
        float p = params[i];
        if (decay != 0.0f && (!decay_mask || decay_mask[i])) p -= decay * p;
        params[i] = p - lr * mhat / (sqrtf(vhat) + eps);
    }
}

void hafm_adamw_step(hafm_adamw *opt, float *params, const float *grads, const uint8_t *decay_mask)
{
    opt->t++;
    hafm_adamw_update(params, grads, opt->m, opt->v, decay_mask, opt->n, opt->lr, opt->beta1, opt->beta2,
                      opt->eps, opt->weight_decay, opt->t);
}

void hafm_adamw_free(hafm_adamw *opt)
{
    free(opt->m);
    free(opt->v);
    opt->m = opt->v = NULL;
    opt->n = 0;
}
