/* bench_fadvsep.c - timings for bench/fadvsep.sh:
 *   bench_fadvsep fad           FAD between two sets of 1000 x 128 frames (statistics + distance)
 *   bench_fadvsep mdx MODEL T   one MDX-Net forward pass on [1, 4, dim_f, T] (after a warm-up)
 *   bench_fadvsep repet SECONDS REPET-SIM on a synthetic 44.1 kHz stereo song of that length
 * Each prints "seconds <wall>" (fad: the best of 5 runs) and, for the long ones, "cpu <seconds>"
 * (user + system time of the process). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "hafm.h"
#include "hafm/fad.h"
#include "hafm/mdxnet.h"
#include "hafm/repet.h"
#include "../tests/unit/fadvsep_synth.h"

static float frand(uint32_t *s) { return synth_noise(s); }

/* user + system seconds of the process: on a shared machine, the wall time says little */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv) {
    hafm_init(argc, argv);
    if (argc < 2) hafm_die("usage: bench_fadvsep fad | mdx MODEL T | repet SECONDS");
    uint32_t seed = 99;
    if (!strcmp(argv[1], "fad")) {
        const int n = 1000, d = 128;
        float *a = malloc((size_t)n * d * sizeof(float)), *b = malloc((size_t)n * d * sizeof(float));
        for (int i = 0; i < n * d; i++) { a[i] = frand(&seed); b[i] = frand(&seed) * 1.1f + 0.1f; }
        double best = 1e9, fad = 0;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = hafm_now();
            hafm_fad_stats sa, sb;
            hafm_fad_stats_init(&sa, d);
            hafm_fad_stats_init(&sb, d);
            hafm_fad_stats_add_f32(&sa, a, n);
            hafm_fad_stats_add_f32(&sb, b, n);
            if (hafm_fad(&sa, &sb, &fad) < 0) hafm_die_last();
            double t = hafm_now() - t0;
            if (t < best) best = t;
            hafm_fad_stats_free(&sa);
            hafm_fad_stats_free(&sb);
        }
        printf("seconds %.6f fad %.6f\n", best, fad);
    } else if (!strcmp(argv[1], "mdx") && argc == 4) {
        hafm_mdx *m = hafm_mdx_load(argv[2]);
        if (!m) hafm_die_last();
        int T = atoi(argv[3]), F = hafm_mdx_dim_f(m);
        size_t nel = (size_t)4 * F * T;
        float *in = malloc(nel * sizeof(float)), *out = malloc(nel * sizeof(float));
        for (size_t i = 0; i < nel; i++) in[i] = 5.0f * frand(&seed);
        if (hafm_mdx_forward(m, out, in, T) < 0) hafm_die_last();   /* warm-up: page faults, plans */
        double t0 = hafm_now(), c0 = cpu_seconds();
        if (hafm_mdx_forward(m, out, in, T) < 0) hafm_die_last();
        printf("seconds %.3f cpu %.3f\n", hafm_now() - t0, cpu_seconds() - c0);
        hafm_mdx_free(m);
    } else if (!strcmp(argv[1], "repet") && argc == 3) {
        const int rate = 44100;
        int64_t n = (int64_t)(atof(argv[2]) * rate);
        float *v = malloc((size_t)n * 2 * sizeof(float)), *a = malloc((size_t)n * 2 * sizeof(float));
        synth_stems(v, a, n, rate);
        for (int64_t i = 0; i < n * 2; i++) v[i] += a[i];
        hafm_repet_params p;
        hafm_repet_defaults(&p);
        double t0 = hafm_now(), c0 = cpu_seconds();
        if (hafm_repet_sim(a, NULL, v, n, 2, rate, &p) < 0) hafm_die_last();
        printf("seconds %.3f cpu %.3f\n", hafm_now() - t0, cpu_seconds() - c0);
    } else {
        hafm_die("unknown benchmark '%s'", argv[1]);
    }
    return 0;
}
