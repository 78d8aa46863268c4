/* stream_json.c - hafm stream messages as JSON lines and back (hafm-dump, hafm-from-json).
 *
 * A message becomes one JSON object with its keys in wire order, so unknown keys and unknown
 * message types show as they are. Numbers are printed exactly: integers in full (uint64 does
 * not fit a double), floats in the shortest form that reads back to the same value. JSON has no
 * NaN or infinities; they are written as the strings "NaN", "Infinity" and "-Infinity".
 */
#include "hafm/stream.h"
#include "hafm/stream_tools.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

/* ---- text building ----------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_need(sbuf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    b->p = hafm_xrealloc(b->p, cap);
    b->cap = cap;
}

static void sb_add(sbuf *b, const char *s, size_t n)
{
    sb_need(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Shortest decimal that reads back to the same double (or float when single). */
static void fmt_real(char *out, size_t cap, double v, int single)
{
    if (isnan(v)) { snprintf(out, cap, "\"NaN\""); return; }
    if (isinf(v)) { snprintf(out, cap, v > 0 ? "\"Infinity\"" : "\"-Infinity\""); return; }
    for (int prec = single ? 6 : 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (single ? (float)strtod(out, NULL) == (float)v : strtod(out, NULL) == v) break;
    }
    /* keep a float a float in JSON, so that it reads back as one */
    if (!strpbrk(out, ".eEn")) {
        size_t n = strlen(out);
        if (n + 2 < cap) memcpy(out + n, ".0", 3);
    }
}

/* UTF-8 as a JSON string: invalid sequences and NUL become U+FFFD, controls are escaped. */
static void sb_json_str(sbuf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            sb_add(b, e, 2);
            i++;
        } else if (c == 0) {
            sb_str(b, "\xef\xbf\xbd");
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_str(b, e);
            i++;
        } else if (c < 0x80) {
            sb_add(b, (const char *)p + i, 1);
            i++;
        } else {
            size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
            int ok = len && i + len <= n;
            uint32_t cp = c & (0x7f >> len);
            for (size_t k = 1; ok && k < len; k++) {
                if ((p[i + k] & 0xc0) != 0x80) ok = 0;
                cp = cp << 6 | (p[i + k] & 0x3f);
            }
            if (ok && ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
                       (cp >= 0xd800 && cp <= 0xdfff)))
                ok = 0;
            if (ok) {
                sb_add(b, (const char *)p + i, len);
                i += len;
            } else {
                sb_str(b, "\xef\xbf\xbd");
                i++;
            }
        }
    }
    sb_add(b, "\"", 1);
}

/* ---- msgpack -> JSON --------------------------------------------------------------------- */

static void obj_json(sbuf *b, const msgpack_object *o, int full)
{
    char num[64];
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: sb_str(b, "null"); break;
    case MSGPACK_OBJECT_BOOLEAN: sb_str(b, o->via.boolean ? "true" : "false"); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(num, sizeof num, "%llu", (unsigned long long)o->via.u64);
        sb_str(b, num);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)o->via.i64);
        sb_str(b, num);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        fmt_real(num, sizeof num, o->via.f64, o->type == MSGPACK_OBJECT_FLOAT32);
        sb_str(b, num);
        break;
    case MSGPACK_OBJECT_STR: sb_json_str(b, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN:
        if (full) {
            sb_str(b, "[");
            for (uint32_t i = 0; i < o->via.bin.size; i++) {
                snprintf(num, sizeof num, i ? ",%u" : "%u", (unsigned char)o->via.bin.ptr[i]);
                sb_str(b, num);
            }
            sb_str(b, "]");
        } else {
            snprintf(num, sizeof num, "\"<%u bytes>\"", o->via.bin.size);
            sb_str(b, num);
        }
        break;
    case MSGPACK_OBJECT_EXT:
        snprintf(num, sizeof num, "{\"ext\":%d,\"size\":%u}", o->via.ext.type, o->via.ext.size);
        sb_str(b, num);
        break;
    case MSGPACK_OBJECT_ARRAY:
        sb_str(b, "[");
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) sb_str(b, ",");
            obj_json(b, &o->via.array.ptr[i], full);
        }
        sb_str(b, "]");
        break;
    case MSGPACK_OBJECT_MAP:
        sb_str(b, "{");
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (i) sb_str(b, ",");
            if (k->type == MSGPACK_OBJECT_STR) {
                sb_json_str(b, k->via.str.ptr, k->via.str.size);
            } else if (k->type == MSGPACK_OBJECT_ARRAY || k->type == MSGPACK_OBJECT_MAP ||
                       k->type == MSGPACK_OBJECT_BIN || k->type == MSGPACK_OBJECT_EXT) {
                /* A container key is named, not rendered: rendering it as an escaped string
                 * re-escapes every nested level, doubling the text per level (a fuzzer found
                 * 20 nested map keys taking minutes). */
                const char *what = k->type == MSGPACK_OBJECT_ARRAY ? "\"<array key>\""
                                 : k->type == MSGPACK_OBJECT_MAP   ? "\"<map key>\""
                                 : k->type == MSGPACK_OBJECT_BIN   ? "\"<bin key>\"" : "\"<ext key>\"";
                sb_str(b, what);
            } else {
                /* JSON keys are strings: a scalar key is shown as its JSON text */
                sbuf kb = { 0 };
                obj_json(&kb, k, full);
                sb_json_str(b, kb.p, kb.len);
                free(kb.p);
            }
            sb_str(b, ":");
            obj_json(b, &o->via.map.ptr[i].val, full);
        }
        sb_str(b, "}");
        break;
    }
}

char *hafm_msgpack_json(const void *msgpack_obj, int full)
{
    sbuf b = { 0 };
    obj_json(&b, msgpack_obj, full);
    return b.p;
}

/* Element i of a little-endian payload as a double. */
static double elem(const uint8_t *p, hafm_dtype t, size_t i)
{
    switch (t) {
    case HAFM_DT_U8: return p[i];
    case HAFM_DT_I16: return (int16_t)(uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    case HAFM_DT_U16: return (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    case HAFM_DT_I32: {
        uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        return (int32_t)u;
    }
    case HAFM_DT_F16: return hafm_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    case HAFM_DT_BF16: return hafm_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    case HAFM_DT_F32: {
        uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case HAFM_DT_F64: {
        uint64_t u = 0;
        for (int k = 7; k >= 0; k--) u = u << 8 | p[8 * i + (size_t)k];
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
    default: return 0;
    }
}

double hafm_payload_elem(const void *payload, hafm_dtype t, size_t i) { return elem(payload, t, i); }

static void payload_json(sbuf *b, const hafm_event *ev, int full)
{
    const hafm_track *t = ev->track;
    size_t n = (size_t)ev->frames * hafm_track_frame_elems(t);
    char num[64];
    if (!full) {
        snprintf(num, sizeof num, "\"<%zu bytes>\"", ev->nbytes);
        sb_str(b, num);
        return;
    }
    int single = t->dtype != HAFM_DT_F64;
    int is_float = hafm_dtype_is_float(t->dtype);
    sb_need(b, n * 8);
    sb_str(b, "[");
    for (size_t i = 0; i < n; i++) {
        double v = elem(ev->data, t->dtype, i);
        if (i) sb_add(b, ",", 1);
        if (is_float) fmt_real(num, sizeof num, v, single);
        else snprintf(num, sizeof num, "%.0f", v);
        sb_str(b, num);
    }
    sb_str(b, "]");
}

/* min, max, mean of the finite values; the count of the others */
static void stats_json(sbuf *b, const hafm_event *ev)
{
    const hafm_track *t = ev->track;
    size_t n = (size_t)ev->frames * hafm_track_frame_elems(t), finite = 0;
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++) {
        double v = elem(ev->data, t->dtype, i);
        if (!isfinite(v)) continue;
        finite++;
        sum += v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    char num[64];
    sb_str(b, ",\"stats\":{");
    if (finite) {
        int is_float = hafm_dtype_is_float(t->dtype), single = t->dtype != HAFM_DT_F64;
        sb_str(b, "\"min\":");
        if (is_float) fmt_real(num, sizeof num, lo, single); else snprintf(num, sizeof num, "%.0f", lo);
        sb_str(b, num);
        sb_str(b, ",\"max\":");
        if (is_float) fmt_real(num, sizeof num, hi, single); else snprintf(num, sizeof num, "%.0f", hi);
        sb_str(b, num);
        sb_str(b, ",\"mean\":");
        fmt_real(num, sizeof num, sum / (double)finite, 0);
        sb_str(b, num);
    }
    if (finite < n) {
        snprintf(num, sizeof num, "%s\"nonfinite\":%zu", finite ? "," : "", n - finite);
        sb_str(b, num);
    }
    sb_str(b, "}");
}

char *hafm_event_json(const hafm_event *ev, int full)
{
    const msgpack_object *m = ev->raw;
    if (!m) {
        hafm_error("event without its message");
        return NULL;
    }
    if (ev->type != HAFM_EV_DATA || m->type != MSGPACK_OBJECT_MAP) return hafm_msgpack_json(m, full);
    sbuf b = { 0 };
    sb_str(&b, "{");
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (i) sb_str(&b, ",");
        obj_json(&b, &kv->key, full);
        sb_str(&b, ":");
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 7 && !memcmp(kv->key.via.str.ptr, "payload", 7))
            payload_json(&b, ev, full);
        else
            obj_json(&b, &kv->val, full);
    }
    if (!full && ev->frames > 0) stats_json(&b, ev);
    sb_str(&b, "}");
    return b.p;
}

/* ---- JSON -> msgpack (hafm-from-json) ---------------------------------------------------- */

struct hafm_json_packer {
    FILE *fp;
    msgpack_packer pk;
    int werr;
    int64_t line;
    struct { int used; hafm_dtype dtype; size_t elems; } *ids;   /* tracks of the current item */
};

static int jp_write(void *data, const char *buf, size_t len)
{
    hafm_json_packer *p = data;
    if (p->werr) return -1;
    if (len && fwrite(buf, 1, len, p->fp) != len) {
        p->werr = 1;
        return -1;
    }
    return 0;
}

hafm_json_packer *hafm_json_packer_open(FILE *fp)
{
    hafm_json_packer *p = hafm_xcalloc(1, sizeof *p);
    p->fp = fp;
    p->ids = hafm_xcalloc(65536, sizeof *p->ids);
    msgpack_packer_init(&p->pk, p, jp_write);
    return p;
}

void hafm_json_packer_free(hafm_json_packer *p)
{
    if (!p) return;
    free(p->ids);
    free(p);
}

static int special_real(const cJSON *j, double *v)
{
    if (!cJSON_IsString(j)) return 0;
    if (!strcmp(j->valuestring, "NaN")) *v = NAN;
    else if (!strcmp(j->valuestring, "Infinity")) *v = INFINITY;
    else if (!strcmp(j->valuestring, "-Infinity")) *v = -INFINITY;
    else return 0;
    return 1;
}

/* Integral numbers in the exact range of a double become integers, the rest floats. */
static void pack_json(hafm_json_packer *p, const cJSON *j)
{
    msgpack_packer *pk = &p->pk;
    if (cJSON_IsNull(j)) msgpack_pack_nil(pk);
    else if (cJSON_IsTrue(j)) msgpack_pack_true(pk);
    else if (cJSON_IsFalse(j)) msgpack_pack_false(pk);
    else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
            if (v >= 0) msgpack_pack_uint64(pk, (uint64_t)v);
            else msgpack_pack_int64(pk, (int64_t)v);
        } else {
            msgpack_pack_double(pk, v);
        }
    } else if (cJSON_IsString(j)) {
        size_t n = strlen(j->valuestring);
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, j->valuestring, n);
    } else if (cJSON_IsArray(j)) {
        msgpack_pack_array(pk, (size_t)cJSON_GetArraySize(j));
        for (const cJSON *c = j->child; c; c = c->next) pack_json(p, c);
    } else if (cJSON_IsObject(j)) {
        msgpack_pack_map(pk, (size_t)cJSON_GetArraySize(j));
        for (const cJSON *c = j->child; c; c = c->next) {
            size_t n = strlen(c->string);
            msgpack_pack_str(pk, n);
            msgpack_pack_str_body(pk, c->string, n);
            pack_json(p, c);
        }
    } else {
        msgpack_pack_nil(pk);
    }
}

static void store_elem(uint8_t *o, hafm_dtype t, double v)
{
    uint32_t u = 0;
    switch (t) {
    case HAFM_DT_U8: o[0] = (uint8_t)v; return;
    case HAFM_DT_I16: case HAFM_DT_U16: u = (uint16_t)(int32_t)v; o[0] = (uint8_t)u; o[1] = (uint8_t)(u >> 8); return;
    case HAFM_DT_I32: u = (uint32_t)(int32_t)v; break;
    case HAFM_DT_F16: u = hafm_f32_to_f16((float)v); o[0] = (uint8_t)u; o[1] = (uint8_t)(u >> 8); return;
    case HAFM_DT_BF16: u = hafm_f32_to_bf16((float)v); o[0] = (uint8_t)u; o[1] = (uint8_t)(u >> 8); return;
    case HAFM_DT_F32: { float f = (float)v; memcpy(&u, &f, 4); break; }
    case HAFM_DT_F64: {
        uint64_t q;
        memcpy(&q, &v, 8);
        for (int k = 0; k < 8; k++) o[k] = (uint8_t)(q >> (8 * k));
        return;
    }
    default: return;
    }
    for (int k = 0; k < 4; k++) o[k] = (uint8_t)(u >> (8 * k));
}

/* Value range of an integer dtype; floats accept anything. */
static int fits(hafm_dtype t, double v)
{
    switch (t) {
    case HAFM_DT_U8: return v == floor(v) && v >= 0 && v <= 255;
    case HAFM_DT_I16: return v == floor(v) && v >= -32768 && v <= 32767;
    case HAFM_DT_U16: return v == floor(v) && v >= 0 && v <= 65535;
    case HAFM_DT_I32: return v == floor(v) && v >= -2147483648.0 && v <= 2147483647.0;
    default: return 1;
    }
}

HAFM_PRINTF(2, 3) static int jfail(hafm_json_packer *p, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hafm_error("line %lld: %s", (long long)p->line, msg);
    return -1;
}

/* A data message whose payload is an array of values: packed in the dtype of its track. */
static int pack_data(hafm_json_packer *p, const cJSON *j, const cJSON *payload)
{
    const cJSON *track = cJSON_GetObjectItemCaseSensitive(j, "track");
    if (!cJSON_IsNumber(track) || track->valuedouble < 0 || track->valuedouble > 65535 ||
        track->valuedouble != floor(track->valuedouble) || !p->ids[(int)track->valuedouble].used)
        return jfail(p, "data message: 'track' is not the id of a track declared earlier in the item");
    int id = (int)track->valuedouble;
    hafm_dtype t = p->ids[id].dtype;
    size_t n = (size_t)cJSON_GetArraySize(payload), es = hafm_dtype_size(t);
    uint8_t *bytes = hafm_xmalloc(n * es + 1);
    size_t i = 0;
    for (const cJSON *c = payload->child; c; c = c->next, i++) {
        double v = 0;
        if (!cJSON_IsNumber(c) && !special_real(c, &v)) {
            free(bytes);
            return jfail(p, "data message: payload value %zu is not a number", i);
        }
        if (cJSON_IsNumber(c)) v = c->valuedouble;
        if (!fits(t, v)) {
            free(bytes);
            return jfail(p, "data message: payload value %zu (%g) does not fit dtype %s", i, v, hafm_dtype_name(t));
        }
        store_elem(bytes + i * es, t, v);
    }
    int size = 0;
    for (const cJSON *c = j->child; c; c = c->next) size += strcmp(c->string, "stats") != 0;
    msgpack_pack_map(&p->pk, (size_t)size);
    for (const cJSON *c = j->child; c; c = c->next) {
        if (!strcmp(c->string, "stats")) continue;
        size_t kn = strlen(c->string);
        msgpack_pack_str(&p->pk, kn);
        msgpack_pack_str_body(&p->pk, c->string, kn);
        if (c == payload) {
            msgpack_pack_bin(&p->pk, n * es);
            msgpack_pack_bin_body(&p->pk, bytes, n * es);
        } else {
            pack_json(p, c);
        }
    }
    free(bytes);
    return 0;
}

int hafm_json_packer_line(hafm_json_packer *p, const char *line, size_t len)
{
    p->line++;
    size_t k = 0;
    while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n')) k++;
    if (k == len) return 0;   /* blank line */
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!j) return jfail(p, "not valid JSON");
    for (; end && end < line + len; end++)
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            cJSON_Delete(j);
            return jfail(p, "text after the JSON object");
        }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return jfail(p, "a message must be a JSON object");
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    const char *ts = cJSON_IsString(type) ? type->valuestring : "";
    int rc = 0;
    if (!strcmp(ts, "item")) {
        memset(p->ids, 0, 65536 * sizeof *p->ids);
    } else if (!strcmp(ts, "track")) {
        /* remember the dtype and frame size of each id, for data payloads given as values */
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
        if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble <= 65535 && cJSON_IsString(dt)) {
            int i = (int)id->valuedouble;
            p->ids[i].used = 1;
            hafm_dtype t = hafm_dtype_from_name(dt->valuestring);
            /* the element types of streams only: safetensors' i64 and bool are not among them */
            p->ids[i].dtype = t == HAFM_DT_I64 || t == HAFM_DT_BOOL ? HAFM_DT_INVALID : t;
            /* a frame larger than any stream may carry leaves the id unknown, so its data is refused */
            const double max_frame_elems = 1u << 30;
            double elems = 1;
            if (cJSON_IsArray(shape))
                for (const cJSON *c = shape->child; c; c = c->next)
                    if (cJSON_IsNumber(c) && c->valuedouble >= 1) elems *= c->valuedouble;
            p->ids[i].elems = elems <= max_frame_elems ? (size_t)elems : 0;
            if (!p->ids[i].dtype || !p->ids[i].elems) p->ids[i].used = 0;
        }
    }
    const cJSON *payload = !strcmp(ts, "data") ? cJSON_GetObjectItemCaseSensitive(j, "payload") : NULL;
    if (payload && cJSON_IsString(payload)) {
        rc = jfail(p, "data message: the payload is a summary (%s); dump with --full", payload->valuestring);
    } else if (payload && cJSON_IsArray(payload)) {
        rc = pack_data(p, j, payload);
    } else {
        pack_json(p, j);
    }
    cJSON_Delete(j);
    if (rc == 0 && p->werr) {
        hafm_error("write error:");
        rc = -1;
    }
    return rc < 0 ? -1 : 1;
}
