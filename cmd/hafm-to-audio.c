/* hafm-to-audio - audio tracks of a hafm stream -> audio files. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hafm.h"
#include "hafm/audio_stream.h"

static void usage(FILE *fp) {
    fprintf(fp,
        "usage: %s [options] [STREAM]\n"
        "Writes the audio track of a hafm stream (STREAM or stdin) as audio files, chunk by chunk;\n"
        "each file appears complete (temporary name, renamed once its item has ended).\n"
        "  -o, --output FILE    the audio of one item to FILE; '-' writes WAV on stdout;\n"
        "                       .flac, .ogg, .aiff and .au pick that format, anything else WAV  [-]\n"
        "  -d, --dir DIR        every item to DIR/KEY.wav (DIR is created if missing)\n"
        "  -i, --item KEY       the item written by -o                   [the first item]\n"
        "  -n, --name NAME      the audio track                          [audio]\n"
        "  -f, --format F       sample format: pcm16, pcm24, pcm32 or float\n"
        "                       [pcm16 for i16 tracks, float otherwise]\n"
        "  -t, --threads N      threads, 1-1024                          [$HAFM_THREADS or all CPUs]\n"
        "  -h, --help           this text\n"
        "      --version        print the version\n",
        hafm_progname);
}

/* KEY.wav in DIR, refusing keys that are not a plain file name. */
static char *dir_path(const char *dir, const char *key) {
    if (strchr(key, '/') || !strcmp(key, ".") || !strcmp(key, ".."))
        hafm_die("item '%s': the key cannot be used as a file name in %s", key, dir);
    size_t n = strlen(dir) + strlen(key) + 6;
    char *p = hafm_xmalloc(n);
    snprintf(p, n, "%s/%s.wav", dir, key);
    return p;
}

int main(int argc, char **argv) {
    hafm_init(argc, argv);
    enum { OPT_VERSION = 256 };
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"dir", required_argument, NULL, 'd'},
        {"item", required_argument, NULL, 'i'},   {"name", required_argument, NULL, 'n'},
        {"format", required_argument, NULL, 'f'}, {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL, *dir = NULL, *item = NULL, *name = "audio";
    hafm_sample_format fmt = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:d:i:n:f:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'd': dir = optarg; break;
        case 'i': item = optarg; break;
        case 'n': name = optarg; break;
        case 'f':
            if (!strcmp(optarg, "pcm16")) fmt = HAFM_PCM16;
            else if (!strcmp(optarg, "pcm24")) fmt = HAFM_PCM24;
            else if (!strcmp(optarg, "pcm32")) fmt = HAFM_PCM32;
            else if (!strcmp(optarg, "float")) fmt = HAFM_FLOAT32;
            else hafm_usage_error("-f: expected pcm16, pcm24, pcm32 or float, got '%s'", optarg);
            break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case OPT_VERSION: hafm_print_version();
        case ':': hafm_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: hafm_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (output && dir) hafm_usage_error("-o and -d exclude each other");
    if (item && dir) hafm_usage_error("-i selects the item for -o; -d writes every item");
    if (argc - optind > 1) hafm_usage_error("one STREAM at most, got %d", argc - optind);
    if (!dir && !output) output = "-";
    const char *in_name = optind < argc ? argv[optind] : "-";
    FILE *in = strcmp(in_name, "-") ? fopen(in_name, "rb") : stdin;
    if (!in) hafm_die("%s:", in_name);
    if (dir && mkdir(dir, 0777) < 0 && errno != EEXIST) hafm_die("cannot create directory %s:", dir);

    hafm_reader *r = hafm_reader_open(in, strcmp(in_name, "-") ? in_name : "stdin");
    if (!r) hafm_die_last();
    hafm_event ev;
    hafm_sndwriter *w = NULL;
    hafm_track *track = NULL;   /* the track being written */
    int selected = 0, done = 0, rc = 0;
    while (!done && (rc = hafm_reader_next(r, &ev)) > 0) {
        switch (ev.type) {
        case HAFM_EV_ITEM:
            selected = dir || (item ? !strcmp(ev.key, item) : 1);
            break;
        case HAFM_EV_TRACK:
            if (selected && !strcmp(ev.track->name, name)) {
                char *path = dir ? dir_path(dir, hafm_reader_item_key(r)) : NULL;
                w = hafm_sndwriter_for_track(path ? path : output, ev.track, fmt);
                free(path);
                if (!w) hafm_die("item '%s': %s", hafm_reader_item_key(r), hafm_last_error());
                track = ev.track;
            }
            break;
        case HAFM_EV_DATA:
            if (w && ev.track == track && hafm_sndwriter_write_event(w, &ev) < 0) hafm_die_last();
            break;
        case HAFM_EV_ITEM_END:
            if (!selected) break;
            if (!w) hafm_die("item '%s': no track '%s'", ev.key, name);
            if (hafm_sndwriter_close(w) < 0) hafm_die_last();
            w = NULL;
            track = NULL;
            done = !dir;   /* -o: one item, the rest of the stream is not needed */
            break;
        default:
            break;
        }
    }
    if (!done && rc < 0) hafm_die_last();
    if (!done && !dir) {
        if (item) hafm_die("no item '%s' in the stream", item);
        hafm_die("the stream holds no items");
    }
    hafm_reader_close(r);
    if (in != stdin) fclose(in);
    return hafm_close_stdout() == 0 ? 0 : 1;
}
