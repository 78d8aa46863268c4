/* bench_stream.c - throughput of the stream reader and of a pass-through (reader + writer) on a
 * 256 MiB stream of stereo f32 audio held in memory, against the memory bandwidth bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"

#define MIB (1u << 20)
#define MEMORY_BOUND_GBS 50.0   /* the reference machine, see bench/run */

static double run(const char *buf, size_t len, int passthrough)
{
    FILE *in = fmemopen((void *)buf, len, "rb");
    FILE *out = fopen("/dev/null", "wb");
    double t0 = hafm_now();
    hafm_reader *r = hafm_reader_open(in, "bench");
    hafm_writer *w = hafm_writer_open(out, "bench");
    hafm_event ev;
    int rc;
    while ((rc = hafm_reader_next(r, &ev)) > 0)
        if (passthrough && hafm_write_passthrough(w, &ev) < 0) hafm_die_last();
    if (rc < 0 || hafm_writer_close(w) < 0) hafm_die_last();
    hafm_reader_close(r);
    double dt = hafm_now() - t0;
    fclose(in);
    fclose(out);
    return (double)len / dt / 1e9;
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    hafm_writer *w = hafm_writer_open(mem, "bench");
    hafm_track t;
    hafm_track_init_audio(&t, "audio", HAFM_DT_F32, 48000, 2);
    if (hafm_write_item(w, "bench") < 0 || hafm_write_track(w, &t) < 0) hafm_die_last();
    float *x = hafm_xmalloc(48000 * 2 * sizeof *x);
    for (int i = 0; i < 96000; i++) x[i] = (float)i / 96000;
    for (size_t done = 0; done < 256 * MIB; done += 96000 * sizeof *x)
        if (hafm_write_data(w, t.id, x, 48000) < 0) hafm_die_last();
    if (hafm_write_item_end(w) < 0 || hafm_writer_close(w) < 0) hafm_die_last();
    fclose(mem);
    double best_read = 0, best_pass = 0;
    for (int rep = 0; rep < 3; rep++) {
        double a = run(buf, len, 0), b = run(buf, len, 1);
        if (a > best_read) best_read = a;
        if (b > best_pass) best_pass = b;
    }
    printf("bench stream-read: %.2f GB/s  (%.3f of the %.0f GB/s memory bound)\n", best_read,
           best_read / MEMORY_BOUND_GBS, MEMORY_BOUND_GBS);
    printf("bench stream-passthrough: %.2f GB/s  (%.3f of the %.0f GB/s memory bound)\n", best_pass,
           best_pass / MEMORY_BOUND_GBS, MEMORY_BOUND_GBS);
    free(x);
    free(buf);
    return 0;
}
