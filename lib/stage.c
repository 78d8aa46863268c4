/* stage.c - stream tracks <-> model sequences, windowed CFG generation, training crops. */
#include "hafm/stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int hafm_stage_check_track(const hafm_track *t, const hafm_tf_stream *s)
{
    if (t->kind != HAFM_KIND_TOKENS) {
        hafm_error("track '%s': expected tokens, got %s", t->name, hafm_kind_name(t->kind));
        return -1;
    }
    if (t->ndim != 1 || t->shape[0] != s->codebooks) {
        hafm_error("track '%s': expected shape [%d], got %s[%lld]", t->name, s->codebooks, t->ndim == 1 ? "" : "a multi-dimensional ",
                   (long long)t->shape[0]);
        return -1;
    }
    if (fabs(t->rate - s->rate) > 1e-9 * s->rate) {
        hafm_error("track '%s': expected rate %d Hz, got %g", t->name, s->rate, t->rate);
        return -1;
    }
    if (t->vocab != s->vocab) {
        hafm_error("track '%s': expected vocabulary %d, got %lld", t->name, s->vocab, (long long)t->vocab);
        return -1;
    }
    int64_t off = hafm_track_attr_int_or(t, "codebook_offset", 0);
    if (off != s->codebook_offset) {
        hafm_error("track '%s': expected codebook_offset %d, got %lld", t->name, s->codebook_offset, (long long)off);
        return -1;
    }
    return 0;
}

/* ---- collecting an item's tracks ----------------------------------------------------------------- */
typedef struct {
    const char *name;
    const hafm_tf_stream *s;
    int id;                 /* track id in the current item, -1 if not seen */
    int32_t *data;
    int64_t frames, cap;
} slot;

struct hafm_stage_collector {
    const hafm_tf_config *cfg;
    int n;                  /* n_cond slots, then the target slot if wanted */
    slot slots[HAFM_TF_MAX_COND + 1];
    int has_target;
    int32_t *conv;
    size_t conv_cap;
};

hafm_stage_collector *hafm_stage_collector_new(const hafm_tf_config *c, const char *const *cond_names,
                                               const char *target_name)
{
    hafm_stage_collector *k = hafm_xcalloc(1, sizeof *k);
    k->cfg = c;
    for (int i = 0; i < c->n_cond; i++) {
        k->slots[i].name = cond_names && cond_names[i] ? cond_names[i] : c->cond[i].name;
        k->slots[i].s = &c->cond[i];
    }
    k->n = c->n_cond;
    if (target_name) {
        k->slots[k->n].name = target_name;
        k->slots[k->n].s = &c->target;
        k->n++;
        k->has_target = 1;
    }
    hafm_stage_collector_begin(k);
    return k;
}

void hafm_stage_collector_free(hafm_stage_collector *k)
{
    if (!k) return;
    for (int i = 0; i < k->n; i++) free(k->slots[i].data);
    free(k->conv);
    free(k);
}

void hafm_stage_collector_begin(hafm_stage_collector *k)
{
    for (int i = 0; i < k->n; i++) {
        k->slots[i].id = -1;
        k->slots[i].frames = 0;
    }
}

int hafm_stage_collector_event(hafm_stage_collector *k, const hafm_event *ev)
{
    if (ev->type == HAFM_EV_ITEM) {
        hafm_stage_collector_begin(k);
        return 0;
    }
    if (ev->type == HAFM_EV_TRACK) {
        for (int i = 0; i < k->n; i++)
            if (strcmp(ev->track->name, k->slots[i].name) == 0) {
                if (hafm_stage_check_track(ev->track, k->slots[i].s) < 0) return -1;
                k->slots[i].id = ev->track->id;
            }
        return 0;
    }
    if (ev->type != HAFM_EV_DATA) return 0;
    for (int i = 0; i < k->n; i++) {
        slot *s = &k->slots[i];
        if (s->id != ev->track->id) continue;
        int Q = s->s->codebooks;
        size_t n = (size_t)ev->frames * Q;
        if (s->frames + ev->frames > s->cap) {
            s->cap = (s->frames + ev->frames) * 2;
            s->data = hafm_xrealloc(s->data, (size_t)s->cap * Q * sizeof *s->data);
        }
        int32_t *dst = s->data + (size_t)s->frames * Q;
        hafm_event_to_i32(ev, dst);
        for (size_t j = 0; j < n; j++)
            if (dst[j] < 0 || dst[j] >= s->s->vocab) {
                hafm_error("track '%s': token %d outside the vocabulary [0, %d)", s->name, dst[j], s->s->vocab);
                return -1;
            }
        s->frames += ev->frames;
    }
    return 0;
}

int hafm_stage_collector_finish(hafm_stage_collector *k, hafm_stage_item *it, int need_target)
{
    const hafm_tf_config *c = k->cfg;
    memset(it, 0, sizeof *it);
    for (int i = 0; i < k->n; i++)
        if (k->slots[i].id < 0 && (i < c->n_cond || need_target)) {
            hafm_error("no track '%s' (%s)", k->slots[i].name, i < c->n_cond ? "conditioning" : "target");
            return -1;
        }
    it->n_cond = c->n_cond;
    int64_t units = 0, min_units = INT64_MAX;
    for (int i = 0; i < c->n_cond; i++) {
        int fpu = hafm_tf_frames_per_unit(c, &c->cond[i]);
        int64_t u = (k->slots[i].frames + fpu - 1) / fpu;
        if (u > units) units = u;
        if (k->slots[i].frames / fpu < min_units) min_units = k->slots[i].frames / fpu;
    }
    for (int i = 0; i < c->n_cond; i++) {
        int fpu = hafm_tf_frames_per_unit(c, &c->cond[i]);
        if (k->slots[i].frames + fpu < units * fpu) {
            hafm_error("conditioning tracks differ in length ('%s': %lld frames at %d Hz)", k->slots[i].name,
                       (long long)k->slots[i].frames, c->cond[i].rate);
            return -1;
        }
    }
    if (need_target) {
        /* training: whole units where every stream has data, no padding */
        int fpu = hafm_tf_frames_per_unit(c, &c->target);
        int64_t tu = k->slots[c->n_cond].frames / fpu;
        units = min_units < tu ? min_units : tu;
    }
    it->n_units = units;
    for (int i = 0; i < c->n_cond; i++) {
        const hafm_tf_stream *s = &c->cond[i];
        int64_t want = units * hafm_tf_frames_per_unit(c, s), have = k->slots[i].frames;
        it->cond[i] = hafm_xmalloc((size_t)(want > 0 ? want : 1) * s->codebooks * sizeof(int32_t));
        if (have == 0 && want > 0) {
            hafm_error("track '%s' is empty but the other conditioning tracks are not", k->slots[i].name);
            for (int j = 0; j < i; j++) free(it->cond[j]);
            free(it->cond[i]);
            return -1;
        }
        int64_t ncopy = have < want ? have : want;
        if (ncopy > 0) memcpy(it->cond[i], k->slots[i].data, (size_t)ncopy * s->codebooks * sizeof(int32_t));
        for (int64_t f = ncopy; f < want; f++)   /* pad to a whole unit by repeating the last frame */
            memcpy(it->cond[i] + f * s->codebooks, it->cond[i] + (ncopy - 1) * s->codebooks, s->codebooks * sizeof(int32_t));
        it->cond_frames[i] = have;
    }
    int fpu_t = hafm_tf_frames_per_unit(c, &c->target);
    int64_t of = (k->slots[0].frames * c->target.rate + c->cond[0].rate - 1) / c->cond[0].rate;
    it->out_frames = of < units * fpu_t ? of : units * fpu_t;
    if (k->has_target && k->slots[c->n_cond].id >= 0) {
        slot *s = &k->slots[c->n_cond];
        it->target_frames = s->frames;
        it->target = hafm_xmalloc((size_t)(s->frames > 0 ? s->frames : 1) * c->target.codebooks * sizeof(int32_t));
        if (s->frames > 0) memcpy(it->target, s->data, (size_t)s->frames * c->target.codebooks * sizeof(int32_t));
    }
    return 0;
}

void hafm_stage_item_free(hafm_stage_item *it)
{
    for (int i = 0; i < it->n_cond; i++) free(it->cond[i]);
    free(it->target);
    memset(it, 0, sizeof *it);
}

/* ---- sequences ----------------------------------------------------------------------------------------- */
/* Conditioning part of a sequence for units [u0, u0 + n): tokens or null tokens. */
static void fill_cond(const hafm_tf_model *m, const hafm_tf_layout *lay, const hafm_stage_item *it, int64_t u0,
                      int null_cond, int32_t *tokens)
{
    const hafm_tf_config *c = &m->cfg;
    for (int i = 0; i < c->n_cond; i++) {
        const hafm_tf_stream *s = &c->cond[i];
        int fpu = hafm_tf_frames_per_unit(c, s);
        int64_t n = (int64_t)lay->n_units * fpu * s->codebooks;
        const int32_t *src = it->cond[i] + u0 * fpu * s->codebooks;
        int32_t *dst = tokens + lay->stream_start[i];
        for (int64_t j = 0; j < n; j++)
            dst[j] = null_cond ? hafm_tf_null_token(m, lay->table[lay->stream_start[i] + j]) : src[j];
    }
    tokens[lay->target_start - 1] = 0;   /* SEP */
}

void hafm_stage_crop(const hafm_tf_model *m, const hafm_tf_layout *lay, const hafm_stage_item *it,
                     int64_t u0, int drop_cond, int32_t *tokens)
{
    const hafm_tf_config *c = &m->cfg;
    fill_cond(m, lay, it, u0, drop_cond, tokens);
    int fpu = hafm_tf_frames_per_unit(c, &c->target);
    memcpy(tokens + lay->target_start, it->target + u0 * fpu * c->target.codebooks, (size_t)lay->n_target * sizeof(int32_t));
}

/* ---- generation ---------------------------------------------------------------------------------------- */
void hafm_gen_opts_default(hafm_gen_opts *o)
{
    memset(o, 0, sizeof *o);
    hafm_sampler_default(&o->sampler);
    o->seed = 0;
    o->overlap_seconds = 2.5;
    o->use_bf16 = 1;
}

struct hafm_generator {
    const hafm_tf_model *m;
    hafm_gen_opts o;
    int B;                  /* 2: conditional and unconditional; 1 when the guidance scale is 1 */
    hafm_tf_cache *cache;
    int cache_len;
    float *logits, *comb;
    int *work;
};

hafm_generator *hafm_generator_new(const hafm_tf_model *m, const hafm_gen_opts *o)
{
    hafm_generator *g = hafm_xcalloc(1, sizeof *g);
    g->m = m;
    g->o = *o;
    g->B = o->sampler.cfg_scale == 1.0f ? 1 : 2;
    int V = m->cfg.target.vocab;
    g->logits = hafm_xmalloc((size_t)2 * V * sizeof(float));
    g->comb = hafm_xmalloc((size_t)V * sizeof(float));
    g->work = hafm_xmalloc((size_t)3 * V * sizeof(int));
    return g;
}

void hafm_generator_free(hafm_generator *g)
{
    if (!g) return;
    hafm_tf_cache_free(g->cache);
    free(g->logits);
    free(g->comb);
    free(g->work);
    free(g);
}

static int sample_next(hafm_generator *g, hafm_rand *rng)
{
    int V = g->m->cfg.target.vocab;
    if (g->B == 2)
        hafm_cfg_combine(g->comb, g->logits, g->logits + V, g->o.sampler.cfg_scale, V);
    else
        memcpy(g->comb, g->logits, (size_t)V * sizeof(float));
    return hafm_sample(g->comb, V, &g->o.sampler, rng, g->work);
}

int32_t *hafm_generate(hafm_generator *g, const hafm_stage_item *it, hafm_rand *rng, int64_t *frames)
{
    const hafm_tf_model *m = g->m;
    const hafm_tf_config *c = &m->cfg;
    int Q = c->target.codebooks, fpu = hafm_tf_frames_per_unit(c, &c->target), B = g->B;
    int64_t N = it->n_units;
    int W = hafm_tf_window_units(c);
    int O = (int)lround(g->o.overlap_seconds * hafm_tf_units_per_second(c));
    if (O > W - 1) O = W - 1;
    if (O < 0) O = 0;
    int32_t *out = hafm_xmalloc((size_t)(N > 0 ? N : 1) * fpu * Q * sizeof(int32_t));
    int64_t done = 0;
    int32_t *seq = NULL, step[2];
    while (done < N) {
        int64_t s = done - O < N - W ? done - O : N - W;
        if (s < 0) s = 0;
        int64_t e = s + W < N ? s + W : N;
        hafm_tf_layout lay;
        if (hafm_tf_layout_init(&lay, c, (int)(e - s)) < 0) goto fail;
        if (!g->cache || g->cache_len < lay.L) {
            hafm_tf_cache_free(g->cache);
            g->cache = hafm_tf_cache_new(m, B, lay.L, g->o.use_bf16);
            g->cache_len = lay.L;
        }
        hafm_tf_cache_reset(g->cache);
        int prompt = (int)((done - s) * fpu * Q), P = lay.target_start + prompt;
        seq = hafm_xrealloc(seq, (size_t)B * P * sizeof *seq);
        int32_t *full = hafm_xmalloc((size_t)lay.L * sizeof *full);
        for (int b = 0; b < B; b++) {
            fill_cond(m, &lay, it, s, b == 1, full);
            memcpy(full + lay.target_start, out + s * fpu * Q, (size_t)prompt * sizeof *full);
            memcpy(seq + (size_t)b * P, full, (size_t)P * sizeof *seq);
        }
        free(full);
        int rc = hafm_tf_decode(m, g->cache, seq, &lay, P, prompt % Q, g->logits, g->o.use_bf16);
        for (int i = prompt; rc == 0 && i < lay.n_target; i++) {
            int tok = sample_next(g, rng);
            out[s * fpu * Q + i] = tok;
            if ((i + 1) % Q == 0 && g->o.progress) g->o.progress(g->o.progress_ctx, s * fpu + (i + 1) / Q, N * fpu);
            if (i + 1 == lay.n_target) break;
            step[0] = step[1] = tok;
            rc = hafm_tf_decode(m, g->cache, step, &lay, 1, (i + 1) % Q, g->logits, g->o.use_bf16);
        }
        hafm_tf_layout_free(&lay);
        if (rc < 0) goto fail;
        done = e;
    }
    free(seq);
    *frames = it->out_frames;
    return out;
fail:
    free(seq);
    free(out);
    return NULL;
}

int hafm_stage_read_items(const char *path, const hafm_tf_config *c, const char *const *cond_names,
                          const char *target_name, hafm_stage_item **items, int *n, int *skipped)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    if (!fp) {
        hafm_error("%s:", path);
        return -1;
    }
    hafm_reader *r = hafm_reader_open(fp, is_stdin ? "stdin" : path);
    hafm_stage_collector *k = hafm_stage_collector_new(c, cond_names, target_name ? target_name : c->target.name);
    hafm_event ev;
    int rc;
    while (r && (rc = hafm_reader_next(r, &ev)) > 0) {
        if (hafm_stage_collector_event(k, &ev) < 0) {
            hafm_error_prefix("%s: item '%s'", path, hafm_reader_item_key(r));
            rc = -1;
            break;
        }
        if (ev.type != HAFM_EV_ITEM_END) continue;
        hafm_stage_item it;
        if (hafm_stage_collector_finish(k, &it, 1) < 0) {
            (*skipped)++;
            continue;
        }
        *items = hafm_xrealloc(*items, (size_t)(*n + 1) * sizeof **items);
        (*items)[(*n)++] = it;
    }
    if (!r) rc = -1;
    hafm_stage_collector_free(k);
    if (r) hafm_reader_close(r);
    if (!is_stdin) fclose(fp);
    return rc < 0 ? -1 : 0;
}
