/* fuzz_stream.c - libFuzzer target: the input is read as a hafm stream (or, when it begins with
 * a brace, as JSON lines packed into one), every event passes through a writer, every data
 * payload is converted to float and int32 and every message to JSON (as hafm-dump shows it,
 * summarised and in full). Any input must end in a clean end of stream or an error, never a
 * crash, leak or sanitizer report. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "hafm.h"
#include "hafm/stream_tools.h"

static int read_stream(const uint8_t *data, size_t size);

/* An input that begins with '{' (never a stream: a MessagePack fixint) is JSON lines, as
 * hafm-from-json reads them: packed, and the result read as a stream. The mutator then works
 * on text, which reaches deep states of the reader more often than bytes do. */
static void json_lines(const uint8_t *data, size_t size)
{
    char *obuf = NULL;
    size_t olen = 0;
    FILE *out = open_memstream(&obuf, &olen);
    hafm_json_packer *p = hafm_json_packer_open(out);
    for (size_t i = 0; i < size;) {
        size_t j = i;
        while (j < size && data[j] != '\n') j++;
        if (hafm_json_packer_line(p, (const char *)data + i, j - i) < 0) break;
        i = j + 1;
    }
    hafm_json_packer_free(p);
    fclose(out);
    read_stream((const uint8_t *)obuf, olen);
    free(obuf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size && data[0] == '{') json_lines(data, size);
    else read_stream(data, size);
    return 0;
}

static int read_stream(const uint8_t *data, size_t size)
{
    /* fmemopen of 0 bytes fails on old glibc: an empty tmpfile stands in */
    FILE *in = size ? fmemopen((void *)data, size, "rb") : tmpfile();
    if (!in) return 0;
    char *obuf = NULL;
    size_t olen = 0;
    FILE *out = open_memstream(&obuf, &olen);
    hafm_reader *r = hafm_reader_open(in, "fuzz");
    hafm_writer *w = hafm_writer_open(out, "fuzz");
    hafm_event ev;
    int rc;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_DATA) {
            size_t n = (size_t)ev.frames * hafm_track_frame_elems(ev.track);
            float *f = malloc(n * sizeof *f + 1);
            int32_t *v = malloc(n * sizeof *v + 1);
            hafm_event_to_f32(&ev, f);
            hafm_event_to_i32(&ev, v);
            free(f);
            free(v);
        }
        for (int full = 0; full < 2; full++) {
            char *json = hafm_event_json(&ev, full);
            if (!json) abort();
            free(json);
        }
        /* every stream the reader accepts must pass through unchanged */
        if (hafm_write_passthrough(w, &ev) != 0) {
            fprintf(stderr, "pass-through refused an accepted event: %s\n", hafm_last_error());
            abort();
        }
    }
    hafm_reader_close(r);
    fclose(in);
    if (rc == 0 && hafm_writer_close(w) != 0) {
        fprintf(stderr, "writer close after a clean stream: %s\n", hafm_last_error());
        abort();
    }
    if (rc != 0) hafm_writer_free(w);
    fclose(out);
    /* what the writer made of an accepted stream reads back cleanly */
    if (rc == 0) {
        FILE *again = fmemopen(obuf, olen, "rb");
        r = hafm_reader_open(again, "again");
        while ((rc = hafm_reader_next(r, &ev)) > 0) {
        }
        if (rc != 0) {
            fprintf(stderr, "pass-through output does not read back: %s\n", hafm_last_error());
            abort();
        }
        hafm_reader_close(r);
        fclose(again);
    }
    free(obuf);
    return 0;
}
