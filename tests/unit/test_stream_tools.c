/* test_stream_tools.c - JSON rendering, JSON packing, comparison and track selection of
 * streams (the library behind hafm-dump, hafm-from-json, hafm-cmp and hafm-tracks). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <msgpack.h>
#include "hafm.h"
#include "hafm/stream_tools.h"

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

static void mem_close(membuf *m) { assert_int_equal(fclose(m->fp), 0); }

/* The JSON line of the first event of type t in buf (caller frees). */
static char *json_of(const membuf *m, hafm_event_type t, int full)
{
    FILE *fp = fmemopen(m->buf, m->len, "rb");
    hafm_reader *r = hafm_reader_open(fp, "in");
    hafm_event ev;
    char *json = NULL;
    while (!json && hafm_reader_next(r, &ev) > 0)
        if (ev.type == t) json = hafm_event_json(&ev, full);
    hafm_reader_close(r);
    fclose(fp);
    assert_non_null(json);
    return json;
}

static void test_json_numbers(void **state)
{
    (void)state;
    membuf m;
    hafm_writer *w = hafm_writer_open(mem_open(&m), "t");
    assert_int_equal(hafm_write_item(w, "k"), 0);
    int64_t shape[1] = { 6 };
    hafm_track t;
    hafm_track_init(&t, "f", HAFM_KIND_FEATURES, HAFM_DT_F32, 1, shape, 0.5);
    assert_int_equal(hafm_track_param_int(&t, "big", INT64_MAX), 0);
    assert_int_equal(hafm_track_param_int(&t, "neg", -5), 0);
    assert_int_equal(hafm_track_set_producer(&t, "tool", "1"), 0);
    assert_int_equal(hafm_write_track(w, &t), 0);
    float x[6] = { 0.1f, -2.0f, NAN, INFINITY, -INFINITY, 1e-30f };
    assert_int_equal(hafm_write_data_f32(w, t.id, x, 1), 0);
    assert_int_equal(hafm_write_item_end(w), 0);
    assert_int_equal(hafm_writer_close(w), 0);
    mem_close(&m);

    char *j = json_of(&m, HAFM_EV_TRACK, 0);
    assert_string_equal(j, "{\"type\":\"track\",\"id\":0,\"name\":\"f\",\"kind\":\"features\",\"dtype\":\"f32\","
                           "\"shape\":[6],\"rate\":0.5,\"producer\":{\"tool\":\"tool\",\"version\":\"1\","
                           "\"params\":{\"big\":9223372036854775807,\"neg\":-5}}}");
    free(j);
    j = json_of(&m, HAFM_EV_DATA, 1);
    assert_string_equal(j, "{\"type\":\"data\",\"track\":0,\"frames\":1,"
                           "\"payload\":[0.1,-2.0,\"NaN\",\"Infinity\",\"-Infinity\",1e-30]}");
    free(j);
    j = json_of(&m, HAFM_EV_DATA, 0);
    assert_string_equal(j, "{\"type\":\"data\",\"track\":0,\"frames\":1,\"payload\":\"<24 bytes>\","
                           "\"stats\":{\"min\":-2.0,\"max\":0.1,\"mean\":-0.633333332836628,\"nonfinite\":3}}");
    free(j);
    free(m.buf);
}

/* Unknown messages: any MessagePack becomes JSON; invalid UTF-8 and NUL become U+FFFD. */
static void test_json_generic(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str(&pk, 4); msgpack_pack_str_body(&pk, "type", 4);
    msgpack_pack_str(&pk, 3); msgpack_pack_str_body(&pk, "x-y", 3);
    msgpack_pack_str(&pk, 3); msgpack_pack_str_body(&pk, "s\xff\0", 3);
    msgpack_pack_str(&pk, 4); msgpack_pack_str_body(&pk, "a\"\n\xc3\xa9", 5 - 1);
    msgpack_pack_int(&pk, -1);
    msgpack_pack_bin(&pk, 2); msgpack_pack_bin_body(&pk, "\1\2", 2);
    msgpack_pack_true(&pk);
    msgpack_pack_array(&pk, 2); msgpack_pack_nil(&pk); msgpack_pack_float(&pk, 0.25f);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    char *j = hafm_msgpack_json(&up.data, 0);
    assert_string_equal(j, "{\"type\":\"x-y\",\"s\xef\xbf\xbd\xef\xbf\xbd\":\"a\\\"\\u000a\xef\xbf\xbd\","
                           "\"-1\":\"<2 bytes>\",\"true\":[null,0.25]}");
    free(j);
    j = hafm_msgpack_json(&up.data, 1);
    assert_non_null(strstr(j, "\"-1\":[1,2]"));
    free(j);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

/* The JSON packer writes what the writer writes, given hafm-dump --full's lines. */
/* a fuzzer found a track whose shape multiplies past size_t: its data must be refused, not packed */
static void test_json_packer_huge_shape(void **state)
{
    (void)state;
    membuf b;
    hafm_json_packer *p = hafm_json_packer_open(mem_open(&b));
    const char *lines[] = {
        "{\"type\":\"header\",\"format\":\"hafm-stream\",\"version\":1}",
        "{\"type\":\"item\",\"key\":\"k\"}",
        "{\"type\":\"track\",\"id\":1,\"name\":\"h\",\"kind\":\"features\",\"dtype\":\"f32\","
        "\"shape\":[7.8e45,3],\"rate\":75}",
        "{\"type\":\"data\",\"track\":1,\"frames\":1,\"payload\":[1,2,3]}",
    };
    for (int i = 0; i < 3; i++) assert_int_equal(hafm_json_packer_line(p, lines[i], strlen(lines[i])), 1);
    assert_int_equal(hafm_json_packer_line(p, lines[3], strlen(lines[3])), -1);
    assert_string_equal(hafm_last_error(),
                        "line 4: data message: 'track' is not the id of a track declared earlier in the item");
    hafm_json_packer_free(p);
    mem_close(&b);
    free(b.buf);
}

static void test_json_packer_roundtrip(void **state)
{
    (void)state;
    membuf a, b;
    hafm_writer *w = hafm_writer_open(mem_open(&a), "t");
    assert_int_equal(hafm_write_item(w, "k"), 0);
    hafm_track t, h;
    hafm_track_init_tokens(&t, "codes", 4, 1024, 75);
    assert_int_equal(hafm_track_attr_int(&t, "codebook_offset", 4), 0);
    assert_int_equal(hafm_write_track(w, &t), 0);
    int64_t shape[2] = { 2, 2 };
    hafm_track_init(&h, "h", HAFM_KIND_FEATURES, HAFM_DT_BF16, 2, shape, 86.1328125);
    assert_int_equal(hafm_write_track(w, &h), 0);
    int32_t tok[8] = { 0, 1, 1022, 1023, 5, 6, 7, 8 };
    assert_int_equal(hafm_write_data_i32(w, t.id, tok, 2), 0);
    float x[4] = { -1.5f, 3.0e20f, 0.0078125f, -0.0f };
    assert_int_equal(hafm_write_data_f32(w, h.id, x, 1), 0);
    assert_int_equal(hafm_write_end(w, t.id, 12345, 44100), 0);
    assert_int_equal(hafm_write_item_end(w), 0);
    assert_int_equal(hafm_writer_close(w), 0);
    mem_close(&a);

    hafm_json_packer *p = hafm_json_packer_open(mem_open(&b));
    FILE *fp = fmemopen(a.buf, a.len, "rb");
    hafm_reader *r = hafm_reader_open(fp, "in");
    hafm_event ev;
    int rc;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        char *j = hafm_event_json(&ev, 1);
        assert_int_equal(hafm_json_packer_line(p, j, strlen(j)), 1);
        free(j);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(hafm_json_packer_line(p, " \n", 2), 0);
    assert_int_equal(hafm_json_packer_line(p, "{\"a\":1} x", 9), -1);
    assert_string_equal(hafm_last_error(), "line 11: text after the JSON object");
    hafm_json_packer_free(p);
    mem_close(&b);
    hafm_reader_close(r);
    fclose(fp);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.buf, b.buf, a.len);
    free(a.buf);
    free(b.buf);
}

/* Writes item "k" with a features track "f" (2 per frame) and a tokens track "t" of n frames;
 * interleaved: both tracks in chunks of `chunk` frames, otherwise "f" whole, then "t". */
static void cmp_stream(membuf *m, int n, int chunk, int interleaved, float bump, int flip)
{
    hafm_writer *w = hafm_writer_open(mem_open(m), "t");
    assert_int_equal(hafm_write_item(w, "k"), 0);
    hafm_track f, t;
    hafm_track_init_features(&f, "f", 2, 50);
    hafm_track_init_tokens(&t, "t", 1, 100, 50);
    assert_int_equal(hafm_write_track(w, &t), 0);
    assert_int_equal(hafm_write_track(w, &f), 0);
    float *x = malloc(2 * (size_t)n * sizeof *x);
    int32_t *k = malloc((size_t)n * sizeof *k);
    for (int i = 0; i < n; i++) {
        x[2 * i] = sinf((float)i);
        x[2 * i + 1] = (float)i;
        k[i] = i % 100;
    }
    x[2 * (n / 2) + 1] += bump;
    if (flip) k[n - 1] = (k[n - 1] + 1) % 100;
    if (interleaved) {
        for (int i = 0; i < n; i += chunk) {
            int c = n - i < chunk ? n - i : chunk;
            assert_int_equal(hafm_write_data_f32(w, f.id, x + 2 * i, c), 0);
            assert_int_equal(hafm_write_data_i32(w, t.id, k + i, c), 0);
        }
    } else {
        assert_int_equal(hafm_write_data_f32(w, f.id, x, n), 0);
        assert_int_equal(hafm_write_data_i32(w, t.id, k, n), 0);
    }
    assert_int_equal(hafm_write_item_end(w), 0);
    assert_int_equal(hafm_writer_close(w), 0);
    mem_close(m);
    free(x);
    free(k);
}

static int cmp_bufs(const membuf *a, const membuf *b, double atol, int64_t max_tok)
{
    FILE *fa = fmemopen(a->buf, a->len, "rb"), *fb = fmemopen(b->buf, b->len, "rb");
    hafm_reader *ra = hafm_reader_open(fa, "A"), *rb = hafm_reader_open(fb, "B");
    hafm_cmp_opts o = { .atol = atol, .rtol = 0, .max_token_diff = max_tok, .report = NULL };
    int rc = hafm_stream_cmp(ra, rb, "A", "B", &o);
    hafm_reader_close(ra);
    hafm_reader_close(rb);
    fclose(fa);
    fclose(fb);
    return rc;
}

static void test_cmp_lockstep(void **state)
{
    (void)state;
    membuf a, b, c, d;
    /* A: one track after the other, large messages; B: interleaved in 7-frame chunks */
    cmp_stream(&a, 20000, 0, 0, 0, 0);
    cmp_stream(&b, 20000, 7, 1, 0, 0);
    assert_int_equal(cmp_bufs(&a, &b, 0, 0), 0);
    assert_int_equal(cmp_bufs(&b, &a, 0, 0), 0);
    cmp_stream(&c, 20000, 7, 1, 0.5f, 1);
    assert_int_equal(cmp_bufs(&a, &c, 0, 1), 1);
    assert_string_equal(hafm_last_error(),
                        "item 'k', track 'f', frame 10000, value 1: 10000 in A, 10000.5 in B "
                        "(|diff| 0.5 > atol 0 + rtol 0 x 1e+04)");
    assert_int_equal(cmp_bufs(&a, &c, 0.5, 0), 1);
    assert_string_equal(hafm_last_error(), "item 'k', track 't': 1 of 20000 tokens differ (0 allowed), first at "
                                           "frame 19999, codebook 0: 99 in A, 0 in B");
    assert_int_equal(cmp_bufs(&a, &c, 0.5, 1), 0);
    cmp_stream(&d, 19999, 7, 1, 0, 0);
    assert_int_equal(cmp_bufs(&a, &d, 0, 0), 1);
    assert_string_equal(hafm_last_error(), "item 'k': track 't': 20000 frames in A, 19999 in B");
    print_message("OK (cmp) 20000 frames, one track after the other against 7-frame interleaved chunks\n");
    free(a.buf);
    free(b.buf);
    free(c.buf);
    free(d.buf);
}

static void test_tracks_filter(void **state)
{
    (void)state;
    membuf a, b;
    cmp_stream(&a, 100, 30, 1, 0, 0);
    const char *keep[] = { "f", "t" }, *drop[] = { "t" }, *from[] = { "f" }, *to[] = { "g" };
    hafm_tracks_opts o = { keep, 2, drop, 1, from, to, 1 };
    FILE *fp = fmemopen(a.buf, a.len, "rb");
    hafm_reader *r = hafm_reader_open(fp, "in");
    hafm_writer *w = hafm_writer_open(mem_open(&b), "tracks");
    assert_int_equal(hafm_tracks_filter(r, w, &o), 0);
    assert_int_equal(hafm_writer_close(w), 0);
    mem_close(&b);
    hafm_reader_close(r);
    fclose(fp);
    fp = fmemopen(b.buf, b.len, "rb");
    r = hafm_reader_open(fp, "out");
    hafm_event ev;
    int rc, data = 0;
    while ((rc = hafm_reader_next(r, &ev)) > 0)
        if (ev.type == HAFM_EV_DATA) {
            assert_string_equal(ev.track->name, "g");
            data++;
        }
    assert_int_equal(rc, 0);
    assert_int_equal(data, 4);
    assert_int_equal(hafm_reader_ntracks(r), 1);
    hafm_reader_close(r);
    fclose(fp);
    free(b.buf);

    const char *missing[] = { "nope" };
    hafm_tracks_opts o2 = { missing, 1, NULL, 0, NULL, NULL, 0 };
    fp = fmemopen(a.buf, a.len, "rb");
    r = hafm_reader_open(fp, "in");
    w = hafm_writer_open(mem_open(&b), "tracks");
    assert_int_equal(hafm_tracks_filter(r, w, &o2), -1);
    assert_string_equal(hafm_last_error(), "no track 'nope' in the input");
    hafm_writer_free(w);
    mem_close(&b);
    hafm_reader_close(r);
    fclose(fp);
    free(b.buf);
    free(a.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_json_generic),
        cmocka_unit_test(test_json_packer_roundtrip),
        cmocka_unit_test(test_json_packer_huge_shape),
        cmocka_unit_test(test_cmp_lockstep),
        cmocka_unit_test(test_tracks_filter),
    };
    return cmocka_run_group_tests_name("stream_tools", tests, NULL, NULL);
}
