/* test_common.c - errors, option parsing, dtype conversions, atomic output files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "hafm.h"

static void test_error_strerror_suffix(void **state)
{
    (void)state;
    errno = ENOENT;
    hafm_error("open %s:", "x.wav");
    assert_string_equal(hafm_last_error(), "open x.wav: No such file or directory");
    hafm_error("track '%s' missing", "codes");
    hafm_error_prefix("item %s", "song1");
    assert_string_equal(hafm_last_error(), "item song1: track 'codes' missing");
}

static void test_parse_ranges(void **state)
{
    (void)state;
    long l;
    double d;
    assert_int_equal(hafm_parse_long("12", 1, 12, &l), 0);
    assert_int_equal(l, 12);
    assert_int_equal(hafm_parse_long("13", 1, 12, &l), -1);
    assert_int_equal(hafm_parse_long("1x", 1, 12, &l), -1);
    assert_int_equal(hafm_parse_long("", 1, 12, &l), -1);
    assert_int_equal(hafm_parse_long("99999999999999999999", 0, 10, &l), -1);
    assert_int_equal(hafm_parse_double("0.9", 0, 1, &d), 0);
    assert_true(fabs(d - 0.9) < 1e-15);
    assert_int_equal(hafm_parse_double("nan", -1e9, 1e9, &d), -1);
    assert_int_equal(hafm_parse_double("1.5e", 0, 10, &d), -1);
}

static void test_dtype_names(void **state)
{
    (void)state;
    const char *names[] = { "u8", "i16", "u16", "i32", "i64", "f16", "bf16", "f32", "f64" };
    const size_t sizes[] = { 1, 2, 2, 4, 8, 2, 2, 4, 8 };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        hafm_dtype t = hafm_dtype_from_name(names[i]);
        assert_int_not_equal(t, HAFM_DT_INVALID);
        assert_string_equal(hafm_dtype_name(t), names[i]);
        assert_int_equal(hafm_dtype_size(t), sizes[i]);
    }
    assert_int_equal(hafm_dtype_from_name("f128"), HAFM_DT_INVALID);
}

/* Every binary16 value converts to float and back to itself (NaNs stay NaN). */
static void test_f16_exhaustive(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = hafm_f16_to_f32((uint16_t)h);
        if (isnan(f)) { assert_true(isnan(hafm_f16_to_f32(hafm_f32_to_f16(f)))); continue; }
        assert_int_equal(hafm_f32_to_f16(f), h);
    }
    /* known values and round-to-nearest-even */
    assert_int_equal(hafm_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(hafm_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(hafm_f32_to_f16(65520.0f), 0x7c00);             /* rounds to inf */
    assert_int_equal(hafm_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);   /* tie -> even */
    assert_int_equal(hafm_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);   /* tie -> even (up) */
    assert_int_equal(hafm_f32_to_f16(5.9604645e-08f), 0x0001);       /* smallest subnormal */
    assert_int_equal(hafm_f32_to_f16(2.9802322e-08f), 0x0000);       /* half of it: tie -> even 0 */
    assert_int_equal(hafm_f32_to_f16(-0.0f), 0x8000);
}

static void test_bf16(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = hafm_bf16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        assert_int_equal(hafm_f32_to_bf16(f), h);
    }
    assert_int_equal(hafm_f32_to_bf16(1.0f), 0x3f80);
    float tie;                                    /* 1 + 2^-8: halfway between 0x3f80 and 0x3f81 */
    uint32_t x = 0x3f808000u;
    memcpy(&tie, &x, 4);
    assert_int_equal(hafm_f32_to_bf16(tie), 0x3f80);
    x = 0x3f818000u;
    memcpy(&tie, &x, 4);
    assert_int_equal(hafm_f32_to_bf16(tie), 0x3f82);
}

static void test_convert_unaligned(void **state)
{
    (void)state;
    unsigned char buf[1 + 4 * sizeof(int16_t)];
    int16_t v[4] = { -32768, -1, 0, 32767 };
    memcpy(buf + 1, v, sizeof v);                /* deliberately unaligned */
    float f[4];
    int32_t i[4];
    hafm_convert_to_f32(f, buf + 1, HAFM_DT_I16, 4);
    hafm_convert_to_i32(i, buf + 1, HAFM_DT_I16, 4);
    for (int k = 0; k < 4; k++) {
        assert_true(f[k] == (float)v[k]);
        assert_int_equal(i[k], v[k]);
    }
    float big[3] = { 3e9f, -3e9f, 2.5f };
    hafm_convert_to_i32(i, big, HAFM_DT_F32, 3);
    assert_int_equal(i[0], INT32_MAX);
    assert_int_equal(i[1], INT32_MIN);
    assert_int_equal(i[2], 2);                   /* lrint: nearest even */
}

static void test_outfile_commit_and_abort(void **state)
{
    (void)state;
    char dir[] = "/tmp/hafm-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/out.bin", dir);

    hafm_outfile *f = hafm_outfile_open(path);
    assert_non_null(f);
    fputs("partial", hafm_outfile_fp(f));
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);            /* nothing at the final path yet */
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s", hafm_outfile_tmpname(f));
    hafm_outfile_abort(f);
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_not_equal(stat(tmp, &st), 0);            /* temporary removed */

    f = hafm_outfile_open(path);
    assert_non_null(f);
    fputs("complete", hafm_outfile_fp(f));
    assert_int_equal(hafm_outfile_commit(f), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 8);
    unlink(path);

    snprintf(path, sizeof path, "%s/no/such/dir/out.bin", dir);
    assert_null(hafm_outfile_open(path));
    assert_non_null(strstr(hafm_last_error(), "No such file or directory"));
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_strerror_suffix),
        cmocka_unit_test(test_parse_ranges),
        cmocka_unit_test(test_dtype_names),
        cmocka_unit_test(test_f16_exhaustive),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_convert_unaligned),
        cmocka_unit_test(test_outfile_commit_and_abort),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
