/* hafm/train.h - training a stage model: AdamW, learning-rate schedule, random aligned crops with
 * condition dropout, data-parallel gradient reduction through a caller-supplied allreduce,
 * validation, resumable checkpoints. */
#ifndef HAFM_TRAIN_H
#define HAFM_TRAIN_H

#include "common.h"
#include "transformer.h"
#include "stage.h"
#include "sampling.h"

typedef struct {
    double lr;              /* peak learning rate [1e-4] */
    double lr_min;          /* final learning rate of the cosine decay [lr / 10] */
    double weight_decay;    /* decoupled, on 2-D weights only [0.01] */
    double beta1, beta2, eps;
    double clip;            /* global gradient-norm clip, 0 = off [1.0] */
    int64_t warmup;         /* linear warmup steps */
    int64_t steps;          /* total steps (the schedule's length) */
    int batch;              /* global batch (crops per step, over all processes) */
    int micro_batch;        /* crops per forward/backward pass (memory) */
    double cond_dropout;    /* probability of the null conditioning [0.1] */
    int window_units;       /* crop length in units */
    uint64_t seed;
    /* Loss weight of each target codebook (n_codebook_weights = the target's codebooks), or
     * n_codebook_weights = 0 for all equal. The trainer scales them to mean 1, so the loss stays
     * a mean cross-entropy; logged and validated losses are unweighted. */
    int n_codebook_weights;
    float codebook_weights[64];
} hafm_train_opts;

void hafm_train_opts_default(hafm_train_opts *o);

/* Learning rate at step (0-based): linear warmup to lr, then cosine to lr_min at `steps`. */
double hafm_lr_at(const hafm_train_opts *o, int64_t step);

/* Sums n floats / doubles over all processes in place (MPI_Allreduce); NULL for one process. */
typedef struct {
    int rank, world;
    void (*sum_f32)(float *buf, size_t n, void *ctx);
    void (*sum_f64)(double *buf, size_t n, void *ctx);
    void *ctx;
} hafm_comm;

typedef struct {
    int64_t step;           /* steps done */
    int64_t tokens;         /* target tokens trained on (global) */
    hafm_rand rng;           /* crop and dropout draws */
} hafm_train_state;

typedef struct hafm_trainer hafm_trainer;

/* Takes ownership of nothing; items must outlive the trainer. Items shorter than the window
 * are skipped; none long enough is an error. */
hafm_trainer *hafm_trainer_new(hafm_tf_model *m, const hafm_train_opts *o, const hafm_comm *comm,
                               const hafm_stage_item *items, int n_items);
void hafm_trainer_free(hafm_trainer *t);
hafm_train_state *hafm_trainer_state(hafm_trainer *t);

typedef struct {
    double loss;            /* mean cross-entropy over the step's target tokens */
    double acc;             /* argmax accuracy */
    double grad_norm;       /* before clipping */
    double lr;
} hafm_step_stats;

/* One optimisation step over a global batch. */
int hafm_trainer_step(hafm_trainer *t, hafm_step_stats *st);
/* Mean loss and accuracy over fixed crops of the items (consecutive windows from the start of
 * each item, at most max_crops in all; no dropout). */
int hafm_trainer_eval(hafm_trainer *t, const hafm_stage_item *items, int n_items, int max_crops,
                      double *loss, double *acc);

/* Checkpoint = model file + AdamW moments + state (formats/model.md section 5). training_json
 * (may be NULL) becomes the `training` metadata. Atomic. */
int hafm_trainer_save(hafm_trainer *t, const char *path, const char *training_json, int with_optimizer);
/* The plain model (no optimizer state) with its weights stored as dtype (f32, bf16 or f16). */
int hafm_trainer_export(hafm_trainer *t, const char *path, const char *training_json, hafm_dtype dtype);
/* Rounds every weight to dtype and back (what a model exported as dtype computes with). */
void hafm_trainer_round_weights(hafm_trainer *t, hafm_dtype dtype);
/* Restores moments and state from a checkpoint whose parameters were loaded into the model. */
int hafm_trainer_restore(hafm_trainer *t, const hafm_safetensors *st);

/* Renders the training curves of a hafm-train JSON-lines log as a PNG with gnuplot: loss and
 * token accuracy against step, training and validation. */
int hafm_train_plot(const char *log_path, const char *png_path);

#endif
