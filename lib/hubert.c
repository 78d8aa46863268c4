/* hubert.c - HuBERT Base/Large forward pass (inference), HF-compatible weights.
 *
 * Everything runs time-major: activations are x[T, C] (frame-major), so a strided conv over
 * time reads its input rows in place as a GEMM operand with row stride stride*C (no im2col);
 * the kernel taps are split into groups of `stride` taps so that lda >= K holds for BLAS.
 *
 * Input-wide statistics (Base's GroupNorm over time in conv layer 0, Large's waveform
 * normalisation) are computed once over the whole input in a cheap first pass. With them fixed,
 * the conv stack is exactly translation-equivariant with stride 320, so it is computed in chunks
 * of output frames, and the encoder runs in overlapping windows: memory is bounded by the window,
 * not the input, and only the encoder's attention/positional context differs from processing
 * the whole input at once.
 */
#include "hafm/hubert.h"
#include "hafm/linalg.h"
#include "hafm/safetensors.h"

#include <cJSON.h>
#include <cblas.h>
#include <omp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *w;          /* [Cout, K*Cin], row o = taps k-major: w[o, k*Cin + c] = W[o, c, k] */
    float *b;          /* [Cout] or NULL */
    float *norm_w;     /* GroupNorm (layer 0, group mode) or LayerNorm (layer mode), else NULL */
    float *norm_b;
} conv_layer;

enum { SCRATCH_SLOTS = 14 };

typedef struct {
    float *qkv_w, *qkv_b;    /* [3D, D], [3D]: q, k, v projections stacked */
    float *out_w, *out_b;    /* [D, D], [D] */
    float *ln1_w, *ln1_b;    /* layer_norm */
    float *fc1_w, *fc1_b;    /* [F, D], [F] */
    float *fc2_w, *fc2_b;    /* [D, F], [D] */
    float *ln2_w, *ln2_b;    /* final_layer_norm */
} enc_layer;

struct hafm_hubert {
    hafm_hubert_config cfg;
    int nlayers;             /* layers with weights loaded */
    conv_layer conv[HAFM_HUBERT_MAX_CONV];
    float *fp_ln_w, *fp_ln_b;     /* NULL when feat_proj_layer_norm is false */
    float *proj_w, *proj_b;       /* [D, C], [D] */
    float *pos_w;                 /* [G, Dg, K*Dg]: pos_w[g][o][k*Dg + i] = w[g*Dg + o, i, k] */
    float *pos_b;                 /* [D] */
    float *enc_ln_w, *enc_ln_b;
    enc_layer *layer;
    int window, context, conv_chunk;
    /* working memory of hafm_hubert_extract, kept between calls: fresh pages for every
     * utterance cost more than the elementwise work */
    float *scratch[SCRATCH_SLOTS];
    size_t scratch_cap[SCRATCH_SLOTS];
    hafm_hubert_trace_fn trace;
    void *trace_ctx;
};

#define GROUPNORM_EPS 1e-5f
#define CONV_LAYERNORM_EPS 1e-5f
#define INPUT_NORM_EPS 1e-7      /* HF Wav2Vec2FeatureExtractor zero_mean_unit_var_norm */

/* ---- configuration --------------------------------------------------------------------------- */

void hafm_hubert_config_base(hafm_hubert_config *c)
{
    static const int kernel[7] = {10, 3, 3, 3, 3, 2, 2}, stride[7] = {5, 2, 2, 2, 2, 2, 2};
    memset(c, 0, sizeof *c);
    c->conv_layers = 7;
    for (int i = 0; i < 7; i++) {
        c->conv_dim[i] = 512;
        c->conv_kernel[i] = kernel[i];
        c->conv_stride[i] = stride[i];
    }
    c->conv_bias = 0;
    c->conv_norm = HAFM_HUBERT_NORM_GROUP;
    c->hidden = 768;
    c->heads = 12;
    c->ffn = 3072;
    c->layers = 12;
    c->pos_kernel = 128;
    c->pos_groups = 16;
    c->stable_layer_norm = 0;
    c->normalize_input = 0;
    c->eps = 1e-5f;
}

void hafm_hubert_config_large(hafm_hubert_config *c)
{
    hafm_hubert_config_base(c);
    c->conv_bias = 1;
    c->conv_norm = HAFM_HUBERT_NORM_LAYER;
    c->hidden = 1024;
    c->heads = 16;
    c->ffn = 4096;
    c->layers = 24;
    c->stable_layer_norm = 1;
    c->normalize_input = 1;
}

static int json_int(const cJSON *root, const char *key, int lo, int hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return 0;
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (int)v->valuedouble || v->valuedouble < lo || v->valuedouble > hi) {
        hafm_error("config: '%s' must be an integer in [%d, %d]", key, lo, hi);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

static int json_int_array(const cJSON *root, const char *key, int *out, int *count)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return 0;
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 1 || n > HAFM_HUBERT_MAX_CONV) {
        hafm_error("config: '%s' must be an array of 1 to %d integers", key, HAFM_HUBERT_MAX_CONV);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e) || e->valuedouble != (int)e->valuedouble || e->valuedouble < 1 || e->valuedouble > 65536) {
            hafm_error("config: '%s' must hold positive integers", key);
            return -1;
        }
        out[i] = (int)e->valuedouble;
    }
    if (*count && *count != n) {
        hafm_error("config: '%s' has %d entries, expected %d", key, n, *count);
        return -1;
    }
    *count = n;
    return 0;
}

static int json_gelu(const cJSON *root, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (v && !(cJSON_IsString(v) && strcmp(v->valuestring, "gelu") == 0)) {
        hafm_error("config: '%s' must be \"gelu\" (the only activation HuBERT uses)", key);
        return -1;
    }
    return 0;
}

int hafm_hubert_config_parse(hafm_hubert_config *c, const char *json)
{
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        hafm_error("config: not a JSON object");
        return -1;
    }
    int rc = -1, n = 0, nk = 0, ns = 0;
    int dims[HAFM_HUBERT_MAX_CONV], kern[HAFM_HUBERT_MAX_CONV], strd[HAFM_HUBERT_MAX_CONV];
    if (json_int_array(root, "conv_dim", dims, &n) < 0) goto out;
    nk = n;
    if (json_int_array(root, "conv_kernel", kern, &nk) < 0) goto out;
    ns = nk;
    if (json_int_array(root, "conv_stride", strd, &ns) < 0) goto out;
    if (n && nk && n != nk) {
        hafm_error("config: 'conv_dim' and 'conv_kernel' differ in length");
        goto out;
    }
    int layers_conv = ns ? ns : (nk ? nk : n);
    if (layers_conv) {
        if (!(n && nk && ns) && layers_conv != c->conv_layers) {
            hafm_error("config: 'conv_dim', 'conv_kernel' and 'conv_stride' must be given together");
            goto out;
        }
        c->conv_layers = layers_conv;
        for (int i = 0; i < layers_conv; i++) {
            if (n) c->conv_dim[i] = dims[i];
            if (nk) c->conv_kernel[i] = kern[i];
            if (ns) c->conv_stride[i] = strd[i];
        }
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "feat_extract_norm");
    if (norm) {
        if (cJSON_IsString(norm) && strcmp(norm->valuestring, "group") == 0)
            c->conv_norm = HAFM_HUBERT_NORM_GROUP;
        else if (cJSON_IsString(norm) && strcmp(norm->valuestring, "layer") == 0)
            c->conv_norm = HAFM_HUBERT_NORM_LAYER;
        else {
            hafm_error("config: 'feat_extract_norm' must be \"group\" or \"layer\"");
            goto out;
        }
    }
    if (json_gelu(root, "feat_extract_activation") < 0 || json_gelu(root, "hidden_act") < 0) goto out;
    if (json_int(root, "conv_bias", 0, 1, &c->conv_bias) < 0 ||
        json_int(root, "hidden_size", 1, 65536, &c->hidden) < 0 ||
        json_int(root, "num_attention_heads", 1, 1024, &c->heads) < 0 ||
        json_int(root, "intermediate_size", 1, 1 << 20, &c->ffn) < 0 ||
        json_int(root, "num_hidden_layers", 1, 1024, &c->layers) < 0 ||
        json_int(root, "num_conv_pos_embeddings", 1, 65536, &c->pos_kernel) < 0 ||
        json_int(root, "num_conv_pos_embedding_groups", 1, 65536, &c->pos_groups) < 0)
        goto out;
    int stable = c->stable_layer_norm;
    if (json_int(root, "do_stable_layer_norm", 0, 1, &stable) < 0) goto out;
    if (stable != c->stable_layer_norm) {
        /* Large checkpoints normalise the waveform; their preprocessor_config.json says so, not
         * config.json, so follow the architecture unless the config states it explicitly. */
        c->stable_layer_norm = stable;
        c->normalize_input = stable;
    }
    if (json_int(root, "do_normalize", 0, 1, &c->normalize_input) < 0 ||
        json_int(root, "do_normalize_input", 0, 1, &c->normalize_input) < 0)
        goto out;
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
    if (eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1)) {
            hafm_error("config: 'layer_norm_eps' must be a number in (0, 1)");
            goto out;
        }
        c->eps = (float)eps->valuedouble;
    }
    if (c->hidden % c->heads || c->hidden % c->pos_groups) {
        hafm_error("config: hidden_size %d is not a multiple of num_attention_heads %d and "
                   "num_conv_pos_embedding_groups %d", c->hidden, c->heads, c->pos_groups);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

const hafm_hubert_config *hafm_hubert_get_config(const hafm_hubert *m) { return &m->cfg; }
int hafm_hubert_max_layer(const hafm_hubert *m) { return m->nlayers; }

int hafm_hubert_hop(const hafm_hubert_config *c)
{
    int s = 1;
    for (int i = 0; i < c->conv_layers; i++) s *= c->conv_stride[i];
    return s;
}

int hafm_hubert_receptive_field(const hafm_hubert_config *c)
{
    int r = 1, jump = 1;
    for (int i = 0; i < c->conv_layers; i++) {
        r += (c->conv_kernel[i] - 1) * jump;
        jump *= c->conv_stride[i];
    }
    return r;
}

int64_t hafm_hubert_frames(const hafm_hubert_config *c, int64_t n)
{
    for (int i = 0; i < c->conv_layers; i++) {
        if (n < c->conv_kernel[i]) return 0;
        n = (n - c->conv_kernel[i]) / c->conv_stride[i] + 1;
    }
    return n;
}

/* ---- loading --------------------------------------------------------------------------------- */

typedef struct {
    hafm_safetensors *st;
    const char *path;
} loader;

static const hafm_st_tensor *find_tensor(const loader *ld, const char *name)
{
    const hafm_st_tensor *t = hafm_st_find(ld->st, name);
    if (!t) {
        char prefixed[256];
        snprintf(prefixed, sizeof prefixed, "hubert.%s", name);
        t = hafm_st_find(ld->st, prefixed);
    }
    return t;
}

/* Loads tensor `name` (or "hubert." name) with exactly the given shape. */
static float *load(const loader *ld, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    const hafm_st_tensor *t = find_tensor(ld, name);
    if (!t) {
        hafm_error("%s: missing tensor '%s'", ld->path, name);
        return NULL;
    }
    int64_t shape[3] = {d0, d1, d2};
    float *out = hafm_st_load_f32(ld->st, t->name, ndim, shape);
    return out;
}

static int conv_shape_from_tensors(const loader *ld, hafm_hubert_config *c)
{
    /* Without a config, the layout recoverable from shapes: conv dims and kernels, D, F,
     * pos-conv kernel and groups, layer count. Strides and heads come from the preset. */
    char name[128];
    for (int i = 0; i < c->conv_layers; i++) {
        snprintf(name, sizeof name, "feature_extractor.conv_layers.%d.conv.weight", i);
        const hafm_st_tensor *t = find_tensor(ld, name);
        if (t && t->ndim == 3 && t->shape[0] > 0 && t->shape[2] > 0 && t->shape[0] < 65536 && t->shape[2] < 65536) {
            c->conv_dim[i] = (int)t->shape[0];
            c->conv_kernel[i] = (int)t->shape[2];
        }
    }
    snprintf(name, sizeof name, "feature_extractor.conv_layers.%d.layer_norm.weight", c->conv_layers > 1 ? 1 : 0);
    if (c->conv_layers > 1 && find_tensor(ld, name)) c->conv_norm = HAFM_HUBERT_NORM_LAYER;
    snprintf(name, sizeof name, "feature_extractor.conv_layers.0.conv.bias");
    c->conv_bias = find_tensor(ld, name) != NULL;
    const hafm_st_tensor *t = find_tensor(ld, "encoder.layers.0.feed_forward.intermediate_dense.weight");
    if (t && t->ndim == 2 && t->shape[0] > 0 && t->shape[0] < (1 << 20)) c->ffn = (int)t->shape[0];
    t = find_tensor(ld, "encoder.pos_conv_embed.conv.weight_v");
    if (!t) t = find_tensor(ld, "encoder.pos_conv_embed.conv.parametrizations.weight.original1");
    if (!t) t = find_tensor(ld, "encoder.pos_conv_embed.conv.weight");
    if (t && t->ndim == 3 && t->shape[1] > 0 && t->shape[2] > 0 && t->shape[2] < 65536 && c->hidden % t->shape[1] == 0) {
        c->pos_kernel = (int)t->shape[2];
        c->pos_groups = c->hidden / (int)t->shape[1];
    }
    int layers = 0;
    for (;;) {
        snprintf(name, sizeof name, "encoder.layers.%d.final_layer_norm.weight", layers);
        if (!find_tensor(ld, name) || layers >= 1024) break;
        layers++;
    }
    if (layers) c->layers = layers;
    return 0;
}

static char *read_text_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? 2 * cap : 8192;
            if (cap > (16u << 20)) break;
            buf = hafm_xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0) break;
    }
    fclose(fp);
    if (buf) buf[len] = 0;
    return buf;
}

static int load_config(const loader *ld, hafm_hubert_config *c)
{
    const hafm_st_tensor *proj = find_tensor(ld, "feature_projection.projection.weight");
    if (!proj) {
        hafm_error("%s: missing tensor 'feature_projection.projection.weight' (not a HuBERT checkpoint?)", ld->path);
        return -1;
    }
    if (proj->ndim == 2 && proj->shape[0] == 1024) hafm_hubert_config_large(c);
    else hafm_hubert_config_base(c);

    const char *meta = hafm_st_meta(ld->st, "config");
    char *side = NULL;
    if (!meta) {
        const char *slash = strrchr(ld->path, '/');
        size_t dirlen = slash ? (size_t)(slash - ld->path) + 1 : 0;
        char *cfgpath = hafm_xmalloc(dirlen + 16);
        memcpy(cfgpath, ld->path, dirlen);
        strcpy(cfgpath + dirlen, "config.json");
        side = read_text_file(cfgpath);
        free(cfgpath);
        meta = side;
    }
    if (meta) {
        int rc = hafm_hubert_config_parse(c, meta);
        free(side);
        if (rc < 0) {
            hafm_error_prefix("%s", ld->path);
            return -1;
        }
        return 0;
    }
    if (proj->ndim == 2 && proj->shape[0] > 0 && proj->shape[0] < 65536) c->hidden = (int)proj->shape[0];
    if (c->hidden != 768 && c->hidden != 1024) {
        if (c->hidden % 64) {
            hafm_error("%s: hidden size %d needs a config (heads cannot be inferred)", ld->path, c->hidden);
            return -1;
        }
        c->heads = c->hidden / 64;
    }
    return conv_shape_from_tensors(ld, c);
}

/* Weight norm over dim 2: w[o,i,k] = g[k] v[o,i,k] / ||v[:,:,k]||, then regrouped per group as
 * [G, Dg, K*Dg] for the im2col GEMM. */
static float *load_pos_conv(const loader *ld, const hafm_hubert_config *c)
{
    int D = c->hidden, K = c->pos_kernel, G = c->pos_groups, Dg = D / G;
    float *w = NULL;
    const char *base = "encoder.pos_conv_embed.conv.";
    char gname[128], vname[128];
    snprintf(gname, sizeof gname, "%sweight_g", base);
    snprintf(vname, sizeof vname, "%sweight_v", base);
    if (!find_tensor(ld, gname)) {
        snprintf(gname, sizeof gname, "%sparametrizations.weight.original0", base);
        snprintf(vname, sizeof vname, "%sparametrizations.weight.original1", base);
    }
    if (find_tensor(ld, gname)) {
        float *g = load(ld, gname, 3, 1, 1, K);
        float *v = g ? load(ld, vname, 3, D, Dg, K) : NULL;
        if (!v) {
            free(g);
            return NULL;
        }
        for (int k = 0; k < K; k++) {
            double ss = 0;
            for (int64_t j = 0; j < (int64_t)D * Dg; j++) ss += (double)v[j * K + k] * v[j * K + k];
            double scale = ss > 0 ? g[k] / sqrt(ss) : 0.0;
            for (int64_t j = 0; j < (int64_t)D * Dg; j++) v[j * K + k] = (float)(v[j * K + k] * scale);
        }
        free(g);
        w = v;
    } else {
        char fname[128];
        snprintf(fname, sizeof fname, "%sweight", base);
        if (!find_tensor(ld, fname)) {
            hafm_error("%s: missing tensor '%sweight_g' (or parametrizations.weight.original0, or a fused weight)",
                       ld->path, base);
            return NULL;
        }
        w = load(ld, fname, 3, D, Dg, K);
        if (!w) return NULL;
    }
    float *out = hafm_aligned_alloc((size_t)D * Dg * K * sizeof(float));
    for (int o = 0; o < D; o++)
        for (int i = 0; i < Dg; i++)
            for (int k = 0; k < K; k++)
                out[(size_t)o * K * Dg + (size_t)k * Dg + i] = w[((size_t)o * Dg + i) * K + k];
    free(w);
    return out;
}

static int load_conv(const loader *ld, const hafm_hubert_config *c, int i, conv_layer *L)
{
    int cin = i ? c->conv_dim[i - 1] : 1, cout = c->conv_dim[i], k = c->conv_kernel[i];
    char name[128];
    snprintf(name, sizeof name, "feature_extractor.conv_layers.%d.conv.weight", i);
    float *w = load(ld, name, 3, cout, cin, k);
    if (!w) return -1;
    L->w = hafm_aligned_alloc((size_t)cout * cin * k * sizeof(float));
    for (int o = 0; o < cout; o++)
        for (int ci = 0; ci < cin; ci++)
            for (int kk = 0; kk < k; kk++)
                L->w[(size_t)o * k * cin + (size_t)kk * cin + ci] = w[((size_t)o * cin + ci) * k + kk];
    free(w);
    if (c->conv_bias) {
        snprintf(name, sizeof name, "feature_extractor.conv_layers.%d.conv.bias", i);
        if (!(L->b = load(ld, name, 1, cout, 0, 0))) return -1;
    }
    if (c->conv_norm == HAFM_HUBERT_NORM_LAYER || i == 0) {
        snprintf(name, sizeof name, "feature_extractor.conv_layers.%d.layer_norm.weight", i);
        if (!(L->norm_w = load(ld, name, 1, cout, 0, 0))) return -1;
        snprintf(name, sizeof name, "feature_extractor.conv_layers.%d.layer_norm.bias", i);
        if (!(L->norm_b = load(ld, name, 1, cout, 0, 0))) return -1;
    }
    return 0;
}

static void free_layer(enc_layer *L)
{
    float **p = (float **)L;
    for (size_t j = 0; j < sizeof *L / sizeof(float *); j++) free(p[j]), p[j] = NULL;
}

/* Loads (keep) or only checks (!keep) encoder layer n. On failure L holds what was loaded. */
static int load_layer(const loader *ld, const hafm_hubert_config *c, int n, enc_layer *L, int keep)
{
    int D = c->hidden, F = c->ffn, rc = -1;
    char name[160];
    float *qkv[6] = {0};
    static const char *qkv_names[6] = {"attention.q_proj.weight", "attention.k_proj.weight",
                                       "attention.v_proj.weight", "attention.q_proj.bias",
                                       "attention.k_proj.bias", "attention.v_proj.bias"};
    for (int j = 0; j < 6; j++) {
        snprintf(name, sizeof name, "encoder.layers.%d.%s", n, qkv_names[j]);
        if (!(qkv[j] = load(ld, name, j < 3 ? 2 : 1, D, j < 3 ? D : 0, 0))) goto out;
    }
    L->qkv_w = hafm_aligned_alloc((size_t)3 * D * D * sizeof(float));
    L->qkv_b = hafm_aligned_alloc((size_t)3 * D * sizeof(float));
    for (int j = 0; j < 3; j++) {
        memcpy(L->qkv_w + (size_t)j * D * D, qkv[j], (size_t)D * D * sizeof(float));
        memcpy(L->qkv_b + (size_t)j * D, qkv[3 + j], D * sizeof(float));
    }
#define LOAD(dst, suffix, nd, a, b) do { \
        snprintf(name, sizeof name, "encoder.layers.%d.%s", n, suffix); \
        if (!(dst = load(ld, name, nd, a, b, 0))) goto out; } while (0)
    LOAD(L->out_w, "attention.out_proj.weight", 2, D, D);
    LOAD(L->out_b, "attention.out_proj.bias", 1, D, 0);
    LOAD(L->ln1_w, "layer_norm.weight", 1, D, 0);
    LOAD(L->ln1_b, "layer_norm.bias", 1, D, 0);
    LOAD(L->fc1_w, "feed_forward.intermediate_dense.weight", 2, F, D);
    LOAD(L->fc1_b, "feed_forward.intermediate_dense.bias", 1, F, 0);
    LOAD(L->fc2_w, "feed_forward.output_dense.weight", 2, D, F);
    LOAD(L->fc2_b, "feed_forward.output_dense.bias", 1, D, 0);
    LOAD(L->ln2_w, "final_layer_norm.weight", 1, D, 0);
    LOAD(L->ln2_b, "final_layer_norm.bias", 1, D, 0);
#undef LOAD
    rc = 0;
    /* Layers above max_layer are checked, not kept. */
    if (!keep) free_layer(L);
out:
    for (int j = 0; j < 6; j++) free(qkv[j]);
    return rc;
}

void hafm_hubert_free(hafm_hubert *m)
{
    if (!m) return;
    for (int i = 0; i < HAFM_HUBERT_MAX_CONV; i++) {
        free(m->conv[i].w), free(m->conv[i].b);
        free(m->conv[i].norm_w), free(m->conv[i].norm_b);
    }
    free(m->fp_ln_w), free(m->fp_ln_b), free(m->proj_w), free(m->proj_b);
    free(m->pos_w), free(m->pos_b), free(m->enc_ln_w), free(m->enc_ln_b);
    if (m->layer)
        for (int i = 0; i < m->nlayers; i++) free_layer(&m->layer[i]);
    free(m->layer);
    for (int i = 0; i < SCRATCH_SLOTS; i++) free(m->scratch[i]);
    free(m);
}

hafm_hubert *hafm_hubert_load(const char *path, int max_layer)
{
    loader ld = {hafm_st_open(path), path};
    if (!ld.st) return NULL;
    hafm_hubert *m = hafm_xcalloc(1, sizeof *m);
    hafm_hubert_config *c = &m->cfg;
    m->window = HAFM_HUBERT_WINDOW_DEFAULT;
    m->context = HAFM_HUBERT_CONTEXT_DEFAULT;
    m->conv_chunk = 128;
    if (load_config(&ld, c) < 0) goto fail;
    if (c->hidden % c->heads || c->hidden % c->pos_groups) {
        hafm_error("%s: hidden size %d is not a multiple of the heads (%d) and pos-conv groups (%d)",
                   path, c->hidden, c->heads, c->pos_groups);
        goto fail;
    }
    int C = c->conv_dim[c->conv_layers - 1], D = c->hidden;
    for (int i = 0; i < c->conv_layers; i++)
        if (load_conv(&ld, c, i, &m->conv[i]) < 0) goto fail;
    if (find_tensor(&ld, "feature_projection.layer_norm.weight")) {
        if (!(m->fp_ln_w = load(&ld, "feature_projection.layer_norm.weight", 1, C, 0, 0)) ||
            !(m->fp_ln_b = load(&ld, "feature_projection.layer_norm.bias", 1, C, 0, 0)))
            goto fail;
    }
    if (!(m->proj_w = load(&ld, "feature_projection.projection.weight", 2, D, C, 0)) ||
        !(m->proj_b = load(&ld, "feature_projection.projection.bias", 1, D, 0, 0)) ||
        !(m->pos_w = load_pos_conv(&ld, c)) ||
        !(m->pos_b = load(&ld, "encoder.pos_conv_embed.conv.bias", 1, D, 0, 0)) ||
        !(m->enc_ln_w = load(&ld, "encoder.layer_norm.weight", 1, D, 0, 0)) ||
        !(m->enc_ln_b = load(&ld, "encoder.layer_norm.bias", 1, D, 0, 0)))
        goto fail;
    m->nlayers = (max_layer > 0 && max_layer < c->layers) ? max_layer : c->layers;
    m->layer = hafm_xcalloc(c->layers, sizeof *m->layer);
    for (int i = 0; i < c->layers; i++)
        if (load_layer(&ld, c, i, &m->layer[i], i < m->nlayers) < 0) goto fail;
    hafm_st_close(ld.st);
    return m;
fail:
    if (m->layer) {
        /* load_layer leaves partial layers behind on failure; free every slot. */
        m->nlayers = c->layers;
    }
    hafm_hubert_free(m);
    hafm_st_close(ld.st);
    return NULL;
}

int hafm_hubert_set_window(hafm_hubert *m, int window, int context)
{
    if (window < 1 || context < 0 || (int64_t)2 * context >= window) {
        hafm_error("window of %d frames with %d frames of context: need window > 2 * context", window, context);
        return -1;
    }
    m->window = window;
    m->context = context;
    return 0;
}

void hafm_hubert_set_conv_chunk(hafm_hubert *m, int frames) { m->conv_chunk = frames > 0 ? frames : 0; }

void hafm_hubert_set_trace(hafm_hubert *m, hafm_hubert_trace_fn fn, void *ctx)
{
    m->trace = fn;
    m->trace_ctx = ctx;
}

/* ---- kernels --------------------------------------------------------------------------------- */

/* The GELU and softmax exponentials run on GCC generic vectors: with the default
 * -ftrapping-math the compiler will not if-convert the range clamp of a scalar version, and
 * these two loops see ~70 M values per 10 s of audio. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

static inline v8f vsel(v8i mask, v8f a, v8f b) { return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask)); }

/* n <= 8 floats from p into a vector, zero-filled; the full case is one unaligned load. */
static inline v8f vload(const float *p, int n)
{
    v8f v = {0};
    if (n == 8) memcpy(&v, p, sizeof v);
    else memcpy(&v, p, n * sizeof(float));
    return v;
}

static inline void vstore(float *p, v8f v, int n)
{
    if (n == 8) memcpy(p, &v, sizeof v);
    else memcpy(p, &v, n * sizeof(float));
}

/* exp(x) for x <= 0 (Cephes polynomial, Cody-Waite reduction), x clamped at -87. */
static inline v8f exp_neg(v8f x)
{
    x = vsel(x < -87.0f, (v8f){0} - 87.0f, x);
    /* round to nearest by truncating a positive number (x >= -87 keeps it positive) */
    v8i ni = __builtin_convertvector(x * 1.44269504088896341f + 128.5f, v8i) - 128;
    v8f n = __builtin_convertvector(ni, v8f);
    v8f r = x - n * 0.693359375f + n * 2.12194440e-4f;
    v8f p = (v8f){0} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p * (v8f)((ni + 127) << 23);
}

/* GELU with erfc from the Chebyshev fit of Numerical Recipes (erfcc, relative error < 1.2e-7
 * everywhere): Phi(x) = erfc(-x/sqrt2)/2 keeps relative accuracy in the negative tail. */
static inline v8f gelu8(v8f x)
{
    v8f z = (v8f)((v8i)x & 0x7fffffff) * 0.70710678118654752f;
    v8f t = 1.0f / (1.0f + 0.5f * z);
    v8f p = (v8f){0} + 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    v8f half_erfc = 0.5f * t * exp_neg(p - z * z);
    return x * vsel(x < 0.0f, half_erfc, 1.0f - half_erfc);
}

static void gelu_serial(float *out, const float *in, int64_t n)
{
    for (int64_t i = 0; i < n; i += 8) {
        int len = n - i < 8 ? (int)(n - i) : 8;
        vstore(out + i, gelu8(vload(in + i, len)), len);
    }
}

void hafm_gelu_forward(float *out, const float *in, int64_t n)
{
    int64_t blocks = (n + 1023) / 1024;
    #pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t b = 0; b < blocks; b++) gelu_serial(out + 1024 * b, in + 1024 * b, n - 1024 * b < 1024 ? n - 1024 * b : 1024);
}

static void layernorm_row(float *y, const float *x, const float *w, const float *b, int C, float eps)
{
    float sum = 0;
    for (int c = 0; c < C; c++) sum += x[c];
    float mean = sum / C, var = 0;
    for (int c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
    float rstd = 1.0f / sqrtf(var / C + eps);
    for (int c = 0; c < C; c++) y[c] = (x[c] - mean) * rstd * w[c] + b[c];
}

/* out[N,C] = layernorm(inp) * w + b over each row; in place allowed. */
static void layernorm_forward(float *out, const float *inp, const float *w, const float *b,
                              int64_t N, int C, float eps)
{
    #pragma omp parallel for schedule(static) if (N * C > 16384)
    for (int64_t r = 0; r < N; r++) layernorm_row(out + r * C, inp + r * C, w, b, C, eps);
}

/* x += y (the residual), then out = layernorm(x) (out may be x): one pass, one parallel region. */
static void residual_layernorm(float *out, float *x, const float *y, const float *w, const float *b,
                               int64_t N, int C, float eps)
{
    #pragma omp parallel for schedule(static) if (N * C > 16384)
    for (int64_t r = 0; r < N; r++) {
        for (int c = 0; c < C; c++) x[r * C + c] += y[r * C + c];
        if (out) layernorm_row(out + r * C, x + r * C, w, b, C, eps);
    }
}

/* C[M,N] = alpha A op(B) + beta C (A not transposed) over `threads` OpenMP threads, each
 * running a single-threaded BLAS product on a slice of the longer side of C. One thread pool
 * does all the work: a second one (BLAS threads) would spin while the OpenMP loops run and
 * vice versa, which on 2 cores costs more than the slicing. */
static void gemm(int threads, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc)
{
    if (threads <= 1 || (int64_t)M * N * K < (1 << 20)) {
        hafm_sgemm(0, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int split_n = N > M;
    #pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads(), len = split_n ? N : M;
        int a = t ? (int)((int64_t)len * t / nt) & ~15 : 0;
        int b = t == nt - 1 ? len : (int)((int64_t)len * (t + 1) / nt) & ~15;
        if (b > a && split_n)
            hafm_sgemm(0, trans_b, M, b - a, K, alpha, A, lda, trans_b ? B + (size_t)a * ldb : B + a, ldb,
                       beta, C + a, ldc);
        else if (b > a)
            hafm_sgemm(0, trans_b, b - a, N, K, alpha, A + (size_t)a * lda, lda, B, ldb, beta,
                       C + (size_t)a * ldc, ldc);
    }
}

/* out[N,Cout] = inp[N,Cin] W^T + b, W [Cout, Cin], then GELU if asked: each thread fills its
 * slice of out with the bias, multiplies into it and applies the activation, so the whole
 * layer is one parallel region. */
static void linear_forward(int threads, float *out, const float *inp, const float *w, const float *b,
                           int64_t N, int Cin, int Cout, int gelu)
{
    int split_n = Cout > N;
    #pragma omp parallel num_threads(threads > 1 && N * Cout * Cin >= (1 << 20) ? threads : 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads(), len = split_n ? Cout : (int)N;
        int a = t ? (int)((int64_t)len * t / nt) & ~15 : 0;
        int e = t == nt - 1 ? len : (int)((int64_t)len * (t + 1) / nt) & ~15;
        int64_t r0 = split_n ? 0 : a, r1 = split_n ? N : e;
        int c0 = split_n ? a : 0, c1 = split_n ? e : Cout;
        if (e > a) {
            for (int64_t r = r0; r < r1; r++) memcpy(out + r * Cout + c0, b + c0, (c1 - c0) * sizeof(float));
            hafm_sgemm(0, 1, (int)(r1 - r0), c1 - c0, Cin, 1.0f, inp + r0 * Cin, Cin, w + (size_t)c0 * Cin, Cin,
                       1.0f, out + r0 * Cout + c0, Cout);
            if (gelu)
                for (int64_t r = r0; r < r1; r++) gelu_serial(out + r * Cout + c0, out + r * Cout + c0, c1 - c0);
        }
    }
}

/* y[Tout, Cout] = conv1d(x[Tin, Cin]) time-major, no padding; W as conv_layer.w. The taps are
 * done `stride` at a time so each GEMM reads x in place with lda = stride*Cin >= its K. */
static void conv_forward(int threads, float *y, const float *x, const conv_layer *L, int64_t Tout, int Cin,
                         int Cout, int kernel, int stride)
{
    float beta = 0.0f;
    if (L->b) {
        #pragma omp parallel for schedule(static) if (Tout * Cout > 16384)
        for (int64_t r = 0; r < Tout; r++) memcpy(y + r * Cout, L->b, Cout * sizeof(float));
        beta = 1.0f;
    }
    for (int k0 = 0; k0 < kernel; k0 += stride) {
        int taps = kernel - k0 < stride ? kernel - k0 : stride;
        gemm(threads, 1, (int)Tout, Cout, taps * Cin, 1.0f, x + (size_t)k0 * Cin, stride * Cin,
             L->w + (size_t)k0 * Cin, kernel * Cin, beta, y, Cout);
        beta = 1.0f;
    }
}

/* exp(x - rowmax) over each row of x[N, C], in place, and inv[r] = 1 / (row sum): the
 * normalisation is applied to the (narrower) attention output instead. Serial: it runs inside
 * the per-head parallel loop. */
static void softmax_rows_unnormalized(float *x, float *inv, int64_t N, int C)
{
    for (int64_t r = 0; r < N; r++) {
        float *row = x + r * C;
        v8f mx8 = (v8f){0} + row[0];
        for (int c = 0; c < C; c += 8) {
            int len = C - c < 8 ? C - c : 8;
            v8f v = len == 8 ? vload(row + c, 8) : vsel((v8i){0, 1, 2, 3, 4, 5, 6, 7} < len, vload(row + c, len), mx8);
            mx8 = vsel(v > mx8, v, mx8);
        }
        float mx = mx8[0];
        for (int j = 1; j < 8; j++) mx = mx8[j] > mx ? mx8[j] : mx;
        v8f sum = {0};
        for (int c = 0; c < C; c += 8) {
            int len = C - c < 8 ? C - c : 8;
            v8f e = exp_neg(vload(row + c, len) - mx);
            if (len < 8) e = vsel((v8i){0, 1, 2, 3, 4, 5, 6, 7} < len, e, (v8f){0});
            vstore(row + c, e, len);
            sum += e;
        }
        inv[r] = 1.0f / (sum[0] + sum[1] + sum[2] + sum[3] + sum[4] + sum[5] + sum[6] + sum[7]);
    }
}

/* ---- forward --------------------------------------------------------------------------------- */

typedef struct {
    const float *wav;
    int64_t n;
    double in_mean, in_rstd;     /* waveform normalisation (normalize_input) */
    float *gn_scale, *gn_shift;  /* conv layer 0 GroupNorm over the whole input, as an affine map */
    /* scratch */
    float *seg;                  /* samples of one conv chunk */
    float *patches;              /* [T0, k0] input patches of conv layer 0 */
    float *conv_a, *conv_b;      /* conv ping-pong */
    float *feat;                 /* [W, C] */
    float *x, *qkv, *ctx, *tmp, *ffn, *scores, *col;
    int64_t W;                   /* frames in the window buffers */
    int threads;                 /* OpenMP threads that slice the GEMMs (1: BLAS threads) */
} run_state;

static void trace(const hafm_hubert *m, const char *stage, const float *x, int64_t rows, int64_t cols)
{
    if (m->trace) m->trace(m->trace_ctx, stage, x, rows, cols);
}

static void load_samples(const hafm_hubert *m, run_state *s, float *dst, int64_t start, int64_t len)
{
    if (!m->cfg.normalize_input) {
        memcpy(dst, s->wav + start, len * sizeof(float));
        return;
    }
    for (int64_t i = 0; i < len; i++) dst[i] = (float)((s->wav[start + i] - s->in_mean) * s->in_rstd);
}

/* First pass: statistics over the whole input that make the rest translation-equivariant.
 * Conv layer 0 is linear in its input patches X_u (k samples at stride s), so the GroupNorm
 * statistics of channel o follow from the patch mean mu and covariance S exactly:
 * mean_o = b_o + w_o.mu, var_o = w_o^T S w_o, without computing the conv over the input. */
static void global_stats(const hafm_hubert *m, run_state *s)
{
    const hafm_hubert_config *c = &m->cfg;
    if (c->normalize_input) {
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < s->n; i++) sum += s->wav[i];
        double mean = sum / s->n;
        for (int64_t i = 0; i < s->n; i++) sq += (s->wav[i] - mean) * (s->wav[i] - mean);
        s->in_mean = mean;
        s->in_rstd = 1.0 / sqrt(sq / s->n + INPUT_NORM_EPS);
    }
    if (c->conv_norm != HAFM_HUBERT_NORM_GROUP) return;
    const conv_layer *L = &m->conv[0];
    int C0 = c->conv_dim[0], k = c->conv_kernel[0], st = c->conv_stride[0];
    int64_t T0 = (s->n - k) / st + 1;
    double *mu = hafm_xcalloc(k, sizeof(double)), *cov = hafm_xcalloc((size_t)k * k, sizeof(double));
    double *patch = hafm_xmalloc(k * sizeof(double));
    for (int64_t u = 0; u < T0; u++) {
        for (int i = 0; i < k; i++) {
            double v = s->wav[u * st + i];
            patch[i] = c->normalize_input ? (v - s->in_mean) * s->in_rstd : v;
            mu[i] += patch[i];
        }
    }
    for (int i = 0; i < k; i++) mu[i] /= T0;
    for (int64_t u = 0; u < T0; u++) {
        for (int i = 0; i < k; i++) {
            double v = s->wav[u * st + i];
            patch[i] = (c->normalize_input ? (v - s->in_mean) * s->in_rstd : v) - mu[i];
        }
        for (int i = 0; i < k; i++)
            for (int j = 0; j <= i; j++) cov[i * k + j] += patch[i] * patch[j];
    }
    for (int i = 0; i < k; i++)
        for (int j = 0; j <= i; j++) cov[j * k + i] = cov[i * k + j] /= T0;
    for (int o = 0; o < C0; o++) {
        const float *w = L->w + (size_t)o * k;
        double mean = L->b ? L->b[o] : 0, var = 0;
        for (int i = 0; i < k; i++) {
            mean += w[i] * mu[i];
            for (int j = 0; j < k; j++) var += w[i] * cov[i * k + j] * w[j];
        }
        double rstd = 1.0 / sqrt((var > 0 ? var : 0) + GROUPNORM_EPS);
        s->gn_scale[o] = (float)(rstd * L->norm_w[o]);
        s->gn_shift[o] = (float)(L->norm_b[o] - mean * rstd * L->norm_w[o]);
    }
    free(mu), free(cov), free(patch);
}

/* out[T, C] = gelu(x * scale[c] + shift[c]), in place allowed. */
static void affine_gelu(float *out, const float *x, const float *scale, const float *shift, int64_t T, int C)
{
    #pragma omp parallel for schedule(static) if (T * C > 16384)
    for (int64_t r = 0; r < T; r++)
        for (int c = 0; c < C; c += 8) {
            int len = C - c < 8 ? C - c : 8;
            vstore(out + r * C + c, gelu8(vload(x + r * C + c, len) * vload(scale + c, len) + vload(shift + c, len)), len);
        }
}

/* Conv feature extractor for output frames [f0, f1) into feat[f1-f0, C]. */
static void conv_stack(const hafm_hubert *m, run_state *s, int64_t f0, int64_t f1, float *feat)
{
    const hafm_hubert_config *c = &m->cfg;
    int hop = hafm_hubert_hop(c), rf = hafm_hubert_receptive_field(c);
    int64_t len = (f1 - f0 - 1) * hop + rf;
    load_samples(m, s, s->seg, f0 * hop, len);
    const float *in = s->seg;
    int64_t tin = len;
    int cin = 1;
    char stage[32];
    for (int i = 0; i < c->conv_layers; i++) {
        int cout = c->conv_dim[i], k = c->conv_kernel[i], st = c->conv_stride[i];
        int64_t tout = (tin - k) / st + 1;
        float *out = i == c->conv_layers - 1 ? feat : (i % 2 ? s->conv_b : s->conv_a);
        if (cin == 1) {
            /* the waveform layer: a [T, k] patch matrix makes it one GEMM instead of k/stride
             * passes over its (large) output */
            #pragma omp parallel for schedule(static) if (tout * k > 16384)
            for (int64_t r = 0; r < tout; r++) memcpy(s->patches + r * k, in + r * st, k * sizeof(float));
            conv_forward(s->threads, out, s->patches, &m->conv[i], tout, k, cout, 1, 1);
        } else {
            conv_forward(s->threads, out, in, &m->conv[i], tout, cin, cout, k, st);
        }
        snprintf(stage, sizeof stage, "conv%d_raw", i);
        trace(m, stage, out, tout, cout);
        const conv_layer *L = &m->conv[i];
        if (c->conv_norm == HAFM_HUBERT_NORM_LAYER) {
            layernorm_forward(out, out, L->norm_w, L->norm_b, tout, cout, CONV_LAYERNORM_EPS);
        } else if (i == 0) {
            affine_gelu(out, out, s->gn_scale, s->gn_shift, tout, cout);
        }
        if (c->conv_norm == HAFM_HUBERT_NORM_LAYER || i > 0) hafm_gelu_forward(out, out, tout * cout);
        snprintf(stage, sizeof stage, "conv%d_out", i);
        trace(m, stage, out, tout, cout);
        in = out;
        tin = tout;
        cin = cout;
    }
}

/* Positional conv embedding of h[T, D] into p[T, D] (before the residual add, after GELU). */
static void pos_conv(const hafm_hubert *m, run_state *s, float *p, const float *h, int64_t T)
{
    const hafm_hubert_config *c = &m->cfg;
    int D = c->hidden, K = c->pos_kernel, G = c->pos_groups, Dg = D / G, pad = K / 2;
    /* An even kernel with padding K/2 yields T+1 frames of which the last is dropped ("SamePad");
     * an odd one with padding (K-1)/2 yields T. Both are p[t] = sum_k w_k h[t + k - K/2]. */
    #pragma omp parallel for schedule(static) if (T * D > 16384)
    for (int64_t t = 0; t < T; t++) memcpy(p + t * D, m->pos_b, D * sizeof(float));
    /* groups in parallel, each thread with its own im2col buffer */
    #pragma omp parallel for schedule(dynamic) num_threads(s->threads)
    for (int g = 0; g < G; g++) {
        float *col = s->col + (int64_t)omp_get_thread_num() * T * K * Dg;
        for (int64_t t = 0; t < T; t++) {
            float *row = col + t * (int64_t)K * Dg;
            for (int k = 0; k < K; k++) {
                int64_t src = t + k - pad;
                if (src < 0 || src >= T) memset(row + k * Dg, 0, Dg * sizeof(float));
                else memcpy(row + k * Dg, h + src * D + g * Dg, Dg * sizeof(float));
            }
        }
        hafm_sgemm(0, 1, (int)T, Dg, K * Dg, 1.0f, col, K * Dg, m->pos_w + (size_t)g * Dg * K * Dg,
                   K * Dg, 1.0f, p + g * Dg, D);
    }
    hafm_gelu_forward(p, p, T * D);
}

/* Self-attention of y[T, D] into s->tmp[T, D] (after out_proj). */
static void attention(const hafm_hubert *m, run_state *s, const enc_layer *L, const float *y, int64_t T)
{
    const hafm_hubert_config *c = &m->cfg;
    int D = c->hidden, H = c->heads, hd = D / H;
    linear_forward(s->threads, s->qkv, y, L->qkv_w, L->qkv_b, T, D, 3 * D, 0);
    float scale = 1.0f / sqrtf((float)hd);
    /* heads in parallel, each thread with its own [T, T] scores and [T] row normalisers */
    #pragma omp parallel for schedule(dynamic) num_threads(s->threads)
    for (int h = 0; h < H; h++) {
        float *scores = s->scores + (int64_t)omp_get_thread_num() * (T * T + T), *inv = scores + T * T;
        hafm_sgemm(0, 1, (int)T, (int)T, hd, scale, s->qkv + h * hd, 3 * D, s->qkv + D + h * hd, 3 * D,
                   0.0f, scores, (int)T);
        softmax_rows_unnormalized(scores, inv, T, (int)T);
        hafm_sgemm(0, 0, (int)T, hd, (int)T, 1.0f, scores, (int)T, s->qkv + 2 * D + h * hd, 3 * D, 0.0f,
                   s->ctx + h * hd, D);
        for (int64_t r = 0; r < T; r++)
            for (int j = 0; j < hd; j++) s->ctx[r * D + h * hd + j] *= inv[r];
    }
    linear_forward(s->threads, s->tmp, s->ctx, L->out_w, L->out_b, T, D, D, 0);
}

static void feed_forward(const hafm_hubert *m, run_state *s, const enc_layer *L, const float *y, int64_t T)
{
    int D = m->cfg.hidden, F = m->cfg.ffn;
    linear_forward(s->threads, s->ffn, y, L->fc1_w, L->fc1_b, T, D, F, 1);
    linear_forward(s->threads, s->tmp, s->ffn, L->fc2_w, L->fc2_b, T, F, D, 0);
}

/* Encoder on s->feat[T, C] up to hidden_states[layer], result in s->x[T, D]. */
static void encoder(const hafm_hubert *m, run_state *s, int64_t T, int layer)
{
    const hafm_hubert_config *c = &m->cfg;
    int C = c->conv_dim[c->conv_layers - 1], D = c->hidden;
    char stage[48];
    trace(m, "features", s->feat, T, C);
    if (m->fp_ln_w) {
        layernorm_forward(s->feat, s->feat, m->fp_ln_w, m->fp_ln_b, T, C, c->eps);
        trace(m, "fp_layernorm", s->feat, T, C);
    }
    linear_forward(s->threads, s->x, s->feat, m->proj_w, m->proj_b, T, C, D, 0);
    trace(m, "projection", s->x, T, D);
    pos_conv(m, s, s->tmp, s->x, T);
    trace(m, "pos_conv", s->tmp, T, D);
    residual_layernorm(c->stable_layer_norm ? NULL : s->x, s->x, s->tmp, m->enc_ln_w, m->enc_ln_b, T, D, c->eps);
    trace(m, "hidden_states_00", s->x, T, D);
    for (int l = 1; l <= layer; l++) {
        const enc_layer *L = &m->layer[l - 1];
        if (c->stable_layer_norm) {
            layernorm_forward(s->ctx, s->x, L->ln1_w, L->ln1_b, T, D, c->eps);
            attention(m, s, L, s->ctx, T);
            snprintf(stage, sizeof stage, "layer%02d_attn_out", l);
            trace(m, stage, s->tmp, T, D);
            residual_layernorm(s->ctx, s->x, s->tmp, L->ln2_w, L->ln2_b, T, D, c->eps);
            feed_forward(m, s, L, s->ctx, T);
            snprintf(stage, sizeof stage, "layer%02d_ffn_out", l);
            trace(m, stage, s->tmp, T, D);
            residual_layernorm(NULL, s->x, s->tmp, NULL, NULL, T, D, c->eps);
            /* HF appends the encoder LayerNorm output as the last hidden state. */
            if (l == c->layers) layernorm_forward(s->x, s->x, m->enc_ln_w, m->enc_ln_b, T, D, c->eps);
        } else {
            attention(m, s, L, s->x, T);
            snprintf(stage, sizeof stage, "layer%02d_attn_out", l);
            trace(m, stage, s->tmp, T, D);
            residual_layernorm(s->x, s->x, s->tmp, L->ln1_w, L->ln1_b, T, D, c->eps);
            snprintf(stage, sizeof stage, "layer%02d_after_attn_ln", l);
            trace(m, stage, s->x, T, D);
            feed_forward(m, s, L, s->x, T);
            snprintf(stage, sizeof stage, "layer%02d_ffn_out", l);
            trace(m, stage, s->tmp, T, D);
            residual_layernorm(s->x, s->x, s->tmp, L->ln2_w, L->ln2_b, T, D, c->eps);
        }
        snprintf(stage, sizeof stage, "hidden_states_%02d", l);
        trace(m, stage, s->x, T, D);
    }
}

/* Slot i of the model's working memory with room for n floats. */
static float *scratch(hafm_hubert *m, int i, int64_t n)
{
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    if (m->scratch_cap[i] < bytes) {
        free(m->scratch[i]);
        m->scratch[i] = hafm_aligned_alloc(bytes);
        m->scratch_cap[i] = bytes;
    }
    return m->scratch[i];
}

int hafm_hubert_extract(hafm_hubert *m, const float *wav, int64_t n, int layer,
                        hafm_hubert_emit_fn emit, void *ctx)
{
    const hafm_hubert_config *c = &m->cfg;
    int rf = hafm_hubert_receptive_field(c), hop = hafm_hubert_hop(c);
    if (n < rf) {
        hafm_error("input too short: %lld samples, the model needs at least %d (%.0f ms at 16 kHz)",
                   (long long)n, rf, 1000.0 * rf / HAFM_HUBERT_SAMPLE_RATE);
        return -1;
    }
    if (layer < 0 || layer > m->nlayers) {
        hafm_error("layer %d out of range: this model has layers 0..%d", layer, m->nlayers);
        return -1;
    }
    int64_t T = hafm_hubert_frames(c, n);
    int64_t W = T <= m->window ? T : m->window;
    int64_t chunk = m->conv_chunk > 0 && m->conv_chunk < W ? m->conv_chunk : W;
    int C = c->conv_dim[c->conv_layers - 1], D = c->hidden, F = c->ffn;
    int K = c->pos_kernel, Dg = D / c->pos_groups;

    run_state s = {.wav = wav, .n = n, .W = W};
    /* Conv chunk buffers: a chunk of `chunk` frames needs (chunk-1)*hop + rf samples. */
    int64_t seg_cap = (chunk - 1) * hop + rf;
    int64_t conv_cap = 0, tin = seg_cap;
    for (int i = 0; i < c->conv_layers; i++) {
        int64_t tout = (tin - c->conv_kernel[i]) / c->conv_stride[i] + 1;
        if (tout * c->conv_dim[i] > conv_cap) conv_cap = tout * c->conv_dim[i];
        tin = tout;
    }
    int slot = 0;
    s.seg = scratch(m, slot++, seg_cap);
    s.patches = scratch(m, slot++, ((seg_cap - c->conv_kernel[0]) / c->conv_stride[0] + 1) * c->conv_kernel[0]);
    s.conv_a = scratch(m, slot++, conv_cap);
    s.conv_b = scratch(m, slot++, conv_cap);
    s.gn_scale = scratch(m, slot++, c->conv_dim[0]);
    s.gn_shift = scratch(m, slot++, c->conv_dim[0]);
    s.feat = scratch(m, slot++, W * C);
    s.x = scratch(m, slot++, W * D);
    s.qkv = scratch(m, slot++, W * 3 * D);
    s.ctx = scratch(m, slot++, W * D);
    s.tmp = scratch(m, slot++, W * D);
    s.ffn = scratch(m, slot++, W * F);
    /* With the OpenBLAS backend, one OpenMP pool slices every product and BLAS runs
     * single-threaded meanwhile; other backends (cuBLAS) take whole products. */
    s.threads = strcmp(hafm_backend_name(), "openblas") == 0 ? hafm_get_threads() : 1;
    s.scores = scratch(m, slot++, s.threads * (W * W + W));
    s.col = scratch(m, slot++, s.threads * W * K * Dg);

    global_stats(m, &s);
    int blas_threads = openblas_get_num_threads();
    if (s.threads > 1) openblas_set_num_threads(1);

    int rc = 0;
    int64_t out = 0;
    while (out < T && rc == 0) {
        /* Window [a, a+W) covering the next frames to emit with `context` frames before them;
         * the last window is aligned to the end so every window has the full length. */
        int64_t a = out - m->context;
        if (a > T - W) a = T - W;
        if (a < 0) a = 0;
        int64_t keep_end = a + W >= T ? T : a + W - m->context;
        for (int64_t f0 = a; f0 < a + W; f0 += chunk) {
            int64_t f1 = f0 + chunk < a + W ? f0 + chunk : a + W;
            conv_stack(m, &s, f0, f1, s.feat + (f0 - a) * C);
        }
        encoder(m, &s, W, layer);
        rc = emit(ctx, out, keep_end - out, s.x + (out - a) * D);
        out = keep_end;
    }
    if (s.threads > 1) openblas_set_num_threads(blas_threads);
    return rc;
}

typedef struct {
    float *out;
    int D;
} collect_ctx;

static int collect(void *ctx, int64_t t0, int64_t frames, const float *x)
{
    collect_ctx *cc = ctx;
    memcpy(cc->out + t0 * cc->D, x, frames * cc->D * sizeof(float));
    return 0;
}

float *hafm_hubert_features(hafm_hubert *m, const float *wav, int64_t n, int layer, int64_t *frames)
{
    int64_t T = hafm_hubert_frames(&m->cfg, n);
    collect_ctx cc = {hafm_aligned_alloc((T > 0 ? T : 1) * m->cfg.hidden * sizeof(float)), m->cfg.hidden};
    if (hafm_hubert_extract(m, wav, n, layer, collect, &cc) < 0) {
        free(cc.out);
        return NULL;
    }
    *frames = T;
    return cc.out;
}
