/* fadvsep_util.h - file helpers shared by the fad/vggish/stft/repet/mdxnet/sdr unit tests. */
#ifndef FADVSEP_UTIL_H
#define FADVSEP_UTIL_H

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* $HAFM_SHARED/golden/<sub>/<name>, or NULL (and the caller skips) when HAFM_SHARED is unset. */
static inline const char *golden_path(const char *sub, const char *name) {
    static char buf[4][1024];
    static int k;
    const char *root = getenv("HAFM_SHARED");
    if (!root || !*root) return NULL;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/golden/%s/%s", root, sub, name);
    return buf[k];
}

/* Whole file into memory (NULL if unreadable); *n = bytes. */
static inline void *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        return NULL;
    }
    buf[len] = 0;
    fclose(f);
    if (n) *n = (size_t)len;
    return buf;
}

static inline cJSON *load_json(const char *path) {
    char *txt = slurp(path, NULL);
    if (!txt) return NULL;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    return j;
}

static inline double json_num(const cJSON *o, const char *path) {
    /* "a.b.c" walks objects */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cur && cJSON_IsNumber(cur) ? cur->valuedouble : NAN;
}

static inline double max_abs_diff_f(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;   /* NaN propagates */
    }
    return m;
}

static inline double rms_diff_f(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return sqrt(s / (double)(n ? n : 1));
}

#endif
