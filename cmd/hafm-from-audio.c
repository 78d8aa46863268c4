/* hafm-from-audio - audio files -> a hafm stream with one item per file. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "hafm.h"
#include "hafm/audio_stream.h"

static void usage(FILE *fp) {
    fprintf(fp,
        "usage: %s [options] [FILE...]\n"
        "Reads audio files (WAV, FLAC, Ogg, AIFF, AU, ...: what libsndfile reads) and writes a hafm\n"
        "stream on stdout with one item per file and the audio in one track. '-' or no FILE reads\n"
        "stdin; when stdin holds a hafm stream, it is copied through unchanged at that place and\n"
        "the other files are added as further items. 16-bit PCM is kept exact (dtype i16); other\n"
        "sample formats, and audio converted by --rate or --mono, become f32.\n"
        "  -k, --key KEY             item key (one FILE only)       [file name without extension; 'stdin']\n"
        "  -l, --keys-from-list F    read 'KEY PATH' lines from file F instead of FILE arguments\n"
        "  -n, --name NAME           track name, 1-64 of [A-Za-z0-9_.:+-]   [audio]\n"
        "  -r, --rate HZ             resample to HZ with libsoxr (very high quality), 1000-768000\n"
        "                            [the file's rate]\n"
        "  -m, --mono                mix the channels down to one (their mean)\n"
        "  -t, --threads N           threads, 1-1024                [$HAFM_THREADS or all CPUs]\n"
        "  -h, --help                this text\n"
        "      --version             print the version\n",
        hafm_progname);
}

typedef struct {
    char *key, *path;
} input;

/* "KEY PATH" lines; blank lines and lines starting with '#' are skipped. */
static input *read_list(const char *list, int *n) {
    FILE *fp = fopen(list, "r");
    if (!fp) hafm_die("%s:", list);
    input *v = NULL;
    int cap = 0, lineno = 0;
    char *line = NULL;
    size_t lcap = 0;
    *n = 0;
    while (getline(&line, &lcap, fp) >= 0) {
        lineno++;
        char *p = line + strspn(line, " \t"), *end = p + strlen(p);
        while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t')) *--end = 0;
        if (!*p || *p == '#') continue;
        size_t klen = strcspn(p, " \t");
        char *path = p + klen + strspn(p + klen, " \t");
        if (!p[klen] || !*path) hafm_die("%s:%d: expected 'KEY PATH'", list, lineno);
        p[klen] = 0;
        if (*n == cap) v = hafm_xrealloc(v, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *v);
        v[*n].key = hafm_xstrdup(p);
        v[*n].path = hafm_xstrdup(path);
        (*n)++;
    }
    if (ferror(fp)) hafm_die("%s:", list);
    fclose(fp);
    free(line);
    if (*n == 0) hafm_die("%s: no 'KEY PATH' lines", list);
    return v;
}

/* Copies the stream on stdin through, message by message. */
static void pass_stream(hafm_writer *w) {
    hafm_reader *r = hafm_reader_open(stdin, "stdin");
    if (!r) hafm_die_last();
    hafm_event ev;
    int rc;
    while ((rc = hafm_reader_next(r, &ev)) > 0)
        if (hafm_write_passthrough(w, &ev) < 0) hafm_die_last();
    if (rc < 0) hafm_die_last();
    hafm_reader_close(r);
}

int main(int argc, char **argv) {
    hafm_init(argc, argv);
    enum { OPT_VERSION = 256 };
    static const struct option longopts[] = {
        {"key", required_argument, NULL, 'k'},   {"keys-from-list", required_argument, NULL, 'l'},
        {"name", required_argument, NULL, 'n'},  {"rate", required_argument, NULL, 'r'},
        {"mono", no_argument, NULL, 'm'},        {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    const char *key = NULL, *list = NULL;
    hafm_audio_import opt = {.track_name = "audio", .tool = "hafm-from-audio"};
    int c;
    while ((c = getopt_long(argc, argv, ":k:l:n:r:mt:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': key = optarg; break;
        case 'l': list = optarg; break;
        case 'n': opt.track_name = optarg; break;
        case 'r': opt.out_rate = (int)hafm_opt_long("-r", optarg, 1000, 768000); break;
        case 'm': opt.mono = 1; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case OPT_VERSION: hafm_print_version();
        case ':': hafm_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: hafm_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    size_t nlen = strlen(opt.track_name), ok_chars = strspn(opt.track_name,
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:+-");
    if (nlen < 1 || nlen > HAFM_MAX_NAME || ok_chars != nlen)
        hafm_usage_error("-n: expected 1-64 characters of [A-Za-z0-9_.:+-], got '%s'", opt.track_name);

    input *inputs;
    int n;
    if (list) {
        if (optind < argc) hafm_usage_error("--keys-from-list replaces the FILE arguments");
        if (key) hafm_usage_error("-k and --keys-from-list exclude each other");
        inputs = read_list(list, &n);
    } else {
        n = optind < argc ? argc - optind : 1;
        if (key && n != 1) hafm_usage_error("-k names one item, but %d files are given", n);
        inputs = hafm_xcalloc((size_t)n, sizeof *inputs);
        for (int i = 0; i < n; i++) {
            inputs[i].path = optind < argc ? argv[optind + i] : "-";
            inputs[i].key = (char *)key;
        }
    }
    int stdin_uses = 0;
    for (int i = 0; i < n; i++) stdin_uses += strcmp(inputs[i].path, "-") == 0;
    if (stdin_uses > 1) hafm_usage_error("'-' (stdin) is given %d times", stdin_uses);

    hafm_writer *w = hafm_writer_open(stdout, hafm_progname);
    if (!w) hafm_die_last();
    for (int i = 0; i < n; i++) {
        const char *path = inputs[i].path;
        if (strcmp(path, "-") == 0 && hafm_input_is_stream(stdin)) {
            pass_stream(w);
            continue;
        }
        char derived[HAFM_MAX_KEY + 1];
        const char *k = inputs[i].key;
        if (!k) {
            hafm_audio_key_from_path(derived, sizeof derived, path);
            k = derived;
        }
        if (hafm_audio_import_item(w, path, k, &opt) < 0) hafm_die_last();
    }
    if (hafm_writer_close(w) < 0) hafm_die_last();
    if (list)
        for (int i = 0; i < n; i++) { free(inputs[i].key); free(inputs[i].path); }
    free(inputs);
    return 0;
}
