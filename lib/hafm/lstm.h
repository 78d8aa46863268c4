/* hafm/lstm.h - unidirectional multi-layer LSTM (PyTorch nn.LSTM semantics), time-major.
 *
 * Gate rows are ordered i, f, g, o as in PyTorch. The input projection of a whole chunk of frames
 * is one GEMM; only the recurrent matrix-vector step runs frame by frame. State (h, c) is
 * explicit, so a caller can carry it across chunks of one signal.
 */
#ifndef HAFM_LSTM_H
#define HAFM_LSTM_H

#include <stddef.h>
#include <stdint.h>

/* One layer over T frames, starting from (h, c) and leaving the final state in them.
 * out [T, H], gates scratch [T, 4H], inp [T, In], w_ih [4H, In], w_hh [4H, H], b_ih, b_hh [4H],
 * h, c [H] (in/out). out may not alias inp. */
void lstm_layer_forward(float *out, float *gates, float *h, float *c, const float *inp,
                        const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh,
                        int64_t T, int In, int H);

/* The parameters of a stack of equal-width layers (EnCodec's SLSTM: In == H). */
typedef struct {
    int layers, hidden;
    float **w_ih, **w_hh, **b_ih, **b_hh;   /* [layers] x [4H, H], [4H, H], [4H], [4H] */
} hafm_lstm;

void hafm_lstm_free(hafm_lstm *l);

/* Floats of scratch that hafm_lstm_forward needs for T frames. */
size_t hafm_lstm_scratch_floats(const hafm_lstm *l, int64_t T);

/* The whole stack over T frames, then the skip connection: out = h_top + inp (SLSTM, skip=True;
 * skip 0 gives the plain stack). state [layers, 2, H] holds (h, c) per layer and is carried
 * (zero it at the start of a signal).
 * out [T, H], inp [T, H], scratch >= hafm_lstm_scratch_floats() floats */
void hafm_lstm_forward(float *out, float *state, float *scratch, const hafm_lstm *l,
                       const float *inp, int64_t T, int skip);

#endif
