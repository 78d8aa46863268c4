/* hafm/stream_tools.h - stream utilities behind hafm-dump, hafm-cmp and hafm-tracks. */
#ifndef HAFM_STREAM_TOOLS_H
#define HAFM_STREAM_TOOLS_H

#include "stream.h"

/* Passes a TRACK event through under a new name; every other key of the declaration is kept.
 * Its data and end messages then pass through with hafm_write_passthrough as usual. */
int hafm_write_passthrough_renamed(hafm_writer *w, const hafm_event *ev, const char *new_name);

#endif
