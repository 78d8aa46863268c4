/* hafm/stream.h - reader and writer of hafm streams (formats/stream.md).
 *
 * Reading is event-driven: a small scanner reads each message's MessagePack headers as the bytes
 * arrive, so a message's length is known (and the 64 MiB limit enforced) before its payload is
 * buffered; the complete message is then parsed by msgpack-c from that buffer. Memory is bounded by
 * the largest message, never by the stream, and the exact input bytes are kept for byte-exact
 * pass-through. Writing packs straight into a FILE*.
 *
 *   hafm_reader *r = hafm_reader_open(stdin);
 *   hafm_writer *w = hafm_writer_open(stdout, "mytool");
 *   hafm_event ev;
 *   int rc;
 *   while ((rc = hafm_reader_next(r, &ev)) > 0) {
 *       if (ev.type == HAFM_EV_DATA && ev.track == wanted) consume(ev.data, ev.frames);
 *       if (hafm_write_passthrough(w, &ev) < 0) hafm_die_last();   // everything, unchanged
 *   }
 *   if (rc < 0) hafm_die_last();                                    // truncated/corrupt input
 */
#ifndef HAFM_STREAM_H
#define HAFM_STREAM_H

#include "common.h"

#define HAFM_STREAM_MAJOR 1
#define HAFM_STREAM_MINOR 0
#define HAFM_MAX_MESSAGE (64u << 20)   /* bytes; larger messages are rejected */
#define HAFM_MAX_NAME 64
#define HAFM_MAX_KEY 255
#define HAFM_MAX_DIMS 4
#define HAFM_MAX_PARAMS 32

typedef enum { HAFM_KIND_INVALID = 0, HAFM_KIND_AUDIO, HAFM_KIND_TOKENS, HAFM_KIND_FEATURES } hafm_kind;
const char *hafm_kind_name(hafm_kind k);
hafm_kind   hafm_kind_from_name(const char *name);

/* A scalar attribute or producer parameter. */
typedef enum { HAFM_VAL_INT, HAFM_VAL_FLOAT, HAFM_VAL_STR, HAFM_VAL_BOOL } hafm_val_type;
typedef struct {
    char key[HAFM_MAX_NAME + 1];
    hafm_val_type type;
    int64_t i;          /* INT, BOOL */
    double f;           /* FLOAT */
    char *s;            /* STR (owned by the track) */
} hafm_kv;

typedef struct hafm_track {
    int id;                         /* -1 when writing: the writer picks the smallest free id */
    char name[HAFM_MAX_NAME + 1];
    hafm_kind kind;
    hafm_dtype dtype;
    int ndim;
    int64_t shape[HAFM_MAX_DIMS];   /* per-frame shape */
    double rate;                    /* frames per second */
    int64_t vocab;                  /* tokens: vocabulary size; 0 otherwise */
    int sample_rate, channels;      /* audio only */
    int64_t frames;                 /* total frames if declared in advance, else -1 */
    /* producer (optional): tool, version, params */
    char producer_tool[HAFM_MAX_NAME + 1];
    char producer_version[32];
    int nparams;
    hafm_kv params[HAFM_MAX_PARAMS];
    int nattrs;
    hafm_kv attrs[HAFM_MAX_PARAMS];
    /* reader bookkeeping */
    int64_t frames_seen;            /* frames in data messages so far */
    int ended;
    int64_t source_samples;         /* from the end message; -1 if absent */
    double source_rate;
} hafm_track;

/* Fills a declaration with defaults (id -1, frames -1, source_samples -1, no producer). */
void hafm_track_init(hafm_track *t, const char *name, hafm_kind kind, hafm_dtype dtype,
                     int ndim, const int64_t *shape, double rate);
/* Convenience constructors. */
void hafm_track_init_audio(hafm_track *t, const char *name, hafm_dtype dtype, int sample_rate, int channels);
void hafm_track_init_tokens(hafm_track *t, const char *name, int codebooks, int64_t vocab, double rate);
void hafm_track_init_features(hafm_track *t, const char *name, int dim, double rate);
/* Producer and attributes; strings are copied. Returns -1 (error set) when full. */
int hafm_track_set_producer(hafm_track *t, const char *tool, const char *version);
int hafm_track_param_int(hafm_track *t, const char *key, int64_t v);
int hafm_track_param_float(hafm_track *t, const char *key, double v);
int hafm_track_param_str(hafm_track *t, const char *key, const char *v);
int hafm_track_attr_int(hafm_track *t, const char *key, int64_t v);
int hafm_track_attr_float(hafm_track *t, const char *key, double v);
int hafm_track_attr_str(hafm_track *t, const char *key, const char *v);
const hafm_kv *hafm_track_attr(const hafm_track *t, const char *key); /* NULL if absent */
int64_t hafm_track_attr_int_or(const hafm_track *t, const char *key, int64_t dflt);
void hafm_track_free(hafm_track *t);          /* frees owned strings, keeps the struct */
void hafm_track_copy(hafm_track *dst, const hafm_track *src); /* deep copy */
/* Elements per frame (product of shape) and bytes per frame. */
size_t hafm_track_frame_elems(const hafm_track *t);
size_t hafm_track_frame_bytes(const hafm_track *t);
/* Checks a declaration against the kind rules of formats/stream.md 3.3 (error set on -1). */
int hafm_track_validate(const hafm_track *t);

/* ---- reading ------------------------------------------------------------------------------ */
typedef enum {
    HAFM_EV_HEADER = 1,   /* a (possibly repeated) header */
    HAFM_EV_ITEM,         /* ev.key */
    HAFM_EV_TRACK,        /* ev.track: declaration (valid until the item ends) */
    HAFM_EV_DATA,         /* ev.track, ev.frames, ev.data (unaligned, little-endian, ev.nbytes) */
    HAFM_EV_END,          /* ev.track (frames_seen, source_samples/source_rate filled) */
    HAFM_EV_ITEM_END,     /* ev.key */
    HAFM_EV_OTHER         /* a message type this reader does not know: pass it through */
} hafm_event_type;

typedef struct hafm_event {
    hafm_event_type type;
    const char *key;              /* ITEM, ITEM_END: the item key */
    hafm_track *track;            /* TRACK, DATA, END */
    int64_t frames;               /* DATA */
    const void *data;             /* DATA: payload bytes */
    size_t nbytes;                /* DATA */
    /* the raw message, for byte-exact pass-through; valid until the next hafm_reader_next() */
    const void *raw;              /* really a const msgpack_object * */
} hafm_event;

typedef struct hafm_reader hafm_reader;
/* Reads from fp (not closed by the reader). name is used in messages ("stdin", a path). */
hafm_reader *hafm_reader_open(FILE *fp, const char *name);
/* 1: *ev filled; 0: clean end of stream; -1: error (truncated, corrupt, ...; error set).
 * Everything ev points to stays valid until the next call. */
int hafm_reader_next(hafm_reader *r, hafm_event *ev);
/* Tracks of the current item (valid until the next ITEM event). */
int hafm_reader_ntracks(const hafm_reader *r);
hafm_track *hafm_reader_track(hafm_reader *r, int index);
hafm_track *hafm_reader_find_track(hafm_reader *r, const char *name); /* NULL if absent */
const char *hafm_reader_item_key(const hafm_reader *r);               /* NULL outside items */
int64_t hafm_reader_items(const hafm_reader *r);                      /* items begun so far */
void hafm_reader_close(hafm_reader *r);

/* Copies a DATA payload into an aligned buffer converted to float / int32
 * (frames * hafm_track_frame_elems values). */
void hafm_event_to_f32(const hafm_event *ev, float *out);
void hafm_event_to_i32(const hafm_event *ev, int32_t *out);

/* ---- writing ------------------------------------------------------------------------------ */
typedef struct hafm_writer hafm_writer;
/* Writes to fp (not closed). tool names the header's "tool". The header is written before the
 * first message (or by hafm_writer_close for an empty stream). */
hafm_writer *hafm_writer_open(FILE *fp, const char *tool);
int hafm_write_item(hafm_writer *w, const char *key);
/* Declares a track in the current item. If t->id < 0 the writer picks the smallest free id and
 * stores it in t->id. Validates the declaration. */
int hafm_write_track(hafm_writer *w, hafm_track *t);
/* frames * frame_bytes bytes of little-endian data in the track's dtype. Large chunks are split
 * into messages of at most about 1 MiB. */
int hafm_write_data(hafm_writer *w, int track_id, const void *data, int64_t frames);
/* Same, converting from float / int32 to the track's dtype (saturating for integer dtypes;
 * float -> integer rounds to nearest). */
int hafm_write_data_f32(hafm_writer *w, int track_id, const float *data, int64_t frames);
int hafm_write_data_i32(hafm_writer *w, int track_id, const int32_t *data, int64_t frames);
/* Ends a track. source_samples < 0 omits source_samples/source_rate. */
int hafm_write_end(hafm_writer *w, int track_id, int64_t source_samples, double source_rate);
/* Ends the item; tracks this writer declared and has not ended are ended first. Fails if a
 * passed-through track is still open. */
int hafm_write_item_end(hafm_writer *w);
/* Re-emits the event's raw message unchanged and keeps the writer's view of the item in sync
 * (passed-through track ids are reserved, items begun and ended). HEADER events are dropped:
 * the writer writes its own header once. */
int hafm_write_passthrough(hafm_writer *w, const hafm_event *ev);
/* Writes the header if nothing was written, flushes, reports write errors (EPIPE etc.).
 * Fails if an item is still open. Frees w. */
int hafm_writer_close(hafm_writer *w);
/* Frees w without further checks (error paths). */
void hafm_writer_free(hafm_writer *w);

#endif
