/* hafm/mdxnet.h - MDX-Net (KUIELab TFC-TDF U-Net, "ConvTDFNet") source separation from the
 * published ONNX files (kuielab mdx-net-submission, UVR "MDX-Net" models).
 *
 * Loading reads the ONNX graph and initializers (hafm/onnx.h) and compiles them into a native
 * step list: Conv (any kernel/stride/pad, im2col + hafm_sgemm), ConvTranspose (kernel ==
 * stride), MatMul on the last axis, elementwise Add/Mul, Transpose of the last two axes, Relu,
 * Identity. BatchNormalization after a Conv or ConvTranspose is folded into its weights at load;
 * after a MatMul it becomes a per-channel scale/shift epilogue; a Relu is fused into the step that
 * feeds it. Every other op (GroupNorm chains, Reshape, ...) is refused as "not an MDX-Net graph".
 * Nothing depends on tensor names, so exports of any torch version load.
 *
 * Separation follows UVR 5.6 (SeperateMDX.demix with GUI defaults): stereo 44.1 kHz, STFT with
 * periodic Hann, hop 1024, center/reflect per chunk, bins 0-2 zeroed before the net, chunks of
 * hop*(dim_t-1) samples with symmetric Hann cross-fades normalised by the window sum, trim
 * n_fft/2, output * compensate. Working memory is bounded by one chunk whatever the song length.
 */
#ifndef HAFM_MDXNET_H
#define HAFM_MDXNET_H

#include "common.h"

typedef struct {
    int n_fft;            /* STFT size (UVR table: 4096..16384)                [6144] */
    int hop;              /* STFT hop                                          [1024] */
    int dim_t;            /* frames per chunk (multiple of 32); 0 = graph's     [0] */
    double compensate;    /* output gain (UVR "compensate")                     [1.035] */
    double overlap;       /* 0 = UVR default (step = chunk - n_fft); else (0,1) [0] */
    int denoise;          /* 1: 0.5 net(S) - 0.5 net(-S) (UVR "Standard")       [0] */
    int zero_low_bins;    /* bins zeroed before the net                         [3] */
} hafm_mdx_params;

void hafm_mdx_defaults(hafm_mdx_params *p);

typedef struct hafm_mdx hafm_mdx;

/* Loads and compiles the ONNX model. NULL + error for an unreadable, truncated or foreign file. */
hafm_mdx *hafm_mdx_load(const char *path);
void hafm_mdx_free(hafm_mdx *m);
int hafm_mdx_dim_f(const hafm_mdx *m);   /* frequency bins the net takes */
int hafm_mdx_dim_t(const hafm_mdx *m);   /* frames of the graph's declared input (0 if symbolic) */
int hafm_mdx_steps(const hafm_mdx *m);   /* compiled steps (for messages and tests) */

/* The network alone: out/in [4][dim_f][T], T a multiple of 32. */
int hafm_mdx_forward(hafm_mdx *m, float *out, const float *in, int T);

/* The primary stem of a stereo 44.1 kHz mixture mix[n][2] into out[n][2] (interleaved).
 * p->n_fft must exceed 2 * dim_f - 2 (the net's bins must exist). */
int hafm_mdx_separate(hafm_mdx *m, const hafm_mdx_params *p, float *out, const float *mix, int64_t n);

/* The same incrementally, for songs of any length in bounded memory (about one chunk): push
 * stereo 44.1 kHz samples [n][2] in pieces of any size; final = 1 on the last push (n may be 0).
 * *out points to the primary-stem samples completed by this call (valid until the next call);
 * returns their count (-1 + error). The output lags the input by up to a chunk; the total equals
 * the samples pushed, identical to hafm_mdx_separate. */
typedef struct hafm_mdx_stream hafm_mdx_stream;
hafm_mdx_stream *hafm_mdx_stream_new(hafm_mdx *m, const hafm_mdx_params *p);
int64_t hafm_mdx_stream_push(hafm_mdx_stream *s, const float *x, int64_t n, int final, const float **out);
void hafm_mdx_stream_free(hafm_mdx_stream *s);

/* Vocal and accompaniment of audio at any rate and channel count: resampled to 44.1 kHz (libsoxr),
 * channels taken in pairs (a lone channel is duplicated into a pair and averaged back), the
 * primary stem separated and resampled back, the other stem = mixture - primary in the input
 * domain. instrumental: the model's primary stem is the accompaniment (UVR "Instrumental"
 * models). x, vocal, accomp: [n][channels]. */
int hafm_mdx_separate_audio(hafm_mdx *m, const hafm_mdx_params *p, int instrumental, float *vocal,
                            float *accomp, const float *x, int64_t n, int channels, int sample_rate);

/* The same incrementally: push [n][channels] frames (final = 1 on the last push); *vocal and
 * *accomp point to the next frames of both stems, aligned with the input (valid until the next
 * call); returns their count. Memory stays bounded by a chunk per channel pair. */
typedef struct hafm_mdx_audio hafm_mdx_audio;
hafm_mdx_audio *hafm_mdx_audio_new(hafm_mdx *m, const hafm_mdx_params *p, int instrumental,
                                   int channels, int sample_rate);
int64_t hafm_mdx_audio_push(hafm_mdx_audio *a, const float *x, int64_t n, int final,
                            const float **vocal, const float **accomp);
void hafm_mdx_audio_free(hafm_mdx_audio *a);

/* UVR identifies a model by the MD5 of its last 10000 KiB (the whole file when smaller) and
 * takes its settings from a table; hafm_mdx_uvr_lookup knows UVR 5.6's 41 ONNX entries. */
typedef struct {
    const char *md5, *name, *stem;    /* stem: Vocals, Instrumental, Drums, Bass, Other, Reverb */
    int dim_f, dim_t, n_fft;
    double compensate;
} hafm_mdx_uvr_model;

int hafm_mdx_uvr_hash(const char *path, char hex[33]);      /* 0, or -1 + error */
const hafm_mdx_uvr_model *hafm_mdx_uvr_lookup(const char *hex);   /* NULL when unknown */

#endif
