/* hafm/vggish.h - VGGish audio embeddings (Hershey et al. 2017), as FAD toolkits use them.
 *
 * Front end (exactly tensorflow/models research/audioset/vggish, mel_features.py): 16 kHz mono;
 * frames of 400 samples (25 ms) every 160 (10 ms), periodic Hann, no centring; |rfft| of 512
 * points (magnitude, not power); 64 HTK mel bands between 125 and 7500 Hz; log(mel + 0.01);
 * examples of 96 frames with hop 96, an incomplete tail dropped.
 *
 * Network: VGG-like, 4 conv groups (64, 128, 2x256, 2x512, 3x3 same, ReLU, 2x2 max pool) on the
 * [96 x 64] log-mel image, flattened in TF's (H, W, C) order, then FC 12288->4096->4096->128.
 * The embedding is the output of the last FC **before** its ReLU (what fadtk and the TF
 * smoke test use), without the PCA/quantisation postprocessor.
 * Weights: safetensors in either naming
 *   torch port (harritaylor/torchvggish): features.{0,3,6,8,11,13}.{weight,bias} (OIHW),
 *     embeddings.{0,2,4}.{weight,bias} ([out, in]);
 *   TF checkpoint: vggish/conv1/{weights,biases}, vggish/conv2, vggish/conv3/conv3_{1,2},
 *     vggish/conv4/conv4_{1,2} (HWIO), vggish/fc1/fc1_{1,2}, vggish/fc2 (weights [in, out]).
 */
#ifndef HAFM_VGGISH_H
#define HAFM_VGGISH_H

#include "common.h"

#define HAFM_VGGISH_RATE 16000
#define HAFM_VGGISH_FRAMES 96
#define HAFM_VGGISH_BANDS 64
#define HAFM_VGGISH_FFT_BINS 257
#define HAFM_VGGISH_DIM 128

/* The mel weight matrix [257][64] (row 0, the DC bin, is zero). */
void hafm_vggish_mel_matrix(double *m);

/* Number of complete 96-frame examples in n samples at 16 kHz. */
int64_t hafm_vggish_num_examples(int64_t n);

/* Log-mel examples out [num_examples][96][64] of x (16 kHz mono, n samples). Returns the
 * number of examples (0 for less than 0.975 s of audio). */
int64_t hafm_vggish_logmel(float *out, const float *x, int64_t n);
/* The same from float64 samples (the reference front end's input type). */
int64_t hafm_vggish_logmel_f64(float *out, const double *x, int64_t n);

typedef struct hafm_vggish hafm_vggish;
/* Loads either naming (see above). Layer widths are read from the weights (the published model
 * has 64/128/256/512 channels and FC 12288-4096-4096-128), so reduced test models load too.
 * NULL + error naming the missing or misshapen tensor. */
hafm_vggish *hafm_vggish_load(const char *path);
void hafm_vggish_free(hafm_vggish *m);
int hafm_vggish_dim(const hafm_vggish *m);    /* embedding size (128 for the published model) */
/* Embeddings emb [n_examples][dim] of log-mel examples [n_examples][96][64]. */
int hafm_vggish_embed(hafm_vggish *m, float *emb, const float *examples, int64_t n_examples);

#endif
