/* hafm-cmp - compares two hafm streams track by track within a tolerance. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/stream_tools.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] A B\n"
            "Compares hafm streams A and B (one of them may be '-', standard input) item by item and\n"
            "track by track, and prints the largest difference of every track.\n"
            "  -a, --atol X            absolute tolerance of audio and features values, >= 0  [0]\n"
            "  -r, --rtol X            relative tolerance (times |B|), >= 0                   [0]\n"
            "  -T, --max-token-diff N  differing tokens allowed per track and item, >= 0     [0]\n"
            "  -q, --quiet             no per-track lines\n"
            "  -t, --threads N         threads, 1-1024                   [$HAFM_THREADS or all]\n"
            "  -h, --help              this help\n"
            "      --version           the version\n"
            "Exit status: 0 equal within tolerance, 1 different or unreadable input, 2 usage.\n",
            hafm_progname);
}

static hafm_reader *open_stream(const char *path, FILE **fp)
{
    if (!strcmp(path, "-")) *fp = stdin;
    else if (!(*fp = fopen(path, "rb"))) hafm_die("cannot open %s:", path);
    hafm_reader *r = hafm_reader_open(*fp, strcmp(path, "-") ? path : "stdin");
    if (!r) hafm_die_last();
    return r;
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    static const struct option opts[] = {
        { "atol", required_argument, NULL, 'a' },    { "rtol", required_argument, NULL, 'r' },
        { "max-token-diff", required_argument, NULL, 'T' }, { "quiet", no_argument, NULL, 'q' },
        { "threads", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },       { NULL, 0, NULL, 0 },
    };
    hafm_cmp_opts o = { .atol = 0, .rtol = 0, .max_token_diff = 0, .report = stdout };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":a:r:T:qt:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': o.atol = hafm_opt_double("--atol", optarg, 0, INFINITY); break;
        case 'r': o.rtol = hafm_opt_double("--rtol", optarg, 0, INFINITY); break;
        case 'T': o.max_token_diff = hafm_opt_long("--max-token-diff", optarg, 0, INT32_MAX); break;
        case 'q': o.report = NULL; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case 'V': hafm_print_version();
        default: hafm_bad_option(c, argv);
        }
    }
    if (argc - optind != 2) hafm_usage_error("expected two streams, got %d", argc - optind);
    const char *pa = argv[optind], *pb = argv[optind + 1];
    if (!strcmp(pa, "-") && !strcmp(pb, "-")) hafm_usage_error("only one of A and B can be standard input");
    FILE *fa, *fb;
    hafm_reader *a = open_stream(pa, &fa), *b = open_stream(pb, &fb);
    const char *na = strcmp(pa, "-") ? pa : "stdin", *nb = strcmp(pb, "-") ? pb : "stdin";
    int rc = hafm_stream_cmp(a, b, na, nb, &o);
    if (rc < 0) hafm_die_last();
    hafm_reader_close(a);
    hafm_reader_close(b);
    if (fa != stdin) fclose(fa);
    if (fb != stdin) fclose(fb);
    if (rc > 0) fprintf(stderr, "%s: %s and %s differ: %s\n", hafm_progname, na, nb, hafm_last_error());
    if (hafm_close_stdout() != 0) hafm_die("write error:");
    return rc > 0 ? 1 : 0;
}
