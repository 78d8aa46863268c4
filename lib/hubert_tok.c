/* hubert_tok.c - audio -> semantic features -> k-means tokens, as stream tracks. */
#include "hafm/hubert_tok.h"
#include "hafm/linalg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SEM_RATE 16000

struct hafm_sem {
    hafm_sem_opts o;
    hafm_hubert *model;
    hafm_mfcc *mfcc;
    hafm_codebook cb;
    int have_cb;
    int dim;
    int hop;
    hafm_rng rng;
};

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static const char *features_name(hafm_sem_features f)
{
    return f == HAFM_SEM_HUBERT ? "hubert" : f == HAFM_SEM_MFCC ? "mfcc" : f == HAFM_SEM_LOGMEL ? "logmel" : "chroma";
}

void hafm_sem_free(hafm_sem *s)
{
    if (!s) return;
    hafm_hubert_free(s->model);
    hafm_mfcc_free(s->mfcc);
    if (s->have_cb) hafm_codebook_free(&s->cb);
    free(s);
}

static int parse_features(const char *name, hafm_sem_features *f)
{
    if (!strcmp(name, "hubert")) *f = HAFM_SEM_HUBERT;
    else if (!strcmp(name, "mfcc")) *f = HAFM_SEM_MFCC;
    else if (!strcmp(name, "logmel")) *f = HAFM_SEM_LOGMEL;
    else if (!strcmp(name, "chroma")) *f = HAFM_SEM_CHROMA;
    else return -1;
    return 0;
}

static int parse_cmvn(const char *name, hafm_cmvn *c)
{
    if (!strcmp(name, "none")) *c = HAFM_CMVN_NONE;
    else if (!strcmp(name, "mean")) *c = HAFM_CMVN_MEAN;
    else if (!strcmp(name, "meanvar")) *c = HAFM_CMVN_MEANVAR;
    else return -1;
    return 0;
}

/* The codebook's recorded features and normalisation, adopted or checked against the options. */
static int reconcile_with_centroids(hafm_sem_opts *o, const hafm_codebook *cb)
{
    hafm_sem_features f;
    if (cb->features[0]) {
        if (parse_features(cb->features, &f) < 0) {
            hafm_error("%s: unknown features '%s' in its metadata", o->centroids, cb->features);
            return -1;
        }
        if (o->features_from_centroids) o->features = f;
        else if (f != o->features) {
            hafm_error("%s: the centroids were fitted on %s features, not %s (drop -F, or give other centroids)",
                       o->centroids, cb->features, features_name(o->features));
            return -1;
        }
    }
    hafm_cmvn c;
    if (cb->cmvn[0] && o->features != HAFM_SEM_HUBERT) {
        if (parse_cmvn(cb->cmvn, &c) < 0) {
            hafm_error("%s: unknown cmvn '%s' in its metadata", o->centroids, cb->cmvn);
            return -1;
        }
        if (o->cmvn_from_centroids) o->cmvn = c;
        else if (c != o->cmvn) {
            hafm_error("%s: the centroids were fitted on features with cmvn %s (drop --cmvn, or give other centroids)",
                       o->centroids, cb->cmvn);
            return -1;
        }
    }
    return 0;
}

hafm_sem *hafm_sem_open(const hafm_sem_opts *opts)
{
    hafm_sem *s = hafm_xcalloc(1, sizeof *s);
    s->o = *opts;
    const hafm_sem_opts *o = &s->o;
    hafm_rng_seed(&s->rng, o->seed);
    if (o->centroids) {
        if (hafm_codebook_load(&s->cb, o->centroids) < 0) goto fail;
        s->have_cb = 1;
        if (reconcile_with_centroids(&s->o, &s->cb) < 0) goto fail;
    }
    if (o->features == HAFM_SEM_HUBERT) {
        if (!o->model) {
            hafm_error("no HuBERT model: give -m FILE or set HAFM_HUBERT_MODEL (or use --features mfcc)");
            goto fail;
        }
        if (!(s->model = hafm_hubert_load(o->model, o->layer))) goto fail;
        const hafm_hubert_config *c = hafm_hubert_get_config(s->model);
        if (o->layer < 0 || o->layer > c->layers) {
            hafm_error("layer %d out of range: %s has layers 0..%d", o->layer, base_name(o->model), c->layers);
            goto fail;
        }
        if ((o->window || o->context) &&
            hafm_hubert_set_window(s->model, o->window ? o->window : HAFM_HUBERT_WINDOW_DEFAULT,
                                   o->context ? o->context : HAFM_HUBERT_CONTEXT_DEFAULT) < 0)
            goto fail;
        s->dim = c->hidden;
        s->hop = hafm_hubert_hop(c);
    } else {
        hafm_mfcc_config c;
        hafm_mfcc_config_default(&c, o->features == HAFM_SEM_MFCC     ? HAFM_FEAT_MFCC
                                     : o->features == HAFM_SEM_LOGMEL ? HAFM_FEAT_LOGMEL
                                                                      : HAFM_FEAT_CHROMA);
        c.cmvn = o->cmvn;
        if (!(s->mfcc = hafm_mfcc_new(&c))) goto fail;
        s->dim = hafm_mfcc_dim(&c);
        s->hop = c.hop;
    }
    if (s->have_cb) {
        if (s->cb.d != s->dim) {
            hafm_error("%s: centroids have dimension %d, the %s features%s are %d-dimensional", o->centroids,
                       s->cb.d, features_name(o->features), o->features == HAFM_SEM_HUBERT ? " of this model" : "", s->dim);
            goto fail;
        }
        if (s->cb.k > INT32_MAX / 2) {
            hafm_error("%s: too many centroids (%d)", o->centroids, s->cb.k);
            goto fail;
        }
    }
    return s;
fail:
    hafm_sem_free(s);
    return NULL;
}

int hafm_sem_dim(const hafm_sem *s) { return s->dim; }
int hafm_sem_vocab(const hafm_sem *s) { return s->have_cb ? s->cb.k : 0; }

/* Where features go: tokens and features appended to arrays, or written to stream tracks. */
typedef struct {
    hafm_sem *s;
    hafm_writer *w;
    int tok_id, feat_id;           /* -1: not written */
    int32_t *tokens;               /* whole-output mode */
    float *features;
    int32_t *scratch;
} sink;

static int consume(void *ctx, int64_t t0, int64_t frames, const float *x)
{
    sink *k = ctx;
    hafm_sem *s = k->s;
    if (k->features) memcpy(k->features + t0 * s->dim, x, frames * s->dim * sizeof(float));
    if (k->feat_id >= 0 && hafm_write_data_f32(k->w, k->feat_id, x, frames) < 0) return -1;
    if (!s->have_cb || (!k->tokens && k->tok_id < 0)) return 0;
    int32_t *lab = k->tokens ? k->tokens + t0 : (k->scratch = hafm_xrealloc(k->scratch, frames * sizeof(int32_t)));
    hafm_kmeans_assign(lab, NULL, x, frames, &s->cb);
    if (k->tok_id >= 0 && hafm_write_data_i32(k->w, k->tok_id, lab, frames) < 0) return -1;
    return 0;
}

/* Runs the extractor on 16 kHz mono wav (noise already added) into the sink. */
static int run(hafm_sem *s, const float *wav, int64_t n, sink *k)
{
    if (s->model) return hafm_hubert_extract(s->model, wav, n, s->o.layer, consume, k);
    int64_t T;
    float *f = hafm_mfcc_compute(s->mfcc, wav, n, &T);
    if (!f) return -1;
    int rc = consume(k, 0, T, f);
    free(f);
    return rc;
}

static int64_t frames_of(const hafm_sem *s, int64_t n)
{
    if (s->model) return hafm_hubert_frames(hafm_hubert_get_config(s->model), n);
    return n < 400 ? 0 : (n - 400) / s->hop + 1;
}

static int min_samples(const hafm_sem *s)
{
    return s->model ? hafm_hubert_receptive_field(hafm_hubert_get_config(s->model)) : 400;
}

/* 16 kHz mono copy of a with the configured noise. */
static int prepare(hafm_sem *s, const hafm_audio *a, hafm_audio *p)
{
    if (hafm_audio_prepare(a, SEM_RATE, p) < 0) return -1;
    for (int64_t i = 0; i < p->frames; i++)
        if (!isfinite(p->data[i])) {
            hafm_error("the audio holds a non-finite sample (at %.3f s)", (double)i / SEM_RATE);
            hafm_audio_free(p);
            return -1;
        }
    if (p->frames < min_samples(s)) {
        hafm_error("audio too short: %lld samples at 16 kHz (%.1f ms), at least %d (%.0f ms) are needed",
                   (long long)p->frames, 1000.0 * p->frames / SEM_RATE, min_samples(s), 1000.0 * min_samples(s) / SEM_RATE);
        hafm_audio_free(p);
        return -1;
    }
    if (s->o.noise > 0)
        for (int64_t i = 0; i < p->frames; i++) p->data[i] += (float)(s->o.noise * hafm_rng_normal(&s->rng));
    return 0;
}

int hafm_sem_tokens(hafm_sem *s, const float *wav, int64_t n, int32_t **tokens, float **features, int64_t *frames)
{
    hafm_audio a = {(float *)wav, n, 1, SEM_RATE}, p;
    if (prepare(s, &a, &p) < 0) return -1;
    int64_t T = frames_of(s, p.frames);
    sink k = {s, NULL, -1, -1, NULL, NULL, NULL};
    if (tokens && s->have_cb) k.tokens = hafm_xmalloc(T * sizeof(int32_t));
    if (features) k.features = hafm_xmalloc(T * s->dim * sizeof(float));
    int rc = run(s, p.data, p.frames, &k);
    hafm_audio_free(&p);
    if (rc < 0) {
        free(k.tokens), free(k.features);
        return -1;
    }
    if (tokens) *tokens = k.tokens;
    if (features) *features = k.features;
    *frames = T;
    return 0;
}

static int declare(hafm_sem *s, hafm_writer *w, hafm_track *t, int features)
{
    const hafm_sem_opts *o = &s->o;
    if (hafm_track_set_producer(t, o->tool ? o->tool : "hubert-tok", HAFM_VERSION) < 0 ||
        hafm_track_param_str(t, "features", features_name(o->features)) < 0)
        return -1;
    if (s->model && (hafm_track_param_str(t, "model", base_name(o->model)) < 0 ||
                     hafm_track_param_int(t, "layer", o->layer) < 0))
        return -1;
    if (s->mfcc && hafm_track_param_str(t, "cmvn", o->cmvn == HAFM_CMVN_NONE ? "none" : o->cmvn == HAFM_CMVN_MEAN ? "mean" : "meanvar") < 0)
        return -1;
    if (s->have_cb && hafm_track_param_str(t, "centroids", base_name(o->centroids)) < 0) return -1;
    if (o->noise > 0 && (hafm_track_param_float(t, "noise", o->noise) < 0 ||
                         hafm_track_param_int(t, "seed", (int64_t)o->seed) < 0))
        return -1;
    if (hafm_track_attr_str(t, "role", "vocal") < 0) return -1;
    if (features && s->model && hafm_track_attr_int(t, "layer", o->layer) < 0) return -1;
    return hafm_write_track(w, t);
}

int hafm_sem_write(hafm_sem *s, hafm_writer *w, const hafm_audio *a, const char *tokens_name,
                   const char *features_name_)
{
    hafm_audio p;
    if (prepare(s, a, &p) < 0) return -1;
    int64_t T = frames_of(s, p.frames);
    double rate = (double)SEM_RATE / s->hop;
    sink k = {s, w, -1, -1, NULL, NULL, NULL};
    hafm_track tt, ft;
    int rc = -1;
    hafm_track_init_tokens(&tt, tokens_name ? tokens_name : "-", 1, s->have_cb ? s->cb.k : 1, rate);
    hafm_track_init_features(&ft, features_name_ ? features_name_ : "-", s->dim, rate);
    tt.frames = ft.frames = T;
    if (tokens_name && s->have_cb) {
        if (declare(s, w, &tt, 0) < 0) goto out;
        k.tok_id = tt.id;
    }
    if (features_name_) {
        if (declare(s, w, &ft, 1) < 0) goto out;
        k.feat_id = ft.id;
    }
    if (run(s, p.data, p.frames, &k) < 0) goto out;
    if (k.tok_id >= 0 && hafm_write_end(w, k.tok_id, a->frames, a->sample_rate) < 0) goto out;
    if (k.feat_id >= 0 && hafm_write_end(w, k.feat_id, a->frames, a->sample_rate) < 0) goto out;
    rc = 0;
out:
    hafm_track_free(&tt);
    hafm_track_free(&ft);
    free(k.scratch);
    hafm_audio_free(&p);
    return rc;
}
