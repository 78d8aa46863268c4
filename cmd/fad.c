/* fad - Frechet Audio Distance between a reference set and an evaluated set. */
#include <cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/fad.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] REFERENCE EVALUATED\n"
            "Frechet Audio Distance between two sets of songs. A set is a directory of audio\n"
            "files, @LIST (a file of paths, one per line), one audio file, or a hafm stream\n"
            "(a file, or - for stdin) whose items carry a features track or an audio track.\n"
            "  -e, --emb NAME      embedding of audio: vggish, encodec (the 24 kHz\n"
            "                      encoder's 128-d latent, fadtk's encodec-emb), hubert\n"
            "                      (a layer's features), or features (streams with\n"
            "                      features tracks only)                       [vggish]\n"
            "  -m, --model FILE    weights (safetensors): VGGish in the torch-port or TF\n"
            "                      naming, EnCodec, or HuBERT (HF naming)\n"
            "                      [$HAFM_VGGISH_MODEL / $HAFM_ENCODEC_MODEL / $HAFM_HUBERT_MODEL]\n"
            "  -l, --layer L       HuBERT layer, HF hidden_states[L], 0-48     [9]\n"
            "  -T, --track NAME    stream track to read                        [the item's features track,\n"
            "                                                                   else its audio track]\n"
            "  -p, --per-song      also the FAD of each evaluated song against the reference\n"
            "  -i, --inf           also FAD-inf (extrapolation to infinitely many frames)\n"
            "      --inf-steps N   subset sizes for FAD-inf, 2-1000            [25]\n"
            "      --inf-min N     smallest subset, frames, >= 2               [500]\n"
            "      --seed N        FAD-inf subsets: 0 = prefixes of the frames in order,\n"
            "                      else drawn with replacement, seeded, 0-2^63 [1]\n"
            "  -c, --cache DIR     per-file statistics cache                   [$HAFM_CACHE/fad, else\n"
            "                                                                   $XDG_CACHE_HOME/hafm/fad,\n"
            "                                                                   else ~/.cache/hafm/fad]\n"
            "      --no-cache      neither read nor write the cache\n"
            "  -j, --json          a JSON report instead of text\n"
            "  -t, --threads N     threads, 1-1024                             [$HAFM_THREADS or all]\n"
            "  -h, --help          this help\n"
            "      --version       the version\n",
            hafm_progname);
}

static char *default_cache(void)
{
    const char *c = getenv("HAFM_CACHE"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    char buf[4096];
    if (c && *c) snprintf(buf, sizeof buf, "%s/fad", c);
    else if (x && *x) snprintf(buf, sizeof buf, "%s/hafm/fad", x);
    else if (h && *h) snprintf(buf, sizeof buf, "%s/.cache/hafm/fad", h);
    else return NULL;
    return hafm_xstrdup(buf);
}

static cJSON *set_json(const char *spec, const hafm_fad_set *s)
{
    cJSON *o = cJSON_CreateObject();
    int cached = 0;
    for (int i = 0; i < s->nsongs; i++) cached += s->songs[i].cached;
    cJSON_AddStringToObject(o, "input", spec);
    cJSON_AddNumberToObject(o, "songs", s->nsongs);
    cJSON_AddNumberToObject(o, "frames", (double)s->total.n);
    cJSON_AddNumberToObject(o, "cached_songs", cached);
    return o;
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    enum { OPT_INF_STEPS = 256, OPT_INF_MIN, OPT_SEED, OPT_NO_CACHE };
    static const struct option opts[] = {
        { "emb", required_argument, NULL, 'e' },     { "model", required_argument, NULL, 'm' },
        { "layer", required_argument, NULL, 'l' },
        { "track", required_argument, NULL, 'T' },   { "per-song", no_argument, NULL, 'p' },
        { "inf", no_argument, NULL, 'i' },           { "inf-steps", required_argument, NULL, OPT_INF_STEPS },
        { "inf-min", required_argument, NULL, OPT_INF_MIN }, { "seed", required_argument, NULL, OPT_SEED },
        { "cache", required_argument, NULL, 'c' },   { "no-cache", no_argument, NULL, OPT_NO_CACHE },
        { "json", no_argument, NULL, 'j' },          { "threads", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },          { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    hafm_fad_config cfg = { .emb = "vggish", .layer = 9 };
    const char *model = NULL;
    int per_song = 0, inf = 0, json = 0, no_cache = 0, steps = 25, c;
    long inf_min = 500;
    uint64_t seed = 1;
    char *cache = NULL;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":e:m:l:T:pic:jt:h", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (strcmp(optarg, "vggish") && strcmp(optarg, "encodec") && strcmp(optarg, "hubert") &&
                strcmp(optarg, "features"))
                hafm_usage_error("-e: expected vggish, encodec, hubert or features, got '%s'", optarg);
            cfg.emb = optarg;
            break;
        case 'm': model = optarg; break;
        case 'l': cfg.layer = (int)hafm_opt_long("-l", optarg, 0, 48); break;
        case 'T': cfg.track = optarg; break;
        case 'p': per_song = 1; break;
        case 'i': inf = 1; break;
        case OPT_INF_STEPS: steps = (int)hafm_opt_long("--inf-steps", optarg, 2, 1000); break;
        case OPT_INF_MIN: inf_min = hafm_opt_long("--inf-min", optarg, 2, 1L << 40); break;
        case OPT_SEED: seed = (uint64_t)hafm_opt_long("--seed", optarg, 0, INT64_MAX); break;
        case 'c': free(cache); cache = hafm_xstrdup(optarg); break;
        case OPT_NO_CACHE: no_cache = 1; break;
        case 'j': json = 1; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case 'V': hafm_print_version();
        default: hafm_bad_option(c, argv);
        }
    }
    if (argc - optind != 2) hafm_usage_error("expected two sets (REFERENCE EVALUATED), got %d", argc - optind);
    const char *ref_spec = argv[optind], *eval_spec = argv[optind + 1];
    if (!strcmp(ref_spec, "-") && !strcmp(eval_spec, "-")) hafm_usage_error("only one set can be read from stdin");
    if (!cache && !no_cache) cache = default_cache();
    cfg.cache_dir = no_cache ? NULL : cache;
    if (!strcmp(cfg.emb, "vggish")) cfg.model = model ? model : getenv("HAFM_VGGISH_MODEL");
    if (!strcmp(cfg.emb, "encodec")) cfg.model = model ? model : getenv("HAFM_ENCODEC_MODEL");
    if (!strcmp(cfg.emb, "hubert")) cfg.model = model ? model : getenv("HAFM_HUBERT_MODEL");

    hafm_fad_embedder *e = hafm_fad_embedder_new(&cfg);
    if (!e) hafm_die_last();
    hafm_fad_set ref, ev;
    if (hafm_fad_set_load(&ref, ref_spec, e, 0) < 0) hafm_die_last();
    if (hafm_fad_set_load(&ev, eval_spec, e, inf) < 0) hafm_die_last();
    if (ref.total.dim != ev.total.dim)
        hafm_die("embedding dimensions differ: reference %d, evaluated %d", ref.total.dim, ev.total.dim);
    double fad;
    if (hafm_fad(&ref.total, &ev.total, &fad) < 0) hafm_die_last();
    double *song_fad = hafm_xmalloc((size_t)(ev.nsongs ? ev.nsongs : 1) * sizeof(double));
    for (int i = 0; per_song && i < ev.nsongs; i++)
        if (ev.songs[i].stats.n < 2 || hafm_fad(&ref.total, &ev.songs[i].stats, &song_fad[i]) < 0) song_fad[i] = NAN;
    hafm_fad_inf_result fi = { 0 };
    if (inf && hafm_fad_inf(&ref.total, ev.frames, ev.nframes, ev.total.dim, steps, inf_min, seed, &fi) < 0)
        hafm_die_last();

    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "fad", fad);
        cJSON_AddStringToObject(o, "embedding", cfg.emb);
        cJSON_AddNumberToObject(o, "dim", ref.total.dim);
        cJSON_AddItemToObject(o, "reference", set_json(ref_spec, &ref));
        cJSON_AddItemToObject(o, "evaluated", set_json(eval_spec, &ev));
        if (per_song) {
            cJSON *a = cJSON_AddArrayToObject(o, "per_song");
            for (int i = 0; i < ev.nsongs; i++) {
                cJSON *s = cJSON_CreateObject();
                cJSON_AddStringToObject(s, "name", ev.songs[i].name);
                cJSON_AddNumberToObject(s, "frames", (double)ev.songs[i].stats.n);
                if (isnan(song_fad[i])) cJSON_AddNullToObject(s, "fad");
                else cJSON_AddNumberToObject(s, "fad", song_fad[i]);
                cJSON_AddItemToArray(a, s);
            }
        }
        if (inf) {
            cJSON *f = cJSON_AddObjectToObject(o, "fad_inf");
            cJSON_AddNumberToObject(f, "value", fi.intercept);
            cJSON_AddNumberToObject(f, "slope", fi.slope);
            cJSON_AddNumberToObject(f, "r2", fi.r2);
            cJSON_AddNumberToObject(f, "seed", (double)seed);
            cJSON *pts = cJSON_AddArrayToObject(f, "points");
            for (int k = 0; k < fi.steps; k++) {
                cJSON *p = cJSON_CreateArray();
                cJSON_AddItemToArray(p, cJSON_CreateNumber((double)fi.sizes[k]));
                cJSON_AddItemToArray(p, cJSON_CreateNumber(fi.fad[k]));
                cJSON_AddItemToArray(pts, p);
            }
        }
        char *txt = cJSON_Print(o);
        puts(txt);
        free(txt);
        cJSON_Delete(o);
    } else if (!per_song && !inf) {
        /* a squared distance: a negative value is rounding (-1e-14 for a set against itself),
         * shown as 0 rather than "-0.000000"; --json keeps the computed value */
        printf("%.6f\n", fad > 0 ? fad : 0.0);
    } else {
        printf("fad\t%.6f\n", fad > 0 ? fad : 0.0);
        if (inf) printf("fad_inf\t%.6f\tslope\t%.6g\tr2\t%.4f\n", fi.intercept, fi.slope, fi.r2);
        for (int i = 0; per_song && i < ev.nsongs; i++) {
            if (isnan(song_fad[i])) printf("song\t%s\tnan\t(fewer than 2 frames)\n", ev.songs[i].name);
            else printf("song\t%s\t%.6f\n", ev.songs[i].name, song_fad[i]);
        }
    }
    free(song_fad);
    hafm_fad_inf_free(&fi);
    hafm_fad_set_free(&ref);
    hafm_fad_set_free(&ev);
    hafm_fad_embedder_free(e);
    free(cache);
    return hafm_close_stdout() == 0 ? 0 : 1;
}
