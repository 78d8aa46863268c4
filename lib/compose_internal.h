/* compose_internal.h - shared between compose_labels.c and compose_render.c; not installed. */
#ifndef HAFM_COMPOSE_INTERNAL_H
#define HAFM_COMPOSE_INTERNAL_H

#include <cJSON.h>

#include "hafm/compose.h"

/* Seconds rounded to the microsecond: labels read cleanly and compare exactly. */
double hafm__us(double seconds);
/* The labels as a cJSON tree (the renderer adds the mix gains before printing). */
cJSON *hafm__labels_object(const hafm_song *song, int sample_rate);
/* Prints and frees the tree; NULL + hafm_error when out of memory. */
char *hafm__print_labels(cJSON *labels);

#endif
