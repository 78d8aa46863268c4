/* codec_train_io.c - the trainer's weight files in the original facebookresearch/encodec naming
 * (weight_g/weight_v, every codebook buffer, the config as JSON in __metadata__). */
#include "hafm/codec_train.h"
#include "hafm/common.h"
#include "hafm/safetensors.h"

#include <cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- weight files ----------------------------------------------------------------------------- */

static void codebook_name(char *buf, size_t n, int k, const char *what)
{
    snprintf(buf, n, "quantizer.vq.layers.%d._codebook.%s", k, what);
}

/* The Hugging Face transformers name of an original state-dict name (SPEC.md section 7), with
 * weight_g/weight_v or, when parametrized, parametrizations.weight.original0/original1. */
static void hf_name(char *out, size_t n, const char *orig, int parametrized)
{
    char buf[160];
    const char *rest;
    if (!strncmp(orig, "quantizer.vq.layers.", 20)) {
        snprintf(buf, sizeof buf, "quantizer.layers.%s", orig + 20);
        char *cb = strstr(buf, "._codebook.");
        if (cb) memmove(cb + 1, cb + 2, strlen(cb + 2) + 1);   /* "._codebook." -> ".codebook." */
    } else if ((rest = strstr(orig, ".model.")) && rest == strchr(orig, '.')) {
        snprintf(buf, sizeof buf, "%.*s.layers.%s", (int)(rest - orig), orig, rest + 7);
    } else {
        snprintf(buf, sizeof buf, "%s", orig);
    }
    static const char *pairs[][2] = {{".conv.conv.", ".conv."}, {".convtr.convtr.", ".conv."}};
    for (int i = 0; i < 2; i++) {
        char *p = strstr(buf, pairs[i][0]);
        if (!p) continue;
        memmove(p + strlen(pairs[i][1]), p + strlen(pairs[i][0]), strlen(p + strlen(pairs[i][0])) + 1);
        memcpy(p, pairs[i][1], strlen(pairs[i][1]));
    }
    if (parametrized) {
        char *p = strstr(buf, ".weight_g");
        const char *repl = ".parametrizations.weight.original0";
        if (!p) { p = strstr(buf, ".weight_v"); repl = ".parametrizations.weight.original1"; }
        if (p) { snprintf(out, n, "%.*s%s", (int)(p - buf), buf, repl); return; }
    }
    snprintf(out, n, "%s", buf);
}

/* Reads tensor `name` under its original name or either Hugging Face spelling. */
static int read_named(const hafm_safetensors *st, const char *name, float *out, int ndim, const int64_t *shape)
{
    char alt[192];
    if (hafm_st_find(st, name)) return hafm_st_read_f32(st, name, out, ndim, shape);
    for (int parametrized = 0; parametrized < 2; parametrized++) {
        hf_name(alt, sizeof alt, name, parametrized);
        if (hafm_st_find(st, alt)) return hafm_st_read_f32(st, alt, out, ndim, shape);
    }
    return hafm_st_read_f32(st, name, out, ndim, shape);   /* fails, naming the missing tensor */
}

int ct_model_read_tensors(ct_model *m, const hafm_safetensors *st)
{
    for (int i = 0; i < ct_model_ntensors(m); i++) {
        const ct_tensor *t = ct_model_tensor(m, i);
        if (read_named(st, t->name, ct_model_params(m) + t->offset, t->ndim, t->shape)) return -1;
    }
    const int D = ct_model_config(m)->dimension, bins = ct_model_config(m)->bins;
    for (int k = 0; k < ct_model_config(m)->n_q; k++) {
        char name[96];
        int64_t s1[1] = {1}, sb[1] = {bins}, se[2] = {bins, D};
        float inited;
        codebook_name(name, sizeof name, k, "inited");
        if (read_named(st, name, &inited, 1, s1)) return -1;
        *ct_model_inited(m, k) = inited != 0.0f;
        codebook_name(name, sizeof name, k, "cluster_size");
        if (read_named(st, name, ct_model_cluster_size(m, k), 1, sb)) return -1;
        codebook_name(name, sizeof name, k, "embed");
        if (read_named(st, name, ct_model_embed(m, k), 2, se)) return -1;
        codebook_name(name, sizeof name, k, "embed_avg");
        if (read_named(st, name, ct_model_embed_avg(m, k), 2, se)) return -1;
    }
    return 0;
}

int ct_model_load(ct_model *m, const char *path)
{
    hafm_safetensors *st = hafm_st_open(path);
    if (!st) return -1;
    int rc = ct_model_read_tensors(m, st);
    hafm_st_close(st);
    return rc;
}

/* EncodecConfig (transformers) -> ct_config. n_q as transformers computes it (10 bits). */
static int config_from_hf(ct_config *c, const char *json)
{
    cJSON *o = cJSON_Parse(json);
    if (!o) { hafm_error("config: not JSON"); return -1; }
    ct_config_default(c);
    static const struct { const char *key; size_t off; } ints[] = {
        {"sampling_rate", offsetof(ct_config, sample_rate)}, {"audio_channels", offsetof(ct_config, channels)},
        {"hidden_size", offsetof(ct_config, dimension)}, {"num_filters", offsetof(ct_config, n_filters)},
        {"num_residual_layers", offsetof(ct_config, n_residual_layers)}, {"kernel_size", offsetof(ct_config, kernel_size)},
        {"last_kernel_size", offsetof(ct_config, last_kernel_size)},
        {"residual_kernel_size", offsetof(ct_config, residual_kernel_size)},
        {"dilation_growth_rate", offsetof(ct_config, dilation_base)}, {"compress", offsetof(ct_config, compress)},
        {"num_lstm_layers", offsetof(ct_config, lstm_layers)}, {"codebook_size", offsetof(ct_config, bins)}};
    int rc = -1;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, ints[i].key);
        if (!it) continue;
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 1e6) {
            hafm_error("config: '%s' must be an integer of at most 1e6", ints[i].key);
            goto out;
        }
        *(int *)((char *)c + ints[i].off) = (int)it->valuedouble;
    }
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "upsampling_ratios");
    if (r) {
        if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) < 1 || cJSON_GetArraySize(r) > CT_MAX_RATIOS) {
            hafm_error("config: bad 'upsampling_ratios'");
            goto out;
        }
        c->n_ratios = cJSON_GetArraySize(r);
        for (int i = 0; i < c->n_ratios; i++) {
            const cJSON *e = cJSON_GetArrayItem(r, i);
            if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 1 || e->valuedouble > 64) {
                hafm_error("config: 'upsampling_ratios' must hold integers from 1 to 64");
                goto out;
            }
            c->ratios[i] = (int)e->valuedouble;
        }
    }
    const cJSON *bw = cJSON_GetObjectItemCaseSensitive(o, "target_bandwidths");
    if (bw) {
        if (!cJSON_IsArray(bw) || cJSON_GetArraySize(bw) < 1 || cJSON_GetArraySize(bw) > CT_MAX_BW) {
            hafm_error("config: bad 'target_bandwidths'");
            goto out;
        }
        c->n_bw = cJSON_GetArraySize(bw);
        for (int i = 0; i < c->n_bw; i++) {
            const cJSON *e = cJSON_GetArrayItem(bw, i);
            if (!cJSON_IsNumber(e)) { hafm_error("config: 'target_bandwidths' must hold numbers"); goto out; }
            c->target_bandwidths[i] = e->valuedouble;
        }
    }
    const cJSON *shortcut = cJSON_GetObjectItemCaseSensitive(o, "use_conv_shortcut");
    const cJSON *causal = cJSON_GetObjectItemCaseSensitive(o, "use_causal_conv");
    if ((shortcut && !cJSON_IsTrue(shortcut)) || (causal && !cJSON_IsTrue(causal))) {
        hafm_error("config: only causal models with conv shortcuts are supported");
        goto out;
    }
    c->n_q = (int)floor(1000.0 * c->target_bandwidths[c->n_bw - 1] / (ct_config_frame_rate(c) * 10.0));
    rc = ct_config_check(c);
out:
    cJSON_Delete(o);
    return rc;
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n + 4096 + 1 > cap) buf = hafm_xrealloc(buf, cap = 2 * cap + 4096 + 1);
        got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
    } while (got > 0 && n < (1u << 20));
    fclose(fp);
    buf[n] = 0;
    return buf;
}

ct_model *ct_model_open(const char *path)
{
    hafm_safetensors *st = hafm_st_open(path);
    if (!st) return NULL;
    ct_config cfg;
    int rc;
    const char *json = hafm_st_meta(st, "config"), *hf = hafm_st_meta(st, "hf_config");
    if (json) {
        rc = ct_config_from_json(&cfg, json);
    } else if (hf) {
        rc = config_from_hf(&cfg, hf);
    } else {
        /* a Hugging Face checkpoint: config.json beside the weights */
        char cpath[4096];
        const char *slash = strrchr(path, '/');
        snprintf(cpath, sizeof cpath, "%.*sconfig.json", slash ? (int)(slash - path + 1) : 0, path);
        char *text = read_text(cpath);
        if (!text) {
            hafm_error("%s: no 'config' in the metadata and no %s", path, cpath);
            hafm_st_close(st);
            return NULL;
        }
        rc = config_from_hf(&cfg, text);
        free(text);
    }
    hafm_st_close(st);
    if (rc) { hafm_error_prefix("%s", path); return NULL; }
    ct_model *m = ct_model_new(&cfg);
    if (!m) { hafm_error_prefix("%s", path); return NULL; }
    if (ct_model_load(m, path)) { ct_model_free(m); return NULL; }
    return m;
}

static int save_params(hafm_st_writer *w, ct_model *m, const char *prefix)
{
    size_t plen = strlen(prefix);
    for (int i = 0; i < ct_model_ntensors(m); i++) {
        const ct_tensor *t = ct_model_tensor(m, i);
        if (strncmp(t->name, prefix, plen)) continue;
        if (hafm_st_writer_add_f32(w, t->name, HAFM_DT_F32, t->ndim, t->shape, ct_model_params(m) + t->offset)) return -1;
    }
    return 0;
}

int ct_model_write_tensors(ct_model *m, hafm_st_writer *w)
{
    /* state-dict order of EncodecModel: encoder, quantizer, decoder */
    if (save_params(w, m, "encoder.")) return -1;
    const int D = ct_model_config(m)->dimension, bins = ct_model_config(m)->bins;
    for (int k = 0; k < ct_model_config(m)->n_q; k++) {
        char name[96];
        int64_t s1[1] = {1}, sb[1] = {bins}, se[2] = {bins, D};
        float inited = *ct_model_inited(m, k) ? 1.0f : 0.0f;
        codebook_name(name, sizeof name, k, "inited");
        if (hafm_st_writer_add_f32(w, name, HAFM_DT_F32, 1, s1, &inited)) return -1;
        codebook_name(name, sizeof name, k, "cluster_size");
        if (hafm_st_writer_add_f32(w, name, HAFM_DT_F32, 1, sb, ct_model_cluster_size(m, k))) return -1;
        codebook_name(name, sizeof name, k, "embed");
        if (hafm_st_writer_add_f32(w, name, HAFM_DT_F32, 2, se, ct_model_embed(m, k))) return -1;
        codebook_name(name, sizeof name, k, "embed_avg");
        if (hafm_st_writer_add_f32(w, name, HAFM_DT_F32, 2, se, ct_model_embed_avg(m, k))) return -1;
    }
    return save_params(w, m, "decoder.");
}

int ct_model_save(const ct_model *cm, const char *path, const char *const *extra_meta)
{
    ct_model *m = (ct_model *)cm;   /* the accessors are not const; nothing is modified */
    hafm_st_writer *w = hafm_st_writer_new();
    int rc = -1;
    char *cfg = ct_config_to_json(ct_model_config(m));
    if (ct_model_write_tensors(m, w)) goto out;
    if (hafm_st_writer_meta(w, "format", "pt") || hafm_st_writer_meta(w, "naming", "original (facebookresearch/encodec state_dict)") ||
        hafm_st_writer_meta(w, "config", cfg))
        goto out;
    for (int i = 0; extra_meta && extra_meta[i]; i += 2)
        if (hafm_st_writer_meta(w, extra_meta[i], extra_meta[i + 1])) goto out;
    rc = hafm_st_writer_save(w, path);
out:
    free(cfg);
    hafm_st_writer_free(w);
    return rc;
}
