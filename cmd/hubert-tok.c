/* hubert-tok - vocal audio -> 50 Hz semantic tokens (HuBERT layer L + k-means, or the
 * weight-free MFCC / log-mel features), as a tokens track of a hafm stream. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/audio_stream.h"
#include "hafm/hubert_tok.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] [FILE...]\n"
            "Tokenizes vocal audio: each FILE (an audio file or a hafm stream; none or '-': standard\n"
            "input) becomes 50 Hz tokens, the nearest k-means centroid of each frame's features.\n"
            "An audio file becomes one item (key: its base name); in a stream, the audio track of\n"
            "every item is tokenized and everything else passes through unchanged.\n"
            "  -m, --model FILE        HuBERT weights (HF safetensors)        [$HAFM_HUBERT_MODEL]\n"
            "  -c, --centroids FILE    k-means codebook: safetensors 'cluster_centers' [K,D] or .npy\n"
            "                          [$HAFM_CENTROIDS, else the shipped models/centroids.safetensors;\n"
            "                          none with --emit-features alone]\n"
            "  -l, --layer L           HuBERT layer, HF hidden_states[L], 0..layers        [9]\n"
            "  -F, --features KIND     hubert, or the weight-free mfcc (39-d MFCC+deltas), logmel\n"
            "                          (80-d) or chroma (13 MFCC + 12 chroma, 25-d)\n"
            "                                  [the codebook's, when it names them; else hubert]\n"
            "      --cmvn MODE         mfcc/logmel/chroma normalisation: none, mean, meanvar\n"
            "                                         [the codebook's, when it names it; else meanvar]\n"
            "  -n, --name NAME         tokens track name                      [vocal.semantic]\n"
            "  -a, --audio NAME        audio track to read from a stream input            [audio]\n"
            "  -e, --emit-features     also write the features as a features track\n"
            "      --features-name N   its name                               [vocal.features]\n"
            "      --noise SIGMA       add Gaussian noise of this std to the 16 kHz input, 0-1 [0]\n"
            "      --seed N            noise seed, 0-2^63                                  [0]\n"
            "      --window SEC        HuBERT: longest span the encoder sees at once, 1-600 [20]\n"
            "      --context SEC       HuBERT: context kept on each side within a window   [2]\n"
            "  -o, --output FILE       write to FILE (atomically)                         [stdout]\n"
            "  -t, --threads N         threads, 1-1024                     [$HAFM_THREADS or all]\n"
            "  -h, --help              this help\n"
            "      --version           the version\n",
            hafm_progname);
}

static HAFM_NORETURN void bad_option(int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':') hafm_usage_error("option '%s' needs an argument", arg);
    if (optopt) hafm_usage_error("unknown option '-%c'", optopt);
    hafm_usage_error("unknown option '%s'", arg);
}

typedef struct {
    hafm_sem *sem;
    const char *tokens_name, *features_name, *audio_name;
} job;

/* A stream: every message passes through; the audio track of each item, once ended, is
 * tokenized into new tracks of that item. */
static void tokenize_stream(const job *j, hafm_writer *w, FILE *fp, const char *name)
{
    hafm_reader *r = hafm_reader_open(fp, name);
    if (!r) hafm_die_last();
    hafm_event ev;
    hafm_audio a = {0};
    int rc, found = 0;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_ITEM) {
            found = 0;
            hafm_audio_free(&a);
        } else if (ev.type == HAFM_EV_TRACK && !strcmp(ev.track->name, j->audio_name)) {
            if (ev.track->kind != HAFM_KIND_AUDIO) hafm_die("track '%s': not an audio track", ev.track->name);
            found = 1;
        } else if (ev.type == HAFM_EV_DATA && !strcmp(ev.track->name, j->audio_name)) {
            if (hafm_audio_append_event(&a, &ev) < 0) hafm_die_last();
        }
        if (hafm_write_passthrough(w, &ev) < 0) hafm_die_last();
        if (ev.type == HAFM_EV_END && !strcmp(ev.track->name, j->audio_name)) {
            if (!a.data) hafm_die("item '%s': track '%s' holds no samples", hafm_reader_item_key(r), j->audio_name);
            if (hafm_sem_write(j->sem, w, &a, j->tokens_name, j->features_name) < 0) {
                hafm_error_prefix("item '%s'", hafm_reader_item_key(r));
                hafm_die_last();
            }
            hafm_audio_free(&a);
        }
        if (ev.type == HAFM_EV_ITEM_END && !found) hafm_die("item '%s' has no track '%s'", ev.key, j->audio_name);
    }
    if (rc < 0) hafm_die_last();
    hafm_audio_free(&a);
    hafm_reader_close(r);
}

static void tokenize_file(const job *j, hafm_writer *w, const char *path)
{
    hafm_audio a;
    if (hafm_audio_read(path, &a) < 0) hafm_die_last();
    char key[HAFM_MAX_KEY + 1];
    hafm_audio_key_from_path(key, sizeof key, path);
    if (hafm_write_item(w, key) < 0) hafm_die_last();
    if (hafm_sem_write(j->sem, w, &a, j->tokens_name, j->features_name) < 0) {
        hafm_error_prefix("%s", path);
        hafm_die_last();
    }
    if (hafm_write_item_end(w) < 0) hafm_die_last();
    hafm_audio_free(&a);
}

static void tokenize_input(const job *j, hafm_writer *w, const char *path)
{
    int is_stdin = !strcmp(path, "-");
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    if (!fp) hafm_die("cannot open %s:", path);
    int c = getc(fp);
    if (c == EOF) hafm_die("%s: empty input", is_stdin ? "stdin" : path);
    ungetc(c, fp);
    if (hafm_input_is_stream(fp)) {
        tokenize_stream(j, w, fp, is_stdin ? NULL : path);
        if (!is_stdin) fclose(fp);
        return;
    }
    if (!is_stdin) fclose(fp);
    tokenize_file(j, w, path);
}

enum { OPT_CMVN = 256, OPT_FEATURES_NAME, OPT_NOISE, OPT_SEED, OPT_WINDOW, OPT_CONTEXT, OPT_VERSION };

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},      {"centroids", required_argument, NULL, 'c'},
        {"layer", required_argument, NULL, 'l'},      {"features", required_argument, NULL, 'F'},
        {"cmvn", required_argument, NULL, OPT_CMVN},  {"name", required_argument, NULL, 'n'},
        {"audio", required_argument, NULL, 'a'},      {"emit-features", no_argument, NULL, 'e'},
        {"features-name", required_argument, NULL, OPT_FEATURES_NAME},
        {"noise", required_argument, NULL, OPT_NOISE}, {"seed", required_argument, NULL, OPT_SEED},
        {"window", required_argument, NULL, OPT_WINDOW}, {"context", required_argument, NULL, OPT_CONTEXT},
        {"output", required_argument, NULL, 'o'},     {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},             {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    hafm_sem_opts o = {.features = HAFM_SEM_HUBERT, .layer = 9, .cmvn = HAFM_CMVN_MEANVAR, .tool = "hubert-tok",
                       .features_from_centroids = 1, .cmvn_from_centroids = 1};
    o.model = getenv("HAFM_HUBERT_MODEL");
    if (o.model && !*o.model) o.model = NULL;
    job j = {NULL, "vocal.semantic", NULL, "audio"};
    const char *output = "-", *features_name = "vocal.features";
    int emit = 0, c;
    double window = 20.0, context = 2.0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:c:l:F:n:a:eo:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; o.features_from_centroids = 0; break;
        case 'c': o.centroids = optarg; break;
        case 'l': o.layer = (int)hafm_opt_long("-l", optarg, 0, 1024); break;
        case 'F':
            o.features_from_centroids = 0;
            if (!strcmp(optarg, "hubert")) o.features = HAFM_SEM_HUBERT;
            else if (!strcmp(optarg, "mfcc")) o.features = HAFM_SEM_MFCC;
            else if (!strcmp(optarg, "logmel")) o.features = HAFM_SEM_LOGMEL;
            else if (!strcmp(optarg, "chroma")) o.features = HAFM_SEM_CHROMA;
            else hafm_usage_error("--features: expected hubert, mfcc, logmel or chroma, got '%s'", optarg);
            break;
        case OPT_CMVN:
            o.cmvn_from_centroids = 0;
            if (!strcmp(optarg, "none")) o.cmvn = HAFM_CMVN_NONE;
            else if (!strcmp(optarg, "mean")) o.cmvn = HAFM_CMVN_MEAN;
            else if (!strcmp(optarg, "meanvar")) o.cmvn = HAFM_CMVN_MEANVAR;
            else hafm_usage_error("--cmvn: expected none, mean or meanvar, got '%s'", optarg);
            break;
        case 'n': j.tokens_name = optarg; break;
        case 'a': j.audio_name = optarg; break;
        case 'e': emit = 1; break;
        case OPT_FEATURES_NAME: features_name = optarg; break;
        case OPT_NOISE: o.noise = hafm_opt_double("--noise", optarg, 0, 1); break;
        case OPT_SEED: o.seed = (uint64_t)hafm_opt_long("--seed", optarg, 0, INT64_MAX); break;
        case OPT_WINDOW: window = hafm_opt_double("--window", optarg, 1, 600); break;
        case OPT_CONTEXT: context = hafm_opt_double("--context", optarg, 0, 300); break;
        case 'o': output = optarg; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case OPT_VERSION: hafm_print_version();
        default: bad_option(c, argv);
        }
    }
    char *found_centroids = NULL;
    if (!o.centroids && !emit) {
        o.centroids = found_centroids = hafm_find_model(NULL, "HAFM_CENTROIDS", "centroids.safetensors");
        if (!o.centroids)
            hafm_usage_error("no codebook: give -c FILE or set HAFM_CENTROIDS (no shipped models/centroids.safetensors "
                             "was found), or --emit-features for features only");
    }
    if (emit) j.features_name = features_name;
    if (!o.centroids) j.tokens_name = NULL;
    if (emit && j.tokens_name && !strcmp(features_name, j.tokens_name))
        hafm_usage_error("the tokens and features tracks need different names");
    /* window and context in 20 ms frames; the window must exceed twice the context */
    o.window = (int)((window * 16000 - 400) / 320) + 1;
    o.context = (int)(context * 50 + 0.5);
    if (2 * o.context >= o.window) hafm_usage_error("--window %g s must exceed twice --context %g s", window, context);
    j.sem = hafm_sem_open(&o);
    if (!j.sem) hafm_die_last();
    hafm_outfile *out = hafm_outfile_open(output);
    if (!out) hafm_die_last();
    hafm_writer *w = hafm_writer_open(hafm_outfile_fp(out), "hubert-tok");
    if (!w) hafm_die_last();
    if (optind == argc) tokenize_input(&j, w, "-");
    for (int i = optind; i < argc; i++) tokenize_input(&j, w, argv[i]);
    if (hafm_writer_close(w) < 0) hafm_die_last();
    if (hafm_outfile_commit(out) < 0) hafm_die_last();
    hafm_sem_free(j.sem);
    free(found_centroids);
    return 0;
}
