/* hafm/codebooks.h - splits a multi-codebook tokens track into tracks of codebook ranges, e.g.
 * encodec-enc's 8-codebook 'codes' into the 'accomp.coarse' (codebooks 1-4) and 'accomp.fine'
 * (5-8, codebook_offset 4) tracks that hafm-train's stage 2 and stage 3 read. */
#ifndef HAFM_CODEBOOKS_H
#define HAFM_CODEBOOKS_H

#include "stream.h"

typedef struct {
    const char *name;   /* new track name */
    int first, count;   /* codebooks [first, first + count) of the input track */
} hafm_codebook_range;

typedef struct {
    const char *input;                  /* tokens track to split */
    const hafm_codebook_range *ranges;
    int n_ranges;
    int drop_input;                     /* leave the input track out of the output */
} hafm_codebooks_opts;

/* Copies the stream r -> w; every item's track o->input gets its ranges as new tokens tracks
 * (same dtype, rate, vocabulary, attributes and end message; codebook_offset = the input's offset
 * + first), declared after the input's declaration and ended after it. Every other message passes
 * through unchanged. A stream in which no item has the input track is an error, reported at the
 * end; so is a range beyond the input's codebooks or a new name the item already has. */
int hafm_codebooks_split(hafm_reader *r, hafm_writer *w, const hafm_codebooks_opts *o);

#endif
