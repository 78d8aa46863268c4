/* bench_io - safetensors load rate (open, validate, every tensor to float32) against the
 * memory bandwidth, and the libsoxr resampler's speed in multiples of real time. */
#include "hafm.h"
#include <stdlib.h>
#include <string.h>

static void bench_safetensors(const char *path) {
    double best = 1e30;
    size_t bytes = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = hafm_now();
        hafm_safetensors *st = hafm_st_open(path);
        if (!st) hafm_die_last();
        bytes = 0;
        for (int i = 0; i < hafm_st_count(st); i++) {
            const hafm_st_tensor *t = hafm_st_get(st, i);
            float *f = hafm_st_load_f32(st, t->name, t->ndim, t->shape);
            if (!f) hafm_die_last();
            bytes += t->nbytes;
            free(f);
        }
        hafm_st_close(st);
        double dt = hafm_now() - t0;
        if (dt < best) best = dt;
    }
    double gbs = (double)bytes / best / 1e9;
    printf("bench safetensors_load: %.2f GB/s  (%.0f%% of the ~50 GB/s memory bandwidth; %.1f MB in %.1f ms, page cache warm)\n",
           gbs, 100.0 * gbs / 50.0, (double)bytes / 1e6, best * 1e3);
}

static void bench_resample(void) {
    int in_rate = 44100, out_rate = 24000, ch = 2;
    int64_t frames = (int64_t)in_rate * 60;
    hafm_audio a = {hafm_xmalloc((size_t)frames * (size_t)ch * sizeof(float)), frames, ch, in_rate}, b;
    for (int64_t i = 0; i < frames * ch; i++) a.data[i] = (float)((i * 7919 % 20011) / 20011.0 - 0.5);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = hafm_now();
        if (hafm_audio_resample(&a, out_rate, &b) < 0) hafm_die_last();
        double dt = hafm_now() - t0;
        if (dt < best) best = dt;
        hafm_audio_free(&b);
    }
    printf("bench resample_44k1_24k_stereo: %.0f x real time  (libsoxr VHQ, 60 s in %.3f s, 1 thread)\n",
           60.0 / best, best);
    hafm_audio_free(&a);
}

int main(int argc, char **argv) {
    hafm_init(argc, argv);
    const char *shared = getenv("HAFM_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/encodec/encodec24k_seed1234_full_hf.safetensors", shared ? shared : "../shared");
    FILE *fp = fopen(path, "rb");
    if (fp) {
        fclose(fp);
        bench_safetensors(path);
    } else {
        fprintf(stderr, "bench_io: %s missing, safetensors_load skipped\n", path);
    }
    bench_resample();
    return 0;
}
