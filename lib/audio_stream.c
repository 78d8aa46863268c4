/* audio_stream.c - audio files <-> audio tracks, one chunk (about a second) at a time. */
#include "hafm/audio_stream.h"

#include <stdlib.h>
#include <string.h>

void hafm_audio_key_from_path(char *key, size_t cap, const char *path) {
    if (strcmp(path, "-") == 0) {
        snprintf(key, cap, "stdin");
        return;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (n > HAFM_MAX_KEY) n = HAFM_MAX_KEY;
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)base[i];
        key[i] = c <= 0x20 || c == 0x7f ? '_' : (char)c;
    }
    key[n] = 0;
}

/* Reads the next chunk as i16 (exact) or float, mixed down to mono when asked. */
static int64_t read_chunk(hafm_sndreader *r, int as_i16, int mono, int16_t *s16, float *f32, int64_t max) {
    if (as_i16) return hafm_sndreader_read_i16(r, s16, max);
    int64_t got = hafm_sndreader_read_f32(r, f32, max);
    int ch = hafm_sndreader_channels(r);
    if (got > 0 && mono && ch > 1)
        for (int64_t t = 0; t < got; t++) {
            float s = 0;
            for (int c = 0; c < ch; c++) s += f32[t * ch + c];
            f32[t] = s / (float)ch;
        }
    return got;
}

int hafm_audio_import_item(hafm_writer *w, const char *path, const char *key, const hafm_audio_import *opt) {
    hafm_sndreader *r = hafm_sndreader_open(path);
    if (!r) return -1;
    const char *name = strcmp(path, "-") == 0 ? "stdin" : path;
    int in_rate = hafm_sndreader_rate(r), in_ch = hafm_sndreader_channels(r);
    int out_rate = opt->out_rate > 0 ? opt->out_rate : in_rate;
    int out_ch = opt->mono ? 1 : in_ch;
    int resample = out_rate != in_rate;
    int as_i16 = hafm_sndreader_format(r) == HAFM_PCM16 && !resample && out_ch == in_ch;
    int64_t chunk = in_rate;   /* one second */
    int16_t *s16 = as_i16 ? malloc((size_t)chunk * (size_t)in_ch * sizeof *s16) : NULL;
    float *f32 = as_i16 ? NULL : malloc((size_t)chunk * (size_t)in_ch * sizeof *f32);
    float *rs_out = NULL;
    int64_t rs_cap = 0;
    hafm_resampler *rs = NULL;
    int rc = -1;
    if (!s16 && !f32) { hafm_error("%s: out of memory", name); goto out; }
    if (resample && !(rs = hafm_resampler_new(in_rate, out_rate, out_ch))) goto out;

    int64_t got = read_chunk(r, as_i16, opt->mono, s16, f32, chunk);
    if (got < 0) goto out;
    if (got == 0) { hafm_error("%s: no audio samples", name); goto out; }

    hafm_track t;
    hafm_track_init_audio(&t, opt->track_name ? opt->track_name : "audio", as_i16 ? HAFM_DT_I16 : HAFM_DT_F32,
                          out_rate, out_ch);
    if (!resample) t.frames = hafm_sndreader_frames(r);
    const char *base = strrchr(name, '/');
    int ok = hafm_track_set_producer(&t, opt->tool ? opt->tool : "hafm", HAFM_VERSION) == 0 &&
             hafm_track_param_str(&t, "file", base ? base + 1 : name) == 0 &&
             (!opt->out_rate || hafm_track_param_int(&t, "rate", out_rate) == 0) &&
             (!opt->mono || hafm_track_param_int(&t, "mono", 1) == 0);
    if (!ok || hafm_write_item(w, key) < 0 || hafm_write_track(w, &t) < 0) {
        hafm_track_free(&t);
        goto out;
    }
    int id = t.id;
    hafm_track_free(&t);
    int64_t total = 0;
    while (got > 0) {
        int wrc;
        if (as_i16) {
            wrc = hafm_write_data(w, id, s16, got);   /* int16 in memory is little-endian here */
            total += got;
        } else if (rs) {
            int64_t n = hafm_resampler_process(rs, f32, got, &rs_out, &rs_cap);
            wrc = n < 0 ? -1 : hafm_write_data_f32(w, id, rs_out, n);
            total += n > 0 ? n : 0;
        } else {
            wrc = hafm_write_data_f32(w, id, f32, got);
            total += got;
        }
        if (wrc < 0) goto out;
        got = read_chunk(r, as_i16, opt->mono, s16, f32, chunk);
    }
    if (got < 0) goto out;
    if (rs) {
        int64_t n = hafm_resampler_process(rs, NULL, 0, &rs_out, &rs_cap);
        if (n < 0 || hafm_write_data_f32(w, id, rs_out, n) < 0) goto out;
    }
    if (hafm_write_end(w, id, -1, 0) < 0 || hafm_write_item_end(w) < 0) goto out;
    rc = 0;
out:
    hafm_resampler_free(rs);
    free(rs_out);
    free(s16);
    free(f32);
    hafm_sndreader_close(r);
    return rc;
}

hafm_sndwriter *hafm_sndwriter_for_track(const char *path, const hafm_track *t, hafm_sample_format fmt) {
    if (t->kind != HAFM_KIND_AUDIO) {
        hafm_error("track '%s': kind %s, expected audio", t->name, hafm_kind_name(t->kind));
        return NULL;
    }
    if (t->dtype != HAFM_DT_I16 && t->dtype != HAFM_DT_I32 && t->dtype != HAFM_DT_F32) {
        hafm_error("track '%s': dtype %s, expected i16, i32 or f32", t->name, hafm_dtype_name(t->dtype));
        return NULL;
    }
    if (!fmt) fmt = t->dtype == HAFM_DT_I16 ? HAFM_PCM16 : HAFM_FLOAT32;
    return hafm_sndwriter_open(path, t->sample_rate, t->channels, fmt);
}

int hafm_sndwriter_write_event(hafm_sndwriter *w, const hafm_event *ev) {
    const hafm_track *t = ev->track;
    size_t n = (size_t)ev->frames * (size_t)t->channels;
    if (ev->frames == 0) return 0;
    if (t->dtype == HAFM_DT_I16) {
        int16_t *s = malloc(n * sizeof *s);
        if (!s) { hafm_error("track '%s': out of memory", t->name); return -1; }
        memcpy(s, ev->data, n * sizeof *s);   /* the payload may be unaligned */
        int rc = hafm_sndwriter_write_i16(w, s, ev->frames);
        free(s);
        return rc;
    }
    float *f = malloc(n * sizeof *f);
    if (!f) { hafm_error("track '%s': out of memory", t->name); return -1; }
    if (t->dtype == HAFM_DT_F32) {
        memcpy(f, ev->data, n * sizeof *f);
    } else {
        const unsigned char *p = ev->data;
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            f[i] = (float)((double)v / 2147483648.0);
        }
    }
    int rc = hafm_sndwriter_write_f32(w, f, ev->frames);
    free(f);
    return rc;
}
