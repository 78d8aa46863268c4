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
#include "hafm.h"
#include "hafm/codec_train.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pad_map),
        cmocka_unit_test(test_conv1d_grad),
        cmocka_unit_test(test_convtr1d_grad),
        cmocka_unit_test(test_elu_grad),
        cmocka_unit_test(test_weightnorm_grad),
        cmocka_unit_test(test_lstm_grad),
    };
    return cmocka_run_group_tests_name("codec_train", tests, NULL, NULL);
}
