/* codebooks.c - a tokens track split into tracks of codebook ranges (hafm/codebooks.h). */
#include <stdlib.h>
#include <string.h>
#include "hafm/codebooks.h"

/* The new tracks take ids from the top of the id space: a track the input declares later in the
 * item keeps its own id (pass-through never renumbers), and inputs use small ids. */
static int top_free_id(hafm_reader *r, const int *taken, int n_taken)
{
    for (int id = 65535; id >= 0; id--) {
        int used = 0;
        for (int i = 0; i < n_taken && !used; i++) used = taken[i] == id;
        for (int i = 0; i < hafm_reader_ntracks(r) && !used; i++) used = hafm_reader_track(r, i)->id == id;
        if (!used) return id;
    }
    return -1;
}

int hafm_codebooks_split(hafm_reader *r, hafm_writer *w, const hafm_codebooks_opts *o)
{
    int n = o->n_ranges, found = 0, rc;
    int *ids = hafm_xcalloc((size_t)(n > 0 ? n : 1), sizeof *ids);
    int in_id = -1, Q = 0;   /* the input track of the current item, its codebooks */
    int32_t *frame_buf = NULL, *part = NULL;
    size_t cap = 0;
    hafm_event ev;
    int status = -1;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        int mine = (ev.type == HAFM_EV_DATA || ev.type == HAFM_EV_END) && ev.track->id == in_id;
        if (ev.type == HAFM_EV_ITEM) in_id = -1;
        if (!(o->drop_input && (mine || (ev.type == HAFM_EV_TRACK && !strcmp(ev.track->name, o->input)))))
            if (hafm_write_passthrough(w, &ev) < 0) goto out;
        if (ev.type == HAFM_EV_TRACK && !strcmp(ev.track->name, o->input)) {
            const hafm_track *t = ev.track;
            if (t->kind != HAFM_KIND_TOKENS || t->ndim != 1) {
                hafm_error("track '%s': expected a tokens track of shape [Q]", t->name);
                goto out;
            }
            Q = (int)t->shape[0];
            int64_t offset = hafm_track_attr_int_or(t, "codebook_offset", 0);
            for (int i = 0; i < n; i++) {
                const hafm_codebook_range *g = &o->ranges[i];
                if (g->first < 0 || g->count < 1 || g->first + g->count > Q) {
                    hafm_error("track '%s' has %d codebooks, so it has no codebooks %d-%d for '%s'", t->name, Q,
                               g->first + 1, g->first + g->count, g->name);
                    goto out;
                }
                if (hafm_reader_find_track(r, g->name)) {
                    hafm_error("item '%s' already has a track '%s'", hafm_reader_item_key(r), g->name);
                    goto out;
                }
                hafm_track nt;
                hafm_track_copy(&nt, t);
                snprintf(nt.name, sizeof nt.name, "%s", g->name);
                nt.shape[0] = g->count;
                nt.id = top_free_id(r, ids, i);
                /* frames stays as declared: a range has as many frames as its input */
                /* the producer stays the input's: it made these codes, this only selects */
                int fail = hafm_track_attr_int(&nt, "codebook_offset", offset + g->first) < 0 ||
                           hafm_write_track(w, &nt) < 0;
                ids[i] = nt.id;
                hafm_track_free(&nt);
                if (fail) goto out;
            }
            in_id = t->id;
            found = 1;
        } else if (mine && ev.type == HAFM_EV_DATA) {
            size_t need = (size_t)ev.frames * (size_t)Q;
            if (need > cap) {
                cap = need;
                frame_buf = hafm_xrealloc(frame_buf, cap * sizeof *frame_buf);
                part = hafm_xrealloc(part, cap * sizeof *part);
            }
            hafm_event_to_i32(&ev, frame_buf);
            for (int i = 0; i < n; i++) {
                const hafm_codebook_range *g = &o->ranges[i];
                for (int64_t f = 0; f < ev.frames; f++)
                    memcpy(part + f * g->count, frame_buf + f * Q + g->first, (size_t)g->count * sizeof *part);
                if (hafm_write_data_i32(w, ids[i], part, ev.frames) < 0) goto out;
            }
        } else if (mine && ev.type == HAFM_EV_END) {
            for (int i = 0; i < n; i++)
                if (hafm_write_end(w, ids[i], ev.track->source_samples,
                                   ev.track->source_samples >= 0 ? ev.track->source_rate : 0) < 0) goto out;
            in_id = -1;
        }
    }
    if (rc < 0) goto out;
    if (!found) {
        hafm_error("no item has a track '%s'", o->input);
        goto out;
    }
    status = 0;
out:
    free(ids);
    free(frame_buf);
    free(part);
    return status;
}
