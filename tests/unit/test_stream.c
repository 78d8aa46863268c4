/* test_stream.c - hafm stream reader and writer (formats/stream.md). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <msgpack.h>
#include "hafm.h"
#include "hafm/stream_tools.h"

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len;
    FILE *fp;
} membuf;

static FILE *mem_open(membuf *m)
{
    m->buf = NULL;
    m->len = 0;
    m->fp = open_memstream(&m->buf, &m->len);
    assert_non_null(m->fp);
    return m->fp;
}

static void mem_close(membuf *m)
{
    assert_int_equal(fclose(m->fp), 0);
    m->fp = NULL;
}

/* Reads a whole stream from memory: returns the last hafm_reader_next() code (0 or -1). */
typedef struct {
    int headers, items, tracks, data, ends, item_ends, others;
    size_t max_payload;
} counts;

static int read_all(const void *buf, size_t len, counts *c)
{
    counts dummy;
    if (!c) c = &dummy;
    memset(c, 0, sizeof *c);
    /* fmemopen refuses size 0 in old glibc; an empty file stands in for empty input */
    FILE *fp = len ? fmemopen((void *)buf, len, "rb") : tmpfile();
    assert_non_null(fp);
    hafm_reader *r = hafm_reader_open(fp, "in");
    assert_non_null(r);
    hafm_event ev;
    int rc;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        switch (ev.type) {
        case HAFM_EV_HEADER: c->headers++; break;
        case HAFM_EV_ITEM: c->items++; break;
        case HAFM_EV_TRACK: c->tracks++; break;
        case HAFM_EV_DATA: c->data++; if (ev.nbytes > c->max_payload) c->max_payload = ev.nbytes; break;
        case HAFM_EV_END: c->ends++; break;
        case HAFM_EV_ITEM_END: c->item_ends++; break;
        case HAFM_EV_OTHER: c->others++; break;
        }
    }
    hafm_reader_close(r);
    fclose(fp);
    return rc;
}

/* Expects reading buf to fail with a message containing want. */
static void expect_error(const void *buf, size_t len, const char *want)
{
    int rc = read_all(buf, len, NULL);
    if (rc != -1 || !strstr(hafm_last_error(), want))
        fail_msg("expected an error with \"%s\", got rc %d, \"%s\"", want, rc, rc < 0 ? hafm_last_error() : "");
}

/* msgpack builders for hand-made streams */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mk;

static void mk_init(mk *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void s(mk *m, const char *str)
{
    msgpack_pack_str(&m->pk, strlen(str));
    msgpack_pack_str_body(&m->pk, str, strlen(str));
}

static void u(mk *m, uint64_t v) { msgpack_pack_uint64(&m->pk, v); }

static void mk_header(mk *m, unsigned major, unsigned minor)
{
    msgpack_pack_map(&m->pk, 3);
    s(m, "type"); s(m, "header");
    s(m, "magic"); s(m, "hafm-stream");
    s(m, "version"); msgpack_pack_array(&m->pk, 2); u(m, major); u(m, minor);
}

static void mk_keyed(mk *m, const char *type, const char *key)
{
    msgpack_pack_map(&m->pk, 2);
    s(m, "type"); s(m, type);
    s(m, "key"); s(m, key);
}

/* an audio track, mono i16 at 8 kHz; extra adds that many unknown keys (then packs them) */
static void mk_track(mk *m, unsigned id, const char *name)
{
    msgpack_pack_map(&m->pk, 9);
    s(m, "type"); s(m, "track");
    s(m, "id"); u(m, id);
    s(m, "name"); s(m, name);
    s(m, "kind"); s(m, "audio");
    s(m, "dtype"); s(m, "i16");
    s(m, "shape"); msgpack_pack_array(&m->pk, 1); u(m, 1);
    s(m, "rate"); u(m, 8000);
    s(m, "sample_rate"); u(m, 8000);
    s(m, "channels"); u(m, 1);
}

/* a tokens track [1] i16 with vocab 1024 at 50 Hz */
static void mk_tokens(mk *m, unsigned id, const char *name)
{
    msgpack_pack_map(&m->pk, 8);
    s(m, "type"); s(m, "track");
    s(m, "id"); u(m, id);
    s(m, "name"); s(m, name);
    s(m, "kind"); s(m, "tokens");
    s(m, "dtype"); s(m, "i16");
    s(m, "shape"); msgpack_pack_array(&m->pk, 1); u(m, 1);
    s(m, "rate"); u(m, 50);
    s(m, "vocab"); u(m, 1024);
}

static void mk_data(mk *m, unsigned id, uint64_t frames, const void *payload, size_t nbytes)
{
    msgpack_pack_map(&m->pk, 4);
    s(m, "type"); s(m, "data");
    s(m, "track"); u(m, id);
    s(m, "frames"); u(m, frames);
    s(m, "payload"); msgpack_pack_bin(&m->pk, nbytes); msgpack_pack_bin_body(&m->pk, payload, nbytes);
}

static void mk_end(mk *m, unsigned id, uint64_t frames)
{
    msgpack_pack_map(&m->pk, 3);
    s(m, "type"); s(m, "end");
    s(m, "track"); u(m, id);
    s(m, "frames"); u(m, frames);
}

/* Starts over in an initialised builder: header, item "song", track 0 "a" (i16 mono), two
 * frames of data. */
static void mk_prefix(mk *m)
{
    static const int16_t pcm[2] = { 1, -2 };
    m->sb.size = 0;
    mk_header(m, 1, 0);
    mk_keyed(m, "item", "song");
    mk_track(m, 0, "a");
    mk_data(m, 0, 2, pcm, sizeof pcm);
}

/* ---- deterministic test content ------------------------------------------------------------ */

typedef struct {
    const char *name;
    hafm_kind kind;
    hafm_dtype dtype;
    int ndim;
    int64_t shape[2];
    int64_t vocab;
    int rate;
} spec;

/* A value exactly representable in the dtype, different for each (item, frame, element). */
static double value_for(const spec *sp, int item, int64_t frame, size_t e)
{
    int64_t k = frame * 31 + (int64_t)e * 7 + item * 1000;
    switch (sp->dtype) {
    case HAFM_DT_U8: return (double)(k % (sp->kind == HAFM_KIND_TOKENS ? sp->vocab : 256));
    case HAFM_DT_U16: return (double)(k % (sp->kind == HAFM_KIND_TOKENS ? sp->vocab : 65536));
    case HAFM_DT_I16:
        return sp->kind == HAFM_KIND_TOKENS ? (double)(k % sp->vocab) : (double)(k % 65536 - 32768);
    case HAFM_DT_I32:
        return sp->kind == HAFM_KIND_TOKENS ? (double)(k % sp->vocab) : (double)(k * 40503 % 2000000007 - 1000000000);
    case HAFM_DT_F16: return (double)(k % 2048 - 1024) / 16.0;
    case HAFM_DT_BF16: return (double)(k % 256 - 128) * 0.5;
    case HAFM_DT_F32: return (double)(float)sin((double)k * 0.001);
    case HAFM_DT_F64: return sin((double)k * 0.001) + 1e-12 * (double)k;
    default: return 0;
    }
}

static void declare(hafm_writer *w, const spec *sp, hafm_track *t)
{
    if (sp->kind == HAFM_KIND_AUDIO) hafm_track_init_audio(t, sp->name, sp->dtype, sp->rate, (int)sp->shape[0]);
    else if (sp->kind == HAFM_KIND_TOKENS) hafm_track_init_tokens(t, sp->name, (int)sp->shape[0], sp->vocab, sp->rate);
    else hafm_track_init(t, sp->name, sp->kind, sp->dtype, sp->ndim, sp->shape, sp->rate);
    t->dtype = sp->dtype;
    assert_int_equal(hafm_track_set_producer(t, "test_stream", "0.1.0"), 0);
    assert_int_equal(hafm_track_param_str(t, "spec", sp->name), 0);
    assert_int_equal(hafm_track_param_float(t, "gain", 0.5), 0);
    assert_int_equal(hafm_track_attr_int(t, "codebook_offset", 0), 0);
    assert_int_equal(hafm_track_attr_str(t, "role", "vocal"), 0);
    if (hafm_write_track(w, t) != 0) fail_msg("write_track: %s", hafm_last_error());
}

/* Writes frames [from, from+n) of sp: f32 path for float and audio dtypes, i32 for integers,
 * raw bytes for f64 (the f32 path cannot carry its precision). */
static void put(hafm_writer *w, const spec *sp, int id, int item, int64_t from, int64_t n)
{
    size_t elems = (size_t)(sp->shape[0] * (sp->ndim > 1 ? sp->shape[1] : 1));
    size_t cnt = (size_t)n * elems;
    int rc;
    if (sp->dtype == HAFM_DT_F64) {
        double *d = malloc(cnt * sizeof *d + 1);
        for (size_t i = 0; i < cnt; i++) d[i] = value_for(sp, item, from + (int64_t)(i / elems), i % elems);
        rc = hafm_write_data(w, id, d, n);
        free(d);
    } else if (hafm_dtype_is_float(sp->dtype)) {
        float *f = malloc(cnt * sizeof *f + 1);
        for (size_t i = 0; i < cnt; i++) f[i] = (float)value_for(sp, item, from + (int64_t)(i / elems), i % elems);
        rc = hafm_write_data_f32(w, id, f, n);
        free(f);
    } else {
        int32_t *v = malloc(cnt * sizeof *v + 1);
        for (size_t i = 0; i < cnt; i++) v[i] = (int32_t)value_for(sp, item, from + (int64_t)(i / elems), i % elems);
        rc = hafm_write_data_i32(w, id, v, n);
        free(v);
    }
    if (rc != 0) fail_msg("write_data %s: %s", sp->name, hafm_last_error());
}

/* Three items, each with an audio, a tokens and a features track written interleaved in chunks
 * that straddle the writer's message size; the reader must give back every value. */
static void roundtrip(const spec *sp, int nspec, const int64_t *total)
{
    membuf out;
    hafm_writer *w = hafm_writer_open(mem_open(&out), "test_stream");
    assert_non_null(w);
    static const int64_t steps[] = { 1, 777, 5000, 12345, 3, 4096, 4097 };
    for (int item = 0; item < 3; item++) {
        char key[32];
        snprintf(key, sizeof key, "song-%d", item);
        assert_int_equal(hafm_write_item(w, key), 0);
        hafm_track t[4];
        int64_t done[4] = { 0 };
        for (int k = 0; k < nspec; k++) declare(w, &sp[k], &t[k]);
        for (int step = 0, busy = 1; busy; step++) {
            busy = 0;
            for (int k = 0; k < nspec; k++) {
                int64_t n = steps[(step + k) % 7];
                if (n > total[k] - done[k]) n = total[k] - done[k];
                if (n <= 0) continue;
                put(w, &sp[k], t[k].id, item, done[k], n);
                done[k] += n;
                busy = 1;
            }
        }
        /* the last track of the last item is ended by item_end */
        for (int k = 0; k < nspec; k++)
            if (!(item == 2 && k == nspec - 1)) assert_int_equal(hafm_write_end(w, t[k].id, 1000 + k, 24000), 0);
        assert_int_equal(hafm_write_item_end(w), 0);
        for (int k = 0; k < nspec; k++) hafm_track_free(&t[k]);
    }
    if (hafm_writer_close(w) != 0) fail_msg("close: %s", hafm_last_error());
    mem_close(&out);

    FILE *fp = fmemopen(out.buf, out.len, "rb");
    hafm_reader *r = hafm_reader_open(fp, "roundtrip");
    hafm_event ev;
    int rc, item = -1, messages = 0;
    double max_diff = 0;
    size_t max_payload = 0;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_ITEM) item++;
        if (ev.type == HAFM_EV_TRACK) {
            const hafm_track *t = ev.track;
            int k = 0;
            while (k < nspec && strcmp(sp[k].name, t->name)) k++;
            assert_true(k < nspec);
            assert_int_equal(t->kind, sp[k].kind);
            assert_int_equal(t->dtype, sp[k].dtype);
            assert_int_equal(t->shape[0], sp[k].shape[0]);
            assert_true(t->rate == sp[k].rate);
            assert_string_equal(t->producer_tool, "test_stream");
            assert_int_equal(t->nparams, 2);
            assert_string_equal(t->params[0].s, sp[k].name);
            assert_true(t->params[1].type == HAFM_VAL_FLOAT && t->params[1].f == 0.5);
            assert_int_equal(hafm_track_attr_int_or(t, "codebook_offset", -1), 0);
            assert_string_equal(hafm_track_attr(t, "role")->s, "vocal");
            if (t->kind == HAFM_KIND_TOKENS) assert_int_equal(t->vocab, sp[k].vocab);
        }
        if (ev.type == HAFM_EV_DATA) {
            messages++;
            if (ev.nbytes > max_payload) max_payload = ev.nbytes;
            int k = 0;
            while (strcmp(sp[k].name, ev.track->name)) k++;
            size_t n = (size_t)ev.frames * hafm_track_frame_elems(ev.track);
            float *f = malloc(n * sizeof *f + 1);
            int32_t *v = malloc(n * sizeof *v + 1);
            hafm_event_to_f32(&ev, f);
            hafm_event_to_i32(&ev, v);
            int64_t first = ev.track->frames_seen - ev.frames;
            size_t elems = hafm_track_frame_elems(ev.track);
            for (size_t i = 0; i < n; i++) {
                double want = value_for(&sp[k], item, first + (int64_t)(i / elems), i % elems);
                double diff = fabs((double)f[i] - (double)(float)want);
                if (diff > max_diff) max_diff = diff;
                if (!hafm_dtype_is_float(ev.track->dtype) && v[i] != (int32_t)want)
                    fail_msg("%s frame %lld: %d != %g", ev.track->name, (long long)(first + (int64_t)(i / elems)), v[i], want);
                if (ev.track->dtype == HAFM_DT_F64) {
                    double d;
                    memcpy(&d, (const char *)ev.data + 8 * i, 8);
                    if (d != want) fail_msg("f64 value %g != %g", d, want);
                }
            }
            free(f);
            free(v);
        }
        if (ev.type == HAFM_EV_END) {
            int k = 0;
            while (strcmp(sp[k].name, ev.track->name)) k++;
            assert_int_equal(ev.track->frames_seen, total[k]);
            if (item == 2 && k == nspec - 1) {
                assert_int_equal(ev.track->source_samples, -1);
            } else {
                assert_int_equal(ev.track->source_samples, 1000 + k);
                assert_true(ev.track->source_rate == 24000);
            }
        }
    }
    if (rc != 0) fail_msg("read: %s", hafm_last_error());
    assert_int_equal(item, 2);
    assert_int_equal(hafm_reader_items(r), 3);
    assert_true(max_payload <= (1u << 20));
    print_message("OK (roundtrip %s/%s/%s) max_diff=%g, %d data messages, largest payload %zu bytes\n",
                  sp[0].name, sp[1].name, sp[2].name, max_diff, messages, max_payload);
    assert_true(max_diff == 0);
    hafm_reader_close(r);
    fclose(fp);
    free(out.buf);
}

static void test_roundtrip_int_dtypes(void **state)
{
    (void)state;
    spec sp[3] = {
        { "audio", HAFM_KIND_AUDIO, HAFM_DT_I16, 1, { 2 }, 0, 8000 },
        { "codes", HAFM_KIND_TOKENS, HAFM_DT_I16, 1, { 4 }, 1024, 75 },
        { "feat", HAFM_KIND_FEATURES, HAFM_DT_F16, 2, { 3, 5 }, 0, 50 },
    };
    int64_t total[3] = { 30001, 9000, 5000 };
    roundtrip(sp, 3, total);
}

static void test_roundtrip_wide_dtypes(void **state)
{
    (void)state;
    spec sp[3] = {
        { "pcm32", HAFM_KIND_AUDIO, HAFM_DT_I32, 1, { 1 }, 0, 16000 },
        { "tok.u16", HAFM_KIND_TOKENS, HAFM_DT_U16, 1, { 2 }, 60000, 50 },
        { "feat.bf16", HAFM_KIND_FEATURES, HAFM_DT_BF16, 1, { 7 }, 0, 75 },
    };
    int64_t total[3] = { 40000, 8193, 4099 };
    roundtrip(sp, 3, total);
}

static void test_roundtrip_float_dtypes(void **state)
{
    (void)state;
    /* 2 KiB frames: the writer must split at 1 MiB (512 frames) */
    spec sp[3] = {
        { "wave", HAFM_KIND_AUDIO, HAFM_DT_F32, 1, { 2 }, 0, 24000 },
        { "tok:u8", HAFM_KIND_TOKENS, HAFM_DT_U8, 1, { 1 }, 200, 50 },
        { "emb", HAFM_KIND_FEATURES, HAFM_DT_F32, 1, { 512 }, 0, 50 },
    };
    int64_t total[3] = { 50000, 12000, 1500 };
    roundtrip(sp, 3, total);
}

static void test_roundtrip_f64_i32_tokens(void **state)
{
    (void)state;
    spec sp[3] = {
        { "x", HAFM_KIND_AUDIO, HAFM_DT_I16, 1, { 1 }, 0, 100 },
        { "big-vocab", HAFM_KIND_TOKENS, HAFM_DT_I32, 1, { 8 }, 100000, 75 },
        { "feat.f64", HAFM_KIND_FEATURES, HAFM_DT_F64, 2, { 2, 3 }, 0, 10 },
    };
    int64_t total[3] = { 150, 4097, 1000 };
    roundtrip(sp, 3, total);
}

/* ---- a stream with everything a pass-through must keep ---------------------------------- */

/* Header with tool "passthru", then item 1 (track with unknown keys, an unknown message type
 * inside the item, non-minimal encodings), an unknown message between items, item 2. */
static void mk_rich_header(mk *m)
{
    msgpack_pack_map(&m->pk, 4);
    s(m, "type"); s(m, "header");
    s(m, "magic"); s(m, "hafm-stream");
    s(m, "version"); msgpack_pack_array(&m->pk, 2); u(m, 1); u(m, 0);
    s(m, "tool"); s(m, "passthru");
}

static void mk_rich(mk *m)
{
    static const int16_t pcm[3] = { 7, -8, 9 };
    mk_init(m);
    mk_rich_header(m);
    mk_keyed(m, "item", "one");
    msgpack_pack_map(&m->pk, 11);
    s(m, "name"); s(m, "audio");
    s(m, "type"); s(m, "track");
    s(m, "id"); msgpack_pack_fix_uint32(&m->pk, 3);     /* not the shortest encoding */
    s(m, "kind"); s(m, "audio");
    s(m, "dtype"); s(m, "i16");
    s(m, "shape"); msgpack_pack_array(&m->pk, 1); u(m, 1);
    s(m, "rate"); msgpack_pack_double(&m->pk, 8000.0);
    s(m, "sample_rate"); u(m, 8000);
    s(m, "channels"); u(m, 1);
    s(m, "x-future"); msgpack_pack_array(&m->pk, 2); msgpack_pack_nil(&m->pk); msgpack_pack_true(&m->pk);
    s(m, "comment"); s(m, "unknown keys survive");
    msgpack_pack_map(&m->pk, 2);
    s(m, "type"); s(m, "x-marker");
    s(m, "at"); msgpack_pack_ext(&m->pk, 3, 5); msgpack_pack_ext_body(&m->pk, "\1\2\3", 3);
    mk_data(m, 3, 3, pcm, sizeof pcm);
    mk_end(m, 3, 3);
    mk_keyed(m, "item_end", "one");
    msgpack_pack_map(&m->pk, 1);
    s(m, "type"); s(m, "x-between");
    mk_keyed(m, "item", "two");
    mk_tokens(m, 0, "tok");
    mk_end(m, 0, 0);
    mk_keyed(m, "item_end", "two");
}

static void passthrough_all(const void *in, size_t len, membuf *out, counts *c)
{
    FILE *fp = fmemopen((void *)in, len, "rb");
    hafm_reader *r = hafm_reader_open(fp, "in");
    hafm_writer *w = hafm_writer_open(mem_open(out), "passthru");
    hafm_event ev;
    int rc;
    memset(c, 0, sizeof *c);
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_OTHER) c->others++;
        if (ev.type == HAFM_EV_HEADER) c->headers++;
        if (hafm_write_passthrough(w, &ev) != 0) fail_msg("passthrough: %s", hafm_last_error());
    }
    if (rc != 0) fail_msg("read: %s", hafm_last_error());
    assert_int_equal(hafm_writer_close(w), 0);
    mem_close(out);
    hafm_reader_close(r);
    fclose(fp);
}

static void test_passthrough_byte_exact(void **state)
{
    (void)state;
    mk m;
    mk_rich(&m);
    membuf out;
    counts c;
    passthrough_all(m.sb.data, m.sb.size, &out, &c);
    assert_int_equal(c.others, 2);
    assert_int_equal(out.len, m.sb.size);
    assert_memory_equal(out.buf, m.sb.data, m.sb.size);
    print_message("OK (pass-through) %zu bytes identical, %d unknown messages kept\n", out.len, c.others);
    free(out.buf);
    msgpack_sbuffer_destroy(&m.sb);
}

/* cat a b: the second header is accepted between items; a pass-through writes one header. */
static void test_repeated_header(void **state)
{
    (void)state;
    mk m;
    mk_rich(&m);
    size_t one = m.sb.size;
    msgpack_sbuffer_write(&m.sb, m.sb.data, one);
    counts c;
    assert_int_equal(read_all(m.sb.data, m.sb.size, &c), 0);
    assert_int_equal(c.headers, 2);
    assert_int_equal(c.items, 4);
    assert_int_equal(c.item_ends, 4);
    membuf out;
    passthrough_all(m.sb.data, m.sb.size, &out, &c);
    mk h;
    mk_init(&h);
    mk_rich_header(&h);
    size_t header_len = h.sb.size;
    msgpack_sbuffer_destroy(&h.sb);
    assert_int_equal(out.len, 2 * one - header_len);
    assert_memory_equal(out.buf, m.sb.data, one);
    assert_memory_equal(out.buf + one, m.sb.data + header_len, one - header_len);
    assert_int_equal(read_all(out.buf, out.len, &c), 0);
    assert_int_equal(c.headers, 1);
    assert_int_equal(c.items, 4);
    free(out.buf);
    msgpack_sbuffer_destroy(&m.sb);
}

/* Every prefix of a small stream either ends between items (valid) or is an error. */
static void test_truncation_every_offset(void **state)
{
    (void)state;
    mk m;
    mk_rich(&m);
    /* message boundaries where the stream may end: after the header, after item_end "one", after
     * the unknown message between items, at the end */
    size_t valid[4], nvalid = 0;
    {
        FILE *fp = fmemopen(m.sb.data, m.sb.size, "rb");
        hafm_reader *r = hafm_reader_open(fp, "in");
        hafm_event ev;
        size_t pos = 0;
        while (hafm_reader_next(r, &ev) > 0) {
            /* the message just read spans [pos, ftell) since the reader never reads ahead */
            size_t end = (size_t)ftell(fp);
            if (ev.type == HAFM_EV_HEADER || ev.type == HAFM_EV_ITEM_END ||
                (ev.type == HAFM_EV_OTHER && !hafm_reader_item_key(r)))
                valid[nvalid++] = end;
            pos = end;
        }
        assert_int_equal(pos, m.sb.size);
        hafm_reader_close(r);
        fclose(fp);
    }
    assert_int_equal(nvalid, 4);
    int errors = 0;
    for (size_t n = 0; n < m.sb.size; n++) {
        int ok = 0;
        for (size_t i = 0; i < nvalid; i++) ok |= valid[i] == n;
        int rc = read_all(m.sb.data, n, NULL);
        if (ok) {
            if (rc != 0) fail_msg("prefix %zu: %s", n, hafm_last_error());
        } else {
            if (rc != -1) fail_msg("prefix %zu of %zu read without error", n, m.sb.size);
            const char *e = hafm_last_error();
            if (!strstr(e, n ? "truncated stream" : "empty input")) fail_msg("prefix %zu: %s", n, e);
            errors++;
        }
    }
    print_message("OK (truncation) %d of %zu prefixes rejected, the other %zu end between items\n", errors,
                  m.sb.size, nvalid - 1);
    msgpack_sbuffer_destroy(&m.sb);
}

/* ---- errors of section 7 ------------------------------------------------------------------- */

static void test_not_a_stream(void **state)
{
    (void)state;
    expect_error("", 0, "in: empty input");
    expect_error("RIFF\x24\0\0\0WAVEfmt ", 16, "not a hafm stream: the input looks like a RIFF/WAV file");
    expect_error("fLaC\0\0\0\x22", 8, "looks like a FLAC file");
    expect_error("OggS\0\2\0\0", 8, "looks like an Ogg file");
    expect_error("\x50\0\0\0\0\0\0\0{\"w\":{\"dtype\":\"F32\"}}", 28, "looks like a safetensors file");
    expect_error("hello world\n", 12, "not a hafm stream");
    mk m;
    mk_init(&m);
    msgpack_pack_array(&m.pk, 1);
    u(&m, 1);
    expect_error(m.sb.data, m.sb.size, "not a hafm stream");
    m.sb.size = 0;
    mk_keyed(&m, "item", "x");
    expect_error(m.sb.data, m.sb.size, "not a hafm stream (its first message is not a header)");
    m.sb.size = 0;
    msgpack_pack_map(&m.pk, 3);
    s(&m, "type"); s(&m, "header");
    s(&m, "magic"); s(&m, "hafm-strean");
    s(&m, "version"); msgpack_pack_array(&m.pk, 2); u(&m, 1); u(&m, 0);
    expect_error(m.sb.data, m.sb.size, "magic");
    msgpack_sbuffer_destroy(&m.sb);
}

static void test_versions(void **state)
{
    (void)state;
    mk m;
    mk_init(&m);
    mk_header(&m, 2, 3);
    expect_error(m.sb.data, m.sb.size, "in: unsupported hafm stream version 2.3 (this reader knows 1.x)");
    m.sb.size = 0;
    mk_header(&m, 1, 9);   /* a newer minor is fine */
    assert_int_equal(read_all(m.sb.data, m.sb.size, NULL), 0);
    mk_header(&m, 0, 1);   /* a repeated header with an unknown major */
    expect_error(m.sb.data, m.sb.size, "unsupported hafm stream version 0.1");
    m.sb.size = 0;
    mk_header(&m, 1, 0);
    mk_keyed(&m, "item", "k");
    mk_header(&m, 1, 0);
    expect_error(m.sb.data, m.sb.size, "item 'k': header message inside an item");
    msgpack_sbuffer_destroy(&m.sb);
}

static void test_truncated(void **state)
{
    (void)state;
    mk m;
    mk_init(&m);
    mk_prefix(&m);
    expect_error(m.sb.data, m.sb.size, "in: item 'song': truncated stream: input ends inside track 'a' (id 0) after 2 frames");
    expect_error(m.sb.data, m.sb.size - 1, "truncated stream: input ends inside a message at byte");
    mk_end(&m, 0, 2);
    expect_error(m.sb.data, m.sb.size, "truncated stream: input ends before item_end");
    msgpack_sbuffer_destroy(&m.sb);
}

static void test_message_too_large(void **state)
{
    (void)state;
    mk m;
    mk_init(&m);
    mk_prefix(&m);
    /* a data message claiming a 4 GiB payload: rejected from its header, nothing allocated */
    msgpack_pack_map(&m.pk, 4);
    s(&m, "type"); s(&m, "data");
    s(&m, "track"); u(&m, 0);
    s(&m, "frames"); u(&m, 1);
    s(&m, "payload");
    msgpack_sbuffer_write(&m.sb, "\xc6\xff\xff\xff\xff", 5);
    expect_error(m.sb.data, m.sb.size, "is larger than 64 MiB");
    /* a map claiming 2^32-1 entries */
    mk_prefix(&m);
    msgpack_sbuffer_write(&m.sb, "\xdf\xff\xff\xff\xff", 5);
    expect_error(m.sb.data, m.sb.size, "is larger than 64 MiB");
    /* a real 64 MiB + 1 byte payload */
    mk_prefix(&m);
    size_t big = HAFM_MAX_MESSAGE;
    char *p = calloc(1, big);
    mk_data(&m, 0, big / 2, p, big);
    free(p);
    expect_error(m.sb.data, m.sb.size, "in: item 'song': message at byte 187 is larger than 64 MiB");
    /* just below the limit is fine */
    mk_prefix(&m);
    big = HAFM_MAX_MESSAGE - 64;
    p = calloc(1, big);
    mk_data(&m, 0, big / 2, p, big);
    free(p);
    mk_end(&m, 0, 2 + big / 2);
    mk_keyed(&m, "item_end", "song");
    counts c;
    assert_int_equal(read_all(m.sb.data, m.sb.size, &c), 0);
    assert_int_equal(c.max_payload, big);
    msgpack_sbuffer_destroy(&m.sb);
}

static void test_item_errors(void **state)
{
    (void)state;
    static const int16_t pcm[4] = { 0 };
    mk m;
    mk_init(&m);

    mk_prefix(&m);
    mk_data(&m, 0, 2, pcm, 3);
    expect_error(m.sb.data, m.sb.size, "item 'song': track 'a' (id 0): payload size mismatch: 3 bytes for 2 frames of 2 bytes");

    mk_prefix(&m);
    mk_data(&m, 5, 1, pcm, 2);
    expect_error(m.sb.data, m.sb.size, "item 'song': data message: unknown track id 5");

    mk_prefix(&m);
    mk_track(&m, 0, "b");
    expect_error(m.sb.data, m.sb.size, "item 'song': duplicate track id 0 ('a' and 'b')");

    mk_prefix(&m);
    mk_track(&m, 1, "a");
    expect_error(m.sb.data, m.sb.size, "item 'song': duplicate track name 'a' (ids 0 and 1)");

    mk_prefix(&m);
    mk_end(&m, 0, 2);
    mk_data(&m, 0, 1, pcm, 2);
    expect_error(m.sb.data, m.sb.size, "item 'song': track 'a' (id 0): data after end");

    mk_prefix(&m);
    mk_end(&m, 0, 2);
    mk_end(&m, 0, 2);
    expect_error(m.sb.data, m.sb.size, "track 'a' (id 0): ended twice");

    mk_prefix(&m);
    mk_end(&m, 0, 3);
    expect_error(m.sb.data, m.sb.size, "item 'song': track 'a' (id 0): frame count mismatch: end says 3 frames, data messages had 2");

    mk_prefix(&m);
    mk_keyed(&m, "item_end", "song");
    expect_error(m.sb.data, m.sb.size, "item 'song': track 'a' (id 0) not ended at item_end");

    mk_prefix(&m);
    mk_end(&m, 0, 2);
    mk_keyed(&m, "item_end", "other");
    expect_error(m.sb.data, m.sb.size, "item 'song': key mismatch: item_end says 'other'");

    mk_prefix(&m);
    mk_keyed(&m, "item", "nested");
    expect_error(m.sb.data, m.sb.size, "item 'nested' begins before item_end (items do not nest)");

    m.sb.size = 0;
    mk_header(&m, 1, 0);
    mk_track(&m, 0, "a");
    expect_error(m.sb.data, m.sb.size, "in: track message outside an item");

    m.sb.size = 0;
    mk_header(&m, 1, 0);
    mk_keyed(&m, "item_end", "x");
    expect_error(m.sb.data, m.sb.size, "in: item_end message outside an item");

    m.sb.size = 0;
    mk_header(&m, 1, 0);
    mk_keyed(&m, "item", "two words");
    expect_error(m.sb.data, m.sb.size, "item message: key 'key': 'two words' is not 1-255 bytes");

    m.sb.size = 0;
    mk_header(&m, 1, 0);
    mk_keyed(&m, "item", "caf\xc3");
    expect_error(m.sb.data, m.sb.size, "item message: key 'key'");

    /* tokens must lie in [0, vocab) */
    static const int16_t tok[3] = { 5, 1023, 1024 };
    m.sb.size = 0;
    mk_header(&m, 1, 0);
    mk_keyed(&m, "item", "t");
    mk_tokens(&m, 4, "sem");
    mk_data(&m, 4, 3, tok, sizeof tok);
    expect_error(m.sb.data, m.sb.size, "item 't': track 'sem' (id 4): token 1024 at frame 2 is outside [0, 1024)");

    /* a declared frame count is checked */
    m.sb.size = 0;
    mk_header(&m, 1, 0);
    mk_keyed(&m, "item", "t");
    msgpack_pack_map(&m.pk, 9);
    s(&m, "type"); s(&m, "track");
    s(&m, "id"); u(&m, 0);
    s(&m, "name"); s(&m, "f");
    s(&m, "kind"); s(&m, "features");
    s(&m, "dtype"); s(&m, "f32");
    s(&m, "shape"); msgpack_pack_array(&m.pk, 1); u(&m, 1);
    s(&m, "rate"); msgpack_pack_double(&m.pk, 12.5);
    s(&m, "frames"); u(&m, 2);
    s(&m, "attrs"); msgpack_pack_map(&m.pk, 1); s(&m, "layer"); u(&m, 9);
    static const float one[3] = { 1, 2, 3 };
    mk_data(&m, 0, 1, one, 4);
    mk_end(&m, 0, 1);
    expect_error(m.sb.data, m.sb.size, "track 'f' (id 0): frame count mismatch: declared 2 frames, data messages had 1");
    msgpack_sbuffer_destroy(&m.sb);
}

/* A track message with one key replaced (or removed when val_kind is 'x'). */
static void mk_track_with(mk *m, const char *key, char val_kind, const char *sval, uint64_t uval)
{
    const char *keys[] = { "type", "id", "name", "kind", "dtype", "shape", "rate", "sample_rate", "channels" };
    int n = 9 - (val_kind == 'x');
    int found = 0;
    for (int i = 0; i < 9; i++) found |= !strcmp(keys[i], key);
    if (!found) n++;
    msgpack_pack_map(&m->pk, (size_t)n);
    for (int i = 0; i < 9; i++) {
        if (!strcmp(keys[i], key)) continue;
        s(m, keys[i]);
        switch (i) {
        case 0: s(m, "track"); break;
        case 1: u(m, 0); break;
        case 2: s(m, "a"); break;
        case 3: s(m, "audio"); break;
        case 4: s(m, "i16"); break;
        case 5: msgpack_pack_array(&m->pk, 1); u(m, 2); break;
        case 6: u(m, 8000); break;
        case 7: u(m, 8000); break;
        case 8: u(m, 2); break;
        }
    }
    if (val_kind == 'x') return;
    s(m, key);
    if (val_kind == 's') s(m, sval);
    else if (val_kind == 'u') u(m, uval);
    else if (val_kind == 'f') msgpack_pack_double(&m->pk, (double)uval / 2);
    else if (val_kind == 'n') msgpack_pack_int64(&m->pk, -(int64_t)uval);
    else if (val_kind == 'a') { msgpack_pack_array(&m->pk, 2); u(m, uval); u(m, uval); }
}

static void test_malformed_track(void **state)
{
    (void)state;
    static const struct { const char *key; char kind; const char *s; uint64_t u; const char *want; } cases[] = {
        { "shape", 'x', NULL, 0, "item 'k': track 'a' (id 0): missing key 'shape'" },
        { "name", 'x', NULL, 0, "track message (id 0): missing key 'name'" },
        { "id", 'n', NULL, 3, "track message: key 'id': expected an unsigned integer up to 65535" },
        { "id", 'u', NULL, 65536, "track message: key 'id': expected an unsigned integer up to 65535" },
        { "name", 's', "bad name", 0, "key 'name': 'bad name' is not 1-64 bytes" },
        { "name", 's', "", 0, "key 'name': '' is not 1-64 bytes" },
        { "kind", 's', "video", 0, "track 'a' (id 0): key 'kind': 'video' is not audio, tokens or features" },
        { "dtype", 's', "f128", 0, "key 'dtype': 'f128' is not u8" },
        { "dtype", 's', "f64", 0, "track 'a' (id 0): key 'dtype': f64 is not an audio dtype (i16, i32, f32)" },
        { "dtype", 's', "i64", 0, "key 'dtype': 'i64' is not u8" },
        { "shape", 'a', NULL, 0, "key 'shape': dimension 0 must be an integer in [1, 2^24)" },
        { "shape", 'a', NULL, 4096, "key 'shape': 16777216 or more elements per frame" },
        { "shape", 'u', NULL, 2, "key 'shape': expected an array" },
        { "rate", 'u', NULL, 0, "key 'rate': must be a positive number, got 0" },
        { "rate", 's', "fast", 0, "key 'rate': expected a number" },
        { "rate", 'f', NULL, 16001, "key 'sample_rate': 8000 must be positive and equal 'rate' (8000.5)" },
        { "sample_rate", 'x', NULL, 0, "missing key 'sample_rate'" },
        { "channels", 'u', NULL, 1, "key 'channels': 1 must be positive and 'shape' must be [channels]" },
        { "frames", 's', "many", 0, "key 'frames': expected an unsigned integer" },
        { "producer", 'u', NULL, 1, "key 'producer': expected a map" },
        { "attrs", 'a', NULL, 1, "key 'attrs': expected a map" },
        { "type", 'u', NULL, 1, "malformed message at byte" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mk m;
        mk_init(&m);
        mk_header(&m, 1, 0);
        mk_keyed(&m, "item", "k");
        mk_track_with(&m, cases[i].key, cases[i].kind, cases[i].s, cases[i].u);
        expect_error(m.sb.data, m.sb.size, cases[i].want);
        msgpack_sbuffer_destroy(&m.sb);
    }
    /* unknown keys are fine */
    mk m;
    mk_init(&m);
    mk_header(&m, 1, 0);
    mk_keyed(&m, "item", "k");
    mk_track_with(&m, "x-new", 'u', NULL, 3);
    mk_end(&m, 0, 0);
    mk_keyed(&m, "item_end", "k");
    assert_int_equal(read_all(m.sb.data, m.sb.size, NULL), 0);
    /* a key given twice, a key that is not a string, an invalid byte */
    m.sb.size = 0;
    mk_header(&m, 1, 0);
    mk_keyed(&m, "item", "k");
    msgpack_pack_map(&m.pk, 3);
    s(&m, "type"); s(&m, "end");
    s(&m, "track"); u(&m, 0);
    s(&m, "track"); u(&m, 1);
    expect_error(m.sb.data, m.sb.size, "item 'k': end message: key 'track' appears twice");
    m.sb.size = 0;
    mk_header(&m, 1, 0);
    msgpack_pack_map(&m.pk, 2);
    s(&m, "type"); s(&m, "x");
    u(&m, 7); u(&m, 8);
    expect_error(m.sb.data, m.sb.size, "malformed message: a key is not a string");
    m.sb.size = 0;
    mk_header(&m, 1, 0);
    msgpack_sbuffer_write(&m.sb, "\x81\xc1", 2);
    expect_error(m.sb.data, m.sb.size, "invalid MessagePack byte 0xc1");
    m.sb.size = 0;
    mk_header(&m, 1, 0);
    msgpack_sbuffer_write(&m.sb, "\x05", 1);
    expect_error(m.sb.data, m.sb.size, "not a map");
    /* nesting deeper than msgpack-c's limit */
    m.sb.size = 0;
    mk_header(&m, 1, 0);
    msgpack_pack_map(&m.pk, 2);
    s(&m, "type"); s(&m, "x-deep");
    s(&m, "v");
    for (int i = 0; i < 40; i++) msgpack_pack_array(&m.pk, 1);
    u(&m, 1);
    expect_error(m.sb.data, m.sb.size, "nested deeper than 32 levels");
    msgpack_sbuffer_destroy(&m.sb);
}

/* ---- writer ------------------------------------------------------------------------------- */

static void test_writer_ids_and_collisions(void **state)
{
    (void)state;
    /* input: item with tracks 0 "a" (audio) and 2 "tok"; the tool declares its own track "out"
     * before the input's track 0 arrives: the input track is moved to a free id */
    static const int16_t pcm[2] = { 3, 4 };
    mk m;
    mk_init(&m);
    mk_header(&m, 1, 0);
    mk_keyed(&m, "item", "song");
    mk_track(&m, 0, "a");
    mk_tokens(&m, 2, "tok");
    mk_data(&m, 0, 2, pcm, sizeof pcm);
    mk_end(&m, 0, 2);
    mk_end(&m, 2, 0);
    mk_keyed(&m, "item_end", "song");

    FILE *fp = fmemopen(m.sb.data, m.sb.size, "rb");
    hafm_reader *r = hafm_reader_open(fp, "in");
    membuf out;
    hafm_writer *w = hafm_writer_open(mem_open(&out), "tool");
    hafm_event ev;
    hafm_track own, own2;
    int rc;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        assert_int_equal(hafm_write_passthrough(w, &ev), 0);
        if (ev.type == HAFM_EV_ITEM) {
            hafm_track_init_features(&own, "out", 2, 50);
            assert_int_equal(hafm_write_track(w, &own), 0);
            assert_int_equal(own.id, 0);
            hafm_track dup;
            hafm_track_init_features(&dup, "out", 2, 50);
            assert_int_equal(hafm_write_track(w, &dup), -1);
            assert_non_null(strstr(hafm_last_error(), "track name 'out' is already used"));
        }
        if (ev.type == HAFM_EV_TRACK && !strcmp(ev.track->name, "tok")) {
            hafm_track_init_features(&own2, "out2", 1, 50);
            assert_int_equal(hafm_write_track(w, &own2), 0);
            assert_int_equal(own2.id, 3);   /* 0 own, 1 moved "a", 2 "tok" */
            float x[2] = { 1, 2 };
            assert_int_equal(hafm_write_data_f32(w, own.id, x, 1), 0);
        }
    }
    assert_int_equal(rc, 0);
    assert_int_equal(hafm_writer_close(w), 0);
    mem_close(&out);
    hafm_reader_close(r);
    fclose(fp);

    /* the output is valid and "a" carries its data under its new id */
    fp = fmemopen(out.buf, out.len, "rb");
    r = hafm_reader_open(fp, "out");
    int seen_a = 0;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_TRACK && !strcmp(ev.track->name, "a")) assert_int_equal(ev.track->id, 1);
        if (ev.type == HAFM_EV_DATA && !strcmp(ev.track->name, "a")) {
            assert_int_equal(ev.frames, 2);
            assert_memory_equal(ev.data, pcm, 4);
            seen_a = 1;
        }
        if (ev.type == HAFM_EV_END && !strcmp(ev.track->name, "out")) assert_int_equal(ev.frames, 1);
    }
    if (rc != 0) fail_msg("%s", hafm_last_error());
    assert_true(seen_a);
    assert_int_equal(hafm_reader_ntracks(r), 4);
    assert_non_null(hafm_reader_find_track(r, "out2"));
    assert_null(hafm_reader_find_track(r, "nope"));
    hafm_reader_close(r);
    fclose(fp);
    free(out.buf);
    msgpack_sbuffer_destroy(&m.sb);
}

static void test_writer_errors(void **state)
{
    (void)state;
    membuf out;
    hafm_writer *w = hafm_writer_open(mem_open(&out), "tool");
    hafm_track t;
    hafm_track_init_tokens(&t, "tok", 1, 1024, 50);
    assert_int_equal(hafm_write_track(w, &t), -1);
    assert_non_null(strstr(hafm_last_error(), "outside an item"));
    assert_int_equal(hafm_write_item(w, "bad key"), -1);
    assert_int_equal(hafm_write_item(w, "k"), 0);
    assert_int_equal(hafm_write_item(w, "k2"), -1);
    assert_int_equal(hafm_write_track(w, &t), 0);
    int32_t tok[2] = { 1, 1024 };
    assert_int_equal(hafm_write_data_i32(w, t.id, tok, 2), -1);
    assert_non_null(strstr(hafm_last_error(), "token 1024 at frame 1 is outside [0, 1024)"));
    assert_int_equal(hafm_write_data_i32(w, 7, tok, 1), -1);
    assert_non_null(strstr(hafm_last_error(), "did not declare"));
    assert_int_equal(hafm_write_end(w, t.id, -1, 0), 0);
    assert_int_equal(hafm_write_data_i32(w, t.id, tok, 1), -1);
    assert_non_null(strstr(hafm_last_error(), "data after end"));
    hafm_track bad;
    int64_t shape[1] = { 2 };
    hafm_track_init(&bad, "x", HAFM_KIND_AUDIO, HAFM_DT_F64, 1, shape, 8000);
    assert_int_equal(hafm_write_track(w, &bad), -1);
    assert_non_null(strstr(hafm_last_error(), "track 'x': key 'dtype': f64 is not an audio dtype"));
    hafm_track_init_audio(&bad, "y", HAFM_DT_I16, 8000, 1);
    bad.id = 0;   /* taken by "tok" */
    assert_int_equal(hafm_write_track(w, &bad), -1);
    assert_non_null(strstr(hafm_last_error(), "track id 0 of 'y' is already used"));
    /* declared frame counts are kept */
    hafm_track_init_audio(&bad, "z", HAFM_DT_I16, 8000, 1);
    bad.frames = 3;
    assert_int_equal(hafm_write_track(w, &bad), 0);
    int32_t pcm[4] = { 0 };
    assert_int_equal(hafm_write_data_i32(w, bad.id, pcm, 4), -1);
    assert_non_null(strstr(hafm_last_error(), "more than the 3 frames"));
    assert_int_equal(hafm_write_data_i32(w, bad.id, pcm, 2), 0);
    assert_int_equal(hafm_write_item_end(w), -1);
    assert_non_null(strstr(hafm_last_error(), "2 frames written, the declaration announces 3"));
    assert_int_equal(hafm_writer_close(w), -1);
    assert_non_null(strstr(hafm_last_error(), "item 'k' not ended"));
    mem_close(&out);
    free(out.buf);

    /* an empty stream is a header alone, and reads back cleanly */
    w = hafm_writer_open(mem_open(&out), "tool");
    assert_int_equal(hafm_writer_close(w), 0);
    mem_close(&out);
    counts c;
    assert_int_equal(read_all(out.buf, out.len, &c), 0);
    assert_int_equal(c.headers, 1);
    assert_int_equal(out.buf[0], (char)0x84);
    free(out.buf);
}

/* float -> integer rounds to nearest (ties to even) and saturates; NaN becomes 0 */
static void test_writer_conversions(void **state)
{
    (void)state;
    membuf out;
    hafm_writer *w = hafm_writer_open(mem_open(&out), "tool");
    assert_int_equal(hafm_write_item(w, "k"), 0);
    hafm_track a, h, b16;
    hafm_track_init_audio(&a, "pcm", HAFM_DT_I16, 8000, 1);
    assert_int_equal(hafm_write_track(w, &a), 0);
    float x[7] = { -40000.f, 1.5f, 2.5f, -1.5f, 40000.f, NAN, 0.49f };
    assert_int_equal(hafm_write_data_f32(w, a.id, x, 7), 0);
    int64_t shape[1] = { 3 };
    hafm_track_init(&h, "half", HAFM_KIND_FEATURES, HAFM_DT_F16, 1, shape, 10);
    assert_int_equal(hafm_write_track(w, &h), 0);
    float hx[3] = { 1.0f / 3, 65504.f, -0.0f };
    assert_int_equal(hafm_write_data_f32(w, h.id, hx, 1), 0);
    int64_t one[1] = { 1 };
    hafm_track_init(&b16, "brain", HAFM_KIND_FEATURES, HAFM_DT_BF16, 1, one, 10);
    assert_int_equal(hafm_write_track(w, &b16), 0);
    int32_t iv[2] = { 3, -70000 };
    assert_int_equal(hafm_write_data_i32(w, b16.id, iv, 2), 0);
    assert_int_equal(hafm_write_item_end(w), 0);
    assert_int_equal(hafm_writer_close(w), 0);
    mem_close(&out);

    FILE *fp = fmemopen(out.buf, out.len, "rb");
    hafm_reader *r = hafm_reader_open(fp, "in");
    hafm_event ev;
    int rc;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type != HAFM_EV_DATA) continue;
        if (!strcmp(ev.track->name, "pcm")) {
            int32_t v[7];
            hafm_event_to_i32(&ev, v);
            int32_t want[7] = { -32768, 2, 2, -2, 32767, 0, 0 };
            assert_memory_equal(v, want, sizeof want);
        } else if (!strcmp(ev.track->name, "half")) {
            float v[3];
            hafm_event_to_f32(&ev, v);
            assert_true(v[0] == hafm_f16_to_f32(hafm_f32_to_f16(1.0f / 3)));
            assert_true(fabsf(v[0] - 1.0f / 3) < 1e-3f);
            assert_true(v[1] == 65504.f);
            assert_true(v[2] == 0 && signbit(v[2]));
        } else {
            float v[2];
            hafm_event_to_f32(&ev, v);
            assert_true(v[0] == 3.f && v[1] == -70144.f);   /* bf16 keeps 8 bits of mantissa */
        }
    }
    if (rc != 0) fail_msg("%s", hafm_last_error());
    hafm_reader_close(r);
    fclose(fp);
    free(out.buf);
}

/* A closed pipe: the write error is reported (at close at the latest), not lost. */
static void test_writer_epipe(void **state)
{
    (void)state;
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    close(fd[0]);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    FILE *fp = fdopen(fd[1], "wb");
    hafm_writer *w = hafm_writer_open(fp, "tool");
    assert_int_equal(hafm_write_item(w, "k"), 0);
    assert_int_equal(hafm_write_item_end(w), 0);
    assert_int_equal(hafm_writer_close(w), -1);
    assert_string_equal(hafm_last_error(), "write error: Broken pipe");
    fclose(fp);
    signal(SIGPIPE, old);
}

static void test_rename_keeps_keys(void **state)
{
    (void)state;
    mk m;
    mk_rich(&m);
    FILE *fp = fmemopen(m.sb.data, m.sb.size, "rb");
    hafm_reader *r = hafm_reader_open(fp, "in");
    membuf out;
    hafm_writer *w = hafm_writer_open(mem_open(&out), "passthru");
    hafm_event ev;
    int rc;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_TRACK && !strcmp(ev.track->name, "audio")) {
            assert_int_equal(hafm_write_passthrough_renamed(w, &ev, "bad name"), -1);
            assert_int_equal(hafm_write_passthrough_renamed(w, &ev, "voice"), 0);
        } else {
            assert_int_equal(hafm_write_passthrough(w, &ev), 0);
        }
    }
    assert_int_equal(rc, 0);
    assert_int_equal(hafm_writer_close(w), 0);
    mem_close(&out);
    hafm_reader_close(r);
    fclose(fp);
    /* the re-packed declaration takes the shortest encodings (its 5-byte uint32 id becomes a
     * fixint); "voice" is in place of "audio" and the unknown keys are still there */
    assert_int_equal(out.len, m.sb.size - 4);
    assert_non_null(memmem(out.buf, out.len, "unknown keys survive", 20));
    assert_non_null(memmem(out.buf, out.len, "\xa5voice", 6));
    counts c;
    assert_int_equal(read_all(out.buf, out.len, &c), 0);
    assert_int_equal(c.tracks, 2);
    free(out.buf);
    msgpack_sbuffer_destroy(&m.sb);
}

/* Pass-through of events built by hand (no raw message) writes equivalent messages. */
static void test_passthrough_without_raw(void **state)
{
    (void)state;
    membuf out;
    hafm_writer *w = hafm_writer_open(mem_open(&out), "tool");
    hafm_track t;
    hafm_track_init_audio(&t, "pcm", HAFM_DT_I16, 8000, 1);
    t.id = 9;
    int16_t pcm[3] = { 1, 2, 3 };
    hafm_event ev = { .type = HAFM_EV_ITEM, .key = "k" };
    assert_int_equal(hafm_write_passthrough(w, &ev), 0);
    ev = (hafm_event){ .type = HAFM_EV_TRACK, .track = &t };
    assert_int_equal(hafm_write_passthrough(w, &ev), 0);
    ev = (hafm_event){ .type = HAFM_EV_DATA, .track = &t, .frames = 3, .data = pcm, .nbytes = 6 };
    assert_int_equal(hafm_write_passthrough(w, &ev), 0);
    t.frames_seen = 3;
    ev = (hafm_event){ .type = HAFM_EV_END, .track = &t };
    assert_int_equal(hafm_write_passthrough(w, &ev), 0);
    ev = (hafm_event){ .type = HAFM_EV_OTHER };
    assert_int_equal(hafm_write_passthrough(w, &ev), -1);
    ev = (hafm_event){ .type = HAFM_EV_ITEM_END, .key = "k" };
    assert_int_equal(hafm_write_passthrough(w, &ev), 0);
    assert_int_equal(hafm_writer_close(w), 0);
    mem_close(&out);
    counts c;
    if (read_all(out.buf, out.len, &c) != 0) fail_msg("%s", hafm_last_error());
    assert_int_equal(c.data, 1);
    assert_int_equal(c.ends, 1);
    free(out.buf);
}

/* A tool answers as soon as a message is complete: with the writer still holding the pipe
 * open, every message already sent is delivered (reading ahead would block until alarm()). */
static void test_no_read_ahead(void **state)
{
    (void)state;
    mk m;
    mk_init(&m);
    mk_prefix(&m);
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    assert_int_equal(write(fd[1], m.sb.data, m.sb.size), (ssize_t)m.sb.size);
    FILE *fp = fdopen(fd[0], "rb");
    hafm_reader *r = hafm_reader_open(fp, "pipe");
    hafm_event ev;
    alarm(10);
    for (int i = 0; i < 4; i++) assert_int_equal(hafm_reader_next(r, &ev), 1);
    alarm(0);
    assert_int_equal(ev.type, HAFM_EV_DATA);
    assert_int_equal(ev.frames, 2);
    close(fd[1]);
    assert_int_equal(hafm_reader_next(r, &ev), -1);
    assert_non_null(strstr(hafm_last_error(), "truncated stream"));
    hafm_reader_close(r);
    fclose(fp);
    msgpack_sbuffer_destroy(&m.sb);
}

static void test_track_helpers(void **state)
{
    (void)state;
    hafm_track t, c;
    hafm_track_init_tokens(&t, "codes", 8, 1024, 75);
    assert_int_equal(hafm_track_validate(&t), 0);
    assert_int_equal(hafm_track_frame_elems(&t), 8);
    assert_int_equal(hafm_track_frame_bytes(&t), 16);
    assert_int_equal(hafm_track_attr_int_or(&t, "codebook_offset", 0), 0);
    assert_int_equal(hafm_track_attr_int(&t, "codebook_offset", 4), 0);
    assert_int_equal(hafm_track_attr_int(&t, "codebook_offset", 5), 0);   /* replaces */
    assert_int_equal(t.nattrs, 1);
    assert_int_equal(hafm_track_attr_int_or(&t, "codebook_offset", 0), 5);
    assert_int_equal(hafm_track_param_str(&t, "model", "encodec_24khz"), 0);
    for (int i = 1; i < HAFM_MAX_PARAMS; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", i);
        assert_int_equal(hafm_track_param_int(&t, key, i), 0);
    }
    assert_int_equal(hafm_track_param_int(&t, "one-too-many", 1), -1);
    hafm_track_copy(&c, &t);
    hafm_track_free(&t);
    assert_string_equal(c.params[0].s, "encodec_24khz");
    assert_int_equal(hafm_track_attr_str(&c, "codebook_offset", "four"), 0);
    assert_int_equal(hafm_track_validate(&c), -1);
    assert_non_null(strstr(hafm_last_error(), "attribute 'codebook_offset'"));
    hafm_track_free(&c);
    assert_int_equal(hafm_kind_from_name("features"), HAFM_KIND_FEATURES);
    assert_string_equal(hafm_kind_name(HAFM_KIND_TOKENS), "tokens");
    assert_int_equal(hafm_kind_from_name("video"), HAFM_KIND_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_int_dtypes),
        cmocka_unit_test(test_roundtrip_wide_dtypes),
        cmocka_unit_test(test_roundtrip_float_dtypes),
        cmocka_unit_test(test_roundtrip_f64_i32_tokens),
        cmocka_unit_test(test_passthrough_byte_exact),
        cmocka_unit_test(test_repeated_header),
        cmocka_unit_test(test_truncation_every_offset),
        cmocka_unit_test(test_not_a_stream),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_message_too_large),
        cmocka_unit_test(test_item_errors),
        cmocka_unit_test(test_malformed_track),
        cmocka_unit_test(test_writer_ids_and_collisions),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_writer_conversions),
        cmocka_unit_test(test_writer_epipe),
        cmocka_unit_test(test_rename_keeps_keys),
        cmocka_unit_test(test_passthrough_without_raw),
        cmocka_unit_test(test_no_read_ahead),
        cmocka_unit_test(test_track_helpers),
    };
    return cmocka_run_group_tests_name("stream", tests, NULL, NULL);
}
