/* hafm/transformer.h - the stage Transformer of formats/model.md: one implementation shared by
 * generation (KV cache, batch of cond/uncond) and training (full forward, backward).
 *
 * Sequences: [cond 0][cond 1]...[SEP][target], every stream flattened time-major, codebook-minor.
 * All float32 row-major; weights [out, in] as in PyTorch nn.Linear.
 */
#ifndef HAFM_TRANSFORMER_H
#define HAFM_TRANSFORMER_H

#include "common.h"
#include "safetensors.h"

#define HAFM_TF_MAX_COND 8

typedef struct {
    char name[65];          /* default track name */
    int codebooks;          /* Q: track shape [Q] */
    int codebook_offset;    /* track attribute codebook_offset */
    int vocab;
    int rate;               /* frames per second */
} hafm_tf_stream;

/* Sampling defaults a model may carry (formats/model.md section 2, "sampling"): the values its
 * trainer found best on validation data; the has_ flags say which are set. */
typedef struct {
    int has_cfg_scale, has_temperature, has_top_k, has_top_p;
    float cfg_scale;        /* 0..100 */
    float temperature;      /* 0..10 */
    int top_k;              /* 0..2^20 */
    float top_p;            /* (0, 1] */
} hafm_tf_sampling;

typedef struct {
    int stage;              /* 1..3, 0 = experimental */
    int n_layer, d_model, n_head, d_ff;
    int rel_buckets, rel_max_distance;
    float norm_eps;
    double window_seconds;
    int n_cond;
    hafm_tf_stream cond[HAFM_TF_MAX_COND];
    hafm_tf_stream target;
    hafm_tf_sampling sampling;
    int aligned_conditioning;   /* formats/model.md 3.2: positions from SEP on add the embeddings of
                                   the conditioning frames at their time (format version 2) */
} hafm_tf_config;

/* The paper configuration of stage 1, 2 or 3 (formats/model.md section 2). */
int hafm_tf_config_paper(hafm_tf_config *c, int stage);
int hafm_tf_config_validate(const hafm_tf_config *c);
/* JSON of the config (malloc'd) and back. */
char *hafm_tf_config_to_json(const hafm_tf_config *c);
int hafm_tf_config_from_json(hafm_tf_config *c, const char *json);
/* The "sampling" object (JSON text) into s, replacing it; -1 with hafm_error on bad keys or values. */
int hafm_tf_sampling_from_json(hafm_tf_sampling *s, const char *json);
/* The time grid: gcd of all rates (units per second), frames per unit of a stream. */
int hafm_tf_units_per_second(const hafm_tf_config *c);
int hafm_tf_frames_per_unit(const hafm_tf_config *c, const hafm_tf_stream *s);
int hafm_tf_window_units(const hafm_tf_config *c);

/* Pointers to every tensor inside one flat buffer (parameters, gradients, Adam moments). */
typedef struct {
    float *attn_norm, *qkv_w, *qkv_b, *q_norm, *k_norm, *out_w, *out_b;
    float *ffn_norm, *ffn_in_w, *ffn_in_b, *ffn_out_w, *ffn_out_b;
} hafm_tf_layer;

typedef struct {
    float **emb;            /* [n_tables]: cond tables (codebook-minor), then target tables */
    float *sep, *seg, *rel_bias, *out_norm;
    hafm_tf_layer *layers;  /* [n_layer] */
    float **head_w, **head_b;
} hafm_tf_weights;

typedef struct {
    char name[48];
    int ndim;
    int64_t shape[2];
    size_t offset, numel;
    int decay;              /* AdamW weight decay applies (2-D weights) */
} hafm_tf_tensor;

typedef struct hafm_tf_model {
    hafm_tf_config cfg;
    int n_tables;
    int *table_rows;        /* [n_tables] */
    int n_tensors;
    hafm_tf_tensor *tensors;
    size_t n_params;
    float *params;          /* [n_params] */
    hafm_tf_weights w;
    uint16_t *params_bf16;  /* NULL, or a bf16 copy used by the decode GEMVs */
} hafm_tf_model;

/* Allocates a model with zeroed parameters for a validated config. */
hafm_tf_model *hafm_tf_new(const hafm_tf_config *c);
void hafm_tf_free(hafm_tf_model *m);
/* Views over any buffer of n_params floats laid out like the parameters. */
void hafm_tf_views(const hafm_tf_model *m, float *base, hafm_tf_weights *w);
void hafm_tf_free_views(hafm_tf_weights *w);
/* Random initialisation (normal 0.02 for matrices and embeddings, ones for norms, zeros for
 * biases), deterministic in seed. */
void hafm_tf_init_random(hafm_tf_model *m, uint64_t seed);
/* Loads a model file (formats/model.md); stage > 0 requires that stage. NULL + error. */
hafm_tf_model *hafm_tf_load(const char *path, int stage);
hafm_tf_model *hafm_tf_load_st(const hafm_safetensors *st, int stage);
/* Adds the parameters (stored as F32 or BF16) and the config metadata to a writer. */
int hafm_tf_add_to_writer(const hafm_tf_model *m, void *writer /* hafm_st_writer */, hafm_dtype stored_as);
/* Makes the bf16 copy of the weights used by hafm_tf_decode (idempotent). */
void hafm_tf_enable_bf16(hafm_tf_model *m);

/* ---- sequence layout ------------------------------------------------------------------------ */
typedef struct {
    int n_units, L;
    int target_start;       /* index of the first target token; SEP is at target_start - 1 */
    int n_target;           /* target tokens */
    int *table;             /* [L] embedding table of each position, -1 for SEP */
    int *seg;               /* [L] segment of each position */
    int stream_start[HAFM_TF_MAX_COND + 1];   /* first position of each cond stream, then target */
    int n_align;            /* aligned conditioning: cond positions added to each position from SEP on */
    int *align;             /* [n_target + 1, n_align] (row r: position target_start - 1 + r), or NULL */
} hafm_tf_layout;

int  hafm_tf_layout_init(hafm_tf_layout *lay, const hafm_tf_config *c, int n_units);
void hafm_tf_layout_free(hafm_tf_layout *lay);
/* The null-condition row of table t (cond tables only). */
int  hafm_tf_null_token(const hafm_tf_model *m, int table);

/* ---- full forward + backward (training, prefill checks) ---------------------------------- */
typedef struct hafm_tf_acts hafm_tf_acts;
/* Activations for B sequences of layout `lay` (kept by pointer). */
hafm_tf_acts *hafm_tf_acts_new(const hafm_tf_model *m, const hafm_tf_layout *lay, int B);
void hafm_tf_acts_free(hafm_tf_acts *a);
/* tokens [B, L]: row index in each position's table (SEP: 0). Returns the logits [B, n_target,
 * vocab_t] (row i predicts target token i), owned by the activations. */
float *hafm_tf_forward(const hafm_tf_model *m, hafm_tf_acts *a, const int32_t *tokens);
/* Cross-entropy of the last forward against its own target tokens: sum over the B x n_target
 * predictions of -log p, each weighted by its codebook's codebook_weight[q] (NULL: all 1), is
 * returned; the unweighted sum goes to *unweighted and the number correct by argmax to *correct
 * (either may be NULL). Also writes the gradient of the weighted sum, scaled by loss_scale (e.g.
 * 1 / tokens of the global batch), for backward. */
double hafm_tf_loss(hafm_tf_acts *a, const int32_t *tokens, float loss_scale, const float *codebook_weight,
                    double *unweighted, int64_t *correct);
/* Accumulates parameter gradients (+=) into grads (n_params floats). */
void hafm_tf_backward(const hafm_tf_model *m, hafm_tf_acts *a, const int32_t *tokens, float *grads);

/* ---- incremental decoding with a KV cache --------------------------------------------------- */
typedef struct hafm_tf_cache hafm_tf_cache;
/* A cache for B sequences of at most max_len positions. kv_bf16 stores keys and values as
 * bfloat16: decoding at long contexts is bound by reading them, so this halves its cost. */
hafm_tf_cache *hafm_tf_cache_new(const hafm_tf_model *m, int B, int max_len, int kv_bf16);
void hafm_tf_cache_free(hafm_tf_cache *c);
void hafm_tf_cache_reset(hafm_tf_cache *c);
int  hafm_tf_cache_len(const hafm_tf_cache *c);
/* Feeds the next n positions of layout lay (tokens [B, n]; the cache holds positions
 * 0 .. len-1 of the same layout), appending them to the cache. If head >= 0, writes logits
 * [B, vocab_t] of the last position through head `head` into logits. use_bf16 selects the bf16
 * GEMV weights for small n. */
int hafm_tf_decode(const hafm_tf_model *m, hafm_tf_cache *c, const int32_t *tokens,
                   const hafm_tf_layout *lay, int n, int head, float *logits, int use_bf16);

/* ---- kernels (exported for the gradient checks) ------------------------------------------- */
void hafm_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
void hafm_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, const float *rstd, int N, int C);
void hafm_geglu_forward(float *out, const float *inp, int N, int F);
/* The same for a share of the units, for a thread of a team (decode steps). */
void hafm_geglu_forward_part(float *out, const float *inp, int N, int F, int part, int parts);
void hafm_geglu_backward(float *dinp, const float *dout, const float *inp, int N, int F);
void hafm_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int IN, int OUT);
void hafm_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, int N, int IN, int OUT);
/* dst[c] += sum_n src[n ld + c] (x mul[n ld_mul + c] x scale[n] when given), rows in order. */
void hafm_colsum_add(float *dst, const float *src, int ld, const float *mul, int ld_mul, const float *scale, int N, int C);
/* T5 causal bucket of a distance n >= 0. */
int hafm_rel_bucket(int n, int buckets, int max_distance);
/* Causal attention with T5 bias: q [B,T,d] holds positions pos0..pos0+T-1 of each sequence;
 * k and v hold positions 0..pos0+T-1 with row strides ld_k, ld_v and sequence strides
 * k_bstride, v_bstride; out [B,T,d]; lse [B,H,T] log-sum-exp per row for the backward (or NULL).
 * buckets[n] is the bucket of distance n. */
void hafm_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                            int ld_k, int ld_v, int64_t k_bstride, int64_t v_bstride,
                            const float *rel_bias, const int *buckets, int B, int T, int pos0, int d, int H);
/* Backward of hafm_attention_forward with pos0 = 0, k_bstride = T ld_k, v_bstride = T ld_v:
 * dq, dk, dv [B,T,d] overwritten, drel_bias [buckets, H] accumulated. */
void hafm_attention_backward(float *dq, float *dk, float *dv, float *drel_bias, const float *dout,
                             const float *out, const float *lse, const float *q, const float *k,
                             const float *v, int ld_k, int ld_v, const float *rel_bias,
                             const int *buckets, int B, int T, int d, int H);
/* Per-head RMSNorm of q or k read with row stride ld_in: out [N,d], rstd [N,H]. */
void hafm_qknorm_forward(float *out, float *rstd, const float *inp, int ld_in, const float *weight,
                         int N, int d, int H, float eps);
void hafm_qknorm_backward(float *dinp, int ld_in, float *dweight, const float *dout, const float *inp,
                          const float *weight, const float *rstd, int N, int d, int H);
/* hafm_attention_forward with keys and values stored as bf16, head-major [B, H, max_len, hd],
 * for decoding from a bf16 KV cache. */
void hafm_attention_forward_bf16kv(float *out, const float *q, const uint16_t *k, const uint16_t *v, int max_len,
                                   const float *rel_bias, const int *buckets, int B, int T, int pos0, int d, int H);
/* y[M, OUT] = x[M, IN] W^T + b with W stored as bf16, reading W once for all M rows. */
void hafm_gemv_bf16(float *out, const float *inp, const uint16_t *weight, const float *bias, int M, int IN, int OUT);
void hafm_gemv_f32(float *out, const float *inp, const float *weight, const float *bias, int M, int IN, int OUT);
/* Part `part` of `parts` of the same products (output rows split in blocks of 8), for callers
 * that run their own thread team. */
void hafm_gemv_bf16_part(float *out, const float *inp, const uint16_t *weight, const float *bias, int M, int IN,
                         int OUT, int part, int parts);
void hafm_gemv_f32_part(float *out, const float *inp, const float *weight, const float *bias, int M, int IN,
                        int OUT, int part, int parts);
/* Attention for a few query rows (decode steps), part `part` of `parts` of the (b, h, t) rows:
 * fp32 keys/values as in hafm_attention_forward, or (kh, vh non-NULL) bf16 as in
 * hafm_attention_forward_bf16kv. */
void hafm_attention_decode_part(float *out, float *lse, const float *q, const float *k, const float *v,
                                const uint16_t *kh, const uint16_t *vh, int max_len, int ld_k, int ld_v,
                                int64_t k_bstride, int64_t v_bstride, const float *rel_bias, const int *buckets,
                                int B, int T, int pos0, int d, int H, int part, int parts);

#endif
