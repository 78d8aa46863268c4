/* train.c - AdamW, schedule, crops, data-parallel steps, validation, checkpoints. */
#include "hafm/train.h"
#include "hafm/adamw.h"
#include "hafm/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void hafm_train_opts_default(hafm_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->lr = 1e-4;
    o->lr_min = 1e-5;
    o->weight_decay = 0.01;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->clip = 1.0;
    o->warmup = 100;
    o->steps = 10000;
    o->batch = 8;
    o->micro_batch = 1;
    o->cond_dropout = 0.1;
    o->seed = 1;
}

double hafm_lr_at(const hafm_train_opts *o, int64_t step)
{
    if (step < o->warmup) return o->lr * (double)(step + 1) / (double)o->warmup;
    if (step >= o->steps) return o->lr_min;
    double span = (double)(o->steps - o->warmup);
    double x = span > 0 ? (double)(step - o->warmup) / span : 1.0;
    return o->lr_min + 0.5 * (o->lr - o->lr_min) * (1.0 + cos(M_PI * x));
}

struct hafm_trainer {
    hafm_tf_model *m;
    hafm_train_opts o;
    hafm_comm comm;
    hafm_train_state st;
    float *grads, *am, *av;
    unsigned char *decay;
    hafm_tf_layout lay;
    hafm_tf_acts *acts;
    int32_t *tokens;
    const hafm_stage_item **items;     /* those long enough for a crop */
    int64_t *cum;                      /* cumulative crop start counts, for length-weighted draws */
    int n_items;
    float codebook_weight[64];         /* scaled to mean 1 */
    const float *loss_weight;          /* codebook_weight, or NULL when all are equal */
};

hafm_trainer *hafm_trainer_new(hafm_tf_model *m, const hafm_train_opts *o, const hafm_comm *comm,
                               const hafm_stage_item *items, int n_items)
{
    if (o->batch < 1 || o->micro_batch < 1 || o->window_units < 1) {
        hafm_error("batch, micro-batch and window must be positive");
        return NULL;
    }
    int Q = m->cfg.target.codebooks;
    if (o->n_codebook_weights && o->n_codebook_weights != Q) {
        hafm_error("%d codebook loss weights for a target of %d codebooks", o->n_codebook_weights, Q);
        return NULL;
    }
    double wsum = 0.0;
    for (int q = 0; q < o->n_codebook_weights; q++) {
        if (!(o->codebook_weights[q] >= 0.0f && o->codebook_weights[q] <= 1e6f)) {
            hafm_error("codebook loss weight %d: %g is not in 0..1e6", q + 1, o->codebook_weights[q]);
            return NULL;
        }
        wsum += o->codebook_weights[q];
    }
    if (o->n_codebook_weights && !(wsum > 0.0)) {
        hafm_error("codebook loss weights: all are 0");
        return NULL;
    }
    hafm_trainer *t = hafm_xcalloc(1, sizeof *t);
    t->m = m;
    t->o = *o;
    for (int q = 0; q < o->n_codebook_weights; q++) {
        t->codebook_weight[q] = (float)(o->codebook_weights[q] * Q / wsum);
        if (o->codebook_weights[q] != o->codebook_weights[0]) t->loss_weight = t->codebook_weight;
    }
    if (comm) t->comm = *comm;
    else t->comm.world = 1;
    if (hafm_tf_layout_init(&t->lay, &m->cfg, o->window_units) < 0) {
        free(t);
        return NULL;
    }
    t->items = hafm_xmalloc((size_t)(n_items > 0 ? n_items : 1) * sizeof *t->items);
    t->cum = hafm_xmalloc((size_t)(n_items > 0 ? n_items : 1) * sizeof *t->cum);
    int64_t total = 0;
    for (int i = 0; i < n_items; i++)
        if (items[i].n_units >= o->window_units) {
            total += items[i].n_units - o->window_units + 1;
            t->items[t->n_items] = &items[i];
            t->cum[t->n_items++] = total;
        }
    if (t->n_items == 0) {
        hafm_error("no training item is at least one window (%d units) long", o->window_units);
        hafm_trainer_free(t);
        return NULL;
    }
    size_t n = m->n_params;
    t->grads = hafm_xcalloc(n, sizeof(float));
    t->am = hafm_xcalloc(n, sizeof(float));
    t->av = hafm_xcalloc(n, sizeof(float));
    t->decay = hafm_xcalloc(n, 1);
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].decay) memset(t->decay + m->tensors[i].offset, 1, m->tensors[i].numel);
    t->acts = hafm_tf_acts_new(m, &t->lay, o->micro_batch);
    t->tokens = hafm_xmalloc((size_t)o->micro_batch * t->lay.L * sizeof *t->tokens);
    hafm_rand_seed(&t->st.rng, o->seed);
    return t;
}

void hafm_trainer_free(hafm_trainer *t)
{
    if (!t) return;
    free(t->grads);
    free(t->am);
    free(t->av);
    free(t->decay);
    hafm_tf_acts_free(t->acts);
    free(t->tokens);
    free(t->items);
    free(t->cum);
    hafm_tf_layout_free(&t->lay);
    free(t);
}

hafm_train_state *hafm_trainer_state(hafm_trainer *t) { return &t->st; }

typedef struct { const hafm_stage_item *it; int64_t u0; int drop; } crop;

/* Runs forward + loss (+ backward) over crops[0..n) in micro-batches; sums loss and correct. */
static int run_crops(hafm_trainer *t, const crop *crops, int n, float loss_scale, int backward, double *loss, int64_t *correct)
{
    int L = t->lay.L, mb = t->o.micro_batch;
    for (int c0 = 0; c0 < n; c0 += mb) {
        int k = n - c0 < mb ? n - c0 : mb;
        hafm_tf_acts *a = t->acts;
        hafm_tf_acts *tmp = NULL;
        if (k != mb) a = tmp = hafm_tf_acts_new(t->m, &t->lay, k);
        for (int j = 0; j < k; j++)
            hafm_stage_crop(t->m, &t->lay, crops[c0 + j].it, crops[c0 + j].u0, crops[c0 + j].drop, t->tokens + (size_t)j * L);
        if (!hafm_tf_forward(t->m, a, t->tokens)) {
            hafm_tf_acts_free(tmp);
            return -1;
        }
        int64_t ok = 0;
        double unweighted = 0.0;
        hafm_tf_loss(a, t->tokens, loss_scale, backward ? t->loss_weight : NULL, &unweighted, &ok);
        *loss += unweighted;
        *correct += ok;
        if (backward) hafm_tf_backward(t->m, a, t->tokens, t->grads);
        hafm_tf_acts_free(tmp);
    }
    return 0;
}

int hafm_trainer_step(hafm_trainer *t, hafm_step_stats *out)
{
    const hafm_train_opts *o = &t->o;
    int B = o->batch, world = t->comm.world > 0 ? t->comm.world : 1, rank = t->comm.rank;
    /* Every process draws the whole global batch, so the data does not depend on the process
     * count, then works on its own contiguous share. */
    crop *crops = hafm_xmalloc((size_t)B * sizeof *crops);
    int64_t total = t->cum[t->n_items - 1];
    for (int b = 0; b < B; b++) {
        int64_t r = (int64_t)hafm_rand_below(&t->st.rng, (uint64_t)total);
        int i = 0;
        while (t->cum[i] <= r) i++;
        crops[b].it = t->items[i];
        crops[b].u0 = r - (i ? t->cum[i - 1] : 0);
        crops[b].drop = hafm_rand_uniform(&t->st.rng) < o->cond_dropout;
    }
    int lo = (int)((int64_t)B * rank / world), hi = (int)((int64_t)B * (rank + 1) / world);
    int64_t ntok = (int64_t)B * t->lay.n_target;
    memset(t->grads, 0, t->m->n_params * sizeof(float));
    double sums[2] = { 0.0, 0.0 };
    int64_t correct = 0;
    int rc = run_crops(t, crops + lo, hi - lo, 1.0f / (float)ntok, 1, &sums[0], &correct);
    free(crops);
    if (rc < 0) return -1;
    sums[1] = (double)correct;
    if (world > 1) {
        t->comm.sum_f32(t->grads, t->m->n_params, t->comm.ctx);
        t->comm.sum_f64(sums, 2, t->comm.ctx);
    }
    double nrm = 0.0;
    for (size_t i = 0; i < t->m->n_params; i++) nrm += (double)t->grads[i] * t->grads[i];
    nrm = sqrt(nrm);
    if (!isfinite(nrm)) {
        hafm_error("step %lld: the gradient is not finite (lower the learning rate)", (long long)t->st.step + 1);
        return -1;
    }
    if (o->clip > 0 && nrm > o->clip) {
        float s = (float)(o->clip / nrm);
        for (size_t i = 0; i < t->m->n_params; i++) t->grads[i] *= s;
    }
    double lr = hafm_lr_at(o, t->st.step);
    hafm_adamw_update(t->m->params, t->grads, t->am, t->av, t->decay, t->m->n_params, (float)lr, (float)o->beta1,
                      (float)o->beta2, (float)o->eps, (float)o->weight_decay, t->st.step + 1);
    t->st.step++;
    t->st.tokens += ntok;
    out->loss = sums[0] / (double)ntok;
    out->acc = sums[1] / (double)ntok;
    out->grad_norm = nrm;
    out->lr = lr;
    return 0;
}

int hafm_trainer_eval(hafm_trainer *t, const hafm_stage_item *items, int n_items, int max_crops, double *loss, double *acc)
{
    int W = t->o.window_units, world = t->comm.world > 0 ? t->comm.world : 1;
    crop *crops = hafm_xmalloc((size_t)(max_crops > 0 ? max_crops : 1) * sizeof *crops);
    int n = 0, mine = 0;
    for (int i = 0; i < n_items && n < max_crops; i++)
        for (int64_t u = 0; u + W <= items[i].n_units && n < max_crops; u += W, n++)
            if (n % world == t->comm.rank) crops[mine++] = (crop){ &items[i], u, 0 };
    if (n == 0) {
        free(crops);
        hafm_error("no validation item is at least one window (%d units) long", W);
        return -1;
    }
    double sums[2] = { 0.0, 0.0 };
    int64_t correct = 0;
    int rc = run_crops(t, crops, mine, 0.0f, 0, &sums[0], &correct);
    free(crops);
    if (rc < 0) return -1;
    sums[1] = (double)correct;
    if (world > 1) t->comm.sum_f64(sums, 2, t->comm.ctx);
    double ntok = (double)n * t->lay.n_target;
    *loss = sums[0] / ntok;
    *acc = sums[1] / ntok;
    return 0;
}

/* opt.state: "HAFMTRN1", then little-endian u64 step, tokens, rng[4]. */
#define STATE_BYTES (8 + 8 * 6)

static void put_u64(unsigned char *p, uint64_t x)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(x >> (8 * i));
}
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x |= (uint64_t)p[i] << (8 * i);
    return x;
}

void hafm_trainer_round_weights(hafm_trainer *t, hafm_dtype dtype)
{
    float *p = t->m->params;
    size_t n = t->m->n_params;
    if (dtype == HAFM_DT_BF16)
        for (size_t i = 0; i < n; i++) p[i] = hafm_bf16_to_f32(hafm_f32_to_bf16(p[i]));
    else if (dtype == HAFM_DT_F16)
        for (size_t i = 0; i < n; i++) p[i] = hafm_f16_to_f32(hafm_f32_to_f16(p[i]));
}

static int save_model(hafm_trainer *t, const char *path, const char *training_json, int with_optimizer, hafm_dtype dtype)
{
    hafm_st_writer *w = hafm_st_writer_new();
    int rc = hafm_tf_add_to_writer(t->m, w, dtype);
    if (rc == 0 && training_json) rc = hafm_st_writer_meta(w, "training", training_json);
    char name[96];
    for (int i = 0; rc == 0 && with_optimizer && i < t->m->n_tensors; i++) {
        const hafm_tf_tensor *x = &t->m->tensors[i];
        snprintf(name, sizeof name, "opt.m.%s", x->name);
        rc = hafm_st_writer_add(w, name, HAFM_DT_F32, x->ndim, x->shape, t->am + x->offset);
        snprintf(name, sizeof name, "opt.v.%s", x->name);
        if (rc == 0) rc = hafm_st_writer_add(w, name, HAFM_DT_F32, x->ndim, x->shape, t->av + x->offset);
    }
    if (rc == 0 && with_optimizer) {
        unsigned char s[STATE_BYTES];
        memcpy(s, "HAFMTRN1", 8);
        put_u64(s + 8, (uint64_t)t->st.step);
        put_u64(s + 16, (uint64_t)t->st.tokens);
        for (int i = 0; i < 4; i++) put_u64(s + 24 + 8 * i, t->st.rng.s[i]);
        int64_t shape = STATE_BYTES;
        rc = hafm_st_writer_add(w, "opt.state", HAFM_DT_U8, 1, &shape, s);
    }
    if (rc == 0) rc = hafm_st_writer_save(w, path);
    hafm_st_writer_free(w);
    return rc;
}

int hafm_trainer_save(hafm_trainer *t, const char *path, const char *training_json, int with_optimizer)
{
    return save_model(t, path, training_json, with_optimizer, HAFM_DT_F32);
}

int hafm_trainer_export(hafm_trainer *t, const char *path, const char *training_json, hafm_dtype dtype)
{
    if (dtype != HAFM_DT_F32 && dtype != HAFM_DT_BF16 && dtype != HAFM_DT_F16) {
        hafm_error("%s: a model is stored as f32, bf16 or f16, not %s", path, hafm_dtype_name(dtype));
        return -1;
    }
    return save_model(t, path, training_json, 0, dtype);
}

int hafm_trainer_restore(hafm_trainer *t, const hafm_safetensors *st)
{
    char name[96];
    for (int i = 0; i < t->m->n_tensors; i++) {
        const hafm_tf_tensor *x = &t->m->tensors[i];
        snprintf(name, sizeof name, "opt.m.%s", x->name);
        if (hafm_st_read_f32(st, name, t->am + x->offset, x->ndim, x->shape) < 0) goto bad;
        snprintf(name, sizeof name, "opt.v.%s", x->name);
        if (hafm_st_read_f32(st, name, t->av + x->offset, x->ndim, x->shape) < 0) goto bad;
    }
    const hafm_st_tensor *s = hafm_st_find(st, "opt.state");
    if (!s || s->dtype != HAFM_DT_U8 || s->nbytes != STATE_BYTES || memcmp(s->data, "HAFMTRN1", 8) != 0) {
        hafm_error("%s: no valid 'opt.state' tensor", hafm_st_path(st));
        goto bad;
    }
    const unsigned char *p = s->data;
    t->st.step = (int64_t)get_u64(p + 8);
    t->st.tokens = (int64_t)get_u64(p + 16);
    for (int i = 0; i < 4; i++) t->st.rng.s[i] = get_u64(p + 24 + 8 * i);
    return 0;
bad:
    hafm_error_prefix("not a resumable checkpoint");
    return -1;
}
