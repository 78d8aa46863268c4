/* codec_train_model.c - the SEANet encoder/decoder built from a config, its parameter arena,
 * the forward/backward over saved activations, and weight files in the reference naming. */
#include "hafm/codec_train.h"
#include "hafm/common.h"
#include "hafm/linalg.h"
#include "hafm/safetensors.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- config ---------------------------------------------------------------------------------- */

void ct_config_default(ct_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->sample_rate = 24000;
    cfg->channels = 1;
    cfg->dimension = 128;
    cfg->n_filters = 32;
    cfg->n_residual_layers = 1;
    cfg->n_ratios = 4;
    int r[4] = {8, 5, 4, 2};
    memcpy(cfg->ratios, r, sizeof r);
    cfg->kernel_size = 7;
    cfg->last_kernel_size = 7;
    cfg->residual_kernel_size = 3;
    cfg->dilation_base = 2;
    cfg->compress = 2;
    cfg->lstm_layers = 2;
    cfg->bins = 1024;
    cfg->n_bw = 5;
    double bw[5] = {1.5, 3.0, 6.0, 12.0, 24.0};
    memcpy(cfg->target_bandwidths, bw, sizeof bw);
    cfg->n_q = 32;
}

int ct_config_hop(const ct_config *cfg)
{
    int hop = 1;
    for (int i = 0; i < cfg->n_ratios; i++) hop *= cfg->ratios[i];
    return hop;
}

int ct_config_frame_rate(const ct_config *cfg)
{
    int hop = ct_config_hop(cfg);
    return (cfg->sample_rate + hop - 1) / hop;
}

int ct_config_nq_for_bandwidth(const ct_config *cfg, double kbps)
{
    double bits = log2((double)cfg->bins);
    int n = (int)floor(kbps * 1000.0 / (bits * ct_config_frame_rate(cfg)));
    return n < 1 ? 1 : n;
}

int ct_config_check(const ct_config *c)
{
    if (c->channels != 1) { hafm_error("only mono codecs are supported (channels %d)", c->channels); return -1; }
    if (c->sample_rate < 1000 || c->sample_rate > 192000) { hafm_error("sample rate %d out of range", c->sample_rate); return -1; }
    if (c->dimension < 1 || c->n_filters < 1 || c->n_residual_layers < 1 || c->compress < 1 ||
        c->lstm_layers < 0 || c->kernel_size < 1 || c->last_kernel_size < 1 || c->residual_kernel_size < 1 ||
        c->dilation_base < 1) {
        hafm_error("invalid architecture sizes in the config");
        return -1;
    }
    if (c->n_ratios < 1 || c->n_ratios > CT_MAX_RATIOS) { hafm_error("1 to %d ratios expected", CT_MAX_RATIOS); return -1; }
    for (int i = 0; i < c->n_ratios; i++)
        if (c->ratios[i] < 1 || c->ratios[i] > 64) { hafm_error("ratio %d out of range", c->ratios[i]); return -1; }
    if ((c->n_filters << c->n_ratios) / c->compress < 1) { hafm_error("n_filters/compress too small"); return -1; }
    if ((long)c->n_filters << c->n_ratios > 8192) {
        hafm_error("n_filters * 2^ratios = %ld channels at the deepest layer (at most 8192)", (long)c->n_filters << c->n_ratios);
        return -1;
    }
    /* the model's tables: 2 halves of 2 + ratios * (3 per residual block + 1) convolutions */
    int nconv = 2 * (2 + c->n_ratios * (3 * c->n_residual_layers + 1));
    if (c->lstm_layers > CT_MAX_LSTM_LAYERS || nconv > CT_MAX_CONVS) {
        hafm_error("the architecture is too deep (%d convolutions, %d LSTM layers; at most %d and %d)", nconv,
                   c->lstm_layers, CT_MAX_CONVS, CT_MAX_LSTM_LAYERS);
        return -1;
    }
    if (c->bins < 2 || c->n_q < 1) { hafm_error("invalid codebook config (bins %d, n_q %d)", c->bins, c->n_q); return -1; }
    if (c->n_bw < 1 || c->n_bw > CT_MAX_BW) { hafm_error("1 to %d target bandwidths expected", CT_MAX_BW); return -1; }
    for (int i = 0; i < c->n_bw; i++)
        if (!(c->target_bandwidths[i] > 0) || ct_config_nq_for_bandwidth(c, c->target_bandwidths[i]) > c->n_q) {
            hafm_error("target bandwidth %g kbps needs more than the %d codebooks", c->target_bandwidths[i], c->n_q);
            return -1;
        }
    return 0;
}

char *ct_config_to_json(const ct_config *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "architecture", "EnCodec SEANet encoder/decoder + RVQ (facebookresearch/encodec EncodecModel)");
    cJSON_AddNumberToObject(o, "sample_rate", c->sample_rate);
    cJSON_AddNumberToObject(o, "channels", c->channels);
    cJSON_AddNumberToObject(o, "dimension", c->dimension);
    cJSON_AddNumberToObject(o, "n_filters", c->n_filters);
    cJSON_AddNumberToObject(o, "n_residual_layers", c->n_residual_layers);
    int rev[CT_MAX_RATIOS];
    for (int i = 0; i < c->n_ratios; i++) rev[i] = c->ratios[c->n_ratios - 1 - i];
    cJSON_AddItemToObject(o, "ratios", cJSON_CreateIntArray(c->ratios, c->n_ratios));
    cJSON_AddItemToObject(o, "encoder_strides", cJSON_CreateIntArray(rev, c->n_ratios));
    cJSON_AddNumberToObject(o, "hop_length", ct_config_hop(c));
    cJSON_AddNumberToObject(o, "frame_rate", ct_config_frame_rate(c));
    cJSON_AddTrueToObject(o, "causal");
    cJSON_AddStringToObject(o, "norm", "weight_norm");
    cJSON_AddStringToObject(o, "pad_mode", "reflect");
    cJSON_AddFalseToObject(o, "true_skip");
    cJSON_AddNumberToObject(o, "compress", c->compress);
    cJSON_AddNumberToObject(o, "lstm_layers", c->lstm_layers);
    cJSON_AddNumberToObject(o, "kernel_size", c->kernel_size);
    cJSON_AddNumberToObject(o, "last_kernel_size", c->last_kernel_size);
    cJSON_AddNumberToObject(o, "residual_kernel_size", c->residual_kernel_size);
    cJSON_AddNumberToObject(o, "dilation_base", c->dilation_base);
    cJSON_AddStringToObject(o, "activation", "ELU(alpha=1.0)");
    cJSON_AddNullToObject(o, "final_activation");
    cJSON_AddNumberToObject(o, "trim_right_ratio", 1.0);
    cJSON_AddNumberToObject(o, "n_q", c->n_q);
    cJSON_AddNumberToObject(o, "bins", c->bins);
    cJSON_AddNumberToObject(o, "codebook_dim", c->dimension);
    cJSON_AddNumberToObject(o, "bits_per_codebook", (int)ceil(log2((double)c->bins)));
    cJSON_AddItemToObject(o, "target_bandwidths", cJSON_CreateDoubleArray(c->target_bandwidths, c->n_bw));
    cJSON_AddFalseToObject(o, "normalize");
    cJSON_AddNullToObject(o, "segment");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *r = hafm_xstrdup(s);
    cJSON_free(s);
    return r;
}

static int json_int(const cJSON *o, const char *key, int *out, int required)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) {
        if (required) { hafm_error("config: missing key '%s'", key); return -1; }
        return 0;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 1e6) {
        hafm_error("config: '%s' must be an integer of at most 1e6", key);
        return -1;
    }
    *out = (int)it->valuedouble;
    return 0;
}

int ct_config_from_json(ct_config *c, const char *json)
{
    ct_config_default(c);
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) { cJSON_Delete(o); hafm_error("config: not a JSON object"); return -1; }
    int rc = -1;
    if (json_int(o, "sample_rate", &c->sample_rate, 1) || json_int(o, "channels", &c->channels, 1) ||
        json_int(o, "dimension", &c->dimension, 1) || json_int(o, "n_filters", &c->n_filters, 1) ||
        json_int(o, "n_residual_layers", &c->n_residual_layers, 0) || json_int(o, "kernel_size", &c->kernel_size, 0) ||
        json_int(o, "last_kernel_size", &c->last_kernel_size, 0) ||
        json_int(o, "residual_kernel_size", &c->residual_kernel_size, 0) ||
        json_int(o, "dilation_base", &c->dilation_base, 0) || json_int(o, "compress", &c->compress, 0) ||
        json_int(o, "lstm_layers", &c->lstm_layers, 0) || json_int(o, "n_q", &c->n_q, 1) ||
        json_int(o, "bins", &c->bins, 1))
        goto out;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "ratios");
    if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) < 1 || cJSON_GetArraySize(r) > CT_MAX_RATIOS) {
        hafm_error("config: 'ratios' must be an array of 1 to %d integers", CT_MAX_RATIOS);
        goto out;
    }
    c->n_ratios = cJSON_GetArraySize(r);
    for (int i = 0; i < c->n_ratios; i++) {
        const cJSON *e = cJSON_GetArrayItem(r, i);
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 1 || e->valuedouble > 64) {
            hafm_error("config: 'ratios' must hold integers from 1 to 64");
            goto out;
        }
        c->ratios[i] = (int)e->valuedouble;
    }
    const cJSON *bw = cJSON_GetObjectItemCaseSensitive(o, "target_bandwidths");
    if (!cJSON_IsArray(bw) || cJSON_GetArraySize(bw) < 1 || cJSON_GetArraySize(bw) > CT_MAX_BW) {
        hafm_error("config: 'target_bandwidths' must be an array of 1 to %d numbers", CT_MAX_BW);
        goto out;
    }
    c->n_bw = cJSON_GetArraySize(bw);
    for (int i = 0; i < c->n_bw; i++) {
        const cJSON *e = cJSON_GetArrayItem(bw, i);
        if (!cJSON_IsNumber(e)) { hafm_error("config: 'target_bandwidths' must hold numbers"); goto out; }
        c->target_bandwidths[i] = e->valuedouble;
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "true_skip");
    if (cJSON_IsTrue(ts)) { hafm_error("config: true_skip residual blocks are not supported"); goto out; }
    const cJSON *causal = cJSON_GetObjectItemCaseSensitive(o, "causal");
    if (causal && !cJSON_IsTrue(causal)) { hafm_error("config: only causal models are supported"); goto out; }
    rc = ct_config_check(c);
out:
    cJSON_Delete(o);
    return rc;
}

/* ---- model structure ------------------------------------------------------------------------- */

typedef struct {
    int cin, cout, k, stride, dil, transposed;
    int n0, rest;             /* weight-norm view of v: dim 0 and the rest */
    size_t g, v, b;           /* offsets into the parameter arena */
    size_t w;                 /* offset into the folded-weight arena (and its gradient) */
} ct_conv;

typedef struct {
    int H, layers;
    size_t wih[CT_MAX_LSTM_LAYERS], whh[CT_MAX_LSTM_LAYERS], bih[CT_MAX_LSTM_LAYERS], bhh[CT_MAX_LSTM_LAYERS];
} ct_lstm;

enum { OP_CONV, OP_CONVTR, OP_ELU, OP_RES, OP_LSTM };
typedef struct { int type, a, b, c; } ct_op;   /* conv indices (a, b block convs, c shortcut) or lstm index */

/* ops per half: 1 + ratios * (residual blocks + 2) + 3, bounded through CT_MAX_CONVS */
#define CT_MAX_OPS 260

struct ct_model {
    ct_config cfg;
    float *params, *grads;
    size_t nparams;
    ct_tensor tensors[3 * CT_MAX_CONVS + 8 * CT_MAX_LSTM_LAYERS];
    int ntensors;
    ct_conv convs[CT_MAX_CONVS];
    int nconvs;
    ct_lstm lstms[2];
    int nlstms;
    ct_op enc[CT_MAX_OPS], dec[CT_MAX_OPS];
    int nenc, ndec;
    float *w, *dw, *norms;    /* folded weights, their gradients, per-row norms */
    size_t nw, nnorm;
    float *embed, *embed_avg, *cluster_size;
    int *inited;
};

static size_t add_tensor(ct_model *m, const char *name, int ndim, const int64_t *shape)
{
    ct_tensor *t = &m->tensors[m->ntensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) { t->shape[i] = shape[i]; t->numel *= (size_t)shape[i]; }
    t->offset = m->nparams;
    m->nparams += t->numel;
    return t->offset;
}

static int add_conv(ct_model *m, const char *prefix, int cin, int cout, int k, int stride, int dil, int transposed)
{
    ct_conv *c = &m->convs[m->nconvs];
    c->cin = cin; c->cout = cout; c->k = k; c->stride = stride; c->dil = dil; c->transposed = transposed;
    c->n0 = transposed ? cin : cout;
    c->rest = (transposed ? cout : cin) * k;
    char name[96];
    const char *mod = transposed ? "convtr.convtr" : "conv.conv";
    int64_t sb[1] = {cout}, sg[3] = {c->n0, 1, 1};
    int64_t sv[3] = {transposed ? cin : cout, transposed ? cout : cin, k};
    snprintf(name, sizeof name, "%s.%s.bias", prefix, mod);
    c->b = add_tensor(m, name, 1, sb);
    snprintf(name, sizeof name, "%s.%s.weight_g", prefix, mod);
    c->g = add_tensor(m, name, 3, sg);
    snprintf(name, sizeof name, "%s.%s.weight_v", prefix, mod);
    c->v = add_tensor(m, name, 3, sv);
    c->w = m->nw;
    m->nw += (size_t)c->n0 * c->rest;
    m->nnorm += (size_t)c->n0;
    return m->nconvs++;
}

static int add_lstm(ct_model *m, const char *prefix, int H, int layers)
{
    ct_lstm *l = &m->lstms[m->nlstms];
    l->H = H;
    l->layers = layers;
    char name[96];
    int64_t sw[2] = {4 * H, H}, sb[1] = {4 * H};
    for (int i = 0; i < layers; i++) {
        snprintf(name, sizeof name, "%s.lstm.weight_ih_l%d", prefix, i); l->wih[i] = add_tensor(m, name, 2, sw);
        snprintf(name, sizeof name, "%s.lstm.weight_hh_l%d", prefix, i); l->whh[i] = add_tensor(m, name, 2, sw);
        snprintf(name, sizeof name, "%s.lstm.bias_ih_l%d", prefix, i); l->bih[i] = add_tensor(m, name, 1, sb);
        snprintf(name, sizeof name, "%s.lstm.bias_hh_l%d", prefix, i); l->bhh[i] = add_tensor(m, name, 1, sb);
    }
    return m->nlstms++;
}

static void add_resblocks(ct_model *m, ct_op *ops, int *nops, const char *part, int *idx, int dim)
{
    const ct_config *c = &m->cfg;
    int hidden = dim / c->compress, dil = 1;
    char p1[64], p3[64], ps[64];
    for (int j = 0; j < c->n_residual_layers; j++, dil *= c->dilation_base) {
        snprintf(p1, sizeof p1, "%s.model.%d.block.1", part, *idx);
        snprintf(p3, sizeof p3, "%s.model.%d.block.3", part, *idx);
        snprintf(ps, sizeof ps, "%s.model.%d.shortcut", part, *idx);
        ct_op op = {OP_RES, 0, 0, 0};
        op.a = add_conv(m, p1, dim, hidden, c->residual_kernel_size, 1, dil, 0);
        op.b = add_conv(m, p3, hidden, dim, 1, 1, 1, 0);
        op.c = add_conv(m, ps, dim, dim, 1, 1, 1, 0);
        ops[(*nops)++] = op;
        (*idx)++;
    }
}

ct_model *ct_model_new(const ct_config *cfg)
{
    if (ct_config_check(cfg)) return NULL;
    ct_model *m = hafm_xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    const ct_config *c = &m->cfg;
    char p[64];
    int idx = 0, mult = 1;
    /* encoder: conv, (resblocks, ELU, strided conv) per ratio in reverse, LSTM, ELU, conv */
    snprintf(p, sizeof p, "encoder.model.%d", idx++);
    m->enc[m->nenc++] = (ct_op){OP_CONV, add_conv(m, p, c->channels, mult * c->n_filters, c->kernel_size, 1, 1, 0), 0, 0};
    for (int i = c->n_ratios - 1; i >= 0; i--) {
        int r = c->ratios[i];
        add_resblocks(m, m->enc, &m->nenc, "encoder", &idx, mult * c->n_filters);
        m->enc[m->nenc++] = (ct_op){OP_ELU, 0, 0, 0};
        idx++;
        snprintf(p, sizeof p, "encoder.model.%d", idx++);
        m->enc[m->nenc++] = (ct_op){OP_CONV, add_conv(m, p, mult * c->n_filters, mult * 2 * c->n_filters, 2 * r, r, 1, 0), 0, 0};
        mult *= 2;
    }
    if (c->lstm_layers > 0) {
        snprintf(p, sizeof p, "encoder.model.%d", idx++);
        m->enc[m->nenc++] = (ct_op){OP_LSTM, add_lstm(m, p, mult * c->n_filters, c->lstm_layers), 0, 0};
    }
    m->enc[m->nenc++] = (ct_op){OP_ELU, 0, 0, 0};
    idx++;
    snprintf(p, sizeof p, "encoder.model.%d", idx++);
    m->enc[m->nenc++] = (ct_op){OP_CONV, add_conv(m, p, mult * c->n_filters, c->dimension, c->last_kernel_size, 1, 1, 0), 0, 0};
    /* decoder: conv, LSTM, (ELU, transposed conv, resblocks) per ratio, ELU, conv */
    idx = 0;
    mult = 1 << c->n_ratios;
    snprintf(p, sizeof p, "decoder.model.%d", idx++);
    m->dec[m->ndec++] = (ct_op){OP_CONV, add_conv(m, p, c->dimension, mult * c->n_filters, c->kernel_size, 1, 1, 0), 0, 0};
    if (c->lstm_layers > 0) {
        snprintf(p, sizeof p, "decoder.model.%d", idx++);
        m->dec[m->ndec++] = (ct_op){OP_LSTM, add_lstm(m, p, mult * c->n_filters, c->lstm_layers), 0, 0};
    }
    for (int i = 0; i < c->n_ratios; i++) {
        int r = c->ratios[i];
        m->dec[m->ndec++] = (ct_op){OP_ELU, 0, 0, 0};
        idx++;
        snprintf(p, sizeof p, "decoder.model.%d", idx++);
        m->dec[m->ndec++] = (ct_op){OP_CONVTR, add_conv(m, p, mult * c->n_filters, mult * c->n_filters / 2, 2 * r, r, 1, 1), 0, 0};
        add_resblocks(m, m->dec, &m->ndec, "decoder", &idx, mult * c->n_filters / 2);
        mult /= 2;
    }
    m->dec[m->ndec++] = (ct_op){OP_ELU, 0, 0, 0};
    idx++;
    snprintf(p, sizeof p, "decoder.model.%d", idx++);
    m->dec[m->ndec++] = (ct_op){OP_CONV, add_conv(m, p, c->n_filters, c->channels, c->last_kernel_size, 1, 1, 0), 0, 0};

    m->params = hafm_xcalloc(m->nparams, sizeof(float));
    m->grads = hafm_xcalloc(m->nparams, sizeof(float));
    m->w = hafm_xcalloc(m->nw, sizeof(float));
    m->dw = hafm_xcalloc(m->nw, sizeof(float));
    m->norms = hafm_xcalloc(m->nnorm, sizeof(float));
    size_t cb = (size_t)c->n_q * c->bins * c->dimension;
    m->embed = hafm_xcalloc(cb, sizeof(float));
    m->embed_avg = hafm_xcalloc(cb, sizeof(float));
    m->cluster_size = hafm_xcalloc((size_t)c->n_q * c->bins, sizeof(float));
    m->inited = hafm_xcalloc((size_t)c->n_q, sizeof(int));
    return m;
}

void ct_model_free(ct_model *m)
{
    if (!m) return;
    free(m->params); free(m->grads); free(m->w); free(m->dw); free(m->norms);
    free(m->embed); free(m->embed_avg); free(m->cluster_size); free(m->inited);
    free(m);
}

const ct_config *ct_model_config(const ct_model *m) { return &m->cfg; }
size_t ct_model_nparams(const ct_model *m) { return m->nparams; }
float *ct_model_params(ct_model *m) { return m->params; }
float *ct_model_grads(ct_model *m) { return m->grads; }
int ct_model_ntensors(const ct_model *m) { return m->ntensors; }
const ct_tensor *ct_model_tensor(const ct_model *m, int i) { return &m->tensors[i]; }
float *ct_model_embed(ct_model *m, int k) { return m->embed + (size_t)k * m->cfg.bins * m->cfg.dimension; }
float *ct_model_embed_avg(ct_model *m, int k) { return m->embed_avg + (size_t)k * m->cfg.bins * m->cfg.dimension; }
float *ct_model_cluster_size(ct_model *m, int k) { return m->cluster_size + (size_t)k * m->cfg.bins; }
int *ct_model_inited(ct_model *m, int k) { return &m->inited[k]; }

static void fill_uniform(float *x, size_t n, float bound, ct_rng *rng)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * ct_rng_uniform(rng) - 1.0) * bound);
}

void ct_model_init_random(ct_model *m, uint64_t seed)
{
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    for (int i = 0; i < m->nconvs; i++) {
        ct_conv *c = &m->convs[i];
        /* PyTorch's kaiming_uniform(a=sqrt(5)): bound 1/sqrt(fan_in), fan_in from dim 1 of the weight */
        int fan_in = (c->transposed ? c->cout : c->cin) * c->k;
        float bound = 1.0f / sqrtf((float)fan_in);
        float *v = m->params + c->v, *g = m->params + c->g;
        fill_uniform(v, (size_t)c->n0 * c->rest, bound, &rng);
        fill_uniform(m->params + c->b, (size_t)c->cout, bound, &rng);
        for (int r = 0; r < c->n0; r++) {   /* weight_norm's init: g = ||v||, so w = v */
            double ss = 0.0;
            for (int j = 0; j < c->rest; j++) ss += (double)v[(size_t)r * c->rest + j] * v[(size_t)r * c->rest + j];
            g[r] = (float)sqrt(ss);
        }
    }
    for (int i = 0; i < m->nlstms; i++) {
        ct_lstm *l = &m->lstms[i];
        float bound = 1.0f / sqrtf((float)l->H);
        size_t nw = (size_t)4 * l->H * l->H, nb = (size_t)4 * l->H;
        for (int j = 0; j < l->layers; j++) {
            fill_uniform(m->params + l->wih[j], nw, bound, &rng);
            fill_uniform(m->params + l->whh[j], nw, bound, &rng);
            fill_uniform(m->params + l->bih[j], nb, bound, &rng);
            fill_uniform(m->params + l->bhh[j], nb, bound, &rng);
        }
    }
    size_t cb = (size_t)m->cfg.n_q * m->cfg.bins;
    memset(m->embed, 0, cb * m->cfg.dimension * sizeof(float));
    memset(m->embed_avg, 0, cb * m->cfg.dimension * sizeof(float));
    memset(m->cluster_size, 0, cb * sizeof(float));
    memset(m->inited, 0, (size_t)m->cfg.n_q * sizeof(int));
}

static void fold_weights(ct_model *m)
{
    size_t nofs = 0;
    for (int i = 0; i < m->nconvs; i++) {
        ct_conv *c = &m->convs[i];
        ct_weightnorm_forward(m->w + c->w, m->norms + nofs, m->params + c->g, m->params + c->v, c->n0, c->rest);
        nofs += (size_t)c->n0;
    }
}

static void unfold_grads(ct_model *m)
{
    size_t nofs = 0;
    for (int i = 0; i < m->nconvs; i++) {
        ct_conv *c = &m->convs[i];
        ct_weightnorm_backward(m->grads + c->g, m->grads + c->v, m->dw + c->w, m->params + c->g,
                               m->params + c->v, m->norms + nofs, c->n0, c->rest);
        nofs += (size_t)c->n0;
    }
}

/* ---- saved activations ------------------------------------------------------------------------ */

typedef struct {
    const float *in;          /* the op's input (owned by the previous entry or the caller) */
    float *out;               /* [C][B][L] */
    int cin, lin, cout, lout;
    float *e1, *e2;           /* resblock: ELU(x), ELU(conv1) */
    float *lx[CT_MAX_LSTM_LAYERS], *lh[CT_MAX_LSTM_LAYERS], *lc[CT_MAX_LSTM_LAYERS], *la[CT_MAX_LSTM_LAYERS];
} ct_entry;

struct ct_tape {
    ct_entry enc[CT_MAX_OPS], dec[CT_MAX_OPS];
    int nenc, ndec, B, L, T, n_q;
    int codes_used;    /* distinct codes of the first codebook in the last forward pass */
    double latent_spread, latent_offset;   /* RMS distance of the latent from its mean; |mean| */
    float *z;          /* encoder output (owned by enc[]) */
    float *q;          /* decoder input [D][B][T] */
    float *q0;         /* stage-0 quantized [D][B][T] (commitment gradient) */
    float *ydec;       /* decoder output [B][T*hop] (owned by dec[]) */
    float *ws1, *ws2;  /* im2col workspaces */
    size_t ws_cap;
};

ct_tape *ct_tape_new(void) { return hafm_xcalloc(1, sizeof(ct_tape)); }

static void entries_free(ct_entry *e, int n)
{
    for (int i = 0; i < n; i++) {
        free(e[i].out); free(e[i].e1); free(e[i].e2);
        for (int j = 0; j < CT_MAX_LSTM_LAYERS; j++) { free(e[i].lx[j]); free(e[i].lh[j]); free(e[i].lc[j]); free(e[i].la[j]); }
        memset(&e[i], 0, sizeof e[i]);
    }
}

static void tape_reset(ct_tape *t)
{
    entries_free(t->enc, t->nenc);
    entries_free(t->dec, t->ndec);
    t->nenc = t->ndec = t->codes_used = 0;
    free(t->q); free(t->q0);
    t->q = t->q0 = NULL;
    t->z = t->ydec = NULL;
}

void ct_tape_free(ct_tape *t)
{
    if (!t) return;
    tape_reset(t);
    free(t->ws1); free(t->ws2);
    free(t);
}

static void tape_ws(ct_tape *t, size_t n)
{
    if (n <= t->ws_cap) return;
    free(t->ws1); free(t->ws2);
    t->ws1 = hafm_xmalloc(n * sizeof(float));
    t->ws2 = hafm_xmalloc(n * sizeof(float));
    t->ws_cap = n;
}

static float *falloc(size_t n) { return hafm_xmalloc((n ? n : 1) * sizeof(float)); }
static float *fzero(size_t n) { return hafm_xcalloc(n ? n : 1, sizeof(float)); }

static void conv_fwd(ct_model *m, ct_tape *t, const ct_conv *c, float *out, const float *in, int B, int L)
{
    int Tout = ct_conv_out_len(L, c->stride);
    tape_ws(t, (size_t)c->cin * c->k * B * Tout);
    ct_conv1d_forward(out, t->ws1, in, m->w + c->w, m->params + c->b, B, c->cin, L, c->cout, c->k, c->stride, c->dil);
}

static void conv_bwd(ct_model *m, ct_tape *t, const ct_conv *c, float *din, const float *dout, const float *in, int B, int L)
{
    int Tout = ct_conv_out_len(L, c->stride);
    tape_ws(t, (size_t)c->cin * c->k * B * Tout);
    ct_conv1d_backward(din, m->dw + c->w, m->grads + c->b, t->ws1, t->ws2, dout, in, m->w + c->w, B, c->cin, L,
                       c->cout, c->k, c->stride, c->dil);
}

/* Runs ops over x [C][B][L]; returns the last output (owned by the entries). */
static float *run_forward(ct_model *m, ct_tape *t, ct_entry *ent, const ct_op *ops, int nops,
                          const float *x, int C, int B, int L)
{
    const float *in = x;
    for (int i = 0; i < nops; i++) {
        const ct_op *op = &ops[i];
        ct_entry *e = &ent[i];
        e->in = in; e->cin = C; e->lin = L;
        switch (op->type) {
        case OP_CONV: {
            const ct_conv *c = &m->convs[op->a];
            e->cout = c->cout; e->lout = ct_conv_out_len(L, c->stride);
            e->out = falloc((size_t)e->cout * B * e->lout);
            conv_fwd(m, t, c, e->out, in, B, L);
            break;
        }
        case OP_CONVTR: {
            const ct_conv *c = &m->convs[op->a];
            e->cout = c->cout; e->lout = L * c->stride;
            e->out = falloc((size_t)e->cout * B * e->lout);
            tape_ws(t, (size_t)c->cout * c->k * B * L);
            ct_convtr1d_forward(e->out, t->ws1, in, m->w + c->w, m->params + c->b, B, c->cin, L, c->cout, c->k, c->stride);
            break;
        }
        case OP_ELU:
            e->cout = C; e->lout = L;
            e->out = falloc((size_t)C * B * L);
            ct_elu_forward(e->out, in, (size_t)C * B * L);
            break;
        case OP_RES: {
            const ct_conv *c1 = &m->convs[op->a], *c3 = &m->convs[op->b], *cs = &m->convs[op->c];
            size_t n = (size_t)C * B * L, nh = (size_t)c1->cout * B * L;
            e->cout = C; e->lout = L;
            e->e1 = falloc(n);
            ct_elu_forward(e->e1, in, n);
            float *h1 = falloc(nh);
            conv_fwd(m, t, c1, h1, e->e1, B, L);
            e->e2 = falloc(nh);
            ct_elu_forward(e->e2, h1, nh);
            free(h1);
            e->out = falloc(n);
            conv_fwd(m, t, c3, e->out, e->e2, B, L);
            float *sc = falloc(n);
            conv_fwd(m, t, cs, sc, in, B, L);
            for (size_t j = 0; j < n; j++) e->out[j] += sc[j];
            free(sc);
            break;
        }
        case OP_LSTM: {
            const ct_lstm *l = &m->lstms[op->a];
            int H = l->H;
            size_t n = (size_t)H * B * L;
            e->cout = C; e->lout = L;
            e->lx[0] = falloc(n);
            ct_to_time_major(e->lx[0], in, H, B, L);
            for (int j = 0; j < l->layers; j++) {
                e->lh[j] = falloc(n); e->lc[j] = falloc(n); e->la[j] = falloc(4 * n);
                ct_lstm_forward(e->lh[j], e->lc[j], e->la[j], e->lx[j], m->params + l->wih[j], m->params + l->whh[j],
                                m->params + l->bih[j], m->params + l->bhh[j], L, B, H);
                if (j + 1 < l->layers) { e->lx[j + 1] = falloc(n); memcpy(e->lx[j + 1], e->lh[j], n * sizeof(float)); }
            }
            e->out = falloc(n);
            ct_from_time_major(e->out, e->lh[l->layers - 1], H, B, L);
            for (size_t j = 0; j < n; j++) e->out[j] += in[j];   /* skip connection */
            break;
        }
        }
        in = e->out; C = e->cout; L = e->lout;
    }
    return (float *)in;
}

/* Backward over the entries; dout is consumed (freed). Returns d(input) (caller frees). */
static float *run_backward(ct_model *m, ct_tape *t, ct_entry *ent, const ct_op *ops, int nops, float *dout, int B)
{
    for (int i = nops - 1; i >= 0; i--) {
        const ct_op *op = &ops[i];
        ct_entry *e = &ent[i];
        size_t nin = (size_t)e->cin * B * e->lin;
        float *din = fzero(nin);
        switch (op->type) {
        case OP_CONV:
            conv_bwd(m, t, &m->convs[op->a], din, dout, e->in, B, e->lin);
            break;
        case OP_CONVTR: {
            const ct_conv *c = &m->convs[op->a];
            tape_ws(t, (size_t)c->cout * c->k * B * e->lin);
            ct_convtr1d_backward(din, m->dw + c->w, m->grads + c->b, t->ws1, dout, e->in, m->w + c->w, B, c->cin,
                                 e->lin, c->cout, c->k, c->stride);
            break;
        }
        case OP_ELU:
            ct_elu_backward(din, dout, e->out, nin);
            break;
        case OP_RES: {
            const ct_conv *c1 = &m->convs[op->a], *c3 = &m->convs[op->b], *cs = &m->convs[op->c];
            size_t nh = (size_t)c1->cout * B * e->lin;
            conv_bwd(m, t, cs, din, dout, e->in, B, e->lin);
            float *de2 = fzero(nh), *dh1 = fzero(nh), *de1 = fzero(nin);
            conv_bwd(m, t, c3, de2, dout, e->e2, B, e->lin);
            ct_elu_backward(dh1, de2, e->e2, nh);
            conv_bwd(m, t, c1, de1, dh1, e->e1, B, e->lin);
            ct_elu_backward(din, de1, e->e1, nin);
            free(de2); free(dh1); free(de1);
            break;
        }
        case OP_LSTM: {
            const ct_lstm *l = &m->lstms[op->a];
            int H = l->H, T = e->lin;
            memcpy(din, dout, nin * sizeof(float));   /* skip connection */
            float *dh = falloc(nin), *dg = falloc(4 * nin);
            ct_to_time_major(dh, dout, H, B, T);
            for (int j = l->layers - 1; j >= 0; j--) {
                float *dx = fzero(nin);
                ct_lstm_backward(dx, m->grads + l->wih[j], m->grads + l->whh[j], m->grads + l->bih[j],
                                 m->grads + l->bhh[j], dg, dh, e->lx[j], e->lh[j], e->lc[j], e->la[j],
                                 m->params + l->wih[j], m->params + l->whh[j], T, B, H);
                free(dh);
                dh = dx;
            }
            float *dx_cm = falloc(nin);
            ct_from_time_major(dx_cm, dh, H, B, T);
            for (size_t j = 0; j < nin; j++) din[j] += dx_cm[j];
            free(dx_cm); free(dh); free(dg);
            break;
        }
        }
        free(dout);
        dout = din;
    }
    return dout;
}

/* ---- inference path --------------------------------------------------------------------------- */

int ct_model_encode(ct_model *m, float *latent, const float *x, int B, int L)
{
    if (L < 1) { hafm_error("empty input"); return -1; }
    fold_weights(m);
    ct_tape *t = ct_tape_new();
    float *z = run_forward(m, t, t->enc, m->enc, m->nenc, x, m->cfg.channels, B, L);
    t->nenc = m->nenc;
    int T = ct_conv_out_len(L, ct_config_hop(&m->cfg));
    memcpy(latent, z, sizeof(float) * (size_t)m->cfg.dimension * B * T);
    ct_tape_free(t);
    return 0;
}

int ct_model_decode(ct_model *m, float *y, const float *quantized, int B, int T)
{
    if (T < 1) { hafm_error("empty input"); return -1; }
    fold_weights(m);
    ct_tape *t = ct_tape_new();
    float *out = run_forward(m, t, t->dec, m->dec, m->ndec, quantized, m->cfg.dimension, B, T);
    t->ndec = m->ndec;
    memcpy(y, out, sizeof(float) * (size_t)B * T * ct_config_hop(&m->cfg));
    ct_tape_free(t);
    return 0;
}

void ct_model_quantize(ct_model *m, int32_t *codes, float *quantized, const float *latent, int B, int T, int n_q)
{
    ct_rvq_params rp;
    ct_rvq_params_default(&rp);
    ct_rvq_train_forward(m, quantized, codes, latent, B, T, n_q, &rp, NULL, 0);
}

/* ---- training path ---------------------------------------------------------------------------- */

static int count_distinct(const int32_t *codes, int n, int bins)
{
    unsigned char *seen = hafm_xcalloc((size_t)bins, 1);
    int distinct = 0;
    for (int i = 0; i < n; i++)
        if (!seen[codes[i]]) { seen[codes[i]] = 1; distinct++; }
    free(seen);
    return distinct;
}

int ct_tape_codes_used(const ct_tape *t) { return t->codes_used; }

void ct_tape_latent_stats(const ct_tape *t, double *spread, double *offset)
{
    *spread = t->latent_spread;
    *offset = t->latent_offset;
}

/* z [D][N]: RMS distance of the frames from their mean, and the length of the mean */
static void latent_stats(double *spread, double *offset, const float *z, int D, size_t N)
{
    double var = 0.0, mean2 = 0.0;
    for (int d = 0; d < D; d++) {
        const float *row = z + (size_t)d * N;
        double mu = 0.0, v = 0.0;
        for (size_t i = 0; i < N; i++) mu += row[i];
        mu /= (double)N;
        for (size_t i = 0; i < N; i++) v += (row[i] - mu) * (row[i] - mu);
        var += v / (double)N;
        mean2 += mu * mu;
    }
    *spread = sqrt(var);
    *offset = sqrt(mean2);
}

float ct_model_train_forward(ct_model *m, ct_tape *t, float *y, const float *x, int B, int L, int n_q,
                             const ct_rvq_params *rp, ct_rng *rng, int update_codebooks)
{
    tape_reset(t);
    fold_weights(m);
    const int D = m->cfg.dimension, hop = ct_config_hop(&m->cfg);
    t->B = B; t->L = L; t->n_q = n_q;
    t->z = run_forward(m, t, t->enc, m->enc, m->nenc, x, m->cfg.channels, B, L);
    t->nenc = m->nenc;
    int T = t->T = ct_conv_out_len(L, hop);
    size_t nz = (size_t)D * B * T;
    float commit = 0.0f;
    const float *dec_in = t->z;
    latent_stats(&t->latent_spread, &t->latent_offset, t->z, D, (size_t)B * T);
    if (n_q > 0) {
        t->q = falloc(nz);
        t->q0 = falloc(nz);
        int32_t *codes = hafm_xmalloc(sizeof(int32_t) * (size_t)n_q * B * T);
        commit = ct_rvq_train_forward(m, t->q, codes, t->z, B, T, n_q, rp, rng, update_codebooks);
        t->codes_used = count_distinct(codes, B * T, m->cfg.bins);
        /* stage 0 alone, for the commitment gradient */
        const float *e0 = ct_model_embed(m, 0);
        for (size_t f = 0; f < (size_t)B * T; f++)
            for (int d = 0; d < D; d++) t->q0[(size_t)d * B * T + f] = e0[(size_t)codes[f] * D + d];
        free(codes);
        dec_in = t->q;
    }
    t->ydec = run_forward(m, t, t->dec, m->dec, m->ndec, dec_in, D, B, T);
    t->ndec = m->ndec;
    for (int b = 0; b < B; b++) memcpy(y + (size_t)b * L, t->ydec + (size_t)b * T * hop, sizeof(float) * L);
    return commit;
}

void ct_model_train_backward(ct_model *m, ct_tape *t, const float *dy, float commit_weight)
{
    const int D = m->cfg.dimension, hop = ct_config_hop(&m->cfg);
    const int B = t->B, L = t->L, T = t->T;
    memset(m->dw, 0, m->nw * sizeof(float));
    float *dydec = fzero((size_t)B * T * hop);   /* the trimmed tail gets no gradient */
    for (int b = 0; b < B; b++) memcpy(dydec + (size_t)b * T * hop, dy + (size_t)b * L, sizeof(float) * L);
    float *dq = run_backward(m, t, t->dec, m->dec, m->ndec, dydec, B);
    float *dz = fzero((size_t)D * B * T);
    if (t->n_q > 0)
        ct_rvq_backward(dz, dq, t->z, t->q0, D, B * T, t->n_q, commit_weight);
    else
        memcpy(dz, dq, sizeof(float) * (size_t)D * B * T);
    free(dq);
    float *dx = run_backward(m, t, t->enc, m->enc, m->nenc, dz, B);
    free(dx);
    unfold_grads(m);
}
