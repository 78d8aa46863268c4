/* safetensors.c - strict reader (mmap) and atomic writer of safetensors files.
 *
 * Layout: u64 LE header length N, N bytes of JSON, then the data section. The JSON object maps
 * tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data
 * section) plus an optional "__metadata__" object of string -> string.
 *
 * The reader checks everything a later read relies on, so that no byte outside the mapping is
 * ever touched whatever the file holds; every message names the file and, where one is at
 * fault, the tensor. It allows gaps between tensors (the reference reader does not), because
 * other writers align their data.
 *
 * The writer pads the header with spaces to a multiple of 8 (as the reference does) and lays the
 * data out grouped by element size, largest first: every tensor is then aligned to its element
 * size without gap bytes, which the reference reader (it requires contiguous ranges) accepts.
 * The JSON lists the tensors in insertion order.
 */
#include "hafm/safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000u      /* the reference reader's limit */
#define ST_MAX_JSON_INT 9007199254740992.0  /* 2^53: doubles hold every integer below */

/* safetensors dtype strings. */
static const struct { const char *name; hafm_dtype dtype; size_t size; } st_dtypes[] = {
    {"F64", HAFM_DT_F64, 8}, {"F32", HAFM_DT_F32, 4}, {"F16", HAFM_DT_F16, 2},
    {"BF16", HAFM_DT_BF16, 2}, {"I64", HAFM_DT_I64, 8}, {"I32", HAFM_DT_I32, 4},
    {"I16", HAFM_DT_I16, 2}, {"U16", HAFM_DT_U16, 2}, {"I8", HAFM_DT_I8, 1},
    {"U8", HAFM_DT_U8, 1}, {"BOOL", HAFM_DT_BOOL, 1},
};
#define N_ST_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

static int st_dtype_index(const char *s) {
    for (size_t i = 0; i < N_ST_DTYPES; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) return (int)i;
    return -1;
}

static const char *st_dtype_string(hafm_dtype t) {
    for (size_t i = 0; i < N_ST_DTYPES; i++)
        if (st_dtypes[i].dtype == t && t != HAFM_DT_INVALID) return st_dtypes[i].name;
    return NULL;
}

struct hafm_safetensors {
    char *name;                 /* path or caller's name, for messages */
    const uint8_t *map;         /* whole file */
    size_t map_size;
    int mapped;                 /* 1: munmap on close; 0: caller-owned buffer */
    int ntensors;
    hafm_st_tensor *tensors;    /* file (JSON) order */
    const char **st_dtype;      /* per tensor: the dtype string of the file */
    int nmeta;
    char **meta_keys, **meta_vals;
};

/* ---- reading ----------------------------------------------------------------------------- */

static uint64_t read_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0.0 && d <= ST_MAX_JSON_INT) || floor(d) != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static void st_free_parsed(hafm_safetensors *st) {
    if (st->tensors)
        for (int i = 0; i < st->ntensors; i++) free((char *)st->tensors[i].name);
    free(st->tensors);
    free(st->st_dtype);
    for (int i = 0; i < st->nmeta; i++) { free(st->meta_keys[i]); free(st->meta_vals[i]); }
    free(st->meta_keys);
    free(st->meta_vals);
}

static int parse_metadata(hafm_safetensors *st, const cJSON *meta) {
    const char *f = st->name;
    if (!cJSON_IsObject(meta)) {
        hafm_error("%s: __metadata__ is not a JSON object", f);
        return -1;
    }
    int n = cJSON_GetArraySize(meta);
    st->meta_keys = calloc((size_t)n + 1, sizeof(char *));
    st->meta_vals = calloc((size_t)n + 1, sizeof(char *));
    if (!st->meta_keys || !st->meta_vals) { hafm_error("%s: out of memory", f); return -1; }
    for (const cJSON *e = meta->child; e; e = e->next) {
        if (!cJSON_IsString(e)) {
            hafm_error("%s: __metadata__ '%s' is not a string", f, e->string);
            return -1;
        }
        for (int i = 0; i < st->nmeta; i++)
            if (strcmp(st->meta_keys[i], e->string) == 0) {
                hafm_error("%s: __metadata__ key '%s' appears twice", f, e->string);
                return -1;
            }
        st->meta_keys[st->nmeta] = strdup(e->string);
        st->meta_vals[st->nmeta] = strdup(e->valuestring);
        if (!st->meta_keys[st->nmeta] || !st->meta_vals[st->nmeta]) {
            free(st->meta_keys[st->nmeta]);
            free(st->meta_vals[st->nmeta]);
            hafm_error("%s: out of memory", f);
            return -1;
        }
        st->nmeta++;
    }
    return 0;
}

/* Fills t from entry e (name e->string); begin/end are data-section offsets. */
static int parse_tensor(hafm_safetensors *st, const cJSON *e, size_t data_size, hafm_st_tensor *t,
                        const char **dtype_str, const uint8_t *data) {
    const char *f = st->name, *n = e->string;
    if (!cJSON_IsObject(e)) {
        hafm_error("%s: tensor '%s': entry is not a JSON object", f, n);
        return -1;
    }
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd)) {
        hafm_error("%s: tensor '%s': missing or non-string \"dtype\"", f, n);
        return -1;
    }
    int di = st_dtype_index(jd->valuestring);
    if (di < 0) {
        hafm_error("%s: tensor '%s': unknown dtype '%.32s'", f, n, jd->valuestring);
        return -1;
    }
    if (!cJSON_IsArray(js)) {
        hafm_error("%s: tensor '%s': missing or non-array \"shape\"", f, n);
        return -1;
    }
    int ndim = cJSON_GetArraySize(js);
    if (ndim > HAFM_ST_MAX_DIMS) {
        hafm_error("%s: tensor '%s': %d dimensions (at most %d supported)", f, n, ndim, HAFM_ST_MAX_DIMS);
        return -1;
    }
    uint64_t numel = 1;
    int k = 0;
    for (const cJSON *d = js->child; d; d = d->next, k++) {
        uint64_t v;
        if (json_uint(d, &v) < 0) {
            hafm_error("%s: tensor '%s': shape[%d] is not a non-negative integer", f, n, k);
            return -1;
        }
        if (v > 0 && numel > UINT64_MAX / v) {
            hafm_error("%s: tensor '%s': element count overflows", f, n);
            return -1;
        }
        numel *= v;
        t->shape[k] = (int64_t)v;
    }
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2) {
        hafm_error("%s: tensor '%s': \"data_offsets\" is not an array [begin, end]", f, n);
        return -1;
    }
    uint64_t begin, end;
    if (json_uint(jo->child, &begin) < 0 || json_uint(jo->child->next, &end) < 0) {
        hafm_error("%s: tensor '%s': data_offsets are not non-negative integers", f, n);
        return -1;
    }
    if (end < begin) {
        hafm_error("%s: tensor '%s': data_offsets [%llu, %llu] end before begin", f, n,
                   (unsigned long long)begin, (unsigned long long)end);
        return -1;
    }
    if (end > data_size) {
        hafm_error("%s: tensor '%s': data_offsets [%llu, %llu] outside the data section (%zu bytes)",
                   f, n, (unsigned long long)begin, (unsigned long long)end, data_size);
        return -1;
    }
    size_t esize = st_dtypes[di].size;
    if (numel > UINT64_MAX / esize || numel * esize != end - begin) {
        hafm_error("%s: tensor '%s': shape x %s needs %s%llu bytes, data_offsets give %llu", f, n,
                   st_dtypes[di].name, numel > UINT64_MAX / esize ? "more than " : "",
                   (unsigned long long)(numel > UINT64_MAX / esize ? UINT64_MAX : numel * esize),
                   (unsigned long long)(end - begin));
        return -1;
    }
    t->name = strdup(n);
    if (!t->name) { hafm_error("%s: out of memory", f); return -1; }
    t->dtype = st_dtypes[di].dtype;
    t->ndim = ndim;
    t->numel = (int64_t)numel;
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    *dtype_str = st_dtypes[di].name;
    return 0;
}

static int cmp_by_range(const void *a, const void *b) {
    const hafm_st_tensor *x = *(hafm_st_tensor *const *)a, *y = *(hafm_st_tensor *const *)b;
    const uint8_t *xb = x->data, *yb = y->data;
    if (xb != yb) return xb < yb ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(hafm_st_tensor *const *)a)->name, (*(hafm_st_tensor *const *)b)->name);
}

static int st_parse(hafm_safetensors *st) {
    const char *f = st->name;
    const uint8_t *buf = st->map;
    size_t size = st->map_size;
    if (size == 0) { hafm_error("%s: empty file, not safetensors", f); return -1; }
    if (size < 8) {
        hafm_error("%s: %zu bytes, too short for a safetensors header", f, size);
        return -1;
    }
    uint64_t hlen = read_u64le(buf);
    if (hlen > size - 8) {
        hafm_error("%s: header length %llu exceeds the file (%zu bytes): truncated or not safetensors",
                   f, (unsigned long long)hlen, size);
        return -1;
    }
    if (hlen >= ST_MAX_HEADER) {
        hafm_error("%s: header length %llu is too large (limit %u)", f, (unsigned long long)hlen,
                   ST_MAX_HEADER);
        return -1;
    }
    const char *json = (const char *)buf + 8;
    if (hlen < 2 || json[0] != '{') {
        hafm_error("%s: header is not a JSON object", f);
        return -1;
    }
    const char *json_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &json_end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long pos = at && at >= json && at <= json + hlen ? (long)(at - json) : -1;
        hafm_error("%s: header is not valid JSON (error near byte %ld of %llu)", f, pos,
                   (unsigned long long)hlen);
        return -1;
    }
    int rc = -1;
    hafm_st_tensor **order = NULL;
    if (!cJSON_IsObject(root)) {
        hafm_error("%s: header is not a JSON object", f);
        goto out;
    }
    for (const char *p = json_end; p < json + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            hafm_error("%s: bytes after the header JSON object (offset %ld)", f, (long)(p - json));
            goto out;
        }

    const uint8_t *data = buf + 8 + hlen;
    size_t data_size = size - 8 - (size_t)hlen;
    int n = cJSON_GetArraySize(root);
    st->tensors = calloc((size_t)n + 1, sizeof *st->tensors);
    st->st_dtype = calloc((size_t)n + 1, sizeof *st->st_dtype);
    order = calloc((size_t)n + 1, sizeof *order);
    if (!st->tensors || !st->st_dtype || !order) { hafm_error("%s: out of memory", f); goto out; }
    int seen_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (seen_meta++) { hafm_error("%s: __metadata__ appears twice", f); goto out; }
            if (parse_metadata(st, e) < 0) goto out;
            continue;
        }
        if (e->string[0] == '\0') { hafm_error("%s: a tensor has an empty name", f); goto out; }
        hafm_st_tensor *t = &st->tensors[st->ntensors];
        if (parse_tensor(st, e, data_size, t, &st->st_dtype[st->ntensors], data) < 0) goto out;
        order[st->ntensors++] = t;
    }

    qsort(order, (size_t)st->ntensors, sizeof *order, cmp_by_name);
    for (int i = 1; i < st->ntensors; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            hafm_error("%s: tensor '%s' appears twice", f, order[i]->name);
            goto out;
        }
    /* Empty tensors own no bytes, so they cannot overlap anything. */
    qsort(order, (size_t)st->ntensors, sizeof *order, cmp_by_range);
    const hafm_st_tensor *prev = NULL;
    for (int i = 0; i < st->ntensors; i++) {
        const hafm_st_tensor *t = order[i];
        if (t->nbytes == 0) continue;
        if (prev && (const uint8_t *)t->data < (const uint8_t *)prev->data + prev->nbytes) {
            hafm_error("%s: tensor '%s' [%zu, %zu) overlaps tensor '%s' [%zu, %zu)", f, t->name,
                       (size_t)((const uint8_t *)t->data - data),
                       (size_t)((const uint8_t *)t->data - data) + t->nbytes, prev->name,
                       (size_t)((const uint8_t *)prev->data - data),
                       (size_t)((const uint8_t *)prev->data - data) + prev->nbytes);
            goto out;
        }
        prev = t;
    }
    rc = 0;
out:
    free(order);
    cJSON_Delete(root);
    return rc;
}

static hafm_safetensors *st_new(const char *name) {
    hafm_safetensors *st = calloc(1, sizeof *st);
    if (st) st->name = strdup(name ? name : "(memory)");
    if (!st || !st->name) {
        free(st);
        hafm_error("%s: out of memory", name ? name : "(memory)");
        return NULL;
    }
    return st;
}

hafm_safetensors *hafm_st_open_mem(const void *buf, size_t nbytes, const char *name) {
    hafm_safetensors *st = st_new(name);
    if (!st) return NULL;
    st->map = buf;
    st->map_size = buf ? nbytes : 0;
    if (st_parse(st) < 0) { hafm_st_close(st); return NULL; }
    return st;
}

hafm_safetensors *hafm_st_open(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { hafm_error("%s:", path); return NULL; }
    struct stat sb;
    if (fstat(fd, &sb) < 0) { hafm_error("%s:", path); close(fd); return NULL; }
    if (!S_ISREG(sb.st_mode)) {
        hafm_error("%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    hafm_safetensors *st = st_new(path);
    if (!st) { close(fd); return NULL; }
    if (sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            hafm_error("%s: mmap:", path);
            close(fd);
            hafm_st_close(st);
            return NULL;
        }
        st->map = m;
        st->map_size = (size_t)sb.st_size;
        st->mapped = 1;
    }
    close(fd);
    if (st_parse(st) < 0) { hafm_st_close(st); return NULL; }
    return st;
}

void hafm_st_close(hafm_safetensors *st) {
    if (!st) return;
    st_free_parsed(st);
    if (st->mapped) munmap((void *)st->map, st->map_size);
    free(st->name);
    free(st);
}

const char *hafm_st_path(const hafm_safetensors *st) { return st->name; }
int hafm_st_count(const hafm_safetensors *st) { return st->ntensors; }

const hafm_st_tensor *hafm_st_get(const hafm_safetensors *st, int index) {
    return index >= 0 && index < st->ntensors ? &st->tensors[index] : NULL;
}

const hafm_st_tensor *hafm_st_find(const hafm_safetensors *st, const char *name) {
    for (int i = 0; i < st->ntensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *hafm_st_meta(const hafm_safetensors *st, const char *key) {
    for (int i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

int hafm_st_meta_count(const hafm_safetensors *st) { return st->nmeta; }

const char *hafm_st_meta_key(const hafm_safetensors *st, int index) {
    return index >= 0 && index < st->nmeta ? st->meta_keys[index] : NULL;
}

/* "[32,1,7]" into buf. */
static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t len = 0;
    len += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

int hafm_st_check_shape(const hafm_safetensors *st, const hafm_st_tensor *t, int ndim, const int64_t *shape) {
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (same) return 0;
    char want[256], got[256];
    format_shape(want, sizeof want, ndim, shape);
    format_shape(got, sizeof got, t->ndim, t->shape);
    hafm_error("%s: tensor '%s': expected shape %s, got %s", st->name, t->name, want, got);
    return -1;
}

static const hafm_st_tensor *find_or_error(const hafm_safetensors *st, const char *name) {
    const hafm_st_tensor *t = hafm_st_find(st, name);
    if (!t) hafm_error("%s: tensor '%s' not found", st->name, name);
    return t;
}

int hafm_st_read_f32(const hafm_safetensors *st, const char *name, float *out, int ndim, const int64_t *shape) {
    const hafm_st_tensor *t = find_or_error(st, name);
    if (!t || hafm_st_check_shape(st, t, ndim, shape) < 0) return -1;
    if (t->dtype == HAFM_DT_INVALID) {
        hafm_error("%s: tensor '%s': dtype %s cannot be read as float", st->name, t->name,
                   st->st_dtype[t - st->tensors]);
        return -1;
    }
    hafm_convert_to_f32(out, t->data, t->dtype, (size_t)t->numel);   /* handles unaligned data */
    return 0;
}

float *hafm_st_load_f32(const hafm_safetensors *st, const char *name, int ndim, const int64_t *shape) {
    const hafm_st_tensor *t = find_or_error(st, name);
    if (!t || hafm_st_check_shape(st, t, ndim, shape) < 0) return NULL;
    float *out = malloc(t->numel > 0 ? (size_t)t->numel * sizeof(float) : 1);
    if (!out) {
        hafm_error("%s: tensor '%s': out of memory (%lld floats)", st->name, name, (long long)t->numel);
        return NULL;
    }
    if (hafm_st_read_f32(st, name, out, ndim, shape) < 0) { free(out); return NULL; }
    return out;
}

/* ---- writing ----------------------------------------------------------------------------- */

typedef struct {
    char *name;
    hafm_dtype dtype;
    int ndim;
    int64_t shape[HAFM_ST_MAX_DIMS];
    void *data;
    size_t nbytes;
    size_t offset;      /* assigned at save */
} st_wtensor;

struct hafm_st_writer {
    st_wtensor *t;
    int n, cap;
    char **meta_keys, **meta_vals;
    int nmeta, meta_cap;
};

hafm_st_writer *hafm_st_writer_new(void) {
    hafm_st_writer *w = calloc(1, sizeof *w);
    if (!w) hafm_error("safetensors writer: out of memory");
    return w;
}

void hafm_st_writer_free(hafm_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) { free(w->t[i].name); free(w->t[i].data); }
    free(w->t);
    for (int i = 0; i < w->nmeta; i++) { free(w->meta_keys[i]); free(w->meta_vals[i]); }
    free(w->meta_keys);
    free(w->meta_vals);
    free(w);
}

/* Checks name, dtype and shape; reserves a slot. Returns the slot or NULL. */
static st_wtensor *writer_slot(hafm_st_writer *w, const char *name, hafm_dtype dtype, int ndim,
                               const int64_t *shape) {
    if (!name || !*name || strcmp(name, "__metadata__") == 0) {
        hafm_error("safetensors writer: invalid tensor name '%s'", name ? name : "");
        return NULL;
    }
    if (!st_dtype_string(dtype)) {
        hafm_error("safetensors writer: tensor '%s': dtype %d has no safetensors name", name, (int)dtype);
        return NULL;
    }
    if (ndim < 0 || ndim > HAFM_ST_MAX_DIMS) {
        hafm_error("safetensors writer: tensor '%s': %d dimensions (0 to %d)", name, ndim, HAFM_ST_MAX_DIMS);
        return NULL;
    }
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0) {
            hafm_error("safetensors writer: tensor '%s' added twice", name);
            return NULL;
        }
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && numel > (uint64_t)(ST_MAX_JSON_INT / (double)shape[i]))) {
            hafm_error("safetensors writer: tensor '%s': bad shape", name);
            return NULL;
        }
        numel *= (uint64_t)shape[i];
    }
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        st_wtensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) { hafm_error("safetensors writer: out of memory"); return NULL; }
        w->t = nt;
        w->cap = cap;
    }
    st_wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = (size_t)numel * hafm_dtype_size(dtype);
    t->name = strdup(name);
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        hafm_error("safetensors writer: tensor '%s': out of memory", name);
        return NULL;
    }
    return t;
}

int hafm_st_writer_add(hafm_st_writer *w, const char *name, hafm_dtype dtype, int ndim,
                       const int64_t *shape, const void *data) {
    st_wtensor *t = writer_slot(w, name, dtype, ndim, shape);
    if (!t) return -1;
    if (t->nbytes) memcpy(t->data, data, t->nbytes);
    w->n++;
    return 0;
}

int hafm_st_writer_add_f32(hafm_st_writer *w, const char *name, hafm_dtype stored_as, int ndim,
                           const int64_t *shape, const float *data) {
    if (stored_as != HAFM_DT_F32 && stored_as != HAFM_DT_F16 && stored_as != HAFM_DT_BF16) {
        hafm_error("safetensors writer: tensor '%s': float data can be stored as F32, F16 or BF16 only", name);
        return -1;
    }
    st_wtensor *t = writer_slot(w, name, stored_as, ndim, shape);
    if (!t) return -1;
    size_t n = t->nbytes / hafm_dtype_size(stored_as);
    uint8_t *p = t->data;
    if (stored_as == HAFM_DT_F32) {
        if (n) memcpy(p, data, n * 4);
    } else {
        for (size_t i = 0; i < n; i++) {
            uint16_t h = stored_as == HAFM_DT_F16 ? hafm_f32_to_f16(data[i]) : hafm_f32_to_bf16(data[i]);
            p[2 * i] = (uint8_t)(h & 0xff);
            p[2 * i + 1] = (uint8_t)(h >> 8);
        }
    }
    w->n++;
    return 0;
}

int hafm_st_writer_meta(hafm_st_writer *w, const char *key, const char *value) {
    if (!key || !value) { hafm_error("safetensors writer: metadata key and value must be strings"); return -1; }
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            char *v = strdup(value);
            if (!v) { hafm_error("safetensors writer: out of memory"); return -1; }
            free(w->meta_vals[i]);
            w->meta_vals[i] = v;
            return 0;
        }
    if (w->nmeta == w->meta_cap) {
        int cap = w->meta_cap ? 2 * w->meta_cap : 8;
        char **k = realloc(w->meta_keys, (size_t)cap * sizeof *k);
        if (!k) { hafm_error("safetensors writer: out of memory"); return -1; }
        w->meta_keys = k;
        char **v = realloc(w->meta_vals, (size_t)cap * sizeof *v);
        if (!v) { hafm_error("safetensors writer: out of memory"); return -1; }
        w->meta_vals = v;
        w->meta_cap = cap;
    }
    w->meta_keys[w->nmeta] = strdup(key);
    w->meta_vals[w->nmeta] = strdup(value);
    if (!w->meta_keys[w->nmeta] || !w->meta_vals[w->nmeta]) {
        free(w->meta_keys[w->nmeta]);
        free(w->meta_vals[w->nmeta]);
        hafm_error("safetensors writer: out of memory");
        return -1;
    }
    w->nmeta++;
    return 0;
}

static cJSON *json_raw_uint(uint64_t v) {
    char s[32];
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    return cJSON_CreateRaw(s);
}

/* The header JSON (tensors in insertion order) after assigning offsets; NULL on failure. */
static char *writer_header(hafm_st_writer *w, size_t *data_size) {
    size_t off = 0;
    for (size_t esize = 8; esize >= 1; esize /= 2)
        for (int i = 0; i < w->n; i++)
            if (hafm_dtype_size(w->t[i].dtype) == esize) {
                w->t[i].offset = off;
                off += w->t[i].nbytes;
            }
    *data_size = off;

    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && w->nmeta) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        ok = meta != NULL;
        for (int i = 0; ok && i < w->nmeta; i++)
            ok = cJSON_AddStringToObject(meta, w->meta_keys[i], w->meta_vals[i]) != NULL;
    }
    for (int i = 0; ok && i < w->n; i++) {
        const st_wtensor *t = &w->t[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        ok = e && shape && offs && cJSON_AddStringToObject(e, "dtype", st_dtype_string(t->dtype));
        for (int k = 0; ok && k < t->ndim; k++) ok = cJSON_AddItemToArray(shape, json_raw_uint((uint64_t)t->shape[k]));
        ok = ok && cJSON_AddItemToArray(offs, json_raw_uint(t->offset))
                && cJSON_AddItemToArray(offs, json_raw_uint(t->offset + t->nbytes));
        if (ok) {
            cJSON_AddItemToObject(e, "shape", shape);
            cJSON_AddItemToObject(e, "data_offsets", offs);
        } else {
            cJSON_Delete(shape);
            cJSON_Delete(offs);
        }
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) hafm_error("safetensors writer: out of memory building the header");
    return json;
}

int hafm_st_writer_save(hafm_st_writer *w, const char *path) {
    size_t data_size;
    char *json = writer_header(w, &data_size);
    if (!json) return -1;
    size_t jlen = strlen(json), hlen = (jlen + 7) & ~(size_t)7;
    hafm_outfile *of = hafm_outfile_open(path);
    if (!of) { free(json); return -1; }
    FILE *fp = hafm_outfile_fp(of);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(json, 1, jlen, fp) == jlen;
    for (size_t i = jlen; ok && i < hlen; i++) ok = fputc(' ', fp) != EOF;
    free(json);
    for (size_t esize = 8; ok && esize >= 1; esize /= 2)
        for (int i = 0; ok && i < w->n; i++)
            if (hafm_dtype_size(w->t[i].dtype) == esize && w->t[i].nbytes)
                ok = fwrite(w->t[i].data, 1, w->t[i].nbytes, fp) == w->t[i].nbytes;
    if (!ok) {
        hafm_error("%s: write:", path);
        hafm_outfile_abort(of);
        return -1;
    }
    return hafm_outfile_commit(of);
}
