/* test_hubert.c - HuBERT forward pass against the torchaudio goldens (tests/data/hubert, from
 * ../shared/golden/hubert), loader acceptance of the full-size Base layout and of the HF naming
 * variants, loader errors, conv chunking and long-input windows. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hafm.h"
#include "hafm/hubert.h"
#include "hafm/kmeans.h"

#define TOL 1e-4

/* tests/data/hubert/<rel>, else $HAFM_SHARED/golden/hubert/<rel>; NULL when neither exists. */
static const char *data_path(const char *rel)
{
    static char buf[4][1024];
    static int slot;
    char *out = buf[slot++ % 4];
    const char *data = getenv("HAFM_DATA") ? getenv("HAFM_DATA") : "tests/data";
    snprintf(out, 1024, "%s/hubert/%s", data, rel);
    if (access(out, R_OK) == 0) return out;
    const char *shared = getenv("HAFM_SHARED");
    if (shared) {
        snprintf(out, 1024, "%s/golden/hubert/%s", shared, rel);
        if (access(out, R_OK) == 0) return out;
    }
    return NULL;
}

static void *read_file(const char *path, size_t *nbytes)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? n : 1);
    assert_int_equal(fread(buf, 1, n, fp), (size_t)n);
    fclose(fp);
    *nbytes = n;
    return buf;
}

static float *read_input(const char *name, int64_t *n)
{
    char rel[256];
    snprintf(rel, sizeof rel, "inputs/%s.f32", name);
    const char *p = data_path(rel);
    assert_non_null(p);
    size_t nb;
    float *x = read_file(p, &nb);
    *n = nb / sizeof(float);
    return x;
}

static hafm_hubert *load_small(void)
{
    const char *p = data_path("hubert_small_seed5_hf.safetensors");
    assert_non_null(p);
    hafm_hubert *m = hafm_hubert_load(p, 0);
    if (!m) fail_msg("%s", hafm_last_error());
    return m;
}

/* ---- golden stages ---------------------------------------------------------------------------- */

typedef struct {
    const char *input;
    int compared;
    double worst;
} stage_ctx;

static void compare_stage(void *vctx, const char *stage, const float *x, int64_t rows, int64_t cols)
{
    stage_ctx *ctx = vctx;
    char rel[256];
    snprintf(rel, sizeof rel, "small/%s/%s.f32", ctx->input, stage);
    const char *p = data_path(rel);
    if (!p) return;
    size_t nb;
    float *ref = read_file(p, &nb);
    /* conv stages are stored channel-major [C, T] (PyTorch layout), the rest [T, D]. The conv
     * stack computes only the frames the output needs: the reference may hold a few more at the
     * end (they only feed the GroupNorm statistics, which are taken over the whole input). */
    int channel_major = strncmp(stage, "conv", 4) == 0;
    int64_t ref_rows = nb / sizeof(float) / cols;
    if (nb != (size_t)(ref_rows * cols) * sizeof(float) || ref_rows < rows || (!channel_major && ref_rows != rows))
        fail_msg("%s: %zu bytes, expected [%lld,%lld]", rel, nb, (long long)rows, (long long)cols);
    double md = 0;
    for (int64_t t = 0; t < rows; t++)
        for (int64_t c = 0; c < cols; c++) {
            float r = channel_major ? ref[c * ref_rows + t] : ref[t * cols + c];
            double d = fabs((double)x[t * cols + c] - r);
            if (!(d <= md)) md = d;
        }
    printf("# %s (small/%s/%s, %lld of %lld frames) max_diff=%.3g\n", md <= TOL ? "OK" : "FAIL",
           ctx->input, stage, (long long)rows, (long long)ref_rows, md);
    free(ref);
    if (!(md <= ctx->worst)) ctx->worst = md;
    ctx->compared++;
}

static void parity(const char *input, int min_stages)
{
    hafm_hubert *m = load_small();
    int64_t n, T;
    float *wav = read_input(input, &n);
    stage_ctx ctx = {input, 0, 0};
    hafm_hubert_set_conv_chunk(m, 0);   /* one conv pass: the trace sees whole golden stages */
    hafm_hubert_set_trace(m, compare_stage, &ctx);
    float *h = hafm_hubert_features(m, wav, n, 2, &T);
    assert_non_null(h);
    assert_int_equal(T, (n - 400) / 320 + 1);
    printf("# parity %s: %d stages, worst max_diff=%.3g\n", input, ctx.compared, ctx.worst);
    assert_true(ctx.compared >= min_stages);
    assert_true(ctx.worst <= TOL);
    free(h), free(wav);
    hafm_hubert_free(m);
}

static void test_parity_synth(void **state) { (void)state; parity("synth_1s", 18); }
static void test_parity_real(void **state)
{
    (void)state;
    /* tests/data keeps the post-conv stages of real_2s; the conv stack ones come from
     * $HAFM_SHARED when present */
    parity("real_2s", data_path("small/real_2s/conv0_raw.f32") ? 18 : 11);
}

/* The pre-norm ("stable layer norm") Large variant: a tiny model against an independent float64
 * PyTorch implementation of the HF semantics (tests/ref/hubert_large_tiny_ref.py). */
static void test_large_tiny(void **state)
{
    (void)state;
    const char *p = data_path("large_tiny/model.safetensors");
    assert_non_null(p);
    hafm_hubert *m = hafm_hubert_load(p, 0);
    if (!m) fail_msg("%s", hafm_last_error());
    const hafm_hubert_config *c = hafm_hubert_get_config(m);
    assert_int_equal(c->stable_layer_norm, 1);
    assert_int_equal(c->conv_norm, HAFM_HUBERT_NORM_LAYER);
    assert_int_equal(c->conv_bias, 1);
    assert_int_equal(c->normalize_input, 1);
    int64_t n;
    float *wav = read_input("synth_1s", &n);
    double worst = 0;
    for (int layer = 0; layer <= 3; layer++) {
        int64_t T;
        float *h = hafm_hubert_features(m, wav, n, layer, &T);
        assert_non_null(h);
        char rel[64];
        size_t nb;
        snprintf(rel, sizeof rel, "large_tiny/hidden_states_%02d.f32", layer);
        float *ref = read_file(data_path(rel), &nb);
        assert_int_equal(nb, (size_t)T * 64 * sizeof(float));
        double md = 0;
        for (int64_t i = 0; i < T * 64; i++) md = fmax(md, fabs(h[i] - ref[i]));
        printf("# %s (large_tiny/%s) max_diff=%.3g\n", md <= TOL ? "OK" : "FAIL", rel + 11, md);
        worst = fmax(worst, md);
        free(h), free(ref);
    }
    assert_true(worst <= TOL);
    free(wav);
    hafm_hubert_free(m);
}

/* Tokens of layer 2 with the golden 16-centroid codebook, where the reference margin allows. */
static void test_tokens(void **state)
{
    (void)state;
    hafm_hubert *m = load_small();
    hafm_codebook cb;
    const char *names[2] = {"kmeans/hubert_small_seed5_L2_km16.safetensors", "kmeans/hubert_small_seed5_L2_km16.npy"};
    const char *inputs[3] = {"synth_1s", "real_2s", "heldout_1p5s"};
    for (int f = 0; f < 2; f++) {
        if (hafm_codebook_load(&cb, data_path(names[f])) < 0) fail_msg("%s", hafm_last_error());
        assert_int_equal(cb.k, 16);
        assert_int_equal(cb.d, 96);
        for (int i = 0; i < 3; i++) {
            int64_t n, T;
            float *wav = read_input(inputs[i], &n);
            float *h = hafm_hubert_features(m, wav, n, 2, &T);
            assert_non_null(h);
            char rel[256];
            size_t nb;
            snprintf(rel, sizeof rel, "small/%s/hidden_states_02.f32", inputs[i]);
            float *ref = read_file(data_path(rel), &nb);
            assert_int_equal(nb, (size_t)T * 96 * sizeof(float));
            double md = 0;
            for (int64_t j = 0; j < T * 96; j++) md = fmax(md, fabs(h[j] - ref[j]));
            snprintf(rel, sizeof rel, "small/%s/tokens_L2_km16.i32", inputs[i]);
            int32_t *tok = read_file(data_path(rel), &nb);
            assert_int_equal(nb, (size_t)T * 4);
            snprintf(rel, sizeof rel, "small/%s/tokens_L2_km16_margin.f32", inputs[i]);
            float *margin = read_file(data_path(rel), &nb);
            int32_t *lab = malloc(T * sizeof(int32_t));
            hafm_kmeans_assign(lab, NULL, h, T, &cb);
            int checked = 0, mismatched = 0;
            for (int64_t t = 0; t < T; t++) {
                if (margin[t] < 1e-4f) continue;
                checked++;
                mismatched += lab[t] != tok[t];
            }
            printf("# %s (tokens %s, %s) hidden_states_02 max_diff=%.3g, %d/%lld frames checked, %d mismatched\n",
                   mismatched ? "FAIL" : "OK", inputs[i], f ? "npy" : "safetensors", md, checked, (long long)T, mismatched);
            assert_true(md <= TOL);
            assert_int_equal(mismatched, 0);
            assert_true(checked > T / 2);
            free(h), free(wav), free(ref), free(tok), free(margin), free(lab);
        }
        hafm_codebook_free(&cb);
    }
    hafm_hubert_free(m);
}

/* The conv stack in chunks equals one pass up to rounding; outputs frame count is exact. */
static void test_conv_chunks(void **state)
{
    (void)state;
    hafm_hubert *m = load_small();
    int64_t n, T1, T2;
    float *wav = read_input("real_2s", &n);
    hafm_hubert_set_conv_chunk(m, 0);
    float *a = hafm_hubert_features(m, wav, n, 2, &T1);
    hafm_hubert_set_conv_chunk(m, 7);
    float *b = hafm_hubert_features(m, wav, n, 2, &T2);
    assert_int_equal(T1, T2);
    double md = 0;
    for (int64_t i = 0; i < T1 * 96; i++) md = fmax(md, fabs(a[i] - b[i]));
    printf("# OK (conv chunks of 7 frames vs one pass) max_diff=%.3g\n", md);
    assert_true(md <= 1e-5);
    free(a), free(b), free(wav);
    hafm_hubert_free(m);
}

/* Inputs no longer than the window are processed whole: bit-identical to an unbounded window. */
static void test_window_short_exact(void **state)
{
    (void)state;
    hafm_hubert *m = load_small();
    int64_t n, T1, T2, T3;
    float *wav = read_input("real_2s", &n);
    float *a = hafm_hubert_features(m, wav, n, 2, &T1);          /* default window 999 frames */
    assert_int_equal(hafm_hubert_set_window(m, 1 << 30, 100), 0);
    float *b = hafm_hubert_features(m, wav, n, 2, &T2);
    assert_int_equal(hafm_hubert_set_window(m, (int)T1, 10), 0); /* window exactly the input */
    float *c = hafm_hubert_features(m, wav, n, 2, &T3);
    assert_int_equal(T1, T2);
    assert_int_equal(T1, T3);
    assert_memory_equal(a, b, T1 * 96 * sizeof(float));
    assert_memory_equal(a, c, T1 * 96 * sizeof(float));
    printf("# OK (window >= input: identical to whole) max_diff=0 over %lld frames\n", (long long)T1);
    assert_int_equal(hafm_hubert_set_window(m, 100, 50), -1);    /* needs window > 2 context */
    free(a), free(b), free(c), free(wav);
    hafm_hubert_free(m);
}

/* A long input (~64 s) in the default windows: every frame is produced once, in order, and the difference
 * from whole-input processing is reported. */
typedef struct {
    int64_t next;
    float *out;
    int64_t max_chunk;
} order_ctx;

static int check_order(void *vctx, int64_t t0, int64_t frames, const float *x)
{
    order_ctx *o = vctx;
    assert_int_equal(t0, o->next);
    memcpy(o->out + t0 * 96, x, frames * 96 * sizeof(float));
    o->next += frames;
    if (frames > o->max_chunk) o->max_chunk = frames;
    return 0;
}

static void test_window_long(void **state)
{
    (void)state;
    hafm_hubert *m = load_small();
    const char *inputs[4] = {"real_2s", "synth_1s", "heldout_1p5s", "real_2s"};
    int64_t n = 0, cap = 16000 * 64;
    float *wav = calloc(cap, sizeof(float));
    for (int rep = 0; n + 32000 <= cap; rep++) {
        int64_t k;
        float *x = read_input(inputs[rep % 4], &k);
        float gain = 0.5f + 0.25f * (rep % 3);
        for (int64_t i = 0; i < k && n < cap; i++) wav[n++] = gain * x[i];
        free(x);
    }
    int64_t T = hafm_hubert_frames(hafm_hubert_get_config(m), n), Tw;
    float *whole;
    assert_int_equal(hafm_hubert_set_window(m, 1 << 30, 0), 0);
    whole = hafm_hubert_features(m, wav, n, 2, &Tw);
    assert_int_equal(Tw, T);
    order_ctx o = {0, malloc(T * 96 * sizeof(float)), 0};
    assert_int_equal(hafm_hubert_set_window(m, HAFM_HUBERT_WINDOW_DEFAULT, HAFM_HUBERT_CONTEXT_DEFAULT), 0);
    assert_int_equal(hafm_hubert_extract(m, wav, n, 2, check_order, &o), 0);
    assert_int_equal(o.next, T);
    assert_true(o.max_chunk <= HAFM_HUBERT_WINDOW_DEFAULT);
    double md = 0, se = 0, sr = 0;
    for (int64_t i = 0; i < T * 96; i++) {
        double d = o.out[i] - whole[i];
        md = fmax(md, fabs(d));
        se += d * d;
        sr += (double)whole[i] * whole[i];
    }
    printf("# OK (%.1f s in windows of %d frames, context %d, vs whole) max_diff=%.3g rel_rms=%.3g\n",
           n / 16000.0, HAFM_HUBERT_WINDOW_DEFAULT, HAFM_HUBERT_CONTEXT_DEFAULT, md, sqrt(se / sr));
    /* misaligned windows would differ by O(1) (rel_rms ~ 1) */
    assert_true(sqrt(se / sr) < 0.05);
    free(whole), free(o.out), free(wav);
    hafm_hubert_free(m);
}

static void test_too_short(void **state)
{
    (void)state;
    hafm_hubert *m = load_small();
    float wav[400] = {0};
    for (int i = 0; i < 400; i++) wav[i] = sinf(i * 0.1f);
    int64_t T;
    assert_null(hafm_hubert_features(m, wav, 399, 2, &T));
    printf("# error: %s\n", hafm_last_error());
    assert_non_null(strstr(hafm_last_error(), "too short"));
    float *h = hafm_hubert_features(m, wav, 400, 2, &T);
    assert_non_null(h);
    assert_int_equal(T, 1);
    free(h);
    assert_null(hafm_hubert_features(m, wav, 400, 3, &T));
    assert_non_null(strstr(hafm_last_error(), "layer 3"));
    hafm_hubert_free(m);
}

static void test_gelu(void **state)
{
    (void)state;
    enum { N = 200001 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = -20.0f + 40.0f * i / (N - 1);
    hafm_gelu_forward(y, x, N);
    double mabs = 0, mrel = 0;
    for (int i = 0; i < N; i++) {
        double ref = 0.5 * x[i] * erfc(-x[i] / sqrt(2.0));
        double d = fabs(y[i] - ref);
        mabs = fmax(mabs, d);
        /* below x = -8 (|gelu| < 1e-14) float rounding of x^2 in the exponent dominates */
        if (x[i] >= -8.0f && ref != 0) mrel = fmax(mrel, d / fabs(ref));
    }
    printf("# OK (gelu vs double erfc on [-20, 20]) max_abs=%.3g max_rel(x >= -8)=%.3g\n", mabs, mrel);
    assert_true(mabs < 2e-6);
    assert_true(mrel < 1e-5);
    free(x), free(y);
}

/* ---- loader ----------------------------------------------------------------------------------- */

static char tmpdir[512];

static int make_tmpdir(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/test_hubert.XXXXXX", base);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The full-size Base layout (hubert_base_hf_tensor_names.json): the header is written as
 * listed and the 377 MB data section is a sparse hole of zeros. */
static void write_base_layout(const char *path, int with_config)
{
    size_t nb;
    char *text = read_file(data_path("hubert_base_hf_tensor_names.json"), &nb);
    text = realloc(text, nb + 1);
    text[nb] = 0;
    cJSON *names = cJSON_Parse(text);
    assert_non_null(names);
    cJSON *tensors = cJSON_GetObjectItem(names, "tensors");
    cJSON *header = cJSON_CreateObject();
    cJSON *meta = cJSON_Duplicate(cJSON_GetObjectItem(names, "metadata"), 1);
    if (!with_config) cJSON_DeleteItemFromObject(meta, "config");
    cJSON_AddItemToObject(header, "__metadata__", meta);
    int64_t offset = 0;
    int count = 0;
    for (cJSON *t = tensors->child; t; t = t->next, count++) {
        cJSON *shape = cJSON_GetObjectItem(t, "shape"), *e;
        int64_t numel = 1;
        cJSON_ArrayForEach(e, shape) numel *= (int64_t)e->valuedouble;
        cJSON *entry = cJSON_CreateObject();
        cJSON_AddStringToObject(entry, "dtype", "F32");
        cJSON_AddItemToObject(entry, "shape", cJSON_Duplicate(shape, 1));
        cJSON *off = cJSON_CreateArray();
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(offset + 4 * numel)));
        cJSON_AddItemToObject(entry, "data_offsets", off);
        cJSON_AddItemToObject(header, t->string, entry);
        offset += 4 * numel;
    }
    assert_int_equal(count, 211);
    char *json = cJSON_PrintUnformatted(header);
    size_t hlen = strlen(json), padded = (hlen + 7) & ~(size_t)7;
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(fd >= 0);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(padded >> (8 * i));
    assert_int_equal(write(fd, len8, 8), 8);
    assert_int_equal(write(fd, json, hlen), (ssize_t)hlen);
    for (size_t i = hlen; i < padded; i++) assert_int_equal(write(fd, " ", 1), 1);
    assert_int_equal(ftruncate(fd, 8 + padded + offset), 0);
    close(fd);
    printf("# full-size Base layout: %d tensors, %.1f MB (sparse)\n", count, offset / 1e6);
    free(json), free(text);
    cJSON_Delete(header);
    cJSON_Delete(names);
}

static void test_full_base_layout(void **state)
{
    (void)state;
    if (!data_path("hubert_base_hf_tensor_names.json")) skip();
    char path[600];
    for (int with_config = 1; with_config >= 0; with_config--) {
        snprintf(path, sizeof path, "%s/base_zero%d.safetensors", tmpdir, with_config);
        write_base_layout(path, with_config);
        hafm_hubert *m = hafm_hubert_load(path, 9);
        if (!m) fail_msg("%s", hafm_last_error());
        const hafm_hubert_config *c = hafm_hubert_get_config(m);
        assert_int_equal(c->hidden, 768);
        assert_int_equal(c->heads, 12);
        assert_int_equal(c->ffn, 3072);
        assert_int_equal(c->layers, 12);
        assert_int_equal(c->pos_kernel, 128);
        assert_int_equal(c->pos_groups, 16);
        assert_int_equal(c->conv_norm, HAFM_HUBERT_NORM_GROUP);
        assert_int_equal(c->stable_layer_norm, 0);
        assert_int_equal(hafm_hubert_receptive_field(c), 400);
        assert_int_equal(hafm_hubert_hop(c), 320);
        assert_int_equal(hafm_hubert_max_layer(m), 9);
        /* zero weights: every layer norm outputs its (zero) bias, so layer 9 is exactly 0 */
        float wav[4000];
        for (int i = 0; i < 4000; i++) wav[i] = 0.1f * sinf(0.05f * i);
        int64_t T;
        float *h = hafm_hubert_features(m, wav, 4000, 9, &T);
        assert_non_null(h);
        assert_int_equal(T, 12);
        for (int64_t i = 0; i < T * 768; i++) assert_true(h[i] == 0.0f);
        free(h);
        hafm_hubert_free(m);
        unlink(path);
    }
    printf("# OK (full-size Base layout accepted, with and without metadata config)\n");
}

/* Rewrites the small model: optional prefix, renamed pos-conv weight-norm tensors, one tensor
 * dropped or reshaped, config in metadata or not. */
typedef struct {
    const char *prefix;
    int parametrizations;
    const char *drop;
    const char *reshape;
    int keep_config;
} rewrite;

static void write_small_variant(const char *path, const rewrite *rw)
{
    hafm_safetensors *st = hafm_st_open(data_path("hubert_small_seed5_hf.safetensors"));
    assert_non_null(st);
    hafm_st_writer *w = hafm_st_writer_new();
    for (int i = 0; i < hafm_st_count(st); i++) {
        const hafm_st_tensor *t = hafm_st_get(st, i);
        if (rw->drop && strcmp(t->name, rw->drop) == 0) continue;
        char name[256];
        const char *base = t->name;
        if (rw->parametrizations && strcmp(base, "encoder.pos_conv_embed.conv.weight_g") == 0)
            base = "encoder.pos_conv_embed.conv.parametrizations.weight.original0";
        if (rw->parametrizations && strcmp(base, "encoder.pos_conv_embed.conv.weight_v") == 0)
            base = "encoder.pos_conv_embed.conv.parametrizations.weight.original1";
        snprintf(name, sizeof name, "%s%s", rw->prefix ? rw->prefix : "", base);
        int64_t shape[HAFM_ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        int ndim = t->ndim;
        if (rw->reshape && strcmp(t->name, rw->reshape) == 0) {
            /* same bytes, wrong shape: [a, b, c] -> [a*b*c] */
            shape[0] = t->numel;
            ndim = 1;
        }
        assert_int_equal(hafm_st_writer_add(w, name, t->dtype, ndim, shape, t->data), 0);
    }
    if (rw->keep_config) assert_int_equal(hafm_st_writer_meta(w, "config", hafm_st_meta(st, "config")), 0);
    assert_int_equal(hafm_st_writer_save(w, path), 0);
    hafm_st_writer_free(w);
    hafm_st_close(st);
}

static float *small_features(const char *path, int64_t *T)
{
    hafm_hubert *m = hafm_hubert_load(path, 0);
    if (!m) fail_msg("%s: %s", path, hafm_last_error());
    int64_t n;
    float *wav = read_input("synth_1s", &n);
    float *h = hafm_hubert_features(m, wav, n, 2, T);
    assert_non_null(h);
    free(wav);
    hafm_hubert_free(m);
    return h;
}

static void test_naming_variants(void **state)
{
    (void)state;
    int64_t T0, T1;
    float *ref = small_features(data_path("hubert_small_seed5_hf.safetensors"), &T0);
    /* "hubert." prefix + parametrizations names + config.json beside the weights */
    char dir[600], path[700], cfg[700];
    snprintf(dir, sizeof dir, "%s/variant", tmpdir);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rewrite rw = {"hubert.", 1, NULL, NULL, 0};
    write_small_variant(path, &rw);
    hafm_safetensors *st = hafm_st_open(data_path("hubert_small_seed5_hf.safetensors"));
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    FILE *fp = fopen(cfg, "w");
    fputs(hafm_st_meta(st, "config"), fp);
    fclose(fp);
    hafm_st_close(st);
    float *h = small_features(path, &T1);
    assert_int_equal(T0, T1);
    assert_memory_equal(ref, h, T0 * 96 * sizeof(float));
    printf("# OK (hubert. prefix, parametrizations.weight.original0/1, config.json beside) identical\n");
    free(h), free(ref);
}

static void expect_load_error(const rewrite *rw, const char *needle)
{
    char path[600];
    snprintf(path, sizeof path, "%s/bad.safetensors", tmpdir);
    write_small_variant(path, rw);
    hafm_hubert *m = hafm_hubert_load(path, 0);
    assert_null(m);
    printf("# error: %s\n", hafm_last_error());
    assert_non_null(strstr(hafm_last_error(), needle));
    unlink(path);
}

static void test_loader_errors(void **state)
{
    (void)state;
    rewrite missing = {NULL, 0, "encoder.layers.1.feed_forward.output_dense.bias", NULL, 1};
    expect_load_error(&missing, "'encoder.layers.1.feed_forward.output_dense.bias'");
    rewrite shape = {NULL, 0, NULL, "encoder.pos_conv_embed.conv.weight_v", 1};
    expect_load_error(&shape, "encoder.pos_conv_embed.conv.weight_v");
    rewrite conv = {NULL, 0, NULL, "feature_extractor.conv_layers.3.conv.weight", 1};
    expect_load_error(&conv, "feature_extractor.conv_layers.3.conv.weight");
    rewrite noconfig = {NULL, 0, NULL, NULL, 0};   /* D = 96: heads are not inferable */
    expect_load_error(&noconfig, "needs a config");
    char path[600];
    snprintf(path, sizeof path, "%s/garbage.safetensors", tmpdir);
    FILE *fp = fopen(path, "w");
    fputs("this is not a safetensors file at all", fp);
    fclose(fp);
    assert_null(hafm_hubert_load(path, 0));
    printf("# error: %s\n", hafm_last_error());
    assert_null(hafm_hubert_load("/nonexistent/model.safetensors", 0));
}

int main(void)
{
    hafm_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_parity_synth),
        cmocka_unit_test(test_parity_real),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_large_tiny),
        cmocka_unit_test(test_conv_chunks),
        cmocka_unit_test(test_window_short_exact),
        cmocka_unit_test(test_window_long),
        cmocka_unit_test(test_too_short),
        cmocka_unit_test(test_full_base_layout),
        cmocka_unit_test(test_naming_variants),
        cmocka_unit_test(test_loader_errors),
    };
    return cmocka_run_group_tests_name("hubert", tests, make_tmpdir, remove_tmpdir);
}
