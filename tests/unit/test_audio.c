/* test_audio.c - audio files (libsndfile), resampling (libsoxr), audio track events. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hafm/audio.h"

static char tmpdir[256];

static int setup(void **state) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/hafm_audio_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static uint32_t rng_state = 12345;
static uint32_t rng(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* ---- file round trips -------------------------------------------------------------------- */

static void test_wav_pcm16_round_trip(void **state) {
    const int rates[] = {8000, 16000, 22050, 24000, 44100, 48000}, chans[] = {1, 2, 6};
    for (int ri = 0; ri < 6; ri++)
        for (int ci = 0; ci < 3; ci++) {
            int rate = rates[ri], ch = chans[ci];
            int64_t frames = rate / 10 + 7;
            size_t n = (size_t)frames * (size_t)ch;
            int16_t *in = malloc(n * 2), *out = malloc((n + (size_t)ch) * 2);
            for (size_t i = 0; i < n; i++) in[i] = (int16_t)(rng() & 0xffff);
            in[0] = -32768;
            in[1 % n] = 32767;
            const char *path = tmp_path("pcm16.wav");
            hafm_sndwriter *w = hafm_sndwriter_open(path, rate, ch, HAFM_PCM16);
            if (!w) fail_msg("%s", hafm_last_error());
            /* Two chunks: the writer streams. */
            assert_int_equal(hafm_sndwriter_write_i16(w, in, frames / 3), 0);
            assert_int_equal(hafm_sndwriter_write_i16(w, in + (size_t)(frames / 3) * (size_t)ch, frames - frames / 3), 0);
            assert_int_equal(hafm_sndwriter_close(w), 0);
            hafm_sndreader *r = hafm_sndreader_open(path);
            if (!r) fail_msg("%s", hafm_last_error());
            assert_int_equal(hafm_sndreader_rate(r), rate);
            assert_int_equal(hafm_sndreader_channels(r), ch);
            assert_int_equal(hafm_sndreader_frames(r), frames);
            assert_int_equal(hafm_sndreader_format(r), HAFM_PCM16);
            int64_t got = 0, k;
            while ((k = hafm_sndreader_read_i16(r, out + got * ch, frames + 1 - got)) > 0) got += k;
            assert_int_equal(k, 0);
            assert_int_equal(got, frames);
            assert_memory_equal(in, out, n * 2);
            hafm_sndreader_close(r);
            /* As float: exactly k / 32768. */
            hafm_audio a;
            assert_int_equal(hafm_audio_read(path, &a), 0);
            assert_int_equal(a.frames, frames);
            for (size_t i = 0; i < n; i++) assert_true(a.data[i] == (float)in[i] / 32768.0f);
            /* And back through float: bit-exact again. */
            assert_int_equal(hafm_audio_write(tmp_path("pcm16b.wav"), &a, HAFM_PCM16), 0);
            hafm_audio_free(&a);
            r = hafm_sndreader_open(tmp_path("pcm16b.wav"));
            assert_non_null(r);
            assert_int_equal(hafm_sndreader_read_i16(r, out, frames), frames);
            assert_memory_equal(in, out, n * 2);
            hafm_sndreader_close(r);
            free(in);
            free(out);
        }
}

static void test_wav_float_round_trip(void **state) {
    const int rates[] = {8000, 16000, 22050, 24000, 44100, 48000}, chans[] = {1, 2, 6};
    for (int ri = 0; ri < 6; ri++)
        for (int ci = 0; ci < 3; ci++) {
            int rate = rates[ri], ch = chans[ci];
            int64_t frames = rate / 10 + 3;
            size_t n = (size_t)frames * (size_t)ch;
            hafm_audio a = {malloc(n * 4), frames, ch, rate}, b;
            for (size_t i = 0; i < n; i++) a.data[i] = ((float)(rng() & 0xffffff) / 8388608.0f - 1.0f) * 1.25f;
            a.data[0] = 1.5f;   /* float files keep values beyond full scale */
            assert_int_equal(hafm_audio_write(tmp_path("f.wav"), &a, HAFM_FLOAT32), 0);
            assert_int_equal(hafm_audio_read(tmp_path("f.wav"), &b), 0);
            assert_int_equal(b.frames, frames);
            assert_int_equal(b.channels, ch);
            assert_int_equal(b.sample_rate, rate);
            assert_memory_equal(a.data, b.data, n * 4);
            hafm_sndreader *r = hafm_sndreader_open(tmp_path("f.wav"));
            assert_int_equal(hafm_sndreader_format(r), HAFM_FLOAT32);
            hafm_sndreader_close(r);
            hafm_audio_free(&a);
            hafm_audio_free(&b);
        }
}

static void test_pcm24_and_clipping(void **state) {
    int64_t frames = 1000;
    hafm_audio a = {malloc(1000 * 4), frames, 1, 16000}, b;
    for (int i = 0; i < 1000; i++) a.data[i] = (float)((int32_t)(rng() & 0xffffff) - 8388608) / 8388608.0f;
    a.data[0] = -1.0f;
    assert_int_equal(hafm_audio_write(tmp_path("p24.wav"), &a, HAFM_PCM24), 0);
    assert_int_equal(hafm_audio_read(tmp_path("p24.wav"), &b), 0);
    hafm_sndreader *r = hafm_sndreader_open(tmp_path("p24.wav"));
    assert_int_equal(hafm_sndreader_format(r), HAFM_PCM24);
    hafm_sndreader_close(r);
    assert_memory_equal(a.data, b.data, 1000 * 4);
    hafm_audio_free(&b);
    /* Out-of-range floats clip to full scale instead of wrapping. */
    a.data[0] = 2.0f;
    a.data[1] = -3.0f;
    a.data[2] = 1.0f;
    assert_int_equal(hafm_audio_write(tmp_path("clip.wav"), &a, HAFM_PCM16), 0);
    r = hafm_sndreader_open(tmp_path("clip.wav"));
    int16_t s[3];
    assert_int_equal(hafm_sndreader_read_i16(r, s, 3), 3);
    assert_int_equal(s[0], 32767);
    assert_int_equal(s[1], -32768);
    assert_int_equal(s[2], 32767);
    hafm_sndreader_close(r);
    hafm_audio_free(&a);
}

static void test_flac_round_trip(void **state) {
    int64_t frames = 22050;
    int ch = 2;
    int16_t *in = malloc((size_t)frames * 2 * 2), *out = malloc((size_t)frames * 2 * 2);
    for (int64_t i = 0; i < frames * ch; i++) in[i] = (int16_t)(10000 * sin(0.01 * (double)i) + (rng() & 63));
    hafm_sndwriter *w = hafm_sndwriter_open(tmp_path("x.flac"), 22050, ch, HAFM_PCM16);
    if (!w) fail_msg("%s", hafm_last_error());
    assert_int_equal(hafm_sndwriter_write_i16(w, in, frames), 0);
    assert_int_equal(hafm_sndwriter_close(w), 0);
    FILE *fp = fopen(tmp_path("x.flac"), "rb");
    char magic[4];
    assert_int_equal(fread(magic, 1, 4, fp), 4);
    fclose(fp);
    assert_memory_equal(magic, "fLaC", 4);
    hafm_sndreader *r = hafm_sndreader_open(tmp_path("x.flac"));
    if (!r) fail_msg("%s", hafm_last_error());
    assert_int_equal(hafm_sndreader_format(r), HAFM_PCM16);
    assert_int_equal(hafm_sndreader_read_i16(r, out, frames), frames);
    assert_memory_equal(in, out, (size_t)frames * 4);
    hafm_sndreader_close(r);
    assert_null(hafm_sndwriter_open(tmp_path("y.flac"), 22050, ch, HAFM_FLOAT32));
    assert_non_null(strstr(hafm_last_error(), "cannot hold float samples"));
    struct stat sb;
    assert_int_equal(stat(tmp_path("y.flac"), &sb), -1);
    free(in);
    free(out);
}

/* A writer that is aborted leaves no file and no temporary. */
static void test_abort_leaves_nothing(void **state) {
    hafm_sndwriter *w = hafm_sndwriter_open(tmp_path("gone.wav"), 8000, 1, HAFM_PCM16);
    assert_non_null(w);
    int16_t z[100] = {0};
    assert_int_equal(hafm_sndwriter_write_i16(w, z, 100), 0);
    hafm_sndwriter_abort(w);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s' | grep gone)\"", tmpdir);
    assert_int_equal(system(cmd), 0);
}

static void test_bad_files(void **state) {
    hafm_audio a;
    FILE *fp = fopen(tmp_path("empty.wav"), "wb");
    fclose(fp);
    assert_int_equal(hafm_audio_read(tmp_path("empty.wav"), &a), -1);
    assert_non_null(strstr(hafm_last_error(), "empty.wav: empty file"));

    /* A valid header with no samples. */
    hafm_sndwriter *w = hafm_sndwriter_open(tmp_path("nosamples.wav"), 8000, 1, HAFM_PCM16);
    assert_int_equal(hafm_sndwriter_close(w), 0);
    assert_int_equal(hafm_audio_read(tmp_path("nosamples.wav"), &a), -1);
    assert_non_null(strstr(hafm_last_error(), "nosamples.wav: no audio samples"));

    /* A corrupt header: RIFF/WAVE with a garbage fmt chunk. */
    static const unsigned char bad[] = "RIFF\x40\0\0\0WAVEfmt \x10\0\0\0\xff\xff\0\0\0\0\0\0\0\0\0\0\0\0\0\0data\x10\0\0\0"
                                       "0123456789abcdef";
    fp = fopen(tmp_path("bad.wav"), "wb");
    fwrite(bad, 1, sizeof bad - 1, fp);
    fclose(fp);
    assert_int_equal(hafm_audio_read(tmp_path("bad.wav"), &a), -1);
    assert_non_null(strstr(hafm_last_error(), "bad.wav: not a readable audio file: "));
    fp = fopen(tmp_path("text.wav"), "wb");
    fputs("this is not audio at all, just some text\n", fp);
    fclose(fp);
    assert_int_equal(hafm_audio_read(tmp_path("text.wav"), &a), -1);
    assert_non_null(strstr(hafm_last_error(), "text.wav: not a readable audio file"));
    assert_int_equal(hafm_audio_read(tmp_path("missing.wav"), &a), -1);
    assert_non_null(strstr(hafm_last_error(), "missing.wav: No such file or directory"));
    assert_int_equal(hafm_audio_read(tmpdir, &a), -1);
    assert_non_null(strstr(hafm_last_error(), "is a directory"));
}

/* Reading from a FIFO: WAV streams through the pump thread, FLAC is spooled to memory. */
static void fifo_read(const char *file, int64_t frames, int ch, const int16_t *want) {
    const char *fifo = tmp_path("fifo");
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    char src[512];
    snprintf(src, sizeof src, "%s", file);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *in = fopen(src, "rb"), *out = fopen(fifo, "wb");
        char buf[1000];
        size_t n;
        while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
        _exit(out && fclose(out) == 0 ? 0 : 1);
    }
    hafm_sndreader *r = hafm_sndreader_open(fifo);
    if (!r) fail_msg("%s", hafm_last_error());
    assert_int_equal(hafm_sndreader_channels(r), ch);
    int16_t *out = malloc((size_t)(frames + 997) * (size_t)ch * 2);
    int64_t got = 0, k;
    while ((k = hafm_sndreader_read_i16(r, out + got * ch, 997)) > 0) got += k;
    assert_int_equal(got, frames);
    assert_memory_equal(out, want, (size_t)frames * (size_t)ch * 2);
    hafm_sndreader_close(r);
    free(out);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_fifo_input(void **state) {
    int64_t frames = 30000;
    int ch = 2;
    int16_t *in = malloc((size_t)frames * 4);
    for (int64_t i = 0; i < frames * ch; i++) in[i] = (int16_t)(rng() & 0xffff);
    const char *wav = tmp_path("fifo_src.wav"), *flac = tmp_path("fifo_src.flac");
    hafm_sndwriter *w = hafm_sndwriter_open(wav, 16000, ch, HAFM_PCM16);
    assert_int_equal(hafm_sndwriter_write_i16(w, in, frames), 0);
    assert_int_equal(hafm_sndwriter_close(w), 0);
    w = hafm_sndwriter_open(flac, 16000, ch, HAFM_PCM16);
    assert_int_equal(hafm_sndwriter_write_i16(w, in, frames), 0);
    assert_int_equal(hafm_sndwriter_close(w), 0);
    char wavp[512], flacp[512];
    snprintf(wavp, sizeof wavp, "%s", wav);
    snprintf(flacp, sizeof flacp, "%s", flac);
    fifo_read(wavp, frames, ch, in);
    fifo_read(flacp, frames, ch, in);
    free(in);
}

/* ---- conversion ------------------------------------------------------------------------- */

/* Amplitude of the f Hz component over x[0..n) (n spanning whole periods) and the energy of
 * what is left after removing that sinusoid, relative to the signal's energy. */
static void sine_fit(const float *x, int64_t n, double f, double rate, double *amp, double *resid_ratio) {
    double re = 0, im = 0, e = 0;
    for (int64_t i = 0; i < n; i++) {
        double w = 2 * M_PI * f * (double)i / rate;
        re += x[i] * cos(w);
        im += x[i] * sin(w);
        e += (double)x[i] * x[i];
    }
    re *= 2.0 / (double)n;
    im *= 2.0 / (double)n;
    double r = 0;
    for (int64_t i = 0; i < n; i++) {
        double w = 2 * M_PI * f * (double)i / rate, d = x[i] - (re * cos(w) + im * sin(w));
        r += d * d;
    }
    *amp = sqrt(re * re + im * im);
    *resid_ratio = r / e;
}

static void test_resample_sine(void **state) {
    int in_rate = 44100, out_rate = 24000;
    int64_t frames = 2 * in_rate;
    hafm_audio a = {malloc((size_t)frames * 4), frames, 1, in_rate}, b;
    for (int64_t i = 0; i < frames; i++) a.data[i] = (float)(0.5 * sin(2 * M_PI * 1000.0 * (double)i / in_rate + 0.3));
    assert_int_equal(hafm_audio_resample(&a, out_rate, &b), 0);
    assert_int_equal(b.sample_rate, out_rate);
    assert_int_equal(b.channels, 1);
    assert_int_equal(b.frames, 2 * out_rate);
    /* The middle second (away from the filter's edges): 1000 whole periods of 24 samples. */
    double amp, resid;
    sine_fit(b.data + out_rate / 2, out_rate, 1000.0, out_rate, &amp, &resid);
    double db = 20 * log10(amp / 0.5);
    printf("OK (resample 44.1k->24k 1 kHz) gain=%.5f dB residual=%.1f dB\n", db, 10 * log10(resid));
    assert_true(fabs(db) < 0.1);
    assert_true(resid < 1e-7);   /* everything but the 1 kHz line is below -70 dB */
    /* Same rate: a copy. */
    hafm_audio c;
    assert_int_equal(hafm_audio_resample(&a, in_rate, &c), 0);
    assert_int_equal(c.frames, frames);
    assert_memory_equal(c.data, a.data, (size_t)frames * 4);
    hafm_audio_free(&a);
    hafm_audio_free(&b);
    hafm_audio_free(&c);
}

static void test_resample_streaming(void **state) {
    const int pairs[][2] = {{44100, 24000}, {16000, 48000}, {48000, 16000}, {22050, 16000}};
    for (int p = 0; p < 4; p++) {
        int ch = p % 2 ? 2 : 1;
        int64_t frames = pairs[p][0] + 123;
        hafm_audio a = {malloc((size_t)frames * (size_t)ch * 4), frames, ch, pairs[p][0]}, whole;
        for (int64_t i = 0; i < frames * ch; i++) a.data[i] = (float)((double)(rng() & 0xffff) / 65536.0 - 0.5);
        assert_int_equal(hafm_audio_resample(&a, pairs[p][1], &whole), 0);
        hafm_resampler *rs = hafm_resampler_new(pairs[p][0], pairs[p][1], ch);
        assert_non_null(rs);
        float *chunk = NULL, *all = malloc((size_t)(whole.frames + 16) * (size_t)ch * 4);
        int64_t cap = 0, done = 0, pos = 0;
        const int64_t sizes[] = {1, 17, 1000, 4410, 3, 8191};
        for (int k = 0; pos < frames; k++) {
            int64_t len = sizes[k % 6] < frames - pos ? sizes[k % 6] : frames - pos;
            int64_t got = hafm_resampler_process(rs, a.data + pos * ch, len, &chunk, &cap);
            assert_true(got >= 0 && done + got <= whole.frames);
            memcpy(all + done * ch, chunk, (size_t)(got * ch) * 4);
            done += got;
            pos += len;
        }
        int64_t got = hafm_resampler_process(rs, NULL, 0, &chunk, &cap);
        assert_true(got >= 0 && done + got <= whole.frames);
        memcpy(all + done * ch, chunk, (size_t)(got * ch) * 4);
        done += got;
        assert_int_equal(done, whole.frames);
        double md = 0;
        for (int64_t i = 0; i < done * ch; i++) md = fmax(md, fabs(all[i] - whole.data[i]));
        printf("OK (streaming resampler %d->%d, %d ch) frames=%lld max_diff=%.3g\n", pairs[p][0], pairs[p][1],
               ch, (long long)done, md);
        assert_true(md <= 1e-6);
        assert_int_equal(done, (int64_t)llround((double)frames * pairs[p][1] / pairs[p][0]));
        hafm_resampler_free(rs);
        free(chunk);
        free(all);
        hafm_audio_free(&a);
        hafm_audio_free(&whole);
    }
    assert_null(hafm_resampler_new(0, 16000, 1));
}

static void test_mono_and_prepare(void **state) {
    hafm_audio a = {malloc(6 * 4), 3, 2, 16000}, m;
    float v[6] = {1.0f, 0.0f, 0.5f, -0.5f, -1.0f, 0.25f};
    memcpy(a.data, v, sizeof v);
    assert_int_equal(hafm_audio_to_mono(&a, &m), 0);
    assert_int_equal(m.channels, 1);
    assert_int_equal(m.frames, 3);
    assert_true(m.data[0] == 0.5f && m.data[1] == 0.0f && m.data[2] == -0.375f);
    hafm_audio_free(&m);
    assert_int_equal(hafm_audio_to_mono(&a, &a), 0);   /* in place */
    assert_int_equal(a.channels, 1);
    assert_true(a.data[2] == -0.375f);
    hafm_audio_free(&a);

    hafm_audio s = {malloc(48000 * 2 * 4), 48000, 2, 48000}, p;
    for (int i = 0; i < 48000; i++) {
        s.data[2 * i] = (float)(0.4 * sin(2 * M_PI * 500.0 * i / 48000));
        s.data[2 * i + 1] = s.data[2 * i];
    }
    assert_int_equal(hafm_audio_prepare(&s, 16000, &p), 0);
    assert_int_equal(p.channels, 1);
    assert_int_equal(p.sample_rate, 16000);
    assert_int_equal(p.frames, 16000);
    double amp, resid;
    sine_fit(p.data + 4000, 8000, 500.0, 16000, &amp, &resid);
    assert_true(fabs(20 * log10(amp / 0.4)) < 0.1);
    hafm_audio_free(&s);
    hafm_audio_free(&p);
}

/* ---- stream events ------------------------------------------------------------------------ */

static void test_append_event(void **state) {
    hafm_track t;
    memset(&t, 0, sizeof t);
    strcpy(t.name, "audio");
    t.kind = HAFM_KIND_AUDIO;
    t.dtype = HAFM_DT_I16;
    t.ndim = 1;
    t.shape[0] = 2;
    t.channels = 2;
    t.sample_rate = 24000;
    t.rate = 24000;
    /* Little-endian payload, deliberately misaligned. */
    unsigned char raw[1 + 8] = {0, 0x00, 0x80, 0xff, 0x7f, 0x00, 0x40, 0x01, 0x00};
    hafm_event ev = {.type = HAFM_EV_DATA, .track = &t, .frames = 2, .data = raw + 1, .nbytes = 8};
    hafm_audio a = {0};
    assert_int_equal(hafm_audio_append_event(&a, &ev), 0);
    assert_int_equal(a.frames, 2);
    assert_int_equal(a.channels, 2);
    assert_int_equal(a.sample_rate, 24000);
    assert_true(a.data[0] == -1.0f && a.data[1] == 32767.0f / 32768 && a.data[2] == 0.5f && a.data[3] == 1.0f / 32768);
    /* i32 and f32 chunks append to the same buffer. */
    t.dtype = HAFM_DT_I32;
    int32_t i32[2] = {INT32_MIN, 1 << 30};
    ev.data = i32;
    ev.frames = 1;
    ev.nbytes = 8;
    assert_int_equal(hafm_audio_append_event(&a, &ev), 0);
    assert_true(a.data[4] == -1.0f && a.data[5] == 0.5f);
    t.dtype = HAFM_DT_F32;
    float f[2] = {0.25f, -0.125f};
    ev.data = f;
    assert_int_equal(hafm_audio_append_event(&a, &ev), 0);
    assert_int_equal(a.frames, 4);
    assert_true(a.data[6] == 0.25f && a.data[7] == -0.125f);
    /* Wrong payload size, wrong kind, different channel count. */
    ev.nbytes = 7;
    assert_int_equal(hafm_audio_append_event(&a, &ev), -1);
    assert_non_null(strstr(hafm_last_error(), "track 'audio': payload of 7 bytes for 1 frames"));
    ev.nbytes = 8;
    t.kind = HAFM_KIND_FEATURES;
    assert_int_equal(hafm_audio_append_event(&a, &ev), -1);
    t.kind = HAFM_KIND_AUDIO;
    t.channels = 1;
    ev.nbytes = 4;
    assert_int_equal(hafm_audio_append_event(&a, &ev), -1);
    assert_non_null(strstr(hafm_last_error(), "1 channels at 24000 Hz, appending to 2 channels"));
    hafm_audio_free(&a);
}

static void test_input_is_stream(void **state) {
    const unsigned char stream[] = {0x84, 0xa4, 't', 'y', 'p', 'e'};
    FILE *fp = fmemopen((void *)stream, sizeof stream, "rb");
    assert_int_equal(hafm_input_is_stream(fp), 1);
    assert_int_equal(getc(fp), 0x84);   /* nothing consumed */
    assert_int_equal(getc(fp), 0xa4);
    fclose(fp);
    const char wav[] = "RIFF....WAVE";
    fp = fmemopen((void *)wav, 12, "rb");
    assert_int_equal(hafm_input_is_stream(fp), 0);
    assert_int_equal(getc(fp), 'R');
    fclose(fp);
    fp = fmemopen((void *)wav, 0, "rb");
    assert_int_equal(hafm_input_is_stream(fp), 0);
    fclose(fp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wav_pcm16_round_trip),
        cmocka_unit_test(test_wav_float_round_trip),
        cmocka_unit_test(test_pcm24_and_clipping),
        cmocka_unit_test(test_flac_round_trip),
        cmocka_unit_test(test_abort_leaves_nothing),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_fifo_input),
        cmocka_unit_test(test_resample_sine),
        cmocka_unit_test(test_resample_streaming),
        cmocka_unit_test(test_mono_and_prepare),
        cmocka_unit_test(test_append_event),
        cmocka_unit_test(test_input_is_stream),
    };
    return cmocka_run_group_tests_name("audio", tests, setup, teardown);
}
