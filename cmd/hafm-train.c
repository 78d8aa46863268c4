/* hafm-train - trains a HAFM stage model from token streams (see hafm-train(1)). Data-parallel
 * under MPI: `mpirun -np N hafm-train ...` splits each global batch among the processes and sums
 * the gradients with MPI_Allreduce; rank 0 writes the log, checkpoints and plots. */
#include "hafm.h"
#include "hafm/train.h"

#include <cJSON.h>
#include <getopt.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] -o CHECKPOINT TRAIN.hafm...\n"
            "Trains a stage model on the items of the training streams (conditioning and target token\n"
            "tracks): random aligned crops, teacher forcing, condition dropout, AdamW. Under mpirun the\n"
            "global batch is split among the processes.\n\n"
            "Model (a new run needs --stage or --config):\n"
            "      --stage N          paper configuration of stage N, 1..3\n"
            "      --config FILE      configuration JSON (formats/model.md section 2)\n"
            "      --layers N         blocks, 1..256                      [config: 12]\n"
            "      --d-model N        width, a multiple of --heads        [config: 512]\n"
            "      --heads N          attention heads, 1..256             [config: 8]\n"
            "      --d-ff N           GEGLU inner width, 1..65536         [config: 1365]\n"
            "      --buckets N        relative position buckets, 2..1024 [config: 32]\n"
            "      --window SEC       crop length in seconds, whole time units   [config: 10]\n"
            "      --aligned-conditioning  also add each conditioning frame's embeddings at the\n"
            "                         target positions of its time (not in the paper; model format 2)\n"
            "      --init MODEL       start from this model's weights (same architecture)\n"
            "  -c, --cond NAME        conditioning track names, once per condition   [config]\n"
            "      --target NAME      target track name                   [config]\n"
            "Optimisation:\n"
            "      --steps N          optimisation steps, 1..1e9          [10000]\n"
            "      --batch N          global batch in crops, 1..65536     [8]\n"
            "      --micro-batch N    crops per forward/backward pass, 1..batch   [1]\n"
            "      --lr X             peak learning rate, (0, 1]          [1e-4]\n"
            "      --lr-min X         final learning rate (cosine decay), [0, lr]   [lr/10]\n"
            "      --warmup N         linear warmup steps, 0..steps       [100, at most steps/10]\n"
            "      --weight-decay X   AdamW decoupled weight decay, 0..1  [0.01]\n"
            "      --clip X           gradient-norm clip, 0 = off, 0..1e6 [1]\n"
            "      --cond-dropout P   null-conditioning probability, 0..1 [0.1]\n"
            "      --codebook-weights LIST  loss weight of each target codebook, comma-separated,\n"
            "                         0..1e6, scaled to mean 1 (e.g. 4,1,1,1 stresses codebook 1;\n"
            "                         the logged and validation losses stay unweighted)   [all equal]\n"
            "      --seed N           crops and dropout, 0..2^63-1        [1]\n"
            "Output and monitoring:\n"
            "  -o, --output FILE      checkpoint, written atomically every --save-every steps and at the end\n"
            "      --save-every N     steps between checkpoints, 1..1e9   [1000]\n"
            "      --export FILE      at the end also write a plain model (no optimizer state)\n"
            "      --export-dtype T   its weights as f32, bf16 or f16; with --val, the rounded\n"
            "                         weights are validated too and logged   [f32]\n"
            "      --val FILE         held-out stream: validation loss and token accuracy\n"
            "      --val-every N      steps between validations, 1..1e9  [100]\n"
            "      --val-crops N      validation crops (consecutive windows), 1..1e6   [64]\n"
            "      --log FILE         JSON-lines log (appended)\n"
            "      --plot PNG         training curves from the log at the end (gnuplot)\n"
            "      --plot-only        only render --plot from --log, no training\n"
            "      --resume FILE      continue a checkpoint bit-identically (its hyperparameters;\n"
            "                         --steps may extend the run)\n"
            "      --stop-at N        stop after step N as if interrupted (checkpoint written)\n"
            "      --print-params     print the parameter count of the configuration and exit\n"
            "      --sampling JSON    sampling defaults the model carries for hafm-stageN, e.g.\n"
            "                         '{\"temperature\":1,\"top_k\":0}' (keys cfg_scale, temperature, top_k,\n"
            "                         top_p; replaces the config's; with --resume and no steps left,\n"
            "                         re-exports)                          [the config's, else none]\n"
            "  -t, --threads N        threads per process, 1..1024       [$HAFM_THREADS or all CPUs]\n"
            "  -q, --quiet            no progress line\n"
            "  -h, --help             this help\n"
            "      --version          version\n",
            hafm_progname);
}

static void sum_f32(float *buf, size_t n, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < n; i += 1u << 30)
        MPI_Allreduce(MPI_IN_PLACE, buf + i, (int)(n - i < (1u << 30) ? n - i : (1u << 30)), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

static void sum_f64(double *buf, size_t n, void *ctx)
{
    (void)ctx;
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

static int rank;

/* Errors on any rank end every process. */
static void die_all(void)
{
    fprintf(stderr, "%s: %s\n", hafm_progname, hafm_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

static char *training_json(const hafm_train_opts *o, const hafm_train_state *st, char **data, int ndata,
                           double val_loss, double val_acc, int micro_batch)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "tool", "hafm-train");
    cJSON_AddStringToObject(j, "version", HAFM_VERSION);
    cJSON_AddNumberToObject(j, "step", (double)st->step);
    cJSON_AddNumberToObject(j, "tokens", (double)st->tokens);
    cJSON_AddNumberToObject(j, "steps", (double)o->steps);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "lr_min", o->lr_min);
    cJSON_AddNumberToObject(j, "warmup", (double)o->warmup);
    cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(j, "clip", o->clip);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "micro_batch", micro_batch);
    cJSON_AddNumberToObject(j, "cond_dropout", o->cond_dropout);
    cJSON_AddNumberToObject(j, "window_units", o->window_units);
    if (o->n_codebook_weights) {
        cJSON *w = cJSON_AddArrayToObject(j, "codebook_weights");
        for (int q = 0; q < o->n_codebook_weights; q++) cJSON_AddItemToArray(w, cJSON_CreateNumber(o->codebook_weights[q]));
    }
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON *d = cJSON_AddArrayToObject(j, "data");
    for (int i = 0; i < ndata; i++) cJSON_AddItemToArray(d, cJSON_CreateString(data[i]));
    if (!isnan(val_loss)) {
        cJSON_AddNumberToObject(j, "val_loss", val_loss);
        cJSON_AddNumberToObject(j, "val_acc", val_acc);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* Hyperparameters of a resumed run come from its checkpoint, so the continuation is identical. */
static void opts_from_json(hafm_train_opts *o, const char *json)
{
    cJSON *j = cJSON_Parse(json ? json : "");
    const cJSON *x;
#define GET(key, field) if ((x = cJSON_GetObjectItemCaseSensitive(j, key)) && cJSON_IsNumber(x)) o->field = x->valuedouble
    GET("lr", lr); GET("lr_min", lr_min); GET("weight_decay", weight_decay); GET("clip", clip);
    GET("cond_dropout", cond_dropout);
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "steps")) && cJSON_IsNumber(x)) o->steps = (int64_t)x->valuedouble;
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "warmup")) && cJSON_IsNumber(x)) o->warmup = (int64_t)x->valuedouble;
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "batch")) && cJSON_IsNumber(x)) o->batch = (int)x->valuedouble;
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "micro_batch")) && cJSON_IsNumber(x)) o->micro_batch = (int)x->valuedouble;
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "window_units")) && cJSON_IsNumber(x)) o->window_units = (int)x->valuedouble;
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "seed")) && cJSON_IsString(x)) o->seed = strtoull(x->valuestring, NULL, 10);
    o->n_codebook_weights = 0;
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "codebook_weights")) && cJSON_IsArray(x)) {
        const cJSON *w;
        cJSON_ArrayForEach(w, x) {
            if (o->n_codebook_weights < 64 && cJSON_IsNumber(w)) o->codebook_weights[o->n_codebook_weights++] = (float)w->valuedouble;
        }
    }
#undef GET
    cJSON_Delete(j);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    hafm_init(argc, argv);
    hafm_keep_freed_memory();
    enum { O_STAGE = 256, O_CONFIG, O_LAYERS, O_DMODEL, O_HEADS, O_DFF, O_BUCKETS, O_WINDOW, O_ALIGNED, O_INIT, O_TARGET,
           O_STEPS, O_BATCH, O_MICRO, O_LR, O_LRMIN, O_WARMUP, O_WD, O_CLIP, O_DROP, O_SEED, O_SAVE, O_EXPORT, O_EXPORT_DTYPE,
           O_VAL, O_VALEVERY, O_VALCROPS, O_LOG, O_PLOT, O_PLOTONLY, O_RESUME, O_STOPAT, O_PRINT, O_SAMPLING, O_CBW, O_VERSION };
    static const struct option lo[] = {
        { "stage", 1, 0, O_STAGE }, { "config", 1, 0, O_CONFIG }, { "layers", 1, 0, O_LAYERS },
        { "d-model", 1, 0, O_DMODEL }, { "heads", 1, 0, O_HEADS }, { "d-ff", 1, 0, O_DFF },
        { "buckets", 1, 0, O_BUCKETS }, { "window", 1, 0, O_WINDOW }, { "init", 1, 0, O_INIT },
        { "aligned-conditioning", 0, 0, O_ALIGNED },
        { "cond", 1, 0, 'c' }, { "target", 1, 0, O_TARGET }, { "steps", 1, 0, O_STEPS }, { "batch", 1, 0, O_BATCH },
        { "micro-batch", 1, 0, O_MICRO }, { "lr", 1, 0, O_LR }, { "lr-min", 1, 0, O_LRMIN },
        { "warmup", 1, 0, O_WARMUP }, { "weight-decay", 1, 0, O_WD }, { "clip", 1, 0, O_CLIP },
        { "cond-dropout", 1, 0, O_DROP }, { "codebook-weights", 1, 0, O_CBW }, { "seed", 1, 0, O_SEED }, { "output", 1, 0, 'o' },
        { "save-every", 1, 0, O_SAVE }, { "export", 1, 0, O_EXPORT }, { "export-dtype", 1, 0, O_EXPORT_DTYPE }, { "val", 1, 0, O_VAL },
        { "val-every", 1, 0, O_VALEVERY }, { "val-crops", 1, 0, O_VALCROPS }, { "log", 1, 0, O_LOG },
        { "plot", 1, 0, O_PLOT }, { "plot-only", 0, 0, O_PLOTONLY }, { "resume", 1, 0, O_RESUME },
        { "stop-at", 1, 0, O_STOPAT }, { "print-params", 0, 0, O_PRINT }, { "sampling", 1, 0, O_SAMPLING }, { "threads", 1, 0, 't' },
        { "quiet", 0, 0, 'q' }, { "help", 0, 0, 'h' }, { "version", 0, 0, O_VERSION }, { 0, 0, 0, 0 }
    };
    hafm_train_opts o;
    hafm_train_opts_default(&o);
    int stage = 0, layers = 0, dmodel = 0, heads = 0, dff = 0, buckets = 0, quiet = 0, print_params = 0, plot_only = 0;
    int aligned = 0, have_lrmin = 0, have_warmup = 0, have_steps = 0, ncond = 0;
    double window = 0.0;
    long save_every = 1000, val_every = 100, val_crops = 64, stop_at = 0;
    const char *config = NULL, *init = NULL, *target = NULL, *out = NULL, *export = NULL, *val = NULL;
    hafm_dtype export_dtype = HAFM_DT_F32;
    const char *log_path = NULL, *plot = NULL, *resume = NULL, *conds[HAFM_TF_MAX_COND] = { 0 };
    hafm_tf_sampling sampling;
    int have_sampling = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:o:t:qh", lo, NULL)) != -1) {
        switch (opt) {
        case O_STAGE: stage = (int)hafm_opt_long("--stage", optarg, 1, 3); break;
        case O_CONFIG: config = optarg; break;
        case O_LAYERS: layers = (int)hafm_opt_long("--layers", optarg, 1, 256); break;
        case O_DMODEL: dmodel = (int)hafm_opt_long("--d-model", optarg, 1, 16384); break;
        case O_HEADS: heads = (int)hafm_opt_long("--heads", optarg, 1, 256); break;
        case O_DFF: dff = (int)hafm_opt_long("--d-ff", optarg, 1, 65536); break;
        case O_BUCKETS: buckets = (int)hafm_opt_long("--buckets", optarg, 2, 1024); break;
        case O_WINDOW: window = hafm_opt_double("--window", optarg, 1e-3, 3600.0); break;
        case O_INIT: init = optarg; break;
        case O_ALIGNED: aligned = 1; break;
        case 'c':
            if (ncond == HAFM_TF_MAX_COND) hafm_usage_error("-c: at most %d conditioning tracks", HAFM_TF_MAX_COND);
            conds[ncond++] = optarg;
            break;
        case O_TARGET: target = optarg; break;
        case O_STEPS: o.steps = hafm_opt_long("--steps", optarg, 1, 1000000000); have_steps = 1; break;
        case O_BATCH: o.batch = (int)hafm_opt_long("--batch", optarg, 1, 65536); break;
        case O_MICRO: o.micro_batch = (int)hafm_opt_long("--micro-batch", optarg, 1, 65536); break;
        case O_LR: o.lr = hafm_opt_double("--lr", optarg, 1e-12, 1.0); break;
        case O_LRMIN: o.lr_min = hafm_opt_double("--lr-min", optarg, 0.0, 1.0); have_lrmin = 1; break;
        case O_WARMUP: o.warmup = hafm_opt_long("--warmup", optarg, 0, 1000000000); have_warmup = 1; break;
        case O_WD: o.weight_decay = hafm_opt_double("--weight-decay", optarg, 0.0, 1.0); break;
        case O_CLIP: o.clip = hafm_opt_double("--clip", optarg, 0.0, 1e6); break;
        case O_DROP: o.cond_dropout = hafm_opt_double("--cond-dropout", optarg, 0.0, 1.0); break;
        case O_CBW: {
            double w[64];
            o.n_codebook_weights = hafm_opt_double_list("--codebook-weights", optarg, w, 64, 0.0, 1e6);
            double sum = 0.0;
            for (int q = 0; q < o.n_codebook_weights; q++) sum += (o.codebook_weights[q] = (float)w[q]);
            if (!(sum > 0.0)) hafm_usage_error("--codebook-weights: at least one weight must be positive");
            break;
        }
        case O_SEED: o.seed = (uint64_t)hafm_opt_long("--seed", optarg, 0, INT64_MAX); break;
        case 'o': out = optarg; break;
        case O_SAVE: save_every = hafm_opt_long("--save-every", optarg, 1, 1000000000); break;
        case O_EXPORT: export = optarg; break;
        case O_EXPORT_DTYPE:
            export_dtype = hafm_dtype_from_name(optarg);
            if (export_dtype != HAFM_DT_F32 && export_dtype != HAFM_DT_BF16 && export_dtype != HAFM_DT_F16)
                hafm_usage_error("--export-dtype: expected f32, bf16 or f16, got '%s'", optarg);
            break;
        case O_VAL: val = optarg; break;
        case O_VALEVERY: val_every = hafm_opt_long("--val-every", optarg, 1, 1000000000); break;
        case O_VALCROPS: val_crops = hafm_opt_long("--val-crops", optarg, 1, 1000000); break;
        case O_LOG: log_path = optarg; break;
        case O_PLOT: plot = optarg; break;
        case O_PLOTONLY: plot_only = 1; break;
        case O_RESUME: resume = optarg; break;
        case O_STOPAT: stop_at = hafm_opt_long("--stop-at", optarg, 1, 1000000000); break;
        case O_PRINT: print_params = 1; break;
        case O_SAMPLING:
            if (hafm_tf_sampling_from_json(&sampling, optarg) < 0) hafm_usage_error("--sampling: %s", hafm_last_error());
            have_sampling = 1;
            break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); MPI_Finalize(); return 0;
        case O_VERSION: hafm_print_version();
        default: hafm_usage_error("unknown option");
        }
    }
    if (plot && !log_path) hafm_usage_error("--plot draws the curves of --log FILE: give both");
    if (plot_only) {
        if (!plot || !log_path) hafm_usage_error("--plot-only needs --plot PNG and --log FILE");
        if (rank == 0 && hafm_train_plot(log_path, plot) < 0) die_all();
        MPI_Finalize();
        return 0;
    }

    /* ---- the model ---- */
    hafm_tf_model *m = NULL;
    hafm_safetensors *ckpt = NULL;
    if (resume) {
        if (stage || config || init) hafm_usage_error("--resume takes the model from the checkpoint: no --stage, --config or --init");
        ckpt = hafm_st_open(resume);
        if (!ckpt || !(m = hafm_tf_load_st(ckpt, 0))) die_all();
        int64_t steps_opt = o.steps;
        opts_from_json(&o, hafm_st_meta(ckpt, "training"));
        if (have_steps) o.steps = steps_opt;
    } else {
        hafm_tf_config c;
        if (init) {
            hafm_tf_model *im = hafm_tf_load(init, 0);
            if (!im) die_all();
            c = im->cfg;
            m = im;
        } else if (config) {
            FILE *f = fopen(config, "r");
            if (!f) hafm_die("%s:", config);
            char buf[65536];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = 0;
            if (hafm_tf_config_from_json(&c, buf) < 0) hafm_die("%s: %s", config, hafm_last_error());
        } else if (stage) {
            hafm_tf_config_paper(&c, stage);
        } else {
            hafm_usage_error("a new run needs --stage N, --config FILE or --init MODEL");
        }
        if (!init) {
            if (layers) c.n_layer = layers;
            if (dmodel) c.d_model = dmodel;
            if (heads) c.n_head = heads;
            if (dff) c.d_ff = dff;
            if (buckets) c.rel_buckets = buckets;
            if (buckets && c.rel_max_distance <= buckets / 2) c.rel_max_distance = 4 * buckets;
            if (window > 0) c.window_seconds = window;
            if (aligned) c.aligned_conditioning = 1;
            if (hafm_tf_config_validate(&c) < 0) hafm_usage_error("%s", hafm_last_error());
            m = hafm_tf_new(&c);
            hafm_tf_init_random(m, o.seed);
        } else if (layers || dmodel || heads || dff || buckets || window > 0 || aligned) {
            hafm_usage_error("--init keeps the model's architecture and window");
        }
        o.window_units = hafm_tf_window_units(&m->cfg);
        if (!have_lrmin) o.lr_min = o.lr / 10.0;
        if (!have_warmup) o.warmup = o.steps / 10 < 100 ? o.steps / 10 : 100;
    }
    if (have_sampling) m->cfg.sampling = sampling;
    if (print_params) {
        if (rank == 0) {
            hafm_tf_layout lay;
            hafm_tf_layout_init(&lay, &m->cfg, hafm_tf_window_units(&m->cfg));
            printf("stage %d: %zu parameters, window %g s = %d tokens\n", m->cfg.stage, m->n_params, m->cfg.window_seconds, lay.L);
            hafm_tf_layout_free(&lay);
        }
        hafm_tf_free(m);
        MPI_Finalize();
        return 0;
    }
    if (!out) hafm_usage_error("-o CHECKPOINT is required");
    if (optind >= argc) hafm_usage_error("no training stream given");
    if (o.micro_batch > o.batch) o.micro_batch = o.batch;
    if (o.lr_min > o.lr) hafm_usage_error("--lr-min: must not exceed --lr");
    if (o.warmup > o.steps) hafm_usage_error("--warmup: must not exceed --steps");
    if (o.n_codebook_weights && o.n_codebook_weights != m->cfg.target.codebooks)
        hafm_usage_error("--codebook-weights: the target has %d codebooks, got %d weights", m->cfg.target.codebooks,
                         o.n_codebook_weights);
    if (ncond && ncond != m->cfg.n_cond) hafm_usage_error("-c: the model has %d conditioning tracks, got %d", m->cfg.n_cond, ncond);

    /* ---- data ---- */
    hafm_stage_item *items = NULL, *vitems = NULL;
    int nitems = 0, nv = 0, skipped = 0, vskipped = 0;
    for (int i = optind; i < argc; i++)
        if (hafm_stage_read_items(argv[i], &m->cfg, ncond ? conds : NULL, target, &items, &nitems, &skipped) < 0) die_all();
    if (val && hafm_stage_read_items(val, &m->cfg, ncond ? conds : NULL, target, &vitems, &nv, &vskipped) < 0) die_all();
    if (rank == 0 && !quiet && (skipped || vskipped))
        hafm_warn("skipped %d training and %d validation items without all tracks", skipped, vskipped);

    hafm_comm comm = { rank, world, sum_f32, sum_f64, NULL };
    hafm_trainer *tr = hafm_trainer_new(m, &o, &comm, items, nitems);
    if (!tr) die_all();
    if (ckpt) {
        if (hafm_trainer_restore(tr, ckpt) < 0) die_all();
        hafm_st_close(ckpt);
    }
    FILE *log = NULL;
    if (rank == 0 && log_path && !(log = fopen(log_path, "a"))) hafm_die("%s:", log_path);
    hafm_train_state *st = hafm_trainer_state(tr);
    int show = rank == 0 && !quiet && isatty(2);
    double val_loss = NAN, val_acc = NAN, t_start = hafm_now();
    int64_t tok_start = st->tokens;
    while (st->step < o.steps) {
        double t0 = hafm_now();
        hafm_step_stats s;
        if (hafm_trainer_step(tr, &s) < 0) die_all();
        double dt = hafm_now() - t0;
        double tps = (double)(st->tokens - tok_start) / (hafm_now() - t_start);
        if (log)
            fprintf(log, "{\"step\":%lld,\"loss\":%.9g,\"acc\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,\"tokens\":%lld,\"step_s\":%.4f}\n",
                    (long long)st->step, s.loss, s.acc, s.lr, s.grad_norm, (long long)st->tokens, dt);
        int last = st->step == o.steps || st->step == stop_at;
        if (val && (st->step % val_every == 0 || last)) {
            if (hafm_trainer_eval(tr, vitems, nv, (int)val_crops, &val_loss, &val_acc) < 0) die_all();
            if (log) fprintf(log, "{\"step\":%lld,\"val_loss\":%.9g,\"val_acc\":%.9g}\n", (long long)st->step, val_loss, val_acc);
            if (rank == 0 && !quiet)
                fprintf(stderr, "%s%s: step %lld: validation loss %.4f, token accuracy %.4f\n", show ? "\r" : "", hafm_progname,
                        (long long)st->step, val_loss, val_acc);
        }
        if (log) fflush(log);
        if (show)
            fprintf(stderr, "\r%s: step %lld/%lld loss %.4f acc %.4f lr %.3g %.0f tok/s ", hafm_progname, (long long)st->step,
                    (long long)o.steps, s.loss, s.acc, s.lr, tps);
        if (rank == 0 && (st->step % save_every == 0 || last)) {
            char *tj = training_json(&o, st, argv + optind, argc - optind, val_loss, val_acc, o.micro_batch);
            if (hafm_trainer_save(tr, out, tj, 1) < 0) die_all();
            cJSON_free(tj);
        }
        if (st->step == stop_at) break;
    }
    if (show) fputc('\n', stderr);
    if (val && isnan(val_loss)) {   /* a resume with no steps left (re-exporting): validate once */
        if (hafm_trainer_eval(tr, vitems, nv, (int)val_crops, &val_loss, &val_acc) < 0) die_all();
        if (log) fprintf(log, "{\"step\":%lld,\"val_loss\":%.9g,\"val_acc\":%.9g}\n", (long long)st->step, val_loss, val_acc);
    }
    if (export && export_dtype != HAFM_DT_F32) {
        /* the checkpoint keeps the f32 weights; from here on the model computes as the export will */
        hafm_trainer_round_weights(tr, export_dtype);
        if (val) {
            double rl, ra;
            if (hafm_trainer_eval(tr, vitems, nv, (int)val_crops, &rl, &ra) < 0) die_all();
            const char *dn = hafm_dtype_name(export_dtype);
            if (log)
                fprintf(log, "{\"step\":%lld,\"export_dtype\":\"%s\",\"export_val_loss\":%.9g,\"export_val_acc\":%.9g}\n",
                        (long long)st->step, dn, rl, ra);
            if (rank == 0 && !quiet)
                fprintf(stderr, "%s: %s weights: validation loss %.4f (f32 %.4f), token accuracy %.4f (f32 %.4f)\n",
                        hafm_progname, dn, rl, val_loss, ra, val_acc);
        }
    }
    if (rank == 0 && export) {
        char *tj = training_json(&o, st, argv + optind, argc - optind, val_loss, val_acc, o.micro_batch);
        if (hafm_trainer_export(tr, export, tj, export_dtype) < 0) die_all();
        cJSON_free(tj);
    }
    if (log && fclose(log) != 0) hafm_die("%s:", log_path);
    if (rank == 0 && plot && log_path && hafm_train_plot(log_path, plot) < 0) die_all();
    hafm_trainer_free(tr);
    for (int i = 0; i < nitems; i++) hafm_stage_item_free(&items[i]);
    for (int i = 0; i < nv; i++) hafm_stage_item_free(&vitems[i]);
    free(items);
    free(vitems);
    hafm_tf_free(m);
    MPI_Finalize();
    return 0;
}
