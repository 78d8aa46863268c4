/* hafm-compose - procedurally composed paired songs: vocal, accompaniment, mixture, labels. */
#include "hafm/common.h"
#include "hafm/compose.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *fp)
{
    fprintf(fp,
        "usage: %s [options] -o DIR\n"
        "       %s --list [options]\n"
        "Composes songs from (seed, index) and renders each into DIR/<split>/<id>/:\n"
        "vocal.wav (formant singer), accomp.wav (FluidSynth, General MIDI), mix.wav (their sum),\n"
        "song.hafm (the three as one stream item), song.mid and labels.json (key, mode, tempo,\n"
        "meter, beats, chords, melody).\n"
        "  -s, --seed N          corpus seed, 0..4294967295                         [1]\n"
        "  -i, --index I         first song index, 0..4294967295                   [0]\n"
        "  -n, --count N         songs I..I+N-1, 1..100000000                       [1]\n"
        "  -o, --output DIR      output directory (required unless --list)\n"
        "      --flat            write songs to DIR/<id>/ (no split directory)\n"
        "  -l, --length SEC      target length in seconds (whole bars), 5..3600     [25]\n"
        "  -r, --rate HZ         sample rate, 8000..96000                           [24000]\n"
        "      --valid P         share of songs in the validation split, 0..1       [0.05]\n"
        "      --test P          share of songs in the test split, 0..1             [0.05]\n"
        "      --soundfont FILE  General MIDI SoundFont\n"
        "                        [$HAFM_SOUNDFONT or /usr/share/sounds/sf2/FluidR3_GM.sf2]\n"
        "      --fluidsynth PROG the fluidsynth program       [$HAFM_FLUIDSYNTH or fluidsynth]\n"
        "      --stems           also write stems/<part>.wav and stems/<part>.mid\n"
        "      --no-audio        write only song.mid and labels.json\n"
        "  -f, --force           re-render songs that are complete (have labels.json)\n"
        "      --list            print 'index id split dir' per song, render nothing\n"
        "      --split NAME      only songs of this split: train, valid or test     [all]\n"
        "  -q, --quiet           no progress line per song on stderr\n"
        "  -t, --threads N       fluidsynth runs at a time, 1..256   [$HAFM_THREADS or CPUs]\n"
        "  -h, --help            this text\n"
        "      --version         the version\n",
        hafm_progname, hafm_progname);
}

enum { OPT_FLAT = 256, OPT_VALID, OPT_TEST, OPT_SOUNDFONT, OPT_FLUIDSYNTH, OPT_STEMS, OPT_NO_AUDIO,
       OPT_LIST, OPT_SPLIT, OPT_VERSION };

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    static const struct option longopts[] = {
        { "seed", required_argument, 0, 's' },     { "index", required_argument, 0, 'i' },
        { "count", required_argument, 0, 'n' },    { "output", required_argument, 0, 'o' },
        { "flat", no_argument, 0, OPT_FLAT },      { "length", required_argument, 0, 'l' },
        { "rate", required_argument, 0, 'r' },     { "valid", required_argument, 0, OPT_VALID },
        { "test", required_argument, 0, OPT_TEST },
        { "soundfont", required_argument, 0, OPT_SOUNDFONT },
        { "fluidsynth", required_argument, 0, OPT_FLUIDSYNTH },
        { "stems", no_argument, 0, OPT_STEMS },    { "no-audio", no_argument, 0, OPT_NO_AUDIO },
        { "force", no_argument, 0, 'f' },          { "list", no_argument, 0, OPT_LIST },
        { "split", required_argument, 0, OPT_SPLIT }, { "quiet", no_argument, 0, 'q' },
        { "threads", required_argument, 0, 't' },  { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, OPT_VERSION }, { 0, 0, 0, 0 },
    };
    hafm_compose_opts co;
    hafm_render_opts ro;
    hafm_compose_defaults(&co);
    hafm_render_defaults(&ro);
    uint32_t seed = 1, index = 0;
    long count = 1;
    const char *out = NULL;
    int flat = 0, force = 0, list = 0, quiet = 0, only_split = -1;
    int c;
    while ((c = getopt_long(argc, argv, ":s:i:n:o:l:r:fqt:h", longopts, NULL)) != -1) {
        switch (c) {
        case 's': seed = (uint32_t)hafm_opt_long("-s", optarg, 0, 4294967295L); break;
        case 'i': index = (uint32_t)hafm_opt_long("-i", optarg, 0, 4294967295L); break;
        case 'n': count = hafm_opt_long("-n", optarg, 1, 100000000L); break;
        case 'o': out = optarg; break;
        case OPT_FLAT: flat = 1; break;
        case 'l': co.length = hafm_opt_double("-l", optarg, 5, 3600); break;
        case 'r': ro.sample_rate = (int)hafm_opt_long("-r", optarg, 8000, 96000); break;
        case OPT_VALID: co.valid_share = hafm_opt_double("--valid", optarg, 0, 1); break;
        case OPT_TEST: co.test_share = hafm_opt_double("--test", optarg, 0, 1); break;
        case OPT_SOUNDFONT: ro.soundfont = optarg; break;
        case OPT_FLUIDSYNTH: ro.fluidsynth = optarg; break;
        case OPT_STEMS: ro.keep_stems = 1; break;
        case OPT_NO_AUDIO: ro.no_audio = 1; break;
        case 'f': force = 1; break;
        case OPT_LIST: list = 1; break;
        case OPT_SPLIT:
            for (only_split = 0; only_split < HAFM_SPLIT_COUNT; only_split++)
                if (!strcmp(optarg, hafm_split_name(only_split)))
                    break;
            if (only_split == HAFM_SPLIT_COUNT)
                hafm_usage_error("--split: expected train, valid or test, got '%s'", optarg);
            break;
        case 'q': quiet = 1; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 256)); break;
        case 'h': usage(stdout); return hafm_close_stdout() ? 1 : 0;
        case OPT_VERSION: hafm_print_version();
        case ':': hafm_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: hafm_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        hafm_usage_error("unexpected argument '%s'", argv[optind]);
    if (co.valid_share + co.test_share > 1)
        hafm_usage_error("--valid and --test add up to more than 1");
    if ((uint64_t)index + (uint64_t)count - 1 > 4294967295ull)
        hafm_usage_error("-i + -n: the last index passes 4294967295");
    if (!list && !out)
        hafm_usage_error("no output directory (-o DIR)");

    for (long k = 0; k < count; k++) {
        uint32_t idx = index + (uint32_t)k;
        int split = hafm_song_split(seed, idx, &co);
        if (only_split >= 0 && split != only_split)
            continue;
        char id[32];
        hafm_song_id(id, seed, idx);
        char dir[4096];
        const char *base = out ? out : ".";
        if (flat)
            snprintf(dir, sizeof dir, "%s/%s", base, id);
        else
            snprintf(dir, sizeof dir, "%s/%s/%s", base, hafm_split_name(split), id);
        if (list) {
            printf("%u\t%s\t%s\t%s\n", idx, id, hafm_split_name(split), dir);
            continue;
        }
        char labels[4200];
        snprintf(labels, sizeof labels, "%s/labels.json", dir);
        if (!force && access(labels, F_OK) == 0) {
            if (!quiet)
                fprintf(stderr, "%s: %s: complete, skipped\n", hafm_progname, id);
            continue;
        }
        double t0 = hafm_now();
        hafm_song song;
        if (hafm_song_compose(&song, seed, idx, &co) < 0)
            hafm_die_last();
        if (hafm_song_render(&song, dir, &ro) < 0) {
            hafm_error_prefix("%s", id);
            hafm_die_last();
        }
        if (!quiet)
            fprintf(stderr, "%s: %s %s: %.1f s, %s %s, %s, %g bpm, %s; rendered in %.2f s\n", hafm_progname, id,
                    hafm_split_name(split), hafm_song_duration(&song), hafm_pitch_class_name(song.tonic),
                    hafm_mode_name(song.mode), hafm_meter_name(song.meter), song.bpm,
                    hafm_style_name(song.style), hafm_now() - t0);
        hafm_song_free(&song);
    }
    return hafm_close_stdout() ? 1 : 0;
}
