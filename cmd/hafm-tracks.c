/* hafm-tracks - keeps, drops and renames tracks of a hafm stream. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/stream_tools.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] [FILE]\n"
            "Copies a hafm stream (FILE, or standard input) to standard output, keeping, dropping and\n"
            "renaming tracks; every other message passes through unchanged.\n"
            "  -k, --keep NAMES      keep only these tracks (comma-separated)      [all]\n"
            "  -d, --drop NAMES      drop these tracks (comma-separated)           [none]\n"
            "  -R, --rename OLD=NEW  rename track OLD to NEW (repeatable)\n"
            "  -o, --output FILE     write to FILE (atomically) instead of stdout\n"
            "  -t, --threads N       threads, 1-1024                 [$HAFM_THREADS or all]\n"
            "  -h, --help            this help\n"
            "      --version         the version\n"
            "A name given to --keep or --rename that no item has is an error.\n",
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

/* Appends the comma-separated names of arg to *list. */
static void add_names(const char *opt, char *arg, const char ***list, int *n)
{
    for (char *save = NULL, *tok = strtok_r(arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!name_ok(tok)) hafm_usage_error("%s: '%s' is not a track name (1-64 of [A-Za-z0-9_.:+-])", opt, tok);
        *list = hafm_xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
        (*list)[(*n)++] = tok;
    }
    if (*n == 0) hafm_usage_error("%s: expected track names", opt);
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    static const struct option opts[] = {
        { "keep", required_argument, NULL, 'k' },   { "drop", required_argument, NULL, 'd' },
        { "rename", required_argument, NULL, 'R' }, { "output", required_argument, NULL, 'o' },
        { "threads", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },      { NULL, 0, NULL, 0 },
    };
    const char **keep = NULL, **drop = NULL, **from = NULL, **to = NULL;
    int nkeep = 0, ndrop = 0, nren = 0, c;
    const char *output = "-";
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:d:R:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': add_names("--keep", optarg, &keep, &nkeep); break;
        case 'd': add_names("--drop", optarg, &drop, &ndrop); break;
        case 'R': {
            char *eq = strchr(optarg, '=');
            if (!eq) hafm_usage_error("--rename: expected OLD=NEW, got '%s'", optarg);
            *eq = 0;
            if (!name_ok(optarg) || !name_ok(eq + 1))
                hafm_usage_error("--rename: '%s=%s' is not OLD=NEW with track names (1-64 of [A-Za-z0-9_.:+-])", optarg, eq + 1);
            for (int i = 0; i < nren; i++)
                if (!strcmp(from[i], optarg)) hafm_usage_error("--rename: '%s' is renamed twice", optarg);
            from = hafm_xrealloc(from, (size_t)(nren + 1) * sizeof *from);
            to = hafm_xrealloc(to, (size_t)(nren + 1) * sizeof *to);
            from[nren] = optarg;
            to[nren++] = eq + 1;
            break;
        }
        case 'o': output = optarg; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case 'V': hafm_print_version();
        default: hafm_bad_option(c, argv);
        }
    }
    if (optind < argc - 1) hafm_usage_error("one input at most, got %d", argc - optind);
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
    hafm_tracks_opts o = { keep, nkeep, drop, ndrop, from, to, nren };
    if (hafm_tracks_filter(r, w, &o) < 0) hafm_die_last();
    if (hafm_writer_close(w) < 0) hafm_die_last();
    hafm_reader_close(r);
    if (in != stdin) fclose(in);
    if (hafm_outfile_commit(out) < 0) hafm_die_last();
    free(keep);
    free(drop);
    free(from);
    free(to);
    return 0;
}
