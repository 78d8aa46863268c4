/* encodec_bench.c - times the EnCodec encoder (+ RVQ at a bandwidth) and decoder on a signal,
 * best of N runs; built and run by bench/encodec.sh. Prints seconds and the model's FLOPs
 * counted from its configuration. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hafm.h"
#include "hafm/encodec.h"

/* Multiply-adds of one SEANet half on L samples, counted layer by layer from the config. */
static double seanet_macs(const hafm_encodec *m, double L)
{
    const hafm_encodec_config *c = &m->cfg;
    double macs = 0, len = L;
    const hafm_seanet *e = &m->enc;
    macs += len * e->conv_in.cin * e->conv_in.cout * e->conv_in.k;
    for (int i = 0; i < c->nratios; i++) {
        for (int j = 0; j < c->n_residual_layers; j++) {
            const hafm_encodec_resblock *r = &e->res[i * c->n_residual_layers + j];
            macs += len * (r->conv_a.cin * r->conv_a.cout * r->conv_a.k + r->conv_b.cin * r->conv_b.cout +
                           (r->shortcut.w ? r->shortcut.cin * r->shortcut.cout : 0));
        }
        len /= e->resample[i].stride;
        macs += len * e->resample[i].cin * e->resample[i].cout * e->resample[i].k;
    }
    macs += len * 8.0 * e->lstm.hidden * e->lstm.hidden * e->lstm.layers;
    macs += len * e->conv_out.cin * e->conv_out.cout * e->conv_out.k;
    return macs;
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    if (argc < 4) { fprintf(stderr, "usage: encodec_bench MODEL SECONDS RUNS [KBPS]\n"); return 2; }
    hafm_encodec *m = hafm_encodec_load(argv[1]);
    if (!m) hafm_die_last();
    double secs = atof(argv[2]);
    int runs = atoi(argv[3]);
    double kbps = argc > 4 ? atof(argv[4]) : 6.0;
    int nq = hafm_encodec_n_q(m, kbps);
    if (nq < 0) hafm_die("%g kbps is not a bandwidth of this model", kbps);
    int64_t L = (int64_t)(secs * m->cfg.sample_rate);
    float *x = malloc((size_t)L * sizeof(float));
    unsigned s = 1;
    for (int64_t i = 0; i < L; i++) {
        s = s * 1664525u + 1013904223u;
        double t = (double)i / m->cfg.sample_rate;
        x[i] = (float)(0.3 * sin(2 * M_PI * 220 * t) + 0.2 * sin(2 * M_PI * 587.33 * t) + 0.01 * ((s >> 8) / 8388608.0 - 1));
    }
    int D = m->cfg.dimension;
    int64_t T = (L + m->cfg.hop - 1) / m->cfg.hop;
    float *lat = malloc((size_t)T * D * sizeof(float));
    int32_t *codes = malloc((size_t)T * nq * sizeof(int32_t));
    double best_enc = 1e30, best_dec = 1e30;
    hafm_encodec_stream *enc = hafm_encodec_encoder_new(m), *dec = hafm_encodec_decoder_new(m);
    for (int r = 0; r < runs; r++) {
        double t0 = hafm_now();
        const float *o;
        int64_t got = hafm_encodec_encoder_push(enc, x, L, 1, &o);
        memcpy(lat, o, (size_t)got * D * sizeof(float));
        hafm_encodec_quantize(m, codes, lat, got, nq);
        double t1 = hafm_now();
        hafm_encodec_dequantize(m, lat, codes, nq, T, nq);
        hafm_encodec_decoder_push(dec, lat, T, 1, &o);
        double t2 = hafm_now();
        if (t1 - t0 < best_enc) best_enc = t1 - t0;
        if (t2 - t1 < best_dec) best_dec = t2 - t1;
    }
    double macs = seanet_macs(m, (double)L);
    double rvq = (double)T * nq * m->cfg.bins * D;
    printf("encode %.4f s %.3f GFLOP\n", best_enc, 2 * (macs + rvq) / 1e9);
    printf("decode %.4f s %.3f GFLOP\n", best_dec, 2 * macs / 1e9);
    hafm_encodec_stream_free(enc);
    hafm_encodec_stream_free(dec);
    free(x); free(lat); free(codes);
    hafm_encodec_free(m);
    return 0;
}
