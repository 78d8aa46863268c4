/* hafm/accompany.h - the whole HAFM pipeline for one vocal file (hafm-accompany):
 *
 *   hubert-tok < vocal | hafm-stage1 | hafm-stage2 | hafm-stage3 | encodec-dec > accompaniment
 *
 * then the vocal and the accompaniment mixed, loudness-matched with libebur128 (ITU-R BS.1770).
 *
 * The stages run as the sibling executables, one after another, each reading the previous one's
 * stream from a temporary file: every stage needs an item's whole conditioning before it
 * generates, so a pipe would gain no overlap, while separate runs give each stage's time, keep
 * one model in memory at a time, and run exactly the commands a user would type (whatever stage
 * or codec implementation is installed beside this one).
 */
#ifndef HAFM_ACCOMPANY_H
#define HAFM_ACCOMPANY_H

#include "common.h"
#include "audio.h"

#define HAFM_ACCOMPANY_STEPS 5

typedef struct {
    const char *vocal;          /* input audio file, any format, rate and length */
    const char *mix_out;        /* vocal + accompaniment (NULL: none) */
    const char *accomp_out;     /* the accompaniment alone (NULL: none) */
    const char *accomp_in;      /* mix this accompaniment instead of generating one (NULL: generate) */
    const char *models;         /* directory with codec, centroids, stage1-3 .safetensors */
    const char *features;       /* hubert-tok -F: mfcc, logmel or hubert (NULL: the centroids') */
    const char *hubert_model;   /* hubert-tok -m when features is hubert (NULL: its default) */
    const char *bin_dir;        /* where the commands are (NULL: beside this executable, else PATH) */
    uint64_t seed;
    double cfg_scale, temperature, top_p;
    long top_k;
    double balance_db;          /* vocal loudness minus accompaniment loudness, LU */
    int threads;                /* passed to every command; 0: their default */
    int quiet;                  /* no timing lines */
} hafm_accompany_opts;

void hafm_accompany_opts_default(hafm_accompany_opts *o);

/* The model directory: dir if given, else $HAFM_MODELS, else ../share/hafm/models or ../models
 * beside the executable, the first that holds stage1.safetensors. Malloc'd; NULL + error. */
char *hafm_accompany_models_dir(const char *dir);

typedef struct {
    const char *name[HAFM_ACCOMPANY_STEPS];
    double seconds[HAFM_ACCOMPANY_STEPS];
    double mix_seconds;
    double vocal_lufs, accomp_lufs, accomp_gain_db, peak_gain_db;
} hafm_accompany_report;

/* Runs the pipeline and writes the requested files (atomically). */
int hafm_accompany(const hafm_accompany_opts *o, hafm_accompany_report *rep);

/* Mixes vocal and accompaniment into out at the vocal's rate and channel count: the
 * accompaniment (resampled, mono or per channel) is scaled so that its integrated loudness is
 * balance_db below the vocal's, the sum is trimmed or padded to the vocal's length, then both are
 * scaled down together if the sum's peak would exceed 0.99. Silent inputs (no gated loudness)
 * keep unit gain. Fills the loudness fields of rep (may be NULL). */
int hafm_mix_loudness(const hafm_audio *vocal, const hafm_audio *accomp, double balance_db, hafm_audio *out,
                      hafm_accompany_report *rep);

/* Integrated loudness (LUFS) of a; -HUGE_VAL for silence. */
int hafm_loudness(const hafm_audio *a, double *lufs);

#endif
