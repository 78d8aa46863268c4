/* hafm/encodec.h - EnCodec (SEANet encoder/decoder + residual vector quantiser), weight-compatible
 * with facebookresearch/encodec and Hugging Face transformers checkpoints.
 *
 * Loading accepts the original state-dict names, HF names with weight_g/weight_v, and HF names
 * with parametrizations.weight.original0/original1 (or an already folded `weight`), in F32, F16
 * or BF16. Hyperparameters come from the file's __metadata__ ("config" in the reference's terms or
 * "hf_config"), else from a config.json beside the file, else the encodec_24khz defaults; every
 * tensor shape is checked against them.
 *
 * Encoding and decoding are streaming: push chunks of any size, the model carries convolution
 * and LSTM state, and the result equals a whole-signal run. Activations are time-major [T, C].
 */
#ifndef HAFM_ENCODEC_H
#define HAFM_ENCODEC_H

#include "common.h"
#include "lstm.h"

#define HAFM_ENCODEC_MAX_RATIOS 8
#define HAFM_ENCODEC_MAX_BW 8

typedef struct {
    int sample_rate, channels;
    int dimension;              /* latent width D */
    int n_filters;
    int n_residual_layers;
    int nratios;
    int ratios[HAFM_ENCODEC_MAX_RATIOS];   /* decoder order; the encoder uses them reversed */
    int kernel_size, last_kernel_size, residual_kernel_size;
    int dilation_base, compress, lstm_layers;
    int true_skip;              /* 1: identity shortcut in residual blocks */
    int bins, n_q;              /* codebook size, number of codebooks */
    int nbw;
    double bandwidths[HAFM_ENCODEC_MAX_BW];   /* target bandwidths, kbps */
    int hop;                    /* product of ratios */
    double frame_rate;          /* ceil(sample_rate / hop) frames per second */
} hafm_encodec_config;

/* A convolution with its weight-norm parameters. The folded weight is in kernel layout (see
 * hafm/conv1d.h); v is re-derivable as w * vnorm / g (g, vnorm per dim-0 channel: Cout for a
 * convolution, Cin for a transposed one), or g and vnorm are NULL when the file held a folded
 * weight. */
typedef struct {
    int cin, cout, k, stride, dilation, transposed;
    float *w;        /* conv [Cout, K, Cin]; transposed [Cin, K, Cout] */
    float *bias;     /* [Cout] */
    float *g, *vnorm;
} hafm_encodec_conv;

typedef struct {
    hafm_encodec_conv conv_a;   /* dim -> dim/compress, kernel residual_kernel_size, dilated */
    hafm_encodec_conv conv_b;   /* dim/compress -> dim, kernel 1 */
    hafm_encodec_conv shortcut; /* dim -> dim, kernel 1 (absent with true_skip) */
    float *bias_sum;            /* conv_b.bias + shortcut.bias: both are added to one output */
} hafm_encodec_resblock;

typedef struct {
    hafm_encodec_conv conv_in;
    int nstages;
    hafm_encodec_resblock *res;     /* [nstages * n_residual_layers] */
    hafm_encodec_conv *resample;    /* [nstages]: strided convs (encoder), transposed (decoder) */
    hafm_lstm lstm;                 /* layers 0 when the config has none */
    hafm_encodec_conv conv_out;
} hafm_seanet;

typedef struct {
    hafm_encodec_config cfg;
    hafm_seanet enc, dec;
    float **embed;    /* [n_q] x [bins, D] */
    float **norms;    /* [n_q] x [bins]: ||embed row||^2 */
    char naming[32];  /* "original", "hf", "hf-parametrizations" (informational) */
} hafm_encodec;

hafm_encodec *hafm_encodec_load(const char *path);   /* NULL + error naming the defect */
void hafm_encodec_free(hafm_encodec *m);

/* Codebooks for a bandwidth in kbps: max(1, floor(kbps*1000 / (log2(bins)*frame_rate))), or -1
 * when kbps is not one of the model's target bandwidths. */
int hafm_encodec_n_q(const hafm_encodec *m, double kbps);

/* Observes every module's output while a signal runs (tests; names as the reference layer
 * indices: "enc.01", "enc.13.lstm_noskip", "dec.03"). rows [n, C]. */
typedef void (*hafm_encodec_tap)(void *ctx, const char *name, const float *rows, int64_t n, int C);

/* ---- streaming encoder: samples -> latent frames [T, D] ------------------------------------ */
typedef struct hafm_encodec_stream hafm_encodec_stream;
hafm_encodec_stream *hafm_encodec_encoder_new(const hafm_encodec *m);
/* Feeds n mono samples at the model rate; final != 0 marks the end of the signal (n may be 0).
 * *out points to the latent frames completed by this call (valid until the next call); returns
 * their number. After a final push the stream is reset for the next signal. */
int64_t hafm_encodec_encoder_push(hafm_encodec_stream *s, const float *x, int64_t n, int final,
                                  const float **out);

/* ---- streaming decoder: latent frames [T, D] -> samples ------------------------------------ */
hafm_encodec_stream *hafm_encodec_decoder_new(const hafm_encodec *m);
int64_t hafm_encodec_decoder_push(hafm_encodec_stream *s, const float *latent, int64_t T, int final,
                                  const float **out);

/* Rows per internal block: samples for the encoder (default HAFM_ENCODEC_BLOCK_FRAMES * hop),
 * latent frames for the decoder (default HAFM_ENCODEC_BLOCK_FRAMES). Results do not depend on
 * how the input is split into pushes; they depend on the block size only by float rounding.
 * Set it before the first push of a signal. */
#define HAFM_ENCODEC_BLOCK_FRAMES 75
void hafm_encodec_stream_set_block(hafm_encodec_stream *s, int64_t rows);
void hafm_encodec_stream_set_tap(hafm_encodec_stream *s, hafm_encodec_tap fn, void *ctx);
void hafm_encodec_stream_reset(hafm_encodec_stream *s);
void hafm_encodec_stream_free(hafm_encodec_stream *s);

/* ---- quantiser ------------------------------------------------------------------------------ */
/* codes [T, n] (frame-major); latent [T, D] is overwritten by the residual. n <= n_q. */
void hafm_encodec_quantize(const hafm_encodec *m, int32_t *codes, float *latent, int64_t T, int n);
/* out [T, D]; codes [T, stride] with n <= n_q used columns; -1 + error when a code is outside
 * [0, bins). */
int hafm_encodec_dequantize(const hafm_encodec *m, float *out, const int32_t *codes, int stride,
                            int64_t T, int n);

#endif
