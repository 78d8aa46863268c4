/* encodec.c - EnCodec model: configuration, weight loading in every naming, streaming SEANet
 * encoder/decoder, quantiser (see hafm/encodec.h and ../shared/golden/encodec/SPEC.md). */
#include "hafm/encodec.h"
#include "hafm/conv1d.h"
#include "hafm/linalg.h"
#include "hafm/rvq.h"
#include "hafm/safetensors.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ================================ configuration ================================ */

static void config_defaults(hafm_encodec_config *c)
{
    /* EncodecModel.encodec_model_24khz() / transformers EncodecConfig defaults */
    memset(c, 0, sizeof *c);
    c->sample_rate = 24000;
    c->channels = 1;
    c->dimension = 128;
    c->n_filters = 32;
    c->n_residual_layers = 1;
    c->nratios = 4;
    c->ratios[0] = 8; c->ratios[1] = 5; c->ratios[2] = 4; c->ratios[3] = 2;
    c->kernel_size = 7;
    c->last_kernel_size = 7;
    c->residual_kernel_size = 3;
    c->dilation_base = 2;
    c->compress = 2;
    c->lstm_layers = 2;
    c->true_skip = 0;
    c->bins = 1024;
    c->n_q = -1;
    c->nbw = 5;
    c->bandwidths[0] = 1.5; c->bandwidths[1] = 3; c->bandwidths[2] = 6;
    c->bandwidths[3] = 12; c->bandwidths[4] = 24;
}

static int json_int(const cJSON *o, const char *key, int *out, int lo, int hi, const char *src)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsBool(v)) { *out = cJSON_IsTrue(v); return 0; }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        hafm_error("%s: '%s' must be an integer in [%d, %d]", src, key, lo, hi);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

static int json_bool(const cJSON *o, const char *key, int *out, const char *src)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) { hafm_error("%s: '%s' must be true or false", src, key); return -1; }
    *out = cJSON_IsTrue(v);
    return 0;
}

static int json_int_array(const cJSON *o, const char *key, int *out, int *n, int max, const char *src)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    int len = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (len < 1 || len > max) { hafm_error("%s: '%s' must be an array of 1 to %d integers", src, key, max); return -1; }
    for (int i = 0; i < len; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > 64 || e->valuedouble != floor(e->valuedouble)) {
            hafm_error("%s: '%s' must hold integers in [1, 64]", src, key);
            return -1;
        }
        out[i] = (int)e->valuedouble;
    }
    *n = len;
    return 0;
}

static int json_bw_array(const cJSON *o, const char *key, hafm_encodec_config *c, const char *src)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    int len = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (len < 1 || len > HAFM_ENCODEC_MAX_BW) {
        hafm_error("%s: '%s' must be an array of 1 to %d bandwidths", src, key, HAFM_ENCODEC_MAX_BW);
        return -1;
    }
    for (int i = 0; i < len; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e) || !(e->valuedouble > 0 && e->valuedouble < 1e4)) {
            hafm_error("%s: '%s' must hold positive numbers", src, key);
            return -1;
        }
        c->bandwidths[i] = e->valuedouble;
    }
    c->nbw = len;
    return 0;
}

static int json_expect_str(const cJSON *o, const char *key, const char *want, const char *src)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v) || strcmp(v->valuestring, want) != 0) {
        hafm_error("%s: '%s' must be \"%s\" (only the causal weight-norm 24 kHz family is supported)", src, key, want);
        return -1;
    }
    return 0;
}

/* The reference's own config (safetensors metadata "config", encodec package names). */
static int config_from_original(hafm_encodec_config *c, const cJSON *o, const char *src)
{
    int causal = 1, normalize = 0;
    if (json_int(o, "sample_rate", &c->sample_rate, 1, 1000000, src) || json_int(o, "channels", &c->channels, 1, 16, src) ||
        json_int(o, "dimension", &c->dimension, 1, 8192, src) || json_int(o, "n_filters", &c->n_filters, 1, 4096, src) ||
        json_int(o, "n_residual_layers", &c->n_residual_layers, 0, 16, src) ||
        json_int_array(o, "ratios", c->ratios, &c->nratios, HAFM_ENCODEC_MAX_RATIOS, src) ||
        json_int(o, "kernel_size", &c->kernel_size, 1, 64, src) || json_int(o, "last_kernel_size", &c->last_kernel_size, 1, 64, src) ||
        json_int(o, "residual_kernel_size", &c->residual_kernel_size, 1, 64, src) ||
        json_int(o, "dilation_base", &c->dilation_base, 1, 16, src) || json_int(o, "compress", &c->compress, 1, 64, src) ||
        json_int(o, "lstm_layers", &c->lstm_layers, 0, 16, src) || json_bool(o, "true_skip", &c->true_skip, src) ||
        json_int(o, "n_q", &c->n_q, 1, 1024, src) || json_int(o, "bins", &c->bins, 2, 1 << 20, src) ||
        json_bw_array(o, "target_bandwidths", c, src) || json_bool(o, "causal", &causal, src) ||
        json_bool(o, "normalize", &normalize, src) || json_expect_str(o, "norm", "weight_norm", src) ||
        json_expect_str(o, "pad_mode", "reflect", src))
        return -1;
    if (!causal || normalize) {
        hafm_error("%s: only causal models without audio normalisation are supported", src);
        return -1;
    }
    return 0;
}

/* transformers EncodecConfig names (metadata "hf_config" or config.json). */
static int config_from_hf(hafm_encodec_config *c, const cJSON *o, const char *src)
{
    int causal = 1, normalize = 0, conv_shortcut = 1;
    if (json_int(o, "sampling_rate", &c->sample_rate, 1, 1000000, src) || json_int(o, "audio_channels", &c->channels, 1, 16, src) ||
        json_int(o, "hidden_size", &c->dimension, 1, 8192, src) || json_int(o, "num_filters", &c->n_filters, 1, 4096, src) ||
        json_int(o, "num_residual_layers", &c->n_residual_layers, 0, 16, src) ||
        json_int_array(o, "upsampling_ratios", c->ratios, &c->nratios, HAFM_ENCODEC_MAX_RATIOS, src) ||
        json_int(o, "kernel_size", &c->kernel_size, 1, 64, src) || json_int(o, "last_kernel_size", &c->last_kernel_size, 1, 64, src) ||
        json_int(o, "residual_kernel_size", &c->residual_kernel_size, 1, 64, src) ||
        json_int(o, "dilation_growth_rate", &c->dilation_base, 1, 16, src) || json_int(o, "compress", &c->compress, 1, 64, src) ||
        json_int(o, "num_lstm_layers", &c->lstm_layers, 0, 16, src) || json_bool(o, "use_conv_shortcut", &conv_shortcut, src) ||
        json_int(o, "codebook_size", &c->bins, 2, 1 << 20, src) || json_bw_array(o, "target_bandwidths", c, src) ||
        json_bool(o, "use_causal_conv", &causal, src) || json_bool(o, "normalize", &normalize, src) ||
        json_expect_str(o, "norm_type", "weight_norm", src) || json_expect_str(o, "pad_mode", "reflect", src))
        return -1;
    const cJSON *dim = cJSON_GetObjectItemCaseSensitive(o, "codebook_dim");
    if (dim && cJSON_IsNumber(dim) && (int)dim->valuedouble != c->dimension) {
        hafm_error("%s: codebook_dim %d differs from hidden_size %d (projected codebooks are not supported)",
                   src, (int)dim->valuedouble, c->dimension);
        return -1;
    }
    if (!causal || normalize) {
        hafm_error("%s: only causal models without audio normalisation are supported", src);
        return -1;
    }
    c->true_skip = !conv_shortcut;
    c->n_q = -1;   /* derived below, as transformers does */
    return 0;
}

static int config_finish(hafm_encodec_config *c, int hf_nq, const char *src)
{
    if (c->channels != 1) { hafm_error("%s: %d audio channels: only mono models are supported", src, c->channels); return -1; }
    c->hop = 1;
    for (int i = 0; i < c->nratios; i++) c->hop *= c->ratios[i];
    int fr = (c->sample_rate + c->hop - 1) / c->hop;
    c->frame_rate = fr;
    if (c->n_q < 0) {
        /* transformers: int(1000 * target_bandwidths[-1] // (frame_rate * 10)); the reference
         * model stores every codebook it builds the same way */
        double top = c->bandwidths[c->nbw - 1];
        c->n_q = hf_nq ? (int)floor(1000.0 * top / (fr * 10.0)) : (int)floor(1000.0 * top / (log2((double)c->bins) * fr));
        if (c->n_q < 1) c->n_q = 1;
    }
    for (int i = 0; i < c->nratios; i++)
        if (c->ratios[i] < 1) { hafm_error("%s: ratios must be positive", src); return -1; }
    return 0;
}

static int load_config(hafm_encodec_config *c, const hafm_safetensors *st, const char *path)
{
    config_defaults(c);
    const char *meta = hafm_st_meta(st, "config");
    int hf = 0;
    const char *src = "__metadata__ config";
    char *text = NULL;
    if (!meta) { meta = hafm_st_meta(st, "hf_config"); hf = 1; src = "__metadata__ hf_config"; }
    char cfgpath[4096];
    if (!meta) {
        const char *slash = strrchr(path, '/');
        int dirlen = slash ? (int)(slash - path) : 0;
        snprintf(cfgpath, sizeof cfgpath, "%.*s%sconfig.json", dirlen, path, slash ? "/" : "");
        FILE *fp = fopen(cfgpath, "rb");
        if (fp) {
            size_t cap = 1 << 16, n = 0;
            text = hafm_xmalloc(cap + 1);
            size_t got;
            while ((got = fread(text + n, 1, cap - n, fp)) > 0) {
                n += got;
                if (n == cap) { cap *= 2; text = hafm_xrealloc(text, cap + 1); }
            }
            text[n] = 0;
            fclose(fp);
            meta = text;
            hf = 1;
            src = cfgpath;
        }
    }
    if (!meta) return config_finish(c, 1, path);   /* plain checkpoint: encodec_24khz defaults */
    cJSON *o = cJSON_Parse(meta);
    int rc = -1;
    if (!o || !cJSON_IsObject(o)) hafm_error("%s: not a JSON object", src);
    else if (hf ? config_from_hf(c, o, src) == 0 : config_from_original(c, o, src) == 0) rc = config_finish(c, hf, src);
    cJSON_Delete(o);
    free(text);
    return rc;
}

int hafm_encodec_n_q(const hafm_encodec *m, double kbps)
{
    const hafm_encodec_config *c = &m->cfg;
    int ok = 0;
    for (int i = 0; i < c->nbw; i++)
        if (fabs(c->bandwidths[i] - kbps) < 1e-9) ok = 1;
    if (!ok) return -1;
    int n = (int)floor(kbps * 1000.0 / (log2((double)c->bins) * c->frame_rate));
    if (n < 1) n = 1;
    return n < c->n_q ? n : c->n_q;
}

/* ================================ loading ================================ */

enum naming { NAMING_ORIGINAL, NAMING_HF };

typedef struct {
    const hafm_safetensors *st;
    enum naming naming;
    int parametrized;   /* saw parametrizations.weight.original* */
} loader;

static const hafm_st_tensor *find_any(const loader *ld, const char *prefix, const char *const *suffixes,
                                      int nsuf, char *name, size_t cap, int *which)
{
    for (int i = 0; i < nsuf; i++) {
        snprintf(name, cap, "%s.%s", prefix, suffixes[i]);
        const hafm_st_tensor *t = hafm_st_find(ld->st, name);
        if (t) { *which = i; return t; }
    }
    snprintf(name, cap, "%s.%s", prefix, suffixes[0]);
    return NULL;
}

static float *load_tensor(const loader *ld, const char *name, int ndim, const int64_t *shape)
{
    if (!hafm_st_find(ld->st, name)) {
        hafm_error("%s: missing tensor '%s'", hafm_st_path(ld->st), name);
        return NULL;
    }
    const hafm_st_tensor *t = hafm_st_find(ld->st, name);
    if (t->dtype != HAFM_DT_F32 && t->dtype != HAFM_DT_F16 && t->dtype != HAFM_DT_BF16) {
        hafm_error("%s: tensor '%s': dtype %s is not F32, F16 or BF16", hafm_st_path(ld->st), name, hafm_dtype_name(t->dtype));
        return NULL;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *out = hafm_aligned_alloc((size_t)n * sizeof(float));
    if (hafm_st_read_f32(ld->st, name, out, ndim, shape) < 0) { free(out); return NULL; }
    return out;
}

/* One weight-normed convolution at `prefix` (e.g. "encoder.layers.0.conv"). */
static int load_conv(const loader *ld, hafm_encodec_conv *cv, const char *prefix, int cin, int cout,
                     int k, int stride, int dilation, int transposed)
{
    static const char *const gnames[] = {"weight_g", "parametrizations.weight.original0"};
    static const char *const vnames[] = {"weight_v", "parametrizations.weight.original1"};
    memset(cv, 0, sizeof *cv);
    cv->cin = cin; cv->cout = cout; cv->k = k; cv->stride = stride; cv->dilation = dilation;
    cv->transposed = transposed;
    char name[512], gname[512], vname[512];
    int d0 = transposed ? cin : cout, d1 = transposed ? cout : cin;
    int64_t wshape[3] = {d0, d1, k}, gshape[3] = {d0, 1, 1}, bshape[1] = {cout};
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (!(cv->bias = load_tensor(ld, name, 1, bshape))) return -1;
    int wg = -1, wv = -1;
    const hafm_st_tensor *tg = find_any(ld, prefix, gnames, 2, gname, sizeof gname, &wg);
    const hafm_st_tensor *tv = find_any(ld, prefix, vnames, 2, vname, sizeof vname, &wv);
    float *torch_w;
    int64_t n = (int64_t)d1 * k;
    if (!tg && !tv) {
        snprintf(name, sizeof name, "%s.weight", prefix);
        if (!hafm_st_find(ld->st, name)) {
            hafm_error("%s: missing tensor '%s' (nor '%s')", hafm_st_path(ld->st), gname, name);
            return -1;
        }
        if (!(torch_w = load_tensor(ld, name, 3, wshape))) return -1;
    } else {
        if (!tg) { hafm_error("%s: missing tensor '%s'", hafm_st_path(ld->st), gname); return -1; }
        if (!tv) { hafm_error("%s: missing tensor '%s'", hafm_st_path(ld->st), vname); return -1; }
        if (!(cv->g = load_tensor(ld, gname, 3, gshape))) return -1;
        float *v = load_tensor(ld, vname, 3, wshape);
        if (!v) return -1;
        torch_w = hafm_aligned_alloc((size_t)d0 * n * sizeof(float));
        cv->vnorm = hafm_aligned_alloc((size_t)d0 * sizeof(float));
        weight_norm_forward(torch_w, cv->vnorm, cv->g, v, d0, n);
        free(v);
    }
    cv->w = hafm_aligned_alloc((size_t)d0 * n * sizeof(float));
    if (transposed) convtr1d_weight_from_torch(cv->w, torch_w, cin, cout, k);
    else conv1d_weight_from_torch(cv->w, torch_w, cout, cin, k);
    free(torch_w);
    return 0;
}

static void conv_free(hafm_encodec_conv *cv)
{
    free(cv->w); free(cv->bias); free(cv->g); free(cv->vnorm);
    memset(cv, 0, sizeof *cv);
}

/* Module prefixes: original "encoder.model.N", HF "encoder.layers.N". */
static void module_prefix(char *out, size_t cap, const loader *ld, const char *part, int idx)
{
    snprintf(out, cap, "%s.%s.%d", part, ld->naming == NAMING_ORIGINAL ? "model" : "layers", idx);
}

static int load_sconv(const loader *ld, hafm_encodec_conv *cv, const char *module, int cin, int cout,
                      int k, int stride, int dilation)
{
    char p[512];
    snprintf(p, sizeof p, "%s.%s", module, ld->naming == NAMING_ORIGINAL ? "conv.conv" : "conv");
    return load_conv(ld, cv, p, cin, cout, k, stride, dilation, 0);
}

static int load_resblock(const loader *ld, hafm_encodec_resblock *rb, const hafm_encodec_config *c,
                         const char *module, int dim, int dilation)
{
    char p[512];
    const char *cc = ld->naming == NAMING_ORIGINAL ? "conv.conv" : "conv";
    int hidden = dim / c->compress;
    memset(rb, 0, sizeof *rb);
    snprintf(p, sizeof p, "%s.block.1.%s", module, cc);
    if (load_conv(ld, &rb->conv_a, p, dim, hidden, c->residual_kernel_size, 1, dilation, 0)) return -1;
    snprintf(p, sizeof p, "%s.block.3.%s", module, cc);
    if (load_conv(ld, &rb->conv_b, p, hidden, dim, 1, 1, 1, 0)) return -1;
    rb->bias_sum = hafm_aligned_alloc((size_t)dim * sizeof(float));
    memcpy(rb->bias_sum, rb->conv_b.bias, (size_t)dim * sizeof(float));
    if (!c->true_skip) {
        snprintf(p, sizeof p, "%s.shortcut.%s", module, cc);
        if (load_conv(ld, &rb->shortcut, p, dim, dim, 1, 1, 1, 0)) return -1;
        for (int i = 0; i < dim; i++) rb->bias_sum[i] += rb->shortcut.bias[i];
    }
    return 0;
}

static int load_lstm(const loader *ld, hafm_lstm *l, const char *module, int layers, int H)
{
    char name[512];
    l->layers = layers;
    l->hidden = H;
    l->w_ih = hafm_xcalloc((size_t)layers, sizeof(float *));
    l->w_hh = hafm_xcalloc((size_t)layers, sizeof(float *));
    l->b_ih = hafm_xcalloc((size_t)layers, sizeof(float *));
    l->b_hh = hafm_xcalloc((size_t)layers, sizeof(float *));
    int64_t wshape[2] = {4 * (int64_t)H, H}, bshape[1] = {4 * (int64_t)H};
    for (int n = 0; n < layers; n++) {
        snprintf(name, sizeof name, "%s.lstm.weight_ih_l%d", module, n);
        if (!(l->w_ih[n] = load_tensor(ld, name, 2, wshape))) return -1;
        snprintf(name, sizeof name, "%s.lstm.weight_hh_l%d", module, n);
        if (!(l->w_hh[n] = load_tensor(ld, name, 2, wshape))) return -1;
        snprintf(name, sizeof name, "%s.lstm.bias_ih_l%d", module, n);
        if (!(l->b_ih[n] = load_tensor(ld, name, 1, bshape))) return -1;
        snprintf(name, sizeof name, "%s.lstm.bias_hh_l%d", module, n);
        if (!(l->b_hh[n] = load_tensor(ld, name, 1, bshape))) return -1;
    }
    return 0;
}

static void seanet_alloc(hafm_seanet *s, const hafm_encodec_config *c)
{
    s->nstages = c->nratios;
    s->res = hafm_xcalloc((size_t)(c->nratios * (c->n_residual_layers > 0 ? c->n_residual_layers : 1)),
                          sizeof(hafm_encodec_resblock));
    s->resample = hafm_xcalloc((size_t)c->nratios, sizeof(hafm_encodec_conv));
}

/* encoder.model: conv, then per stride (ratios reversed) residual blocks, ELU, strided conv;
 * then LSTM, ELU, conv to D. Module indices count the ELUs, as both namings do. */
static int load_encoder(const loader *ld, hafm_seanet *s, const hafm_encodec_config *c)
{
    char mod[256];
    int idx = 0, mult = 1, nf = c->n_filters;
    seanet_alloc(s, c);
    module_prefix(mod, sizeof mod, ld, "encoder", idx++);
    if (load_sconv(ld, &s->conv_in, mod, c->channels, nf, c->kernel_size, 1, 1)) return -1;
    for (int i = 0; i < c->nratios; i++) {
        int r = c->ratios[c->nratios - 1 - i], dil = 1;
        for (int j = 0; j < c->n_residual_layers; j++, dil *= c->dilation_base) {
            module_prefix(mod, sizeof mod, ld, "encoder", idx++);
            if (load_resblock(ld, &s->res[i * c->n_residual_layers + j], c, mod, mult * nf, dil)) return -1;
        }
        idx++;   /* ELU */
        module_prefix(mod, sizeof mod, ld, "encoder", idx++);
        if (load_sconv(ld, &s->resample[i], mod, mult * nf, 2 * mult * nf, 2 * r, r, 1)) return -1;
        mult *= 2;
    }
    if (c->lstm_layers > 0) {
        module_prefix(mod, sizeof mod, ld, "encoder", idx++);
        if (load_lstm(ld, &s->lstm, mod, c->lstm_layers, mult * nf)) return -1;
    }
    idx++;   /* ELU */
    module_prefix(mod, sizeof mod, ld, "encoder", idx);
    return load_sconv(ld, &s->conv_out, mod, mult * nf, c->dimension, c->last_kernel_size, 1, 1);
}

/* decoder.model: conv from D, LSTM, per ratio ELU, transposed conv, residual blocks; ELU, conv. */
static int load_decoder(const loader *ld, hafm_seanet *s, const hafm_encodec_config *c)
{
    char mod[256], p[512];
    int idx = 0, mult = 1 << c->nratios, nf = c->n_filters;
    seanet_alloc(s, c);
    module_prefix(mod, sizeof mod, ld, "decoder", idx++);
    if (load_sconv(ld, &s->conv_in, mod, c->dimension, mult * nf, c->kernel_size, 1, 1)) return -1;
    if (c->lstm_layers > 0) {
        module_prefix(mod, sizeof mod, ld, "decoder", idx++);
        if (load_lstm(ld, &s->lstm, mod, c->lstm_layers, mult * nf)) return -1;
    }
    for (int i = 0; i < c->nratios; i++) {
        int r = c->ratios[i], dil = 1;
        idx++;   /* ELU */
        module_prefix(mod, sizeof mod, ld, "decoder", idx++);
        snprintf(p, sizeof p, "%s.%s", mod, ld->naming == NAMING_ORIGINAL ? "convtr.convtr" : "conv");
        if (load_conv(ld, &s->resample[i], p, mult * nf, mult * nf / 2, 2 * r, r, 1, 1)) return -1;
        for (int j = 0; j < c->n_residual_layers; j++, dil *= c->dilation_base) {
            module_prefix(mod, sizeof mod, ld, "decoder", idx++);
            if (load_resblock(ld, &s->res[i * c->n_residual_layers + j], c, mod, mult * nf / 2, dil)) return -1;
        }
        mult /= 2;
    }
    idx++;   /* ELU */
    module_prefix(mod, sizeof mod, ld, "decoder", idx);
    return load_sconv(ld, &s->conv_out, mod, nf, c->channels, c->last_kernel_size, 1, 1);
}

static void seanet_free(hafm_seanet *s, const hafm_encodec_config *c)
{
    conv_free(&s->conv_in);
    conv_free(&s->conv_out);
    if (s->res)
        for (int i = 0; i < s->nstages * c->n_residual_layers; i++) {
            conv_free(&s->res[i].conv_a); conv_free(&s->res[i].conv_b); conv_free(&s->res[i].shortcut);
            free(s->res[i].bias_sum);
        }
    if (s->resample)
        for (int i = 0; i < s->nstages; i++) conv_free(&s->resample[i]);
    free(s->res); free(s->resample);
    if (s->lstm.layers) hafm_lstm_free(&s->lstm);
}

void hafm_encodec_free(hafm_encodec *m)
{
    if (!m) return;
    seanet_free(&m->enc, &m->cfg);
    seanet_free(&m->dec, &m->cfg);
    if (m->embed)
        for (int k = 0; k < m->cfg.n_q; k++) { free(m->embed[k]); free(m->norms[k]); }
    free(m->embed); free(m->norms);
    free(m);
}

hafm_encodec *hafm_encodec_load(const char *path)
{
    hafm_safetensors *st = hafm_st_open(path);
    if (!st) return NULL;
    hafm_encodec *m = hafm_xcalloc(1, sizeof *m);
    loader ld = {.st = st};
    if (hafm_st_find(st, "encoder.model.0.conv.conv.bias")) ld.naming = NAMING_ORIGINAL;
    else if (hafm_st_find(st, "encoder.layers.0.conv.bias")) ld.naming = NAMING_HF;
    else {
        hafm_error("%s: unknown tensor naming: neither 'encoder.model.0.conv.conv.bias' (facebookresearch/encodec) "
                   "nor 'encoder.layers.0.conv.bias' (transformers) is present", path);
        goto fail;
    }
    if (load_config(&m->cfg, st, path)) goto fail;
    if (load_encoder(&ld, &m->enc, &m->cfg) || load_decoder(&ld, &m->dec, &m->cfg)) goto fail;
    const hafm_encodec_config *c = &m->cfg;
    m->embed = hafm_xcalloc((size_t)c->n_q, sizeof(float *));
    m->norms = hafm_xcalloc((size_t)c->n_q, sizeof(float *));
    int64_t eshape[2] = {c->bins, c->dimension};
    for (int k = 0; k < c->n_q; k++) {
        char name[256];
        if (ld.naming == NAMING_ORIGINAL) snprintf(name, sizeof name, "quantizer.vq.layers.%d._codebook.embed", k);
        else snprintf(name, sizeof name, "quantizer.layers.%d.codebook.embed", k);
        if (!(m->embed[k] = load_tensor(&ld, name, 2, eshape))) goto fail;
        m->norms[k] = hafm_aligned_alloc((size_t)c->bins * sizeof(float));
        rvq_codebook_norms(m->norms[k], m->embed[k], c->bins, c->dimension);
    }
    snprintf(m->naming, sizeof m->naming, "%s", ld.naming == NAMING_ORIGINAL ? "original" :
             m->enc.conv_in.g && hafm_st_find(st, "encoder.layers.0.conv.weight_g") ? "hf" :
             m->enc.conv_in.g ? "hf-parametrizations" : "hf-folded");
    hafm_st_close(st);
    return m;
fail:
    hafm_st_close(st);
    hafm_encodec_free(m);
    return NULL;
}

/* ================================ quantiser ================================ */

void hafm_encodec_quantize(const hafm_encodec *m, int32_t *codes, float *latent, int64_t T, int n)
{
    if (T <= 0) return;
    float *dist = hafm_aligned_alloc((size_t)T * m->cfg.bins * sizeof(float));
    rvq_encode_forward(codes, latent, dist, (const float *const *)m->embed, (const float *const *)m->norms,
                       T, m->cfg.dimension, m->cfg.bins, n);
    free(dist);
}

int hafm_encodec_dequantize(const hafm_encodec *m, float *out, const int32_t *codes, int stride,
                            int64_t T, int n)
{
    for (int64_t t = 0; t < T; t++)
        for (int k = 0; k < n; k++) {
            int32_t v = codes[t * stride + k];
            if (v < 0 || v >= m->cfg.bins) {
                hafm_error("code %d at frame %lld, codebook %d is outside the vocabulary [0, %d)", v, (long long)t,
                           k, m->cfg.bins);
                return -1;
            }
        }
    rvq_decode_forward(out, codes, stride, (const float *const *)m->embed, T, m->cfg.dimension, n);
    return 0;
}

/* ================================ streaming SEANet ================================ */

/* Growable row buffer [n, C]. */
typedef struct {
    float *p;
    int64_t n, cap;
    int C;
} rowbuf;

static void rb_reserve(rowbuf *b, int64_t rows)
{
    if (rows <= b->cap) return;
    int64_t cap = b->cap ? b->cap : 64;
    while (cap < rows) cap *= 2;
    float *p = hafm_aligned_alloc((size_t)cap * b->C * sizeof(float));
    if (b->n) memcpy(p, b->p, (size_t)b->n * b->C * sizeof(float));
    free(b->p);
    b->p = p;
    b->cap = cap;
}

static void rb_append(rowbuf *b, const float *x, int64_t n)
{
    rb_reserve(b, b->n + n);
    if (n) memcpy(b->p + b->n * b->C, x, (size_t)n * b->C * sizeof(float));
    b->n += n;
}

static void rb_consume(rowbuf *b, int64_t n)
{
    if (b->n > n) memmove(b->p, b->p + n * b->C, (size_t)(b->n - n) * b->C * sizeof(float));
    b->n -= n;
}

/* A padded causal convolution (the reference's SConv1d) over a stream of rows: all of the fixed
 * padding goes on the left (reflected once enough input is there to reflect), the "extra"
 * padding to whole frames on the right at the end of the signal. */
typedef struct {
    const hafm_encodec_conv *cv;
    rowbuf pend;        /* padded input not yet consumed */
    int64_t nin;        /* raw input rows received */
    int started;        /* left padding emitted */
    int keff, pt;
} sconv;

static void sconv_init(sconv *s, const hafm_encodec_conv *cv)
{
    memset(s, 0, sizeof *s);
    s->cv = cv;
    s->pend.C = cv->cin;
    s->keff = (cv->k - 1) * cv->dilation + 1;
    s->pt = s->keff - cv->stride;
}

static void sconv_reset(sconv *s)
{
    s->pend.n = 0; s->nin = 0; s->started = 0;
}

static void run_conv(const hafm_encodec_conv *cv, rowbuf *out, const float *inp, int64_t Lp, rowbuf *scratch)
{
    int64_t nf = conv1d_out_len(Lp, cv->k, cv->stride, cv->dilation);
    if (nf <= 0) return;
    size_t sf = conv1d_scratch_floats(Lp, cv->cin, cv->cout, cv->k, cv->stride, cv->dilation);
    scratch->C = 1;
    rb_reserve(scratch, (int64_t)sf);
    rb_reserve(out, out->n + nf);
    conv1d_forward(out->p + out->n * out->C, inp, cv->w, cv->bias, scratch->p, Lp, cv->cin, cv->cout, cv->k,
                   cv->stride, cv->dilation);
    out->n += nf;
}

/* Room for n input rows, for a caller that writes them in place (saves a copy); then
 * sconv_push(s, NULL, n, ...). */
static float *sconv_input(sconv *s, int64_t n)
{
    rb_reserve(&s->pend, s->pend.n + n);
    return s->pend.p + s->pend.n * s->pend.C;
}

/* Appends the output rows this input completes to out (out->C == Cout). x NULL: the rows are
 * already in place (sconv_input). */
static void sconv_push(sconv *s, const float *x, int64_t n, int final, rowbuf *out, rowbuf *scratch)
{
    const hafm_encodec_conv *cv = s->cv;
    int C = cv->cin;
    if (x) rb_append(&s->pend, x, n);
    else s->pend.n += n;
    s->nin += n;
    if (!s->started) {
        if (s->nin > s->pt) {
            /* reflect needs x[1..pt]: prepend x[pt], ..., x[1] */
            rb_reserve(&s->pend, s->pend.n + s->pt);
            memmove(s->pend.p + (int64_t)s->pt * C, s->pend.p, (size_t)s->pend.n * C * sizeof(float));
            for (int p = 0; p < s->pt; p++)
                memcpy(s->pend.p + (int64_t)p * C, s->pend.p + (int64_t)(2 * s->pt - p) * C, (size_t)C * sizeof(float));
            s->pend.n += s->pt;
            s->started = 1;
        } else if (final) {
            if (s->nin > 0) {
                /* the whole signal is not longer than the padding: the reference's short rule */
                int64_t extra = conv1d_extra_padding(s->nin, s->keff, cv->stride, s->pt);
                int64_t Lp = s->pt + s->nin + extra;
                rowbuf tmp = {.C = C};
                rb_reserve(&tmp, Lp);
                pad1d_reflect_forward(tmp.p, s->pend.p, s->nin, C, s->pt, (int)extra);
                run_conv(cv, out, tmp.p, Lp, scratch);
                free(tmp.p);
            }
            sconv_reset(s);
            return;
        } else {
            return;
        }
    }
    if (final) {
        int64_t extra = conv1d_extra_padding(s->nin, s->keff, cv->stride, s->pt);
        rb_reserve(&s->pend, s->pend.n + extra);
        int64_t last = s->pend.n - 1;   /* x[L-1]; the right reflection reads x[L-2], x[L-3], ... */
        for (int64_t i = 0; i < extra; i++)
            memcpy(s->pend.p + (s->pend.n + i) * C, s->pend.p + (last - 1 - i) * C, (size_t)C * sizeof(float));
        s->pend.n += extra;
    }
    int64_t nf = conv1d_out_len(s->pend.n, cv->k, cv->stride, cv->dilation);
    if (nf > 0) {
        run_conv(cv, out, s->pend.p, (nf - 1) * cv->stride + s->keff, scratch);
        rb_consume(&s->pend, nf * cv->stride);
    }
    if (final) sconv_reset(s);
}

/* Transposed convolution over a stream: carries the last frames its kernel overlaps. */
typedef struct {
    const hafm_encodec_conv *cv;
    rowbuf in;          /* history frames followed by the new ones */
    int hist, maxhist;
} tconv;

static void tconv_init(tconv *s, const hafm_encodec_conv *cv)
{
    memset(s, 0, sizeof *s);
    s->cv = cv;
    s->in.C = cv->cin;
    s->maxhist = (cv->k + cv->stride - 1) / cv->stride - 1;
}

static float *tconv_input(tconv *s, int64_t n)
{
    rb_reserve(&s->in, s->in.n + n);
    return s->in.p + s->in.n * s->in.C;
}

/* As sconv_push, x NULL when the rows are in place (tconv_input). */
static void tconv_push(tconv *s, const float *x, int64_t n, int final, rowbuf *out)
{
    const hafm_encodec_conv *cv = s->cv;
    if (x) rb_append(&s->in, x, n);
    else s->in.n += n;
    if (n > 0) {
        rb_reserve(out, out->n + n * cv->stride);
        conv_transpose1d_forward(out->p + out->n * out->C, s->in.p, cv->w, cv->bias, n, s->hist, cv->cin,
                                 cv->cout, cv->k, cv->stride);
        out->n += n * cv->stride;
    }
    int keep = s->in.n < s->maxhist ? (int)s->in.n : s->maxhist;
    rb_consume(&s->in, s->in.n - keep);
    s->hist = keep;
    if (final) { s->in.n = 0; s->hist = 0; }
}

/* Residual block: shortcut(x) + conv_b(ELU(conv_a(ELU(x)))). conv_a may lag its input by its
 * left padding at the start of a signal, so x waits in xq for its matching rows. */
typedef struct {
    const hafm_encodec_resblock *rb;
    sconv a;
    rowbuf xq, t2;
} resblk;

static void resblk_init(resblk *r, const hafm_encodec_resblock *rb)
{
    memset(r, 0, sizeof *r);
    r->rb = rb;
    sconv_init(&r->a, &rb->conv_a);
    r->xq.C = rb->conv_a.cin;
    r->t2.C = rb->conv_a.cout;
}

static void resblk_push(resblk *r, const float *x, int64_t n, int final, rowbuf *out, rowbuf *scratch)
{
    const hafm_encodec_resblock *rb = r->rb;
    int dim = rb->conv_a.cin, hid = rb->conv_a.cout;
    elu_forward(sconv_input(&r->a, n), x, (size_t)n * dim);
    r->t2.n = 0;
    sconv_push(&r->a, NULL, n, final, &r->t2, scratch);
    int64_t na = r->t2.n;
    /* the shortcut reads x itself unless conv_a lags behind (the start of a signal) */
    const float *xs = x;
    if (r->xq.n > 0 || na != n) {
        rb_append(&r->xq, x, n);
        xs = r->xq.p;
    }
    if (na > 0) {
        elu_forward(r->t2.p, r->t2.p, (size_t)na * hid);
        rb_reserve(out, out->n + na);
        float *y = out->p + out->n * dim;
        scratch->C = 1;
        rb_reserve(scratch, (int64_t)dim * dim + (int64_t)conv1d_scratch_floats(na, hid, dim, 1, 1, 1));
        conv1d_forward(y, r->t2.p, rb->conv_b.w, rb->bias_sum, scratch->p, na, hid, dim, 1, 1, 1);
        if (rb->shortcut.w)
            conv1d_accumulate_1x1(y, xs, rb->shortcut.w, scratch->p, na, dim, dim);
        else
            for (int64_t i = 0; i < na * dim; i++) y[i] += xs[i];
        out->n += na;
        if (xs == r->xq.p) rb_consume(&r->xq, na);
    }
    if (final) r->xq.n = 0;
}

static void resblk_reset(resblk *r)
{
    sconv_reset(&r->a);
    r->xq.n = 0;
}

struct hafm_encodec_stream {
    const hafm_encodec *m;
    const hafm_seanet *net;
    int decoder;
    sconv in, out;
    resblk *res;
    sconv *down;        /* encoder */
    tconv *up;          /* decoder */
    float *lstm_state;
    rowbuf buf[2], lstm_scratch, scratch;
    rowbuf inq, outq;   /* input waiting for a whole block; output of one push */
    int64_t block;      /* input rows per block */
    hafm_encodec_tap tap;
    void *tap_ctx;
};

static hafm_encodec_stream *stream_new(const hafm_encodec *m, int decoder)
{
    hafm_encodec_stream *s = hafm_xcalloc(1, sizeof *s);
    const hafm_encodec_config *c = &m->cfg;
    s->m = m;
    s->decoder = decoder;
    s->net = decoder ? &m->dec : &m->enc;
    sconv_init(&s->in, &s->net->conv_in);
    sconv_init(&s->out, &s->net->conv_out);
    int nres = c->nratios * c->n_residual_layers;
    s->res = hafm_xcalloc((size_t)(nres > 0 ? nres : 1), sizeof(resblk));
    for (int i = 0; i < nres; i++) resblk_init(&s->res[i], &s->net->res[i]);
    if (decoder) {
        s->up = hafm_xcalloc((size_t)c->nratios, sizeof(tconv));
        for (int i = 0; i < c->nratios; i++) tconv_init(&s->up[i], &s->net->resample[i]);
    } else {
        s->down = hafm_xcalloc((size_t)c->nratios, sizeof(sconv));
        for (int i = 0; i < c->nratios; i++) sconv_init(&s->down[i], &s->net->resample[i]);
    }
    if (s->net->lstm.layers)
        s->lstm_state = hafm_xcalloc((size_t)s->net->lstm.layers * 2 * s->net->lstm.hidden, sizeof(float));
    s->lstm_scratch.C = 1;
    s->scratch.C = 1;
    s->inq.C = decoder ? c->dimension : c->channels;
    s->outq.C = decoder ? c->channels : c->dimension;
    rb_reserve(&s->outq, 1);   /* a push's output pointer is valid even when it has no rows */
    s->block = decoder ? HAFM_ENCODEC_BLOCK_FRAMES : (int64_t)HAFM_ENCODEC_BLOCK_FRAMES * c->hop;
    return s;
}

hafm_encodec_stream *hafm_encodec_encoder_new(const hafm_encodec *m) { return stream_new(m, 0); }
hafm_encodec_stream *hafm_encodec_decoder_new(const hafm_encodec *m) { return stream_new(m, 1); }

void hafm_encodec_stream_set_tap(hafm_encodec_stream *s, hafm_encodec_tap fn, void *ctx)
{
    s->tap = fn;
    s->tap_ctx = ctx;
}

void hafm_encodec_stream_reset(hafm_encodec_stream *s)
{
    const hafm_encodec_config *c = &s->m->cfg;
    sconv_reset(&s->in);
    sconv_reset(&s->out);
    for (int i = 0; i < c->nratios * c->n_residual_layers; i++) resblk_reset(&s->res[i]);
    for (int i = 0; i < c->nratios; i++) {
        if (s->up) { s->up[i].in.n = 0; s->up[i].hist = 0; }
        if (s->down) sconv_reset(&s->down[i]);
    }
    s->inq.n = 0;
    if (s->lstm_state)
        memset(s->lstm_state, 0, (size_t)s->net->lstm.layers * 2 * s->net->lstm.hidden * sizeof(float));
}

void hafm_encodec_stream_free(hafm_encodec_stream *s)
{
    if (!s) return;
    const hafm_encodec_config *c = &s->m->cfg;
    free(s->in.pend.p); free(s->out.pend.p);
    for (int i = 0; i < c->nratios * c->n_residual_layers; i++) {
        free(s->res[i].a.pend.p); free(s->res[i].xq.p); free(s->res[i].t2.p);
    }
    for (int i = 0; i < c->nratios; i++) {
        if (s->up) free(s->up[i].in.p);
        if (s->down) free(s->down[i].pend.p);
    }
    free(s->res); free(s->up); free(s->down); free(s->lstm_state);
    free(s->buf[0].p); free(s->buf[1].p); free(s->inq.p); free(s->outq.p); free(s->lstm_scratch.p); free(s->scratch.p);
    free(s);
}

static void tap(hafm_encodec_stream *s, int idx, const char *suffix, const rowbuf *b)
{
    if (!s->tap) return;
    char name[64];
    snprintf(name, sizeof name, "%s.%02d%s", s->decoder ? "dec" : "enc", idx, suffix);
    s->tap(s->tap_ctx, name, b->p, b->n, b->C);
}

/* Runs one stage from *cur into the other buffer and swaps. */
#define NEXT(s, cur, C_) (s->buf[1 - (cur)].n = 0, s->buf[1 - (cur)].C = (C_), &s->buf[1 - (cur)])

static void lstm_stage(hafm_encodec_stream *s, rowbuf *x, rowbuf *y, int idx)
{
    const hafm_lstm *l = &s->net->lstm;
    rb_reserve(y, x->n);
    rb_reserve(&s->lstm_scratch, (int64_t)hafm_lstm_scratch_floats(l, x->n));
    hafm_lstm_forward(y->p, s->lstm_state, s->lstm_scratch.p, l, x->p, x->n, 0);
    y->n = x->n;
    tap(s, idx, ".lstm_noskip", y);
    for (int64_t i = 0; i < x->n * x->C; i++) y->p[i] += x->p[i];
    tap(s, idx, "", y);
}

static int64_t encoder_block(hafm_encodec_stream *s, const float *x, int64_t n, int final, const float **out)
{
    const hafm_encodec_config *c = &s->m->cfg;
    const hafm_seanet *net = s->net;
    int cur = 0, idx = 0;
    rowbuf *y = NEXT(s, cur, net->conv_in.cout);
    sconv_push(&s->in, x, n, final, y, &s->scratch);
    cur = 1 - cur;
    tap(s, idx++, "", &s->buf[cur]);
    for (int i = 0; i < c->nratios; i++) {
        for (int j = 0; j < c->n_residual_layers; j++) {
            rowbuf *xb = &s->buf[cur];
            y = NEXT(s, cur, xb->C);
            resblk_push(&s->res[i * c->n_residual_layers + j], xb->p, xb->n, final, y, &s->scratch);
            cur = 1 - cur;
            tap(s, idx++, "", &s->buf[cur]);
        }
        idx++;
        rowbuf *xb = &s->buf[cur];
        elu_forward(sconv_input(&s->down[i], xb->n), xb->p, (size_t)xb->n * xb->C);
        y = NEXT(s, cur, net->resample[i].cout);
        sconv_push(&s->down[i], NULL, xb->n, final, y, &s->scratch);
        cur = 1 - cur;
        tap(s, idx++, "", &s->buf[cur]);
    }
    if (net->lstm.layers) {
        rowbuf *xb = &s->buf[cur];
        y = NEXT(s, cur, xb->C);
        lstm_stage(s, xb, y, idx++);
        cur = 1 - cur;
    }
    idx++;
    rowbuf *xb = &s->buf[cur];
    elu_forward(sconv_input(&s->out, xb->n), xb->p, (size_t)xb->n * xb->C);
    y = NEXT(s, cur, net->conv_out.cout);
    sconv_push(&s->out, NULL, xb->n, final, y, &s->scratch);
    cur = 1 - cur;
    tap(s, idx, "", &s->buf[cur]);
    *out = s->buf[cur].p;
    return s->buf[cur].n;
}

static int64_t decoder_block(hafm_encodec_stream *s, const float *latent, int64_t T, int final, const float **out)
{
    const hafm_encodec_config *c = &s->m->cfg;
    const hafm_seanet *net = s->net;
    int cur = 0, idx = 0;
    rowbuf *y = NEXT(s, cur, net->conv_in.cout);
    sconv_push(&s->in, latent, T, final, y, &s->scratch);
    cur = 1 - cur;
    tap(s, idx++, "", &s->buf[cur]);
    if (net->lstm.layers) {
        rowbuf *xb = &s->buf[cur];
        y = NEXT(s, cur, xb->C);
        lstm_stage(s, xb, y, idx++);
        cur = 1 - cur;
    }
    for (int i = 0; i < c->nratios; i++) {
        idx++;
        rowbuf *xb = &s->buf[cur];
        elu_forward(tconv_input(&s->up[i], xb->n), xb->p, (size_t)xb->n * xb->C);
        y = NEXT(s, cur, net->resample[i].cout);
        tconv_push(&s->up[i], NULL, xb->n, final, y);
        cur = 1 - cur;
        tap(s, idx++, "", &s->buf[cur]);
        for (int j = 0; j < c->n_residual_layers; j++) {
            xb = &s->buf[cur];
            y = NEXT(s, cur, xb->C);
            resblk_push(&s->res[i * c->n_residual_layers + j], xb->p, xb->n, final, y, &s->scratch);
            cur = 1 - cur;
            tap(s, idx++, "", &s->buf[cur]);
        }
    }
    idx++;
    rowbuf *xb = &s->buf[cur];
    elu_forward(sconv_input(&s->out, xb->n), xb->p, (size_t)xb->n * xb->C);
    y = NEXT(s, cur, net->conv_out.cout);
    sconv_push(&s->out, NULL, xb->n, final, y, &s->scratch);
    cur = 1 - cur;
    tap(s, idx, "", &s->buf[cur]);
    *out = s->buf[cur].p;
    return s->buf[cur].n;
}

/* Input is cut into blocks at fixed positions from the start of the signal, whatever the sizes
 * of the pushes: every run of a signal then performs the same sequence of GEMMs, so streamed and
 * whole-signal results are identical bit for bit (BLAS rounding depends on a row's position in
 * its tile), and memory stays bounded by the block. */
static int64_t stream_push(hafm_encodec_stream *s, const float *x, int64_t n, int final, const float **out)
{
    s->outq.n = 0;
    s->outq.C = s->decoder ? s->m->cfg.channels : s->m->cfg.dimension;
    int64_t (*block)(hafm_encodec_stream *, const float *, int64_t, int, const float **) =
        s->decoder ? decoder_block : encoder_block;
    int blas = hafm_blas_single_begin();
    for (;;) {
        int64_t take = s->block - s->inq.n;
        if (take > n) take = n;
        rb_append(&s->inq, x, take);
        x += take * s->inq.C;
        n -= take;
        int last = final && n == 0;
        if (s->inq.n < s->block && !last) break;
        const float *o;
        int64_t got = block(s, s->inq.p, s->inq.n, last, &o);
        rb_append(&s->outq, o, got);
        s->inq.n = 0;
        if (last) { hafm_encodec_stream_reset(s); break; }
    }
    hafm_blas_single_end(blas);
    *out = s->outq.p;
    return s->outq.n;
}

int64_t hafm_encodec_encoder_push(hafm_encodec_stream *s, const float *x, int64_t n, int final,
                                  const float **out)
{
    return stream_push(s, x, n, final, out);
}

int64_t hafm_encodec_decoder_push(hafm_encodec_stream *s, const float *latent, int64_t T, int final,
                                  const float **out)
{
    return stream_push(s, latent, T, final, out);
}

void hafm_encodec_stream_set_block(hafm_encodec_stream *s, int64_t frames)
{
    s->block = frames > 0 ? frames : 1;
    s->inq.n = 0;
}
