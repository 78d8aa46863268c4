/* test_transformer.c - the stage Transformer: paper parameter counts, parity with the PyTorch
 * reference (logits, loss, every parameter gradient) for each stage's configuration, finite-
 * difference checks of every kernel's backward and of the whole model, KV-cache decoding against
 * full recomputation, bf16 decode error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/transformer.h"
#include "hafm/sampling.h"

static const char *data_dir(void)
{
    const char *d = getenv("HAFM_DATA");
    return d ? d : "tests/data";
}

static void fill(float *x, size_t n, float scale, hafm_rand *r)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * hafm_rand_normal(r);
}

/* ---- paper sizes ------------------------------------------------------------------------------ */
static void test_paper_param_counts(void **state)
{
    (void)state;
    const size_t expect[3] = { 38591212, 42534136, 44119800 };
    const double paper[3] = { 38.6, 42.5, 44.1 };
    for (int s = 1; s <= 3; s++) {
        hafm_tf_config c;
        assert_int_equal(hafm_tf_config_paper(&c, s), 0);
        hafm_tf_model *m = hafm_tf_new(&c);
        assert_non_null(m);
        hafm_tf_layout lay;
        assert_int_equal(hafm_tf_layout_init(&lay, &c, hafm_tf_window_units(&c)), 0);
        printf("# stage %d: %zu parameters (%.2f M; paper %.1f M), 10 s window = %d tokens\n", s, m->n_params,
               m->n_params / 1e6, paper[s - 1], lay.L);
        assert_int_equal(m->n_params, expect[s - 1]);
        assert_true(fabs(m->n_params / 1e6 - paper[s - 1]) < 0.05);
        hafm_tf_layout_free(&lay);
        hafm_tf_free(m);
    }
}

static void test_config_json_roundtrip(void **state)
{
    (void)state;
    hafm_tf_config c, d;
    hafm_tf_config_paper(&c, 2);
    char *j = hafm_tf_config_to_json(&c);
    assert_int_equal(hafm_tf_config_from_json(&d, j), 0);
    char *k = hafm_tf_config_to_json(&d);
    assert_string_equal(j, k);
    free(j);
    free(k);
    assert_int_equal(hafm_tf_config_from_json(&d, "{\"stage\": 1}"), -1);
    assert_int_equal(hafm_tf_config_from_json(&d, "not json"), -1);
    /* aligned conditioning: written only when on, read back, and a boolean */
    j = hafm_tf_config_to_json(&c);
    assert_null(strstr(j, "aligned"));
    free(j);
    c.aligned_conditioning = 1;
    j = hafm_tf_config_to_json(&c);
    assert_non_null(strstr(j, "\"aligned_conditioning\":true"));
    assert_int_equal(hafm_tf_config_from_json(&d, j), 0);
    assert_int_equal(d.aligned_conditioning, 1);
    char *bad = strstr(j, "true");
    memcpy(bad, "3   ", 4);
    assert_int_equal(hafm_tf_config_from_json(&d, j), -1);
    printf("# aligned_conditioning 3: %s\n", hafm_last_error());
    free(j);
}

/* The optional "sampling" object: only the keys given are set, written back unchanged, range-checked. */
static void test_config_sampling(void **state)
{
    (void)state;
    hafm_tf_config c, d;
    hafm_tf_config_paper(&c, 1);
    char *plain = hafm_tf_config_to_json(&c);
    assert_null(strstr(plain, "sampling"));
    assert_int_equal(hafm_tf_sampling_from_json(&c.sampling, "{\"temperature\": 1, \"top_k\": 0, \"future_key\": 5}"), 0);
    assert_true(c.sampling.has_temperature && c.sampling.has_top_k);
    assert_false(c.sampling.has_cfg_scale || c.sampling.has_top_p);
    assert_true(c.sampling.temperature == 1.0f && c.sampling.top_k == 0);
    char *j = hafm_tf_config_to_json(&c);
    assert_non_null(strstr(j, "\"sampling\":{\"temperature\":1,\"top_k\":0}"));
    assert_int_equal(hafm_tf_config_from_json(&d, j), 0);
    assert_memory_equal(&c.sampling, &d.sampling, sizeof c.sampling);
    free(j);
    static const char *const bad[] = { "{\"temperature\": 11}", "{\"top_k\": 2.5}", "{\"top_k\": -1}",
                                       "{\"top_p\": 0}", "{\"cfg_scale\": \"3\"}", "[1]", "{\"top_k\": 1e300}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hafm_tf_sampling s;
        assert_int_equal(hafm_tf_sampling_from_json(&s, bad[i]), -1);
    }
    /* in a config too */
    char buf[2048];
    snprintf(buf, sizeof buf, "%.*s,\"sampling\":{\"top_p\":1.5}}", (int)strlen(plain) - 1, plain);
    assert_int_equal(hafm_tf_config_from_json(&d, buf), -1);
    snprintf(buf, sizeof buf, "%.*s,\"sampling\":{\"cfg_scale\":5,\"top_p\":0.95}}", (int)strlen(plain) - 1, plain);
    assert_int_equal(hafm_tf_config_from_json(&d, buf), 0);
    assert_true(d.sampling.has_cfg_scale && d.sampling.cfg_scale == 5.0f && d.sampling.has_top_p && d.sampling.top_p == 0.95f);
    free(plain);
}

/* ---- parity with tests/ref/hafm_ref.py ------------------------------------------------------------ */
static void check_reference(int stage, int aligned)
{
    char path[512];
    snprintf(path, sizeof path, "%s/stages/ref_stage%d%s.safetensors", data_dir(), stage, aligned ? "_aligned" : "");
    hafm_safetensors *st = hafm_st_open(path);
    if (!st) {
        printf("# %s\n", hafm_last_error());
        fail();
    }
    hafm_tf_model *m = hafm_tf_load_st(st, stage);
    assert_non_null(m);
    assert_int_equal(m->cfg.aligned_conditioning, aligned);
    assert_string_equal(hafm_st_meta(st, "format_version"), aligned ? "2" : "1");
    const hafm_st_tensor *tn = hafm_st_find(st, "fixture.n_units"), *tt = hafm_st_find(st, "fixture.tokens");
    assert_non_null(tn);
    assert_non_null(tt);
    int n_units = ((const int32_t *)tn->data)[0];
    hafm_tf_layout lay;
    assert_int_equal(hafm_tf_layout_init(&lay, &m->cfg, n_units), 0);
    int B = (int)tt->shape[0];
    assert_int_equal(tt->shape[1], lay.L);
    int32_t *tokens = malloc(tt->nbytes);
    memcpy(tokens, tt->data, tt->nbytes);

    const hafm_st_tensor *tb = hafm_st_find(st, "fixture.buckets");
    for (int n = 0; n < lay.L; n++)
        assert_int_equal(hafm_rel_bucket(n, m->cfg.rel_buckets, m->cfg.rel_max_distance), ((const int32_t *)tb->data)[n]);

    hafm_tf_acts *a = hafm_tf_acts_new(m, &lay, B);
    float *logits = hafm_tf_forward(m, a, tokens);
    assert_non_null(logits);
    int64_t shape3[3] = { B, lay.n_target, m->cfg.target.vocab };
    float *ref = hafm_st_load_f32(st, "fixture.logits", 3, shape3);
    assert_non_null(ref);
    double md = 0.0;
    for (int64_t i = 0; i < shape3[0] * shape3[1] * shape3[2]; i++) md = fmax(md, fabs(logits[i] - ref[i]));
    printf("# stage %d%s: OK (logits) max_diff=%.3g\n", stage, aligned ? " aligned" : "", md);
    assert_true(md < 2e-5);

    int nt = B * lay.n_target;
    int64_t correct;
    double loss = hafm_tf_loss(a, tokens, 1.0f / nt, NULL, NULL, &correct) / nt;
    int64_t one = 1;
    float ref_loss;
    assert_int_equal(hafm_st_read_f32(st, "fixture.loss", &ref_loss, 1, &one), 0);
    printf("# stage %d%s: OK (loss) %.6f vs %.6f diff=%.3g\n", stage, aligned ? " aligned" : "", loss, ref_loss, fabs(loss - ref_loss));
    assert_true(fabs(loss - ref_loss) < 1e-5);

    float *grads = calloc(m->n_params, sizeof(float));
    hafm_tf_backward(m, a, tokens, grads);
    double gmax = 0.0;
    const char *worst = "";
    for (int i = 0; i < m->n_tensors; i++) {
        const hafm_tf_tensor *t = &m->tensors[i];
        char name[96];
        snprintf(name, sizeof name, "grad.%s", t->name);
        float *g = hafm_st_load_f32(st, name, t->ndim, t->shape);
        assert_non_null(g);
        double scale = 1e-30, diff = 0.0;
        for (size_t j = 0; j < t->numel; j++) {
            scale = fmax(scale, fabs(g[j]));
            diff = fmax(diff, fabs(grads[t->offset + j] - g[j]));
        }
        /* relative to the tensor's largest gradient: tensors differ by orders of magnitude */
        if (diff / fmax(scale, 1e-3) > gmax) {
            gmax = diff / fmax(scale, 1e-3);
            worst = m->tensors[i].name;
        }
        free(g);
    }
    printf("# stage %d%s: OK (grads, %d tensors) max_rel_diff=%.3g (%s)\n", stage, aligned ? " aligned" : "", m->n_tensors, gmax, worst);
    assert_true(gmax < 1e-4);
    free(grads);
    free(ref);
    free(tokens);
    hafm_tf_acts_free(a);
    hafm_tf_layout_free(&lay);
    hafm_tf_free(m);
    hafm_st_close(st);
}

static void test_reference_stage1(void **state) { (void)state; check_reference(1, 0); }
static void test_reference_stage2(void **state) { (void)state; check_reference(2, 0); }
static void test_reference_stage3(void **state) { (void)state; check_reference(3, 0); }
static void test_reference_aligned(void **state)
{
    (void)state;
    for (int s = 1; s <= 3; s++) check_reference(s, 1);
}

/* ---- finite differences, kernel by kernel ------------------------------------------------------------ */
/* Each check: loss = sum(out * R) for a fixed random R, so dL/dout = R; compares the analytic
 * gradient of every input element with a central difference in double-checked float. */
typedef void (*fwd_fn)(void *ctx);
typedef struct {
    float *param; size_t n; const float *grad; const char *name;
} fd_target;

static double loss_of(fwd_fn f, void *ctx, const float *out, const float *R, size_t n)
{
    f(ctx);
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * R[i];
    return s;
}

static void fd_check(fwd_fn f, void *ctx, const float *out, const float *R, size_t nout, fd_target *t, int nt)
{
    for (int k = 0; k < nt; k++) {
        double md = 0.0;
        size_t stride = t[k].n > 160 ? t[k].n / 160 : 1;   /* large tensors: an even sample */
        for (size_t i = 0; i < t[k].n; i += stride) {
            float keep = t[k].param[i], h = 1e-2f * fmaxf(1.0f, fabsf(keep));
            t[k].param[i] = keep + h;
            double lp = loss_of(f, ctx, out, R, nout);
            t[k].param[i] = keep - h;
            double lm = loss_of(f, ctx, out, R, nout);
            t[k].param[i] = keep;
            double fd = (lp - lm) / (2.0 * h);
            double err = fabs(fd - t[k].grad[i]) / fmax(1.0, fabs(fd));
            if (err > md) md = err;
        }
        printf("# fd %-18s max_rel_err=%.3g\n", t[k].name, md);
        assert_true(md < 5e-3);
    }
}

typedef struct { float *out, *rstd, *inp, *w; int N, C, H, ld; } norm_ctx;
static void rms_fwd(void *p) { norm_ctx *c = p; hafm_rmsnorm_forward(c->out, c->rstd, c->inp, c->w, c->N, c->C, 1e-6f); }
static void qk_fwd(void *p) { norm_ctx *c = p; hafm_qknorm_forward(c->out, c->rstd, c->inp, c->ld, c->w, c->N, c->C, c->H, 1e-6f); }

static void test_fd_rmsnorm_qknorm(void **state)
{
    (void)state;
    hafm_rand r;
    hafm_rand_seed(&r, 1);
    int N = 5, C = 12, H = 3, ld = 20;
    float inp[5 * 20], w[12], out[60], rstd[15], R[60], din[5 * 20], dw[12];
    fill(inp, 100, 1.0f, &r);
    fill(R, 60, 1.0f, &r);
    for (int i = 0; i < 12; i++) w[i] = 1.0f + 0.3f * hafm_rand_normal(&r);
    norm_ctx c = { out, rstd, inp, w, N, C, H, ld };
    /* RMSNorm over rows of C (inp contiguous [N,C]) */
    rms_fwd(&c);
    memset(din, 0, sizeof din);
    memset(dw, 0, sizeof dw);
    hafm_rmsnorm_backward(din, dw, R, inp, w, rstd, N, C);
    fd_target t1[] = { { inp, (size_t)N * C, din, "rmsnorm.inp" }, { w, 12, dw, "rmsnorm.weight" } };
    fd_check(rms_fwd, &c, out, R, 60, t1, 2);
    /* QK-norm over heads of C/H, rows of stride ld */
    qk_fwd(&c);
    memset(din, 0, sizeof din);
    memset(dw, 0, sizeof dw);
    hafm_qknorm_backward(din, ld, dw, R, inp, w, rstd, N, C, H);
    float din_c[5 * 20];
    memcpy(din_c, din, sizeof din);
    for (int n = 0; n < N; n++)    /* elements beyond C in each row are not inputs: zero both sides */
        for (int i = C; i < ld; i++) din_c[n * ld + i] = 0.0f;
    fd_target t2[] = { { inp, (size_t)N * ld, din_c, "qknorm.inp" }, { w, (size_t)C / H, dw, "qknorm.weight" } };
    fd_check(qk_fwd, &c, out, R, 60, t2, 2);
}

typedef struct { float *out, *inp, *w, *b; int N, IN, OUT; } lin_ctx;
static void geglu_fwd(void *p) { lin_ctx *c = p; hafm_geglu_forward(c->out, c->inp, c->N, c->OUT); }
static void linear_fwd(void *p) { lin_ctx *c = p; hafm_linear_forward(c->out, c->inp, c->w, c->b, c->N, c->IN, c->OUT); }

static void test_fd_geglu_linear(void **state)
{
    (void)state;
    hafm_rand r;
    hafm_rand_seed(&r, 2);
    enum { N = 4, IN = 6, OUT = 5 };
    float inp[N * 2 * OUT], out[N * OUT], R[N * OUT], din[N * 2 * OUT];
    fill(inp, sizeof inp / 4, 1.5f, &r);
    fill(R, sizeof R / 4, 1.0f, &r);
    lin_ctx g = { out, inp, NULL, NULL, N, 0, OUT };
    hafm_geglu_backward(din, R, inp, N, OUT);
    fd_target t1[] = { { inp, sizeof inp / 4, din, "geglu.inp" } };
    fd_check(geglu_fwd, &g, out, R, N * OUT, t1, 1);

    float x[N * IN], w[OUT * IN], b[OUT], dx[N * IN], dw[OUT * IN] = { 0 }, db[OUT] = { 0 };
    fill(x, N * IN, 1.0f, &r);
    fill(w, OUT * IN, 0.5f, &r);
    fill(b, OUT, 0.5f, &r);
    lin_ctx l = { out, x, w, b, N, IN, OUT };
    hafm_linear_backward(dx, dw, db, R, x, w, N, IN, OUT);
    fd_target t2[] = { { x, N * IN, dx, "linear.inp" }, { w, OUT * IN, dw, "linear.weight" }, { b, OUT, db, "linear.bias" } };
    fd_check(linear_fwd, &l, out, R, N * OUT, t2, 3);
}

typedef struct { float *out, *lse, *q, *k, *v, *rb; const int *bk; int B, T, d, H; } att_ctx;
static void att_fwd(void *p)
{
    att_ctx *c = p;
    /* k rows of stride d, v rows of stride 2d (as in the training pass, where v sits in qkv) */
    hafm_attention_forward(c->out, c->lse, c->q, c->k, c->v, c->d, 2 * c->d, (int64_t)c->T * c->d,
                           (int64_t)c->T * 2 * c->d, c->rb, c->bk, c->B, c->T, 0, c->d, c->H);
}

static void check_attention(int B, int T, int d, int H, int NB, int maxd, uint64_t seed)
{
    hafm_rand r;
    hafm_rand_seed(&r, seed);
    int *bk = malloc((size_t)T * sizeof *bk);
    for (int n = 0; n < T; n++) bk[n] = hafm_rel_bucket(n, NB, maxd);
    size_t nq = (size_t)B * T * d;
    float *q = malloc(nq * 4), *k = malloc(nq * 4), *v = malloc(2 * nq * 4), *rb = malloc((size_t)NB * H * 4);
    float *out = malloc(nq * 4), *lse = malloc((size_t)B * H * T * 4), *R = malloc(nq * 4);
    float *dq = malloc(nq * 4), *dk = malloc(nq * 4), *dv = malloc(nq * 4), *drb = calloc((size_t)NB * H, 4);
    float *dv2 = calloc(2 * nq, 4);
    fill(q, nq, 1.0f, &r);
    fill(k, nq, 1.0f, &r);
    fill(v, 2 * nq, 1.0f, &r);
    fill(rb, (size_t)NB * H, 0.5f, &r);
    fill(R, nq, 1.0f, &r);
    att_ctx c = { out, lse, q, k, v, rb, bk, B, T, d, H };
    att_fwd(&c);
    hafm_attention_backward(dq, dk, dv, drb, R, out, lse, q, k, v, d, 2 * d, rb, bk, B, T, d, H);
    for (int i = 0; i < B * T; i++) memcpy(dv2 + (size_t)i * 2 * d, dv + (size_t)i * d, d * sizeof(float));
    printf("# attention B=%d T=%d d=%d H=%d\n", B, T, d, H);
    fd_target t[] = { { q, nq, dq, "attention.q" }, { k, nq, dk, "attention.k" },
                      { v, 2 * nq, dv2, "attention.v" }, { rb, (size_t)NB * H, drb, "attention.rel_bias" } };
    fd_check(att_fwd, &c, out, R, nq, t, 4);

    /* the decode path (T < 8, loops) equals the sgemm path: last 3 queries over a cached prefix */
    att_fwd(&c);   /* fd_check leaves out from a perturbed evaluation */
    float *out2 = malloc((size_t)B * 3 * d * 4), *q2 = malloc((size_t)B * 3 * d * 4);
    for (int b = 0; b < B; b++) memcpy(q2 + (size_t)b * 3 * d, q + ((size_t)b * T + T - 3) * d, 3 * d * sizeof(float));
    hafm_attention_forward(out2, NULL, q2, k, v, d, 2 * d, (int64_t)T * d, (int64_t)T * 2 * d, rb, bk, B, 3, T - 3, d, H);
    double md = 0.0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < 3 * d; i++) md = fmax(md, fabs(out2[b * 3 * d + i] - out[((size_t)b * T + T - 3) * d + i]));
    printf("# attention decode path vs sgemm path max_diff=%.3g\n", md);
    assert_true(md < 1e-5);
    float *bufs[] = { q, k, v, rb, out, lse, R, dq, dk, dv, drb, dv2, out2, q2 };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(bk);
}

static void test_fd_attention(void **state)
{
    (void)state;
    check_attention(2, 12, 8, 2, 6, 8, 3);   /* one block of the sgemm path, log buckets */
    check_attention(1, 70, 4, 2, 8, 32, 4);  /* two query blocks: keys of the first block reused */
}

/* The bf16-cache decode path (head size 64 takes the AVX2 kernel: eight keys a time, the output in
 * registers; the tail of fewer than eight keys the plain loop) equals the fp32 path over the same
 * keys and values rounded to bf16 (test_attention_hd64_decode checks that kernel against sgemm). */
static void test_attention_bf16kv_decode(void **state)
{
    (void)state;
    const int B = 2, H = 2, hd = 64, d = H * hd, NB = 32, maxd = 128, max_len = 40;
    for (int Lk = 1; Lk <= 37; Lk += 6) {   /* 1, 7, 13 ... 37 keys: tails of every length */
        hafm_rand r;
        hafm_rand_seed(&r, (uint64_t)Lk);
        int *bk = malloc((size_t)max_len * sizeof *bk);
        for (int n = 0; n < max_len; n++) bk[n] = hafm_rel_bucket(n, NB, maxd);
        float *q = malloc((size_t)B * d * 4), *kf = malloc((size_t)B * Lk * d * 4), *vf = malloc((size_t)B * Lk * d * 4);
        float *rb = malloc((size_t)NB * H * 4), *o16 = malloc((size_t)B * d * 4), *o32 = malloc((size_t)B * d * 4);
        uint16_t *kh = calloc((size_t)B * H * max_len * hd, 2), *vh = calloc((size_t)B * H * max_len * hd, 2);
        fill(q, (size_t)B * d, 1.0f, &r);
        fill(kf, (size_t)B * Lk * d, 1.0f, &r);
        fill(vf, (size_t)B * Lk * d, 1.0f, &r);
        fill(rb, (size_t)NB * H, 0.5f, &r);
        for (int b = 0; b < B; b++)
            for (int j = 0; j < Lk; j++)
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < hd; i++) {
                        size_t src = ((size_t)b * Lk + j) * d + h * hd + i, dst = (((size_t)b * H + h) * max_len + j) * hd + i;
                        kh[dst] = hafm_f32_to_bf16(kf[src]);
                        vh[dst] = hafm_f32_to_bf16(vf[src]);
                        union { uint32_t u; float f; } kk = { .u = (uint32_t)kh[dst] << 16 }, vv = { .u = (uint32_t)vh[dst] << 16 };
                        kf[src] = kk.f;
                        vf[src] = vv.f;
                    }
        hafm_attention_forward_bf16kv(o16, q, kh, vh, max_len, rb, bk, B, 1, Lk - 1, d, H);
        hafm_attention_forward(o32, NULL, q, kf, vf, d, d, (int64_t)Lk * d, (int64_t)Lk * d, rb, bk, B, 1, Lk - 1, d, H);
        double md = 0.0;
        for (int i = 0; i < B * d; i++) md = fmax(md, fabs(o16[i] - o32[i]));
        printf("# bf16-cache decode vs fp32 path, %2d keys: max_diff=%.3g\n", Lk, md);
        assert_true(md < 1e-5);
        free(q); free(kf); free(vf); free(rb); free(o16); free(o32); free(kh); free(vh); free(bk);
    }
}

/* The register-blocked decode kernels for head sizes 64 and 32 (fp32 keys and values with a row
 * stride, the vectorised exp) against the sgemm path with libm's expf: the last query of a full
 * causal pass over the same keys equals one decode step at that position. Tails of every length,
 * and a long context where the scores span many blocks of eight. */
static void test_attention_hd64_decode(void **state)
{
    (void)state;
    const int B = 2, H = 2, NB = 32, maxd = 128;
    const int lengths[] = { 9, 16, 23, 37, 300 };
    for (int hd = 32; hd <= 64; hd += 32)
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
        int Lk = lengths[li], d = H * hd;
        hafm_rand r;
        hafm_rand_seed(&r, 100 + (uint64_t)Lk + (uint64_t)hd);
        int *bk = malloc((size_t)Lk * sizeof *bk);
        for (int n = 0; n < Lk; n++) bk[n] = hafm_rel_bucket(n, NB, maxd);
        float *q = malloc((size_t)B * Lk * d * 4), *k = malloc((size_t)B * Lk * d * 4), *v = malloc((size_t)B * Lk * d * 4);
        float *rb = malloc((size_t)NB * H * 4), *full = malloc((size_t)B * Lk * d * 4), *step = malloc((size_t)B * d * 4);
        float *qlast = malloc((size_t)B * d * 4);
        fill(q, (size_t)B * Lk * d, 1.0f, &r);
        fill(k, (size_t)B * Lk * d, 1.0f, &r);
        fill(v, (size_t)B * Lk * d, 1.0f, &r);
        fill(rb, (size_t)NB * H, 2.0f, &r);   /* large biases: scores far below the maximum, exp near 0 */
        hafm_attention_forward(full, NULL, q, k, v, d, d, (int64_t)Lk * d, (int64_t)Lk * d, rb, bk, B, Lk, 0, d, H);
        for (int b = 0; b < B; b++) memcpy(qlast + (size_t)b * d, q + ((size_t)b * Lk + Lk - 1) * d, (size_t)d * 4);
        hafm_attention_forward(step, NULL, qlast, k, v, d, d, (int64_t)Lk * d, (int64_t)Lk * d, rb, bk, B, 1, Lk - 1, d, H);
        double md = 0.0;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < d; i++) md = fmax(md, fabs(step[(size_t)b * d + i] - full[((size_t)b * Lk + Lk - 1) * d + i]));
        printf("# head size %d: decode step vs sgemm path, %3d keys: max_diff=%.3g\n", hd, Lk, md);
        assert_true(md < 1e-5);
        free(q); free(k); free(v); free(rb); free(full); free(step); free(qlast); free(bk);
    }
}

/* ---- the whole model: finite differences on sampled parameters of every tensor --------------------- */
static hafm_tf_model *tiny_model_aligned(int stage, uint64_t seed, int aligned)
{
    hafm_tf_config c;
    hafm_tf_config_paper(&c, stage);
    c.aligned_conditioning = aligned;
    c.n_layer = 2;
    c.d_model = 16;
    c.n_head = 2;
    c.d_ff = 24;
    c.rel_buckets = 8;
    c.rel_max_distance = 16;
    for (int i = 0; i < c.n_cond; i++) c.cond[i].vocab = 7 + i;
    c.target.vocab = 9;
    hafm_tf_model *m = hafm_tf_new(&c);
    hafm_tf_init_random(m, seed);
    hafm_rand r;
    hafm_rand_seed(&r, seed + 100);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.2f * hafm_rand_normal(&r);
    return m;
}

static hafm_tf_model *tiny_model(int stage, uint64_t seed) { return tiny_model_aligned(stage, seed, 0); }

static void random_tokens(const hafm_tf_model *m, const hafm_tf_layout *lay, int B, int32_t *tok, hafm_rand *r)
{
    for (int b = 0; b < B; b++)
        for (int p = 0; p < lay->L; p++) {
            int t = lay->table[p];
            int rows = t < 0 ? 1 : m->table_rows[t] - (p < lay->target_start ? 1 : 0);
            tok[b * lay->L + p] = t < 0 ? 0 : (int32_t)hafm_rand_below(r, (uint64_t)rows);
        }
}

/* Largest relative error of the analytic gradient g against central differences of the (weighted)
 * loss, over `samples` random entries of every tensor. */
static double fd_worst(hafm_tf_model *m, hafm_tf_acts *a, const int32_t *tok, float scale, const float *weight,
                       const float *g, hafm_rand *r, int samples)
{
    double worst = 0.0;
    for (int i = 0; i < m->n_tensors; i++) {
        const hafm_tf_tensor *t = &m->tensors[i];
        for (int s = 0; s < samples; s++) {
            size_t j = t->offset + (size_t)hafm_rand_below(r, t->numel);
            /* embedding rows of tokens not in the batch have zero gradient both ways: fine too */
            float keep = m->params[j], h = 1e-2f;
            m->params[j] = keep + h;
            hafm_tf_forward(m, a, tok);
            double lp = hafm_tf_loss(a, tok, scale, weight, NULL, NULL) * scale;
            m->params[j] = keep - h;
            hafm_tf_forward(m, a, tok);
            double lm = hafm_tf_loss(a, tok, scale, weight, NULL, NULL) * scale;
            m->params[j] = keep;
            double fd = (lp - lm) / (2 * h), err = fabs(fd - g[j]) / fmax(1e-2, fabs(fd));
            if (err > worst) worst = err;
            if (err > 2e-2) printf("# fd %s[%zu]: fd %.6g analytic %.6g\n", t->name, j - t->offset, fd, g[j]);
        }
    }
    return worst;
}

static void test_fd_whole_model(void **state)
{
    (void)state;
    hafm_tf_model *m = tiny_model(2, 5);
    hafm_tf_layout lay;
    hafm_tf_layout_init(&lay, &m->cfg, 2);
    int B = 2;
    int32_t *tok = malloc((size_t)B * lay.L * sizeof *tok);
    hafm_rand r;
    hafm_rand_seed(&r, 9);
    random_tokens(m, &lay, B, tok, &r);
    hafm_tf_acts *a = hafm_tf_acts_new(m, &lay, B);
    float scale = 1.0f / (B * lay.n_target);
    hafm_tf_forward(m, a, tok);
    hafm_tf_loss(a, tok, scale, NULL, NULL, NULL);
    float *g = calloc(m->n_params, sizeof(float));
    hafm_tf_backward(m, a, tok, g);
    double worst = fd_worst(m, a, tok, scale, NULL, g, &r, 3);
    printf("# fd whole model (stage-2 layout, 3 samples x %d tensors) max_rel_err=%.3g\n", m->n_tensors, worst);
    assert_true(worst < 2e-2);
    /* with codebook loss weights, the gradient is that of the weighted loss */
    const float w[4] = { 2.5f, 0.5f, 0.5f, 0.5f };
    hafm_tf_forward(m, a, tok);
    hafm_tf_loss(a, tok, scale, w, NULL, NULL);
    memset(g, 0, m->n_params * sizeof(float));
    hafm_tf_backward(m, a, tok, g);
    worst = fd_worst(m, a, tok, scale, w, g, &r, 2);
    printf("# fd weighted loss (2 samples x %d tensors) max_rel_err=%.3g\n", m->n_tensors, worst);
    assert_true(worst < 2e-2);
    free(g);
    free(tok);
    hafm_tf_acts_free(a);
    hafm_tf_layout_free(&lay);
    hafm_tf_free(m);
}

/* ---- KV cache ------------------------------------------------------------------------------------------ */
static void check_cache(int stage, int aligned)
{
    hafm_tf_model *m = tiny_model_aligned(stage, 11 + stage, aligned);
    hafm_tf_enable_bf16(m);
    hafm_tf_layout lay;
    hafm_tf_layout_init(&lay, &m->cfg, stage == 1 ? 9 : 3);
    int B = 2, V = m->cfg.target.vocab, Q = m->cfg.target.codebooks;
    int32_t *tok = malloc((size_t)B * lay.L * sizeof *tok);
    hafm_rand r;
    hafm_rand_seed(&r, 3);
    random_tokens(m, &lay, B, tok, &r);
    hafm_tf_acts *a = hafm_tf_acts_new(m, &lay, B);
    const float *full = hafm_tf_forward(m, a, tok);
    hafm_tf_cache *k = hafm_tf_cache_new(m, B, lay.L, 0);
    float logits[2 * 64], lbf[2 * 64];
    int32_t step[2];
    /* prefill everything up to SEP in one call, then one position at a time */
    int ts = lay.target_start, P = ts;
    int32_t *pre = malloc((size_t)B * P * sizeof *pre);
    for (int b = 0; b < B; b++) memcpy(pre + b * P, tok + b * lay.L, P * sizeof *pre);
    assert_int_equal(hafm_tf_decode(m, k, pre, &lay, P, 0, logits, 0), 0);
    double md = 0.0, mbf = 0.0;
    for (int i = 0; i < lay.n_target; i++) {
        for (int b = 0; b < B; b++)
            for (int v = 0; v < V; v++) md = fmax(md, fabs(logits[b * V + v] - full[((size_t)b * lay.n_target + i) * V + v]));
        if (i + 1 == lay.n_target) break;
        for (int b = 0; b < B; b++) step[b] = tok[b * lay.L + ts + i];
        assert_int_equal(hafm_tf_decode(m, k, step, &lay, 1, (i + 1) % Q, logits, 0), 0);
    }
    /* bf16 weights and bf16 keys/values on the same prefix: the logit error bf16 storage costs */
    hafm_tf_cache_free(k);
    k = hafm_tf_cache_new(m, B, lay.L, 1);
    for (int b = 0; b < B; b++) memcpy(pre + b * (P - 1), tok + b * lay.L, (P - 1) * sizeof *pre);
    assert_int_equal(hafm_tf_decode(m, k, pre, &lay, P - 1, -1, NULL, 1), 0);
    int32_t sep[2] = { 0, 0 };
    assert_int_equal(hafm_tf_decode(m, k, sep, &lay, 1, 0, lbf, 1), 0);
    double lmax = 0.0;
    for (int i = 0; i < lay.n_target; i++) {   /* every step, through the bf16 cache */
        for (int b = 0; b < B; b++)
            for (int v = 0; v < V; v++) {
                double f = full[((size_t)b * lay.n_target + i) * V + v];
                mbf = fmax(mbf, fabs(lbf[b * V + v] - f));
                lmax = fmax(lmax, fabs(f));
            }
        if (i + 1 == lay.n_target) break;
        for (int b = 0; b < B; b++) step[b] = tok[b * lay.L + ts + i];
        assert_int_equal(hafm_tf_decode(m, k, step, &lay, 1, (i + 1) % Q, lbf, 1), 0);
    }
    printf("# stage %d%s: OK (KV cache vs full recompute, %d steps) max_diff=%.3g; bf16 weights+KV max_diff=%.3g (max |logit| %.3g)\n",
           stage, aligned ? " aligned" : "", lay.n_target, md, mbf, lmax);
    assert_true(md < 1e-4);
    assert_true(mbf < 0.02 * lmax);
    assert_true(mbf > 0.0);   /* it really ran the bf16 weights */
    free(pre);
    free(tok);
    hafm_tf_cache_free(k);
    hafm_tf_acts_free(a);
    hafm_tf_layout_free(&lay);
    hafm_tf_free(m);
}

/* Codebook loss weights: the returned loss is the per-codebook weighted sum of the rows'
 * cross-entropies, and the unweighted sum comes back too (their gradient: test_fd_whole_model). */
static void test_codebook_loss_weights(void **state)
{
    (void)state;
    hafm_tf_model *m = tiny_model(2, 11);
    hafm_tf_layout lay;
    hafm_tf_layout_init(&lay, &m->cfg, 2);
    int B = 2, Q = m->cfg.target.codebooks, nt = lay.n_target;
    assert_int_equal(Q, 4);
    int32_t *tok = malloc((size_t)B * lay.L * sizeof *tok);
    hafm_rand r;
    hafm_rand_seed(&r, 5);
    random_tokens(m, &lay, B, tok, &r);
    hafm_tf_acts *a = hafm_tf_acts_new(m, &lay, B);
    const float w[4] = { 2.5f, 0.5f, 0.5f, 0.5f };
    float scale = 1.0f / (B * nt);
    float *logits = hafm_tf_forward(m, a, tok);
    /* per-codebook cross-entropy by hand */
    double ce[4] = { 0 }, by_hand = 0.0, plain = 0.0, unweighted = -1.0;
    for (int row = 0; row < B * nt; row++) {
        const float *lg = logits + (size_t)row * m->cfg.target.vocab;
        int target = tok[(size_t)(row / nt) * lay.L + lay.target_start + row % nt];
        double mx = lg[0], sum = 0.0;
        for (int j = 1; j < m->cfg.target.vocab; j++) mx = fmax(mx, lg[j]);
        for (int j = 0; j < m->cfg.target.vocab; j++) sum += exp(lg[j] - mx);
        ce[(row % nt) % Q] += -(lg[target] - mx - log(sum));
    }
    for (int q = 0; q < Q; q++) {
        by_hand += w[q] * ce[q];
        plain += ce[q];
    }
    int64_t correct = -1;
    double weighted = hafm_tf_loss(a, tok, scale, w, &unweighted, &correct);
    printf("# weighted loss %.9g by hand %.9g; unweighted %.9g by hand %.9g\n", weighted, by_hand, unweighted, plain);
    assert_true(fabs(weighted - by_hand) < 1e-6 * fabs(by_hand));   /* exp in float there */
    assert_true(fabs(unweighted - plain) < 1e-6 * fabs(plain));
    assert_true(fabs(weighted - plain) > 0.1);
    assert_true(correct >= 0 && correct <= B * nt);
    free(tok);
    hafm_tf_acts_free(a);
    hafm_tf_layout_free(&lay);
    hafm_tf_free(m);
}

static void test_kv_cache(void **state)
{
    (void)state;
    for (int aligned = 0; aligned <= 1; aligned++)
        for (int s = 1; s <= 3; s++) check_cache(s, aligned);
}

/* ---- decode GEMVs: bf16 weights equal float32 weights holding the same (rounded) values ------------ */
static void test_gemv(void **state)
{
    (void)state;
    hafm_rand r;
    hafm_rand_seed(&r, 6);
    /* even and odd rows (d_ff 1365 is odd); short rows and rows spanning several vector blocks */
    static const int ins[] = { 36, 37, 130, 131 };
    for (size_t n = 0; n < sizeof ins / sizeof ins[0]; n++)
        for (int M = 1; M <= 3; M++) {
            int IN = ins[n], OUT = 29;
            float w[29 * 131], x[3 * 131], b[29], y1[3 * 29], y2[3 * 29], y3[3 * 29];
            uint16_t wb[29 * 131];
            fill(w, (size_t)OUT * IN, 1.0f, &r);
            fill(x, (size_t)M * IN, 1.0f, &r);
            fill(b, OUT, 1.0f, &r);
            for (int i = 0; i < OUT * IN; i++) {
                wb[i] = hafm_f32_to_bf16(w[i]);
                w[i] = hafm_bf16_to_f32(wb[i]);
            }
            hafm_gemv_bf16(y1, x, wb, b, M, IN, OUT);
            hafm_gemv_f32(y2, x, w, b, M, IN, OUT);
            hafm_linear_forward(y3, x, w, b, M, IN, OUT);
            double md = 0.0;
            for (int i = 0; i < M * OUT; i++) md = fmax(md, fmax(fabs(y1[i] - y3[i]), fabs(y2[i] - y3[i])));
            printf("# gemv M=%d IN=%d: max_diff vs sgemm %.3g\n", M, IN, md);
            assert_true(md < 1e-4);
        }
}

/* ---- sampling ------------------------------------------------------------------------------------------ */
static void test_sampling(void **state)
{
    (void)state;
    enum { V = 40 };
    float c[V], u[V], out[V], tmp[V];
    int work[3 * V];
    hafm_rand r;
    hafm_rand_seed(&r, 4);
    fill(c, V, 2.0f, &r);
    fill(u, V, 2.0f, &r);
    hafm_cfg_combine(out, c, u, 1.0f, V);
    for (int i = 0; i < V; i++) assert_true(out[i] == c[i]);   /* scale 1: conditional alone */
    hafm_cfg_combine(out, c, u, 3.0f, V);
    for (int i = 0; i < V; i++) assert_true(fabsf(out[i] - (u[i] + 3.0f * (c[i] - u[i]))) < 1e-6f);

    hafm_sampler s;
    hafm_sampler_default(&s);
    s.temperature = 0.0f;
    int best = 0;
    for (int i = 1; i < V; i++) if (c[i] > c[best]) best = i;
    memcpy(tmp, c, sizeof c);
    assert_int_equal(hafm_sample(tmp, V, &s, &r, work), best);

    /* top-k 3: only the 3 largest ever come out; same seed, same draws */
    hafm_sampler_default(&s);
    s.top_k = 3;
    s.temperature = 5.0f;
    int order[V];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 0; i < V; i++)
        for (int j = i + 1; j < V; j++)
            if (c[order[j]] > c[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
    hafm_rand r1, r2;
    hafm_rand_seed(&r1, 77);
    hafm_rand_seed(&r2, 77);
    int seen[V] = { 0 };
    for (int it = 0; it < 500; it++) {
        memcpy(tmp, c, sizeof c);
        int a = hafm_sample(tmp, V, &s, &r1, work);
        memcpy(tmp, c, sizeof c);
        int b = hafm_sample(tmp, V, &s, &r2, work);
        assert_int_equal(a, b);
        seen[a]++;
    }
    assert_true(seen[order[0]] > 0 && seen[order[1]] > 0 && seen[order[2]] > 0);
    assert_int_equal(seen[order[0]] + seen[order[1]] + seen[order[2]], 500);
    /* top-p tiny: only the argmax */
    s.top_k = 0;
    s.top_p = 1e-6f;
    for (int it = 0; it < 50; it++) {
        memcpy(tmp, c, sizeof c);
        assert_int_equal(hafm_sample(tmp, V, &s, &r1, work), order[0]);
    }
}

/* The sampler's radix sort against the comparison sort it replaced: the same token for the same
 * draw, whatever the cut, with ties and both zeros among the logits. */
static const float *ref_logits;
static int ref_desc(const void *a, const void *b)
{
    float x = ref_logits[*(const int *)a], y = ref_logits[*(const int *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int *)a - *(const int *)b;
}

static int ref_sample(float *logits, int V, const hafm_sampler *s, hafm_rand *rng, int *work)
{
    for (int i = 0; i < V; i++) work[i] = i;
    ref_logits = logits;
    qsort(work, (size_t)V, sizeof *work, ref_desc);
    int n = (s->top_k > 0 && s->top_k < V) ? s->top_k : V;
    float maxl = logits[work[0]];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        float p = expf((logits[work[i]] - maxl) / s->temperature);
        logits[work[i]] = p;
        sum += p;
    }
    if (s->top_p < 1.0f) {
        double acc = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            acc += logits[work[i]];
            if (acc >= s->top_p * sum) { keep = i + 1; break; }
        }
        n = keep;
        sum = 0.0;
        for (int i = 0; i < n; i++) sum += logits[work[i]];
    }
    double u = hafm_rand_uniform(rng) * sum, acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += logits[work[i]];
        if (u < acc) return work[i];
    }
    return work[n - 1];
}

static void test_sampling_order(void **state)
{
    (void)state;
    enum { V = 1024 };
    float *c = malloc(V * sizeof *c), *t1 = malloc(V * sizeof *t1), *t2 = malloc(V * sizeof *t2);
    int *work = malloc(3 * V * sizeof *work);
    hafm_rand r, r1, r2;
    hafm_rand_seed(&r, 9);
    hafm_rand_seed(&r1, 10);
    hafm_rand_seed(&r2, 10);
    const int ks[] = { 0, 1, 250, 1023 };
    const float ps[] = { 1.0f, 0.9f };
    int differ = 0, draws = 0;
    for (int it = 0; it < 200; it++) {
        for (int i = 0; i < V; i++) {   /* coarse values: many ties; some -0 and +0; both signs */
            c[i] = (float)((int)(hafm_rand_normal(&r) * 4.0)) * 0.5f;
            if (c[i] == 0.0f && i % 2) c[i] = -0.0f;
        }
        hafm_sampler s;
        hafm_sampler_default(&s);
        s.top_k = ks[it % 4];
        s.top_p = ps[(it / 4) % 2];
        s.temperature = it % 3 ? 1.0f : 0.5f;
        memcpy(t1, c, V * sizeof *c);
        memcpy(t2, c, V * sizeof *c);
        int a = hafm_sample(t1, V, &s, &r1, work), b = ref_sample(t2, V, &s, &r2, work);
        differ += a != b;
        draws++;
    }
    printf("# radix-sorted sampler vs qsort: %d of %d draws differ\n", differ, draws);
    assert_int_equal(differ, 0);
    free(c);
    free(t1);
    free(t2);
    free(work);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paper_param_counts),
        cmocka_unit_test(test_config_json_roundtrip),
        cmocka_unit_test(test_config_sampling),
        cmocka_unit_test(test_reference_stage1),
        cmocka_unit_test(test_reference_stage2),
        cmocka_unit_test(test_reference_stage3),
        cmocka_unit_test(test_reference_aligned),
        cmocka_unit_test(test_fd_rmsnorm_qknorm),
        cmocka_unit_test(test_fd_geglu_linear),
        cmocka_unit_test(test_fd_attention),
        cmocka_unit_test(test_attention_bf16kv_decode),
        cmocka_unit_test(test_attention_hd64_decode),
        cmocka_unit_test(test_fd_whole_model),
        cmocka_unit_test(test_codebook_loss_weights),
        cmocka_unit_test(test_kv_cache),
        cmocka_unit_test(test_gemv),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_sampling_order),
    };
    return cmocka_run_group_tests_name("transformer", tests, NULL, NULL);
}
