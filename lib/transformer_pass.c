/* transformer_pass.c - full forward / loss / backward over a batch of equal-layout sequences
 * (training), and chunked incremental decoding over a KV cache (generation). */
#include "hafm/transformer.h"
#include "hafm/linalg.h"
#include "team.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

static float *falloc(size_t n)
{
    float *p = hafm_aligned_alloc((n ? n : 1) * sizeof(float));
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

static int *bucket_table(const hafm_tf_config *c, int n)
{
    int *b = hafm_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *b);
    for (int i = 0; i < n; i++) b[i] = hafm_rel_bucket(i, c->rel_buckets, c->rel_max_distance);
    return b;
}

/* Embeds positions p0 .. p0+n-1 of one sequence of layout lay into x [n, d]; row holds the
 * sequence's tokens at their positions (at least up to p0 + n - 1). -1: bad token. */
static int embed(const hafm_tf_model *m, float *x, const int32_t *row, const hafm_tf_layout *lay, int p0, int n)
{
    int d = m->cfg.d_model;
    for (int i = 0; i < n; i++) {
        int p = p0 + i, t = lay->table[p];
        const float *e;
        if (t < 0) {
            e = m->w.sep;
        } else {
            if (row[p] < 0 || row[p] >= m->table_rows[t]) {
                hafm_error("token %d out of range for embedding table %d (%d rows)", row[p], t, m->table_rows[t]);
                return -1;
            }
            e = m->w.emb[t] + (size_t)row[p] * d;
        }
        const float *s = m->w.seg + (size_t)lay->seg[p] * d;
        float *y = x + (size_t)i * d;
        for (int j = 0; j < d; j++) y[j] = e[j] + s[j];
        int r = p - (lay->target_start - 1);
        if (lay->n_align && r >= 0)   /* cond positions precede SEP: their tokens were checked */
            for (int k = 0; k < lay->n_align; k++) {
                int ap = lay->align[(size_t)r * lay->n_align + k];
                const float *ea = m->w.emb[lay->table[ap]] + (size_t)row[ap] * d;
                for (int j = 0; j < d; j++) y[j] += ea[j];
            }
    }
    return 0;
}

/* ---- training pass ------------------------------------------------------------------------------ */
struct hafm_tf_acts {
    const hafm_tf_layout *lay;
    int B, L, N, nl, d, H, F, V, Q;
    int *buckets;
    /* per layer l (index l * N * width): */
    float *x;                  /* [nl+1, N, d] residual stream entering each layer (last: output) */
    float *ln1, *rstd1, *qkv, *qn, *kn, *rstdq, *rstdk, *atty, *lse, *h, *ln2, *rstd2, *ff1, *ffg;
    float *lnf, *rstdf, *logits, *dlogits, *tmp;
    /* backward scratch, allocated on first use */
    float *dres, *dh, *dln, *datty, *dq, *dk, *dv, *dqkv, *dff1, *dffg;
};

hafm_tf_acts *hafm_tf_acts_new(const hafm_tf_model *m, const hafm_tf_layout *lay, int B)
{
    const hafm_tf_config *c = &m->cfg;
    hafm_tf_acts *a = hafm_xcalloc(1, sizeof *a);
    a->lay = lay;
    a->B = B;
    a->L = lay->L;
    a->N = B * lay->L;
    a->nl = c->n_layer;
    a->d = c->d_model;
    a->H = c->n_head;
    a->F = c->d_ff;
    a->V = c->target.vocab;
    a->Q = c->target.codebooks;
    a->buckets = bucket_table(c, lay->L);
    size_t N = (size_t)a->N, d = (size_t)a->d, nl = (size_t)a->nl, F = (size_t)a->F, H = (size_t)a->H;
    a->x = falloc((nl + 1) * N * d);
    a->ln1 = falloc(nl * N * d);
    a->rstd1 = falloc(nl * N);
    a->qkv = falloc(nl * N * 3 * d);
    a->qn = falloc(nl * N * d);
    a->kn = falloc(nl * N * d);
    a->rstdq = falloc(nl * N * H);
    a->rstdk = falloc(nl * N * H);
    a->atty = falloc(nl * N * d);
    a->lse = falloc(nl * N * H);
    a->h = falloc(nl * N * d);
    a->ln2 = falloc(nl * N * d);
    a->rstd2 = falloc(nl * N);
    a->ff1 = falloc(nl * N * 2 * F);
    a->ffg = falloc(nl * N * F);
    a->lnf = falloc(N * d);
    a->rstdf = falloc(N);
    a->logits = falloc((size_t)B * lay->n_target * a->V);
    a->dlogits = falloc((size_t)B * lay->n_target * a->V);
    a->tmp = falloc(N * d);
    return a;
}

void hafm_tf_acts_free(hafm_tf_acts *a)
{
    if (!a) return;
    float *bufs[] = { a->x, a->ln1, a->rstd1, a->qkv, a->qn, a->kn, a->rstdq, a->rstdk, a->atty, a->lse,
                      a->h, a->ln2, a->rstd2, a->ff1, a->ffg, a->lnf, a->rstdf, a->logits, a->dlogits,
                      a->tmp, a->dres, a->dh, a->dln, a->datty, a->dq, a->dk, a->dv, a->dqkv, a->dff1, a->dffg };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(a->buckets);
    free(a);
}

static float *forward_pass(const hafm_tf_model *m, hafm_tf_acts *a, const int32_t *tokens)
{
    const hafm_tf_config *c = &m->cfg;
    const hafm_tf_layout *lay = a->lay;
    int B = a->B, L = a->L, N = a->N, d = a->d, H = a->H, F = a->F, V = a->V, Q = a->Q;
    size_t Nd = (size_t)N * d;
    for (int b = 0; b < B; b++)
        if (embed(m, a->x + (size_t)b * L * d, tokens + (size_t)b * L, lay, 0, L) < 0) return NULL;
    for (int l = 0; l < a->nl; l++) {
        const hafm_tf_layer *w = &m->w.layers[l];
        float *x = a->x + l * Nd, *ln1 = a->ln1 + l * Nd, *qkv = a->qkv + l * Nd * 3;
        float *qn = a->qn + l * Nd, *kn = a->kn + l * Nd, *atty = a->atty + l * Nd, *h = a->h + l * Nd;
        float *ln2 = a->ln2 + l * Nd, *ff1 = a->ff1 + l * Nd / d * 2 * F, *ffg = a->ffg + l * Nd / d * F;
        float *xn = a->x + (l + 1) * Nd;
        hafm_rmsnorm_forward(ln1, a->rstd1 + (size_t)l * N, x, w->attn_norm, N, d, c->norm_eps);
        hafm_linear_forward(qkv, ln1, w->qkv_w, w->qkv_b, N, d, 3 * d);
        hafm_qknorm_forward(qn, a->rstdq + (size_t)l * N * H, qkv, 3 * d, w->q_norm, N, d, H, c->norm_eps);
        hafm_qknorm_forward(kn, a->rstdk + (size_t)l * N * H, qkv + d, 3 * d, w->k_norm, N, d, H, c->norm_eps);
        hafm_attention_forward(atty, a->lse + (size_t)l * N * H, qn, kn, qkv + 2 * d, d, 3 * d, (int64_t)L * d,
                               (int64_t)L * 3 * d, m->w.rel_bias, a->buckets, B, L, 0, d, H);
        hafm_linear_forward(a->tmp, atty, w->out_w, w->out_b, N, d, d);
        for (size_t i = 0; i < Nd; i++) h[i] = x[i] + a->tmp[i];
        hafm_rmsnorm_forward(ln2, a->rstd2 + (size_t)l * N, h, w->ffn_norm, N, d, c->norm_eps);
        hafm_linear_forward(ff1, ln2, w->ffn_in_w, w->ffn_in_b, N, d, 2 * F);
        hafm_geglu_forward(ffg, ff1, N, F);
        hafm_linear_forward(a->tmp, ffg, w->ffn_out_w, w->ffn_out_b, N, F, d);
        for (size_t i = 0; i < Nd; i++) xn[i] = h[i] + a->tmp[i];
    }
    hafm_rmsnorm_forward(a->lnf, a->rstdf, a->x + (size_t)a->nl * Nd, m->w.out_norm, N, d, c->norm_eps);
    /* Position target_start - 1 + i predicts target token i, whose codebook is i % Q: the rows of
     * one head are every Q-th position, read in place with a row stride of Q d. */
    int nt = lay->n_target, Ft = nt / Q;
    for (int b = 0; b < B; b++)
        for (int q = 0; q < Q; q++) {
            const float *in = a->lnf + ((size_t)b * L + lay->target_start - 1 + q) * d;
            float *out = a->logits + ((size_t)b * nt + q) * V;
            for (int t = 0; t < Ft; t++) memcpy(out + (size_t)t * Q * V, m->w.head_b[q], (size_t)V * sizeof(float));
            hafm_sgemm_omp(0, 1, Ft, V, d, 1.0f, in, Q * d, m->w.head_w[q], d, 1.0f, out, Q * V);
        }
    return a->logits;
}

double hafm_tf_loss(hafm_tf_acts *a, const int32_t *tokens, float loss_scale, const float *codebook_weight,
                    double *unweighted, int64_t *correct)
{
    const hafm_tf_layout *lay = a->lay;
    int nt = lay->n_target, V = a->V, R = a->B * nt, Q = a->Q;
    double *row_loss = hafm_xmalloc((size_t)R * sizeof *row_loss);
    int *row_ok = hafm_xmalloc((size_t)R * sizeof *row_ok);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) {
        int b = r / nt, i = r % nt;
        int target = tokens[(size_t)b * a->L + lay->target_start + i];
        float scale = codebook_weight ? loss_scale * codebook_weight[i % Q] : loss_scale;
        const float *lg = a->logits + (size_t)r * V;
        float *dl = a->dlogits + (size_t)r * V;
        int best = 0;
        for (int j = 1; j < V; j++)
            if (lg[j] > lg[best]) best = j;
        float mx = lg[best];
        double sum = 0.0;
        for (int j = 0; j < V; j++) {
            dl[j] = expf(lg[j] - mx);
            sum += dl[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < V; j++) dl[j] *= inv * scale;
        dl[target] -= scale;
        row_loss[r] = -((double)(lg[target] - mx) - log(sum));
        row_ok[r] = (best == target);
    }
    double loss = 0.0, weighted = 0.0;
    int64_t ok = 0;
    for (int r = 0; r < R; r++) {
        loss += row_loss[r];
        weighted += codebook_weight ? codebook_weight[(r % nt) % Q] * row_loss[r] : row_loss[r];
        ok += row_ok[r];
    }
    free(row_loss);
    free(row_ok);
    if (unweighted) *unweighted = loss;
    if (correct) *correct = ok;
    return weighted;
}

static void backward_pass(const hafm_tf_model *m, hafm_tf_acts *a, const int32_t *tokens, float *grads)
{
    const hafm_tf_layout *lay = a->lay;
    int B = a->B, L = a->L, N = a->N, d = a->d, H = a->H, F = a->F, V = a->V, Q = a->Q;
    size_t Nd = (size_t)N * d;
    if (!a->dres) {
        a->dres = falloc(Nd);
        a->dh = falloc(Nd);
        a->dln = falloc(Nd);
        a->datty = falloc(Nd);
        a->dq = falloc(Nd);
        a->dk = falloc(Nd);
        a->dv = falloc(Nd);
        a->dqkv = falloc(3 * Nd);
        a->dff1 = falloc((size_t)N * 2 * F);
        a->dffg = falloc((size_t)N * F);
    }
    hafm_tf_weights g;
    hafm_tf_views(m, grads, &g);

    /* heads */
    int nt = lay->n_target, Ft = nt / Q;
    memset(a->dln, 0, Nd * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int q = 0; q < Q; q++) {
            size_t row0 = (size_t)b * L + lay->target_start - 1 + q;
            const float *dl = a->dlogits + ((size_t)b * nt + q) * V;
            hafm_sgemm_omp(0, 0, Ft, d, V, 1.0f, dl, Q * V, m->w.head_w[q], d, 0.0f, a->dln + row0 * d, Q * d);
            hafm_sgemm_omp(1, 0, V, d, Ft, 1.0f, dl, Q * V, a->lnf + row0 * d, Q * d, 1.0f, g.head_w[q], d);
            hafm_colsum_add(g.head_b[q], dl, Q * V, NULL, 0, NULL, Ft, V);
        }
    memset(a->dres, 0, Nd * sizeof(float));
    hafm_rmsnorm_backward(a->dres, g.out_norm, a->dln, a->x + (size_t)a->nl * Nd, m->w.out_norm, a->rstdf, N, d);

    for (int l = a->nl - 1; l >= 0; l--) {
        const hafm_tf_layer *w = &m->w.layers[l];
        hafm_tf_layer *gw = &g.layers[l];
        float *x = a->x + l * Nd, *ln1 = a->ln1 + l * Nd, *qkv = a->qkv + l * Nd * 3;
        float *qn = a->qn + l * Nd, *kn = a->kn + l * Nd, *atty = a->atty + l * Nd, *h = a->h + l * Nd;
        float *ln2 = a->ln2 + l * Nd, *ff1 = a->ff1 + (size_t)l * N * 2 * F, *ffg = a->ffg + (size_t)l * N * F;
        /* x_{l+1} = h + FFN(h) */
        memcpy(a->dh, a->dres, Nd * sizeof(float));
        hafm_linear_backward(a->dffg, gw->ffn_out_w, gw->ffn_out_b, a->dres, ffg, w->ffn_out_w, N, F, d);
        hafm_geglu_backward(a->dff1, a->dffg, ff1, N, F);
        hafm_linear_backward(a->dln, gw->ffn_in_w, gw->ffn_in_b, a->dff1, ln2, w->ffn_in_w, N, d, 2 * F);
        hafm_rmsnorm_backward(a->dh, gw->ffn_norm, a->dln, h, w->ffn_norm, a->rstd2 + (size_t)l * N, N, d);
        /* h = x + Attn(x) */
        memcpy(a->dres, a->dh, Nd * sizeof(float));
        hafm_linear_backward(a->datty, gw->out_w, gw->out_b, a->dh, atty, w->out_w, N, d, d);
        hafm_attention_backward(a->dq, a->dk, a->dv, g.rel_bias, a->datty, atty, a->lse + (size_t)l * N * H, qn, kn,
                                qkv + 2 * d, d, 3 * d, m->w.rel_bias, a->buckets, B, L, d, H);
        hafm_qknorm_backward(a->dqkv, 3 * d, gw->q_norm, a->dq, qkv, w->q_norm, a->rstdq + (size_t)l * N * H, N, d, H);
        hafm_qknorm_backward(a->dqkv + d, 3 * d, gw->k_norm, a->dk, qkv + d, w->k_norm, a->rstdk + (size_t)l * N * H, N, d, H);
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(a->dqkv + (size_t)n * 3 * d + 2 * d, a->dv + (size_t)n * d, (size_t)d * sizeof(float));
        hafm_linear_backward(a->dln, gw->qkv_w, gw->qkv_b, a->dqkv, ln1, w->qkv_w, N, d, 3 * d);
        hafm_rmsnorm_backward(a->dres, gw->attn_norm, a->dln, x, w->attn_norm, a->rstd1 + (size_t)l * N, N, d);
    }

    /* embeddings: serial over positions, so rows hit twice accumulate in a fixed order */
    for (int b = 0; b < B; b++)
        for (int p = 0; p < L; p++) {
            const float *dx = a->dres + ((size_t)b * L + p) * d;
            int t = lay->table[p];
            float *e = t < 0 ? g.sep : g.emb[t] + (size_t)tokens[(size_t)b * L + p] * d;
            float *s = g.seg + (size_t)lay->seg[p] * d;
            for (int j = 0; j < d; j++) {
                e[j] += dx[j];
                s[j] += dx[j];
            }
            int r = p - (lay->target_start - 1);
            if (lay->n_align && r >= 0)
                for (int k = 0; k < lay->n_align; k++) {
                    int ap = lay->align[(size_t)r * lay->n_align + k];
                    float *ea = g.emb[lay->table[ap]] + (size_t)tokens[(size_t)b * L + ap] * d;
                    for (int j = 0; j < d; j++) ea[j] += dx[j];
                }
        }
    hafm_tf_free_views(&g);
}

/* ---- incremental decoding ------------------------------------------------------------------------ */
/* Prefill runs in chunks of this many positions, bounding the scratch memory whatever the prompt. */
#define DECODE_CHUNK 256

struct hafm_tf_cache {
    int B, max_len, len;
    float *K, *V;              /* [n_layer, B, max_len, d], or NULL with kv_bf16 */
    uint16_t *Kh, *Vh;         /* the same in bf16 */
    float *kn;                 /* [B * chunk, d] normalised keys of a chunk before conversion */
    int *buckets;              /* [max_len] */
    int32_t *tok;              /* [B, max_len] the tokens fed so far (aligned conditioning reads them) */
    float *x, *ln, *qkv, *qn, *atty, *tmp, *ff1, *ffg, *y;
};

hafm_tf_cache *hafm_tf_cache_new(const hafm_tf_model *m, int B, int max_len, int kv_bf16)
{
    const hafm_tf_config *c = &m->cfg;
    hafm_tf_cache *k = hafm_xcalloc(1, sizeof *k);
    size_t d = (size_t)c->d_model, R = (size_t)B * DECODE_CHUNK;
    k->B = B;
    k->max_len = max_len;
    size_t kv = (size_t)c->n_layer * B * max_len * d;
    if (kv_bf16) {
        k->Kh = hafm_stream_alloc(kv * sizeof(uint16_t));
        k->Vh = hafm_stream_alloc(kv * sizeof(uint16_t));
        k->kn = falloc(R * d);
    } else {
        k->K = hafm_stream_alloc(kv * sizeof(float));
        k->V = hafm_stream_alloc(kv * sizeof(float));
        memset(k->K, 0, kv * sizeof(float));
        memset(k->V, 0, kv * sizeof(float));
    }
    k->buckets = bucket_table(c, max_len);
    k->tok = hafm_xmalloc((size_t)B * max_len * sizeof *k->tok);
    k->x = falloc(R * d);
    k->ln = falloc(R * d);
    k->qkv = falloc(R * 3 * d);
    k->qn = falloc(R * d);
    k->atty = falloc(R * d);
    k->tmp = falloc(R * d);
    k->ff1 = falloc(R * 2 * c->d_ff);
    k->ffg = falloc(R * c->d_ff);
    k->y = falloc((size_t)B * d);
    return k;
}

void hafm_tf_cache_free(hafm_tf_cache *k)
{
    if (!k) return;
    free(k->Kh);
    free(k->Vh);
    float *bufs[] = { k->kn, k->K, k->V, k->x, k->ln, k->qkv, k->qn, k->atty, k->tmp, k->ff1, k->ffg, k->y };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(k->buckets);
    free(k->tok);
    free(k);
}

void hafm_tf_cache_reset(hafm_tf_cache *k) { k->len = 0; }
int hafm_tf_cache_len(const hafm_tf_cache *k) { return k->len; }

/* Few rows: one pass over the weights (GEMV, bf16 when asked); many rows: sgemm. */
static void linear_any(const hafm_tf_model *m, int use_bf16, float *out, const float *inp, const float *weight,
                       const float *bias, int M, int IN, int OUT)
{
    if (M <= 8 && use_bf16 && m->params_bf16)
        hafm_gemv_bf16(out, inp, m->params_bf16 + (weight - m->params), bias, M, IN, OUT);
    else if (M <= 8)
        hafm_gemv_f32(out, inp, weight, bias, M, IN, OUT);
    else
        hafm_linear_forward(out, inp, weight, bias, M, IN, OUT);
}

/* ---- one decode step in one thread team ------------------------------------------------------- */
/* A step is ~10 dependent phases per layer, each a few microseconds of work: one region per
 * step, phases separated by hafm_team_wait (team.h). With a region per phase, 2 threads decoded
 * slower than 1. */
static void gemv_part(const hafm_tf_model *m, int use_bf16, float *out, const float *inp, const float *weight,
                      const float *bias, int M, int IN, int OUT, int part, int parts)
{
    if (use_bf16 && m->params_bf16)
        hafm_gemv_bf16_part(out, inp, m->params_bf16 + (weight - m->params), bias, M, IN, OUT, part, parts);
    else
        hafm_gemv_f32_part(out, inp, weight, bias, M, IN, OUT, part, parts);
}

/* The step's keys (already normalised) and values into the cache, bf16 or fp32 (keys normalised
 * straight into the fp32 cache by the caller). */
static void step_store_kv(const hafm_tf_model *m, hafm_tf_cache *k, size_t lo, int pos0)
{
    const hafm_tf_config *c = &m->cfg;
    int B = k->B, d = c->d_model, H = c->n_head, hd = d / H;
    for (int b = 0; b < B; b++) {
        const float *src = k->qkv + (size_t)b * 3 * d;
        if (k->Kh) {
            const float *kr = k->kn + (size_t)b * d, *vr = src + 2 * d;
            for (int h = 0; h < H; h++) {
                size_t row = lo + (((size_t)b * H + h) * k->max_len + pos0) * hd;
                for (int j = 0; j < hd; j++) {
                    k->Kh[row + j] = hafm_f32_to_bf16(kr[h * hd + j]);
                    k->Vh[row + j] = hafm_f32_to_bf16(vr[h * hd + j]);
                }
            }
        } else {
            memcpy(k->V + lo + ((size_t)b * k->max_len + pos0) * d, src + 2 * d, (size_t)d * sizeof(float));
        }
    }
}

/* One position per batch row (nc = 1) through every layer, in one team. Same arithmetic as the
 * general path, row for row. */
static void decode_step_team(const hafm_tf_model *m, hafm_tf_cache *k, int head, float *logits, int use_bf16)
{
    const hafm_tf_config *c = &m->cfg;
    const int B = k->B, d = c->d_model, H = c->n_head, F = c->d_ff, V = c->target.vocab, R = B, pos0 = k->len;
    hafm_team_barrier bar = {0, 0, 1};
#pragma omp parallel
    {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp single
        bar.n = nt;   /* the single's barrier publishes it */
        for (int l = 0; l < c->n_layer; l++) {
            const hafm_tf_layer *w = &m->w.layers[l];
            size_t lo = (size_t)l * B * k->max_len * d;
            if (tid == 0) {
                if (l > 0)
                    for (size_t i = 0; i < (size_t)R * d; i++) k->x[i] += k->tmp[i];
                hafm_rmsnorm_forward(k->ln, NULL, k->x, w->attn_norm, R, d, c->norm_eps);
            }
            hafm_team_wait(&bar);
            gemv_part(m, use_bf16, k->qkv, k->ln, w->qkv_w, w->qkv_b, R, d, 3 * d, tid, nt);
            hafm_team_wait(&bar);
            if (tid == 0) {
                hafm_qknorm_forward(k->qn, NULL, k->qkv, 3 * d, w->q_norm, R, d, H, c->norm_eps);
                if (k->Kh) {
                    hafm_qknorm_forward(k->kn, NULL, k->qkv + d, 3 * d, w->k_norm, R, d, H, c->norm_eps);
                } else {
                    for (int b = 0; b < B; b++)
                        hafm_qknorm_forward(k->K + lo + ((size_t)b * k->max_len + pos0) * d, NULL,
                                            k->qkv + (size_t)b * 3 * d + d, 3 * d, w->k_norm, 1, d, H, c->norm_eps);
                }
                step_store_kv(m, k, lo, pos0);
            }
            hafm_team_wait(&bar);
            if (k->Kh)
                hafm_attention_decode_part(k->atty, NULL, k->qn, NULL, NULL, k->Kh + lo, k->Vh + lo, k->max_len, 0, 0, 0,
                                           0, m->w.rel_bias, k->buckets, B, 1, pos0, d, H, tid, nt);
            else
                hafm_attention_decode_part(k->atty, NULL, k->qn, k->K + lo, k->V + lo, NULL, NULL, 0, d, d,
                                           (int64_t)k->max_len * d, (int64_t)k->max_len * d, m->w.rel_bias, k->buckets,
                                           B, 1, pos0, d, H, tid, nt);
            hafm_team_wait(&bar);
            gemv_part(m, use_bf16, k->tmp, k->atty, w->out_w, w->out_b, R, d, d, tid, nt);
            hafm_team_wait(&bar);
            if (tid == 0) {
                for (size_t i = 0; i < (size_t)R * d; i++) k->x[i] += k->tmp[i];
                hafm_rmsnorm_forward(k->ln, NULL, k->x, w->ffn_norm, R, d, c->norm_eps);
            }
            hafm_team_wait(&bar);
            gemv_part(m, use_bf16, k->ff1, k->ln, w->ffn_in_w, w->ffn_in_b, R, d, 2 * F, tid, nt);
            hafm_team_wait(&bar);
            hafm_geglu_forward_part(k->ffg, k->ff1, R, F, tid, nt);
            hafm_team_wait(&bar);
            gemv_part(m, use_bf16, k->tmp, k->ffg, w->ffn_out_w, w->ffn_out_b, R, F, d, tid, nt);
            hafm_team_wait(&bar);
        }
        if (tid == 0) {
            for (size_t i = 0; i < (size_t)R * d; i++) k->x[i] += k->tmp[i];
            if (head >= 0) hafm_rmsnorm_forward(k->y, NULL, k->x, m->w.out_norm, B, d, c->norm_eps);
        }
        hafm_team_wait(&bar);
        if (head >= 0) gemv_part(m, use_bf16, logits, k->y, m->w.head_w[head], m->w.head_b[head], B, d, V, tid, nt);
    }
    k->len += 1;
}

static int decode_positions(const hafm_tf_model *m, hafm_tf_cache *k, const int32_t *tokens,
                            const hafm_tf_layout *lay, int n, int head, float *logits, int use_bf16)
{
    const hafm_tf_config *c = &m->cfg;
    int B = k->B, d = c->d_model, H = c->n_head, F = c->d_ff, V = c->target.vocab;
    if (n < 1 || k->len + n > k->max_len || k->len + n > lay->L) {
        hafm_error("decode: %d positions do not fit the cache (%d of %d used) or the layout (%d)", n, k->len,
                   k->max_len, lay->L);
        return -1;
    }
    for (int b = 0; b < B; b++)
        memcpy(k->tok + (size_t)b * k->max_len + k->len, tokens + (size_t)b * n, (size_t)n * sizeof *tokens);
    if (n == 1 && B <= 8) {
        for (int b = 0; b < B; b++)
            if (embed(m, k->x + (size_t)b * d, k->tok + (size_t)b * k->max_len, lay, k->len, 1) < 0) return -1;
        decode_step_team(m, k, head, logits, use_bf16);
        return 0;
    }
    for (int c0 = 0; c0 < n; c0 += DECODE_CHUNK) {
        int nc = n - c0 < DECODE_CHUNK ? n - c0 : DECODE_CHUNK, R = B * nc, pos0 = k->len;
        for (int b = 0; b < B; b++)
            if (embed(m, k->x + (size_t)b * nc * d, k->tok + (size_t)b * k->max_len, lay, pos0, nc) < 0)
                return -1;
        for (int l = 0; l < c->n_layer; l++) {
            const hafm_tf_layer *w = &m->w.layers[l];
            size_t lo = (size_t)l * B * k->max_len * d;
            hafm_rmsnorm_forward(k->ln, NULL, k->x, w->attn_norm, R, d, c->norm_eps);
            linear_any(m, use_bf16, k->qkv, k->ln, w->qkv_w, w->qkv_b, R, d, 3 * d);
            hafm_qknorm_forward(k->qn, NULL, k->qkv, 3 * d, w->q_norm, R, d, H, c->norm_eps);
            if (k->Kh) {
                hafm_qknorm_forward(k->kn, NULL, k->qkv + d, 3 * d, w->k_norm, R, d, H, c->norm_eps);
                int hd = d / H;
                for (int b = 0; b < B; b++)
                    for (int i = 0; i < nc; i++) {
                        const float *kr = k->kn + ((size_t)b * nc + i) * d, *vr = k->qkv + ((size_t)b * nc + i) * 3 * d + 2 * d;
                        for (int h = 0; h < H; h++) {
                            size_t row = lo + (((size_t)b * H + h) * k->max_len + pos0 + i) * hd;
                            for (int j = 0; j < hd; j++) {
                                k->Kh[row + j] = hafm_f32_to_bf16(kr[h * hd + j]);
                                k->Vh[row + j] = hafm_f32_to_bf16(vr[h * hd + j]);
                            }
                        }
                    }
                hafm_attention_forward_bf16kv(k->atty, k->qn, k->Kh + lo, k->Vh + lo, k->max_len, m->w.rel_bias, k->buckets,
                                              B, nc, pos0, d, H);
            } else {
                float *Kl = k->K + lo, *Vl = k->V + lo;
                for (int b = 0; b < B; b++) {
                    float *kd = Kl + ((size_t)b * k->max_len + pos0) * d, *vd = Vl + ((size_t)b * k->max_len + pos0) * d;
                    const float *src = k->qkv + (size_t)b * nc * 3 * d;
                    hafm_qknorm_forward(kd, NULL, src + d, 3 * d, w->k_norm, nc, d, H, c->norm_eps);
                    for (int i = 0; i < nc; i++) memcpy(vd + (size_t)i * d, src + (size_t)i * 3 * d + 2 * d, (size_t)d * sizeof(float));
                }
                hafm_attention_forward(k->atty, NULL, k->qn, Kl, Vl, d, d, (int64_t)k->max_len * d, (int64_t)k->max_len * d,
                                       m->w.rel_bias, k->buckets, B, nc, pos0, d, H);
            }
            linear_any(m, use_bf16, k->tmp, k->atty, w->out_w, w->out_b, R, d, d);
            for (size_t i = 0; i < (size_t)R * d; i++) k->x[i] += k->tmp[i];
            hafm_rmsnorm_forward(k->ln, NULL, k->x, w->ffn_norm, R, d, c->norm_eps);
            linear_any(m, use_bf16, k->ff1, k->ln, w->ffn_in_w, w->ffn_in_b, R, d, 2 * F);
            hafm_geglu_forward(k->ffg, k->ff1, R, F);
            linear_any(m, use_bf16, k->tmp, k->ffg, w->ffn_out_w, w->ffn_out_b, R, F, d);
            for (size_t i = 0; i < (size_t)R * d; i++) k->x[i] += k->tmp[i];
        }
        k->len += nc;
        if (c0 + nc == n && head >= 0) {
            for (int b = 0; b < B; b++)
                hafm_rmsnorm_forward(k->y + (size_t)b * d, NULL, k->x + ((size_t)b * nc + nc - 1) * d, m->w.out_norm, 1, d,
                                     c->norm_eps);
            linear_any(m, use_bf16, logits, k->y, m->w.head_w[head], m->w.head_b[head], B, d, V);
        }
    }
    return 0;
}

/* ---- entry points: one thread pool per pass ------------------------------------------------------ */
/* The passes' OpenMP loops and their products share one pool: BLAS runs single-threaded and the
 * large products are sliced over the OpenMP threads (hafm_sgemm_omp), the attention heads run in
 * parallel. With BLAS's own workers spinning beside the OpenMP loops, a sixth of a training
 * step's CPU time went to the scheduler. */

float *hafm_tf_forward(const hafm_tf_model *m, hafm_tf_acts *a, const int32_t *tokens)
{
    int blas = hafm_blas_single_begin();
    float *logits = forward_pass(m, a, tokens);
    hafm_blas_single_end(blas);
    return logits;
}

void hafm_tf_backward(const hafm_tf_model *m, hafm_tf_acts *a, const int32_t *tokens, float *grads)
{
    int blas = hafm_blas_single_begin();
    backward_pass(m, a, tokens, grads);
    hafm_blas_single_end(blas);
}

int hafm_tf_decode(const hafm_tf_model *m, hafm_tf_cache *k, const int32_t *tokens,
                   const hafm_tf_layout *lay, int n, int head, float *logits, int use_bf16)
{
    if (n == 1 && k->B <= 8)   /* one team step, no BLAS: nothing to switch */
        return decode_positions(m, k, tokens, lay, n, head, logits, use_bf16);
    int blas = hafm_blas_single_begin();
    int rc = decode_positions(m, k, tokens, lay, n, head, logits, use_bf16);
    hafm_blas_single_end(blas);
    return rc;
}
