/* hafm/codec_train.h - training EnCodec-architecture codecs (SEANet encoder/decoder + RVQ).
 *
 * Layout of every activation: [C][B][T] (channel-major, the batch inside each channel row), so a
 * convolution over the whole batch is one GEMM with N = B*T columns.
 * Kernels come in forward/backward pairs; every backward ACCUMULATES (+=) into its gradients,
 * so a tensor that feeds two consumers (the residual shortcut, the LSTM skip) just receives both.
 */
#ifndef HAFM_CODEC_TRAIN_H
#define HAFM_CODEC_TRAIN_H

#include <stdint.h>
#include <stddef.h>
#include "adamw.h"
#include "safetensors.h"

/* Elementwise loops below this many elements stay on one thread: a parallel region costs more
 * than it saves there, and far more on a loaded machine. */
#define CT_OMP_MIN 32768

/* ---- layer kernels ------------------------------------------------------------------------- */

/* Weight norm over every dim except dim 0: w = g * v / ||v||, v viewed as [n0, rest]. */
void ct_weightnorm_forward(float *w, float *norm, const float *g, const float *v, int n0, int rest);
void ct_weightnorm_backward(float *dg, float *dv, const float *dw, const float *g, const float *v,
                            const float *norm, int n0, int rest);

/* PyTorch reflect padding with EnCodec's short-input rule as an index map: padded position p
 * reads inp[map[p]], or zero where map[p] < 0. Returns L + left + right (map's length). */
int ct_pad_map(int *map, int L, int left, int right);
/* Padding of a causal SConv1d for input length L: *left = (k-1)*d+1-s, *right = extra. */
void ct_conv_padding(int L, int k, int stride, int dil, int *left, int *right);
int ct_conv_out_len(int L, int stride);   /* ceil(L/stride) */

/* Causal padded conv1d (SConv1d), any stride/dilation: inp [Cin][B][L] -> out [Cout][B][Tout],
 * Tout = ceil(L/stride), w [Cout][Cin*K]. col and dcol are workspaces of Cin*K*B*Tout floats
 * (unused when K == 1 and stride 1: the input is its own im2col). */
void ct_conv1d_forward(float *out, float *col, const float *inp, const float *w, const float *b,
                       int B, int Cin, int L, int Cout, int K, int stride, int dil);
void ct_conv1d_backward(float *dinp, float *dw, float *db, float *col, float *dcol,
                        const float *dout, const float *inp, const float *w,
                        int B, int Cin, int L, int Cout, int K, int stride, int dil);

/* Transposed conv1d with the right trim of SConvTranspose1d (trim_right_ratio 1):
 * inp [Cin][B][T] -> out [Cout][B][T*stride], w [Cin][Cout*K]. col: Cout*K*B*T floats. */
void ct_convtr1d_forward(float *out, float *col, const float *inp, const float *w, const float *b,
                         int B, int Cin, int T, int Cout, int K, int stride);
void ct_convtr1d_backward(float *dinp, float *dw, float *db, float *dcol, const float *dout,
                          const float *inp, const float *w, int B, int Cin, int T, int Cout, int K,
                          int stride);

/* ELU(alpha=1). The backward reads the forward OUTPUT. */
void ct_elu_forward(float *out, const float *inp, size_t n);
void ct_elu_backward(float *dinp, const float *dout, const float *out, size_t n);

/* One LSTM layer (PyTorch gate order i, f, g, o; zero initial state), rows are time-major:
 * x [T*B][H] -> h [T*B][H]; c [T*B][H] and acts [T*B][4H] (activated gates) are saved. */
void ct_lstm_forward(float *h, float *c, float *acts, const float *x, const float *wih,
                     const float *whh, const float *bih, const float *bhh, int T, int B, int H);
/* dx (+=) [T*B][H], dwih/dwhh (+=) [4H][H], dbih/dbhh (+=) [4H]; dgates is a [T*B][4H] workspace.
 * dh holds dL/dh [T*B][H] and is used as scratch (it is overwritten). */
void ct_lstm_backward(float *dx, float *dwih, float *dwhh, float *dbih, float *dbhh, float *dgates,
                      float *dh, const float *x, const float *h, const float *c, const float *acts,
                      const float *wih, const float *whh, int T, int B, int H);

/* [C][B][T] <-> [T*B][C] */
void ct_to_time_major(float *out, const float *inp, int C, int B, int T);
void ct_from_time_major(float *out, const float *inp, int C, int B, int T);

/* ---- the model --------------------------------------------------------------------------- */

#define CT_MAX_RATIOS 8
#define CT_MAX_BW 8
#define CT_MAX_CONVS 512
#define CT_MAX_LSTM_LAYERS 8

typedef struct {
    int sample_rate, channels, dimension, n_filters, n_residual_layers;
    int n_ratios, ratios[CT_MAX_RATIOS];      /* decoder order, e.g. 8 5 4 2 */
    int kernel_size, last_kernel_size, residual_kernel_size, dilation_base, compress, lstm_layers;
    int n_q, bins;
    int n_bw;
    double target_bandwidths[CT_MAX_BW];
} ct_config;

/* EnCodec 24 kHz defaults (n_filters 32, D 128, 32 x 1024 codebooks, 1.5..24 kbps). */
void ct_config_default(ct_config *cfg);
int ct_config_hop(const ct_config *cfg);
int ct_config_frame_rate(const ct_config *cfg);
/* Codebooks used at a bandwidth (kbps): max(1, floor(bw*1000 / (log2(bins)*frame_rate))). */
int ct_config_nq_for_bandwidth(const ct_config *cfg, double kbps);
/* Checks ranges and consistency; -1 + hafm_error. */
int ct_config_check(const ct_config *cfg);
/* The `config` metadata JSON of the weight file (same keys as the reference files). Caller frees. */
char *ct_config_to_json(const ct_config *cfg);
int ct_config_from_json(ct_config *cfg, const char *json);

typedef struct ct_model ct_model;

/* A tensor of the model in the reference state-dict naming. */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[4];
    size_t offset, numel;   /* into ct_model_params() (trainable) or the codebook buffers */
} ct_tensor;

ct_model *ct_model_new(const ct_config *cfg);
void ct_model_free(ct_model *m);
const ct_config *ct_model_config(const ct_model *m);
/* PyTorch default initialisation (kaiming-uniform convs with g = ||v||, uniform LSTM), codebooks
 * uninitialised (k-means on the first batch). */
void ct_model_init_random(ct_model *m, uint64_t seed);
size_t ct_model_nparams(const ct_model *m);
float *ct_model_params(ct_model *m);
float *ct_model_grads(ct_model *m);
/* Trainable tensors in state-dict order (encoder, decoder). */
int ct_model_ntensors(const ct_model *m);
const ct_tensor *ct_model_tensor(const ct_model *m, int i);
/* Codebook k: embed [bins][D], embed_avg [bins][D], cluster_size [bins], inited. */
float *ct_model_embed(ct_model *m, int k);
float *ct_model_embed_avg(ct_model *m, int k);
float *ct_model_cluster_size(ct_model *m, int k);
int *ct_model_inited(ct_model *m, int k);

/* Weight files in the original naming (weight_g/weight_v, all codebook buffers, config). */
int ct_model_load(ct_model *m, const char *path);           /* config must match m's */
ct_model *ct_model_open(const char *path);                  /* config from the file */
/* extra_meta: NULL-terminated key, value, key, value ... list added to __metadata__. */
int ct_model_save(const ct_model *m, const char *path, const char *const *extra_meta);
/* The same tensors into / out of an open file (checkpoints add their own beside them). */
int ct_model_write_tensors(ct_model *m, hafm_st_writer *w);
int ct_model_read_tensors(ct_model *m, const hafm_safetensors *st);

/* Inference-path forward (weight norm folded from g, v):
 *   encode: x [B][L] -> latent [D][B][T], T = ceil(L/hop)
 *   quantise: latent -> codes [n_q][B*T] and quantized [D][B][T]
 *   decode: quantized [D][B][T] -> y [B][T*hop] (not trimmed) */
int ct_model_encode(ct_model *m, float *latent, const float *x, int B, int L);
void ct_model_quantize(ct_model *m, int32_t *codes, float *quantized, const float *latent, int B, int T,
                       int n_q);
int ct_model_decode(ct_model *m, float *y, const float *quantized, int B, int T);

/* ---- training ---------------------------------------------------------------------------- */

/* A small deterministic generator (xoshiro256**) whose state goes into checkpoints. */
typedef struct { uint64_t s[4]; } ct_rng;
void ct_rng_seed(ct_rng *r, uint64_t seed);
uint64_t ct_rng_next(ct_rng *r);
double ct_rng_uniform(ct_rng *r);             /* [0, 1) */
float ct_rng_normal(ct_rng *r);
uint64_t ct_rng_below(ct_rng *r, uint64_t n); /* [0, n) */

/* RVQ as EnCodec trains it (decay 0.99, epsilon 1e-5, dead-code threshold 2, 50 k-means
 * iterations). z [D][B][T] -> q [D][B][T]; the gradient of q passes straight through to z and
 * the commitment loss (mean over the n_q stages of mse(q_k, r_k), only stage 0 reaches z)
 * gradient times commit_weight is added to dz by ct_rvq_backward. */
typedef struct {
    float decay, epsilon, dead_threshold;
    int kmeans_iters;
    int track_mean;   /* codebooks follow the batch mean of their input (not in the reference) */
} ct_rvq_params;
void ct_rvq_params_default(ct_rvq_params *p);
/* Returns the commitment loss; updates codebooks (EMA, dead codes, k-means init) when train. */
float ct_rvq_train_forward(ct_model *m, float *q, int32_t *codes, const float *z, int B, int T, int n_q,
                           const ct_rvq_params *p, ct_rng *rng, int train);
/* dz (+=) [D][N]: straight-through dq plus commit_weight * d(commit)/dz; q0 is stage 0's output. */
void ct_rvq_backward(float *dz, const float *dq, const float *z, const float *q0, int D, int N, int n_q,
                     float commit_weight);
/* One codebook's EMA step (exposed for the tests): x [N][D], codes [N]. */
void ct_codebook_ema_update(float *embed, float *embed_avg, float *cluster_size, const float *x,
                            const int32_t *codes, int N, int D, int bins, float decay, float epsilon);
/* Replaces codes with cluster_size < threshold by random rows of x, resetting their EMA state
 * (embed_avg = row * threshold, cluster_size = threshold); returns how many. */
int ct_codebook_expire(float *embed, float *embed_avg, float *cluster_size, const float *x, int N, int D,
                       int bins, float threshold, ct_rng *rng);
/* k-means (EnCodec's: random initial means, empty clusters keep their mean). */
void ct_kmeans(float *means, float *counts, const float *x, int N, int D, int k, int iters, ct_rng *rng);
/* Nearest codebook vector (squared Euclidean, lowest index on ties): x [N][D] -> codes [N]. */
void ct_codebook_search(int32_t *codes, const float *x, const float *embed, int N, int D, int bins);

/* Training forward/backward of the whole generator with saved activations.
 * x [B][L] (L a multiple of the hop) -> y [B][L]; after ct_model_backward(dy) the grads
 * buffer holds d(loss)/d(params) of whatever loss produced dy plus the commitment term. */
typedef struct ct_tape ct_tape;
ct_tape *ct_tape_new(void);
void ct_tape_free(ct_tape *t);
/* Returns the commitment loss. n_q: codebooks in use this step (quantiser dropout); 0 = none
 * (the decoder sees the continuous latent). */
float ct_model_train_forward(ct_model *m, ct_tape *tape, float *y, const float *x, int B, int L, int n_q,
                             const ct_rvq_params *rp, ct_rng *rng, int update_codebooks);
void ct_model_train_backward(ct_model *m, ct_tape *tape, const float *dy, float commit_weight);
/* Distinct codes of the first codebook in the tape's forward pass (0 without quantiser). */
int ct_tape_codes_used(const ct_tape *t);
/* The latent of the tape's forward pass: RMS distance of its frames from their mean, and the
 * length of that mean. An offset that grows much faster than the spread starves the codebooks. */
void ct_tape_latent_stats(const ct_tape *t, double *spread, double *offset);


/* ---- the training loop -------------------------------------------------------------------- */

typedef struct {
    int batch;                 /* segments per step */
    int segment;               /* samples per segment */
    float lr, beta1, beta2, weight_decay;
    float w_time, w_mel, w_commit, w_adv, w_feat;   /* EnCodec: 0.1, 1, 1, 3, 3 */
    int adversarial;           /* MS-STFT discriminator + balancer */
    int disc_filters;
    int q_dropout;             /* a random target bandwidth per step (else always the largest) */
    int quantizer_warmup;      /* first steps train the continuous latent; k-means init after */
    float dead_threshold;      /* EMA usage below which a code is replaced by a batch vector */
    int track_mean;            /* codebooks follow the latent's batch mean */
    int n_mels, mel_min_log2, mel_max_log2;
    uint64_t seed;
} ct_train_opts;
void ct_train_opts_default(ct_train_opts *o);
/* The options as JSON (the weight file's training provenance). Caller frees. */
char *ct_train_opts_to_json(const ct_train_opts *o);

typedef struct {
    int64_t step;
    int n_q;
    double loss, l1, mel, commit, adv, feat, disc;   /* adv/feat/disc 0 without the discriminator */
    int codes_used;   /* distinct codes of the first codebook in this batch (collapse shows here) */
    double latent_spread, latent_offset;   /* see ct_tape_latent_stats */
    double seconds;
} ct_step_stats;

typedef struct ct_trainer ct_trainer;
/* Takes ownership of m (random or loaded weights). */
ct_trainer *ct_trainer_new(ct_model *m, const ct_train_opts *o);
void ct_trainer_free(ct_trainer *t);
ct_model *ct_trainer_model(ct_trainer *t);
int64_t ct_trainer_step_count(const ct_trainer *t);
/* Training audio at the model's rate, mono; copied. Clips shorter than a segment are refused. */
int ct_trainer_add_clip(ct_trainer *t, const float *x, int64_t n, const char *name);
int ct_trainer_nclips(const ct_trainer *t);
int64_t ct_trainer_clip_len(const ct_trainer *t, int clip);
int ct_trainer_step(ct_trainer *t, ct_step_stats *st);
/* SI-SDR (dB) of the trainer's own reconstruction of the first `max_samples` of clip `clip` with
 * n_q codebooks (codebooks are not updated). y (may be NULL) receives the reconstruction. */
double ct_trainer_eval_sisdr(ct_trainer *t, int clip, int64_t max_samples, int n_q, float *y);
/* Checkpoint: weights, codebooks, optimiser moments, discriminator, balancer EMA, RNG, step. */
int ct_trainer_save_checkpoint(ct_trainer *t, const char *path);
int ct_trainer_load_checkpoint(ct_trainer *t, const char *path);

#endif
