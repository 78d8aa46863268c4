/* hafm-dump - a hafm stream as JSON lines, or the raw payload of one track. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/stream_tools.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] [FILE]\n"
            "Shows a hafm stream (FILE, or standard input) as JSON lines, one per message, or\n"
            "writes the payload of one track as raw little-endian values.\n"
            "  -f, --full          data payloads as arrays of every value        [summary]\n"
            "  -r, --raw NAME      write the values of track NAME instead: its dtype,\n"
            "                      little-endian, frame-major, no header\n"
            "  -i, --item KEY      only item KEY (with --raw: the item to take)  [first item]\n"
            "  -o, --output FILE   write to FILE (atomically) instead of stdout\n"
            "  -t, --threads N     threads, 1-1024                               [$HAFM_THREADS or all]\n"
            "  -h, --help          this help\n"
            "      --version       the version\n",
            hafm_progname);
}

static void open_input(int argc, char **argv, FILE **fp, const char **name)
{
    if (optind < argc - 1) hafm_usage_error("one input at most, got %d", argc - optind);
    if (optind == argc || !strcmp(argv[optind], "-")) {
        *fp = stdin;
        *name = NULL;
        return;
    }
    *name = argv[optind];
    if (!(*fp = fopen(*name, "rb"))) hafm_die("cannot open %s:", *name);
}

/* --raw: the payload of track name in the first item (or item key); stops after that item. */
static void dump_raw(hafm_reader *r, FILE *out, const char *name, const char *key)
{
    hafm_event ev;
    int rc, in_item = 0, id = -1;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_ITEM) in_item = !key || !strcmp(ev.key, key);
        if (!in_item) continue;
        if (ev.type == HAFM_EV_TRACK && !strcmp(ev.track->name, name)) id = ev.track->id;
        if (ev.type == HAFM_EV_DATA && ev.track->id == id && ev.nbytes && fwrite(ev.data, 1, ev.nbytes, out) != ev.nbytes)
            hafm_die("write error:");
        if (ev.type == HAFM_EV_ITEM_END) {
            if (id < 0) hafm_die("item '%s' has no track '%s'", ev.key, name);
            return;
        }
    }
    if (rc < 0) hafm_die_last();
    if (key) hafm_die("no item '%s' in the input", key);
    hafm_die("the input has no items");
}

static void dump_json(hafm_reader *r, FILE *out, int full, const char *key)
{
    hafm_event ev;
    int rc, shown = !key, found = 0;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (key && ev.type == HAFM_EV_ITEM) shown = found = !strcmp(ev.key, key) ? 1 : found;
        if (key && ev.type == HAFM_EV_ITEM && strcmp(ev.key, key)) shown = 0;
        if (shown) {
            char *line = hafm_event_json(&ev, full);
            if (!line) hafm_die_last();
            fputs(line, out);
            fputc('\n', out);
            free(line);
        }
        if (key && ev.type == HAFM_EV_ITEM_END) shown = 0;
    }
    if (rc < 0) hafm_die_last();
    if (key && !found) hafm_die("no item '%s' in the input", key);
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    static const struct option opts[] = {
        { "full", no_argument, NULL, 'f' },     { "raw", required_argument, NULL, 'r' },
        { "item", required_argument, NULL, 'i' }, { "output", required_argument, NULL, 'o' },
        { "threads", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },  { NULL, 0, NULL, 0 },
    };
    int full = 0, c;
    const char *raw = NULL, *key = NULL, *output = "-";
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":fr:i:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': full = 1; break;
        case 'r': raw = optarg; break;
        case 'i': key = optarg; break;
        case 'o': output = optarg; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case 'V': hafm_print_version();
        default: hafm_bad_option(c, argv);
        }
    }
    if (raw && full) hafm_usage_error("--raw and --full exclude each other");
    if (raw && !*raw) hafm_usage_error("--raw: expected a track name");
    FILE *in;
    const char *name;
    open_input(argc, argv, &in, &name);
    hafm_outfile *out = hafm_outfile_open(output);
    if (!out) hafm_die_last();
    hafm_reader *r = hafm_reader_open(in, name);
    if (!r) hafm_die_last();
    if (raw) dump_raw(r, hafm_outfile_fp(out), raw, key);
    else dump_json(r, hafm_outfile_fp(out), full, key);
    hafm_reader_close(r);
    if (in != stdin) fclose(in);
    if (hafm_outfile_commit(out) < 0) hafm_die_last();
    return 0;
}
