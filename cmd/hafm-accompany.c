/* hafm-accompany - an accompaniment for a vocal, mixed with it: the whole HAFM pipeline. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/accompany.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] VOCAL -o MIX\n"
            "       %s [options] VOCAL --accompaniment-only ACCOMPANIMENT\n"
            "Generates an accompaniment for VOCAL (any audio file, rate and length) with\n"
            "  hubert-tok | hafm-stage1 | hafm-stage2 | hafm-stage3 | encodec-dec\n"
            "and mixes it with the vocal, loudness-matched (EBU R128), into MIX (WAV, or FLAC/OGG by\n"
            "extension; at the vocal's rate and channels; written atomically). Prints each stage's time.\n"
            "  -o, --output FILE          the mix\n"
            "  -A, --accompaniment-only FILE  the accompaniment alone (24 kHz); with -o, both\n"
            "  -a, --accompaniment FILE   mix this accompaniment (any audio file) with VOCAL instead\n"
            "                             of generating one: no models are needed\n"
            "  -M, --models DIR           codec, centroids, stage1-3 .safetensors\n"
            "                             [$HAFM_MODELS, else ../share/hafm/models or ../models beside this program]\n"
            "  -F, --features KIND        hubert-tok features: mfcc, logmel, chroma or hubert\n"
            "                             [those the centroids name, as hubert-tok]\n"
            "  -m, --hubert-model FILE    HuBERT weights for -F hubert        [$HAFM_HUBERT_MODEL]\n"
            "  -S, --seed N               sampling seed of every stage, 0-2^63-1            [0]\n"
            "  -s, --cfg-scale X          classifier-free guidance scale, 0-100     [each model's, else 3]\n"
            "  -T, --temperature X        sampling temperature, 0-10 (0: greedy)    [each model's, else 0.9]\n"
            "  -k, --top-k K              sample among the K most likely, 0-1048576 (0: all)\n"
            "                                                                       [each model's, else 250]\n"
            "  -p, --top-p P              nucleus sampling, (0, 1]                  [each model's, else 1]\n"
            "  -b, --balance DB           vocal loudness above the accompaniment's, -30-30 LU [2]\n"
            "      --bin DIR              where the commands are        [beside this program, else PATH]\n"
            "  -t, --threads N            threads of every command, 1-1024 [$HAFM_THREADS or all]\n"
            "  -q, --quiet                no timing lines\n"
            "  -h, --help                 this help\n"
            "      --version              the version\n",
            hafm_progname, hafm_progname);
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    enum { O_BIN = 256 };
    static const struct option opts[] = {
        { "output", required_argument, NULL, 'o' },   { "accompaniment-only", required_argument, NULL, 'A' },
        { "accompaniment", required_argument, NULL, 'a' },
        { "models", required_argument, NULL, 'M' },   { "features", required_argument, NULL, 'F' },
        { "hubert-model", required_argument, NULL, 'm' }, { "seed", required_argument, NULL, 'S' },
        { "cfg-scale", required_argument, NULL, 's' }, { "temperature", required_argument, NULL, 'T' },
        { "top-k", required_argument, NULL, 'k' },    { "top-p", required_argument, NULL, 'p' },
        { "balance", required_argument, NULL, 'b' },  { "bin", required_argument, NULL, O_BIN },
        { "threads", required_argument, NULL, 't' },  { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },           { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    hafm_accompany_opts o;
    hafm_accompany_opts_default(&o);
    const char *models = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:A:a:M:F:m:S:s:T:k:p:b:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o.mix_out = optarg; break;
        case 'A': o.accomp_out = optarg; break;
        case 'a': o.accomp_in = optarg; break;
        case 'M': models = optarg; break;
        case 'F':
            if (strcmp(optarg, "mfcc") && strcmp(optarg, "logmel") && strcmp(optarg, "chroma") && strcmp(optarg, "hubert"))
                hafm_usage_error("-F: expected mfcc, logmel, chroma or hubert, got '%s'", optarg);
            o.features = optarg;
            break;
        case 'm': o.hubert_model = optarg; break;
        case 'S': {
            /* the full range of the stages' seeds: parse as unsigned, range-checked by hand */
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v > (unsigned long long)INT64_MAX)
                hafm_usage_error("-S: expected an integer in [0, 2^63-1], got '%s'", optarg);
            o.seed = v;
            break;
        }
        case 's': o.cfg_scale = hafm_opt_double("-s", optarg, 0, 100); break;
        case 'T': o.temperature = hafm_opt_double("-T", optarg, 0, 10); break;
        case 'k': o.top_k = hafm_opt_long("-k", optarg, 0, 1048576); break;
        case 'p':
            o.top_p = hafm_opt_double("-p", optarg, 0, 1);
            if (o.top_p <= 0) hafm_usage_error("-p: expected a number in (0, 1], got '%s'", optarg);
            break;
        case 'b': o.balance_db = hafm_opt_double("-b", optarg, -30, 30); break;
        case O_BIN: o.bin_dir = optarg; break;
        case 't':
            o.threads = (int)hafm_opt_long("-t", optarg, 1, 1024);
            hafm_set_threads(o.threads);
            break;
        case 'q': o.quiet = 1; break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case 'V': hafm_print_version();
        default: hafm_bad_option(c, argv);
        }
    }
    if (optind != argc - 1) hafm_usage_error("expected one VOCAL file, got %d", argc - optind);
    if (!o.mix_out && !o.accomp_out) hafm_usage_error("no output: give -o MIX or --accompaniment-only FILE");
    o.vocal = argv[optind];
    if (o.accomp_in && !o.mix_out) hafm_usage_error("--accompaniment needs -o MIX");
    char *dir = o.accomp_in ? NULL : hafm_accompany_models_dir(models);
    if (!dir && !o.accomp_in) hafm_die_last();
    o.models = dir;
    hafm_accompany_report rep;
    if (hafm_accompany(&o, &rep) < 0) hafm_die_last();
    free(dir);
    return 0;
}
