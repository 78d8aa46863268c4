/* test_safetensors.c - the golden checkpoints, write/read round trips, corrupted files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hafm/safetensors.h"

static const char *data_dir(void) {
    const char *d = getenv("HAFM_DATA");
    return d && *d ? d : "tests/data";
}

static char *data_path(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/io/%s", data_dir(), name);
    return buf;
}

static char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    buf[len] = 0;
    *n = (size_t)len;
    return buf;
}

static char tmpdir[256];

static int setup(void **state) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/hafm_st_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* ---- golden files ----------------------------------------------------------------------- */

static void test_golden_encodec(void **state) {
    hafm_safetensors *st = hafm_st_open(data_path("encodec_small_seed7.safetensors"));
    if (!st) fail_msg("%s", hafm_last_error());
    assert_int_equal(hafm_st_count(st), 156);
    assert_string_equal(hafm_st_get(st, 0)->name, "encoder.model.0.conv.conv.bias");

    /* Every tensor's dtype and shape as the golden's own name list declares them. */
    size_t n;
    char *js = slurp(data_path("encodec_small_seed7_tensor_names.json"), &n);
    cJSON *list = cJSON_Parse(js);
    assert_non_null(list);
    assert_int_equal(cJSON_GetArraySize(list), 156);
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        const char *name = cJSON_GetObjectItem(e, "original")->valuestring;
        const hafm_st_tensor *t = hafm_st_find(st, name);
        if (!t) fail_msg("tensor '%s' missing", name);
        assert_int_equal(t->dtype, HAFM_DT_F32);
        const cJSON *shape = cJSON_GetObjectItem(e, "shape");
        int64_t want[HAFM_ST_MAX_DIMS];
        int nd = 0;
        const cJSON *d;
        cJSON_ArrayForEach(d, shape) want[nd++] = (int64_t)d->valuedouble;
        if (hafm_st_check_shape(st, t, nd, want) < 0) fail_msg("%s", hafm_last_error());
        assert_int_equal((size_t)t->numel * 4, t->nbytes);
    }
    cJSON_Delete(list);
    free(js);

    assert_int_equal(hafm_st_meta_count(st), 7);
    assert_string_equal(hafm_st_meta(st, "seed"), "7");
    assert_string_equal(hafm_st_meta(st, "format"), "pt");
    assert_non_null(strstr(hafm_st_meta(st, "config"), "\"n_q\": 8"));
    assert_null(hafm_st_meta(st, "nope"));
    int seen_seed = 0;
    for (int i = 0; i < hafm_st_meta_count(st); i++) seen_seed += strcmp(hafm_st_meta_key(st, i), "seed") == 0;
    assert_int_equal(seen_seed, 1);

    /* Values (first elements and sum computed from the file with Python's struct module). */
    int64_t shape[3] = {4, 1, 7};
    float w[28];
    assert_int_equal(hafm_st_read_f32(st, "encoder.model.0.conv.conv.weight_v", w, 3, shape), 0);
    assert_true(w[0] == 0.026398958638310432f && w[1] == -0.22768338024616241f && w[2] == 0.12035273015499115f);
    double sum = 0;
    for (int i = 0; i < 28; i++) sum += w[i];
    assert_true(fabs(sum - 0.533803591504693) < 1e-6);
    int64_t cb_shape[2] = {512, 32};
    float *cb = hafm_st_load_f32(st, "quantizer.vq.layers.7._codebook.embed", 2, cb_shape);
    assert_non_null(cb);
    double cb_sum = 0, cb_max = 0;
    for (int i = 0; i < 512 * 32; i++) { cb_sum += cb[i]; cb_max = fmax(cb_max, fabs(cb[i])); }
    printf("OK (encodec codebook 7) sum=%.9f (python %.9f) max_abs=%.9f\n", cb_sum, -22.042058496024765, cb_max);
    assert_true(fabs(cb_sum - -22.042058496024765) < 1e-6 && cb_max == 1.0771658420562744f);
    free(cb);

    /* Shape mismatch and a missing tensor name the tensor. */
    int64_t bad[3] = {4, 1, 5};
    assert_int_equal(hafm_st_read_f32(st, "encoder.model.0.conv.conv.weight_v", w, 3, bad), -1);
    assert_non_null(strstr(hafm_last_error(),
        "tensor 'encoder.model.0.conv.conv.weight_v': expected shape [4,1,5], got [4,1,7]"));
    assert_non_null(strstr(hafm_last_error(), "encodec_small_seed7.safetensors: "));
    assert_null(hafm_st_load_f32(st, "no.such.tensor", 3, shape));
    assert_non_null(strstr(hafm_last_error(), "tensor 'no.such.tensor' not found"));
    hafm_st_close(st);
}

static void test_golden_hubert(void **state) {
    hafm_safetensors *st = hafm_st_open(data_path("hubert_small_seed5_hf.safetensors"));
    if (!st) fail_msg("%s", hafm_last_error());
    assert_int_equal(hafm_st_count(st), 51);
    assert_string_equal(hafm_st_get(st, 50)->name, "masked_spec_embed");
    assert_null(hafm_st_get(st, 51));
    assert_int_equal(hafm_st_meta_count(st), 5);
    assert_non_null(strstr(hafm_st_meta(st, "config"), "\"hidden_size\": 96"));
    int64_t shape[2] = {96, 96};
    float *k = hafm_st_load_f32(st, "encoder.layers.0.attention.k_proj.weight", 2, shape);
    assert_non_null(k);
    double sum = 0;
    for (int i = 0; i < 96 * 96; i++) sum += k[i];
    assert_true(k[0] == -0.20734776556491852f && k[2] == 0.2901460826396942f);
    assert_true(fabs(sum - -11.59423259612231) < 1e-6);
    free(k);
    int64_t cshape[3] = {64, 1, 10};
    const hafm_st_tensor *t = hafm_st_find(st, "feature_extractor.conv_layers.0.conv.weight");
    assert_non_null(t);
    assert_int_equal(hafm_st_check_shape(st, t, 3, cshape), 0);
    hafm_st_close(st);
}

/* ---- round trips ------------------------------------------------------------------------ */

static void test_round_trip(void **state) {
    float f[6] = {0.0f, -1.5f, 3.14159265f, 1e-3f, 65504.0f, -2.5e-8f};
    int32_t i32[5] = {0, -1, 2147483647, (int32_t)-2147483647 - 1, 12345};
    int64_t i64[3] = {INT64_MAX, -7, 1LL << 53};
    uint8_t u8[3] = {0, 7, 255};
    int64_t s23[2] = {2, 3}, s5[1] = {5}, s3[1] = {3}, s0[2] = {0, 4};

    hafm_st_writer *w = hafm_st_writer_new();
    assert_int_equal(hafm_st_writer_add_f32(w, "a.f32", HAFM_DT_F32, 2, s23, f), 0);
    assert_int_equal(hafm_st_writer_add_f32(w, "b.f16", HAFM_DT_F16, 2, s23, f), 0);
    assert_int_equal(hafm_st_writer_add(w, "c.u8", HAFM_DT_U8, 1, s3, u8), 0);
    assert_int_equal(hafm_st_writer_add_f32(w, "d.bf16", HAFM_DT_BF16, 2, s23, f), 0);
    assert_int_equal(hafm_st_writer_add(w, "e.i32", HAFM_DT_I32, 1, s5, i32), 0);
    assert_int_equal(hafm_st_writer_add(w, "f.i64", HAFM_DT_I64, 1, s3, i64), 0);
    assert_int_equal(hafm_st_writer_add_f32(w, "g.empty", HAFM_DT_F32, 2, s0, f), 0);
    assert_int_equal(hafm_st_writer_add_f32(w, "h.scalar", HAFM_DT_F32, 0, NULL, f + 2), 0);
    assert_int_equal(hafm_st_writer_add(w, "a.f32", HAFM_DT_F32, 2, s23, f), -1);   /* duplicate */
    assert_non_null(strstr(hafm_last_error(), "'a.f32' added twice"));
    assert_int_equal(hafm_st_writer_add_f32(w, "x", HAFM_DT_I32, 2, s23, f), -1);
    assert_int_equal(hafm_st_writer_meta(w, "config", "{\"quote\": \"\\\" and \\n\"}"), 0);
    assert_int_equal(hafm_st_writer_meta(w, "seed", "1"), 0);
    assert_int_equal(hafm_st_writer_meta(w, "seed", "2"), 0);   /* replaces */
    const char *path = tmp_path("rt.safetensors");
    assert_int_equal(hafm_st_writer_save(w, path), 0);
    hafm_st_writer_free(w);

    hafm_safetensors *st = hafm_st_open(path);
    if (!st) fail_msg("%s", hafm_last_error());
    assert_int_equal(hafm_st_count(st), 8);
    const char *order[8] = {"a.f32", "b.f16", "c.u8", "d.bf16", "e.i32", "f.i64", "g.empty", "h.scalar"};
    for (int i = 0; i < 8; i++) assert_string_equal(hafm_st_get(st, i)->name, order[i]);
    assert_int_equal(hafm_st_meta_count(st), 2);
    assert_string_equal(hafm_st_meta(st, "config"), "{\"quote\": \"\\\" and \\n\"}");
    assert_string_equal(hafm_st_meta(st, "seed"), "2");

    float out[6];
    assert_int_equal(hafm_st_read_f32(st, "a.f32", out, 2, s23), 0);
    assert_memory_equal(out, f, sizeof f);
    assert_int_equal(hafm_st_read_f32(st, "b.f16", out, 2, s23), 0);
    double maxrel = 0;
    for (int i = 0; i < 6; i++) {
        assert_true(out[i] == hafm_f16_to_f32(hafm_f32_to_f16(f[i])));
        if (f[i] != 0 && fabsf(f[i]) > 6.1e-5f) maxrel = fmax(maxrel, fabs(out[i] - f[i]) / fabs(f[i]));
    }
    printf("OK (f16 round trip) max_rel=%.3g (half precision: <= 2^-11)\n", maxrel);
    assert_true(maxrel <= 1.0 / 2048);
    assert_int_equal(hafm_st_read_f32(st, "d.bf16", out, 2, s23), 0);
    for (int i = 0; i < 6; i++) assert_true(out[i] == hafm_bf16_to_f32(hafm_f32_to_bf16(f[i])));
    const hafm_st_tensor *t = hafm_st_find(st, "e.i32");
    assert_int_equal(t->dtype, HAFM_DT_I32);
    assert_memory_equal(t->data, i32, sizeof i32);
    t = hafm_st_find(st, "f.i64");
    assert_memory_equal(t->data, i64, sizeof i64);
    assert_int_equal(hafm_st_read_f32(st, "c.u8", out, 1, s3), 0);
    assert_true(out[0] == 0 && out[1] == 7 && out[2] == 255);
    t = hafm_st_find(st, "g.empty");
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->nbytes, 0);
    t = hafm_st_find(st, "h.scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->numel, 1);
    assert_int_equal(hafm_st_read_f32(st, "h.scalar", out, 0, NULL), 0);
    assert_true(out[0] == f[2]);

    /* Header padded to a multiple of 8; each tensor aligned to its element size, no gaps. */
    size_t n;
    char *raw = slurp(path, &n);
    uint64_t hlen;
    memcpy(&hlen, raw, 8);
    assert_int_equal(hlen % 8, 0);
    const uint8_t *base = NULL;
    for (int i = 0; i < hafm_st_count(st); i++) {
        const uint8_t *d = hafm_st_get(st, i)->data;
        if (hafm_st_get(st, i)->nbytes && (!base || d < base)) base = d;
    }
    size_t covered = 0, top = 0;
    for (int i = 0; i < hafm_st_count(st); i++) {
        t = hafm_st_get(st, i);
        size_t off = (size_t)((const uint8_t *)t->data - base);
        if (!t->nbytes) continue;
        assert_int_equal(off % hafm_dtype_size(t->dtype), 0);
        assert_memory_equal(raw + 8 + hlen + off, t->data, t->nbytes);
        covered += t->nbytes;
        if (off + t->nbytes > top) top = off + t->nbytes;
    }
    assert_int_equal(top, n - 8 - hlen);
    assert_int_equal(covered, top);   /* no gap bytes: the reference reader requires it */
    assert_int_equal(covered, n - 8 - hlen);
    free(raw);
    hafm_st_close(st);
}

/* ---- corrupted files -------------------------------------------------------------------- */

/* A file image: u64 length of `json`, json, then ndata bytes of 0x3f. */
static uint8_t *image(const char *json, size_t ndata, size_t *n, uint64_t claimed_len) {
    size_t jl = strlen(json);
    *n = 8 + jl + ndata;
    uint8_t *b = malloc(*n);
    uint64_t hl = claimed_len ? claimed_len : jl;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hl >> (8 * i));
    memcpy(b + 8, json, jl);
    memset(b + 8 + jl, 0x3f, ndata);
    return b;
}

/* Opening the image must fail with a message naming the file and containing `want`. */
static void expect_fail(const char *json, size_t ndata, uint64_t claimed_len, const char *want) {
    size_t n;
    uint8_t *b = image(json, ndata, &n, claimed_len);
    hafm_safetensors *st = hafm_st_open_mem(b, n, "bad.safetensors");
    if (st) fail_msg("accepted: %s", json);
    const char *msg = hafm_last_error();
    if (strncmp(msg, "bad.safetensors: ", 17) != 0 || !strstr(msg, want))
        fail_msg("for %s: message '%s' lacks '%s'", json, msg, want);
    free(b);
}

static void test_valid_images(void **state) {
    size_t n;
    /* Gaps between tensors and trailing spaces after the JSON are allowed. */
    uint8_t *b = image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                       "\"b\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[0,3]}}   ", 16, &n, 0);
    hafm_safetensors *st = hafm_st_open_mem(b, n, "ok.safetensors");
    if (!st) fail_msg("%s", hafm_last_error());
    assert_int_equal(hafm_st_count(st), 2);
    assert_int_equal(hafm_st_meta_count(st), 0);
    int64_t s3[1] = {3};
    float out[3];
    assert_int_equal(hafm_st_read_f32(st, "b", out, 1, s3), 0);    /* I8 reads as signed bytes */
    const hafm_st_tensor *ti8 = hafm_st_find(st, "b");
    assert_int_equal(ti8->dtype, HAFM_DT_I8);
    for (int i = 0; i < 3; i++) assert_true(out[i] == (float)((const int8_t *)ti8->data)[i]);
    hafm_st_close(st);
    free(b);
    b = image("{}", 0, &n, 0);
    st = hafm_st_open_mem(b, n, "empty.safetensors");
    assert_non_null(st);
    assert_int_equal(hafm_st_count(st), 0);
    hafm_st_close(st);
    free(b);
}

static void test_corrupt(void **state) {
    const char *T = "\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}";
    char j[512];
    assert_null(hafm_st_open_mem("\x10\0\0\0\0", 5, "bad.safetensors"));
    assert_string_equal(hafm_last_error(), "bad.safetensors: 5 bytes, too short for a safetensors header");
    expect_fail("", 0, 0, "header is not a JSON object");
    expect_fail("{}", 0, 1000, "header length 1000 exceeds the file");
    expect_fail("{}", 0, (uint64_t)1 << 62, "exceeds the file");
    expect_fail("[1,2,3]", 0, 0, "header is not a JSON object");
    expect_fail("\"str\"", 0, 0, "header is not a JSON object");
    expect_fail("{\"t\":", 16, 0, "header is not valid JSON");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}} x", 16, 0, "bytes after the header");
    snprintf(j, sizeof j, "{%s}", T);
    expect_fail(j, 15, 0, "tensor 't': data_offsets [0, 16] outside the data section (15 bytes)");
    expect_fail("{\"t\":{\"dtype\":\"F33\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, 0, "tensor 't': unknown dtype 'F33'");
    expect_fail("{\"t\":{\"dtype\":7,\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, 0, "tensor 't': missing or non-string \"dtype\"");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 24, 0,
                "tensor 't': shape x F32 needs 24 bytes, data_offsets give 16");
    expect_fail("{\"t\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, 0, "needs 8 bytes");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2,2],\"data_offsets\":[0,16]}}", 16, 0, "tensor 't': shape[0] is not a non-negative integer");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[2.5,2],\"data_offsets\":[0,16]}}", 16, 0, "shape[0]");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1e300,1e300],\"data_offsets\":[0,16]}}", 16, 0, "shape[0]");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,16]}}", 16, 0, "overflows");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 16, 0, "9 dimensions");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 16, 0, "non-array \"shape\"");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 16, 0, "not an array [begin, end]");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 16, 0, "end before begin");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",8]}}", 16, 0, "not non-negative integers");
    expect_fail("{\"t\":[1,2]}", 16, 0, "tensor 't': entry is not a JSON object");
    snprintf(j, sizeof j, "{%s,\"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", T);
    expect_fail(j, 24, 0, "tensor 'u' [12, 20) overlaps tensor 't' [0, 16)");
    snprintf(j, sizeof j, "{\"u\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},%s}", T);
    expect_fail(j, 24, 0, "overlaps");
    snprintf(j, sizeof j, "{%s,%s}", T, T);
    expect_fail(j, 16, 0, "tensor 't' appears twice");
    snprintf(j, sizeof j, "{\"__metadata__\":{\"a\":1},%s}", T);
    expect_fail(j, 16, 0, "__metadata__ 'a' is not a string");
    snprintf(j, sizeof j, "{\"__metadata__\":[\"a\"],%s}", T);
    expect_fail(j, 16, 0, "__metadata__ is not a JSON object");
    expect_fail("{\"\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, 0, "empty name");

    assert_null(hafm_st_open_mem(NULL, 0, "null.safetensors"));
    assert_non_null(strstr(hafm_last_error(), "null.safetensors: empty file"));
}

static void test_corrupt_files(void **state) {
    /* A truncated copy of a golden file: the header claims more than is left. */
    size_t n;
    char *good = slurp(data_path("hubert_small_seed5_hf.safetensors"), &n);
    const char *path = tmp_path("trunc.safetensors");
    size_t cuts[4] = {3, 100, 6000, n - 1};
    for (int i = 0; i < 4; i++) {
        FILE *fp = fopen(path, "wb");
        fwrite(good, 1, cuts[i], fp);
        fclose(fp);
        assert_null(hafm_st_open(path));
        const char *msg = hafm_last_error();
        if (!strstr(msg, "trunc.safetensors: ")) fail_msg("message '%s' does not name the file", msg);
        if (i == 3 && !strstr(msg, "outside the data section")) fail_msg("cut at n-1: '%s'", msg);
    }
    free(good);
    assert_null(hafm_st_open(tmp_path("missing.safetensors")));
    assert_non_null(strstr(hafm_last_error(), "missing.safetensors: No such file or directory"));
    assert_null(hafm_st_open(tmpdir));
    assert_non_null(strstr(hafm_last_error(), "not a regular file"));
    FILE *fp = fopen(path, "wb");
    fclose(fp);
    assert_null(hafm_st_open(path));
    assert_non_null(strstr(hafm_last_error(), "empty file"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_encodec),
        cmocka_unit_test(test_golden_hubert),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_valid_images),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_corrupt_files),
    };
    return cmocka_run_group_tests_name("safetensors", tests, setup, teardown);
}
