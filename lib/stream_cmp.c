/* stream_cmp.c - compares two hafm streams track by track, item by item (hafm-cmp).
 *
 * Both streams are read in lockstep, one message from each in turn, and a track's values are
 * compared as soon as both sides have delivered them: the two streams may chunk and interleave
 * their tracks differently, and only the values one side is ahead by are held in memory.
 */
#include "hafm/stream.h"
#include "hafm/stream_tools.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[HAFM_MAX_NAME + 1];
    const hafm_track *decl[2];    /* declarations seen in A and B */
    int64_t frames[2];            /* frames delivered by A and B */
    double *queue;                /* values one side is ahead by */
    size_t qhead, qlen, qcap;
    int qside;
    size_t elems;
    int tokens;
    int64_t compared;             /* values compared */
    double max_diff;
    int64_t max_at;               /* value index of max_diff */
    int64_t bad;                  /* values beyond tolerance (tokens: differing tokens) */
    char first_bad[256];
} ctrack;

typedef struct {
    const hafm_cmp_opts *o;
    const char *names[2];
    ctrack *t;
    int n, cap;
    char key[HAFM_MAX_KEY + 1];
    int differ;                   /* a value difference was found (reported at the end) */
    char first[1024];
} cmp_state;

HAFM_PRINTF(2, 3) static int differ(cmp_state *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hafm_error("item '%s': %s", c->key, msg);
    return 1;
}

static ctrack *find(cmp_state *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->t[i].name, name)) return &c->t[i];
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->t = hafm_xrealloc(c->t, (size_t)c->cap * sizeof *c->t);
    }
    ctrack *t = &c->t[c->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

static void clear(cmp_state *c)
{
    for (int i = 0; i < c->n; i++) free(c->t[i].queue);
    c->n = 0;
}

/* The declarations of a track in A and B must describe the same data. */
static int same_decl(cmp_state *c, ctrack *t)
{
    const hafm_track *a = t->decl[0], *b = t->decl[1];
    const char *what = NULL;
    char sa[64] = "", sb[64] = "";
    if (a->kind != b->kind) {
        what = "kind";
        snprintf(sa, sizeof sa, "%s", hafm_kind_name(a->kind));
        snprintf(sb, sizeof sb, "%s", hafm_kind_name(b->kind));
    } else if (a->dtype != b->dtype) {
        what = "dtype";
        snprintf(sa, sizeof sa, "%s", hafm_dtype_name(a->dtype));
        snprintf(sb, sizeof sb, "%s", hafm_dtype_name(b->dtype));
    } else if (a->ndim != b->ndim || memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0])) {
        what = "shape";
        for (int k = 0; k < 2; k++) {
            const hafm_track *x = k ? b : a;
            char *s = k ? sb : sa;
            size_t len = 0;
            for (int i = 0; i < x->ndim; i++)
                len += (size_t)snprintf(s + len, 64 - len, "%s%lld", i ? "," : "[", (long long)x->shape[i]);
            snprintf(s + len, 64 - len, "]");
        }
    } else if (a->rate != b->rate) {
        what = "rate";
        snprintf(sa, sizeof sa, "%g", a->rate);
        snprintf(sb, sizeof sb, "%g", b->rate);
    } else if (a->vocab != b->vocab) {
        what = "vocab";
        snprintf(sa, sizeof sa, "%lld", (long long)a->vocab);
        snprintf(sb, sizeof sb, "%lld", (long long)b->vocab);
    } else if (hafm_track_attr_int_or(a, "codebook_offset", 0) != hafm_track_attr_int_or(b, "codebook_offset", 0)) {
        what = "codebook_offset";
        snprintf(sa, sizeof sa, "%lld", (long long)hafm_track_attr_int_or(a, "codebook_offset", 0));
        snprintf(sb, sizeof sb, "%lld", (long long)hafm_track_attr_int_or(b, "codebook_offset", 0));
    }
    if (what) return differ(c, "track '%s': %s %s in %s, %s in %s", t->name, what, sa, c->names[0], sb, c->names[1]);
    t->elems = hafm_track_frame_elems(a);
    t->tokens = a->kind == HAFM_KIND_TOKENS;
    return 0;
}

/* Compares value a (from A) with b (from B) at value index i of the track. */
static void compare_value(cmp_state *c, ctrack *t, double a, double b, int64_t i)
{
    double diff;
    int bad;
    if (t->tokens) {
        diff = fabs(a - b);
        bad = a != b;
    } else if (isnan(a) || isnan(b)) {
        diff = isnan(a) && isnan(b) ? 0 : INFINITY;
        bad = diff != 0;
    } else if (isinf(a) || isinf(b)) {
        diff = a == b ? 0 : INFINITY;
        bad = diff != 0;
    } else {
        diff = fabs(a - b);
        bad = diff > c->o->atol + c->o->rtol * fabs(b);
    }
    if (diff > t->max_diff) {
        t->max_diff = diff;
        t->max_at = i;
    }
    t->compared++;
    if (!bad) return;
    if (t->bad++ == 0) {
        int64_t frame = i / (int64_t)t->elems, e = i % (int64_t)t->elems;
        if (t->tokens)
            snprintf(t->first_bad, sizeof t->first_bad, "first at frame %lld, codebook %lld: %.0f in %s, %.0f in %s",
                     (long long)frame, (long long)e, a, c->names[0], b, c->names[1]);
        else
            snprintf(t->first_bad, sizeof t->first_bad,
                     "frame %lld, value %lld: %.9g in %s, %.9g in %s (|diff| %.3g > atol %g + rtol %g x %.3g)",
                     (long long)frame, (long long)e, a, c->names[0], b, c->names[1], diff, c->o->atol, c->o->rtol,
                     fabs(b));
    }
}

/* Values of a data message of side s: compared against what the other side queued, the
 * rest queued. */
static void feed(cmp_state *c, ctrack *t, int s, const hafm_event *ev)
{
    size_t n = (size_t)ev->frames * hafm_track_frame_elems(ev->track);
    size_t i = 0;
    if (t->qlen && t->qside != s) {
        for (; i < n && t->qlen; i++, t->qhead++, t->qlen--) {
            double v = hafm_payload_elem(ev->data, ev->track->dtype, i), q = t->queue[t->qhead];
            compare_value(c, t, s ? q : v, s ? v : q, t->compared);
        }
    }
    if (i == n) return;
    if (t->qlen == 0) t->qhead = 0;
    if (t->qhead + t->qlen + (n - i) > t->qcap) {
        /* drop the consumed head before growing */
        if (t->qlen) memmove(t->queue, t->queue + t->qhead, t->qlen * sizeof *t->queue);
        t->qhead = 0;
        if (t->qlen + (n - i) > t->qcap) {
            t->qcap = (t->qlen + (n - i)) * 2;
            t->queue = hafm_xrealloc(t->queue, t->qcap * sizeof *t->queue);
        }
    }
    for (; i < n; i++) t->queue[t->qhead + t->qlen++] = hafm_payload_elem(ev->data, ev->track->dtype, i);
    t->qside = s;
}

/* Next ITEM of a side (skipping headers and unknown messages): 1, 0 at the end, -1 error. */
static int next_item(hafm_reader *r, hafm_event *ev)
{
    int rc;
    while ((rc = hafm_reader_next(r, ev)) > 0)
        if (ev->type == HAFM_EV_ITEM) return 1;
    return rc;
}

static int cmp_item(cmp_state *c, hafm_reader *r[2])
{
    int done[2] = { 0, 0 };
    hafm_event ev;
    while (!done[0] || !done[1]) {
        for (int s = 0; s < 2; s++) {
            if (done[s]) continue;
            int rc = hafm_reader_next(r[s], &ev);
            if (rc < 0) return -1;
            if (rc == 0) {
                hafm_error("%s: truncated stream", c->names[s]);   /* the reader reports this itself */
                return -1;
            }
            ctrack *t;
            switch (ev.type) {
            case HAFM_EV_TRACK:
                t = find(c, ev.track->name);
                t->decl[s] = ev.track;
                if (t->decl[!s] && same_decl(c, t)) return 1;
                if (!t->decl[!s]) {
                    t->elems = hafm_track_frame_elems(ev.track);
                    t->tokens = ev.track->kind == HAFM_KIND_TOKENS;
                }
                break;
            case HAFM_EV_DATA:
                t = find(c, ev.track->name);
                t->frames[s] += ev.frames;
                feed(c, t, s, &ev);
                break;
            case HAFM_EV_ITEM_END:
                done[s] = 1;
                break;
            default:
                break;
            }
        }
    }
    for (int i = 0; i < c->n; i++) {
        ctrack *t = &c->t[i];
        for (int s = 0; s < 2; s++)
            if (!t->decl[s])
                return differ(c, "track '%s' is in %s but not in %s", t->name, c->names[!s], c->names[s]);
        if (t->frames[0] != t->frames[1])
            return differ(c, "track '%s': %lld frames in %s, %lld in %s", t->name, (long long)t->frames[0],
                          c->names[0], (long long)t->frames[1], c->names[1]);
        if (c->o->report) {
            if (t->tokens)
                fprintf(c->o->report, "%s %s: %lld frames, %lld of %lld tokens differ%s%s\n", c->key, t->name,
                        (long long)t->frames[0], (long long)t->bad, (long long)t->compared, t->bad ? ", " : "",
                        t->first_bad);
            else if (t->max_diff > 0)
                fprintf(c->o->report, "%s %s: %lld frames, max_diff %.3g at frame %lld\n", c->key, t->name,
                        (long long)t->frames[0], t->max_diff, (long long)(t->max_at / (int64_t)t->elems));
            else
                fprintf(c->o->report, "%s %s: %lld frames, max_diff 0\n", c->key, t->name, (long long)t->frames[0]);
        }
        int bad = t->tokens ? t->bad > c->o->max_token_diff : t->bad > 0;
        if (bad && !c->differ) {
            c->differ = 1;
            if (t->tokens)
                snprintf(c->first, sizeof c->first, "item '%s', track '%s': %lld of %lld tokens differ (%lld allowed), %s",
                         c->key, t->name, (long long)t->bad, (long long)t->compared, (long long)c->o->max_token_diff,
                         t->first_bad);
            else
                snprintf(c->first, sizeof c->first, "item '%s', track '%s', %s", c->key, t->name, t->first_bad);
        }
    }
    return 0;
}

int hafm_stream_cmp(hafm_reader *a, hafm_reader *b, const char *name_a, const char *name_b, const hafm_cmp_opts *o)
{
    cmp_state c = { .o = o, .names = { name_a, name_b } };
    hafm_reader *r[2] = { a, b };
    int rc = 0;
    int64_t items = 0;
    for (;;) {
        hafm_event ea, eb;
        int ra = next_item(a, &ea);
        if (ra < 0) { rc = -1; break; }
        char key_a[HAFM_MAX_KEY + 1];
        if (ra) snprintf(key_a, sizeof key_a, "%s", ea.key);
        int rb = next_item(b, &eb);
        if (rb < 0) { rc = -1; break; }
        if (!ra && !rb) break;
        if (!ra || !rb) {
            hafm_error("%s has %lld items, %s more (the next is '%s')", ra ? name_b : name_a, (long long)items,
                       ra ? name_a : name_b, ra ? key_a : eb.key);
            rc = 1;
            break;
        }
        items++;
        if (strcmp(key_a, eb.key)) {
            hafm_error("item %lld: key '%s' in %s, '%s' in %s", (long long)items, key_a, name_a, eb.key, name_b);
            rc = 1;
            break;
        }
        snprintf(c.key, sizeof c.key, "%s", key_a);
        clear(&c);
        rc = cmp_item(&c, r);
        if (rc) break;
    }
    clear(&c);
    free(c.t);
    if (rc == 0 && c.differ) {
        hafm_error("%s", c.first);
        rc = 1;
    }
    return rc;
}
