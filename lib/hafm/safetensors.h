/* hafm/safetensors.h - safetensors files (https://github.com/huggingface/safetensors).
 *
 * Reading mmaps the file and validates it strictly: header length within the file, JSON
 * parses, every entry has a known dtype, shape x dtype size == byte range, ranges lie inside
 * the data section, no two ranges overlap. Writing is atomic (temporary file + rename).
 */
#ifndef HAFM_SAFETENSORS_H
#define HAFM_SAFETENSORS_H

#include "common.h"

#define HAFM_ST_MAX_DIMS 8

typedef struct {
    const char *name;
    hafm_dtype dtype;                 /* F32, F16, BF16, F64, I64, I32, I16, U8, BOOL */
    int ndim;
    int64_t shape[HAFM_ST_MAX_DIMS];
    int64_t numel;
    const void *data;                 /* into the mapping; may be unaligned only if the file is */
    size_t nbytes;
} hafm_st_tensor;

typedef struct hafm_safetensors hafm_safetensors;

hafm_safetensors *hafm_st_open(const char *path);      /* NULL + error naming the defect */
/* Same over a caller-owned buffer (kept alive until close); name is used in messages. */
hafm_safetensors *hafm_st_open_mem(const void *buf, size_t nbytes, const char *name);
void hafm_st_close(hafm_safetensors *st);
const char *hafm_st_path(const hafm_safetensors *st);
int hafm_st_count(const hafm_safetensors *st);
const hafm_st_tensor *hafm_st_get(const hafm_safetensors *st, int index);  /* file order */
const hafm_st_tensor *hafm_st_find(const hafm_safetensors *st, const char *name);
/* __metadata__ values (safetensors metadata is string -> string). NULL if absent. */
const char *hafm_st_meta(const hafm_safetensors *st, const char *key);
int hafm_st_meta_count(const hafm_safetensors *st);
const char *hafm_st_meta_key(const hafm_safetensors *st, int index);

/* Copies tensor `name` converted to float32 into out (numel floats), after checking that it
 * exists and has exactly the given shape (ndim dims). Error messages name the tensor:
 * "x.safetensors: tensor 'encoder.model.0.conv.conv.weight_v': expected shape [32,1,7], got [32,1,5]". */
int hafm_st_read_f32(const hafm_safetensors *st, const char *name, float *out, int ndim, const int64_t *shape);
/* Same, allocating; NULL on failure. */
float *hafm_st_load_f32(const hafm_safetensors *st, const char *name, int ndim, const int64_t *shape);
/* Shape check alone. */
int hafm_st_check_shape(const hafm_safetensors *st, const hafm_st_tensor *t, int ndim, const int64_t *shape);

/* ---- writing ----------------------------------------------------------------------------- */
typedef struct hafm_st_writer hafm_st_writer;
hafm_st_writer *hafm_st_writer_new(void);
/* Copies the data. dtype F32/F16/BF16/I32/I64/...; data in that dtype, little-endian. */
int hafm_st_writer_add(hafm_st_writer *w, const char *name, hafm_dtype dtype, int ndim,
                       const int64_t *shape, const void *data);
/* Adds float data stored as dtype (F32, F16 or BF16: converted, round to nearest even). */
int hafm_st_writer_add_f32(hafm_st_writer *w, const char *name, hafm_dtype stored_as, int ndim,
                           const int64_t *shape, const float *data);
int hafm_st_writer_meta(hafm_st_writer *w, const char *key, const char *value);
/* Writes atomically (temporary + rename). The JSON lists tensors in insertion order; the data are
 * grouped by element size (largest first) with no gap bytes, so every tensor is aligned to its
 * element size and the reference reader (which rejects gaps) accepts the file. */
int hafm_st_writer_save(hafm_st_writer *w, const char *path);
void hafm_st_writer_free(hafm_st_writer *w);

#endif
