/* stream_tracks.c - keeps, drops and renames tracks of a stream (hafm-tracks). */
#include "hafm/stream.h"
#include "hafm/stream_tools.h"

#include <stdlib.h>
#include <string.h>

static int listed(const char *name, const char *const *list, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], name)) return i;
    return -1;
}

int hafm_tracks_filter(hafm_reader *r, hafm_writer *w, const hafm_tracks_opts *o)
{
    /* per input id of the current item: 0 not passed, 1 passed */
    uint8_t *pass = calloc(65536, 1);
    /* per --keep and --rename name: found somewhere (a typo must not pass silently, but items
     * may hold different tracks) */
    uint8_t *found = calloc((size_t)(o->nkeep + o->nrename) + 1, 1);
    if (!pass || !found) {
        free(pass);
        free(found);
        hafm_error("out of memory");
        return -1;
    }
    hafm_event ev;
    int rc = 0, err = 0;
    while (!err && (rc = hafm_reader_next(r, &ev)) > 0) {
        switch (ev.type) {
        case HAFM_EV_ITEM:
            memset(pass, 0, 65536);
            err = hafm_write_passthrough(w, &ev) < 0;
            break;
        case HAFM_EV_TRACK: {
            const char *name = ev.track->name;
            int k = listed(name, o->keep, o->nkeep), ren = listed(name, o->rename_from, o->nrename);
            if (k >= 0) found[k] = 1;
            if (ren >= 0) found[o->nkeep + ren] = 1;
            if ((o->keep && k < 0) || listed(name, o->drop, o->ndrop) >= 0) break;
            pass[ev.track->id] = 1;
            err = (ren >= 0 ? hafm_write_passthrough_renamed(w, &ev, o->rename_to[ren])
                            : hafm_write_passthrough(w, &ev)) < 0;
            break;
        }
        case HAFM_EV_DATA:
        case HAFM_EV_END:
            if (pass[ev.track->id]) err = hafm_write_passthrough(w, &ev) < 0;
            break;
        default:
            err = hafm_write_passthrough(w, &ev) < 0;
            break;
        }
    }
    for (int i = 0; i < o->nkeep + o->nrename && !err && rc == 0; i++)
        if (!found[i]) {
            hafm_error("no track '%s' in the input", i < o->nkeep ? o->keep[i] : o->rename_from[i - o->nkeep]);
            err = 1;
        }
    free(pass);
    free(found);
    return err || rc < 0 ? -1 : 0;
}
