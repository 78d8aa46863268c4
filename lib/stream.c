/* stream.c - reader and writer of hafm streams (formats/stream.md).
 *
 * Reading frames each message itself before msgpack-c parses it: a small scanner walks the
 * MessagePack headers as bytes arrive, so the message length is known (and checked against the
 * 64 MiB limit) before any payload is buffered or any container is allocated. A forged bin32 or
 * map32 length therefore costs nothing, and the reader never asks stdio for a byte beyond the
 * current message, so a tool answers as soon as its input message is complete. The framed
 * message is then parsed by msgpack_unpack_next() straight from the buffer (strings and binaries
 * point into it, no copy), and its exact bytes stay available for byte-for-byte pass-through.
 */
#include "hafm/stream.h"
#include "hafm/stream_tools.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IDS 65536
#define MAX_FRAME_ELEMS (1u << 24)
#define DATA_MESSAGE_BYTES (1u << 20)
#define TOKENS_FRAMES_PER_MESSAGE 4096

/* ---- kinds and small helpers ------------------------------------------------------------- */

const char *hafm_kind_name(hafm_kind k)
{
    switch (k) {
    case HAFM_KIND_AUDIO: return "audio";
    case HAFM_KIND_TOKENS: return "tokens";
    case HAFM_KIND_FEATURES: return "features";
    default: return "invalid";
    }
}

hafm_kind hafm_kind_from_name(const char *name)
{
    if (!name) return HAFM_KIND_INVALID;
    if (!strcmp(name, "audio")) return HAFM_KIND_AUDIO;
    if (!strcmp(name, "tokens")) return HAFM_KIND_TOKENS;
    if (!strcmp(name, "features")) return HAFM_KIND_FEATURES;
    return HAFM_KIND_INVALID;
}

/* The element types a stream may carry (section 3.7); safetensors knows more. */
static int stream_dtype(hafm_dtype t)
{
    switch (t) {
    case HAFM_DT_U8: case HAFM_DT_I16: case HAFM_DT_U16: case HAFM_DT_I32:
    case HAFM_DT_F16: case HAFM_DT_BF16: case HAFM_DT_F32: case HAFM_DT_F64:
        return 1;
    default:
        return 0;
    }
}

static hafm_dtype stream_dtype_from(const char *s, size_t n)
{
    char tmp[8];
    if (n == 0 || n >= sizeof tmp) return HAFM_DT_INVALID;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    hafm_dtype t = hafm_dtype_from_name(tmp);
    return stream_dtype(t) ? t : HAFM_DT_INVALID;
}

static int name_char_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == ':' || c == '+' || c == '-';
}

/* Track names: 1-64 bytes of [A-Za-z0-9_.:+-]. */
static int track_name_ok(const char *s, size_t n)
{
    if (n < 1 || n > HAFM_MAX_NAME) return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok((unsigned char)s[i])) return 0;
    return 1;
}

/* Item keys: 1-255 bytes of UTF-8 without whitespace or control characters. */
static int item_key_ok(const char *s, size_t n)
{
    if (n < 1 || n > HAFM_MAX_KEY) return 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c <= 0x20 || c == 0x7f) return 0;
        if (c < 0x80) { i++; continue; }
        size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
        if (c >= 0xf5) len = 0;
        if (len == 0 || i + len > n) return 0;
        uint32_t cp = c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        if (cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
            cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000 ||
            (cp >= 0x80 && cp < 0xa0))
            return 0;
        i += len;
    }
    return 1;
}

static void copy_str(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

static char *dup_mem(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* Shows a msgpack string in a message: printable ASCII kept, the rest as '?', cut at 40 bytes. */
static const char *shown(char *buf, size_t cap, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 4 < cap; i++) {
        if (i == 40) { memcpy(buf + j, "...", 3); j += 3; break; }
        unsigned char c = (unsigned char)s[i];
        buf[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[j] = 0;
    return buf;
}

/* ---- track declarations ------------------------------------------------------------------ */

void hafm_track_init(hafm_track *t, const char *name, hafm_kind kind, hafm_dtype dtype,
                     int ndim, const int64_t *shape, double rate)
{
    memset(t, 0, sizeof *t);
    t->id = -1;
    if (name) copy_str(t->name, sizeof t->name, name, strlen(name));
    t->kind = kind;
    t->dtype = dtype;
    t->ndim = ndim < 0 ? 0 : ndim > HAFM_MAX_DIMS ? HAFM_MAX_DIMS : ndim;
    for (int i = 0; i < t->ndim; i++) t->shape[i] = shape ? shape[i] : 1;
    t->rate = rate;
    t->frames = -1;
    t->source_samples = -1;
}

void hafm_track_init_audio(hafm_track *t, const char *name, hafm_dtype dtype, int sample_rate, int channels)
{
    int64_t shape[1] = { channels };
    hafm_track_init(t, name, HAFM_KIND_AUDIO, dtype, 1, shape, sample_rate);
    t->sample_rate = sample_rate;
    t->channels = channels;
}

/* The dtype is the smallest that holds every token of the vocabulary (u8, i16, u16, i32):
 * token streams are small, and the writer's i32 input converts to any of them. */
void hafm_track_init_tokens(hafm_track *t, const char *name, int codebooks, int64_t vocab, double rate)
{
    int64_t shape[1] = { codebooks };
    hafm_dtype dt = vocab > 0 && vocab <= 256 ? HAFM_DT_U8 : vocab > 0 && vocab <= 32768 ? HAFM_DT_I16 :
                    vocab > 0 && vocab <= 65536 ? HAFM_DT_U16 : HAFM_DT_I32;
    hafm_track_init(t, name, HAFM_KIND_TOKENS, dt, 1, shape, rate);
    t->vocab = vocab;
}

void hafm_track_init_features(hafm_track *t, const char *name, int dim, double rate)
{
    int64_t shape[1] = { dim };
    hafm_track_init(t, name, HAFM_KIND_FEATURES, HAFM_DT_F32, 1, shape, rate);
}

int hafm_track_set_producer(hafm_track *t, const char *tool, const char *version)
{
    size_t nt = tool ? strlen(tool) : 0, nv = version ? strlen(version) : 0;
    if (nt == 0 || nt > HAFM_MAX_NAME || nv >= sizeof t->producer_version) {
        hafm_error("track '%s': producer tool must be 1-%d bytes and version under %zu bytes",
                   t->name, HAFM_MAX_NAME, sizeof t->producer_version);
        return -1;
    }
    memcpy(t->producer_tool, tool, nt + 1);
    if (version) memcpy(t->producer_version, version, nv + 1);
    else t->producer_version[0] = 0;
    return 0;
}

/* Finds or appends the entry for key in kv[0..*n): NULL (error set) when full or bad key. */
static hafm_kv *kv_slot(hafm_track *t, hafm_kv *kv, int *n, const char *what, const char *key)
{
    size_t len = key ? strlen(key) : 0;
    if (len == 0 || len > HAFM_MAX_NAME) {
        hafm_error("track '%s': %s key must be 1-%d bytes", t->name, what, HAFM_MAX_NAME);
        return NULL;
    }
    for (int i = 0; i < *n; i++)
        if (!strcmp(kv[i].key, key)) {
            if (kv[i].type == HAFM_VAL_STR) free(kv[i].s);
            kv[i].s = NULL;
            return &kv[i];
        }
    if (*n >= HAFM_MAX_PARAMS) {
        hafm_error("track '%s': more than %d %ss", t->name, HAFM_MAX_PARAMS, what);
        return NULL;
    }
    hafm_kv *e = &kv[(*n)++];
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, len + 1);
    return e;
}

static int kv_set(hafm_track *t, int attr, const char *key, hafm_val_type type, int64_t i, double f, const char *s)
{
    char *copy = NULL;
    if (type == HAFM_VAL_STR) {
        copy = strdup(s ? s : "");
        if (!copy) { hafm_error("out of memory"); return -1; }
    }
    hafm_kv *e = attr ? kv_slot(t, t->attrs, &t->nattrs, "attribute", key)
                      : kv_slot(t, t->params, &t->nparams, "parameter", key);
    if (!e) { free(copy); return -1; }
    e->type = type;
    e->i = i;
    e->f = f;
    e->s = copy;
    return 0;
}

int hafm_track_param_int(hafm_track *t, const char *key, int64_t v) { return kv_set(t, 0, key, HAFM_VAL_INT, v, 0, NULL); }
int hafm_track_param_float(hafm_track *t, const char *key, double v) { return kv_set(t, 0, key, HAFM_VAL_FLOAT, 0, v, NULL); }
int hafm_track_param_str(hafm_track *t, const char *key, const char *v) { return kv_set(t, 0, key, HAFM_VAL_STR, 0, 0, v); }
int hafm_track_attr_int(hafm_track *t, const char *key, int64_t v) { return kv_set(t, 1, key, HAFM_VAL_INT, v, 0, NULL); }
int hafm_track_attr_float(hafm_track *t, const char *key, double v) { return kv_set(t, 1, key, HAFM_VAL_FLOAT, 0, v, NULL); }
int hafm_track_attr_str(hafm_track *t, const char *key, const char *v) { return kv_set(t, 1, key, HAFM_VAL_STR, 0, 0, v); }

const hafm_kv *hafm_track_attr(const hafm_track *t, const char *key)
{
    for (int i = 0; i < t->nattrs; i++)
        if (!strcmp(t->attrs[i].key, key)) return &t->attrs[i];
    return NULL;
}

int64_t hafm_track_attr_int_or(const hafm_track *t, const char *key, int64_t dflt)
{
    const hafm_kv *kv = hafm_track_attr(t, key);
    return kv && kv->type == HAFM_VAL_INT ? kv->i : dflt;
}

void hafm_track_free(hafm_track *t)
{
    for (int i = 0; i < t->nparams; i++)
        if (t->params[i].type == HAFM_VAL_STR) { free(t->params[i].s); t->params[i].s = NULL; }
    for (int i = 0; i < t->nattrs; i++)
        if (t->attrs[i].type == HAFM_VAL_STR) { free(t->attrs[i].s); t->attrs[i].s = NULL; }
    t->nparams = t->nattrs = 0;
}

/* dst is overwritten as if uninitialised: free it first if it owns strings. */
void hafm_track_copy(hafm_track *dst, const hafm_track *src)
{
    if (dst == src) return;
    memcpy(dst, src, sizeof *dst);
    for (int i = 0; i < dst->nparams; i++)
        if (dst->params[i].type == HAFM_VAL_STR) dst->params[i].s = hafm_xstrdup(src->params[i].s ? src->params[i].s : "");
    for (int i = 0; i < dst->nattrs; i++)
        if (dst->attrs[i].type == HAFM_VAL_STR) dst->attrs[i].s = hafm_xstrdup(src->attrs[i].s ? src->attrs[i].s : "");
}

size_t hafm_track_frame_elems(const hafm_track *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)(t->shape[i] > 0 ? t->shape[i] : 0);
    return n;
}

size_t hafm_track_frame_bytes(const hafm_track *t)
{
    return hafm_track_frame_elems(t) * hafm_dtype_size(t->dtype);
}

/* Kind rules of section 3.3; nm labels the track in messages ("track 'x' (id 3)"). */
static int validate(const hafm_track *t, const char *nm)
{
    if (!track_name_ok(t->name, strnlen(t->name, sizeof t->name))) {
        hafm_error("%s: key 'name': must be 1-%d bytes of [A-Za-z0-9_.:+-]", nm, HAFM_MAX_NAME);
        return -1;
    }
    if (t->id >= MAX_IDS) {
        hafm_error("%s: key 'id': %d is not below 65536", nm, t->id);
        return -1;
    }
    if (t->kind != HAFM_KIND_AUDIO && t->kind != HAFM_KIND_TOKENS && t->kind != HAFM_KIND_FEATURES) {
        hafm_error("%s: key 'kind': must be audio, tokens or features", nm);
        return -1;
    }
    if (!stream_dtype(t->dtype)) {
        hafm_error("%s: key 'dtype': must be u8, i16, u16, i32, f16, bf16, f32 or f64", nm);
        return -1;
    }
    if (t->ndim < 1 || t->ndim > HAFM_MAX_DIMS) {
        hafm_error("%s: key 'shape': must have 1 to %d dimensions, has %d", nm, HAFM_MAX_DIMS, t->ndim);
        return -1;
    }
    uint64_t elems = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 1 || t->shape[i] >= (int64_t)MAX_FRAME_ELEMS) {
            hafm_error("%s: key 'shape': dimension %d is %lld, must be in [1, 2^24)", nm, i,
                       (long long)t->shape[i]);
            return -1;
        }
        elems *= (uint64_t)t->shape[i];
        if (elems >= MAX_FRAME_ELEMS) {
            hafm_error("%s: key 'shape': %llu or more elements per frame, must be below 2^24", nm,
                       (unsigned long long)elems);
            return -1;
        }
    }
    if (!(t->rate > 0) || !isfinite(t->rate)) {
        hafm_error("%s: key 'rate': must be a positive number, got %g", nm, t->rate);
        return -1;
    }
    if (t->frames < -1) {
        hafm_error("%s: key 'frames': negative", nm);
        return -1;
    }
    const char *dt = hafm_dtype_name(t->dtype);
    switch (t->kind) {
    case HAFM_KIND_AUDIO:
        if (t->dtype != HAFM_DT_I16 && t->dtype != HAFM_DT_I32 && t->dtype != HAFM_DT_F32) {
            hafm_error("%s: key 'dtype': %s is not an audio dtype (i16, i32, f32)", nm, dt);
            return -1;
        }
        if (t->sample_rate < 1 || (double)t->sample_rate != t->rate) {
            hafm_error("%s: key 'sample_rate': %d must be positive and equal 'rate' (%g)", nm,
                       t->sample_rate, t->rate);
            return -1;
        }
        if (t->channels < 1 || t->ndim != 1 || t->shape[0] != t->channels) {
            hafm_error("%s: key 'channels': %d must be positive and 'shape' must be [channels]", nm,
                       t->channels);
            return -1;
        }
        break;
    case HAFM_KIND_TOKENS:
        if (t->dtype != HAFM_DT_U8 && t->dtype != HAFM_DT_I16 && t->dtype != HAFM_DT_U16 && t->dtype != HAFM_DT_I32) {
            hafm_error("%s: key 'dtype': %s is not a tokens dtype (u8, i16, u16, i32)", nm, dt);
            return -1;
        }
        if (t->ndim != 1) {
            hafm_error("%s: key 'shape': tokens tracks have shape [codebooks], this one has %d dimensions",
                       nm, t->ndim);
            return -1;
        }
        if (t->vocab < 1 || t->vocab > (int64_t)1 << 31) {
            hafm_error("%s: key 'vocab': %lld must be in [1, 2^31]", nm, (long long)t->vocab);
            return -1;
        }
        break;
    case HAFM_KIND_FEATURES:
        if (!hafm_dtype_is_float(t->dtype)) {
            hafm_error("%s: key 'dtype': %s is not a features dtype (f16, bf16, f32, f64)", nm, dt);
            return -1;
        }
        break;
    default:
        break;
    }
    const hafm_kv *off = hafm_track_attr(t, "codebook_offset");
    if (off && (off->type != HAFM_VAL_INT || off->i < 0)) {
        hafm_error("%s: attribute 'codebook_offset': must be a non-negative integer", nm);
        return -1;
    }
    return 0;
}

int hafm_track_validate(const hafm_track *t)
{
    char label[HAFM_MAX_NAME + 64], b[HAFM_MAX_NAME + 8];
    snprintf(label, sizeof label, "track '%s'", shown(b, sizeof b, t->name, strnlen(t->name, sizeof t->name)));
    return validate(t, label);
}

/* Little-endian element loads (payloads are unaligned). */
static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t ld32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static inline void st16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void st32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }

/* Index of the first token outside [0, vocab) among n elements, or -1. */
static int64_t bad_token(const void *data, hafm_dtype t, size_t n, int64_t vocab, int64_t *value)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        switch (t) {
        case HAFM_DT_U8: v = p[i]; break;
        case HAFM_DT_I16: v = (int16_t)ld16(p + 2 * i); break;
        case HAFM_DT_U16: v = ld16(p + 2 * i); break;
        case HAFM_DT_I32: v = (int32_t)ld32(p + 4 * i); break;
        default: return -1;
        }
        if (v < 0 || v >= vocab) { *value = v; return (int64_t)i; }
    }
    return -1;
}

/* ---- reader ------------------------------------------------------------------------------ */

enum { R_START, R_BETWEEN, R_ITEM, R_DONE, R_FAILED };

struct hafm_reader {
    FILE *fp;
    char *name;
    uint8_t *buf;
    size_t cap, len;           /* buf[0..len) holds the bytes read and not yet discarded */
    size_t msg_len;            /* length of the message last returned (at buf[0]) */
    size_t scan_pos;           /* scanner: next header offset, or end of a payload being awaited */
    uint64_t scan_rem;         /* scanner: objects still to come in the current message */
    uint64_t offset;           /* stream offset of buf[0] */
    int state;
    int64_t items;
    msgpack_unpacked up;
    int has_up;
    char key[HAFM_MAX_KEY + 1];
    hafm_track **tracks;       /* current item, in declaration order */
    int ntracks, cap_tracks;
    int32_t *by_id;            /* MAX_IDS entries: 1 + index into tracks, 0 for none (calloc'd) */
    hafm_reader *next_live;    /* registry of open readers (pass-through lookup) */
};

/* Open readers, so that the writer can find the exact bytes behind an event's raw object. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static hafm_reader *live_readers;

static void live_add(hafm_reader *r)
{
    pthread_mutex_lock(&live_lock);
    r->next_live = live_readers;
    live_readers = r;
    pthread_mutex_unlock(&live_lock);
}

static void live_remove(hafm_reader *r)
{
    pthread_mutex_lock(&live_lock);
    for (hafm_reader **p = &live_readers; *p; p = &(*p)->next_live)
        if (*p == r) { *p = r->next_live; break; }
    pthread_mutex_unlock(&live_lock);
}

/* The bytes of the message whose root object is raw, if a live reader returned it. */
static int live_bytes(const void *raw, const void **bytes, size_t *len)
{
    int found = 0;
    pthread_mutex_lock(&live_lock);
    for (hafm_reader *r = live_readers; r; r = r->next_live)
        if (r->has_up && raw == (const void *)&r->up.data) {
            *bytes = r->buf;
            *len = r->msg_len;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&live_lock);
    return found;
}

/* Error with the reader's context: "NAME: item 'KEY': message". */
HAFM_PRINTF(2, 3) static int rfail(hafm_reader *r, const char *fmt, ...)
{
    char msg[512], kb[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *name = r->name && *r->name ? r->name : NULL;
    if (r->state == R_ITEM)
        hafm_error("%s%sitem '%s': %s", name ? name : "", name ? ": " : "",
                   shown(kb, sizeof kb, r->key, strlen(r->key)), msg);
    else
        hafm_error("%s%s%s", name ? name : "", name ? ": " : "", msg);
    r->state = R_FAILED;
    return -1;
}

hafm_reader *hafm_reader_open(FILE *fp, const char *name)
{
    if (!fp) {
        hafm_error("%s: no input stream", name ? name : "reader");
        return NULL;
    }
    hafm_reader *r = calloc(1, sizeof *r);
    if (!r) { hafm_error("out of memory"); return NULL; }
    r->fp = fp;
    r->name = strdup(name ? name : "");
    r->by_id = calloc(MAX_IDS, sizeof *r->by_id);
    if (!r->name || !r->by_id) {
        free(r->name);
        free(r->by_id);
        free(r);
        hafm_error("out of memory");
        return NULL;
    }
    msgpack_unpacked_init(&r->up);
    r->state = R_START;
    live_add(r);
    return r;
}

static void clear_tracks(hafm_reader *r)
{
    for (int i = 0; i < r->ntracks; i++) {
        hafm_track *t = r->tracks[i];
        if (t->id >= 0 && t->id < MAX_IDS) r->by_id[t->id] = 0;
        hafm_track_free(t);
        free(t);
    }
    r->ntracks = 0;
}

void hafm_reader_close(hafm_reader *r)
{
    if (!r) return;
    live_remove(r);
    clear_tracks(r);
    free(r->tracks);
    free(r->by_id);
    msgpack_unpacked_destroy(&r->up);
    free(r->buf);
    free(r->name);
    free(r);
}

int hafm_reader_ntracks(const hafm_reader *r) { return r->ntracks; }
hafm_track *hafm_reader_track(hafm_reader *r, int index)
{
    return index >= 0 && index < r->ntracks ? r->tracks[index] : NULL;
}
hafm_track *hafm_reader_find_track(hafm_reader *r, const char *name)
{
    for (int i = 0; i < r->ntracks; i++)
        if (!strcmp(r->tracks[i]->name, name)) return r->tracks[i];
    return NULL;
}
const char *hafm_reader_item_key(const hafm_reader *r) { return r->state == R_ITEM ? r->key : NULL; }
int64_t hafm_reader_items(const hafm_reader *r) { return r->items; }

static int reserve(hafm_reader *r, size_t need)
{
    if (need <= r->cap) return 0;
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < need) cap *= 2;
    uint8_t *b = realloc(r->buf, cap);
    if (!b) return rfail(r, "out of memory for a message of %zu bytes", need);
    r->buf = b;
    r->cap = cap;
    return 0;
}

/* Reads exactly n more bytes unless the input ends first; -1 on a read error. */
static int fill(hafm_reader *r, size_t n, size_t *got)
{
    if (reserve(r, r->len + n) < 0) return -1;
    size_t k = fread(r->buf + r->len, 1, n, r->fp);
    r->len += k;
    *got = k;
    if (k < n && ferror(r->fp)) return rfail(r, "read error: %s", strerror(errno ? errno : EIO));
    return 0;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* Advances the scanner over the buffered bytes. 1: the message at buf[0] is complete
 * (scan_pos bytes); 0: *need more bytes are required to make progress; -1: error. */
static int scan(hafm_reader *r, size_t *need)
{
    const uint8_t *b = r->buf;
    while (r->scan_rem > 0) {
        size_t p = r->scan_pos;
        if (p >= r->len) { *need = p - r->len + 1; return 0; }
        uint8_t c = b[p];
        size_t hdr = 1;
        int lenbytes = 0;
        uint64_t fixed = 0, children = 0, payload = 0;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        } else if (c <= 0x8f) {
            children = 2u * (c & 0x0f);
        } else if (c <= 0x9f) {
            children = c & 0x0f;
        } else if (c <= 0xbf) {
            payload = c & 0x1f;
        } else {
            switch (c) {
            case 0xc4: case 0xd9: lenbytes = 1; break;            /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;            /* bin16, str16 */
            case 0xc6: case 0xdb: lenbytes = 4; break;            /* bin32, str32 */
            case 0xc7: lenbytes = 1; fixed = 1; break;           /* ext8: length, type */
            case 0xc8: lenbytes = 2; fixed = 1; break;
            case 0xc9: lenbytes = 4; fixed = 1; break;
            case 0xca: fixed = 4; break;                          /* float32 */
            case 0xcb: fixed = 8; break;                          /* float64 */
            case 0xcc: case 0xd0: fixed = 1; break;
            case 0xcd: case 0xd1: fixed = 2; break;
            case 0xce: case 0xd2: fixed = 4; break;
            case 0xcf: case 0xd3: fixed = 8; break;
            case 0xd4: fixed = 2; break;                          /* fixext1..16: type + data */
            case 0xd5: fixed = 3; break;
            case 0xd6: fixed = 5; break;
            case 0xd7: fixed = 9; break;
            case 0xd8: fixed = 17; break;
            case 0xdc: lenbytes = 2; break;                       /* array16 */
            case 0xdd: lenbytes = 4; break;                       /* array32 */
            case 0xde: lenbytes = 2; break;                       /* map16 */
            case 0xdf: lenbytes = 4; break;                       /* map32 */
            default:
                return rfail(r, "malformed message at byte %llu: invalid MessagePack byte 0x%02x",
                             (unsigned long long)(r->offset + p), c);
            }
            if (p + 1 + (size_t)lenbytes > r->len) { *need = p + 1 + lenbytes - r->len; return 0; }
            uint64_t n = be(b + p + 1, lenbytes);
            hdr = 1 + (size_t)lenbytes;
            if (c == 0xdc || c == 0xdd) children = n;
            else if (c == 0xde || c == 0xdf) children = 2 * n;
            else payload = n;
        }
        r->scan_rem = r->scan_rem - 1 + children;
        uint64_t end = (uint64_t)p + hdr + fixed + payload;
        /* every object still to come takes at least one byte */
        if (end > HAFM_MAX_MESSAGE || r->scan_rem > HAFM_MAX_MESSAGE - end)
            return rfail(r, "message at byte %llu is larger than 64 MiB",
                         (unsigned long long)r->offset);
        r->scan_pos = (size_t)end;
    }
    if (r->scan_pos > r->len) { *need = r->scan_pos - r->len; return 0; }
    return 1;
}

static int looks_like(const uint8_t *b, size_t n, const char **what)
{
    if (n >= 4 && !memcmp(b, "RIFF", 4)) *what = "a RIFF/WAV file";
    else if (n >= 4 && !memcmp(b, "RIFX", 4)) *what = "a RIFF/WAV file";
    else if (n >= 4 && !memcmp(b, "fLaC", 4)) *what = "a FLAC file";
    else if (n >= 4 && !memcmp(b, "OggS", 4)) *what = "an Ogg file";
    else if (n >= 4 && !memcmp(b, "FORM", 4)) *what = "an AIFF file";
    else if (n >= 3 && !memcmp(b, "ID3", 3)) *what = "an MP3 file";
    else if (n >= 9 && b[8] == '{' && b[5] == 0 && b[6] == 0 && b[7] == 0) *what = "a safetensors file";
    else return 0;
    return 1;
}

/* Input that is not a hafm stream: reads a few bytes more for a hint about what it is. */
static int not_a_stream(hafm_reader *r, const char *why)
{
    size_t got;
    if (r->offset == 0 && r->len < 16 && fill(r, 16 - r->len, &got) < 0) return -1;
    const char *what;
    if (r->offset == 0 && looks_like(r->buf, r->len, &what))
        return rfail(r, "not a hafm stream: the input looks like %s", what);
    return rfail(r, "not a hafm stream (%s)", why);
}

/* Frames and parses the next message. 1: r->up.data holds it; 0: end of input; -1: error. */
static int next_message(hafm_reader *r)
{
    if (r->msg_len) {
        memmove(r->buf, r->buf + r->msg_len, r->len - r->msg_len);
        r->len -= r->msg_len;
        r->offset += r->msg_len;
        r->msg_len = 0;
    }
    r->has_up = 0;
    r->scan_pos = 0;
    r->scan_rem = 1;
    for (;;) {
        size_t need = 0, got;
        int rc = scan(r, &need);
        if (rc < 0) return -1;
        if (rc > 0) break;
        if (r->offset == 0 && r->len == 0 && r->state == R_START) {
            if (fill(r, 1, &got) < 0) return -1;
            if (got == 0) return rfail(r, "empty input");
            uint8_t c = r->buf[0];
            if (!((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf))
                return not_a_stream(r, "it does not begin with a MessagePack map");
            continue;
        }
        if (fill(r, need, &got) < 0) return -1;
        if (got < need) {
            if (r->len == 0) return 0;
            if (r->state == R_START) return rfail(r, "truncated stream: input ends inside the header");
            return rfail(r, "truncated stream: input ends inside a message at byte %llu",
                         (unsigned long long)r->offset);
        }
    }
    size_t n = r->scan_pos, off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&r->up, (const char *)r->buf, n, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != n) {
        if (r->state == R_START) return not_a_stream(r, "its first message is not valid MessagePack");
        return rfail(r, "malformed message at byte %llu: %s", (unsigned long long)r->offset,
                     ur == MSGPACK_UNPACK_NOMEM_ERROR ? "nested deeper than 32 levels or out of memory"
                                                      : "invalid MessagePack");
    }
    r->msg_len = n;
    r->has_up = 1;
    return 1;
}

/* ---- message fields ---------------------------------------------------------------------- */

typedef struct {
    const char *key;
    const msgpack_object *val;
} field;

static bool obj_str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && !memcmp(o->via.str.ptr, s, n);
}

/* Picks the known keys out of a message map; a repeated known key is an error. */
static int get_fields(hafm_reader *r, const msgpack_object *map, const char *msg, field *f, int nf)
{
    for (int i = 0; i < nf; i++) f[i].val = NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR)
            return rfail(r, "%s message: a key is not a string", msg);
        for (int j = 0; j < nf; j++)
            if (obj_str_eq(&kv->key, f[j].key)) {
                if (f[j].val) return rfail(r, "%s message: key '%s' appears twice", msg, f[j].key);
                f[j].val = &kv->val;
            }
    }
    return 0;
}

/* Unsigned integer field; -1 (error set) when missing/wrong type/too large. */
static int get_uint(hafm_reader *r, const char *ctx, const field *f, uint64_t max, int required, uint64_t *out)
{
    if (!f->val) {
        if (!required) return 0;
        return rfail(r, "%s: missing key '%s'", ctx, f->key);
    }
    if (f->val->type != MSGPACK_OBJECT_POSITIVE_INTEGER || f->val->via.u64 > max)
        return rfail(r, "%s: key '%s': expected an unsigned integer up to %llu", ctx, f->key,
                     (unsigned long long)max);
    *out = f->val->via.u64;
    return 1;
}

static int get_str(hafm_reader *r, const char *ctx, const field *f, int required, const char **s, size_t *n)
{
    if (!f->val) {
        if (!required) return 0;
        return rfail(r, "%s: missing key '%s'", ctx, f->key);
    }
    if (f->val->type != MSGPACK_OBJECT_STR) return rfail(r, "%s: key '%s': expected a string", ctx, f->key);
    *s = f->val->via.str.ptr;
    *n = f->val->via.str.size;
    return 1;
}

/* float or uint > 0 */
static int get_rate(hafm_reader *r, const char *ctx, const field *f, int required, double *out)
{
    if (!f->val) {
        if (!required) return 0;
        return rfail(r, "%s: missing key '%s'", ctx, f->key);
    }
    double v;
    if (f->val->type == MSGPACK_OBJECT_POSITIVE_INTEGER) v = (double)f->val->via.u64;
    else if (f->val->type == MSGPACK_OBJECT_FLOAT32 || f->val->type == MSGPACK_OBJECT_FLOAT64) v = f->val->via.f64;
    else return rfail(r, "%s: key '%s': expected a number", ctx, f->key);
    if (!(v > 0) || !isfinite(v)) return rfail(r, "%s: key '%s': must be a positive number, got %g", ctx, f->key, v);
    *out = v;
    return 1;
}

static int read_header(hafm_reader *r, const msgpack_object *m)
{
    field f[] = { { "magic", NULL }, { "version", NULL } };
    if (get_fields(r, m, "header", f, 2) < 0) return -1;
    if (!f[0].val || !obj_str_eq(f[0].val, "hafm-stream"))
        return r->state == R_START ? not_a_stream(r, "the header's magic is not \"hafm-stream\"")
                                   : rfail(r, "header message: key 'magic': expected \"hafm-stream\"");
    const msgpack_object *v = f[1].val;
    if (!v || v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != 2 ||
        v->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        v->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return rfail(r, "header message: key 'version': expected [major, minor]");
    uint64_t major = v->via.array.ptr[0].via.u64, minor = v->via.array.ptr[1].via.u64;
    if (major != HAFM_STREAM_MAJOR)
        return rfail(r, "unsupported hafm stream version %llu.%llu (this reader knows %d.x)",
                     (unsigned long long)major, (unsigned long long)minor, HAFM_STREAM_MAJOR);
    return 0;
}

/* Reads a {str: scalar} map into kv; entries beyond HAFM_MAX_PARAMS or with keys longer than
 * HAFM_MAX_NAME are not kept (they still pass through). */
static int read_kv(hafm_reader *r, const char *ctx, const char *what, const msgpack_object *m,
                   hafm_kv *kv, int *n)
{
    if (m->type != MSGPACK_OBJECT_MAP) return rfail(r, "%s: key '%s': expected a map", ctx, what);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) return rfail(r, "%s: key '%s': a key is not a string", ctx, what);
        char kb[64];
        hafm_kv e;
        memset(&e, 0, sizeof e);
        switch (v->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (v->via.u64 > INT64_MAX)
                return rfail(r, "%s: key '%s': value of '%s' is out of range", ctx, what,
                             shown(kb, sizeof kb, k->via.str.ptr, k->via.str.size));
            e.type = HAFM_VAL_INT; e.i = (int64_t)v->via.u64; break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: e.type = HAFM_VAL_INT; e.i = v->via.i64; break;
        case MSGPACK_OBJECT_FLOAT32: case MSGPACK_OBJECT_FLOAT64: e.type = HAFM_VAL_FLOAT; e.f = v->via.f64; break;
        case MSGPACK_OBJECT_BOOLEAN: e.type = HAFM_VAL_BOOL; e.i = v->via.boolean; break;
        case MSGPACK_OBJECT_STR: e.type = HAFM_VAL_STR; break;
        default:
            return rfail(r, "%s: key '%s': value of '%s' is not a scalar", ctx, what,
                         shown(kb, sizeof kb, k->via.str.ptr, k->via.str.size));
        }
        if (*n >= HAFM_MAX_PARAMS || k->via.str.size < 1 || k->via.str.size > HAFM_MAX_NAME) continue;
        for (int j = 0; j < *n; j++)
            if (strlen(kv[j].key) == k->via.str.size && !memcmp(kv[j].key, k->via.str.ptr, k->via.str.size))
                return rfail(r, "%s: key '%s': '%s' appears twice", ctx, what,
                             shown(kb, sizeof kb, k->via.str.ptr, k->via.str.size));
        copy_str(e.key, sizeof e.key, k->via.str.ptr, k->via.str.size);
        if (e.type == HAFM_VAL_STR && !(e.s = dup_mem(v->via.str.ptr, v->via.str.size)))
            return rfail(r, "out of memory");
        kv[(*n)++] = e;
    }
    return 0;
}

static int read_producer(hafm_reader *r, const char *ctx, const msgpack_object *m, hafm_track *t)
{
    if (m->type != MSGPACK_OBJECT_MAP) return rfail(r, "%s: key 'producer': expected a map", ctx);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) return rfail(r, "%s: key 'producer': a key is not a string", ctx);
        if (obj_str_eq(k, "tool") || obj_str_eq(k, "version")) {
            int tool = obj_str_eq(k, "tool");
            if (v->type != MSGPACK_OBJECT_STR)
                return rfail(r, "%s: key 'producer': '%s' must be a string", ctx, tool ? "tool" : "version");
            if (tool) copy_str(t->producer_tool, sizeof t->producer_tool, v->via.str.ptr, v->via.str.size);
            else copy_str(t->producer_version, sizeof t->producer_version, v->via.str.ptr, v->via.str.size);
        } else if (obj_str_eq(k, "params")) {
            if (t->nparams) return rfail(r, "%s: key 'producer': 'params' appears twice", ctx);
            if (read_kv(r, ctx, "producer.params", v, t->params, &t->nparams) < 0) return -1;
        }
    }
    return 0;
}

static int read_track(hafm_reader *r, const msgpack_object *m, hafm_track *t)
{
    enum { ID, NAME, KIND, DTYPE, SHAPE, RATE, VOCAB, SR, CH, FRAMES, PRODUCER, ATTRS, NF };
    field f[NF] = { { "id", 0 }, { "name", 0 }, { "kind", 0 }, { "dtype", 0 }, { "shape", 0 }, { "rate", 0 },
                    { "vocab", 0 }, { "sample_rate", 0 }, { "channels", 0 }, { "frames", 0 },
                    { "producer", 0 }, { "attrs", 0 } };
    if (get_fields(r, m, "track", f, NF) < 0) return -1;
    hafm_track_init(t, NULL, HAFM_KIND_INVALID, HAFM_DT_INVALID, 0, NULL, 0);
    uint64_t u = 0;
    const char *s = NULL;
    size_t n = 0;
    char ctx[128], sb[64];
    if (get_uint(r, "track message", &f[ID], MAX_IDS - 1, 1, &u) < 0) return -1;
    t->id = (int)u;
    snprintf(ctx, sizeof ctx, "track message (id %d)", t->id);
    if (get_str(r, ctx, &f[NAME], 1, &s, &n) < 0) return -1;
    if (!track_name_ok(s, n))
        return rfail(r, "%s: key 'name': '%s' is not 1-%d bytes of [A-Za-z0-9_.:+-]", ctx,
                     shown(sb, sizeof sb, s, n), HAFM_MAX_NAME);
    copy_str(t->name, sizeof t->name, s, n);
    snprintf(ctx, sizeof ctx, "track '%s' (id %d)", t->name, t->id);
    if (get_str(r, ctx, &f[KIND], 1, &s, &n) < 0) return -1;
    char kb[16];
    copy_str(kb, sizeof kb, s, n < sizeof kb ? n : sizeof kb - 1);
    t->kind = n < sizeof kb ? hafm_kind_from_name(kb) : HAFM_KIND_INVALID;
    if (t->kind == HAFM_KIND_INVALID)
        return rfail(r, "%s: key 'kind': '%s' is not audio, tokens or features", ctx, shown(sb, sizeof sb, s, n));
    if (get_str(r, ctx, &f[DTYPE], 1, &s, &n) < 0) return -1;
    t->dtype = stream_dtype_from(s, n);
    if (t->dtype == HAFM_DT_INVALID)
        return rfail(r, "%s: key 'dtype': '%s' is not u8, i16, u16, i32, f16, bf16, f32 or f64", ctx,
                     shown(sb, sizeof sb, s, n));
    const msgpack_object *sh = f[SHAPE].val;
    if (!sh) return rfail(r, "%s: missing key 'shape'", ctx);
    if (sh->type != MSGPACK_OBJECT_ARRAY || sh->via.array.size < 1 || sh->via.array.size > HAFM_MAX_DIMS)
        return rfail(r, "%s: key 'shape': expected an array of 1 to %d unsigned integers", ctx, HAFM_MAX_DIMS);
    t->ndim = (int)sh->via.array.size;
    for (int i = 0; i < t->ndim; i++) {
        const msgpack_object *d = &sh->via.array.ptr[i];
        if (d->type != MSGPACK_OBJECT_POSITIVE_INTEGER || d->via.u64 < 1 || d->via.u64 >= MAX_FRAME_ELEMS)
            return rfail(r, "%s: key 'shape': dimension %d must be an integer in [1, 2^24)", ctx, i);
        t->shape[i] = (int64_t)d->via.u64;
    }
    if (get_rate(r, ctx, &f[RATE], 1, &t->rate) < 0) return -1;
    if (t->kind == HAFM_KIND_TOKENS) {
        if (get_uint(r, ctx, &f[VOCAB], (uint64_t)1 << 31, 1, &u) < 0) return -1;
        t->vocab = (int64_t)u;
    } else if (get_uint(r, ctx, &f[VOCAB], UINT64_MAX, 0, &u) < 0) {
        return -1;
    }
    if (t->kind == HAFM_KIND_AUDIO) {
        if (get_uint(r, ctx, &f[SR], INT32_MAX, 1, &u) < 0) return -1;
        t->sample_rate = (int)u;
        if (get_uint(r, ctx, &f[CH], MAX_FRAME_ELEMS, 1, &u) < 0) return -1;
        t->channels = (int)u;
    }
    int has = get_uint(r, ctx, &f[FRAMES], INT64_MAX, 0, &u);
    if (has < 0) return -1;
    t->frames = has ? (int64_t)u : -1;
    if (f[PRODUCER].val && read_producer(r, ctx, f[PRODUCER].val, t) < 0) return -1;
    if (f[ATTRS].val && read_kv(r, ctx, "attrs", f[ATTRS].val, t->attrs, &t->nattrs) < 0) return -1;
    if (validate(t, ctx) < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", hafm_last_error());
        return rfail(r, "%s", msg);
    }
    return 0;
}

static hafm_track *lookup(hafm_reader *r, const char *msg, const field *f, int64_t *id)
{
    uint64_t u = 0;
    if (get_uint(r, msg, f, MAX_IDS - 1, 1, &u) < 0) return NULL;
    *id = (int64_t)u;
    int idx = r->by_id[u] - 1;
    if (idx < 0) {
        rfail(r, "%s: unknown track id %llu", msg, (unsigned long long)u);
        return NULL;
    }
    return r->tracks[idx];
}

static int on_track(hafm_reader *r, const msgpack_object *m, hafm_event *ev)
{
    hafm_track *t = calloc(1, sizeof *t);
    if (!t) return rfail(r, "out of memory");
    if (read_track(r, m, t) < 0) {
        hafm_track_free(t);
        free(t);
        return -1;
    }
    int err = 0;
    if (r->by_id[t->id] > 0) {
        rfail(r, "duplicate track id %d ('%s' and '%s')", t->id, r->tracks[r->by_id[t->id] - 1]->name, t->name);
        err = 1;
    } else if (hafm_reader_find_track(r, t->name)) {
        rfail(r, "duplicate track name '%s' (ids %d and %d)", t->name, hafm_reader_find_track(r, t->name)->id, t->id);
        err = 1;
    } else if (r->ntracks == r->cap_tracks) {
        int cap = r->cap_tracks ? 2 * r->cap_tracks : 8;
        hafm_track **p = realloc(r->tracks, (size_t)cap * sizeof *p);
        if (!p) { rfail(r, "out of memory"); err = 1; }
        else { r->tracks = p; r->cap_tracks = cap; }
    }
    if (err) {
        hafm_track_free(t);
        free(t);
        return -1;
    }
    r->tracks[r->ntracks++] = t;
    r->by_id[t->id] = r->ntracks;
    ev->type = HAFM_EV_TRACK;
    ev->track = t;
    return 0;
}

static int on_data(hafm_reader *r, const msgpack_object *m, hafm_event *ev)
{
    field f[] = { { "track", 0 }, { "frames", 0 }, { "payload", 0 } };
    if (get_fields(r, m, "data", f, 3) < 0) return -1;
    int64_t id;
    hafm_track *t = lookup(r, "data message", &f[0], &id);
    if (!t) return -1;
    char ctx[128];
    snprintf(ctx, sizeof ctx, "track '%s' (id %d): data message", t->name, t->id);
    if (t->ended) return rfail(r, "track '%s' (id %d): data after end", t->name, t->id);
    uint64_t frames = 0;
    if (get_uint(r, ctx, &f[1], INT64_MAX, 1, &frames) < 0) return -1;
    const msgpack_object *p = f[2].val;
    if (!p) return rfail(r, "%s: missing key 'payload'", ctx);
    if (p->type != MSGPACK_OBJECT_BIN) return rfail(r, "%s: key 'payload': expected a binary", ctx);
    size_t fb = hafm_track_frame_bytes(t);
    uint64_t nbytes = p->via.bin.size;
    if (frames > nbytes / fb || frames * fb != nbytes)
        return rfail(r, "track '%s' (id %d): payload size mismatch: %llu bytes for %llu frames of %zu bytes",
                     t->name, t->id, (unsigned long long)nbytes, (unsigned long long)frames, fb);
    if (t->frames >= 0 && (int64_t)frames > t->frames - t->frames_seen)
        return rfail(r, "track '%s' (id %d): more than the %lld frames its declaration announces", t->name,
                     t->id, (long long)t->frames);
    if (t->kind == HAFM_KIND_TOKENS) {
        int64_t v, i = bad_token(p->via.bin.ptr, t->dtype, (size_t)frames * hafm_track_frame_elems(t), t->vocab, &v);
        if (i >= 0)
            return rfail(r, "track '%s' (id %d): token %lld at frame %lld is outside [0, %lld)", t->name, t->id,
                         (long long)v, (long long)(t->frames_seen + i / (int64_t)hafm_track_frame_elems(t)),
                         (long long)t->vocab);
    }
    t->frames_seen += (int64_t)frames;
    ev->type = HAFM_EV_DATA;
    ev->track = t;
    ev->frames = (int64_t)frames;
    ev->data = p->via.bin.ptr;
    ev->nbytes = (size_t)nbytes;
    return 0;
}

static int on_end(hafm_reader *r, const msgpack_object *m, hafm_event *ev)
{
    field f[] = { { "track", 0 }, { "frames", 0 }, { "source_samples", 0 }, { "source_rate", 0 } };
    if (get_fields(r, m, "end", f, 4) < 0) return -1;
    int64_t id;
    hafm_track *t = lookup(r, "end message", &f[0], &id);
    if (!t) return -1;
    char ctx[128];
    snprintf(ctx, sizeof ctx, "track '%s' (id %d): end message", t->name, t->id);
    if (t->ended) return rfail(r, "track '%s' (id %d): ended twice", t->name, t->id);
    uint64_t frames = 0, ss = 0;
    if (get_uint(r, ctx, &f[1], INT64_MAX, 1, &frames) < 0) return -1;
    if ((int64_t)frames != t->frames_seen)
        return rfail(r, "track '%s' (id %d): frame count mismatch: end says %llu frames, data messages had %lld",
                     t->name, t->id, (unsigned long long)frames, (long long)t->frames_seen);
    if (t->frames >= 0 && t->frames != t->frames_seen)
        return rfail(r, "track '%s' (id %d): frame count mismatch: declared %lld frames, data messages had %lld",
                     t->name, t->id, (long long)t->frames, (long long)t->frames_seen);
    int has = get_uint(r, ctx, &f[2], INT64_MAX, 0, &ss);
    if (has < 0) return -1;
    double sr = 0;
    if (has && get_rate(r, ctx, &f[3], 1, &sr) < 0) return -1;
    t->source_samples = has ? (int64_t)ss : -1;
    t->source_rate = has ? sr : 0;
    t->ended = 1;
    ev->type = HAFM_EV_END;
    ev->track = t;
    ev->frames = t->frames_seen;
    return 0;
}

/* "key" of item and item_end messages. */
static int read_key(hafm_reader *r, const msgpack_object *m, const char *msg, char *out)
{
    field f[] = { { "key", 0 } };
    if (get_fields(r, m, msg, f, 1) < 0) return -1;
    const char *s = NULL;
    size_t n = 0;
    char ctx[32], sb[64];
    snprintf(ctx, sizeof ctx, "%s message", msg);
    if (get_str(r, ctx, &f[0], 1, &s, &n) < 0) return -1;
    if (!item_key_ok(s, n))
        return rfail(r, "%s: key 'key': '%s' is not 1-255 bytes of UTF-8 without whitespace or control characters",
                     ctx, shown(sb, sizeof sb, s, n));
    copy_str(out, HAFM_MAX_KEY + 1, s, n);
    return 0;
}

int hafm_reader_next(hafm_reader *r, hafm_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (r->state == R_FAILED) {
        hafm_error("%s%sthe stream already failed", r->name, *r->name ? ": " : "");
        return -1;
    }
    if (r->state == R_DONE) return 0;
    int rc = next_message(r);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (r->state == R_ITEM) {
            for (int i = 0; i < r->ntracks; i++)
                if (!r->tracks[i]->ended)
                    return rfail(r, "truncated stream: input ends inside track '%s' (id %d) after %lld frames",
                                 r->tracks[i]->name, r->tracks[i]->id, (long long)r->tracks[i]->frames_seen);
            return rfail(r, "truncated stream: input ends before item_end");
        }
        r->state = R_DONE;
        return 0;
    }
    const msgpack_object *m = &r->up.data;
    ev->raw = m;
    if (m->type != MSGPACK_OBJECT_MAP) {
        if (r->state == R_START) return not_a_stream(r, "its first message is not a map");
        return rfail(r, "malformed message at byte %llu: not a map", (unsigned long long)r->offset);
    }
    field ft[] = { { "type", 0 } };
    if (get_fields(r, m, "malformed", ft, 1) < 0) {
        if (r->state == R_START) return not_a_stream(r, "its first message has a key that is not a string");
        return -1;
    }
    if (!ft[0].val || ft[0].val->type != MSGPACK_OBJECT_STR) {
        if (r->state == R_START) return not_a_stream(r, "its first message has no \"type\"");
        return rfail(r, "malformed message at byte %llu: key 'type': missing or not a string",
                     (unsigned long long)r->offset);
    }
    const msgpack_object *type = ft[0].val;
    if (r->state == R_START && !obj_str_eq(type, "header"))
        return not_a_stream(r, "its first message is not a header");
    if (obj_str_eq(type, "header")) {
        if (r->state == R_ITEM) return rfail(r, "header message inside an item");
        if (read_header(r, m) < 0) return -1;
        r->state = R_BETWEEN;
        ev->type = HAFM_EV_HEADER;
        return 1;
    }
    if (obj_str_eq(type, "item")) {
        char key[HAFM_MAX_KEY + 1], kb[64];
        if (read_key(r, m, "item", key) < 0) return -1;
        if (r->state == R_ITEM)
            return rfail(r, "item '%s' begins before item_end (items do not nest)", shown(kb, sizeof kb, key, strlen(key)));
        clear_tracks(r);
        memcpy(r->key, key, sizeof key);
        r->state = R_ITEM;
        r->items++;
        ev->type = HAFM_EV_ITEM;
        ev->key = r->key;
        return 1;
    }
    if (obj_str_eq(type, "item_end")) {
        char key[HAFM_MAX_KEY + 1], kb[64];
        if (r->state != R_ITEM) return rfail(r, "item_end message outside an item");
        if (read_key(r, m, "item_end", key) < 0) return -1;
        if (strcmp(key, r->key))
            return rfail(r, "key mismatch: item_end says '%s'", shown(kb, sizeof kb, key, strlen(key)));
        for (int i = 0; i < r->ntracks; i++)
            if (!r->tracks[i]->ended)
                return rfail(r, "track '%s' (id %d) not ended at item_end", r->tracks[i]->name, r->tracks[i]->id);
        r->state = R_BETWEEN;
        ev->type = HAFM_EV_ITEM_END;
        ev->key = r->key;
        return 1;
    }
    int known = obj_str_eq(type, "track") ? 1 : obj_str_eq(type, "data") ? 2 : obj_str_eq(type, "end") ? 3 : 0;
    if (known) {
        static const char *names[] = { "", "track", "data", "end" };
        if (r->state != R_ITEM) return rfail(r, "%s message outside an item", names[known]);
        rc = known == 1 ? on_track(r, m, ev) : known == 2 ? on_data(r, m, ev) : on_end(r, m, ev);
        return rc < 0 ? -1 : 1;
    }
    ev->type = HAFM_EV_OTHER;
    return 1;
}

void hafm_event_to_f32(const hafm_event *ev, float *out)
{
    if (ev->type != HAFM_EV_DATA || !ev->track) return;
    hafm_convert_to_f32(out, ev->data, ev->track->dtype, (size_t)ev->frames * hafm_track_frame_elems(ev->track));
}

void hafm_event_to_i32(const hafm_event *ev, int32_t *out)
{
    if (ev->type != HAFM_EV_DATA || !ev->track) return;
    hafm_convert_to_i32(out, ev->data, ev->track->dtype, (size_t)ev->frames * hafm_track_frame_elems(ev->track));
}

/* ---- writer ------------------------------------------------------------------------------ */

typedef struct {
    int id;                    /* id in the output */
    int in_id;                 /* id in the input for passed-through tracks; -1 for own tracks */
    char name[HAFM_MAX_NAME + 1];
    int ended;
    int64_t frames, declared;  /* own tracks: frames written, frames announced (-1) */
    hafm_kind kind;
    hafm_dtype dtype;
    size_t elems, frame_bytes;
    int64_t vocab;
    int64_t chunk;             /* frames per data message */
} wtrack;

struct hafm_writer {
    FILE *fp;
    char *tool;
    msgpack_packer pk;
    int started;               /* header written */
    int in_item;
    char key[HAFM_MAX_KEY + 1];
    wtrack *tracks;
    int ntracks, cap_tracks;
    uint8_t used[MAX_IDS / 8]; /* output ids of the current item */
    int werrno;                /* first write error */
    int failed;
    uint8_t *scratch;          /* conversions, one data message */
    size_t scratch_cap;
};

static int wcallback(void *data, const char *buf, size_t len)
{
    hafm_writer *w = data;
    if (w->werrno) return -1;
    if (len && fwrite(buf, 1, len, w->fp) != len) {
        w->werrno = errno ? errno : EIO;
        return -1;
    }
    return 0;
}

/* Checks the sticky write error after a message. */
static int wdone(hafm_writer *w)
{
    if (w->werrno) {
        hafm_error("write error: %s", strerror(w->werrno));
        w->failed = 1;
        return -1;
    }
    return 0;
}

HAFM_PRINTF(2, 3) static int wfail(hafm_writer *w, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->in_item) hafm_error("output item '%s': %s", w->key, msg);
    else hafm_error("output: %s", msg);
    return -1;
}

hafm_writer *hafm_writer_open(FILE *fp, const char *tool)
{
    if (!fp) {
        hafm_error("no output stream");
        return NULL;
    }
    hafm_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->tool = strdup(tool ? tool : ""))) {
        free(w);
        hafm_error("out of memory");
        return NULL;
    }
    w->fp = fp;
    msgpack_packer_init(&w->pk, w, wcallback);
    return w;
}

void hafm_writer_free(hafm_writer *w)
{
    if (!w) return;
    free(w->tracks);
    free(w->scratch);
    free(w->tool);
    free(w);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* rate is "float or uint": whole numbers go as uint, as in the format's example. */
static void pack_number(msgpack_packer *pk, double v)
{
    if (v >= 0 && v < 18446744073709551616.0 && v == floor(v)) msgpack_pack_uint64(pk, (uint64_t)v);
    else msgpack_pack_double(pk, v);
}

static int ensure_header(hafm_writer *w)
{
    if (w->failed) {
        hafm_error("output: the stream already failed");
        return -1;
    }
    if (w->started) return 0;
    msgpack_packer *pk = &w->pk;
    msgpack_pack_map(pk, w->tool[0] ? 4 : 3);
    pack_cstr(pk, "type");
    pack_cstr(pk, "header");
    pack_cstr(pk, "magic");
    pack_cstr(pk, "hafm-stream");
    pack_cstr(pk, "version");
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint32(pk, HAFM_STREAM_MAJOR);
    msgpack_pack_uint32(pk, HAFM_STREAM_MINOR);
    if (w->tool[0]) {
        pack_cstr(pk, "tool");
        pack_cstr(pk, w->tool);
    }
    w->started = 1;
    return wdone(w);
}

static void pack_item_msg(hafm_writer *w, const char *type, const char *key)
{
    msgpack_pack_map(&w->pk, 2);
    pack_cstr(&w->pk, "type");
    pack_cstr(&w->pk, type);
    pack_cstr(&w->pk, "key");
    pack_cstr(&w->pk, key);
}

static int begin_item(hafm_writer *w, const char *key)
{
    if (w->in_item) return wfail(w, "item '%s' begins before the current item ended", key);
    w->in_item = 1;
    copy_str(w->key, sizeof w->key, key, strlen(key));
    w->ntracks = 0;
    memset(w->used, 0, sizeof w->used);
    return 0;
}

int hafm_write_item(hafm_writer *w, const char *key)
{
    if (ensure_header(w) < 0) return -1;
    if (!key || !item_key_ok(key, strlen(key))) {
        hafm_error("output: item key '%s' is not 1-255 bytes of UTF-8 without whitespace or control characters",
                   key ? key : "");
        return -1;
    }
    if (begin_item(w, key) < 0) return -1;
    pack_item_msg(w, "item", key);
    return wdone(w);
}

static wtrack *wfind_name(hafm_writer *w, const char *name)
{
    for (int i = 0; i < w->ntracks; i++)
        if (!strcmp(w->tracks[i].name, name)) return &w->tracks[i];
    return NULL;
}

static wtrack *wfind_own(hafm_writer *w, int id)
{
    for (int i = 0; i < w->ntracks; i++)
        if (w->tracks[i].in_id < 0 && w->tracks[i].id == id) return &w->tracks[i];
    return NULL;
}

static wtrack *wfind_in(hafm_writer *w, int in_id)
{
    for (int i = 0; i < w->ntracks; i++)
        if (w->tracks[i].in_id == in_id) return &w->tracks[i];
    return NULL;
}

static int id_used(const hafm_writer *w, int id) { return w->used[id >> 3] >> (id & 7) & 1; }
static void id_take(hafm_writer *w, int id) { w->used[id >> 3] |= (uint8_t)(1u << (id & 7)); }

static int smallest_free_id(const hafm_writer *w)
{
    for (int i = 0; i < MAX_IDS; i++)
        if (!id_used(w, i)) return i;
    return -1;
}

/* Registers a track of the output item; id < 0 picks the smallest free id. */
static wtrack *wadd(hafm_writer *w, const hafm_track *t, int id, int in_id, const char *name)
{
    if (!w->in_item) {
        wfail(w, "track '%s' declared outside an item", name);
        return NULL;
    }
    const wtrack *same = wfind_name(w, name);
    if (same) {
        wfail(w, "track name '%s' is already used by track %d", name, same->id);
        return NULL;
    }
    if (id < 0) id = smallest_free_id(w);
    if (id < 0) {
        wfail(w, "no free track id for '%s'", name);
        return NULL;
    }
    if (id_used(w, id)) {
        wfail(w, "track id %d of '%s' is already used", id, name);
        return NULL;
    }
    if (w->ntracks == w->cap_tracks) {
        int cap = w->cap_tracks ? 2 * w->cap_tracks : 8;
        wtrack *p = realloc(w->tracks, (size_t)cap * sizeof *p);
        if (!p) {
            hafm_error("out of memory");
            return NULL;
        }
        w->tracks = p;
        w->cap_tracks = cap;
    }
    wtrack *wt = &w->tracks[w->ntracks++];
    memset(wt, 0, sizeof *wt);
    wt->id = id;
    wt->in_id = in_id;
    copy_str(wt->name, sizeof wt->name, name, strlen(name));
    wt->declared = t ? t->frames : -1;
    if (t) {
        wt->kind = t->kind;
        wt->dtype = t->dtype;
        wt->elems = hafm_track_frame_elems(t);
        wt->frame_bytes = hafm_track_frame_bytes(t);
        wt->vocab = t->vocab;
        int64_t per = t->kind == HAFM_KIND_AUDIO ? t->sample_rate : TOKENS_FRAMES_PER_MESSAGE;
        int64_t cap = (int64_t)(DATA_MESSAGE_BYTES / (wt->frame_bytes ? wt->frame_bytes : 1));
        wt->chunk = per < cap ? per : cap;
        if (wt->chunk < 1) wt->chunk = 1;
    }
    id_take(w, id);
    return wt;
}

static void pack_kv(msgpack_packer *pk, const hafm_kv *kv, int n)
{
    msgpack_pack_map(pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        pack_cstr(pk, kv[i].key);
        switch (kv[i].type) {
        case HAFM_VAL_INT: msgpack_pack_int64(pk, kv[i].i); break;
        case HAFM_VAL_FLOAT: msgpack_pack_double(pk, kv[i].f); break;
        case HAFM_VAL_STR: pack_cstr(pk, kv[i].s ? kv[i].s : ""); break;
        case HAFM_VAL_BOOL: if (kv[i].i) msgpack_pack_true(pk); else msgpack_pack_false(pk); break;
        }
    }
}

static void pack_track(msgpack_packer *pk, const hafm_track *t, int id, const char *name)
{
    int n = 7 + (t->kind == HAFM_KIND_TOKENS) + 2 * (t->kind == HAFM_KIND_AUDIO) + (t->frames >= 0) +
            (t->producer_tool[0] != 0) + (t->nattrs > 0);
    msgpack_pack_map(pk, (size_t)n);
    pack_cstr(pk, "type"); pack_cstr(pk, "track");
    pack_cstr(pk, "id"); msgpack_pack_uint32(pk, (uint32_t)id);
    pack_cstr(pk, "name"); pack_cstr(pk, name);
    pack_cstr(pk, "kind"); pack_cstr(pk, hafm_kind_name(t->kind));
    pack_cstr(pk, "dtype"); pack_cstr(pk, hafm_dtype_name(t->dtype));
    pack_cstr(pk, "shape");
    msgpack_pack_array(pk, (size_t)t->ndim);
    for (int i = 0; i < t->ndim; i++) msgpack_pack_uint64(pk, (uint64_t)t->shape[i]);
    pack_cstr(pk, "rate"); pack_number(pk, t->rate);
    if (t->kind == HAFM_KIND_TOKENS) { pack_cstr(pk, "vocab"); msgpack_pack_uint64(pk, (uint64_t)t->vocab); }
    if (t->kind == HAFM_KIND_AUDIO) {
        pack_cstr(pk, "sample_rate"); msgpack_pack_uint32(pk, (uint32_t)t->sample_rate);
        pack_cstr(pk, "channels"); msgpack_pack_uint32(pk, (uint32_t)t->channels);
    }
    if (t->frames >= 0) { pack_cstr(pk, "frames"); msgpack_pack_uint64(pk, (uint64_t)t->frames); }
    if (t->producer_tool[0]) {
        pack_cstr(pk, "producer");
        msgpack_pack_map(pk, 3);
        pack_cstr(pk, "tool"); pack_cstr(pk, t->producer_tool);
        pack_cstr(pk, "version"); pack_cstr(pk, t->producer_version);
        pack_cstr(pk, "params"); pack_kv(pk, t->params, t->nparams);
    }
    if (t->nattrs > 0) { pack_cstr(pk, "attrs"); pack_kv(pk, t->attrs, t->nattrs); }
}

int hafm_write_track(hafm_writer *w, hafm_track *t)
{
    if (ensure_header(w) < 0) return -1;
    if (hafm_track_validate(t) < 0) return -1;
    if (hafm_track_frame_bytes(t) > HAFM_MAX_MESSAGE - 256)
        return wfail(w, "track '%s': a frame of %zu bytes does not fit in a 64 MiB message", t->name,
                     hafm_track_frame_bytes(t));
    wtrack *wt = wadd(w, t, t->id, -1, t->name);
    if (!wt) return -1;
    t->id = wt->id;
    pack_track(&w->pk, t, wt->id, t->name);
    return wdone(w);
}

static void pack_data_msg(msgpack_packer *pk, int id, int64_t frames, const void *data, size_t nbytes)
{
    msgpack_pack_map(pk, 4);
    pack_cstr(pk, "type"); pack_cstr(pk, "data");
    pack_cstr(pk, "track"); msgpack_pack_uint32(pk, (uint32_t)id);
    pack_cstr(pk, "frames"); msgpack_pack_uint64(pk, (uint64_t)frames);
    pack_cstr(pk, "payload");
    msgpack_pack_bin(pk, nbytes);
    msgpack_pack_bin_body(pk, data, nbytes);
}

static wtrack *own_open(hafm_writer *w, int id, const char *what)
{
    if (!w->in_item) {
        wfail(w, "%s for track %d outside an item", what, id);
        return NULL;
    }
    wtrack *wt = wfind_own(w, id);
    if (!wt) {
        wfail(w, "%s for track %d, which this writer did not declare", what, id);
        return NULL;
    }
    if (wt->ended) {
        wfail(w, "track '%s' (id %d): %s after end", wt->name, id, what);
        return NULL;
    }
    return wt;
}

/* One data message of already converted little-endian bytes. */
static int put_chunk(hafm_writer *w, wtrack *wt, const void *data, int64_t frames)
{
    if (wt->kind == HAFM_KIND_TOKENS) {
        int64_t v, i = bad_token(data, wt->dtype, (size_t)frames * wt->elems, wt->vocab, &v);
        if (i >= 0)
            return wfail(w, "track '%s' (id %d): token %lld at frame %lld is outside [0, %lld)", wt->name, wt->id,
                         (long long)v, (long long)(wt->frames + i / (int64_t)wt->elems), (long long)wt->vocab);
    }
    if (wt->declared >= 0 && frames > wt->declared - wt->frames)
        return wfail(w, "track '%s' (id %d): more than the %lld frames its declaration announces", wt->name,
                     wt->id, (long long)wt->declared);
    pack_data_msg(&w->pk, wt->id, frames, data, (size_t)frames * wt->frame_bytes);
    wt->frames += frames;
    return wdone(w);
}

int hafm_write_data(hafm_writer *w, int track_id, const void *data, int64_t frames)
{
    if (ensure_header(w) < 0) return -1;
    wtrack *wt = own_open(w, track_id, "data");
    if (!wt) return -1;
    if (frames < 0) return wfail(w, "track '%s': negative frame count", wt->name);
    const uint8_t *p = data;
    for (int64_t done = 0; done < frames;) {
        int64_t n = frames - done < wt->chunk ? frames - done : wt->chunk;
        if (put_chunk(w, wt, p + (size_t)done * wt->frame_bytes, n) < 0) return -1;
        done += n;
    }
    return 0;
}

static int32_t sat_i32(double x, double lo, double hi)
{
    if (isnan(x)) return 0;
    if (x <= lo) return (int32_t)lo;
    if (x >= hi) return (int32_t)hi;
    return (int32_t)lrint(x);
}

/* n values (float or int32 source) to the track's dtype, little-endian. */
static void convert_out(uint8_t *out, hafm_dtype t, const float *f, const int32_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double x = f ? (double)f[i] : (double)s[i];
        switch (t) {
        case HAFM_DT_U8: out[i] = (uint8_t)(f ? sat_i32(x, 0, 255) : s[i] < 0 ? 0 : s[i] > 255 ? 255 : s[i]); break;
        case HAFM_DT_I16: st16(out + 2 * i, (uint16_t)(int16_t)(f ? sat_i32(x, -32768, 32767)
                                                                  : s[i] < -32768 ? -32768 : s[i] > 32767 ? 32767 : s[i])); break;
        case HAFM_DT_U16: st16(out + 2 * i, (uint16_t)(f ? sat_i32(x, 0, 65535) : s[i] < 0 ? 0 : s[i] > 65535 ? 65535 : s[i])); break;
        case HAFM_DT_I32: st32(out + 4 * i, (uint32_t)(f ? sat_i32(x, -2147483648.0, 2147483647.0) : s[i])); break;
        case HAFM_DT_F16: st16(out + 2 * i, hafm_f32_to_f16((float)x)); break;
        case HAFM_DT_BF16: st16(out + 2 * i, hafm_f32_to_bf16((float)x)); break;
        case HAFM_DT_F32: { float v = f ? f[i] : (float)s[i]; uint32_t u; memcpy(&u, &v, 4); st32(out + 4 * i, u); break; }
        case HAFM_DT_F64: {
            uint64_t u;
            memcpy(&u, &x, 8);
            st32(out + 8 * i, (uint32_t)u);
            st32(out + 8 * i + 4, (uint32_t)(u >> 32));
            break;
        }
        default: break;
        }
    }
}

static int write_converted(hafm_writer *w, int track_id, const float *f, const int32_t *s, int64_t frames)
{
    if (ensure_header(w) < 0) return -1;
    wtrack *wt = own_open(w, track_id, "data");
    if (!wt) return -1;
    if (frames < 0) return wfail(w, "track '%s': negative frame count", wt->name);
    if (frames == 0) return 0;
    size_t need = (size_t)wt->chunk * wt->frame_bytes;
    if (need > w->scratch_cap) {
        uint8_t *p = realloc(w->scratch, need);
        if (!p) { hafm_error("out of memory"); return -1; }
        w->scratch = p;
        w->scratch_cap = need;
    }
    for (int64_t done = 0; done < frames;) {
        int64_t n = frames - done < wt->chunk ? frames - done : wt->chunk;
        size_t off = (size_t)done * wt->elems;
        convert_out(w->scratch, wt->dtype, f ? f + off : NULL, s ? s + off : NULL, (size_t)n * wt->elems);
        if (put_chunk(w, wt, w->scratch, n) < 0) return -1;
        done += n;
    }
    return 0;
}

int hafm_write_data_f32(hafm_writer *w, int track_id, const float *data, int64_t frames)
{
    return write_converted(w, track_id, data, NULL, frames);
}

int hafm_write_data_i32(hafm_writer *w, int track_id, const int32_t *data, int64_t frames)
{
    return write_converted(w, track_id, NULL, data, frames);
}

static void pack_end_msg(msgpack_packer *pk, int id, int64_t frames, int64_t source_samples, double source_rate)
{
    msgpack_pack_map(pk, source_samples >= 0 ? 5 : 3);
    pack_cstr(pk, "type"); pack_cstr(pk, "end");
    pack_cstr(pk, "track"); msgpack_pack_uint32(pk, (uint32_t)id);
    pack_cstr(pk, "frames"); msgpack_pack_uint64(pk, (uint64_t)frames);
    if (source_samples >= 0) {
        pack_cstr(pk, "source_samples"); msgpack_pack_uint64(pk, (uint64_t)source_samples);
        pack_cstr(pk, "source_rate"); pack_number(pk, source_rate);
    }
}

static int end_own(hafm_writer *w, wtrack *wt, int64_t source_samples, double source_rate)
{
    if (wt->declared >= 0 && wt->frames != wt->declared)
        return wfail(w, "track '%s' (id %d): %lld frames written, the declaration announces %lld", wt->name,
                     wt->id, (long long)wt->frames, (long long)wt->declared);
    pack_end_msg(&w->pk, wt->id, wt->frames, source_samples, source_rate);
    wt->ended = 1;
    return wdone(w);
}

int hafm_write_end(hafm_writer *w, int track_id, int64_t source_samples, double source_rate)
{
    if (ensure_header(w) < 0) return -1;
    wtrack *wt = own_open(w, track_id, "end");
    if (!wt) return -1;
    if (source_samples >= 0 && (!(source_rate > 0) || !isfinite(source_rate)))
        return wfail(w, "track '%s': source_rate must be positive with source_samples", wt->name);
    return end_own(w, wt, source_samples, source_rate);
}

/* Ends this writer's open tracks and checks the passed-through ones before item_end. */
static int close_item(hafm_writer *w)
{
    if (!w->in_item) return wfail(w, "item_end outside an item");
    for (int i = 0; i < w->ntracks; i++) {
        wtrack *wt = &w->tracks[i];
        if (wt->ended) continue;
        if (wt->in_id >= 0)
            return wfail(w, "passed-through track '%s' (id %d) has not ended", wt->name, wt->id);
        if (end_own(w, wt, -1, 0) < 0) return -1;
    }
    return 0;
}

int hafm_write_item_end(hafm_writer *w)
{
    if (ensure_header(w) < 0) return -1;
    if (close_item(w) < 0) return -1;
    pack_item_msg(w, "item_end", w->key);
    w->in_item = 0;
    return wdone(w);
}

/* Re-packs a message map, replacing the value of int_key (when int_val >= 0) and of str_key
 * (when str_val != NULL); every other entry is copied as it is. */
static void repack(msgpack_packer *pk, const msgpack_object *m, const char *int_key, int64_t int_val,
                   const char *str_key, const char *str_val)
{
    msgpack_pack_map(pk, m->via.map.size);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        msgpack_pack_object(pk, kv->key);
        if (int_key && int_val >= 0 && obj_str_eq(&kv->key, int_key)) msgpack_pack_uint64(pk, (uint64_t)int_val);
        else if (str_key && str_val && obj_str_eq(&kv->key, str_key)) pack_cstr(pk, str_val);
        else msgpack_pack_object(pk, kv->val);
    }
}

/* Emits the event's message: its exact input bytes when nothing changes and they are known,
 * otherwise a re-packed or (no raw message) rebuilt one with the output id and name. */
static int emit(hafm_writer *w, const hafm_event *ev, int out_id, const char *new_name)
{
    const void *bytes;
    size_t len;
    const msgpack_object *m = ev->raw;
    int in_id = ev->track ? ev->track->id : -1;
    int changed = (ev->track && out_id != in_id) || new_name;
    if (m && !changed && live_bytes(m, &bytes, &len)) {
        wcallback(w, bytes, len);
    } else if (m && m->type == MSGPACK_OBJECT_MAP) {
        const char *id_key = ev->type == HAFM_EV_TRACK ? "id" : "track";
        repack(&w->pk, m, ev->track && out_id != in_id ? id_key : NULL, out_id, new_name ? "name" : NULL, new_name);
    } else if (m) {
        msgpack_pack_object(&w->pk, *m);
    } else {
        switch (ev->type) {
        case HAFM_EV_ITEM: pack_item_msg(w, "item", ev->key); break;
        case HAFM_EV_ITEM_END: pack_item_msg(w, "item_end", ev->key); break;
        case HAFM_EV_TRACK: pack_track(&w->pk, ev->track, out_id, new_name ? new_name : ev->track->name); break;
        case HAFM_EV_DATA: pack_data_msg(&w->pk, out_id, ev->frames, ev->data, ev->nbytes); break;
        case HAFM_EV_END:
            pack_end_msg(&w->pk, out_id, ev->track->frames_seen, ev->track->source_samples, ev->track->source_rate);
            break;
        default:
            return wfail(w, "pass-through of a message without its raw form");
        }
    }
    return wdone(w);
}

static int passthrough(hafm_writer *w, const hafm_event *ev, const char *new_name)
{
    if (ev->type == HAFM_EV_HEADER) return 0;
    if (ensure_header(w) < 0) return -1;
    wtrack *wt;
    switch (ev->type) {
    case HAFM_EV_ITEM:
        if (!ev->key || begin_item(w, ev->key) < 0) return ev->key ? -1 : wfail(w, "item event without a key");
        return emit(w, ev, -1, NULL);
    case HAFM_EV_ITEM_END:
        if (!ev->key || !w->in_item || strcmp(ev->key, w->key))
            return wfail(w, "item_end of item '%s' does not close the output item", ev->key ? ev->key : "");
        if (close_item(w) < 0) return -1;
        w->in_item = 0;
        return emit(w, ev, -1, NULL);
    case HAFM_EV_TRACK: {
        if (!ev->track) return wfail(w, "track event without a track");
        const char *name = new_name ? new_name : ev->track->name;
        if (!track_name_ok(name, strlen(name)))
            return wfail(w, "track name '%s' is not 1-%d bytes of [A-Za-z0-9_.:+-]", name, HAFM_MAX_NAME);
        if (wfind_in(w, ev->track->id))
            return wfail(w, "input track id %d passed through twice", ev->track->id);
        /* keep the input's id unless an own track already took it */
        int in_id = ev->track->id;
        wt = wadd(w, ev->track, in_id >= 0 && in_id < MAX_IDS && !id_used(w, in_id) ? in_id : -1, in_id, name);
        if (!wt) return -1;
        return emit(w, ev, wt->id, new_name);
    }
    case HAFM_EV_DATA:
    case HAFM_EV_END:
        if (!ev->track) return wfail(w, "data or end event without a track");
        wt = w->in_item ? wfind_in(w, ev->track->id) : NULL;
        if (!wt) return wfail(w, "track id %d of the input was not passed through", ev->track->id);
        if (wt->ended) return wfail(w, "track '%s' (id %d): data after end", wt->name, wt->id);
        if (ev->type == HAFM_EV_END) wt->ended = 1;
        return emit(w, ev, wt->id, NULL);
    case HAFM_EV_OTHER:
        return emit(w, ev, -1, NULL);
    default:
        return wfail(w, "pass-through of an unknown event type %d", (int)ev->type);
    }
}

int hafm_write_passthrough(hafm_writer *w, const hafm_event *ev)
{
    return passthrough(w, ev, NULL);
}

int hafm_write_passthrough_renamed(hafm_writer *w, const hafm_event *ev, const char *new_name)
{
    if (ev->type != HAFM_EV_TRACK) return wfail(w, "only a track declaration can be renamed");
    return passthrough(w, ev, new_name);
}

int hafm_writer_close(hafm_writer *w)
{
    int rc = 0;
    if (w->in_item) rc = wfail(w, "item '%s' not ended", w->key);
    if (rc == 0 && !w->started && ensure_header(w) < 0) rc = -1;
    if (fflush(w->fp) != 0 || ferror(w->fp)) {
        if (!w->werrno) w->werrno = errno ? errno : EIO;
    }
    if (rc == 0 && w->werrno) {
        hafm_error("write error: %s", strerror(w->werrno));
        rc = -1;
    }
    hafm_writer_free(w);
    return rc;
}
