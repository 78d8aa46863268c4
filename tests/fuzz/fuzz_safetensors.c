/* fuzz_safetensors.c - libFuzzer target: hafm_st_open_mem on arbitrary bytes, then every
 * accessor and a float read of every tensor that has a float type. Any crash, sanitizer report
 * or read outside the input is a finding. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hafm/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The input is copied to end exactly at an inaccessible page: cJSON is a system library
     * without ASan instrumentation, and a read past the end by it must still fault. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE), span = (size + page - 1) / page * page;
    uint8_t *region = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) return 0;
    mprotect(region + span, page, PROT_NONE);
    uint8_t *buf = region + span - size;
    memcpy(buf, data, size);
    hafm_safetensors *st = hafm_st_open_mem(buf, size, "fuzz.safetensors");
    if (!st) {
        volatile size_t n = strlen(hafm_last_error());
        (void)n;
        munmap(region, span + page);
        return 0;
    }
    for (int i = 0; i < hafm_st_meta_count(st); i++) {
        const char *k = hafm_st_meta_key(st, i);
        if (!k || !hafm_st_meta(st, k)) abort();
    }
    for (int i = 0; i < hafm_st_count(st); i++) {
        const hafm_st_tensor *t = hafm_st_get(st, i);
        if (hafm_st_find(st, t->name) == NULL) abort();
        if (!hafm_dtype_is_float(t->dtype) || t->numel > (1 << 22)) continue;
        float *f = hafm_st_load_f32(st, t->name, t->ndim, t->shape);
        if (!f) abort();   /* a validated float tensor must be readable */
        free(f);
        int64_t wrong[HAFM_ST_MAX_DIMS + 1] = {0};
        if (hafm_st_load_f32(st, t->name, t->ndim + 1, wrong) != NULL) abort();
    }
    hafm_st_close(st);
    munmap(region, span + page);
    return 0;
}
