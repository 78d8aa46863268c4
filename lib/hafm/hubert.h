/* hafm/hubert.h - HuBERT (Base and Large) feature extraction, weight-compatible with Hugging Face
 * `HubertModel` checkpoints (facebook/hubert-base-ls960, facebook/hubert-large-ll60k).
 *
 * Architecture (see tests/data/hubert/SPEC.md): a strided conv feature extractor (7 layers,
 * total stride 320 = 20 ms at 16 kHz, receptive field 400 samples), a feature projection, a
 * convolutional positional embedding (weight norm over the kernel dimension) and a transformer
 * encoder, post-norm for Base and pre-norm ("stable layer norm") for Large. Layers are indexed as
 * HF `hidden_states[L]`: 0 is the encoder input (after its layer norm for Base), L >= 1 the
 * output of transformer layer L.
 *
 * Long inputs are processed in overlapping windows (hafm_hubert_set_window) so memory does not
 * grow with the input; an input no longer than one window is processed whole, exactly.
 */
#ifndef HAFM_HUBERT_H
#define HAFM_HUBERT_H

#include "common.h"

#define HAFM_HUBERT_SAMPLE_RATE 16000
#define HAFM_HUBERT_MAX_CONV 16

typedef enum { HAFM_HUBERT_NORM_GROUP = 0, HAFM_HUBERT_NORM_LAYER = 1 } hafm_hubert_conv_norm;

typedef struct {
    int conv_layers;                          /* 7 */
    int conv_dim[HAFM_HUBERT_MAX_CONV];       /* output channels per layer */
    int conv_kernel[HAFM_HUBERT_MAX_CONV];
    int conv_stride[HAFM_HUBERT_MAX_CONV];
    int conv_bias;                            /* Large: 1 */
    hafm_hubert_conv_norm conv_norm;          /* group: GroupNorm on layer 0 only; layer: LN on every layer */
    int hidden;                               /* D: 768 Base, 1024 Large */
    int heads;                                /* 12 / 16 */
    int ffn;                                  /* 3072 / 4096 */
    int layers;                               /* 12 / 24 */
    int pos_kernel, pos_groups;               /* 128, 16 */
    int stable_layer_norm;                    /* pre-norm blocks, encoder LN after the last layer */
    int normalize_input;                      /* zero-mean unit-variance waveform (Large) */
    float eps;                                /* layer_norm_eps, 1e-5 */
} hafm_hubert_config;

void hafm_hubert_config_base(hafm_hubert_config *c);
void hafm_hubert_config_large(hafm_hubert_config *c);
/* Fills c from an HF config.json text; keys not present keep the values already in c. */
int hafm_hubert_config_parse(hafm_hubert_config *c, const char *json);

/* A model object keeps its working memory between calls: use it from one thread at a time. */
typedef struct hafm_hubert hafm_hubert;

/* Loads a safetensors checkpoint in HF naming. The configuration comes from the file's
 * __metadata__ "config" (an HF config.json document), else from config.json in the same
 * directory, else from the Base or Large preset chosen by the tensor shapes. Every tensor the
 * configuration implies is checked (shape, presence); weights are kept for layers 1..max_layer
 * only (max_layer <= 0: all). NULL + an error naming the file and tensor on failure. */
hafm_hubert *hafm_hubert_load(const char *path, int max_layer);
void hafm_hubert_free(hafm_hubert *m);
const hafm_hubert_config *hafm_hubert_get_config(const hafm_hubert *m);
int hafm_hubert_max_layer(const hafm_hubert *m);   /* deepest layer that can be extracted */

/* Output frames for n input samples (0 when n is below the receptive field). */
int64_t hafm_hubert_frames(const hafm_hubert_config *c, int64_t n);
int     hafm_hubert_receptive_field(const hafm_hubert_config *c);   /* 400 */
int     hafm_hubert_hop(const hafm_hubert_config *c);               /* 320 */

/* Window for long inputs, in output frames: the encoder sees at most `window` frames at once and
 * every emitted frame has at least `context` frames of context on each side that exist in the
 * input. Defaults: 999 frames (20 s) and 100 frames (2 s). */
#define HAFM_HUBERT_WINDOW_DEFAULT 999
#define HAFM_HUBERT_CONTEXT_DEFAULT 100
int hafm_hubert_set_window(hafm_hubert *m, int window, int context);
/* Output frames the conv feature extractor computes per pass (bounds its memory; 0 = whole
 * window at once). Results do not depend on it beyond float rounding. Default 128. */
void hafm_hubert_set_conv_chunk(hafm_hubert *m, int frames);

/* Receives consecutive output frames [t0, t0 + frames) of layer L as x[frames, D]. Non-zero
 * return stops the extraction (the return value is passed on). */
typedef int (*hafm_hubert_emit_fn)(void *ctx, int64_t t0, int64_t frames, const float *x);
/* Runs the model on n samples of 16 kHz mono audio up to hidden_states[layer]. -1 + error when
 * the input is shorter than the receptive field or the layer is out of range. */
int hafm_hubert_extract(hafm_hubert *m, const float *wav, int64_t n, int layer,
                        hafm_hubert_emit_fn emit, void *ctx);
/* Whole output [*frames, D] in one allocation (free()); NULL + error on failure. */
float *hafm_hubert_features(hafm_hubert *m, const float *wav, int64_t n, int layer, int64_t *frames);

/* Debug/verification hook: called with every intermediate stage of every window and conv chunk,
 * time-major x[rows, cols]: "conv<i>_raw" (conv output before its norm), "conv<i>_out",
 * "features", "fp_layernorm", "projection", "pos_conv", "hidden_states_<LL>",
 * "layer<LL>_attn_out", "layer<LL>_after_attn_ln" (post-norm only), "layer<LL>_ffn_out". */
typedef void (*hafm_hubert_trace_fn)(void *ctx, const char *stage, const float *x, int64_t rows, int64_t cols);
void hafm_hubert_set_trace(hafm_hubert *m, hafm_hubert_trace_fn fn, void *ctx);

/* Exact-erf GELU, 0.5 x (1 + erf(x / sqrt 2)) (not the tanh form), vectorised: measured error
 * against double erfc below 4e-7 absolute, 6e-6 relative for x >= -8. */
void hafm_gelu_forward(float *out, const float *in, int64_t n);

#endif
