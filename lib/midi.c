/* midi.c - Standard MIDI File writer (see hafm/midi.h). */
#include "hafm/midi.h"
#include "hafm/common.h"

#include <stdlib.h>
#include <string.h>

/* Ordering class of an event among those at the same tick. */
enum { ORDER_META = 0, ORDER_CONTROL = 1, ORDER_NOTE_OFF = 2, ORDER_NOTE_ON = 3 };

typedef struct {
    int64_t tick;
    int order;
    int64_t seq;          /* insertion number: ties keep the order of the calls */
    uint8_t bytes[8];     /* status and data, or 0xFF type len data for short metas */
    int len;
} smf_event;

typedef struct {
    char *name;
    smf_event *ev;
    size_t n, cap;
} smf_track;

struct hafm_smf {
    int ppq;
    smf_track *tracks;
    int n_tracks;
    int64_t end_tick;
    int64_t seq;
};

hafm_smf *hafm_smf_new(int ppq)
{
    hafm_smf *m = hafm_xcalloc(1, sizeof *m);
    m->ppq = ppq < 1 ? 1 : ppq > 32767 ? 32767 : ppq;
    return m;
}

void hafm_smf_free(hafm_smf *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_tracks; i++) {
        free(m->tracks[i].name);
        free(m->tracks[i].ev);
    }
    free(m->tracks);
    free(m);
}

int hafm_smf_add_track(hafm_smf *m, const char *name)
{
    m->tracks = hafm_xrealloc(m->tracks, (size_t)(m->n_tracks + 1) * sizeof *m->tracks);
    smf_track *t = &m->tracks[m->n_tracks];
    memset(t, 0, sizeof *t);
    t->name = hafm_xstrdup(name ? name : "");
    return m->n_tracks++;
}

static int clamp7(int v) { return v < 0 ? 0 : v > 127 ? 127 : v; }

static void push(hafm_smf *m, int track, int64_t tick, int order, const uint8_t *bytes, int len)
{
    if (track < 0 || track >= m->n_tracks)
        return;
    smf_track *t = &m->tracks[track];
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->ev = hafm_xrealloc(t->ev, t->cap * sizeof *t->ev);
    }
    smf_event *e = &t->ev[t->n++];
    e->tick = tick < 0 ? 0 : tick;
    e->order = order;
    e->seq = m->seq++;
    memcpy(e->bytes, bytes, (size_t)len);
    e->len = len;
}

void hafm_smf_tempo(hafm_smf *m, int track, int64_t tick, double quarter_bpm)
{
    uint32_t us = (uint32_t)(60e6 / quarter_bpm + 0.5);
    uint8_t b[6] = { 0xFF, 0x51, 3, (uint8_t)(us >> 16), (uint8_t)(us >> 8), (uint8_t)us };
    push(m, track, tick, ORDER_META, b, 6);
}

void hafm_smf_time_signature(hafm_smf *m, int track, int64_t tick, int num, int den, int click_clocks)
{
    int pow2 = 0;
    while ((1 << pow2) < den && pow2 < 7)
        pow2++;
    uint8_t b[7] = { 0xFF, 0x58, 4, (uint8_t)num, (uint8_t)pow2, (uint8_t)click_clocks, 8 };
    push(m, track, tick, ORDER_META, b, 7);
}

void hafm_smf_key_signature(hafm_smf *m, int track, int64_t tick, int sharps, int minor)
{
    uint8_t b[5] = { 0xFF, 0x59, 2, (uint8_t)(int8_t)sharps, (uint8_t)(minor != 0) };
    push(m, track, tick, ORDER_META, b, 5);
}

void hafm_smf_program(hafm_smf *m, int track, int64_t tick, int channel, int program)
{
    uint8_t b[2] = { (uint8_t)(0xC0 | (channel & 15)), (uint8_t)clamp7(program) };
    push(m, track, tick, ORDER_CONTROL, b, 2);
}

void hafm_smf_control(hafm_smf *m, int track, int64_t tick, int channel, int controller, int value)
{
    uint8_t b[3] = { (uint8_t)(0xB0 | (channel & 15)), (uint8_t)clamp7(controller), (uint8_t)clamp7(value) };
    push(m, track, tick, ORDER_CONTROL, b, 3);
}

void hafm_smf_note(hafm_smf *m, int track, int64_t tick, int64_t dur, int channel, int pitch, int velocity)
{
    if (dur < 1)
        dur = 1;
    uint8_t on[3] = { (uint8_t)(0x90 | (channel & 15)), (uint8_t)clamp7(pitch), (uint8_t)(velocity < 1 ? 1 : clamp7(velocity)) };
    uint8_t off[3] = { (uint8_t)(0x80 | (channel & 15)), (uint8_t)clamp7(pitch), 0 };
    push(m, track, tick, ORDER_NOTE_ON, on, 3);
    push(m, track, tick + dur, ORDER_NOTE_OFF, off, 3);
}

void hafm_smf_set_end(hafm_smf *m, int64_t tick) { m->end_tick = tick; }

static int cmp_event(const void *pa, const void *pb)
{
    const smf_event *a = pa, *b = pb;
    if (a->tick != b->tick)
        return a->tick < b->tick ? -1 : 1;
    if (a->order != b->order)
        return a->order - b->order;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Growable byte buffer for one track chunk (its length precedes it in the file). */
typedef struct { uint8_t *p; size_t n, cap; } bytebuf;

static void put(bytebuf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = hafm_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_vlq(bytebuf *b, uint64_t v)
{
    uint8_t tmp[10];
    int n = 0;
    tmp[n++] = (uint8_t)(v & 0x7F);
    while ((v >>= 7) && n < 10)
        tmp[n++] = (uint8_t)(0x80 | (v & 0x7F));
    while (n--)
        put(b, &tmp[n], 1);
}

static void put_be(uint8_t *dst, uint32_t v, int n)
{
    for (int i = 0; i < n; i++)
        dst[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

int hafm_smf_write(const hafm_smf *m, FILE *fp)
{
    uint8_t head[14] = { 'M', 'T', 'h', 'd', 0, 0, 0, 6, 0, 1 };
    put_be(head + 10, (uint32_t)m->n_tracks, 2);
    put_be(head + 12, (uint32_t)m->ppq, 2);
    if (fwrite(head, 1, sizeof head, fp) != sizeof head)
        goto fail;
    for (int ti = 0; ti < m->n_tracks; ti++) {
        const smf_track *t = &m->tracks[ti];
        smf_event *ev = hafm_xmalloc((t->n + 1) * sizeof *ev);
        if (t->n)
            memcpy(ev, t->ev, t->n * sizeof *ev);
        qsort(ev, t->n, sizeof *ev, cmp_event);
        bytebuf b = { 0 };
        size_t name_len = strlen(t->name);
        if (name_len) {
            uint8_t meta[2] = { 0xFF, 0x03 };
            put_vlq(&b, 0);
            put(&b, meta, 2);
            put_vlq(&b, name_len);
            put(&b, t->name, name_len);
        }
        int64_t now = 0;
        for (size_t i = 0; i < t->n; i++) {
            put_vlq(&b, (uint64_t)(ev[i].tick - now));
            put(&b, ev[i].bytes, (size_t)ev[i].len);
            now = ev[i].tick;
        }
        int64_t end = m->end_tick > now ? m->end_tick : now;
        uint8_t eot[3] = { 0xFF, 0x2F, 0 };
        put_vlq(&b, (uint64_t)(end - now));
        put(&b, eot, 3);
        free(ev);
        uint8_t chunk[8] = { 'M', 'T', 'r', 'k' };
        put_be(chunk + 4, (uint32_t)b.n, 4);
        int ok = fwrite(chunk, 1, 8, fp) == 8 && fwrite(b.p, 1, b.n, fp) == b.n;
        free(b.p);
        if (!ok)
            goto fail;
    }
    return 0;
fail:
    hafm_error("writing MIDI file:");
    return -1;
}

int hafm_smf_save(const hafm_smf *m, const char *path)
{
    hafm_outfile *of = hafm_outfile_open(path);
    if (!of)
        return -1;
    if (hafm_smf_write(m, hafm_outfile_fp(of)) < 0) {
        hafm_error_prefix("%s", path);
        hafm_outfile_abort(of);
        return -1;
    }
    return hafm_outfile_commit(of);
}
