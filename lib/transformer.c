/* transformer.c - stage model configuration, parameters, model files (formats/model.md), layout. */
#include "hafm/transformer.h"
#include "hafm/safetensors.h"
#include "hafm/sampling.h"
#include "hafm/linalg.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ------------------------------------------------------------------------------ */
static void stream_set(hafm_tf_stream *s, const char *name, int Q, int offset, int vocab, int rate)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->codebooks = Q;
    s->codebook_offset = offset;
    s->vocab = vocab;
    s->rate = rate;
}

int hafm_tf_config_paper(hafm_tf_config *c, int stage)
{
    memset(c, 0, sizeof *c);
    c->stage = stage;
    c->n_layer = 12;
    c->d_model = 512;
    c->n_head = 8;
    c->d_ff = 1365;
    c->rel_buckets = 32;
    c->rel_max_distance = 128;
    c->norm_eps = 1e-6f;
    c->window_seconds = 10.0;
    switch (stage) {
    case 1:
        c->n_cond = 1;
        stream_set(&c->cond[0], "vocal.semantic", 1, 0, 500, 50);
        stream_set(&c->target, "accomp.semantic", 1, 0, 500, 50);
        break;
    case 2:
        c->n_cond = 2;
        stream_set(&c->cond[0], "vocal.semantic", 1, 0, 500, 50);
        stream_set(&c->cond[1], "accomp.semantic", 1, 0, 500, 50);
        stream_set(&c->target, "accomp.coarse", 4, 0, 1024, 75);
        break;
    case 3:
        c->n_cond = 1;
        stream_set(&c->cond[0], "accomp.coarse", 4, 0, 1024, 75);
        stream_set(&c->target, "accomp.fine", 4, 4, 1024, 75);
        break;
    default:
        hafm_error("stage must be 1, 2 or 3, got %d", stage);
        return -1;
    }
    return 0;
}

static int gcd(int a, int b)
{
    while (b) { int t = a % b; a = b; b = t; }
    return a;
}

int hafm_tf_units_per_second(const hafm_tf_config *c)
{
    int g = c->target.rate;
    for (int i = 0; i < c->n_cond; i++) g = gcd(g, c->cond[i].rate);
    return g;
}

int hafm_tf_frames_per_unit(const hafm_tf_config *c, const hafm_tf_stream *s)
{
    return s->rate / hafm_tf_units_per_second(c);
}

int hafm_tf_window_units(const hafm_tf_config *c)
{
    return (int)lround(c->window_seconds * hafm_tf_units_per_second(c));
}

static int stream_validate(const hafm_tf_stream *s, const char *what)
{
    if (!s->name[0]) { hafm_error("model config: %s: empty track name", what); return -1; }
    if (s->codebooks < 1 || s->codebooks > 64) { hafm_error("model config: %s: codebooks must be 1..64", what); return -1; }
    if (s->codebook_offset < 0) { hafm_error("model config: %s: negative codebook_offset", what); return -1; }
    if (s->vocab < 1 || s->vocab > (1 << 20)) { hafm_error("model config: %s: vocab must be 1..1048576", what); return -1; }
    if (s->rate < 1 || s->rate > 100000) { hafm_error("model config: %s: rate must be 1..100000 Hz", what); return -1; }
    return 0;
}

int hafm_tf_config_validate(const hafm_tf_config *c)
{
    if (c->stage < 0 || c->stage > 3) { hafm_error("model config: stage must be 0..3"); return -1; }
    if (c->n_layer < 1 || c->n_layer > 256 || c->d_model < 1 || c->d_model > 16384 || c->n_head < 1 ||
        c->d_model % c->n_head || c->d_ff < 1 || c->d_ff > 65536) {
        hafm_error("model config: bad sizes (n_layer %d, d_model %d, n_head %d, d_ff %d)",
                   c->n_layer, c->d_model, c->n_head, c->d_ff);
        return -1;
    }
    if (c->rel_buckets < 2 || c->rel_buckets > 1024 || c->rel_max_distance <= c->rel_buckets / 2) {
        hafm_error("model config: rel_buckets must be 2..1024 and rel_max_distance > rel_buckets/2");
        return -1;
    }
    if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f)) { hafm_error("model config: norm_eps must be in (0, 1)"); return -1; }
    if (c->n_cond < 1 || c->n_cond > HAFM_TF_MAX_COND) { hafm_error("model config: 1 to %d conditions", HAFM_TF_MAX_COND); return -1; }
    for (int i = 0; i < c->n_cond; i++)
        if (stream_validate(&c->cond[i], "condition") < 0) return -1;
    if (stream_validate(&c->target, "target") < 0) return -1;
    const hafm_tf_sampling *sp = &c->sampling;
    if ((sp->has_cfg_scale && !(sp->cfg_scale >= 0.0f && sp->cfg_scale <= 100.0f)) ||
        (sp->has_temperature && !(sp->temperature >= 0.0f && sp->temperature <= 10.0f)) ||
        (sp->has_top_k && (sp->top_k < 0 || sp->top_k > (1 << 20))) ||
        (sp->has_top_p && !(sp->top_p > 0.0f && sp->top_p <= 1.0f))) {
        hafm_error("model config: sampling: cfg_scale must be 0..100, temperature 0..10, top_k 0..1048576, top_p in (0, 1]");
        return -1;
    }
    int ups = hafm_tf_units_per_second(c);
    double units = c->window_seconds * ups;
    if (!(units >= 1.0 && units <= 1e6) || fabs(units - lround(units)) > 1e-6) {
        hafm_error("model config: window_seconds %g is not a whole number of %d Hz units", c->window_seconds, ups);
        return -1;
    }
    return 0;
}

static cJSON *stream_json(const hafm_tf_stream *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddNumberToObject(o, "codebooks", s->codebooks);
    cJSON_AddNumberToObject(o, "codebook_offset", s->codebook_offset);
    cJSON_AddNumberToObject(o, "vocab", s->vocab);
    cJSON_AddNumberToObject(o, "rate", s->rate);
    return o;
}

char *hafm_tf_config_to_json(const hafm_tf_config *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "stage", c->stage);
    cJSON_AddNumberToObject(o, "n_layer", c->n_layer);
    cJSON_AddNumberToObject(o, "d_model", c->d_model);
    cJSON_AddNumberToObject(o, "n_head", c->n_head);
    cJSON_AddNumberToObject(o, "d_ff", c->d_ff);
    cJSON_AddNumberToObject(o, "rel_buckets", c->rel_buckets);
    cJSON_AddNumberToObject(o, "rel_max_distance", c->rel_max_distance);
    cJSON_AddNumberToObject(o, "norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(o, "window_seconds", c->window_seconds);
    cJSON *conds = cJSON_AddArrayToObject(o, "conditions");
    for (int i = 0; i < c->n_cond; i++) cJSON_AddItemToArray(conds, stream_json(&c->cond[i]));
    cJSON_AddItemToObject(o, "target", stream_json(&c->target));
    if (c->aligned_conditioning) cJSON_AddBoolToObject(o, "aligned_conditioning", 1);
    const hafm_tf_sampling *sp = &c->sampling;
    if (sp->has_cfg_scale || sp->has_temperature || sp->has_top_k || sp->has_top_p) {
        cJSON *so = cJSON_AddObjectToObject(o, "sampling");
        if (sp->has_cfg_scale) cJSON_AddNumberToObject(so, "cfg_scale", sp->cfg_scale);
        if (sp->has_temperature) cJSON_AddNumberToObject(so, "temperature", sp->temperature);
        if (sp->has_top_k) cJSON_AddNumberToObject(so, "top_k", sp->top_k);
        if (sp->has_top_p) cJSON_AddNumberToObject(so, "top_p", sp->top_p);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *r = hafm_xstrdup(s);
    cJSON_free(s);
    return r;
}

static int json_int(const cJSON *o, const char *key, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e9) {
        hafm_error("model config: '%s' must be an integer", key);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

static int json_stream(const cJSON *o, hafm_tf_stream *s)
{
    memset(s, 0, sizeof *s);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (!cJSON_IsObject(o) || !cJSON_IsString(n) || strlen(n->valuestring) >= sizeof s->name) {
        hafm_error("model config: a stream needs a 'name' (at most 64 bytes)");
        return -1;
    }
    strcpy(s->name, n->valuestring);
    if (json_int(o, "codebooks", &s->codebooks) < 0 || json_int(o, "vocab", &s->vocab) < 0 ||
        json_int(o, "rate", &s->rate) < 0)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(o, "codebook_offset") && json_int(o, "codebook_offset", &s->codebook_offset) < 0)
        return -1;
    return 0;
}

/* Keys of "sampling" are each optional; unknown ones are ignored like other optional config keys. */
static int json_sampling(const cJSON *o, hafm_tf_sampling *s)
{
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(o)) {
        hafm_error("model config: 'sampling' must be an object");
        return -1;
    }
    static const char *const keys[] = { "cfg_scale", "temperature", "top_k", "top_p" };
    int *has[] = { &s->has_cfg_scale, &s->has_temperature, &s->has_top_k, &s->has_top_p };
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!v) continue;
        if (!cJSON_IsNumber(v) || (i == 2 && v->valuedouble != floor(v->valuedouble))) {
            hafm_error("model config: sampling: '%s' must be a%s number", keys[i], i == 2 ? "n integer" : "");
            return -1;
        }
        *has[i] = 1;
        double x = v->valuedouble;
        switch (i) {
        case 0: s->cfg_scale = (float)x; break;
        case 1: s->temperature = (float)x; break;
        case 2: s->top_k = fabs(x) <= 1e9 ? (int)x : -1; break;
        case 3: s->top_p = (float)x; break;
        }
    }
    return 0;
}

int hafm_tf_sampling_from_json(hafm_tf_sampling *s, const char *json)
{
    cJSON *o = cJSON_Parse(json);
    int rc = json_sampling(o, s);
    cJSON_Delete(o);
    if (rc == 0) {
        hafm_tf_config c;   /* the ranges are checked in one place */
        hafm_tf_config_paper(&c, 1);
        c.sampling = *s;
        rc = hafm_tf_config_validate(&c);
    }
    return rc;
}

int hafm_tf_config_from_json(hafm_tf_config *c, const char *json)
{
    memset(c, 0, sizeof *c);
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        hafm_error("model config: not a JSON object");
        return -1;
    }
    int rc = -1;
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(o, "norm_eps");
    const cJSON *win = cJSON_GetObjectItemCaseSensitive(o, "window_seconds");
    const cJSON *conds = cJSON_GetObjectItemCaseSensitive(o, "conditions");
    if (json_int(o, "stage", &c->stage) < 0 || json_int(o, "n_layer", &c->n_layer) < 0 ||
        json_int(o, "d_model", &c->d_model) < 0 || json_int(o, "n_head", &c->n_head) < 0 ||
        json_int(o, "d_ff", &c->d_ff) < 0 || json_int(o, "rel_buckets", &c->rel_buckets) < 0 ||
        json_int(o, "rel_max_distance", &c->rel_max_distance) < 0)
        goto out;
    if (!cJSON_IsNumber(eps) || !cJSON_IsNumber(win)) {
        hafm_error("model config: 'norm_eps' and 'window_seconds' must be numbers");
        goto out;
    }
    c->norm_eps = (float)eps->valuedouble;
    c->window_seconds = win->valuedouble;
    if (!cJSON_IsArray(conds) || cJSON_GetArraySize(conds) < 1 || cJSON_GetArraySize(conds) > HAFM_TF_MAX_COND) {
        hafm_error("model config: 'conditions' must be an array of 1 to %d streams", HAFM_TF_MAX_COND);
        goto out;
    }
    c->n_cond = cJSON_GetArraySize(conds);
    for (int i = 0; i < c->n_cond; i++)
        if (json_stream(cJSON_GetArrayItem(conds, i), &c->cond[i]) < 0) goto out;
    if (json_stream(cJSON_GetObjectItemCaseSensitive(o, "target"), &c->target) < 0) goto out;
    const cJSON *samp = cJSON_GetObjectItemCaseSensitive(o, "sampling");
    if (samp && json_sampling(samp, &c->sampling) < 0) goto out;
    const cJSON *aligned = cJSON_GetObjectItemCaseSensitive(o, "aligned_conditioning");
    if (aligned && !cJSON_IsBool(aligned)) {
        hafm_error("model config: 'aligned_conditioning' must be true or false");
        goto out;
    }
    c->aligned_conditioning = cJSON_IsTrue(aligned);
    rc = hafm_tf_config_validate(c);
out:
    cJSON_Delete(o);
    return rc;
}

/* ---- parameters ----------------------------------------------------------------------------------- */
static void add_tensor(hafm_tf_model *m, int *cap, const char *name, int ndim, int64_t d0, int64_t d1, int decay)
{
    if (m->n_tensors == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        m->tensors = hafm_xrealloc(m->tensors, (size_t)*cap * sizeof *m->tensors);
    }
    hafm_tf_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 1;
    t->numel = (size_t)d0 * (size_t)t->shape[1];
    t->offset = m->n_params;
    t->decay = decay;
    m->n_params += t->numel;
}

hafm_tf_model *hafm_tf_new(const hafm_tf_config *c)
{
    if (hafm_tf_config_validate(c) < 0) return NULL;
    hafm_tf_model *m = hafm_xcalloc(1, sizeof *m);
    m->cfg = *c;
    int d = c->d_model, hd = d / c->n_head, cap = 0;
    char name[48];
    for (int i = 0; i < c->n_cond; i++) m->n_tables += c->cond[i].codebooks;
    m->n_tables += c->target.codebooks;
    m->table_rows = hafm_xmalloc((size_t)m->n_tables * sizeof *m->table_rows);
    int t = 0;
    for (int i = 0; i < c->n_cond; i++)
        for (int q = 0; q < c->cond[i].codebooks; q++) {
            snprintf(name, sizeof name, "cond.%d.emb.%d", i, q);
            m->table_rows[t++] = c->cond[i].vocab + 1;
            add_tensor(m, &cap, name, 2, c->cond[i].vocab + 1, d, 1);
        }
    for (int q = 0; q < c->target.codebooks; q++) {
        snprintf(name, sizeof name, "target.emb.%d", q);
        m->table_rows[t++] = c->target.vocab;
        add_tensor(m, &cap, name, 2, c->target.vocab, d, 1);
    }
    add_tensor(m, &cap, "sep", 1, d, 0, 0);
    add_tensor(m, &cap, "seg", 2, c->n_cond + 1, d, 0);
    add_tensor(m, &cap, "rel_bias", 2, c->rel_buckets, c->n_head, 0);
    for (int l = 0; l < c->n_layer; l++) {
#define T1(suffix, n) (snprintf(name, sizeof name, "layers.%d.%s", l, suffix), add_tensor(m, &cap, name, 1, n, 0, 0))
#define T2(suffix, a, b) (snprintf(name, sizeof name, "layers.%d.%s", l, suffix), add_tensor(m, &cap, name, 2, a, b, 1))
        T1("attn_norm", d);
        T2("qkv.weight", 3 * d, d);
        T1("qkv.bias", 3 * d);
        T1("q_norm", hd);
        T1("k_norm", hd);
        T2("out.weight", d, d);
        T1("out.bias", d);
        T1("ffn_norm", d);
        T2("ffn_in.weight", 2 * c->d_ff, d);
        T1("ffn_in.bias", 2 * c->d_ff);
        T2("ffn_out.weight", d, c->d_ff);
        T1("ffn_out.bias", d);
#undef T1
#undef T2
    }
    add_tensor(m, &cap, "out_norm", 1, d, 0, 0);
    for (int q = 0; q < c->target.codebooks; q++) {
        snprintf(name, sizeof name, "head.%d.weight", q);
        add_tensor(m, &cap, name, 2, c->target.vocab, d, 1);
        snprintf(name, sizeof name, "head.%d.bias", q);
        add_tensor(m, &cap, name, 1, c->target.vocab, 0, 0);
    }
    m->params = hafm_stream_alloc(m->n_params * sizeof(float));
    memset(m->params, 0, m->n_params * sizeof(float));
    hafm_tf_views(m, m->params, &m->w);
    return m;
}

void hafm_tf_views(const hafm_tf_model *m, float *base, hafm_tf_weights *w)
{
    const hafm_tf_config *c = &m->cfg;
    const hafm_tf_tensor *t = m->tensors;
    w->emb = hafm_xmalloc((size_t)m->n_tables * sizeof *w->emb);
    for (int i = 0; i < m->n_tables; i++) w->emb[i] = base + (t++)->offset;
    w->sep = base + (t++)->offset;
    w->seg = base + (t++)->offset;
    w->rel_bias = base + (t++)->offset;
    w->layers = hafm_xmalloc((size_t)c->n_layer * sizeof *w->layers);
    for (int l = 0; l < c->n_layer; l++) {
        hafm_tf_layer *L = &w->layers[l];
        float **order[] = { &L->attn_norm, &L->qkv_w, &L->qkv_b, &L->q_norm, &L->k_norm, &L->out_w, &L->out_b,
                            &L->ffn_norm, &L->ffn_in_w, &L->ffn_in_b, &L->ffn_out_w, &L->ffn_out_b };
        for (size_t i = 0; i < sizeof order / sizeof *order; i++) *order[i] = base + (t++)->offset;
    }
    w->out_norm = base + (t++)->offset;
    w->head_w = hafm_xmalloc((size_t)c->target.codebooks * sizeof *w->head_w);
    w->head_b = hafm_xmalloc((size_t)c->target.codebooks * sizeof *w->head_b);
    for (int q = 0; q < c->target.codebooks; q++) {
        w->head_w[q] = base + (t++)->offset;
        w->head_b[q] = base + (t++)->offset;
    }
}

void hafm_tf_free_views(hafm_tf_weights *w)
{
    free(w->emb);
    free(w->layers);
    free(w->head_w);
    free(w->head_b);
    memset(w, 0, sizeof *w);
}

void hafm_tf_free(hafm_tf_model *m)
{
    if (!m) return;
    hafm_tf_free_views(&m->w);
    free(m->tensors);
    free(m->table_rows);
    free(m->params);
    free(m->params_bf16);
    free(m);
}

void hafm_tf_init_random(hafm_tf_model *m, uint64_t seed)
{
    hafm_rand rng;
    hafm_rand_seed(&rng, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const hafm_tf_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const char *n = t->name;
        size_t len = strlen(n);
        int is_norm = (len >= 4 && strcmp(n + len - 4, "norm") == 0);
        int is_bias = (len >= 4 && strcmp(n + len - 4, "bias") == 0 && strcmp(n, "rel_bias") != 0);
        for (size_t j = 0; j < t->numel; j++)
            p[j] = is_norm ? 1.0f : is_bias ? 0.0f : 0.02f * hafm_rand_normal(&rng);
    }
    free(m->params_bf16);
    m->params_bf16 = NULL;
}

void hafm_tf_enable_bf16(hafm_tf_model *m)
{
    if (m->params_bf16) return;
    m->params_bf16 = hafm_stream_alloc(m->n_params * sizeof(uint16_t));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m->n_params; i++) m->params_bf16[i] = hafm_f32_to_bf16(m->params[i]);
}

/* ---- model files ------------------------------------------------------------------------------------ */
hafm_tf_model *hafm_tf_load_st(const hafm_safetensors *st, int stage)
{
    const char *path = hafm_st_path(st);
    const char *fmt = hafm_st_meta(st, "format"), *ver = hafm_st_meta(st, "format_version");
    const char *cfg_json = hafm_st_meta(st, "config");
    if (!fmt || strcmp(fmt, "hafm-stage") != 0) {
        hafm_error("%s: not a hafm stage model (metadata 'format' is not 'hafm-stage')", path);
        return NULL;
    }
    if (!ver || (strcmp(ver, "1") != 0 && strcmp(ver, "2") != 0)) {
        hafm_error("%s: unsupported model format_version '%s' (this reader knows 1 and 2)", path, ver ? ver : "");
        return NULL;
    }
    if (!cfg_json) {
        hafm_error("%s: no 'config' in the metadata", path);
        return NULL;
    }
    hafm_tf_config c;
    if (hafm_tf_config_from_json(&c, cfg_json) < 0) {
        hafm_error_prefix("%s", path);
        return NULL;
    }
    if (stage > 0 && c.stage != stage) {
        hafm_error("%s: this is a stage %d model, not stage %d", path, c.stage, stage);
        return NULL;
    }
    hafm_tf_model *m = hafm_tf_new(&c);
    if (!m) return NULL;
    for (int i = 0; i < m->n_tensors; i++) {
        const hafm_tf_tensor *t = &m->tensors[i];
        if (hafm_st_read_f32(st, t->name, m->params + t->offset, t->ndim, t->shape) < 0) {
            hafm_tf_free(m);
            return NULL;
        }
    }
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(m->params[i])) {
            hafm_error("%s: non-finite parameter value", path);
            hafm_tf_free(m);
            return NULL;
        }
    return m;
}

hafm_tf_model *hafm_tf_load(const char *path, int stage)
{
    hafm_safetensors *st = hafm_st_open(path);
    if (!st) return NULL;
    hafm_tf_model *m = hafm_tf_load_st(st, stage);
    hafm_st_close(st);
    return m;
}

int hafm_tf_add_to_writer(const hafm_tf_model *m, void *writer, hafm_dtype stored_as)
{
    hafm_st_writer *w = writer;
    char *json = hafm_tf_config_to_json(&m->cfg);
    int rc = hafm_st_writer_meta(w, "format", "hafm-stage");
    /* version 1 readers would ignore aligned conditioning and compute another model */
    if (rc == 0) rc = hafm_st_writer_meta(w, "format_version", m->cfg.aligned_conditioning ? "2" : "1");
    if (rc == 0) rc = hafm_st_writer_meta(w, "config", json);
    free(json);
    for (int i = 0; rc == 0 && i < m->n_tensors; i++) {
        const hafm_tf_tensor *t = &m->tensors[i];
        rc = hafm_st_writer_add_f32(w, t->name, stored_as, t->ndim, t->shape, m->params + t->offset);
    }
    return rc;
}

/* ---- layout -------------------------------------------------------------------------------------- */
int hafm_tf_layout_init(hafm_tf_layout *lay, const hafm_tf_config *c, int n_units)
{
    memset(lay, 0, sizeof *lay);
    if (n_units < 1) {
        hafm_error("a sequence needs at least one time unit");
        return -1;
    }
    int64_t L = 1;
    for (int i = 0; i < c->n_cond; i++)
        L += (int64_t)n_units * hafm_tf_frames_per_unit(c, &c->cond[i]) * c->cond[i].codebooks;
    int64_t nt = (int64_t)n_units * hafm_tf_frames_per_unit(c, &c->target) * c->target.codebooks;
    L += nt;
    if (L > (1 << 24)) {
        hafm_error("sequence of %lld positions is too long", (long long)L);
        return -1;
    }
    lay->n_units = n_units;
    lay->L = (int)L;
    lay->n_target = (int)nt;
    lay->target_start = (int)(L - nt);
    lay->table = hafm_xmalloc((size_t)L * sizeof *lay->table);
    lay->seg = hafm_xmalloc((size_t)L * sizeof *lay->seg);
    int p = 0, t0 = 0;
    for (int i = 0; i < c->n_cond; i++) {
        const hafm_tf_stream *s = &c->cond[i];
        int F = n_units * hafm_tf_frames_per_unit(c, s);
        lay->stream_start[i] = p;
        for (int f = 0; f < F; f++)
            for (int q = 0; q < s->codebooks; q++) {
                lay->table[p] = t0 + q;
                lay->seg[p++] = i;
            }
        t0 += s->codebooks;
    }
    lay->table[p] = -1;
    lay->seg[p++] = c->n_cond;
    lay->stream_start[c->n_cond] = p;
    for (int i = 0; i < lay->n_target; i++) {
        lay->table[p] = t0 + i % c->target.codebooks;
        lay->seg[p++] = c->n_cond;
    }
    if (c->aligned_conditioning) {
        /* row r is position target_start - 1 + r, which predicts target token r (the last
         * position predicts nothing and takes the last frame's conditioning) */
        for (int i = 0; i < c->n_cond; i++) lay->n_align += c->cond[i].codebooks;
        int Qt = c->target.codebooks, Ft = lay->n_target / Qt, fpu_t = hafm_tf_frames_per_unit(c, &c->target);
        lay->align = hafm_xmalloc((size_t)(lay->n_target + 1) * lay->n_align * sizeof *lay->align);
        for (int r = 0; r <= lay->n_target; r++) {
            int f = r / Qt < Ft ? r / Qt : Ft - 1, *a = lay->align + (size_t)r * lay->n_align;
            for (int i = 0; i < c->n_cond; i++) {
                const hafm_tf_stream *s = &c->cond[i];
                int fpu = hafm_tf_frames_per_unit(c, s);
                int fc = f / fpu_t * fpu + f % fpu_t * fpu / fpu_t;   /* floor(f * rate_c / rate_t) */
                for (int q = 0; q < s->codebooks; q++) *a++ = lay->stream_start[i] + fc * s->codebooks + q;
            }
        }
    }
    return 0;
}

void hafm_tf_layout_free(hafm_tf_layout *lay)
{
    free(lay->table);
    free(lay->seg);
    free(lay->align);
    memset(lay, 0, sizeof *lay);
}

int hafm_tf_null_token(const hafm_tf_model *m, int table) { return m->table_rows[table] - 1; }
