/* test_codec_train.c - the codec trainer's kernels against finite differences, the RVQ's EMA and
 * dead-code behaviour, and the trainer's forward against the golden small EnCodec model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hafm.h"
#include "hafm/codec_train.h"
#include "hafm/codec_losses.h"

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *rand_vec(size_t n, unsigned *seed, float scale)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = frand(seed) * scale;
    return x;
}

/* ---- finite differences ------------------------------------------------------------------- */

/* A scalar loss of the current values of some float arrays. */
typedef double (*loss_fn)(void *ctx);

/* Compares grad[i] with the central difference of f in x[i] on up to `samples` entries; returns
 * the worst |analytic - numeric| / max(1, |numeric|) (a relative error for large gradients). */
static double gradcheck(loss_fn f, void *ctx, float *x, const float *grad, size_t n, int samples,
                        float eps, const char *what)
{
    double worst = 0.0;
    size_t step = n > (size_t)samples ? n / samples : 1;
    for (size_t i = 0; i < n; i += step) {
        float keep = x[i];
        x[i] = keep + eps;
        double lp = f(ctx);
        x[i] = keep - eps;
        double lm = f(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * eps);
        double err = fabs(num - grad[i]) / fmax(1.0, fabs(num));
        if (err > worst) worst = err;
    }
    printf("# gradcheck %-28s n=%-6zu max_err=%.2e\n", what, n, worst);
    return worst;
}

#define GRAD_TOL 1e-3

/* ---- padding ------------------------------------------------------------------------------- */

static void test_pad_map(void **state)
{
    (void)state;
    /* SPEC.md 2.4: [1,2,3,4] (6,0) -> [0,0,0,4,3,2,1,2,3,4]; [1..5] (8,3) -> [0,0,0,0,5,4,3,2,1,2,3,4,5,0,0,0] */
    int map[32];
    int n = ct_pad_map(map, 4, 6, 0);
    int want1[] = {-1, -1, -1, 3, 2, 1, 0, 1, 2, 3};
    assert_int_equal(n, 10);
    for (int i = 0; i < n; i++) assert_int_equal(map[i] < 0 ? -1 : map[i], want1[i]);
    n = ct_pad_map(map, 5, 8, 3);
    int want2[] = {-1, -1, -1, -1, 4, 3, 2, 1, 0, 1, 2, 3, 4, -1, -1, -1};
    assert_int_equal(n, 16);
    for (int i = 0; i < n; i++) assert_int_equal(map[i] < 0 ? -1 : map[i], want2[i]);
    n = ct_pad_map(map, 6, 2, 1);   /* the ordinary reflection: x2 x1 | x0..x5 | x4 */
    int want3[] = {2, 1, 0, 1, 2, 3, 4, 5, 4};
    assert_int_equal(n, 9);
    for (int i = 0; i < n; i++) assert_int_equal(map[i], want3[i]);
}

/* ---- conv1d -------------------------------------------------------------------------------- */

typedef struct {
    int B, Cin, L, Cout, K, s, d, transposed;
    float *x, *w, *b, *r, *out, *col;
} conv_ctx;

static size_t conv_out_n(const conv_ctx *c)
{
    int Lo = c->transposed ? c->L * c->s : ct_conv_out_len(c->L, c->s);
    return (size_t)c->Cout * c->B * Lo;
}

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    if (c->transposed)
        ct_convtr1d_forward(c->out, c->col, c->x, c->w, c->b, c->B, c->Cin, c->L, c->Cout, c->K, c->s);
    else
        ct_conv1d_forward(c->out, c->col, c->x, c->w, c->b, c->B, c->Cin, c->L, c->Cout, c->K, c->s, c->d);
    double acc = 0.0;
    for (size_t i = 0; i < conv_out_n(c); i++) acc += (double)c->out[i] * c->r[i];
    return acc;
}

static void check_conv(int transposed, int B, int Cin, int L, int Cout, int K, int s, int d)
{
    unsigned seed = (unsigned)(B * 7 + Cin * 13 + L * 17 + Cout * 19 + K * 23 + s * 29 + d * 31 + transposed);
    conv_ctx c = {B, Cin, L, Cout, K, s, d, transposed, 0, 0, 0, 0, 0, 0};
    size_t nx = (size_t)B * Cin * L, nw = (size_t)Cin * Cout * K;
    c.x = rand_vec(nx, &seed, 1.0f);
    c.w = rand_vec(nw, &seed, 0.5f);
    c.b = rand_vec((size_t)Cout, &seed, 0.5f);
    c.r = rand_vec(conv_out_n(&c), &seed, 1.0f);
    c.out = malloc(sizeof(float) * conv_out_n(&c));
    size_t ncol = (size_t)(transposed ? Cout : Cin) * K * B * (transposed ? L : ct_conv_out_len(L, s));
    c.col = malloc(sizeof(float) * ncol);
    float *dcol = malloc(sizeof(float) * ncol);
    float *dx = calloc(nx, sizeof(float)), *dw = calloc(nw, sizeof(float)), *db = calloc((size_t)Cout, sizeof(float));
    conv_loss(&c);
    if (transposed)
        ct_convtr1d_backward(dx, dw, db, dcol, c.r, c.x, c.w, B, Cin, L, Cout, K, s);
    else
        ct_conv1d_backward(dx, dw, db, c.col, dcol, c.r, c.x, c.w, B, Cin, L, Cout, K, s, d);
    char what[64];
    snprintf(what, sizeof what, "%s L=%d K=%d s=%d d=%d x", transposed ? "convtr" : "conv", L, K, s, d);
    assert_true(gradcheck(conv_loss, &c, c.x, dx, nx, 60, 1e-2f, what) < GRAD_TOL);
    what[strlen(what) - 1] = 'w';
    assert_true(gradcheck(conv_loss, &c, c.w, dw, nw, 60, 1e-2f, what) < GRAD_TOL);
    what[strlen(what) - 1] = 'b';
    assert_true(gradcheck(conv_loss, &c, c.b, db, (size_t)Cout, 60, 1e-2f, what) < GRAD_TOL);
    free(c.x); free(c.w); free(c.b); free(c.r); free(c.out); free(c.col); free(dcol); free(dx); free(dw); free(db);
}

static void test_conv1d_grad(void **state)
{
    (void)state;
    check_conv(0, 2, 3, 20, 4, 7, 1, 1);    /* the k=7 stem */
    check_conv(0, 2, 3, 23, 4, 4, 2, 1);    /* strided with the right "extra" reflection */
    check_conv(0, 2, 3, 17, 5, 10, 5, 1);   /* stride 5 */
    check_conv(0, 1, 2, 19, 3, 3, 1, 2);    /* dilated residual conv */
    check_conv(0, 2, 3, 4, 2, 7, 1, 1);     /* shorter than the padding: zero extension */
    check_conv(0, 2, 4, 9, 3, 1, 1, 1);     /* 1x1: the input is its own im2col */
}

static void test_convtr1d_grad(void **state)
{
    (void)state;
    check_conv(1, 2, 3, 6, 4, 4, 2, 1);
    check_conv(1, 2, 4, 5, 3, 10, 5, 1);
    check_conv(1, 1, 2, 3, 2, 16, 8, 1);
}

/* ---- ELU and weight norm -------------------------------------------------------------------- */

typedef struct { size_t n; float *x, *y, *r; } elu_ctx;
static double elu_loss(void *p)
{
    elu_ctx *c = p;
    ct_elu_forward(c->y, c->x, c->n);
    double acc = 0.0;
    for (size_t i = 0; i < c->n; i++) acc += (double)c->y[i] * c->r[i];
    return acc;
}

static void test_elu_grad(void **state)
{
    (void)state;
    unsigned seed = 5;
    elu_ctx c = {200, rand_vec(200, &seed, 3.0f), malloc(200 * sizeof(float)), rand_vec(200, &seed, 1.0f)};
    float *dx = calloc(200, sizeof(float));
    elu_loss(&c);
    ct_elu_backward(dx, c.r, c.y, c.n);
    assert_true(gradcheck(elu_loss, &c, c.x, dx, c.n, 200, 1e-3f, "elu x") < GRAD_TOL);
    free(c.x); free(c.y); free(c.r); free(dx);
}

typedef struct { int n0, rest; float *g, *v, *w, *norm, *r; } wn_ctx;
static double wn_loss(void *p)
{
    wn_ctx *c = p;
    ct_weightnorm_forward(c->w, c->norm, c->g, c->v, c->n0, c->rest);
    double acc = 0.0;
    for (int i = 0; i < c->n0 * c->rest; i++) acc += (double)c->w[i] * c->r[i];
    return acc;
}

static void test_weightnorm_grad(void **state)
{
    (void)state;
    unsigned seed = 9;
    wn_ctx c = {4, 15, rand_vec(4, &seed, 2.0f), rand_vec(60, &seed, 1.0f), malloc(60 * sizeof(float)),
                malloc(4 * sizeof(float)), rand_vec(60, &seed, 1.0f)};
    float *dg = calloc(4, sizeof(float)), *dv = calloc(60, sizeof(float));
    wn_loss(&c);
    /* w = g v/||v|| per row of dim 0 */
    double n0 = 0;
    for (int j = 0; j < 15; j++) n0 += (double)c.v[j] * c.v[j];
    assert_true(fabs(c.w[3] - c.g[0] * c.v[3] / sqrt(n0)) < 1e-6);
    ct_weightnorm_backward(dg, dv, c.r, c.g, c.v, c.norm, 4, 15);
    assert_true(gradcheck(wn_loss, &c, c.g, dg, 4, 4, 1e-3f, "weightnorm g") < GRAD_TOL);
    assert_true(gradcheck(wn_loss, &c, c.v, dv, 60, 60, 1e-3f, "weightnorm v") < GRAD_TOL);
    free(c.g); free(c.v); free(c.w); free(c.norm); free(c.r); free(dg); free(dv);
}

/* ---- LSTM ---------------------------------------------------------------------------------- */

typedef struct { int T, B, H; float *x, *wih, *whh, *bih, *bhh, *h, *c, *a, *r; } lstm_ctx;
static double lstm_loss(void *p)
{
    lstm_ctx *c = p;
    ct_lstm_forward(c->h, c->c, c->a, c->x, c->wih, c->whh, c->bih, c->bhh, c->T, c->B, c->H);
    double acc = 0.0;
    for (int i = 0; i < c->T * c->B * c->H; i++) acc += (double)c->h[i] * c->r[i];
    return acc;
}

static void test_lstm_grad(void **state)
{
    (void)state;
    unsigned seed = 21;
    int T = 6, B = 2, H = 5, G = 4 * H;
    size_t n = (size_t)T * B * H;
    lstm_ctx c = {T, B, H, rand_vec(n, &seed, 1.0f), rand_vec((size_t)G * H, &seed, 0.5f),
                  rand_vec((size_t)G * H, &seed, 0.5f), rand_vec((size_t)G, &seed, 0.5f), rand_vec((size_t)G, &seed, 0.5f),
                  malloc(n * sizeof(float)), malloc(n * sizeof(float)), malloc(4 * n * sizeof(float)),
                  rand_vec(n, &seed, 1.0f)};
    float *dx = calloc(n, sizeof(float)), *dwih = calloc((size_t)G * H, sizeof(float));
    float *dwhh = calloc((size_t)G * H, sizeof(float)), *dbih = calloc((size_t)G, sizeof(float));
    float *dbhh = calloc((size_t)G, sizeof(float)), *dg = malloc(4 * n * sizeof(float));
    float *dh = malloc(n * sizeof(float));
    lstm_loss(&c);
    memcpy(dh, c.r, n * sizeof(float));
    ct_lstm_backward(dx, dwih, dwhh, dbih, dbhh, dg, dh, c.x, c.h, c.c, c.a, c.wih, c.whh, T, B, H);
    assert_true(gradcheck(lstm_loss, &c, c.x, dx, n, 60, 1e-2f, "lstm x") < GRAD_TOL);
    assert_true(gradcheck(lstm_loss, &c, c.wih, dwih, (size_t)G * H, 60, 1e-2f, "lstm w_ih") < GRAD_TOL);
    assert_true(gradcheck(lstm_loss, &c, c.whh, dwhh, (size_t)G * H, 60, 1e-2f, "lstm w_hh") < GRAD_TOL);
    assert_true(gradcheck(lstm_loss, &c, c.bih, dbih, (size_t)G, 20, 1e-2f, "lstm b_ih") < GRAD_TOL);
    assert_true(gradcheck(lstm_loss, &c, c.bhh, dbhh, (size_t)G, 20, 1e-2f, "lstm b_hh") < GRAD_TOL);
    free(c.x); free(c.wih); free(c.whh); free(c.bih); free(c.bhh); free(c.h); free(c.c); free(c.a); free(c.r);
    free(dx); free(dwih); free(dwhh); free(dbih); free(dbhh); free(dg); free(dh);
}

/* ---- AdamW ---------------------------------------------------------------------------------- */

static void test_adamw(void **state)
{
    (void)state;
    hafm_adamw opt;
    hafm_adamw_init(&opt, 3, 0.1f, 0.9f, 0.99f, 1e-8f, 0.5f);
    float p[3] = {1.0f, -2.0f, 3.0f}, g[3] = {0.5f, 0.0f, -1.0f};
    uint8_t mask[3] = {1, 1, 0};
    double m[3] = {0}, v[3] = {0}, ref[3] = {1.0, -2.0, 3.0};
    for (int t = 1; t <= 3; t++) {
        hafm_adamw_step(&opt, p, g, mask);
        for (int i = 0; i < 3; i++) {   /* decoupled decay, then the bias-corrected Adam step */
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.99 * v[i] + 0.01 * g[i] * g[i];
            if (mask[i]) ref[i] -= 0.1 * 0.5 * ref[i];
            ref[i] -= 0.1 * (m[i] / (1 - pow(0.9, t))) / (sqrt(v[i] / (1 - pow(0.99, t))) + 1e-8);
        }
    }
    for (int i = 0; i < 3; i++) assert_float_equal(p[i], ref[i], 1e-5);
    assert_int_equal(opt.t, 3);
    /* a zero gradient moves the parameter by the decay alone */
    assert_float_equal(p[1], -2.0 * 0.95 * 0.95 * 0.95, 1e-5);
    hafm_adamw_free(&opt);
}

/* ---- the whole generator ------------------------------------------------------------------- */

static void tiny_config(ct_config *c)
{
    ct_config_default(c);
    c->sample_rate = 8000;
    c->n_filters = 2;
    c->dimension = 4;
    c->n_ratios = 2;
    c->ratios[0] = 3;
    c->ratios[1] = 2;
    c->bins = 8;
    c->n_q = 2;
    c->n_bw = 1;
    c->target_bandwidths[0] = 4.0;
}

typedef struct { ct_model *m; ct_tape *t; int B, L, n_q; float *x, *y, *r; } model_ctx;
static double model_loss(void *p)
{
    model_ctx *c = p;
    ct_rvq_params rp;
    ct_rvq_params_default(&rp);
    ct_model_train_forward(c->m, c->t, c->y, c->x, c->B, c->L, c->n_q, &rp, NULL, 0);
    double acc = 0.0;
    for (int i = 0; i < c->B * c->L; i++) acc += (double)c->y[i] * c->r[i];
    return acc;
}

static void test_model_grad(void **state)
{
    (void)state;
    ct_config cfg;
    tiny_config(&cfg);
    ct_model *m = ct_model_new(&cfg);
    assert_non_null(m);
    ct_model_init_random(m, 3);
    unsigned seed = 77;
    model_ctx c = {m, ct_tape_new(), 2, 31, 0, NULL, NULL, NULL};   /* 31: not a multiple of the hop 6 */
    c.x = rand_vec((size_t)c.B * c.L, &seed, 0.5f);
    c.y = malloc(sizeof(float) * c.B * c.L);
    c.r = rand_vec((size_t)c.B * c.L, &seed, 1.0f);
    model_loss(&c);
    memset(ct_model_grads(m), 0, sizeof(float) * ct_model_nparams(m));
    ct_model_train_backward(m, c.t, c.r, 0.0f);
    double worst = 0.0;
    for (int i = 0; i < ct_model_ntensors(m); i++) {
        const ct_tensor *t = ct_model_tensor(m, i);
        double e = gradcheck(model_loss, &c, ct_model_params(m) + t->offset, ct_model_grads(m) + t->offset,
                             t->numel, 8, 1e-2f, t->name);
        if (e > worst) worst = e;
    }
    printf("# whole generator (continuous latent): max_err=%.2e\n", worst);
    assert_true(worst < GRAD_TOL);
    free(c.x); free(c.y); free(c.r);
    ct_tape_free(c.t);
    ct_model_free(m);
}

/* ---- RVQ ----------------------------------------------------------------------------------- */

static void test_codebook_search_ties(void **state)
{
    (void)state;
    float embed[3 * 2] = {1, 0, 0, 1, 1, 0};   /* codes 0 and 2 are equal: the lower index wins */
    float x[2 * 2] = {0.9f, 0.1f, 0.1f, 2.0f};
    int32_t codes[2];
    ct_codebook_search(codes, x, embed, 2, 2, 3);
    assert_int_equal(codes[0], 0);
    assert_int_equal(codes[1], 1);
}

static void test_codebook_ema(void **state)
{
    (void)state;
    /* 2 codes in 1-D; 3 vectors go to code 0, none to code 1 */
    float embed[2] = {0.0f, 10.0f}, avg[2] = {0.0f, 10.0f}, cs[2] = {1.0f, 1.0f};
    float x[3] = {1.0f, 2.0f, 3.0f};
    int32_t codes[3] = {0, 0, 0};
    ct_codebook_ema_update(embed, avg, cs, x, codes, 3, 1, 2, 0.99f, 1e-5f);
    /* cluster_size = 0.99*1 + 0.01*count; embed_avg = 0.99*avg + 0.01*sum */
    assert_float_equal(cs[0], 0.99f + 0.03f, 1e-6);
    assert_float_equal(cs[1], 0.99f, 1e-6);
    assert_float_equal(avg[0], 0.06f, 1e-6);
    assert_float_equal(avg[1], 9.9f, 1e-5);
    double n = 0.99 + 0.03 + 0.99;
    double s0 = (1.02 + 1e-5) / (n + 2e-5) * n, s1 = (0.99 + 1e-5) / (n + 2e-5) * n;
    assert_float_equal(embed[0], 0.06 / s0, 1e-6);
    assert_float_equal(embed[1], 9.9 / s1, 1e-5);
}

static void test_codebook_dead_codes(void **state)
{
    (void)state;
    ct_rng rng;
    ct_rng_seed(&rng, 1);
    float embed[4 * 2] = {0, 0, 1, 1, 2, 2, 3, 3};
    float avg[4 * 2] = {0, 0, 1.5f, 1.5f, 4, 4, 0, 0};
    float cs[4] = {5.0f, 1.5f, 2.0f, 0.0f};   /* threshold 2: codes 1 and 3 are dead */
    float x[5 * 2] = {10, 11, 20, 21, 30, 31, 40, 41, 50, 51};
    int32_t codes[5] = {0, 0, 0, 0, 2};
    int n = ct_codebook_expire(embed, avg, cs, x, 5, 2, 4, 2.0f, &rng);
    assert_int_equal(n, 2);
    assert_float_equal(embed[0], 0.0f, 0);         /* live codes untouched */
    assert_float_equal(embed[4], 2.0f, 0);
    assert_float_equal(cs[2], 2.0f, 0);
    float replaced[2];
    for (int i = 0, c = 1; c < 4; c += 2, i++) {   /* dead codes now hold data rows, EMA state reset */
        float v = embed[c * 2];
        assert_true(v == 10 || v == 20 || v == 30 || v == 40 || v == 50);
        assert_float_equal(embed[c * 2 + 1], v + 1.0f, 0);
        assert_float_equal(cs[c], 2.0f, 0);
        assert_float_equal(avg[c * 2], 2.0f * v, 0);
        replaced[i] = v;
    }
    /* so the replacement survives the EMA update that follows (in the reference it does not) */
    ct_codebook_ema_update(embed, avg, cs, x, codes, 5, 2, 4, 0.99f, 1e-5f);
    assert_float_equal(embed[1 * 2], replaced[0], 1e-3);
    assert_float_equal(embed[3 * 2], replaced[1], 1e-3);
    float cs_ok[4] = {2.0f, 3.0f, 4.0f, 5.0f};
    assert_int_equal(ct_codebook_expire(embed, avg, cs_ok, x, 5, 2, 4, 2.0f, &rng), 0);
}

static void test_kmeans(void **state)
{
    (void)state;
    ct_rng rng;
    ct_rng_seed(&rng, 5);
    /* three well separated blobs in 2-D */
    float x[90 * 2];
    unsigned seed = 4;
    float centre[3][2] = {{-5, 0}, {5, 5}, {0, 9}};
    for (int i = 0; i < 90; i++) {
        x[2 * i] = centre[i % 3][0] + 0.1f * frand(&seed);
        x[2 * i + 1] = centre[i % 3][1] + 0.1f * frand(&seed);
    }
    float means[3 * 2], counts[3];
    ct_kmeans(means, counts, x, 90, 2, 3, 20, &rng);
    for (int k = 0; k < 3; k++) {
        int found = 0;
        for (int c = 0; c < 3; c++)
            if (fabsf(means[2 * c] - centre[k][0]) < 0.1f && fabsf(means[2 * c + 1] - centre[k][1]) < 0.1f) {
                found = 1;
                assert_float_equal(counts[c], 30.0f, 0);
            }
        assert_true(found);
    }
}

typedef struct { ct_model *m; int B, T, n_q; float *z, *q, *r; int32_t *codes; } rvq_ctx;
static double rvq_loss(void *p)
{
    rvq_ctx *c = p;
    ct_rvq_params rp;
    ct_rvq_params_default(&rp);
    double commit = ct_rvq_train_forward(c->m, c->q, c->codes, c->z, c->B, c->T, c->n_q, &rp, NULL, 0);
    return commit;
}

static void test_rvq_train(void **state)
{
    (void)state;
    ct_config cfg;
    tiny_config(&cfg);
    ct_model *m = ct_model_new(&cfg);
    ct_model_init_random(m, 1);
    const int D = cfg.dimension, B = 2, T = 40, N = B * T;
    unsigned seed = 8;
    rvq_ctx c = {m, B, T, 2, rand_vec((size_t)D * N, &seed, 1.0f), malloc(sizeof(float) * D * N), NULL,
                 malloc(sizeof(int32_t) * 2 * N)};
    ct_rng rng;
    ct_rng_seed(&rng, 2);
    ct_rvq_params rp;
    ct_rvq_params_default(&rp);
    /* first training call: k-means init, after which stage 0 has 8 distinct live codes */
    float commit0 = ct_rvq_train_forward(m, c.q, c.codes, c.z, B, T, 2, &rp, &rng, 1);
    assert_true(*ct_model_inited(m, 0) && *ct_model_inited(m, 1));
    float commit1 = ct_rvq_train_forward(m, c.q, c.codes, c.z, B, T, 2, &rp, &rng, 0);
    /* the first call quantises with the k-means means. embed_avg starts as mean * count, so the
     * EMA step on the same batch (a k-means fixed point) leaves the codebook where it was; seeded
     * with the means alone, as in EnCodec, it would divide every code by its count. */
    printf("# rvq commitment with the k-means codebook %.6f, after one EMA step %.6f\n", commit0, commit1);
    assert_true(commit0 < 0.15f);
    assert_float_equal(commit1, commit0, 1e-4 * commit0);
    /* the straight-through gradient plus the commitment term (stage 0 only) */
    float *dq = calloc((size_t)D * N, sizeof(float)), *dz = calloc((size_t)D * N, sizeof(float));
    float *q0 = malloc(sizeof(float) * D * N);
    for (int d = 0; d < D; d++)
        for (int i = 0; i < N; i++) q0[(size_t)d * N + i] = ct_model_embed(m, 0)[(size_t)c.codes[i] * D + d];
    ct_rvq_backward(dz, dq, c.z, q0, D, N, 2, 1.0f);
    /* finite differences of the stage-0 commitment alone: with 1 stage the mean is that term */
    c.n_q = 1;
    float *dz1 = calloc((size_t)D * N, sizeof(float));
    ct_rvq_backward(dz1, dq, c.z, q0, D, N, 1, 1.0f);
    assert_true(gradcheck(rvq_loss, &c, c.z, dz1, (size_t)D * N, 40, 1e-3f, "rvq commitment") < GRAD_TOL);
    for (size_t i = 0; i < (size_t)D * N; i++) assert_float_equal(dz[i], 0.5f * dz1[i], 1e-7);
    free(dq); free(dz); free(dz1); free(q0); free(c.z); free(c.q); free(c.codes);
    ct_model_free(m);
}

/* A latent whose offset jumps by far more than its spread between two steps: codebooks fitted
 * to the first batch are left behind (every frame falls to the nearest edge code) unless they
 * follow the batch mean (--track-mean), which keeps the quantisation as good as before. */
static void test_rvq_track_mean(void **state)
{
    (void)state;
    for (int track = 0; track <= 1; track++) {
        ct_config cfg;
        tiny_config(&cfg);
        ct_model *m = ct_model_new(&cfg);
        ct_model_init_random(m, 1);
        const int D = cfg.dimension, B = 2, T = 40, N = B * T;
        unsigned seed = 8;
        float *z = rand_vec((size_t)D * N, &seed, 1.0f), *q = malloc(sizeof(float) * D * N);
        int32_t *codes = malloc(sizeof(int32_t) * N);
        ct_rng rng;
        ct_rng_seed(&rng, 2);
        ct_rvq_params rp;
        ct_rvq_params_default(&rp);
        rp.track_mean = track;
        rp.dead_threshold = 0.0f;   /* only the tracking is under test */
        float before = ct_rvq_train_forward(m, q, codes, z, B, T, 1, &rp, &rng, 1);
        for (size_t i = 0; i < (size_t)D * N; i++) z[i] += 20.0f;   /* the offset moves */
        float after = ct_rvq_train_forward(m, q, codes, z, B, T, 1, &rp, &rng, 1);
        int used[8] = {0}, distinct = 0;
        for (int i = 0; i < N; i++) distinct += !used[codes[i]]++;
        printf("# track_mean %d: commitment %.4f before the jump, %.4f after; %d codes used\n", track, before,
               after, distinct);
        if (track) {
            assert_float_equal(after, before, 1e-3);
            assert_int_equal(distinct, 8);
        } else {
            assert_true(after > 100.0f * before);
            assert_true(distinct < 8);
        }
        free(z); free(q); free(codes);
        ct_model_free(m);
    }
}

/* ---- losses -------------------------------------------------------------------------------- */

typedef struct { ct_mel_loss *ml; int B, L; float *y, *x; } mel_ctx;
static double mel_loss(void *p)
{
    mel_ctx *c = p;
    return ct_mel_loss_compute(c->ml, NULL, 1.0f, c->y, c->x, c->B, c->L);
}

static void test_mel_loss_grad(void **state)
{
    (void)state;
    unsigned seed = 31;
    mel_ctx c = {ct_mel_loss_new(8000, 16, 5, 7), 2, 200, NULL, NULL};
    c.y = rand_vec(400, &seed, 0.5f);
    c.x = rand_vec(400, &seed, 0.5f);
    float *dy = calloc(400, sizeof(float));
    double l = ct_mel_loss_compute(c.ml, dy, 1.0f, c.y, c.x, 2, 200);
    assert_true(l > 0.0);
    assert_true(gradcheck(mel_loss, &c, c.y, dy, 400, 80, 1e-3f, "mel y") < GRAD_TOL);
    assert_float_equal(ct_mel_loss_compute(c.ml, NULL, 1.0f, c.x, c.x, 2, 200), 0.0, 0);
    free(dy); free(c.y); free(c.x);
    ct_mel_loss_free(c.ml);
}

static void test_l1_loss_grad(void **state)
{
    (void)state;
    float y[4] = {1, -2, 3, 0.5f}, x[4] = {0, 0, 4, 0.5f}, dy[4] = {0};
    assert_float_equal(ct_l1_loss(dy, 2.0f, y, x, 4), (1 + 2 + 1 + 0) / 4.0, 1e-7);
    assert_float_equal(dy[0], 0.5f, 0);
    assert_float_equal(dy[1], -0.5f, 0);
    assert_float_equal(dy[2], -0.5f, 0);
    assert_float_equal(dy[3], 0.0f, 0);
}

static void test_balancer(void **state)
{
    (void)state;
    /* two gradients of very different sizes come out with norms in the ratio of the weights */
    ct_balancer bal;
    double w[2] = {1.0, 3.0};
    ct_balancer_init(&bal, 2, w, 0.999);
    float g0[2 * 3] = {100, 0, 0, 0, 100, 0}, g1[2 * 3] = {0, 0, 0.01f, 0.01f, 0, 0};
    float *gs[2] = {g0, g1};
    float out[6];
    ct_balancer_combine(&bal, out, gs, 2, 3);
    /* per-item norms: g0 -> 100, g1 -> 0.01; scales 0.25/100 and 0.75/0.01 */
    assert_float_equal(out[0], 0.25f, 1e-6);
    assert_float_equal(out[2], 0.75f, 1e-6);
    assert_float_equal(out[3], 0.75f, 1e-6);
    assert_float_equal(out[4], 0.25f, 1e-6);
}

/* ---- the discriminator --------------------------------------------------------------------- */

typedef struct { int B, Cin, H, W, Cout, kh, kw, sh, sw, dh, dw, ph, pw; float *x, *w, *b, *r, *out, *col; } conv2d_ctx;
static size_t conv2d_out_n(const conv2d_ctx *c)
{
    return (size_t)c->Cout * c->B * ct_conv2d_out_len(c->H, c->kh, c->sh, c->dh, c->ph) *
           ct_conv2d_out_len(c->W, c->kw, c->sw, c->dw, c->pw);
}
static double conv2d_loss(void *p)
{
    conv2d_ctx *c = p;
    ct_conv2d_forward(c->out, c->col, c->x, c->w, c->b, c->B, c->Cin, c->H, c->W, c->Cout, c->kh, c->kw, c->sh, c->sw,
                      c->dh, c->dw, c->ph, c->pw);
    double acc = 0.0;
    for (size_t i = 0; i < conv2d_out_n(c); i++) acc += (double)c->out[i] * c->r[i];
    return acc;
}

static void check_conv2d(int sh, int sw, int dh, int kh, int kw)
{
    unsigned seed = (unsigned)(sh * 3 + sw * 5 + dh * 7 + kh + kw);
    conv2d_ctx c = {2, 3, 9, 11, 4, kh, kw, sh, sw, dh, 1, (kh - 1) * dh / 2, (kw - 1) / 2, 0, 0, 0, 0, 0, 0};
    size_t nx = (size_t)c.B * c.Cin * c.H * c.W, nw = (size_t)c.Cout * c.Cin * kh * kw, no = conv2d_out_n(&c);
    c.x = rand_vec(nx, &seed, 1.0f);
    c.w = rand_vec(nw, &seed, 0.5f);
    c.b = rand_vec((size_t)c.Cout, &seed, 0.5f);
    c.r = rand_vec(no, &seed, 1.0f);
    c.out = malloc(sizeof(float) * no);
    size_t ncol = (size_t)c.Cin * kh * kw * c.H * c.W;
    c.col = malloc(sizeof(float) * ncol);
    float *dcol = malloc(sizeof(float) * ncol);
    float *dx = calloc(nx, sizeof(float)), *dw = calloc(nw, sizeof(float)), *db = calloc((size_t)c.Cout, sizeof(float));
    conv2d_loss(&c);
    ct_conv2d_backward(dx, dw, db, c.col, dcol, c.r, c.x, c.w, c.B, c.Cin, c.H, c.W, c.Cout, kh, kw, sh, sw, dh, 1,
                       c.ph, c.pw);
    char what[64];
    snprintf(what, sizeof what, "conv2d s=(%d,%d) d=%d k=(%d,%d) x", sh, sw, dh, kh, kw);
    assert_true(gradcheck(conv2d_loss, &c, c.x, dx, nx, 60, 1e-2f, what) < GRAD_TOL);
    what[strlen(what) - 1] = 'w';
    assert_true(gradcheck(conv2d_loss, &c, c.w, dw, nw, 60, 1e-2f, what) < GRAD_TOL);
    what[strlen(what) - 1] = 'b';
    assert_true(gradcheck(conv2d_loss, &c, c.b, db, (size_t)c.Cout, 4, 1e-2f, what) < GRAD_TOL);
    free(c.x); free(c.w); free(c.b); free(c.r); free(c.out); free(c.col); free(dcol); free(dx); free(dw); free(db);
}

static void test_conv2d_grad(void **state)
{
    (void)state;
    check_conv2d(1, 1, 1, 3, 9);
    check_conv2d(1, 2, 2, 3, 9);
    check_conv2d(1, 2, 4, 3, 9);
    check_conv2d(1, 1, 1, 3, 3);
}

typedef struct { ct_msstftd *d; int B, L, which; float *y, *x; } disc_ctx;
static double disc_gen_loss(void *p)
{
    disc_ctx *c = p;
    double adv, feat;
    ct_msstftd_gen_loss(c->d, &adv, &feat, NULL, 1.0f, NULL, 1.0f, c->y, c->x, c->B, c->L);
    return c->which ? feat : adv;
}
static double disc_disc_loss(void *p)
{
    disc_ctx *c = p;
    float *keep = malloc(sizeof(float) * ct_msstftd_nparams(c->d));
    memcpy(keep, ct_msstftd_grads(c->d), sizeof(float) * ct_msstftd_nparams(c->d));
    double l = ct_msstftd_disc_loss(c->d, 1.0f, c->y, c->x, c->B, c->L);
    memcpy(ct_msstftd_grads(c->d), keep, sizeof(float) * ct_msstftd_nparams(c->d));
    free(keep);
    return l;
}

static void test_discriminator_grad(void **state)
{
    (void)state;
    int n_fft[2] = {32, 64}, hop[2] = {8, 16};
    ct_msstftd *d = ct_msstftd_new(3, 2, n_fft, hop);
    ct_msstftd_init_random(d, 11);
    unsigned seed = 12;
    disc_ctx c = {d, 2, 160, 0, rand_vec(320, &seed, 0.5f), rand_vec(320, &seed, 0.5f)};
    float *dadv = calloc(320, sizeof(float)), *dfeat = calloc(320, sizeof(float));
    double adv, feat;
    ct_msstftd_gen_loss(d, &adv, &feat, dadv, 1.0f, dfeat, 1.0f, c.y, c.x, 2, 160);
    printf("# discriminator: adversarial %.4f, feature matching %.4f\n", adv, feat);
    assert_true(adv > 0.0 && feat > 0.0);
    assert_true(gradcheck(disc_gen_loss, &c, c.y, dadv, 320, 60, 1e-3f, "msstftd adversarial y") < GRAD_TOL);
    c.which = 1;
    assert_true(gradcheck(disc_gen_loss, &c, c.y, dfeat, 320, 60, 1e-3f, "msstftd feature y") < GRAD_TOL);
    memset(ct_msstftd_grads(d), 0, sizeof(float) * ct_msstftd_nparams(d));
    ct_msstftd_disc_loss(d, 1.0f, c.y, c.x, 2, 160);
    float *grads = malloc(sizeof(float) * ct_msstftd_nparams(d));
    memcpy(grads, ct_msstftd_grads(d), sizeof(float) * ct_msstftd_nparams(d));
    assert_true(gradcheck(disc_disc_loss, &c, ct_msstftd_params(d), grads, ct_msstftd_nparams(d), 150, 1e-3f,
                          "msstftd hinge params") < GRAD_TOL);
    /* the discriminator step on the generator pass's kept activations is the same computation */
    ct_msstftd_gen_loss(d, &adv, &feat, NULL, 1.0f, NULL, 1.0f, c.y, c.x, 2, 160);
    memset(ct_msstftd_grads(d), 0, sizeof(float) * ct_msstftd_nparams(d));
    double kept = ct_msstftd_disc_loss_kept(d, 1.0f);
    assert_memory_equal(grads, ct_msstftd_grads(d), sizeof(float) * ct_msstftd_nparams(d));
    memset(ct_msstftd_grads(d), 0, sizeof(float) * ct_msstftd_nparams(d));
    double fresh = ct_msstftd_disc_loss(d, 1.0f, c.y, c.x, 2, 160);
    assert_float_equal(kept, fresh, 0);
    assert_memory_equal(grads, ct_msstftd_grads(d), sizeof(float) * ct_msstftd_nparams(d));
    assert_float_equal(ct_msstftd_disc_loss_kept(d, 1.0f), 0.0, 0);   /* released after use */
    free(grads); free(dadv); free(dfeat); free(c.y); free(c.x);
    ct_msstftd_free(d);
}

/* ---- parity with the golden small EnCodec model -------------------------------------------- */

static void *read_raw(const char *dir, const char *name, size_t *nbytes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    void *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, fp) != (size_t)n) { free(buf); buf = NULL; }
    fclose(fp);
    *nbytes = (size_t)n;
    return buf;
}

static double compare(const char *what, const float *got, const float *want, size_t n)
{
    double maxd = 0.0, maxg = 0.0;
    for (size_t i = 0; i < n; i++) {
        maxd = fmax(maxd, fabs((double)got[i] - want[i]));
        maxg = fmax(maxg, fabs((double)want[i]));
    }
    printf("# %s (%s) max_diff=%.2e (%.2e of max|golden|)\n", maxd <= 1e-4 * maxg ? "OK" : "FAIL", what, maxd, maxd / maxg);
    return maxd / maxg;
}

static void golden_case(ct_model *m, const char *golden, const char *input)
{
    char dir[1024], name[256];
    size_t nb;
    snprintf(name, sizeof name, "inputs/%s.f32", input);
    float *x = read_raw(golden, name, &nb);
    assert_non_null(x);
    const int L = (int)(nb / 4), hop = ct_config_hop(ct_model_config(m)), D = ct_model_config(m)->dimension;
    const int T = ct_conv_out_len(L, hop);
    snprintf(dir, sizeof dir, "%s/small/%s", golden, input);
    printf("# input %s: L=%d T=%d\n", input, L, T);

    float *latent = malloc(sizeof(float) * D * T);
    assert_int_equal(ct_model_encode(m, latent, x, 1, L), 0);
    float *g_latent = read_raw(dir, "latent.f32", &nb);
    assert_int_equal(nb, sizeof(float) * D * T);
    assert_true(compare("latent", latent, g_latent, (size_t)D * T) <= 1e-4);

    float *y = malloc(sizeof(float) * T * hop);
    float *g = read_raw(dir, "decoded_from_latent.f32", &nb);
    assert_int_equal(ct_model_decode(m, y, g_latent, 1, T), 0);
    assert_true(compare("decoded_from_latent", y, g, (size_t)T * hop) <= 1e-4);
    free(g);

    const char *bws[2] = {"bw6.0", "bw1.5"};
    const int nqs[2] = {8, 2};
    ct_tape *tape = ct_tape_new();
    ct_rvq_params rp;
    ct_rvq_params_default(&rp);
    for (int k = 0; k < 2; k++) {
        int n_q = nqs[k];
        char f[64];
        snprintf(f, sizeof f, "%s/codes.i32", bws[k]);
        int32_t *g_codes = read_raw(dir, f, &nb);
        snprintf(f, sizeof f, "%s/code_margin.f32", bws[k]);
        float *margin = read_raw(dir, f, &nb);
        snprintf(f, sizeof f, "%s/quantized.f32", bws[k]);
        float *g_q = read_raw(dir, f, &nb);
        snprintf(f, sizeof f, "%s/decoded.f32", bws[k]);
        float *g_dec = read_raw(dir, f, &nb);
        int32_t *codes = malloc(sizeof(int32_t) * n_q * T);
        float *q = malloc(sizeof(float) * D * T);
        ct_model_quantize(m, codes, q, latent, 1, T, n_q);
        int mismatched = 0, checked = 0;
        for (int i = 0; i < n_q * T; i++)
            if (margin[i] >= 1e-4f) { checked++; mismatched += codes[i] != g_codes[i]; }
        printf("# %s codes: %d of %d checked codes differ\n", bws[k], mismatched, checked);
        assert_int_equal(mismatched, 0);
        snprintf(f, sizeof f, "%s quantized", bws[k]);
        assert_true(compare(f, q, g_q, (size_t)D * T) <= 1e-4);
        assert_int_equal(ct_model_decode(m, y, g_q, 1, T), 0);
        snprintf(f, sizeof f, "%s decoded", bws[k]);
        assert_true(compare(f, y, g_dec, (size_t)T * hop) <= 1e-4);
        /* the training forward (x -> y in one pass, codebooks frozen) is the same model */
        ct_model_train_forward(m, tape, y, x, 1, L, n_q, &rp, NULL, 0);
        snprintf(f, sizeof f, "%s training forward", bws[k]);
        assert_true(compare(f, y, g_dec, (size_t)L) <= 1e-4);
        free(g_codes); free(margin); free(g_q); free(g_dec); free(codes); free(q);
    }
    ct_tape_free(tape);
    free(x); free(latent); free(g_latent); free(y);
}

static void test_golden_small(void **state)
{
    (void)state;
    /* the copy in tests/data/encodec (same layout as the shared golden folder), else the shared one */
    const char *data = getenv("HAFM_DATA"), *shared = getenv("HAFM_SHARED");
    char golden[1024], path[1100];
    snprintf(golden, sizeof golden, "%s/encodec", data ? data : "tests/data");
    snprintf(path, sizeof path, "%s/encodec_small_seed7.safetensors", golden);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(golden, sizeof golden, "%s/golden/encodec", shared ? shared : "../shared");
        snprintf(path, sizeof path, "%s/encodec_small_seed7.safetensors", golden);
        fp = fopen(path, "rb");
    }
    if (!fp) {
        printf("# SKIP: the golden small EnCodec model is absent (tests/data/encodec, $HAFM_SHARED)\n");
        skip();
    }
    fclose(fp);
    printf("# golden files from %s\n", golden);
    ct_model *m = ct_model_open(path);
    if (!m) printf("# %s\n", hafm_last_error());
    assert_non_null(m);
    golden_case(m, golden, "synth_1s");
    golden_case(m, golden, "synth_odd12345");
    golden_case(m, golden, "synth_short1000");
    golden_case(m, golden, "real_2s");
    /* the Hugging Face naming of the same weights (for --init from a published checkpoint) */
    snprintf(path, sizeof path, "%s/encodec_small_seed7_hf.safetensors", golden);
    ct_model *mh = ct_model_open(path);
    if (!mh) printf("# %s\n", hafm_last_error());
    assert_non_null(mh);
    assert_memory_equal(ct_model_params(m), ct_model_params(mh), sizeof(float) * ct_model_nparams(m));
    for (int k = 0; k < ct_model_config(m)->n_q; k++)
        assert_memory_equal(ct_model_embed_avg(m, k), ct_model_embed_avg(mh, k),
                            sizeof(float) * ct_model_config(m)->bins * ct_model_config(m)->dimension);
    ct_model_free(mh);
    /* written back by the trainer's writer, the file loads to the same model */
    char out[64];
    snprintf(out, sizeof out, "/tmp/test_codec_train_%d.safetensors", (int)getpid());
    assert_int_equal(ct_model_save(m, out, NULL), 0);
    ct_model *m2 = ct_model_open(out);
    assert_non_null(m2);
    assert_memory_equal(ct_model_params(m), ct_model_params(m2), sizeof(float) * ct_model_nparams(m));
    for (int k = 0; k < ct_model_config(m)->n_q; k++)
        assert_memory_equal(ct_model_embed(m, k), ct_model_embed(m2, k),
                            sizeof(float) * ct_model_config(m)->bins * ct_model_config(m)->dimension);
    unlink(out);
    ct_model_free(m2);
    ct_model_free(m);
}

static void test_golden_full24k(void **state)
{
    (void)state;
    /* the full 24 kHz architecture (HF naming, config from hf_config) on the short input */
    const char *shared = getenv("HAFM_SHARED");
    char golden[1024], path[1100], dir[1100];
    snprintf(golden, sizeof golden, "%s/golden/encodec", shared ? shared : "../shared");
    snprintf(path, sizeof path, "%s/encodec24k_seed1234_full_hf.safetensors", golden);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        printf("# SKIP: %s is absent (set HAFM_SHARED)\n", path);
        skip();
    }
    fclose(fp);
    ct_model *m = ct_model_open(path);
    if (!m) printf("# %s\n", hafm_last_error());
    assert_non_null(m);
    assert_int_equal(ct_model_config(m)->n_q, 32);
    assert_int_equal(ct_model_config(m)->bins, 1024);
    size_t nb;
    float *x = read_raw(golden, "inputs/synth_short1000.f32", &nb);
    const int L = (int)(nb / 4), D = 128, T = 4;
    snprintf(dir, sizeof dir, "%s/full24k/synth_short1000", golden);
    float *latent = malloc(sizeof(float) * D * T), *y = malloc(sizeof(float) * T * 320);
    assert_int_equal(ct_model_encode(m, latent, x, 1, L), 0);
    float *g_latent = read_raw(dir, "latent.f32", &nb);
    assert_true(compare("full24k latent", latent, g_latent, (size_t)D * T) <= 1e-4);
    float *g_dec = read_raw(dir, "bw6.0/decoded.f32", &nb);
    ct_tape *tape = ct_tape_new();
    ct_rvq_params rp;
    ct_rvq_params_default(&rp);
    ct_model_train_forward(m, tape, y, x, 1, L, 8, &rp, NULL, 0);
    assert_true(compare("full24k bw6.0 training forward", y, g_dec, (size_t)L) <= 1e-4);
    ct_tape_free(tape);
    free(x); free(latent); free(y); free(g_latent); free(g_dec);
    ct_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pad_map),
        cmocka_unit_test(test_conv1d_grad),
        cmocka_unit_test(test_convtr1d_grad),
        cmocka_unit_test(test_elu_grad),
        cmocka_unit_test(test_weightnorm_grad),
        cmocka_unit_test(test_lstm_grad),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_model_grad),
        cmocka_unit_test(test_codebook_search_ties),
        cmocka_unit_test(test_codebook_ema),
        cmocka_unit_test(test_codebook_dead_codes),
        cmocka_unit_test(test_kmeans),
        cmocka_unit_test(test_rvq_train),
        cmocka_unit_test(test_rvq_track_mean),
        cmocka_unit_test(test_l1_loss_grad),
        cmocka_unit_test(test_mel_loss_grad),
        cmocka_unit_test(test_balancer),
        cmocka_unit_test(test_conv2d_grad),
        cmocka_unit_test(test_discriminator_grad),
        cmocka_unit_test(test_golden_small),
        cmocka_unit_test(test_golden_full24k),
    };
    return cmocka_run_group_tests_name("codec_train", tests, NULL, NULL);
}
