/* hafm/stream_tools.h - stream utilities behind hafm-dump, hafm-from-json, hafm-cmp and
 * hafm-tracks. */
#ifndef HAFM_STREAM_TOOLS_H
#define HAFM_STREAM_TOOLS_H

#include "stream.h"

/* Passes a TRACK event through under a new name; every other key of the declaration is kept.
 * Its data and end messages then pass through with hafm_write_passthrough as usual. */
int hafm_write_passthrough_renamed(hafm_writer *w, const hafm_event *ev, const char *new_name);

/* ---- JSON (hafm-dump, hafm-from-json) ----------------------------------------------------- */
/* One message as a JSON object (malloc'd, no newline), keys in wire order. Data payloads are
 * "<N bytes>" plus a "stats" object (min, max, mean, nonfinite) or, with full, an array of
 * every value, frame-major. NaN and infinities are the strings "NaN", "Infinity", "-Infinity". */
char *hafm_event_json(const hafm_event *ev, int full);
/* Any MessagePack object (const msgpack_object *) as JSON; binaries as "<N bytes>", or with
 * full as arrays of byte values. */
char *hafm_msgpack_json(const void *msgpack_obj, int full);
/* Element i of a little-endian payload of dtype t, as a double. */
double hafm_payload_elem(const void *payload, hafm_dtype t, size_t i);

/* JSON lines back to messages, written as they are (no validation, so that any stream, also
 * a broken one, can be written from text). A data payload given as an array of values is
 * packed in the dtype of the track of that id declared earlier in the item. */
typedef struct hafm_json_packer hafm_json_packer;
hafm_json_packer *hafm_json_packer_open(FILE *fp);
/* 1: a message written; 0: a blank line; -1 + error */
int  hafm_json_packer_line(hafm_json_packer *p, const char *line, size_t len);
void hafm_json_packer_free(hafm_json_packer *p);

/* ---- comparison (hafm-cmp) --------------------------------------------------------------- */
typedef struct {
    double atol, rtol;        /* audio and features: |a - b| <= atol + rtol * |b| (b from B) */
    int64_t max_token_diff;   /* tokens: differing tokens allowed per track and item */
    FILE *report;             /* one line per track and item with its largest difference, or NULL */
} hafm_cmp_opts;
/* Compares stream a with stream b, item by item (same keys in the same order) and track by track
 * (same names, kinds, dtypes, shapes, rates, vocabularies, codebook offsets and frame counts),
 * then the values. Headers, unknown message types, producers and other attributes are not
 * compared. 0: equal within tolerance; 1: different (the error says where); -1: read error. */
int hafm_stream_cmp(hafm_reader *a, hafm_reader *b, const char *name_a, const char *name_b,
                    const hafm_cmp_opts *o);

/* ---- selection (hafm-tracks) ------------------------------------------------------------- */
typedef struct {
    const char *const *keep;  /* only these tracks (by input name); NULL: all */
    int nkeep;
    const char *const *drop;  /* not these */
    int ndrop;
    const char *const *rename_from, *const *rename_to;   /* renamed, other keys kept */
    int nrename;
} hafm_tracks_opts;
/* Copies r to w, keeping, dropping and renaming tracks; every other message passes through
 * unchanged. A keep or rename name that no item has is an error (after the whole stream was
 * copied). 0, or -1 + error. */
int hafm_tracks_filter(hafm_reader *r, hafm_writer *w, const hafm_tracks_opts *o);

#endif
