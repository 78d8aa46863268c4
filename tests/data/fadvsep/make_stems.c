/* make_stems.c - writes the synthetic stems of tests/unit/fadvsep_synth.h as 16 kHz stereo PCM16
 * WAV files (vocal.wav, accomp.wav, mix.wav = vocal + accomp), 6 s each.
 * Build and run from the top directory after `make`:
 *   cc -O2 -fopenmp -Ilib -Itests/unit tests/data/fadvsep/make_stems.c build/release/libhafm.a \
 *      $(pkg-config --libs sndfile soxr msgpack fftw3f libcjson openblas lapacke libebur128 libprotobuf-c) -lm \
 *      -o /tmp/make_stems && /tmp/make_stems tests/data/fadvsep */
#include <stdio.h>
#include <stdlib.h>
#include "hafm.h"
#include "fadvsep_synth.h"

int main(int argc, char **argv) {
    hafm_init(argc, argv);
    if (argc != 2) hafm_die("usage: make_stems DIR");
    const int rate = 16000;
    const int64_t n = 6 * rate;
    float *v = malloc((size_t)n * 2 * sizeof(float)), *a = malloc((size_t)n * 2 * sizeof(float));
    float *m = malloc((size_t)n * 2 * sizeof(float));
    synth_stems(v, a, n, rate);
    /* headroom so that PCM16 does not clip the mixture */
    for (int64_t i = 0; i < n * 2; i++) { v[i] *= 0.5f; a[i] *= 0.5f; m[i] = v[i] + a[i]; }
    const char *names[3] = { "vocal.wav", "accomp.wav", "mix.wav" };
    float *data[3] = { v, a, m };
    for (int k = 0; k < 3; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", argv[1], names[k]);
        hafm_audio au = { data[k], n, 2, rate };
        if (hafm_audio_write(path, &au, HAFM_PCM16) < 0) hafm_die_last();
    }
    return 0;
}
