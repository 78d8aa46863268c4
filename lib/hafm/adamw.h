/* hafm/adamw.h - AdamW (Loshchilov & Hutter) over one flat float parameter vector.
 *
 * Any model whose parameters live in one contiguous array (or several, each with its own
 * optimiser) can use it. Weight decay is decoupled: p -= lr * wd * p, before the Adam step.
 * The state (m, v, t) is plain data so a checkpoint can store and restore it exactly.
 */
#ifndef HAFM_ADAMW_H
#define HAFM_ADAMW_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t t;          /* steps taken (bias correction uses t after the increment) */
    size_t n;
    float *m, *v;       /* first and second moments, n each */
} hafm_adamw;

void hafm_adamw_init(hafm_adamw *opt, size_t n, float lr, float beta1, float beta2, float eps,
                     float weight_decay);
/* One step: params[n] updated in place from grads[n]. mask (may be NULL) marks with 0 the
 * entries that take no weight decay (biases, gains). */
void hafm_adamw_step(hafm_adamw *opt, float *params, const float *grads, const uint8_t *decay_mask);
void hafm_adamw_free(hafm_adamw *opt);

/* The update itself, for trainers that keep m and v in their own layout (the transformer
 * trainer's checkpoints): step t counts from 1; decay_mask may be NULL (decay everything). */
void hafm_adamw_update(float *params, const float *grads, float *m, float *v, const uint8_t *decay_mask,
                       size_t n, float lr, float beta1, float beta2, float eps, float weight_decay, int64_t t);

#endif
