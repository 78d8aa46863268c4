/* stage_cli.c - the body of hafm-stage1, hafm-stage2 and hafm-stage3, which differ only in the
 * stage number: options, model lookup, stream loop with pass-through, progress. */
#include "hafm/stage_cli.h"
#include "hafm/stage.h"
#include "hafm/stream.h"

#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *fp, int stage)
{
    hafm_tf_config c;
    hafm_tf_config_paper(&c, stage);
    fprintf(fp,
            "usage: %s [options] [input.hafm]\n"
            "Stage %d of HAFM: reads the conditioning track%s ", hafm_progname, stage, c.n_cond > 1 ? "s" : "");
    for (int i = 0; i < c.n_cond; i++) fprintf(fp, "%s'%s'", i ? " and " : "", c.cond[i].name);
    fprintf(fp,
            " of every item and appends\nthe generated track '%s' (the model's config names the defaults); every other\n"
            "message passes through unchanged. Output: a hafm stream on stdout.\n\n"
            "  -m, --model FILE        stage %d model (formats/model.md)   [$HAFM_STAGE%d_MODEL, else models/stage%d.safetensors]\n"
            "  -c, --cond NAME         conditioning track names, once per condition in the model's order [model config]\n"
            "  -o, --output NAME       name of the generated track               [model config]\n"
            "Sampling defaults are the model's own (its config's \"sampling\"), else the paper's:\n"
            "  -s, --cfg-scale S       classifier-free guidance scale, 0..100; 1 = conditional only   [model, else 3]\n"
            "  -T, --temperature T     sampling temperature, 0..10; 0 = greedy    [model, else 0.9]\n"
            "  -k, --top-k K           keep the K most likely tokens, 0..1048576; 0 = all   [model, else 250]\n"
            "  -p, --top-p P           nucleus: smallest set with mass >= P, (0, 1]   [model, else 1 = off]\n"
            "  -S, --seed N            random seed, 0..2^63-1; item i uses seed + i   [0]\n"
            "      --overlap SEC       context carried between generation windows, 0..window   [window/4: 2.5]\n"
            "      --fp32              float32 weights and KV cache (default: bfloat16, half the memory traffic)\n"
            "  -t, --threads N         threads, 1..1024                           [$HAFM_THREADS or all CPUs]\n"
            "  -q, --quiet             no progress line even on a terminal\n"
            "  -h, --help              this help\n"
            "      --version           version\n",
            c.target.name, stage, stage, stage);
}

/* -m, then $HAFM_STAGEn_MODEL, then models/stageN.safetensors in ../share/hafm/models and ../models
 * beside the executable (installed tree, source tree). */
static char *find_model(const char *opt, int stage)
{
    char env[32], file[32];
    snprintf(env, sizeof env, "HAFM_STAGE%d_MODEL", stage);
    snprintf(file, sizeof file, "stage%d.safetensors", stage);
    char *path = hafm_find_model(opt, env, file);
    if (!path)
        hafm_die("no stage %d model: give -m FILE or set %s (models/%s not found beside the executable)", stage, env,
                 file);
    return path;
}

typedef struct { const char *key; int64_t last; double t0; } progress_ctx;

static void progress(void *p, int64_t done, int64_t total)
{
    progress_ctx *c = p;
    double now = hafm_now();
    if (done != total && now - c->t0 < 0.2) return;   /* at most 5 updates a second */
    fprintf(stderr, "\r%s: %s: %lld/%lld frames", hafm_progname, c->key, (long long)done, (long long)total);
    if (done == total) fputc('\n', stderr);
    c->last = done;
    c->t0 = now;
}

int hafm_stage_cli(int argc, char **argv, int stage)
{
    hafm_init(argc, argv);
    enum { OPT_OVERLAP = 256, OPT_FP32, OPT_VERSION };
    static const struct option longopts[] = {
        { "model", required_argument, 0, 'm' },      { "cond", required_argument, 0, 'c' },
        { "output", required_argument, 0, 'o' },     { "cfg-scale", required_argument, 0, 's' },
        { "temperature", required_argument, 0, 'T' }, { "top-k", required_argument, 0, 'k' },
        { "top-p", required_argument, 0, 'p' },      { "seed", required_argument, 0, 'S' },
        { "overlap", required_argument, 0, OPT_OVERLAP }, { "fp32", no_argument, 0, OPT_FP32 },
        { "threads", required_argument, 0, 't' },    { "quiet", no_argument, 0, 'q' },
        { "help", no_argument, 0, 'h' },             { "version", no_argument, 0, OPT_VERSION },
        { 0, 0, 0, 0 }
    };
    const char *model_opt = NULL, *out_name = NULL, *cond_names[HAFM_TF_MAX_COND] = { 0 };
    int n_cond_names = 0, quiet = 0, opt;
    int set_cfg = 0, set_temp = 0, set_topk = 0, set_topp = 0;   /* given on the command line */
    hafm_gen_opts go;
    hafm_gen_opts_default(&go);
    go.overlap_seconds = -1.0;   /* default: a quarter of the model's window */
    while ((opt = getopt_long(argc, argv, "m:c:o:s:T:k:p:S:t:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_opt = optarg; break;
        case 'c':
            if (n_cond_names == HAFM_TF_MAX_COND) hafm_usage_error("-c: at most %d conditioning tracks", HAFM_TF_MAX_COND);
            cond_names[n_cond_names++] = optarg;
            break;
        case 'o': out_name = optarg; break;
        case 's': go.sampler.cfg_scale = (float)hafm_opt_double("-s", optarg, 0.0, 100.0); set_cfg = 1; break;
        case 'T': go.sampler.temperature = (float)hafm_opt_double("-T", optarg, 0.0, 10.0); set_temp = 1; break;
        case 'k': go.sampler.top_k = (int)hafm_opt_long("-k", optarg, 0, 1 << 20); set_topk = 1; break;
        case 'p':
            set_topp = 1;
            go.sampler.top_p = (float)hafm_opt_double("-p", optarg, 0.0, 1.0);
            if (go.sampler.top_p <= 0.0f) hafm_usage_error("-p: expected a number in (0, 1], got '%s'", optarg);
            break;
        case 'S': go.seed = (uint64_t)hafm_opt_long("-S", optarg, 0, INT64_MAX); break;
        case OPT_OVERLAP: go.overlap_seconds = hafm_opt_double("--overlap", optarg, 0.0, 3600.0); break;
        case OPT_FP32: go.use_bf16 = 0; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout, stage); return 0;
        case OPT_VERSION: hafm_print_version();
        default: hafm_usage_error("unknown option");
        }
    }
    if (argc - optind > 1) hafm_usage_error("at most one input file");
    const char *in_path = optind < argc ? argv[optind] : "-";

    char *model_path = find_model(model_opt, stage);
    hafm_tf_model *m = hafm_tf_load(model_path, stage);
    if (!m) hafm_die_last();
    const hafm_tf_config *c = &m->cfg;
    const hafm_tf_sampling *ms = &c->sampling;
    if (ms->has_cfg_scale && !set_cfg) go.sampler.cfg_scale = ms->cfg_scale;
    if (ms->has_temperature && !set_temp) go.sampler.temperature = ms->temperature;
    if (ms->has_top_k && !set_topk) go.sampler.top_k = ms->top_k;
    if (ms->has_top_p && !set_topp) go.sampler.top_p = ms->top_p;
    if (n_cond_names && n_cond_names != c->n_cond)
        hafm_usage_error("-c: the model has %d conditioning track%s, got %d names", c->n_cond, c->n_cond > 1 ? "s" : "", n_cond_names);
    if (go.overlap_seconds < 0.0) go.overlap_seconds = c->window_seconds / 4.0;
    if (go.overlap_seconds >= c->window_seconds)
        hafm_usage_error("--overlap: must be shorter than the model's %g s window", c->window_seconds);
    if (!out_name) out_name = c->target.name;
    if (strlen(out_name) > HAFM_MAX_NAME) hafm_usage_error("-o: track names are at most %d bytes", HAFM_MAX_NAME);
    if (go.use_bf16) hafm_tf_enable_bf16(m);

    FILE *in = strcmp(in_path, "-") == 0 ? stdin : fopen(in_path, "rb");
    if (!in) hafm_die("%s:", in_path);
    hafm_reader *r = hafm_reader_open(in, strcmp(in_path, "-") == 0 ? "stdin" : in_path);
    hafm_writer *w = hafm_writer_open(stdout, hafm_progname);
    if (!r || !w) hafm_die_last();
    hafm_stage_collector *col = hafm_stage_collector_new(c, n_cond_names ? cond_names : NULL, NULL);
    progress_ctx pc = { "", -1, 0.0 };
    go.progress = !quiet && isatty(2) ? progress : NULL;
    go.progress_ctx = &pc;
    hafm_generator *gen = hafm_generator_new(m, &go);
    int64_t item_index = 0;
    hafm_event ev;
    int rc;
    char key[HAFM_MAX_KEY + 1] = "";
    /* the original audio length travels on: the generated track ends with the source_samples
     * of the first conditioning track that carries them, so the decoder can trim to it */
    int64_t src_samples = -1;
    double src_rate = 0.0;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_ITEM) {
            snprintf(key, sizeof key, "%s", ev.key);
            src_samples = -1;
        }
        if (ev.type == HAFM_EV_END && src_samples < 0 && ev.track->source_samples >= 0)
            for (int i = 0; i < c->n_cond; i++)
                if (strcmp(ev.track->name, n_cond_names ? cond_names[i] : c->cond[i].name) == 0) {
                    src_samples = ev.track->source_samples;
                    src_rate = ev.track->source_rate;
                }
        if (ev.type == HAFM_EV_TRACK && strcmp(ev.track->name, out_name) == 0)
            hafm_die("item '%s': the input already has a track '%s' (choose another with -o)", key, out_name);
        if (hafm_stage_collector_event(col, &ev) < 0) hafm_die("item '%s': %s", key, hafm_last_error());
        if (ev.type == HAFM_EV_ITEM_END) {
            hafm_stage_item it;
            if (hafm_stage_collector_finish(col, &it, 0) < 0) hafm_die("item '%s': %s", key, hafm_last_error());
            hafm_rand rng;
            hafm_rand_seed(&rng, go.seed + (uint64_t)item_index++);
            pc.key = key;
            pc.last = -1;
            pc.t0 = hafm_now();
            int64_t frames;
            int32_t *tok = hafm_generate(gen, &it, &rng, &frames);
            if (!tok) hafm_die("item '%s': %s", key, hafm_last_error());
            hafm_track t;
            hafm_track_init_tokens(&t, out_name, c->target.codebooks, c->target.vocab, c->target.rate);
            t.dtype = c->target.vocab <= 32767 ? HAFM_DT_I16 : HAFM_DT_I32;
            t.frames = frames;
            if (hafm_track_set_producer(&t, hafm_progname, HAFM_VERSION) < 0 ||
                hafm_track_param_str(&t, "model", model_path) < 0 ||
                hafm_track_param_float(&t, "cfg_scale", go.sampler.cfg_scale) < 0 ||
                hafm_track_param_float(&t, "temperature", go.sampler.temperature) < 0 ||
                hafm_track_param_int(&t, "top_k", go.sampler.top_k) < 0 ||
                hafm_track_param_float(&t, "top_p", go.sampler.top_p) < 0 ||
                hafm_track_param_int(&t, "seed", (int64_t)(go.seed + (uint64_t)item_index - 1)) < 0 ||
                hafm_track_attr_int(&t, "codebook_offset", c->target.codebook_offset) < 0 ||
                hafm_track_attr_str(&t, "role", "accompaniment") < 0 || hafm_write_track(w, &t) < 0 ||
                hafm_write_data_i32(w, t.id, tok, frames) < 0 || hafm_write_end(w, t.id, src_samples, src_rate) < 0)
                hafm_die_last();
            hafm_track_free(&t);
            free(tok);
            hafm_stage_item_free(&it);
        }
        if (hafm_write_passthrough(w, &ev) < 0) hafm_die_last();
    }
    if (rc < 0) hafm_die_last();
    if (hafm_writer_close(w) < 0) hafm_die_last();
    hafm_reader_close(r);
    if (in != stdin) fclose(in);
    hafm_generator_free(gen);
    hafm_stage_collector_free(col);
    hafm_tf_free(m);
    free(model_path);
    return 0;
}
