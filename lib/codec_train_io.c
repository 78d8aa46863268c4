/* codec_train_io.c - the trainer's weight files in the original facebookresearch/encodec naming
 * (weight_g/weight_v, every codebook buffer, the config as JSON in __metadata__). */
#include "hafm/codec_train.h"
#include "hafm/common.h"
#include "hafm/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- weight files ----------------------------------------------------------------------------- */

static void codebook_name(char *buf, size_t n, int k, const char *what)
{
    snprintf(buf, n, "quantizer.vq.layers.%d._codebook.%s", k, what);
}

int ct_model_read_tensors(ct_model *m, const hafm_safetensors *st)
{
    int rc = -1;
    for (int i = 0; i < ct_model_ntensors(m); i++) {
        const ct_tensor *t = ct_model_tensor(m, i);
        if (hafm_st_read_f32(st, t->name, ct_model_params(m) + t->offset, t->ndim, t->shape)) goto out;
    }
    const int D = ct_model_config(m)->dimension, bins = ct_model_config(m)->bins;
    for (int k = 0; k < ct_model_config(m)->n_q; k++) {
        char name[96];
        int64_t s1[1] = {1}, sb[1] = {bins}, se[2] = {bins, D};
        float inited;
        codebook_name(name, sizeof name, k, "inited");
        if (hafm_st_read_f32(st, name, &inited, 1, s1)) goto out;
        *ct_model_inited(m, k) = inited != 0.0f;
        codebook_name(name, sizeof name, k, "cluster_size");
        if (hafm_st_read_f32(st, name, ct_model_cluster_size(m, k), 1, sb)) goto out;
        codebook_name(name, sizeof name, k, "embed");
        if (hafm_st_read_f32(st, name, ct_model_embed(m, k), 2, se)) goto out;
        codebook_name(name, sizeof name, k, "embed_avg");
        if (hafm_st_read_f32(st, name, ct_model_embed_avg(m, k), 2, se)) goto out;
    }
    rc = 0;
out:
    return rc;
}

int ct_model_load(ct_model *m, const char *path)
{
    hafm_safetensors *st = hafm_st_open(path);
    if (!st) return -1;
    int rc = ct_model_read_tensors(m, st);
    hafm_st_close(st);
    return rc;
}

ct_model *ct_model_open(const char *path)
{
    hafm_safetensors *st = hafm_st_open(path);
    if (!st) return NULL;
    const char *json = hafm_st_meta(st, "config");
    ct_config cfg;
    if (!json) {
        hafm_error("%s: no 'config' in the metadata", path);
        hafm_st_close(st);
        return NULL;
    }
    if (ct_config_from_json(&cfg, json)) {
        hafm_error_prefix("%s", path);
        hafm_st_close(st);
        return NULL;
    }
    hafm_st_close(st);
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
