/* hafm-kmeans - fits a k-means codebook to the frames of a features track (e.g. the output of
 * `hubert-tok --emit-features`) across every item of the given streams. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/kmeans.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s -o CODEBOOK [options] [FILE...]\n"
            "Fits K centroids to the frames of a features track in every item of the hafm streams\n"
            "FILE... (none or '-': standard input): k-means++ initialisation and Lloyd iterations,\n"
            "or mini-batch k-means for data larger than memory. Writes the codebook that\n"
            "hubert-tok -c reads: NumPy .npy when CODEBOOK ends in .npy, else safetensors with the\n"
            "tensor 'cluster_centers' [K, D].\n"
            "  -o, --output FILE     the codebook to write (required)\n"
            "  -k, --clusters K      number of centroids, 1-65536                       [500]\n"
            "  -n, --name NAME       features track to read                  [vocal.features]\n"
            "      --max-iter N      Lloyd iterations at most, 1-100000                 [300]\n"
            "      --tol X           stop when the squared centre shift is below X times the\n"
            "                        mean per-dimension variance, 0-1                   [1e-4]\n"
            "      --n-init N        k-means++ runs, the best is kept, 1-1000            [1]\n"
            "      --seed N          random seed, 0-2^63                                 [0]\n"
            "  -b, --batch B         mini-batch mode with batches of B frames, 1-10^7; reads\n"
            "                        the FILEs once per epoch (no standard input)       [off]\n"
            "      --epochs N        mini-batch passes over the data, 1-10000           [20]\n"
            "      --init-size N     mini-batch: frames sampled to initialise  [max(3B, 3K)]\n"
            "  -q, --quiet           no per-iteration inertia on stderr\n"
            "  -t, --threads N       threads, 1-1024                   [$HAFM_THREADS or all]\n"
            "  -h, --help            this help\n"
            "      --version         the version\n",
            hafm_progname);
}

static HAFM_NORETURN void bad_option(int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':') hafm_usage_error("option '%s' needs an argument", arg);
    if (optopt) hafm_usage_error("unknown option '-%c'", optopt);
    hafm_usage_error("unknown option '%s'", arg);
}

/* Frames of the features track `name` of every item, handed on in chunks. */
typedef void (*frames_fn)(void *ctx, const float *x, int64_t frames);

typedef struct {
    const char *name;
    int dim;             /* 0 until the first track */
    int64_t items;
    /* the producer's features kind and normalisation (hubert-tok's params), kept in the centroid
     * file so that hubert-tok computes the same features from it */
    char features[16], cmvn[16];
} feature_source;

static const char *producer_param(const hafm_track *t, const char *key)
{
    for (int i = 0; i < t->nparams; i++)
        if (!strcmp(t->params[i].key, key) && t->params[i].type == HAFM_VAL_STR) return t->params[i].s;
    return "";
}

/* Every item's features must come from the same kind of features. */
static void check_provenance(feature_source *src, const hafm_track *t, const char *key, char *seen, size_t size,
                             const char *item)
{
    const char *v = producer_param(t, key);
    if (src->dim == 0) snprintf(seen, size, "%s", v);
    else if (strcmp(seen, v))
        hafm_die("track '%s' of item '%s': %s '%s', earlier items had '%s'", t->name, item, key, v, seen);
}

static void read_features(feature_source *src, const char *path, frames_fn fn, void *ctx)
{
    int is_stdin = !strcmp(path, "-");
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    if (!fp) hafm_die("cannot open %s:", path);
    hafm_reader *r = hafm_reader_open(fp, is_stdin ? NULL : path);
    if (!r) hafm_die_last();
    hafm_event ev;
    int rc, found = 0;
    float *buf = NULL;
    size_t cap = 0;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_ITEM) found = 0;
        if (ev.type == HAFM_EV_TRACK && !strcmp(ev.track->name, src->name)) {
            const hafm_track *t = ev.track;
            if (t->kind != HAFM_KIND_FEATURES || !hafm_dtype_is_float(t->dtype) || t->ndim != 1)
                hafm_die("track '%s': expected a features track of float vectors, got %s %s with %d dimensions",
                         t->name, hafm_kind_name(t->kind), hafm_dtype_name(t->dtype), t->ndim);
            if (src->dim && t->shape[0] != src->dim)
                hafm_die("track '%s' of item '%s': dimension %lld, earlier items had %d", t->name,
                         hafm_reader_item_key(r), (long long)t->shape[0], src->dim);
            if (t->shape[0] > (1 << 20)) hafm_die("track '%s': dimension %lld is too large", t->name, (long long)t->shape[0]);
            check_provenance(src, t, "features", src->features, sizeof src->features, hafm_reader_item_key(r));
            check_provenance(src, t, "cmvn", src->cmvn, sizeof src->cmvn, hafm_reader_item_key(r));
            src->dim = (int)t->shape[0];
            found = 1;
            src->items++;
        }
        if (ev.type == HAFM_EV_DATA && !strcmp(ev.track->name, src->name) && ev.frames > 0) {
            size_t need = (size_t)ev.frames * src->dim;
            if (need > cap) buf = hafm_xrealloc(buf, (cap = need) * sizeof(float));
            hafm_event_to_f32(&ev, buf);
            for (size_t i = 0; i < need; i++)
                if (!isfinite(buf[i])) hafm_die("track '%s' of item '%s': non-finite value", src->name, hafm_reader_item_key(r));
            fn(ctx, buf, ev.frames);
        }
        if (ev.type == HAFM_EV_ITEM_END && !found) hafm_die("item '%s' has no track '%s'", ev.key, src->name);
    }
    if (rc < 0) hafm_die_last();
    free(buf);
    hafm_reader_close(r);
    if (!is_stdin) fclose(fp);
}

/* ---- full batch: every frame in memory ------------------------------------------------------ */

typedef struct {
    float *x;
    int64_t n, cap;
    int dim;
    const feature_source *src;
} frame_store;

static void store(void *ctx, const float *x, int64_t frames)
{
    frame_store *s = ctx;
    int d = s->src->dim;
    if (s->n + frames > s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4096;
        while (s->cap < s->n + frames) s->cap *= 2;
        s->x = hafm_xrealloc(s->x, (size_t)s->cap * d * sizeof(float));
    }
    memcpy(s->x + s->n * d, x, (size_t)frames * d * sizeof(float));
    s->n += frames;
}

/* ---- mini-batch ------------------------------------------------------------------------------ */

typedef struct {
    int64_t seen, size;
    float *sample;          /* reservoir [size, dim] */
    hafm_rng *rng;
    const feature_source *src;
} reservoir;

static void sample(void *ctx, const float *x, int64_t frames)
{
    reservoir *r = ctx;
    int d = r->src->dim;
    if (!r->sample) r->sample = hafm_xmalloc((size_t)r->size * d * sizeof(float));
    for (int64_t i = 0; i < frames; i++, r->seen++) {
        int64_t slot = r->seen < r->size ? r->seen : (int64_t)(hafm_rng_uniform(r->rng) * (r->seen + 1));
        if (slot < r->size) memcpy(r->sample + slot * d, x + i * d, d * sizeof(float));
    }
}

typedef struct {
    float *centers, *batch;
    int64_t *counts, fill, size;
    int k;
    double inertia;
    const feature_source *src;
} minibatch;

static void batch_frames(void *ctx, const float *x, int64_t frames)
{
    minibatch *mb = ctx;
    int d = mb->src->dim;
    while (frames > 0) {
        int64_t take = mb->size - mb->fill < frames ? mb->size - mb->fill : frames;
        memcpy(mb->batch + mb->fill * d, x, (size_t)take * d * sizeof(float));
        mb->fill += take, x += take * d, frames -= take;
        if (mb->fill == mb->size) {
            mb->inertia += hafm_kmeans_minibatch_step(mb->centers, mb->counts, mb->batch, mb->fill, d, mb->k);
            mb->fill = 0;
        }
    }
}

typedef struct {
    const hafm_codebook *cb;
    double inertia;
} scorer;

static void score(void *ctx, const float *x, int64_t frames)
{
    scorer *s = ctx;
    s->inertia += hafm_kmeans_inertia(x, frames, s->cb);
}

static int quiet;

static void log_iter(void *ctx, int run, int iter, double inertia, double shift)
{
    (void)ctx;
    if (!quiet) fprintf(stderr, "%s: init %d iter %d inertia %.6g shift %.3g\n", hafm_progname, run + 1, iter, inertia, shift);
}

enum { OPT_MAX_ITER = 256, OPT_TOL, OPT_N_INIT, OPT_SEED, OPT_EPOCHS, OPT_INIT_SIZE, OPT_VERSION };

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},   {"clusters", required_argument, NULL, 'k'},
        {"name", required_argument, NULL, 'n'},     {"max-iter", required_argument, NULL, OPT_MAX_ITER},
        {"tol", required_argument, NULL, OPT_TOL},  {"n-init", required_argument, NULL, OPT_N_INIT},
        {"seed", required_argument, NULL, OPT_SEED}, {"batch", required_argument, NULL, 'b'},
        {"epochs", required_argument, NULL, OPT_EPOCHS}, {"init-size", required_argument, NULL, OPT_INIT_SIZE},
        {"quiet", no_argument, NULL, 'q'},          {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},           {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL;
    feature_source src = {.name = "vocal.features"};
    int k = 500, max_iter = 300, n_init = 1, epochs = 20, c;
    int64_t batch = 0, init_size = 0;
    double tol = 1e-4;
    uint64_t seed = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:k:n:b:qt:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'k': k = (int)hafm_opt_long("-k", optarg, 1, 65536); break;
        case 'n': src.name = optarg; break;
        case OPT_MAX_ITER: max_iter = (int)hafm_opt_long("--max-iter", optarg, 1, 100000); break;
        case OPT_TOL: tol = hafm_opt_double("--tol", optarg, 0, 1); break;
        case OPT_N_INIT: n_init = (int)hafm_opt_long("--n-init", optarg, 1, 1000); break;
        case OPT_SEED: seed = (uint64_t)hafm_opt_long("--seed", optarg, 0, INT64_MAX); break;
        case 'b': batch = hafm_opt_long("-b", optarg, 1, 10000000); break;
        case OPT_EPOCHS: epochs = (int)hafm_opt_long("--epochs", optarg, 1, 10000); break;
        case OPT_INIT_SIZE: init_size = hafm_opt_long("--init-size", optarg, 1, 100000000); break;
        case 'q': quiet = 1; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case OPT_VERSION: hafm_print_version();
        default: bad_option(c, argv);
        }
    }
    if (!output) hafm_usage_error("no output: give -o CODEBOOK");
    char *stdin_only[] = {"-"};
    char **files = optind < argc ? argv + optind : stdin_only;
    int nfiles = optind < argc ? argc - optind : 1;
    if (batch)
        for (int i = 0; i < nfiles; i++)
            if (!strcmp(files[i], "-")) hafm_usage_error("--batch reads its inputs once per epoch: give files, not standard input");

    hafm_codebook cb = {0};
    float *centers = NULL;
    double inertia;
    int64_t total;
    if (!batch) {
        frame_store fs = {NULL, 0, 0, 0, &src};
        for (int i = 0; i < nfiles; i++) read_features(&src, files[i], store, &fs);
        total = fs.n;
        if (fs.n < k) hafm_die("%lld frames in %lld items: too few for %d centroids", (long long)fs.n, (long long)src.items, k);
        centers = hafm_xmalloc((size_t)k * src.dim * sizeof(float));
        if (hafm_kmeans_fit(centers, fs.x, fs.n, src.dim, k, n_init, max_iter, tol, seed, &inertia, log_iter, NULL) < 0)
            hafm_die_last();
        free(fs.x);
    } else {
        hafm_rng rng;
        hafm_rng_seed(&rng, seed);
        reservoir res = {0, init_size ? init_size : (3 * batch > 3 * (int64_t)k ? 3 * batch : 3 * (int64_t)k), NULL, &rng, &src};
        for (int i = 0; i < nfiles; i++) read_features(&src, files[i], sample, &res);
        total = res.seen;
        if (res.seen < res.size) res.size = res.seen;
        if (res.size < k) hafm_die("%lld frames in %lld items: too few for %d centroids", (long long)res.seen, (long long)src.items, k);
        centers = hafm_xmalloc((size_t)k * src.dim * sizeof(float));
        if (hafm_kmeans_fit(centers, res.sample, res.size, src.dim, k, n_init, max_iter, tol, seed, NULL, log_iter, NULL) < 0)
            hafm_die_last();
        free(res.sample);
        minibatch mb = {centers, hafm_xmalloc((size_t)batch * src.dim * sizeof(float)),
                        hafm_xcalloc(k, sizeof(int64_t)), 0, batch, k, 0, &src};
        for (int e = 1; e <= epochs; e++) {
            mb.inertia = 0;
            int64_t items = src.items;
            for (int i = 0; i < nfiles; i++) read_features(&src, files[i], batch_frames, &mb);
            src.items = items;
            if (mb.fill) {
                mb.inertia += hafm_kmeans_minibatch_step(centers, mb.counts, mb.batch, mb.fill, src.dim, k);
                mb.fill = 0;
            }
            if (!quiet) fprintf(stderr, "%s: epoch %d inertia %.6g (of each batch before its update)\n", hafm_progname, e, mb.inertia);
        }
        free(mb.batch), free(mb.counts);
    }
    if (hafm_codebook_init(&cb, k, src.dim, centers) < 0) hafm_die_last();
    if (batch) {
        scorer sc = {&cb, 0};
        int64_t items = src.items;
        for (int i = 0; i < nfiles; i++) read_features(&src, files[i], score, &sc);
        src.items = items;
        inertia = sc.inertia;
    }
    memcpy(cb.features, src.features, sizeof cb.features);
    memcpy(cb.cmvn, src.cmvn, sizeof cb.cmvn);
    if (hafm_codebook_save(&cb, output) < 0) hafm_die_last();
    fprintf(stderr, "%s: %lld frames of %d dimensions from %lld items: %d centroids, inertia %.6g\n", hafm_progname,
            (long long)total, src.dim, (long long)src.items, k, inertia);
    hafm_codebook_free(&cb);
    free(centers);
    return 0;
}
