/* hafm-from-json - JSON lines (as hafm-dump --full writes them) back to a hafm stream. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/stream_tools.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] [FILE]\n"
            "Writes one hafm stream message per JSON line of FILE (or standard input), as\n"
            "hafm-dump --full shows them. Messages are written as given, without checks: pipe\n"
            "the result through hafm-dump to validate it.\n"
            "  -o, --output FILE   write to FILE (atomically) instead of stdout\n"
            "  -t, --threads N     threads, 1-1024                 [$HAFM_THREADS or all]\n"
            "  -h, --help          this help\n"
            "      --version       the version\n",
            hafm_progname);
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    static const struct option opts[] = {
        { "output", required_argument, NULL, 'o' }, { "threads", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },         { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *output = "-";
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case 'V': hafm_print_version();
        default: hafm_bad_option(c, argv);
        }
    }
    if (optind < argc - 1) hafm_usage_error("one input at most, got %d", argc - optind);
    FILE *in = stdin;
    const char *name = "stdin";
    if (optind < argc && strcmp(argv[optind], "-")) {
        name = argv[optind];
        if (!(in = fopen(name, "r"))) hafm_die("cannot open %s:", name);
    }
    hafm_outfile *out = hafm_outfile_open(output);
    if (!out) hafm_die_last();
    hafm_json_packer *p = hafm_json_packer_open(hafm_outfile_fp(out));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t messages = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        int rc = hafm_json_packer_line(p, line, (size_t)n);
        if (rc > 0) messages++;
        if (rc < 0) {
            hafm_error_prefix("%s", name);
            hafm_die_last();
        }
    }
    if (ferror(in)) hafm_die("%s: read error:", name);
    /* as for streams, an empty input almost always means the tool upstream failed */
    if (messages == 0) hafm_die("%s: no messages in the input", name);
    free(line);
    hafm_json_packer_free(p);
    if (in != stdin) fclose(in);
    if (hafm_outfile_commit(out) < 0) hafm_die_last();
    return 0;
}
