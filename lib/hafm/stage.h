/* hafm/stage.h - what the three stage commands and the trainer share: token tracks of a stream
 * item <-> model sequences, windowed generation with classifier-free guidance, training crops. */
#ifndef HAFM_STAGE_H
#define HAFM_STAGE_H

#include "common.h"
#include "stream.h"
#include "transformer.h"
#include "sampling.h"

/* The tokens of one item for one model: every conditioning stream and (training) the target,
 * each frame-major [frames, Q] int32, cut or padded to whole units of the model's time grid. */
typedef struct {
    int n_cond;
    int32_t *cond[HAFM_TF_MAX_COND];
    int64_t cond_frames[HAFM_TF_MAX_COND];   /* frames as read (before padding) */
    int32_t *target;                         /* NULL when absent */
    int64_t target_frames;
    int64_t n_units;                         /* whole units covered (conditioning length, rounded up) */
    int64_t out_frames;                      /* target frames matching the conditioning duration */
} hafm_stage_item;

/* Checks a track declaration against a model stream: kind tokens, integer dtype, shape [Q],
 * rate, vocab, codebook_offset. Errors read "track 'NAME': ...". */
int hafm_stage_check_track(const hafm_track *t, const hafm_tf_stream *s);

/* Collects the tracks named cond_names[i] (and target_name, if not NULL) of the current item from
 * data events. Usage: hafm_stage_collector_begin at ITEM, _event on every event, _finish at
 * ITEM_END. A missing conditioning track is an error at finish. */
typedef struct hafm_stage_collector hafm_stage_collector;
hafm_stage_collector *hafm_stage_collector_new(const hafm_tf_config *c, const char *const *cond_names,
                                               const char *target_name);
void hafm_stage_collector_free(hafm_stage_collector *k);
void hafm_stage_collector_begin(hafm_stage_collector *k);
int  hafm_stage_collector_event(hafm_stage_collector *k, const hafm_event *ev);
/* Fills *item (owned by the caller afterwards: hafm_stage_item_free). need_target: the target
 * track must be present. */
int  hafm_stage_collector_finish(hafm_stage_collector *k, hafm_stage_item *item, int need_target);
void hafm_stage_item_free(hafm_stage_item *it);

/* ---- generation ------------------------------------------------------------------------------------ */
typedef struct {
    hafm_sampler sampler;
    uint64_t seed;
    double overlap_seconds;  /* carried prompt between windows (formats/model.md section 4) */
    int use_bf16;            /* bf16 weights in the decode GEMVs */
    /* called after each generated frame; may be NULL */
    void (*progress)(void *ctx, int64_t done_frames, int64_t total_frames);
    void *progress_ctx;
} hafm_gen_opts;

void hafm_gen_opts_default(hafm_gen_opts *o);

typedef struct hafm_generator hafm_generator;
hafm_generator *hafm_generator_new(const hafm_tf_model *m, const hafm_gen_opts *o);
void hafm_generator_free(hafm_generator *g);
/* Generates the target of an item: out [n_units * frames_per_unit(target), Q] (malloc'd), of
 * which the first item->out_frames frames match the input duration. *frames receives the latter.
 * rng drives the sampling (seed it per item for reproducible output). */
int32_t *hafm_generate(hafm_generator *g, const hafm_stage_item *item, hafm_rand *rng, int64_t *frames);

/* Reads every item of a stream file ("-": stdin) that has the conditioning tracks and the target
 * track, appending to *items (*n items, realloc'd). Items lacking a track are skipped and
 * counted in *skipped. Errors (unreadable file, wrong track types) return -1. */
int hafm_stage_read_items(const char *path, const hafm_tf_config *c, const char *const *cond_names,
                          const char *target_name, hafm_stage_item **items, int *n, int *skipped);

/* ---- training crops ---------------------------------------------------------------------------- */
/* Writes one training sequence tokens[L] of layout lay from units [u0, u0 + lay->n_units) of an
 * item, with the conditioning replaced by null tokens when drop_cond. */
void hafm_stage_crop(const hafm_tf_model *m, const hafm_tf_layout *lay, const hafm_stage_item *it,
                     int64_t u0, int drop_cond, int32_t *tokens);

#endif
