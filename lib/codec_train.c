/* codec_train.c - EnCodec's training loop: random segments, quantiser dropout, reconstruction
 * losses (+ MS-STFT discriminator and balancer), AdamW, exact checkpoints (hafm/codec_train.h). */
#include "hafm/codec_train.h"
#include "hafm/codec_losses.h"
#include "hafm/common.h"
#include "hafm/safetensors.h"

#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ct_train_opts_default(ct_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 8;
    o->segment = 24000;
    o->lr = 3e-4f;          /* EnCodec: Adam, lr 3e-4, betas (0.5, 0.9) */
    o->beta1 = 0.5f;
    o->beta2 = 0.9f;
    o->weight_decay = 0.0f;
    o->w_time = 0.1f;
    o->w_mel = 1.0f;
    o->w_commit = 1.0f;
    o->w_adv = 3.0f;
    o->w_feat = 3.0f;
    o->adversarial = 1;
    o->disc_filters = 32;
    o->q_dropout = 1;
    o->quantizer_warmup = 0;
    o->dead_threshold = 2.0f;   /* EnCodec's threshold_ema_dead_code */
    o->track_mean = 0;
    o->n_mels = 64;
    o->mel_min_log2 = 5;
    o->mel_max_log2 = 11;
    o->seed = 0;
}

static cJSON *opts_json(const ct_train_opts *o)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "segment", o->segment);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "beta1", o->beta1);
    cJSON_AddNumberToObject(j, "beta2", o->beta2);
    cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(j, "w_time", o->w_time);
    cJSON_AddNumberToObject(j, "w_mel", o->w_mel);
    cJSON_AddNumberToObject(j, "w_commit", o->w_commit);
    cJSON_AddNumberToObject(j, "w_adv", o->w_adv);
    cJSON_AddNumberToObject(j, "w_feat", o->w_feat);
    cJSON_AddBoolToObject(j, "adversarial", o->adversarial);
    cJSON_AddNumberToObject(j, "disc_filters", o->disc_filters);
    cJSON_AddBoolToObject(j, "q_dropout", o->q_dropout);
    cJSON_AddNumberToObject(j, "quantizer_warmup", o->quantizer_warmup);
    cJSON_AddNumberToObject(j, "dead_threshold", o->dead_threshold);
    cJSON_AddBoolToObject(j, "track_mean", o->track_mean);
    cJSON_AddNumberToObject(j, "n_mels", o->n_mels);
    cJSON_AddNumberToObject(j, "mel_min_log2", o->mel_min_log2);
    cJSON_AddNumberToObject(j, "mel_max_log2", o->mel_max_log2);
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, o->seed);
    cJSON_AddStringToObject(j, "seed", seed);
    return j;
}

char *ct_train_opts_to_json(const ct_train_opts *o)
{
    cJSON *j = opts_json(o);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char *r = hafm_xstrdup(s);
    cJSON_free(s);
    return r;
}

struct ct_trainer {
    ct_model *m;
    ct_train_opts o;
    ct_rvq_params rp;
    ct_tape *tape;
    ct_mel_loss *mel;
    ct_msstftd *disc;
    hafm_adamw opt, dopt;
    ct_balancer bal;
    ct_rng rng;
    int64_t step;
    float **clips;
    int64_t *lens;
    int nclips;
};

ct_trainer *ct_trainer_new(ct_model *m, const ct_train_opts *o)
{
    const ct_config *cfg = ct_model_config(m);
    if (o->segment < ct_config_hop(cfg)) {
        hafm_error("the segment (%d samples) must hold at least one frame (%d samples)", o->segment, ct_config_hop(cfg));
        return NULL;
    }
    if (o->adversarial && o->segment < 2048) {
        hafm_error("with the adversarial loss a segment needs at least 2048 samples (the largest STFT), got %d",
                   o->segment);
        return NULL;
    }
    ct_mel_loss *mel = ct_mel_loss_new(cfg->sample_rate, o->n_mels, o->mel_min_log2, o->mel_max_log2);
    if (!mel) return NULL;
    ct_trainer *t = hafm_xcalloc(1, sizeof *t);
    t->m = m;
    t->o = *o;
    t->mel = mel;
    ct_rvq_params_default(&t->rp);
    t->rp.dead_threshold = o->dead_threshold;
    t->rp.track_mean = o->track_mean;
    t->tape = ct_tape_new();
    ct_rng_seed(&t->rng, o->seed);
    hafm_adamw_init(&t->opt, ct_model_nparams(m), o->lr, o->beta1, o->beta2, 1e-8f, o->weight_decay);
    if (o->adversarial) {
        t->disc = ct_msstftd_new_default(o->disc_filters);
        ct_msstftd_init_random(t->disc, o->seed ^ 0x5eedd15cULL);
        hafm_adamw_init(&t->dopt, ct_msstftd_nparams(t->disc), o->lr, o->beta1, o->beta2, 1e-8f, o->weight_decay);
        double w[4] = {o->w_time, o->w_mel, o->w_adv, o->w_feat};
        ct_balancer_init(&t->bal, 4, w, 0.999);
    }
    return t;
}

void ct_trainer_free(ct_trainer *t)
{
    if (!t) return;
    for (int i = 0; i < t->nclips; i++) free(t->clips[i]);
    free(t->clips);
    free(t->lens);
    ct_tape_free(t->tape);
    ct_mel_loss_free(t->mel);
    hafm_adamw_free(&t->opt);
    if (t->disc) { ct_msstftd_free(t->disc); hafm_adamw_free(&t->dopt); }
    ct_model_free(t->m);
    free(t);
}

ct_model *ct_trainer_model(ct_trainer *t) { return t->m; }
int64_t ct_trainer_step_count(const ct_trainer *t) { return t->step; }
int ct_trainer_nclips(const ct_trainer *t) { return t->nclips; }
int64_t ct_trainer_clip_len(const ct_trainer *t, int clip) { return t->lens[clip]; }

int ct_trainer_add_clip(ct_trainer *t, const float *x, int64_t n, const char *name)
{
    if (n < t->o.segment) {
        hafm_error("%s: %.3f s is shorter than the training segment (%.3f s)", name,
                   (double)n / ct_model_config(t->m)->sample_rate,
                   (double)t->o.segment / ct_model_config(t->m)->sample_rate);
        return -1;
    }
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    if (sqrt(ss / n) < 1e-5) {
        hafm_error("%s: the audio is silent (RMS below -100 dBFS): nothing to learn from", name);
        return -1;
    }
    t->clips = hafm_xrealloc(t->clips, sizeof(float *) * (size_t)(t->nclips + 1));
    t->lens = hafm_xrealloc(t->lens, sizeof(int64_t) * (size_t)(t->nclips + 1));
    t->clips[t->nclips] = hafm_xmalloc(sizeof(float) * (size_t)n);
    memcpy(t->clips[t->nclips], x, sizeof(float) * (size_t)n);
    t->lens[t->nclips++] = n;
    return 0;
}

/* A segment start drawn uniformly over all positions of all clips. */
static void draw_segment(ct_trainer *t, float *dst)
{
    const int L = t->o.segment;
    uint64_t total = 0;
    for (int i = 0; i < t->nclips; i++) total += (uint64_t)(t->lens[i] - L + 1);
    uint64_t r = ct_rng_below(&t->rng, total);
    for (int i = 0; i < t->nclips; i++) {
        uint64_t n = (uint64_t)(t->lens[i] - L + 1);
        if (r < n) { memcpy(dst, t->clips[i] + r, sizeof(float) * L); return; }
        r -= n;
    }
}

static int max_nq(const ct_config *cfg)
{
    int n = 1;
    for (int i = 0; i < cfg->n_bw; i++) {
        int k = ct_config_nq_for_bandwidth(cfg, cfg->target_bandwidths[i]);
        if (k > n) n = k;
    }
    return n;
}

int ct_trainer_step(ct_trainer *t, ct_step_stats *st)
{
    if (t->nclips == 0) { hafm_error("no training audio"); return -1; }
    double t0 = hafm_now();
    const ct_config *cfg = ct_model_config(t->m);
    const int B = t->o.batch, L = t->o.segment;
    const size_t n = (size_t)B * L;
    float *x = hafm_xmalloc(sizeof(float) * n), *y = hafm_xmalloc(sizeof(float) * n);
    float *dy = hafm_xcalloc(n, sizeof(float));
    for (int b = 0; b < B; b++) draw_segment(t, x + (size_t)b * L);
    /* quantiser dropout: one model for every bandwidth */
    int n_q = t->o.q_dropout
        ? ct_config_nq_for_bandwidth(cfg, cfg->target_bandwidths[ct_rng_below(&t->rng, (uint64_t)cfg->n_bw)])
        : max_nq(cfg);
    /* Warm-up: the latent of a freshly initialised encoder is tiny and moves by more than its
     * spread in each early step, so codebooks fitted to it at once are left behind and every
     * frame falls to one code; fitted after the warm-up they start from a latent that carries
     * the signal. */
    if (t->step < t->o.quantizer_warmup) n_q = 0;
    memset(st, 0, sizeof *st);
    st->n_q = n_q;
    st->commit = ct_model_train_forward(t->m, t->tape, y, x, B, L, n_q, &t->rp, &t->rng, 1);
    st->codes_used = ct_tape_codes_used(t->tape);
    ct_tape_latent_stats(t->tape, &st->latent_spread, &st->latent_offset);
    if (!t->disc) {
        st->l1 = ct_l1_loss(dy, t->o.w_time, y, x, n);
        st->mel = ct_mel_loss_compute(t->mel, dy, t->o.w_mel, y, x, B, L);
    } else {
        float *g[4];
        for (int i = 0; i < 4; i++) g[i] = hafm_xcalloc(n, sizeof(float));
        st->l1 = ct_l1_loss(g[0], 1.0f, y, x, n);
        st->mel = ct_mel_loss_compute(t->mel, g[1], 1.0f, y, x, B, L);
        ct_msstftd_gen_loss(t->disc, &st->adv, &st->feat, g[2], 1.0f, g[3], 1.0f, y, x, B, L);
        ct_balancer_combine(&t->bal, dy, g, B, L);
        for (int i = 0; i < 4; i++) free(g[i]);
    }
    memset(ct_model_grads(t->m), 0, sizeof(float) * ct_model_nparams(t->m));
    ct_model_train_backward(t->m, t->tape, dy, t->o.w_commit);
    hafm_adamw_step(&t->opt, ct_model_params(t->m), ct_model_grads(t->m), NULL);
    if (t->disc) {
        memset(ct_msstftd_grads(t->disc), 0, sizeof(float) * ct_msstftd_nparams(t->disc));
        st->disc = ct_msstftd_disc_loss_kept(t->disc, 1.0f);   /* same y, x and parameters as the generator's pass */
        hafm_adamw_step(&t->dopt, ct_msstftd_params(t->disc), ct_msstftd_grads(t->disc), NULL);
    }
    st->loss = t->o.w_time * st->l1 + t->o.w_mel * st->mel + t->o.w_commit * st->commit +
               t->o.w_adv * st->adv + t->o.w_feat * st->feat;
    free(x); free(y); free(dy);
    st->step = ++t->step;
    st->seconds = hafm_now() - t0;
    if (!isfinite(st->loss)) {
        hafm_error("step %" PRId64 ": the loss is not finite (lower the learning rate)", t->step);
        return -1;
    }
    return 0;
}

double ct_trainer_eval_sisdr(ct_trainer *t, int clip, int64_t max_samples, int n_q, float *yout)
{
    int64_t n64 = t->lens[clip] < max_samples ? t->lens[clip] : max_samples;
    int n = (int)n64;
    const float *x = t->clips[clip];
    float *y = hafm_xmalloc(sizeof(float) * (size_t)n);
    ct_tape *tape = ct_tape_new();
    if (n_q > 0 && !*ct_model_inited(t->m, 0)) n_q = 0;   /* still in the quantiser warm-up */
    ct_model_train_forward(t->m, tape, y, x, 1, n, n_q, &t->rp, NULL, 0);
    ct_tape_free(tape);
    double xy = 0.0, xx = 0.0;
    for (int i = 0; i < n; i++) { xy += (double)x[i] * y[i]; xx += (double)x[i] * x[i]; }
    double a = xy / xx, sig = 0.0, err = 0.0;
    for (int i = 0; i < n; i++) {
        double s = a * x[i], e = s - y[i];
        sig += s * s;
        err += e * e;
    }
    if (yout) memcpy(yout, y, sizeof(float) * (size_t)n);
    free(y);
    return 10.0 * log10((sig + 1e-20) / (err + 1e-20));
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

static cJSON *doubles_json(const double *v, int n) { return cJSON_CreateDoubleArray(v, n); }

int ct_trainer_save_checkpoint(ct_trainer *t, const char *path)
{
    hafm_st_writer *w = hafm_st_writer_new();
    int rc = -1;
    char *cfg = ct_config_to_json(ct_model_config(t->m)), *state = NULL;
    if (ct_model_write_tensors(t->m, w)) goto out;
    int64_t s[1] = {(int64_t)t->opt.n};
    if (hafm_st_writer_add_f32(w, "trainer.adam.m", HAFM_DT_F32, 1, s, t->opt.m) ||
        hafm_st_writer_add_f32(w, "trainer.adam.v", HAFM_DT_F32, 1, s, t->opt.v))
        goto out;
    if (t->disc) {
        int64_t sd[1] = {(int64_t)t->dopt.n};
        if (hafm_st_writer_add_f32(w, "trainer.disc.params", HAFM_DT_F32, 1, sd, ct_msstftd_params(t->disc)) ||
            hafm_st_writer_add_f32(w, "trainer.disc.adam.m", HAFM_DT_F32, 1, sd, t->dopt.m) ||
            hafm_st_writer_add_f32(w, "trainer.disc.adam.v", HAFM_DT_F32, 1, sd, t->dopt.v))
            goto out;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "step", (double)t->step);
    cJSON *rng = cJSON_AddArrayToObject(j, "rng");
    for (int i = 0; i < 4; i++) {
        char hex[24];
        snprintf(hex, sizeof hex, "%016" PRIx64, t->rng.s[i]);
        cJSON_AddItemToArray(rng, cJSON_CreateString(hex));
    }
    cJSON_AddNumberToObject(j, "adam_t", (double)t->opt.t);
    if (t->disc) {
        cJSON_AddNumberToObject(j, "disc_adam_t", (double)t->dopt.t);
        cJSON_AddItemToObject(j, "balancer_total", doubles_json(t->bal.ema_total, t->bal.n));
        cJSON_AddItemToObject(j, "balancer_fix", doubles_json(t->bal.ema_fix, t->bal.n));
    }
    cJSON_AddItemToObject(j, "opts", opts_json(&t->o));
    char *ps = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    state = hafm_xstrdup(ps);
    cJSON_free(ps);
    if (hafm_st_writer_meta(w, "format", "pt") || hafm_st_writer_meta(w, "config", cfg) ||
        hafm_st_writer_meta(w, "hafm_checkpoint", state))
        goto out;
    rc = hafm_st_writer_save(w, path);
out:
    free(cfg);
    free(state);
    hafm_st_writer_free(w);
    return rc;
}

static int read_flat(const hafm_safetensors *st, const char *name, float *out, size_t n)
{
    int64_t s[1] = {(int64_t)n};
    return hafm_st_read_f32(st, name, out, 1, s);
}

static int json_number(const cJSON *j, const char *key, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(it)) { hafm_error("checkpoint state: missing '%s'", key); return -1; }
    *out = it->valuedouble;
    return 0;
}

int ct_trainer_load_checkpoint(ct_trainer *t, const char *path)
{
    hafm_safetensors *st = hafm_st_open(path);
    if (!st) return -1;
    int rc = -1;
    cJSON *j = NULL;
    char *cfg = ct_config_to_json(ct_model_config(t->m));
    const char *fcfg = hafm_st_meta(st, "config"), *state = hafm_st_meta(st, "hafm_checkpoint");
    if (!state) { hafm_error("%s: not an encodec-train checkpoint", path); goto out; }
    if (!fcfg || strcmp(fcfg, cfg)) { hafm_error("%s: the checkpoint's architecture differs from this run's", path); goto out; }
    j = cJSON_Parse(state);
    if (!j) { hafm_error("%s: corrupt checkpoint state", path); goto out; }
    const cJSON *adv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "opts"), "adversarial");
    if (!adv || !cJSON_IsTrue(adv) != !t->disc) {
        hafm_error("%s: the checkpoint was %s the adversarial loss; resume it the same way", path,
                   t->disc ? "trained without" : "trained with");
        goto out;
    }
    if (ct_model_read_tensors(t->m, st) || read_flat(st, "trainer.adam.m", t->opt.m, t->opt.n) ||
        read_flat(st, "trainer.adam.v", t->opt.v, t->opt.n))
        goto out;
    double step, adam_t;
    if (json_number(j, "step", &step) || json_number(j, "adam_t", &adam_t)) goto out;
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(j, "rng");
    if (cJSON_GetArraySize(rng) != 4) { hafm_error("%s: corrupt RNG state", path); goto out; }
    for (int i = 0; i < 4; i++) {
        const cJSON *e = cJSON_GetArrayItem(rng, i);
        if (!cJSON_IsString(e) || sscanf(e->valuestring, "%" SCNx64, &t->rng.s[i]) != 1) {
            hafm_error("%s: corrupt RNG state", path);
            goto out;
        }
    }
    if (t->disc) {
        double dt;
        if (read_flat(st, "trainer.disc.params", ct_msstftd_params(t->disc), t->dopt.n) ||
            read_flat(st, "trainer.disc.adam.m", t->dopt.m, t->dopt.n) ||
            read_flat(st, "trainer.disc.adam.v", t->dopt.v, t->dopt.n) || json_number(j, "disc_adam_t", &dt))
            goto out;
        t->dopt.t = (int64_t)dt;
        const cJSON *bt = cJSON_GetObjectItemCaseSensitive(j, "balancer_total");
        const cJSON *bf = cJSON_GetObjectItemCaseSensitive(j, "balancer_fix");
        if (cJSON_GetArraySize(bt) != t->bal.n || cJSON_GetArraySize(bf) != t->bal.n) {
            hafm_error("%s: corrupt balancer state", path);
            goto out;
        }
        for (int i = 0; i < t->bal.n; i++) {
            t->bal.ema_total[i] = cJSON_GetArrayItem(bt, i)->valuedouble;
            t->bal.ema_fix[i] = cJSON_GetArrayItem(bf, i)->valuedouble;
        }
    }
    t->step = (int64_t)step;
    t->opt.t = (int64_t)adam_t;
    rc = 0;
out:
    cJSON_Delete(j);
    free(cfg);
    hafm_st_close(st);
    return rc;
}
