/* sep-eval - separation quality: museval v4 SDR (median over frames), uSDR and SI-SDR. */
#include <cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/audio_stream.h"
#include "hafm/sdr.h"

#define MAX_SOURCES 16

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] REF EST [REF EST ...]\n"
            "Scores estimated sources against their references. Each REF EST pair is one source:\n"
            "two audio files, or two hafm streams whose items (matched by key) carry one track per\n"
            "source, named by -s. Scores per source and item: SDR as museval v4 reports it (median\n"
            "over 1 s frames, bss_eval_images, all sources of an item together), global SDR (uSDR,\n"
            "MDX 2021) and SI-SDR (mean over channels).\n"
            "  -s, --sources LIST  source names: one per file pair, or the track names\n"
            "                      of each item of a stream pair                 [vocal,accomp]\n"
            "  -w, --window S      museval frame length, seconds, 0.01-3600      [1]\n"
            "      --hop S         frame hop, seconds, 0.01-3600                 [the window]\n"
            "  -j, --json          a JSON report (with the frame SDRs) instead of text\n"
            "  -t, --threads N     threads, 1-1024                               [$HAFM_THREADS or all]\n"
            "  -h, --help          this help\n"
            "      --version       the version\n",
            hafm_progname);
}

/* one song: nsrc references and estimates, all [n][channels] at one rate */
typedef struct {
    char *key;
    hafm_audio ref[MAX_SOURCES], est[MAX_SOURCES];
} song;

static int nsrc;
static char *src_names[MAX_SOURCES];

static song *find_song(song **songs, int *n, const char *key, int create)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp((*songs)[i].key, key)) return &(*songs)[i];
    if (!create) return NULL;
    *songs = hafm_xrealloc(*songs, (size_t)(*n + 1) * sizeof **songs);
    song *s = &(*songs)[(*n)++];
    memset(s, 0, sizeof *s);
    s->key = hafm_xstrdup(key);
    return s;
}

/* Reads the source tracks of every item of a stream into songs (est: estimates side). */
static void read_stream(const char *path, song **songs, int *n, int est)
{
    FILE *fp = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!fp) hafm_die("cannot open %s:", path);
    hafm_reader *r = hafm_reader_open(fp, fp == stdin ? "stdin" : path);
    if (!r) hafm_die_last();
    hafm_event ev;
    int rc, ids[MAX_SOURCES];
    song *s = NULL;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_ITEM) {
            s = find_song(songs, n, ev.key, !est);
            if (!s) hafm_die("%s: item '%s' has no reference", path, ev.key);
            for (int k = 0; k < nsrc; k++) ids[k] = -1;
        } else if (ev.type == HAFM_EV_TRACK) {
            for (int k = 0; k < nsrc; k++)
                if (!strcmp(ev.track->name, src_names[k])) {
                    if (ev.track->kind != HAFM_KIND_AUDIO) hafm_die("%s: track '%s': not an audio track", path, src_names[k]);
                    ids[k] = ev.track->id;
                }
        } else if (ev.type == HAFM_EV_DATA) {
            for (int k = 0; k < nsrc; k++)
                if (ev.track->id == ids[k] && hafm_audio_append_event(est ? &s->est[k] : &s->ref[k], &ev) < 0)
                    hafm_die_last();
        } else if (ev.type == HAFM_EV_ITEM_END) {
            for (int k = 0; k < nsrc; k++)
                if (ids[k] < 0) hafm_die("%s: item '%s' has no audio track '%s'", path, ev.key, src_names[k]);
        }
    }
    if (rc < 0) hafm_die_last();
    hafm_reader_close(r);
    if (fp != stdin) fclose(fp);
}

static int is_stream_path(const char *path)
{
    FILE *fp = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!fp) hafm_die("cannot open %s:", path);
    int s = hafm_input_is_stream(fp);
    if (fp != stdin) fclose(fp);
    return s;
}

typedef struct {
    double sdr, usdr, sisdr;
    double *frames;
    int64_t nframes;
} score;

/* all sources of one song together (museval's silent-frame rule looks at every source) */
static void evaluate(song *s, score *out, double window_s, double hop_s)
{
    int rate = s->ref[0].sample_rate, ch = s->ref[0].channels;
    int64_t n = s->ref[0].frames;
    for (int k = 0; k < nsrc; k++) {
        const hafm_audio *r = &s->ref[k], *e = &s->est[k];
        if (!r->data || !e->data || r->frames == 0 || e->frames == 0)
            hafm_die("%s: source '%s': no samples", s->key, src_names[k]);
        if (r->sample_rate != rate || e->sample_rate != rate || r->channels != ch || e->channels != ch)
            hafm_die("%s: source '%s': references and estimates must share rate and channels "
                     "(%d Hz x %d vs %d Hz x %d)", s->key, src_names[k], r->sample_rate, r->channels,
                     e->sample_rate, e->channels);
        int64_t m = r->frames < e->frames ? r->frames : e->frames;
        if (r->frames != e->frames && llabs(r->frames - e->frames) > rate / 10)
            hafm_die("%s: source '%s': reference has %lld samples, estimate %lld", s->key, src_names[k],
                     (long long)r->frames, (long long)e->frames);
        if (m < n) n = m;
    }
    size_t plane = (size_t)n * ch;
    float *refs = hafm_xmalloc(plane * nsrc * sizeof(float)), *ests = hafm_xmalloc(plane * nsrc * sizeof(float));
    for (int k = 0; k < nsrc; k++) {
        memcpy(refs + plane * k, s->ref[k].data, plane * sizeof(float));
        memcpy(ests + plane * k, s->est[k].data, plane * sizeof(float));
    }
    int64_t win = (int64_t)llround(window_s * rate), hop = (int64_t)llround(hop_s * rate);
    if (win < 1) win = 1;
    if (hop < 1) hop = 1;
    int64_t nf = hafm_sdr_nframes(n, win, hop);
    double *frames = hafm_xmalloc((size_t)nf * nsrc * sizeof(double));
    if (hafm_sdr_frames(frames, refs, ests, nsrc, n, ch, win, hop) < 0) hafm_die_last();
    for (int k = 0; k < nsrc; k++) {
        score *o = &out[k];
        o->nframes = nf;
        o->frames = hafm_xmalloc((size_t)nf * sizeof(double));
        memcpy(o->frames, frames + k * nf, (size_t)nf * sizeof(double));
        o->sdr = hafm_nanmedian(o->frames, nf);
        o->usdr = hafm_usdr(refs + plane * k, ests + plane * k, n, ch);
        double si = 0;
        for (int c = 0; c < ch; c++) si += hafm_si_sdr(refs + plane * k, ests + plane * k, n, ch, c);
        o->sisdr = si / ch;
    }
    free(frames);
    free(refs);
    free(ests);
}

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    enum { O_HOP = 256 };
    static const struct option opts[] = {
        { "sources", required_argument, NULL, 's' }, { "window", required_argument, NULL, 'w' },
        { "hop", required_argument, NULL, O_HOP },   { "json", no_argument, NULL, 'j' },
        { "threads", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },       { NULL, 0, NULL, 0 },
    };
    const char *sources = "vocal,accomp";
    double window_s = 1.0, hop_s = -1;
    int json = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":s:w:jt:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': sources = optarg; break;
        case 'w': window_s = hafm_opt_double("-w", optarg, 0.01, 3600); break;
        case O_HOP: hop_s = hafm_opt_double("--hop", optarg, 0.01, 3600); break;
        case 'j': json = 1; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case 'V': hafm_print_version();
        default: hafm_bad_option(c, argv);
        }
    }
    if (hop_s < 0) hop_s = window_s;
    char *list = hafm_xstrdup(sources);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (nsrc == MAX_SOURCES) hafm_usage_error("-s: at most %d sources", MAX_SOURCES);
        src_names[nsrc++] = tok;
    }
    if (nsrc == 0) hafm_usage_error("-s: expected a comma-separated list of names");
    int npaths = argc - optind;
    if (npaths < 2 || npaths % 2) hafm_usage_error("expected pairs of REF EST, got %d paths", npaths);
    int stdin_uses = 0;
    for (int i = optind; i < argc; i++) stdin_uses += !strcmp(argv[i], "-");
    if (stdin_uses > 1) hafm_usage_error("only one input can be read from stdin");

    if (npaths > 2 && npaths / 2 != nsrc) hafm_usage_error("%d file pairs but %d source names (-s)", npaths / 2, nsrc);
    song *songs = NULL;
    int nsongs = 0;
    if (is_stream_path(argv[optind])) {
        if (npaths != 2) hafm_usage_error("streams: one REF EST pair (the sources are tracks, -s)");
        if (!is_stream_path(argv[optind + 1])) hafm_die("%s: the reference is a stream, the estimate is not", argv[optind + 1]);
        read_stream(argv[optind], &songs, &nsongs, 0);
        read_stream(argv[optind + 1], &songs, &nsongs, 1);
        if (nsongs == 0) hafm_die("%s: no items", argv[optind]);
    } else {
        if (npaths / 2 != nsrc) {
            if (!strcmp(sources, "vocal,accomp") && npaths == 2) nsrc = 1;
            else hafm_usage_error("%d file pairs but %d source names (-s)", npaths / 2, nsrc);
        }
        songs = hafm_xcalloc(1, sizeof *songs);
        nsongs = 1;
        char key[HAFM_MAX_KEY + 1];
        hafm_audio_key_from_path(key, sizeof key, argv[optind + 1]);
        songs[0].key = hafm_xstrdup(key);
        for (int k = 0; k < nsrc; k++) {
            if (hafm_audio_read(argv[optind + 2 * k], &songs[0].ref[k]) < 0) hafm_die_last();
            if (hafm_audio_read(argv[optind + 2 * k + 1], &songs[0].est[k]) < 0) hafm_die_last();
        }
    }
    score *scores = hafm_xcalloc((size_t)nsongs * nsrc, sizeof(score));
    for (int i = 0; i < nsongs; i++) {
        for (int k = 0; k < nsrc; k++)
            if (!songs[i].est[k].data) hafm_die("item '%s': no estimate of '%s'", songs[i].key, src_names[k]);
        evaluate(&songs[i], scores + (size_t)i * nsrc, window_s, hop_s);
    }
    /* per source: median over items of each score (SiSEC aggregates track medians by median) */
    double *tmp = hafm_xmalloc((size_t)nsongs * sizeof(double));
    double agg[MAX_SOURCES][3];
    for (int k = 0; k < nsrc; k++)
        for (int m = 0; m < 3; m++) {
            for (int i = 0; i < nsongs; i++) {
                const score *sc = &scores[(size_t)i * nsrc + k];
                tmp[i] = m == 0 ? sc->sdr : m == 1 ? sc->usdr : sc->sisdr;
            }
            agg[k][m] = hafm_nanmedian(tmp, nsongs);
        }
    free(tmp);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "window", window_s);
        cJSON_AddNumberToObject(o, "hop", hop_s);
        cJSON *items = cJSON_AddArrayToObject(o, "items");
        for (int i = 0; i < nsongs; i++) {
            cJSON *it = cJSON_CreateObject();
            cJSON_AddStringToObject(it, "key", songs[i].key);
            cJSON *srcs = cJSON_AddObjectToObject(it, "sources");
            for (int k = 0; k < nsrc; k++) {
                const score *sc = &scores[(size_t)i * nsrc + k];
                cJSON *so = cJSON_AddObjectToObject(srcs, src_names[k]);
                cJSON_AddItemToObject(so, "SDR", num_or_null(sc->sdr));
                cJSON_AddItemToObject(so, "uSDR", num_or_null(sc->usdr));
                cJSON_AddItemToObject(so, "SI-SDR", num_or_null(sc->sisdr));
                cJSON *fr = cJSON_AddArrayToObject(so, "SDR_frames");
                for (int64_t t = 0; t < sc->nframes; t++) cJSON_AddItemToArray(fr, num_or_null(sc->frames[t]));
            }
            cJSON_AddItemToArray(items, it);
        }
        cJSON *med = cJSON_AddObjectToObject(o, "median");
        for (int k = 0; k < nsrc; k++) {
            cJSON *so = cJSON_AddObjectToObject(med, src_names[k]);
            cJSON_AddItemToObject(so, "SDR", num_or_null(agg[k][0]));
            cJSON_AddItemToObject(so, "uSDR", num_or_null(agg[k][1]));
            cJSON_AddItemToObject(so, "SI-SDR", num_or_null(agg[k][2]));
        }
        char *txt = cJSON_Print(o);
        puts(txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        printf("%-24s %-12s %8s %8s %8s\n", "item", "source", "SDR", "uSDR", "SI-SDR");
        for (int i = 0; i < nsongs; i++)
            for (int k = 0; k < nsrc; k++) {
                const score *sc = &scores[(size_t)i * nsrc + k];
                printf("%-24s %-12s %8.3f %8.3f %8.3f\n", songs[i].key, src_names[k], sc->sdr, sc->usdr, sc->sisdr);
            }
        if (nsongs > 1)
            for (int k = 0; k < nsrc; k++)
                printf("%-24s %-12s %8.3f %8.3f %8.3f\n", "(median)", src_names[k], agg[k][0], agg[k][1], agg[k][2]);
    }
    for (int i = 0; i < nsongs; i++) {
        for (int k = 0; k < nsrc; k++) {
            hafm_audio_free(&songs[i].ref[k]);
            hafm_audio_free(&songs[i].est[k]);
            free(scores[(size_t)i * nsrc + k].frames);
        }
        free(songs[i].key);
    }
    free(songs);
    free(scores);
    free(list);
    return hafm_close_stdout() == 0 ? 0 : 1;
}
