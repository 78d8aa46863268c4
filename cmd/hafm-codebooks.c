/* hafm-codebooks - splits a multi-codebook tokens track into tracks of codebook ranges. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/codebooks.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] -s NAME=FIRST:END ... [FILE]\n"
            "Copies a hafm stream (FILE, or standard input) to standard output, adding to every item\n"
            "tracks that hold codebooks FIRST+1..END of a tokens track (e.g. EnCodec codes); every\n"
            "message passes through unchanged.\n"
            "  -i, --input NAME           tokens track to split                        [codes]\n"
            "  -s, --select NAME=FIRST:END  new track NAME of codebooks FIRST..END-1, counted from 0,\n"
            "                             0 <= FIRST < END <= the track's codebooks (repeatable)\n"
            "  -d, --drop                 leave the input track out\n"
            "  -o, --output FILE          write to FILE (atomically) instead of stdout\n"
            "  -t, --threads N            threads, 1-1024                  [$HAFM_THREADS or all]\n"
            "  -h, --help                 this help\n"
            "      --version              the version\n"
            "Example: encodec-enc codes -> hafm-codebooks -s accomp.coarse=0:4 -s accomp.fine=4:8\n",
            hafm_progname);
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > HAFM_MAX_NAME) return 0;
    for (; *s; s++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:+-", *s)) return 0;
    return 1;
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    static const struct option opts[] = {
        { "input", required_argument, NULL, 'i' },  { "select", required_argument, NULL, 's' },
        { "drop", no_argument, NULL, 'd' },         { "output", required_argument, NULL, 'o' },
        { "threads", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },      { NULL, 0, NULL, 0 },
    };
    hafm_codebook_range *ranges = NULL;
    hafm_codebooks_opts o = { "codes", NULL, 0, 0 };
    const char *output = "-";
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":i:s:do:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (!name_ok(optarg)) hafm_usage_error("--input: '%s' is not a track name", optarg);
            o.input = optarg;
            break;
        case 's': {
            /* the name may itself hold ':' (track names allow it): the range follows the last '=' */
            char *eq = strrchr(optarg, '=');
            char *colon = eq ? strchr(eq, ':') : NULL;
            if (!eq || !colon) hafm_usage_error("--select: expected NAME=FIRST:END, got '%s'", optarg);
            *eq = 0;
            *colon = 0;
            if (!name_ok(optarg)) hafm_usage_error("--select: '%s' is not a track name (1-64 of [A-Za-z0-9_.:+-])", optarg);
            long first = hafm_opt_long("--select FIRST", eq + 1, 0, 65535);
            long end = hafm_opt_long("--select END", colon + 1, first + 1, 65536);
            for (int i = 0; i < o.n_ranges; i++)
                if (!strcmp(ranges[i].name, optarg)) hafm_usage_error("--select: '%s' is named twice", optarg);
            ranges = hafm_xrealloc(ranges, (size_t)(o.n_ranges + 1) * sizeof *ranges);
            ranges[o.n_ranges++] = (hafm_codebook_range){ optarg, (int)first, (int)(end - first) };
            break;
        }
        case 'd': o.drop_input = 1; break;
        case 'o': output = optarg; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case 'V': hafm_print_version();
        default: hafm_bad_option(c, argv);
        }
    }
    if (o.n_ranges == 0) hafm_usage_error("no --select given");
    for (int i = 0; i < o.n_ranges; i++)
        if (!strcmp(ranges[i].name, o.input)) hafm_usage_error("--select: '%s' is the input track", o.input);
    if (optind < argc - 1) hafm_usage_error("one input at most, got %d", argc - optind);
    o.ranges = ranges;
    FILE *in = stdin;
    const char *name = NULL;
    if (optind < argc && strcmp(argv[optind], "-")) {
        name = argv[optind];
        if (!(in = fopen(name, "rb"))) hafm_die("cannot open %s:", name);
    }
    hafm_outfile *out = hafm_outfile_open(output);
    if (!out) hafm_die_last();
    hafm_reader *r = hafm_reader_open(in, name);
    hafm_writer *w = hafm_writer_open(hafm_outfile_fp(out), hafm_progname);
    if (!r || !w) hafm_die_last();
    if (hafm_codebooks_split(r, w, &o) < 0) hafm_die_last();
    if (hafm_writer_close(w) < 0) hafm_die_last();
    hafm_reader_close(r);
    if (in != stdin) fclose(in);
    if (hafm_outfile_commit(out) < 0) hafm_die_last();
    free(ranges);
    return 0;
}
