/* fadvsep_synth.h - deterministic synthetic stems for separation tests: a "vocal" (harmonic
 * voice with vibrato, a non-repeating melody, vowel formants, centre-panned) and a repeating
 * accompaniment loop (kick, hi-hat, bass and a chord pad, panned). */
#ifndef FADVSEP_SYNTH_H
#define FADVSEP_SYNTH_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline uint32_t synth_rand(uint32_t *s) {
    *s ^= *s << 13; *s ^= *s >> 17; *s ^= *s << 5;
    return *s;
}
static inline float synth_noise(uint32_t *s) { return (float)(synth_rand(s) & 0xffffff) / 8388608.0f - 1.0f; }

/* Formant gain of a frequency for vowel v (0..2). */
static inline float synth_formant(double f, int v) {
    static const double F[3][3] = { { 730, 1090, 2440 }, { 270, 2290, 3010 }, { 570, 840, 2410 } };
    double g = 0;
    for (int i = 0; i < 3; i++) {
        double d = (f - F[v][i]) / (80.0 + 40.0 * i);
        g += exp(-0.5 * d * d) / (1 + i);
    }
    return (float)(0.05 + g);
}

/* vocal, accomp: interleaved stereo [n][2] at rate; n samples. */
static inline void synth_stems(float *vocal, float *accomp, int64_t n, int rate) {
    const double loop = 2.0, beat = 0.5;
    uint32_t seed = 12345;
    /* one loop of accompaniment, then repeated exactly */
    int64_t L = (int64_t)(loop * rate);
    float *lp = calloc((size_t)L * 2, sizeof(float));
    uint32_t ns = 777;
    for (int64_t i = 0; i < L; i++) {
        double t = (double)i / rate, tb = fmod(t, beat);
        int b = (int)(t / beat);
        double kick = (b % 2 == 0) ? sin(2 * M_PI * (50 + 60 * exp(-tb * 30)) * tb) * exp(-tb * 8) : 0;
        double hat = fmod(t, beat / 2) < 0.03 ? synth_noise(&ns) * exp(-fmod(t, beat / 2) * 120) * 0.5 : 0;
        double root = b < 2 ? 110.0 : 87.31;   /* A2 then F2 */
        double bass = 0.35 * sin(2 * M_PI * root * t) * (0.6 + 0.4 * exp(-tb * 4));
        double pad = 0;
        const double chord[3] = { 1.0, 1.2599, 1.4983 };
        for (int c = 0; c < 3; c++)
            for (int h = 1; h <= 4; h++) pad += 0.04 / h * sin(2 * M_PI * root * 2 * chord[c] * h * t + c);
        lp[2 * i] = (float)(0.5 * kick + 0.3 * hat + bass + pad * 1.2);
        lp[2 * i + 1] = (float)(0.5 * kick + 0.7 * hat + bass + pad * 0.8);
    }
    for (int64_t i = 0; i < n; i++) {
        accomp[2 * i] = lp[2 * (i % L)];
        accomp[2 * i + 1] = lp[2 * (i % L) + 1];
    }
    free(lp);
    /* vocal: notes of random length and pitch, with rests */
    static const int scale[7] = { 0, 2, 3, 5, 7, 8, 10 };
    double phase = 0, note_start = 0, note_end = 0, f0 = 220, vib = 0;
    int vowel = 0, resting = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = (double)i / rate;
        if (t >= note_end) {
            double len = 0.2 + 0.1 * (synth_rand(&seed) % 6);
            note_start = t;
            note_end = t + len;
            resting = synth_rand(&seed) % 5 == 0;
            int deg = (int)(synth_rand(&seed) % 7), oct = (int)(synth_rand(&seed) % 2);
            f0 = 196.0 * pow(2.0, (scale[deg] + 12 * oct) / 12.0);
            vowel = (int)(synth_rand(&seed) % 3);
        }
        double env = resting ? 0 : fmin(1.0, fmin((t - note_start) * 50, (note_end - t) * 30));
        vib = 0.03 * sin(2 * M_PI * 5.5 * t);
        double f = f0 * (1 + vib);
        phase += 2 * M_PI * f / rate;
        double v = 0;
        for (int h = 1; h * f < 0.45 * rate && h <= 40; h++) v += synth_formant(h * f, vowel) * sin(h * phase) / sqrt(h);
        v *= 0.5 * env;
        v += 0.004 * env * synth_noise(&seed);   /* breath */
        vocal[2 * i] = vocal[2 * i + 1] = (float)v;
    }
}

#endif
