/* hafm-fit - how well an accompaniment fits a song's chords and beats, and how close audio is to
 * a reference (SI-SDR, log-mel distance): the measurements of examples/train's evaluation. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/musicfit.h"
#include "hafm/sdr.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [-l LABELS] [-r REFERENCE] [options] AUDIO\n"
            "Measures AUDIO (any file libsndfile reads, mixed to mono) and prints one JSON line:\n"
            "with -l, the chord fit (share of chroma energy on the labelled chords' pitch classes)\n"
            "and the beat fit (onset strength at the labelled beats over chance); with -r, the\n"
            "SI-SDR and log-mel distance against REFERENCE.\n"
            "  -l, --labels FILE     labels.json of the song (examples/corpus: chords, beats)\n"
            "  -r, --reference FILE  reference audio (resampled to AUDIO's rate if needed)\n"
            "      --tol SECONDS     beat tolerance either side, 0.005-0.5          [0.05]\n"
            "  -t, --threads N       threads, 1-1024                 [$HAFM_THREADS or all]\n"
            "  -h, --help            this help\n"
            "      --version         the version\n",
            hafm_progname);
}

static void print_num(const char *key, double v)
{
    if (isfinite(v)) printf(",\"%s\":%.6g", key, v);
    else printf(",\"%s\":null", key);
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void read_mono(const char *path, int rate, hafm_audio *out)
{
    hafm_audio a;
    if (hafm_audio_read(path, &a) < 0) {
        hafm_error_prefix("%s", path);
        hafm_die_last();
    }
    if (hafm_audio_prepare(&a, rate > 0 ? rate : a.sample_rate, out) < 0) hafm_die_last();
    hafm_audio_free(&a);
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    enum { O_TOL = 256 };
    static const struct option opts[] = {
        { "labels", required_argument, NULL, 'l' }, { "reference", required_argument, NULL, 'r' },
        { "tol", required_argument, NULL, O_TOL },  { "threads", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },         { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *labels_path = NULL, *ref_path = NULL;
    double tol = 0.05;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:r:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': labels_path = optarg; break;
        case 'r': ref_path = optarg; break;
        case O_TOL: tol = hafm_opt_double("--tol", optarg, 0.005, 0.5); break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case 'V': hafm_print_version();
        default: hafm_bad_option(c, argv);
        }
    }
    if (optind != argc - 1) hafm_usage_error("expected one AUDIO file, got %d", argc - optind);
    if (!labels_path && !ref_path) hafm_usage_error("nothing to measure: give --labels, --reference or both");
    const char *path = argv[optind];
    hafm_song_labels labels = { 0 };
    if (labels_path && hafm_labels_read(labels_path, &labels) < 0) hafm_die_last();
    hafm_audio x;
    read_mono(path, 0, &x);
    printf("{\"file\":");
    print_json_string(path);
    printf(",\"duration\":%.3f", (double)x.frames / x.sample_rate);
    if (labels_path) {
        int spans, beats;
        double chord = hafm_chord_fit(x.data, x.frames, x.sample_rate, &labels, &spans);
        double beat = hafm_beat_fit(x.data, x.frames, x.sample_rate, &labels, tol, &beats);
        print_num("chord_fit", chord);
        printf(",\"chord_spans\":%d", spans);
        print_num("beat_fit", beat);
        printf(",\"beats\":%d", beats);
    }
    if (ref_path) {
        hafm_audio ref;
        read_mono(ref_path, x.sample_rate, &ref);
        int64_t n = ref.frames < x.frames ? ref.frames : x.frames;
        print_num("si_sdr", hafm_si_sdr(ref.data, x.data, n, 1, 0));
        print_num("mel_distance", hafm_mel_distance(ref.data, x.data, n, x.sample_rate));
        hafm_audio_free(&ref);
    }
    printf("}\n");
    hafm_audio_free(&x);
    hafm_labels_free(&labels);
    return hafm_close_stdout() == 0 ? 0 : 1;
}
