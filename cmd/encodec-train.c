/* encodec-train - trains an EnCodec-architecture codec (SEANet + RVQ) on audio and writes the
 * weight file that encodec-enc / encodec-dec load. The training itself is lib/codec_train*.c. */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cJSON.h>
#include "hafm.h"
#include "hafm/codec_train.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] -o OUT.safetensors DATA...\n"
            "Trains an EnCodec codec (SEANet encoder/decoder + residual vector quantiser) on DATA:\n"
            "audio files, directories of them (searched recursively), or hafm streams with audio\n"
            "tracks ('-' is standard input). Random segments, quantiser dropout over the target\n"
            "bandwidths, L1 + multi-scale mel + commitment losses, and unless --no-adversarial the\n"
            "MS-STFT discriminator with feature matching and EnCodec's loss balancer.\n"
            "Output and state:\n"
            "  -o, --output FILE        trained weights (safetensors, original EnCodec names)  [required]\n"
            "      --init FILE          start from these weights (fine-tuning; original or Hugging\n"
            "                           Face names); their config is used\n"
            "      --resume FILE        continue from a checkpoint (same data and options)\n"
            "      --checkpoint FILE    checkpoint path                          [OUT.ckpt]\n"
            "      --checkpoint-every N steps between checkpoints, 0-1e9 (0: only at the end) [500]\n"
            "      --log FILE           JSON lines, one per step and per evaluation\n"
            "      --plot FILE.png      loss curves from the log (gnuplot), at every checkpoint\n"
            "      --eval-every N       SI-SDR of the first clip every N steps, 0-1e9 (0: at the end) [0]\n"
            "      --reconstruct FILE   the final model's reconstruction of the first clip (WAV)\n"
            "Training:\n"
            "      --steps N            total optimiser steps, 1-1e9             [1000]\n"
            "      --batch N            segments per step, 1-4096                [8]\n"
            "      --segment SEC        segment length in seconds, 0.001-60      [1]\n"
            "      --lr X               learning rate, 0-1                       [3e-4]\n"
            "      --beta1 X, --beta2 X AdamW moments, 0-0.999999                [0.5, 0.9]\n"
            "      --weight-decay X     decoupled weight decay, 0-1              [0]\n"
            "      --w-time X, --w-mel X, --w-commit X, --w-adv X, --w-feat X\n"
            "                           loss weights, 0-1000                     [0.1, 1, 1, 3, 3]\n"
            "      --no-adversarial     reconstruction losses only\n"
            "      --disc-filters N     discriminator channels, 1-1024           [32]\n"
            "      --no-q-dropout       always train with every codebook\n"
            "      --quantizer-warmup N steps on the continuous latent before the codebooks\n"
            "                           are fitted to it, 0-1e9                  [0]\n"
            "      --dead-threshold X   replace codes used less than X times (EMA count),\n"
            "                           0-1e6 (0: never)                         [2]\n"
            "      --track-mean         codebooks follow the latent's batch mean\n"
            "      --seed N             random seed, 0-2^63                      [0]\n"
            "      --resample           resample inputs at other rates (else an error)\n"
            "Architecture (without --init):\n"
            "      --small              n_filters 4, dimension 32, 512 bins, 1.5/3/6 kbps\n"
            "      --sample-rate HZ     8000-192000                              [24000]\n"
            "      --n-filters N        base channels, 1-1024                    [32]\n"
            "      --dimension D        latent dimension, 1-4096                 [128]\n"
            "      --ratios LIST        decoder strides, comma separated         [8,5,4,2]\n"
            "      --residual-layers N  1-8                                      [1]\n"
            "      --lstm-layers N      0-8                                      [2]\n"
            "      --kernel-size K, --last-kernel-size K, --residual-kernel-size K  1-63 [7, 7, 3]\n"
            "      --dilation-base N    1-16                                     [2]\n"
            "      --compress N         residual hidden = dim/N, 1-64            [2]\n"
            "      --bins N             codebook size, 2-65536                   [1024]\n"
            "      --bandwidths LIST    target kbps, comma separated             [1.5,3,6,12,24]\n"
            "Other:\n"
            "  -q, --quiet              no progress on stderr\n"
            "  -t, --threads N          threads, 1-1024                          [$HAFM_THREADS or all]\n"
            "  -h, --help               this help\n"
            "      --version            the version\n",
            hafm_progname);
}

static HAFM_NORETURN void bad_option(int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':') hafm_usage_error("option '%s' needs an argument", arg);
    if (optopt) hafm_usage_error("unknown option '-%c'", optopt);
    hafm_usage_error("unknown option '%s'", arg);
}

static int parse_int_list(const char *opt, const char *arg, int *out, int max, int lo, int hi)
{
    char *copy = hafm_xstrdup(arg), *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max) hafm_usage_error("%s: at most %d values", opt, max);
        out[n++] = (int)hafm_opt_long(opt, tok, lo, hi);
    }
    free(copy);
    if (!n) hafm_usage_error("%s: expected a comma-separated list", opt);
    return n;
}

/* ---- data ------------------------------------------------------------------------------------ */

typedef struct {
    ct_trainer *tr;
    int rate, resample;
} data_ctx;

static void add_audio(data_ctx *d, hafm_audio *a, const char *name)
{
    if (a->sample_rate != d->rate && !d->resample)
        hafm_die("%s: sample rate %d Hz, the model runs at %d Hz (resample it, or pass --resample)", name,
                 a->sample_rate, d->rate);
    hafm_audio mono = {0};
    if (hafm_audio_prepare(a, d->rate, &mono)) { hafm_error_prefix("%s", name); hafm_die_last(); }
    if (ct_trainer_add_clip(d->tr, mono.data, mono.frames, name)) hafm_die_last();
    hafm_audio_free(&mono);
}

static void add_stream(data_ctx *d, FILE *fp, const char *name)
{
    hafm_reader *r = hafm_reader_open(fp, name);
    if (!r) hafm_die_last();
    hafm_event ev;
    int rc, found = 0;
    hafm_audio a = {0};
    int track = -1;
    char label[512];
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_TRACK && ev.track->kind == HAFM_KIND_AUDIO && track < 0) track = ev.track->id;
        if (ev.type == HAFM_EV_DATA && ev.track->id == track && hafm_audio_append_event(&a, &ev)) {
            hafm_error_prefix("%s", name);
            hafm_die_last();
        }
        if (ev.type == HAFM_EV_ITEM_END) {
            if (a.data && a.frames > 0) {
                snprintf(label, sizeof label, "%s, item '%s'", name, ev.key);
                add_audio(d, &a, label);
                found++;
            }
            hafm_audio_free(&a);
            memset(&a, 0, sizeof a);
            track = -1;
        }
    }
    if (rc < 0) hafm_die_last();
    hafm_audio_free(&a);
    hafm_reader_close(r);
    if (!found) hafm_die("%s: the stream has no audio track", name);
}

static int has_audio_ext(const char *name)
{
    static const char *ext[] = {".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".au", ".caf", ".w64", ".mp3", ".opus", NULL};
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (int i = 0; ext[i]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

static void add_path(data_ctx *d, const char *path);

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void add_dir(data_ctx *d, const char *path)
{
    DIR *dir = opendir(path);
    if (!dir) hafm_die("cannot open directory %s:", path);
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        names = hafm_xrealloc(names, sizeof(char *) * (n + 1));
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = hafm_xmalloc(len);
        snprintf(names[n++], len, "%s/%s", path, e->d_name);
    }
    closedir(dir);
    if (n) qsort(names, n, sizeof(char *), cmp_str);   /* the same data order on every run */
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (!stat(names[i], &sb) && (S_ISDIR(sb.st_mode) || has_audio_ext(names[i]))) add_path(d, names[i]);
        free(names[i]);
    }
    free(names);
}

static void add_path(data_ctx *d, const char *path)
{
    struct stat sb;
    if (strcmp(path, "-") && !stat(path, &sb) && S_ISDIR(sb.st_mode)) { add_dir(d, path); return; }
    int is_stdin = !strcmp(path, "-");
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    if (!fp) hafm_die("cannot open %s:", path);
    if (hafm_input_is_stream(fp)) {
        add_stream(d, fp, is_stdin ? "stdin" : path);
        if (!is_stdin) fclose(fp);
        return;
    }
    if (!is_stdin) fclose(fp);
    hafm_audio a = {0};
    if (hafm_audio_read(path, &a)) hafm_die_last();
    add_audio(d, &a, is_stdin ? "stdin" : path);
    hafm_audio_free(&a);
}

/* ---- log and curves -------------------------------------------------------------------------- */

static void log_step(FILE *log, const ct_step_stats *s, int adversarial)
{
    fprintf(log, "{\"step\":%" PRId64 ",\"loss\":%.6g,\"l1\":%.6g,\"mel\":%.6g,\"commit\":%.6g,\"n_q\":%d,\"codes_used\":%d,"
            "\"latent_spread\":%.6g,\"latent_offset\":%.6g", s->step, s->loss, s->l1, s->mel, s->commit, s->n_q,
            s->codes_used, s->latent_spread, s->latent_offset);
    if (adversarial) fprintf(log, ",\"adv\":%.6g,\"feat\":%.6g,\"disc\":%.6g", s->adv, s->feat, s->disc);
    fprintf(log, ",\"sec\":%.4f}\n", s->seconds);
    fflush(log);
}

/* Turns the JSON-lines log into columns and has gnuplot draw them; the PNG appears atomically. */
static void plot_curves(const char *log_path, const char *png)
{
    FILE *in = fopen(log_path, "r");
    if (!in) { hafm_warn("cannot read %s for the plot", log_path); return; }
    char dat[4096], tmp[4096];
    snprintf(dat, sizeof dat, "%s.plot.%d.dat", png, (int)getpid());
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.png", png, (int)getpid());
    FILE *out = fopen(dat, "w");
    if (!out) { fclose(in); hafm_warn("cannot write %s", dat); return; }
    char line[4096];
    const char *keys[] = {"step", "loss", "l1", "mel", "commit", "adv", "feat", "disc", "eval_si_sdr_db"};
    while (fgets(line, sizeof line, in)) {
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        for (int k = 0; k < 9; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
            if (cJSON_IsNumber(v)) fprintf(out, "%.9g ", v->valuedouble);
            else fputs("NaN ", out);
        }
        fputc('\n', out);
        cJSON_Delete(j);
    }
    fclose(in);
    fclose(out);
    FILE *gp = popen("gnuplot 2>/dev/null", "w");
    if (!gp) { unlink(dat); hafm_warn("gnuplot is not available: no plot"); return; }
    fprintf(gp,
            "set terminal png size 1000,700\nset output '%s'\nset multiplot layout 2,1\n"
            "set logscale y\nset xlabel 'step'\nset key outside\nset datafile missing 'NaN'\n"
            "plot '%s' u 1:2 w l t 'total', '' u 1:3 w l t 'L1', '' u 1:4 w l t 'mel', '' u 1:5 w l t 'commit',"
            " '' u 1:6 w l t 'adv', '' u 1:7 w l t 'feat', '' u 1:8 w l t 'disc'\n"
            "unset logscale y\nset ylabel 'SI-SDR (dB)'\nplot '%s' u 1:9 w lp t 'eval SI-SDR'\nunset multiplot\n",
            tmp, dat, dat);
    int rc = pclose(gp);
    unlink(dat);
    if (rc != 0 || rename(tmp, png)) { unlink(tmp); hafm_warn("gnuplot failed: no plot written to %s", png); }
}

/* ---- main ------------------------------------------------------------------------------------ */

enum {
    O_INIT = 1000, O_RESUME, O_CKPT, O_CKPT_EVERY, O_LOG, O_PLOT, O_EVAL_EVERY, O_RECON, O_STEPS, O_BATCH, O_SEGMENT,
    O_LR, O_BETA1, O_BETA2, O_WD, O_WTIME, O_WMEL, O_WCOMMIT, O_WADV, O_WFEAT, O_NOADV, O_DISCF, O_NOQD, O_SEED,
    O_RESAMPLE, O_SMALL, O_RATE, O_NF, O_DIM, O_RATIOS, O_RESL, O_LSTM, O_KS, O_LKS, O_RKS, O_DILB, O_COMPRESS,
    O_BINS, O_BW, O_VERSION, O_QWARM, O_DEADTH, O_TRACK
};

static void eval_and_log(ct_trainer *tr, FILE *log, int quiet, const ct_config *cfg)
{
    int n_q = 1;
    double kbps = 0.0;
    for (int i = 0; i < cfg->n_bw; i++) {
        int k = ct_config_nq_for_bandwidth(cfg, cfg->target_bandwidths[i]);
        if (k >= n_q) { n_q = k; kbps = cfg->target_bandwidths[i]; }
    }
    if (!*ct_model_inited(ct_trainer_model(tr), 0)) n_q = 0, kbps = 0.0;   /* quantiser warm-up */
    double db = ct_trainer_eval_sisdr(tr, 0, (int64_t)cfg->sample_rate * 10, n_q, NULL);
    if (log) {
        fprintf(log, "{\"step\":%" PRId64 ",\"eval_si_sdr_db\":%.4f,\"eval_n_q\":%d,\"eval_kbps\":%g}\n",
                ct_trainer_step_count(tr), db, n_q, kbps);
        fflush(log);
    }
    if (!quiet)
        fprintf(stderr, "%s: step %" PRId64 ": SI-SDR of the first clip %.2f dB at %g kbps\n", hafm_progname,
                ct_trainer_step_count(tr), db, kbps);
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    hafm_keep_freed_memory();
    static const struct option longopts[] = {
        {"output", required_argument, 0, 'o'}, {"init", required_argument, 0, O_INIT},
        {"resume", required_argument, 0, O_RESUME}, {"checkpoint", required_argument, 0, O_CKPT},
        {"checkpoint-every", required_argument, 0, O_CKPT_EVERY}, {"log", required_argument, 0, O_LOG},
        {"plot", required_argument, 0, O_PLOT}, {"eval-every", required_argument, 0, O_EVAL_EVERY},
        {"reconstruct", required_argument, 0, O_RECON}, {"steps", required_argument, 0, O_STEPS},
        {"batch", required_argument, 0, O_BATCH}, {"segment", required_argument, 0, O_SEGMENT},
        {"lr", required_argument, 0, O_LR}, {"beta1", required_argument, 0, O_BETA1},
        {"beta2", required_argument, 0, O_BETA2}, {"weight-decay", required_argument, 0, O_WD},
        {"w-time", required_argument, 0, O_WTIME}, {"w-mel", required_argument, 0, O_WMEL},
        {"w-commit", required_argument, 0, O_WCOMMIT}, {"w-adv", required_argument, 0, O_WADV},
        {"w-feat", required_argument, 0, O_WFEAT}, {"no-adversarial", no_argument, 0, O_NOADV},
        {"disc-filters", required_argument, 0, O_DISCF}, {"no-q-dropout", no_argument, 0, O_NOQD},
        {"quantizer-warmup", required_argument, 0, O_QWARM}, {"dead-threshold", required_argument, 0, O_DEADTH},
        {"track-mean", no_argument, 0, O_TRACK},
        {"seed", required_argument, 0, O_SEED}, {"resample", no_argument, 0, O_RESAMPLE},
        {"small", no_argument, 0, O_SMALL}, {"sample-rate", required_argument, 0, O_RATE},
        {"n-filters", required_argument, 0, O_NF}, {"dimension", required_argument, 0, O_DIM},
        {"ratios", required_argument, 0, O_RATIOS}, {"residual-layers", required_argument, 0, O_RESL},
        {"lstm-layers", required_argument, 0, O_LSTM}, {"kernel-size", required_argument, 0, O_KS},
        {"last-kernel-size", required_argument, 0, O_LKS}, {"residual-kernel-size", required_argument, 0, O_RKS},
        {"dilation-base", required_argument, 0, O_DILB}, {"compress", required_argument, 0, O_COMPRESS},
        {"bins", required_argument, 0, O_BINS}, {"bandwidths", required_argument, 0, O_BW},
        {"quiet", no_argument, 0, 'q'}, {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, O_VERSION}, {0, 0, 0, 0}};
    ct_config cfg;
    ct_config_default(&cfg);
    ct_train_opts o;
    ct_train_opts_default(&o);
    const char *out = NULL, *init = NULL, *resume = NULL, *ckpt = NULL, *log_path = NULL, *plot = NULL, *recon = NULL;
    long ckpt_every = 500, eval_every = 0, steps = 1000;
    double segment_sec = 1.0;
    int resample = 0, quiet = 0, arch_set = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:qt:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case O_INIT: init = optarg; break;
        case O_RESUME: resume = optarg; break;
        case O_CKPT: ckpt = optarg; break;
        case O_CKPT_EVERY: ckpt_every = hafm_opt_long("--checkpoint-every", optarg, 0, 1000000000); break;
        case O_LOG: log_path = optarg; break;
        case O_PLOT: plot = optarg; break;
        case O_EVAL_EVERY: eval_every = hafm_opt_long("--eval-every", optarg, 0, 1000000000); break;
        case O_RECON: recon = optarg; break;
        case O_STEPS: steps = hafm_opt_long("--steps", optarg, 1, 1000000000); break;
        case O_BATCH: o.batch = (int)hafm_opt_long("--batch", optarg, 1, 4096); break;
        case O_SEGMENT: segment_sec = hafm_opt_double("--segment", optarg, 0.001, 60.0); break;
        case O_LR: o.lr = (float)hafm_opt_double("--lr", optarg, 0.0, 1.0); break;
        case O_BETA1: o.beta1 = (float)hafm_opt_double("--beta1", optarg, 0.0, 0.999999); break;
        case O_BETA2: o.beta2 = (float)hafm_opt_double("--beta2", optarg, 0.0, 0.999999); break;
        case O_WD: o.weight_decay = (float)hafm_opt_double("--weight-decay", optarg, 0.0, 1.0); break;
        case O_WTIME: o.w_time = (float)hafm_opt_double("--w-time", optarg, 0.0, 1000.0); break;
        case O_WMEL: o.w_mel = (float)hafm_opt_double("--w-mel", optarg, 0.0, 1000.0); break;
        case O_WCOMMIT: o.w_commit = (float)hafm_opt_double("--w-commit", optarg, 0.0, 1000.0); break;
        case O_WADV: o.w_adv = (float)hafm_opt_double("--w-adv", optarg, 0.0, 1000.0); break;
        case O_WFEAT: o.w_feat = (float)hafm_opt_double("--w-feat", optarg, 0.0, 1000.0); break;
        case O_NOADV: o.adversarial = 0; break;
        case O_DISCF: o.disc_filters = (int)hafm_opt_long("--disc-filters", optarg, 1, 1024); break;
        case O_NOQD: o.q_dropout = 0; break;
        case O_QWARM: o.quantizer_warmup = (int)hafm_opt_long("--quantizer-warmup", optarg, 0, 1000000000); break;
        case O_DEADTH: o.dead_threshold = (float)hafm_opt_double("--dead-threshold", optarg, 0.0, 1e6); break;
        case O_TRACK: o.track_mean = 1; break;
        case O_SEED: o.seed = (uint64_t)hafm_opt_long("--seed", optarg, 0, INT64_MAX); break;
        case O_RESAMPLE: resample = 1; break;
        case O_SMALL:
            cfg.n_filters = 4; cfg.dimension = 32; cfg.bins = 512;
            cfg.n_bw = 3; cfg.target_bandwidths[0] = 1.5; cfg.target_bandwidths[1] = 3.0; cfg.target_bandwidths[2] = 6.0;
            arch_set = 1;
            break;
        case O_RATE: cfg.sample_rate = (int)hafm_opt_long("--sample-rate", optarg, 8000, 192000); arch_set = 1; break;
        case O_NF: cfg.n_filters = (int)hafm_opt_long("--n-filters", optarg, 1, 1024); arch_set = 1; break;
        case O_DIM: cfg.dimension = (int)hafm_opt_long("--dimension", optarg, 1, 4096); arch_set = 1; break;
        case O_RATIOS: cfg.n_ratios = parse_int_list("--ratios", optarg, cfg.ratios, CT_MAX_RATIOS, 1, 64); arch_set = 1; break;
        case O_RESL: cfg.n_residual_layers = (int)hafm_opt_long("--residual-layers", optarg, 1, 8); arch_set = 1; break;
        case O_LSTM: cfg.lstm_layers = (int)hafm_opt_long("--lstm-layers", optarg, 0, 8); arch_set = 1; break;
        case O_KS: cfg.kernel_size = (int)hafm_opt_long("--kernel-size", optarg, 1, 63); arch_set = 1; break;
        case O_LKS: cfg.last_kernel_size = (int)hafm_opt_long("--last-kernel-size", optarg, 1, 63); arch_set = 1; break;
        case O_RKS: cfg.residual_kernel_size = (int)hafm_opt_long("--residual-kernel-size", optarg, 1, 63); arch_set = 1; break;
        case O_DILB: cfg.dilation_base = (int)hafm_opt_long("--dilation-base", optarg, 1, 16); arch_set = 1; break;
        case O_COMPRESS: cfg.compress = (int)hafm_opt_long("--compress", optarg, 1, 64); arch_set = 1; break;
        case O_BINS: cfg.bins = (int)hafm_opt_long("--bins", optarg, 2, 65536); arch_set = 1; break;
        case O_BW: cfg.n_bw = hafm_opt_double_list("--bandwidths", optarg, cfg.target_bandwidths, CT_MAX_BW, 0.001, 10000.0); arch_set = 1; break;
        case 'q': quiet = 1; break;
        case 't': hafm_set_threads((int)hafm_opt_long("--threads", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return 0;
        case O_VERSION: hafm_print_version();
        default: bad_option(c, argv);
        }
    }
    if (!out) hafm_usage_error("an output file (-o) is required");
    if (optind == argc) hafm_usage_error("no training data given");
    if (init && arch_set) hafm_usage_error("--init takes the architecture from the file: drop the architecture options");
    if (init && resume) hafm_usage_error("--init and --resume exclude each other (a checkpoint holds the weights)");
    if (plot && !log_path) hafm_usage_error("--plot draws the curves from the log: give --log FILE too");
    /* n_q: as many codebooks as the largest bandwidth needs */
    int n_q = 1;
    for (int i = 0; i < cfg.n_bw; i++) {
        double bits = log2((double)cfg.bins);
        int hop = 1;
        for (int r = 0; r < cfg.n_ratios; r++) hop *= cfg.ratios[r];
        int k = (int)floor(cfg.target_bandwidths[i] * 1000.0 / (bits * ((cfg.sample_rate + hop - 1) / hop)));
        if (k > n_q) n_q = k;
    }
    cfg.n_q = n_q;

    if (!init && lround(segment_sec * cfg.sample_rate) < ct_config_hop(&cfg))
        hafm_usage_error("--segment: %g s is shorter than one frame (%d samples)", segment_sec, ct_config_hop(&cfg));
    ct_model *m = NULL;
    if (init) {
        if (!(m = ct_model_open(init))) hafm_die_last();
    } else {
        if (!(m = ct_model_new(&cfg))) hafm_usage_error("%s", hafm_last_error());
        ct_model_init_random(m, o.seed);
    }
    const ct_config *mc = ct_model_config(m);
    o.segment = (int)lround(segment_sec * mc->sample_rate);
    ct_trainer *tr = ct_trainer_new(m, &o);
    if (!tr) hafm_usage_error("%s", hafm_last_error());
    data_ctx data = {tr, mc->sample_rate, resample};
    for (int i = optind; i < argc; i++) add_path(&data, argv[i]);
    if (ct_trainer_nclips(tr) == 0) hafm_die("no audio found in the given data");

    char ckpt_buf[4096];
    if (!ckpt) {
        snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", out);
        ckpt = ckpt_buf;
    }
    if (resume && ct_trainer_load_checkpoint(tr, resume)) hafm_die_last();
    FILE *log = NULL;
    if (log_path && !(log = fopen(log_path, resume ? "a" : "w"))) hafm_die("cannot open %s:", log_path);

    char *opts_json = ct_train_opts_to_json(&o);
    double t0 = hafm_now(), audio_sec = 0.0;
    while (ct_trainer_step_count(tr) < steps) {
        ct_step_stats st;
        if (ct_trainer_step(tr, &st)) hafm_die_last();
        audio_sec += (double)o.batch * o.segment / mc->sample_rate;
        if (log) log_step(log, &st, o.adversarial);
        if (!quiet && (st.step % 10 == 0 || st.step == steps))
            fprintf(stderr, "%s: step %" PRId64 "/%ld loss %.4f (L1 %.4f mel %.4f commit %.4f) %.2f s of audio/s\n",
                    hafm_progname, st.step, steps, st.loss, st.l1, st.mel, st.commit,
                    audio_sec / (hafm_now() - t0));
        if (eval_every && st.step % eval_every == 0) eval_and_log(tr, log, quiet, mc);
        if (ckpt_every && st.step % ckpt_every == 0 && st.step < steps) {
            if (ct_trainer_save_checkpoint(tr, ckpt)) hafm_die_last();
            if (plot) plot_curves(log_path, plot);
        }
    }
    if (!eval_every || ct_trainer_step_count(tr) % eval_every) eval_and_log(tr, log, quiet, mc);
    if (ct_trainer_save_checkpoint(tr, ckpt)) hafm_die_last();
    char steps_s[32];
    snprintf(steps_s, sizeof steps_s, "%" PRId64, ct_trainer_step_count(tr));
    const char *meta[] = {"trained_by", "encodec-train (hafm) " HAFM_VERSION, "training", opts_json,
                          "training_steps", steps_s, "init", init ? init : "random", NULL};
    if (ct_model_save(ct_trainer_model(tr), out, meta)) hafm_die_last();
    if (recon) {
        int64_t n = (int64_t)mc->sample_rate * 30;
        float *y = hafm_xmalloc(sizeof(float) * (size_t)n);
        int top = 1;
        for (int i = 0; i < mc->n_bw; i++) {
            int k = ct_config_nq_for_bandwidth(mc, mc->target_bandwidths[i]);
            if (k > top) top = k;
        }
        ct_trainer_eval_sisdr(tr, 0, n, top, y);
        hafm_audio a = {y, 0, 1, mc->sample_rate};
        a.frames = ct_trainer_clip_len(tr, 0) < n ? ct_trainer_clip_len(tr, 0) : n;
        if (hafm_audio_write(recon, &a, HAFM_FLOAT32)) hafm_die_last();
        free(y);
    }
    if (log) fclose(log);
    if (plot) plot_curves(log_path, plot);
    free(opts_json);
    ct_trainer_free(tr);
    return 0;
}
