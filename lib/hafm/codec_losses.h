/* hafm/codec_losses.h - the losses EnCodec trains with: time-domain L1, multi-scale mel L1 + L2,
 * the multi-scale STFT discriminator (hinge + feature matching) and the loss balancer.
 *
 * Signals are [B][L] float. Every *_loss function returns the loss and, when the gradient
 * pointer is non-NULL, ADDS d(loss)/d(y) scaled by `weight` into it.
 */
#ifndef HAFM_CODEC_LOSSES_H
#define HAFM_CODEC_LOSSES_H

#include <stdint.h>
#include <stddef.h>
#include "adamw.h"

/* mean |y - x| */
double ct_l1_loss(float *dy, float weight, const float *y, const float *x, size_t n);

/* Multi-scale mel loss: for window n = 2^i, i = min_log2..max_log2 (EnCodec: 5..11), hop n/4,
 * Hann window, reflect padding (n - hop)/2 on both sides, n_mels HTK mel bands of the power
 * spectrum of the normalised STFT (divided by the window's L2 norm); per scale mean|M(y) - M(x)| + mean (log10(M(y)+1e-5) - log10(M(x)+1e-5))^2,
 * averaged over the scales. */
typedef struct ct_mel_loss ct_mel_loss;
ct_mel_loss *ct_mel_loss_new(int sample_rate, int n_mels, int min_log2, int max_log2);
void ct_mel_loss_free(ct_mel_loss *ml);
double ct_mel_loss_compute(ct_mel_loss *ml, float *dy, float weight, const float *y, const float *x, int B, int L);

/* 2D convolution with zero padding, stride and dilation over (H, W) = (time, freq):
 * inp [Cin][B][H][W] -> out [Cout][B][Ho][Wo], w [Cout][Cin*kh*kw]. col: Cin*kh*kw*Ho*Wo floats.
 * The backward skips the weight gradients when dw is NULL and the input's when dinp is NULL. */
void ct_conv2d_forward(float *out, float *col, const float *inp, const float *w, const float *b, int B, int Cin,
                       int H, int W, int Cout, int kh, int kw, int sh, int sw, int dh, int dw, int ph, int pw);
void ct_conv2d_backward(float *dinp, float *dw, float *db, float *col, float *dcol, const float *dout,
                        const float *inp, const float *w, int B, int Cin, int H, int W, int Cout, int kh, int kw,
                        int sh, int sw, int dh, int dwl, int ph, int pw);
int ct_conv2d_out_len(int n, int k, int stride, int dil, int pad);

/* ---- multi-scale STFT discriminator (EnCodec's MultiScaleSTFTDiscriminator) ----------------
 * Per scale: normalised complex STFT (Hann, no centre padding) as 2 channels [2][frames][bins],
 * then weight-normed 2D convs over (time, freq): (3,9) stride 1, three (3,9) stride (1,2) with
 * time dilation 1, 2, 4, a (3,3), LeakyReLU(0.2) after each, and a (3,3) to one channel. */
typedef struct ct_msstftd ct_msstftd;
ct_msstftd *ct_msstftd_new(int filters, int n_scales, const int *n_fft, const int *hop);
/* EnCodec's five scales: n_fft 1024, 2048, 512, 256, 128 with hop n_fft/4, 32 filters. */
ct_msstftd *ct_msstftd_new_default(int filters);
void ct_msstftd_free(ct_msstftd *d);
void ct_msstftd_init_random(ct_msstftd *d, uint64_t seed);
size_t ct_msstftd_nparams(const ct_msstftd *d);
float *ct_msstftd_params(ct_msstftd *d);
float *ct_msstftd_grads(ct_msstftd *d);

/* The discriminator's hinge loss, mean over scales of mean relu(1 - D(x)) + mean relu(1 + D(y));
 * accumulates its parameter gradients (times weight) into ct_msstftd_grads(). */
double ct_msstftd_disc_loss(ct_msstftd *d, float weight, const float *y, const float *x, int B, int L);
/* The generator's side: adversarial hinge mean over scales of mean relu(1 - D(y)), and the
 * relative feature-matching loss mean over scales and layers of mean|f(x) - f(y)| / mean|f(x)|.
 * d_adv / d_feat (+=) receive weight_* times their gradients w.r.t. y (either may be NULL).
 * The discriminator's parameter gradients are not touched. Its activations are kept for
 * ct_msstftd_disc_loss_kept (the next call of either function releases them). */
void ct_msstftd_gen_loss(ct_msstftd *d, double *adv, double *feat, float *d_adv, float w_adv,
                         float *d_feat, float w_feat, const float *y, const float *x, int B, int L);
/* ct_msstftd_disc_loss on the y and x of the preceding ct_msstftd_gen_loss, reusing its forward
 * passes; the discriminator's parameters must not have changed in between. */
double ct_msstftd_disc_loss_kept(ct_msstftd *d, float weight);

/* ---- loss balancer (EnCodec section 3.4) -----------------------------------------------------
 * Each loss's gradient g_i w.r.t. the model output is rescaled to total_norm * w_i / sum(w) of
 * the bias-corrected EMA (beta) of its norm (the per-item L2 norm averaged over the batch). */
#define CT_BALANCER_MAX 8
typedef struct {
    int n;
    double weights[CT_BALANCER_MAX];
    double ema_total[CT_BALANCER_MAX], ema_fix[CT_BALANCER_MAX];
    double beta, total_norm, epsilon;
} ct_balancer;
void ct_balancer_init(ct_balancer *bal, int n, const double *weights, double beta);
/* out[B*L] = sum_i scale_i * grads[i] ; returns nothing, records the norms. */
void ct_balancer_combine(ct_balancer *bal, float *out, float *const *grads, int B, int L);

#endif
