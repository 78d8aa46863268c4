/* stages_bench.c - paper-size stage Transformer timings for bench/stages.sh (random weights:
 * speed does not depend on their values).
 *
 *   stages_bench decode STAGE CONTEXT STEPS   CFG decode (batch 2) tokens/s, bf16 and fp32, vs the
 *                                             memory bound; bf16 logit error vs fp32
 *   stages_bench train STAGE BATCH LEN STEPS  training tokens/s (forward, backward, AdamW)
 */
#include "hafm.h"
#include "hafm/transformer.h"
#include "hafm/train.h"
#include "hafm/adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of the process: on a shared machine, wall time measures the other users too. */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static hafm_tf_model *paper_model(int stage)
{
    hafm_tf_config c;
    hafm_tf_config_paper(&c, stage);
    hafm_tf_model *m = hafm_tf_new(&c);
    hafm_tf_init_random(m, 1);
    return m;
}

/* Bytes one decode step must read: every block matrix and bias, the head of one codebook. */
static double weight_bytes_per_token(const hafm_tf_model *m, double bytes_per_weight)
{
    double n = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const char *nm = m->tensors[i].name;
        if (strncmp(nm, "layers.", 7) == 0) n += (double)m->tensors[i].numel;
    }
    n += (double)m->cfg.target.vocab * m->cfg.d_model;
    return n * bytes_per_weight;
}

static int decode_bench(int stage, int context, int steps)
{
    hafm_tf_model *m = paper_model(stage);
    hafm_tf_enable_bf16(m);
    int V = m->cfg.target.vocab, Q = m->cfg.target.codebooks, B = 2;
    hafm_tf_layout lay;
    int units = hafm_tf_window_units(&m->cfg);
    hafm_tf_layout_init(&lay, &m->cfg, units);
    if (context + steps > lay.L) {
        fprintf(stderr, "context + steps exceed the %d-token window\n", lay.L);
        return 1;
    }
    int32_t *tok = calloc((size_t)B * lay.L, sizeof *tok);
    float *lf = malloc((size_t)B * V * sizeof(float)), *lb = malloc((size_t)B * V * sizeof(float));
    double err = 0.0, lmax = 0.0, rate[2], cpu_rate[2];
    for (int bf = 1; bf >= 0; bf--) {
        hafm_tf_cache *k = hafm_tf_cache_new(m, B, lay.L, bf);
        int32_t *pre = calloc((size_t)B * context, sizeof *pre);
        hafm_tf_decode(m, k, pre, &lay, context, 0, bf ? lb : lf, bf);
        double t0 = hafm_now(), c0 = cpu_now();
        for (int s = 0; s < steps; s++) {
            int32_t step[2] = { s % V, s % V };
            int p = context + s;
            hafm_tf_decode(m, k, step, &lay, 1, (p + 1) % Q, bf ? lb : lf, bf);
        }
        rate[bf] = steps / (hafm_now() - t0);
        cpu_rate[bf] = steps / (cpu_now() - c0);
        free(pre);
        hafm_tf_cache_free(k);
    }
    for (int i = 0; i < B * V; i++) {
        err = fmax(err, fabs(lb[i] - lf[i]));
        lmax = fmax(lmax, fabs(lf[i]));
    }
    /* the bound at the quoted 50 GB/s, and at the read rate this machine gives now; at long
     * contexts the step also reads the KV cache (keys and values of every layer, both CFG rows),
     * so the bound counting it is printed too (cache bytes at the mid context of the run) */
    double bw = hafm_read_bandwidth((size_t)512 << 20, 3);
    double kv_elems = 2.0 * m->cfg.n_layer * B * m->cfg.d_model * (context + steps / 2.0);
    for (int bf = 1; bf >= 0; bf--) {
        double wbytes = weight_bytes_per_token(m, bf ? 2 : 4), kvbytes = kv_elems * (bf ? 2 : 4);
        double bound50 = 50e9 / wbytes, bound_now = bw / wbytes, bound_kv = bw / (wbytes + kvbytes);
        printf("bench stage%d_decode_cfg_%s_ctx%d: %.1f tokens/s  (%.0f%% of the %.0f tokens/s memory bound at 50 GB/s, %.0f%% of %.0f at the "
               "%.1f GB/s read now, %.0f%% of %.0f counting the KV cache too: %.0f + %.0f MB a token; PyTorch 1.13 CPU best 45: %.1fx)\n",
               stage, bf ? "bf16" : "fp32", context, rate[bf], 100 * rate[bf] / bound50, bound50, 100 * rate[bf] / bound_now, bound_now,
               bw / 1e9, 100 * rate[bf] / bound_kv, bound_kv, wbytes / 1e6, kvbytes / 1e6, rate[bf] / 45.0);
    }
    printf("bench stage%d_decode_cfg_bf16_ctx%d_cpu: %.1f tokens per CPU-second  (%d threads; wall figures above include time lost to other load)\n",
           stage, context, cpu_rate[1], hafm_get_threads());
    printf("bench stage%d_decode_cfg_fp32_ctx%d_cpu: %.1f tokens per CPU-second  (%d threads)\n", stage, context, cpu_rate[0],
           hafm_get_threads());
    printf("bench stage%d_bf16_logit_error: %.3g max abs  (max |logit| %.3g after %d steps)\n", stage, err, lmax, steps);
    free(tok);
    free(lf);
    free(lb);
    hafm_tf_layout_free(&lay);
    hafm_tf_free(m);
    return 0;
}

static int train_bench(int stage, int batch, int len_units, int steps)
{
    hafm_tf_model *m = paper_model(stage);
    hafm_tf_layout lay;
    hafm_tf_layout_init(&lay, &m->cfg, len_units);
    hafm_tf_acts *a = hafm_tf_acts_new(m, &lay, 1);
    int32_t *tok = calloc((size_t)lay.L, sizeof *tok);
    float *g = calloc(m->n_params, sizeof(float)), *am = calloc(m->n_params, sizeof(float)), *av = calloc(m->n_params, sizeof(float));
    unsigned char *decay = calloc(m->n_params, 1);
    double t0 = 0, c0 = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) {   /* step 0 warms up (first-touch of the buffers) */
            t0 = hafm_now();
            c0 = cpu_now();
        }
        memset(g, 0, m->n_params * sizeof(float));
        for (int b = 0; b < batch; b++) {
            for (int p = 0; p < lay.L; p++) tok[p] = lay.table[p] < 0 ? 0 : (p * 7 + b) % (m->table_rows[lay.table[p]] - 1);
            hafm_tf_forward(m, a, tok);
            hafm_tf_loss(a, tok, 1.0f / (batch * lay.n_target), NULL, NULL, NULL);
            hafm_tf_backward(m, a, tok, g);
        }
        hafm_adamw_update(m->params, g, am, av, decay, m->n_params, 1e-4, 0.9, 0.999, 1e-8, 0.01, s + 1);
    }
    double tps = (double)steps * batch * lay.L / (hafm_now() - t0);
    double cps = (double)steps * batch * lay.L / (cpu_now() - c0);
    printf("bench stage%d_train_b%dx%d: %.0f tokens/s  (PyTorch 1.13 CPU 280, best 304, for batch 8 x 1024: %.2fx)\n",
           stage, batch, lay.L, tps, tps / 280.0);
    printf("bench stage%d_train_b%dx%d_cpu: %.0f tokens per CPU-second  (%d threads)\n", stage, batch, lay.L, cps, hafm_get_threads());
    hafm_tf_acts_free(a);
    hafm_tf_layout_free(&lay);
    free(tok);
    free(g);
    free(am);
    free(av);
    free(decay);
    hafm_tf_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    if (argc == 5 && strcmp(argv[1], "decode") == 0) return decode_bench(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (argc == 6 && strcmp(argv[1], "train") == 0) {
        hafm_keep_freed_memory();   /* as hafm-train does */
        return train_bench(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    }
    fprintf(stderr, "usage: stages_bench decode STAGE CONTEXT STEPS | train STAGE BATCH UNITS STEPS\n");
    return 2;
}
