/* mdxnet.c - MDX-Net compiled from its ONNX graph, and UVR's chunked separation (hafm/mdxnet.h). */
#include "hafm/mdxnet.h"
#include "hafm/audio.h"
#include "hafm/linalg.h"
#include "hafm/onnx.h"
#include "hafm/stft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ST_CONV, ST_CONVT, ST_MATMUL, ST_ADD, ST_MUL, ST_RELU, ST_TRANSPOSE, ST_AFFINE,
               ST_BIAS_LAST } step_kind;

/* One compiled step. Tensors are [C, H, W] (batch 1, dropped). The epilogue applies
 * y = y * scale[c] + shift[c] (either may be NULL) and then max(y, 0) when relu is set. */
typedef struct {
    step_kind kind;
    int in0, in1, out;             /* value slots */
    int co, ci, kh, kw, sh, sw, ph, pw;
    float *w;                      /* Conv [co, ci*kh*kw]; ConvT [ci, co*kh*kw]; MatMul [kin, kout]; BIAS_LAST [kout] */
    int kin, kout;
    float *scale, *shift;          /* [co] per channel (axis 0) */
    int relu;
} step;

typedef struct {
    float *data;
    size_t cap;                    /* floats allocated */
    int c, h, w;
    int uses;                      /* remaining consumers in the current run */
} value;

/* Freed activations are kept for reuse: the same few sizes recur at every level, and fresh
 * 64 MiB allocations would be returned to the system and faulted in again at every step. */
typedef struct {
    float *p;
    size_t n;
} pool_block;

struct hafm_mdx {
    pool_block *pool;
    int npool, pool_cap;
    step *steps;
    int nsteps;
    int nslots;
    int *slot_uses;                /* consumers of each slot over a whole run */
    int input_slot, output_slot;
    int dim_f, dim_t;
    value *vals;
};

void hafm_mdx_defaults(hafm_mdx_params *p) {
    p->n_fft = 6144;
    p->hop = 1024;
    p->dim_t = 0;
    p->compensate = 1.035;
    p->overlap = 0;
    p->denoise = 0;
    p->zero_low_bins = 3;
}

/* ---- compilation --------------------------------------------------------------------------- */

typedef struct {
    const char **names;
    int *slot;
    int n, cap;
} name_map;

static int map_find(const name_map *nm, const char *name) {
    for (int i = nm->n - 1; i >= 0; i--)
        if (strcmp(nm->names[i], name) == 0) return nm->slot[i];
    return -1;
}

static void map_add(name_map *nm, const char *name, int slot) {
    if (nm->n == nm->cap) {
        nm->cap = nm->cap ? 2 * nm->cap : 256;
        nm->names = hafm_xrealloc(nm->names, (size_t)nm->cap * sizeof *nm->names);
        nm->slot = hafm_xrealloc(nm->slot, (size_t)nm->cap * sizeof *nm->slot);
    }
    nm->names[nm->n] = name;
    nm->slot[nm->n++] = slot;
}

/* number of nodes reading a value name (graph outputs count as readers) */
static int consumers(const hafm_onnx *o, const char *name) {
    int c = 0;
    for (int i = 0; i < hafm_onnx_num_nodes(o); i++) {
        const hafm_onnx_node *n = hafm_onnx_node_at(o, i);
        for (int j = 0; j < n->nin; j++) c += strcmp(n->in[j], name) == 0;
    }
    for (int i = 0; i < hafm_onnx_num_outputs(o); i++) {
        int nd;
        int64_t d[HAFM_ONNX_MAX_DIMS];
        c += strcmp(hafm_onnx_io(o, 1, i, &nd, d), name) == 0;
    }
    return c;
}

static float *copy_floats(const float *src, int64_t n) {
    float *p = hafm_aligned_alloc((size_t)(n ? n : 1) * sizeof(float));
    memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

static const hafm_onnx_tensor *need_init(const hafm_onnx *o, const hafm_onnx_node *n, int idx,
                                         int ndim, int64_t numel) {
    const hafm_onnx_tensor *t = idx < n->nin && n->in[idx][0] ? hafm_onnx_initializer(o, n->in[idx]) : NULL;
    if (!t || (ndim && t->ndim != ndim) || (numel >= 0 && t->numel != numel)) {
        hafm_error("node '%s' (%s): input %d is not a constant of the expected shape", n->name, n->op, idx);
        return NULL;
    }
    return t;
}

static int ints_attr(const hafm_onnx_node *n, const char *name, int64_t *v, int count, int64_t dflt) {
    int64_t tmp[8];
    int got = hafm_onnx_attr_ints(n, name, tmp, 8);
    if (got < 0) return -1;
    if (got == 0) {
        for (int i = 0; i < count; i++) v[i] = dflt;
        return 0;
    }
    if (got != count) {
        hafm_error("node '%s' (%s): attribute '%s' has %d values, expected %d", n->name, n->op, name, got, count);
        return -1;
    }
    memcpy(v, tmp, (size_t)count * sizeof(int64_t));
    return 0;
}

static int conv_geometry(step *s, const hafm_onnx_node *n, int transposed) {
    int64_t strides[2], pads[4], dil[2], group = 1;
    if (ints_attr(n, "strides", strides, 2, 1) < 0 || ints_attr(n, "pads", pads, 4, 0) < 0 ||
        ints_attr(n, "dilations", dil, 2, 1) < 0 || hafm_onnx_attr_int(n, "group", &group) < 0)
        return -1;
    int64_t tmp[4];
    if (dil[0] != 1 || dil[1] != 1 || group != 1 || pads[0] != pads[2] || pads[1] != pads[3] ||
        (transposed && (hafm_onnx_attr_ints(n, "output_padding", tmp, 4) > 0 ||
                        hafm_onnx_attr_ints(n, "output_shape", tmp, 4) > 0 ||
                        pads[0] || pads[1] || strides[0] != s->kh || strides[1] != s->kw))) {
        hafm_error("node '%s' (%s): unsupported dilation, group, padding or stride", n->name, n->op);
        return -1;
    }
    s->sh = (int)strides[0];
    s->sw = (int)strides[1];
    s->ph = (int)pads[0];
    s->pw = (int)pads[1];
    if (s->sh < 1 || s->sw < 1 || s->ph < 0 || s->pw < 0) {
        hafm_error("node '%s' (%s): bad stride or padding", n->name, n->op);
        return -1;
    }
    return 0;
}

/* BatchNormalization inputs as a per-channel scale/shift: y = x * s + t. */
static int bn_affine(const hafm_onnx *o, const hafm_onnx_node *n, float **scale, float **shift, int *count) {
    const hafm_onnx_tensor *g = need_init(o, n, 1, 1, -1);
    if (!g) return -1;
    int64_t c = g->numel;
    const hafm_onnx_tensor *b = need_init(o, n, 2, 1, c), *mu = need_init(o, n, 3, 1, c),
                           *var = need_init(o, n, 4, 1, c);
    if (!b || !mu || !var) return -1;
    float eps = 1e-5f;
    if (hafm_onnx_attr_float(n, "epsilon", &eps) < 0) return -1;
    *scale = hafm_aligned_alloc((size_t)c * sizeof(float));
    *shift = hafm_aligned_alloc((size_t)c * sizeof(float));
    for (int64_t i = 0; i < c; i++) {
        double s = (double)g->data[i] / sqrt((double)var->data[i] + (double)eps);
        (*scale)[i] = (float)s;
        (*shift)[i] = (float)((double)b->data[i] - (double)mu->data[i] * s);
    }
    *count = (int)c;
    return 0;
}

static step *new_step(hafm_mdx *m, step_kind kind) {
    m->steps = hafm_xrealloc(m->steps, (size_t)(m->nsteps + 1) * sizeof(step));
    step *s = &m->steps[m->nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->in1 = -1;
    s->out = m->nslots++;
    return s;
}

/* the step that produced slot, if its output has exactly one consumer */
static step *sole_producer(hafm_mdx *m, const hafm_onnx *o, int slot, const char *name) {
    if (consumers(o, name) != 1) return NULL;
    for (int i = m->nsteps - 1; i >= 0; i--)
        if (m->steps[i].out == slot) return &m->steps[i];
    return NULL;
}

static int compile_node(hafm_mdx *m, const hafm_onnx *o, const hafm_onnx_node *n, name_map *nm) {
    const char *op = n->op;
    if (n->nin < 1 || n->nout < 1) {
        hafm_error("node '%s' (%s): missing inputs or outputs", n->name, op);
        return -1;
    }
    int x = map_find(nm, n->in[0]);
    if (x < 0 && strcmp(op, "MatMul") != 0) {
        hafm_error("node '%s' (%s): input '%s' is not computed by the graph", n->name, op, n->in[0]);
        return -1;
    }
    if (strcmp(op, "Identity") == 0) {
        map_add(nm, n->out[0], x);
        return 0;
    }
    if (strcmp(op, "Relu") == 0) {
        step *p = sole_producer(m, o, x, n->in[0]);
        if (p && !p->relu && p->kind != ST_TRANSPOSE) {
            p->relu = 1;
            map_add(nm, n->out[0], x);
            return 0;
        }
        step *s = new_step(m, ST_RELU);
        s->in0 = x;
        s->relu = 1;
        map_add(nm, n->out[0], s->out);
        return 0;
    }
    if (strcmp(op, "BatchNormalization") == 0) {
        float *scale, *shift;
        int c;
        if (bn_affine(o, n, &scale, &shift, &c) < 0) return -1;
        step *p = sole_producer(m, o, x, n->in[0]);
        if (p && !p->relu && (p->kind == ST_CONV || p->kind == ST_CONVT) && p->co == c && !p->scale) {
            /* fold: W' = W * s (per output channel), b' = b * s + t */
            int per = p->ci * p->kh * p->kw;
            for (int oc = 0; oc < c; oc++) {
                if (p->kind == ST_CONV)
                    for (int j = 0; j < per; j++) p->w[(size_t)oc * per + j] *= scale[oc];
                else
                    for (int ic = 0; ic < p->ci; ic++)
                        for (int j = 0; j < p->kh * p->kw; j++)
                            p->w[((size_t)ic * c + oc) * p->kh * p->kw + j] *= scale[oc];
                p->shift[oc] = p->shift[oc] * scale[oc] + shift[oc];
            }
            free(scale);
            free(shift);
            map_add(nm, n->out[0], x);
            return 0;
        }
        if (p && !p->relu && !p->scale && (p->kind == ST_MATMUL || p->kind == ST_BIAS_LAST)) {
            p->scale = scale;
            p->shift = shift;
            p->co = c;
            map_add(nm, n->out[0], x);
            return 0;
        }
        step *s = new_step(m, ST_AFFINE);
        s->in0 = x;
        s->scale = scale;
        s->shift = shift;
        s->co = c;
        map_add(nm, n->out[0], s->out);
        return 0;
    }
    if (strcmp(op, "Conv") == 0 || strcmp(op, "ConvTranspose") == 0) {
        int tr = op[4] == 'T';
        const hafm_onnx_tensor *w = need_init(o, n, 1, 4, -1);
        if (!w) return -1;
        step *s = new_step(m, tr ? ST_CONVT : ST_CONV);
        s->in0 = x;
        s->co = (int)(tr ? w->dims[1] : w->dims[0]);
        s->ci = (int)(tr ? w->dims[0] : w->dims[1]);
        s->kh = (int)w->dims[2];
        s->kw = (int)w->dims[3];
        if (conv_geometry(s, n, tr) < 0) return -1;
        s->w = copy_floats(w->data, w->numel);
        s->shift = hafm_aligned_alloc((size_t)s->co * sizeof(float));
        if (n->nin > 2 && n->in[2][0]) {
            const hafm_onnx_tensor *b = need_init(o, n, 2, 1, s->co);
            if (!b) return -1;
            memcpy(s->shift, b->data, (size_t)s->co * sizeof(float));
        } else {
            memset(s->shift, 0, (size_t)s->co * sizeof(float));
        }
        map_add(nm, n->out[0], s->out);
        return 0;
    }
    if (strcmp(op, "MatMul") == 0) {
        const hafm_onnx_tensor *w = need_init(o, n, 1, 2, -1);
        if (!w || x < 0) {
            if (w) hafm_error("node '%s' (MatMul): input '%s' is not computed by the graph", n->name, n->in[0]);
            return -1;
        }
        step *s = new_step(m, ST_MATMUL);
        s->in0 = x;
        s->kin = (int)w->dims[0];
        s->kout = (int)w->dims[1];
        s->w = copy_floats(w->data, w->numel);
        map_add(nm, n->out[0], s->out);
        return 0;
    }
    if (strcmp(op, "Add") == 0 || strcmp(op, "Mul") == 0) {
        if (n->nin != 2) {
            hafm_error("node '%s' (%s): expected 2 inputs", n->name, op);
            return -1;
        }
        int y = map_find(nm, n->in[1]);
        const hafm_onnx_tensor *b = y < 0 ? hafm_onnx_initializer(o, n->in[1]) : NULL;
        if (op[0] == 'A' && b && b->ndim == 1) {   /* Linear bias on the last axis */
            step *s = new_step(m, ST_BIAS_LAST);
            s->in0 = x;
            s->kout = (int)b->numel;
            s->w = copy_floats(b->data, b->numel);
            map_add(nm, n->out[0], s->out);
            return 0;
        }
        if (y < 0) {
            hafm_error("node '%s' (%s): broadcasting a constant is not part of MDX-Net", n->name, op);
            return -1;
        }
        step *s = new_step(m, op[0] == 'A' ? ST_ADD : ST_MUL);
        s->in0 = x;
        s->in1 = y;
        map_add(nm, n->out[0], s->out);
        return 0;
    }
    if (strcmp(op, "Transpose") == 0) {
        int64_t perm[4];
        int got = hafm_onnx_attr_ints(n, "perm", perm, 4);
        if (got != 4 || perm[0] != 0 || perm[1] != 1 || perm[2] != 3 || perm[3] != 2) {
            hafm_error("node '%s' (Transpose): only perm [0,1,3,2] is part of MDX-Net", n->name);
            return -1;
        }
        step *s = new_step(m, ST_TRANSPOSE);
        s->in0 = x;
        map_add(nm, n->out[0], s->out);
        return 0;
    }
    hafm_error("unsupported ONNX op '%s' (node '%s'): not an MDX-Net (TFC-TDF U-Net) graph", op, n->name);
    return -1;
}

static void free_steps(hafm_mdx *m) {
    for (int i = 0; i < m->nsteps; i++) {
        free(m->steps[i].w);
        free(m->steps[i].scale);
        free(m->steps[i].shift);
    }
    free(m->steps);
    m->steps = NULL;
    m->nsteps = 0;
}

hafm_mdx *hafm_mdx_load(const char *path) {
    hafm_onnx *o = hafm_onnx_load(path);
    if (!o) return NULL;
    hafm_mdx *m = hafm_xcalloc(1, sizeof *m);
    name_map nm = { 0 };
    int ndim;
    int64_t dims[HAFM_ONNX_MAX_DIMS];
    if (hafm_onnx_num_inputs(o) != 1 || hafm_onnx_num_outputs(o) != 1) {
        hafm_error("%s: not an MDX-Net model (expected one input and one output)", path);
        goto fail;
    }
    const char *in_name = hafm_onnx_io(o, 0, 0, &ndim, dims);
    if (ndim != 4 || dims[1] != 4 || dims[2] < 32 || dims[2] % 32 != 0 || dims[3] == 0) {
        hafm_error("%s: not an MDX-Net model (input must be [batch, 4, dim_f, dim_t])", path);
        goto fail;
    }
    m->dim_f = (int)dims[2];
    m->dim_t = dims[3] > 0 ? (int)dims[3] : 0;
    m->input_slot = m->nslots++;
    map_add(&nm, in_name, m->input_slot);
    for (int i = 0; i < hafm_onnx_num_nodes(o); i++)
        if (compile_node(m, o, hafm_onnx_node_at(o, i), &nm) < 0) {
            hafm_error_prefix("%s", path);
            goto fail;
        }
    const char *out_name = hafm_onnx_io(o, 1, 0, &ndim, dims);
    m->output_slot = map_find(&nm, out_name);
    if (m->output_slot < 0 || m->output_slot == m->input_slot) {
        hafm_error("%s: the graph output '%s' is not computed", path, out_name);
        goto fail;
    }
    m->slot_uses = hafm_xcalloc((size_t)m->nslots, sizeof(int));
    for (int i = 0; i < m->nsteps; i++) {
        m->slot_uses[m->steps[i].in0]++;
        if (m->steps[i].in1 >= 0) m->slot_uses[m->steps[i].in1]++;
    }
    m->slot_uses[m->output_slot]++;
    m->vals = hafm_xcalloc((size_t)m->nslots, sizeof(value));
    free(nm.names);
    free(nm.slot);
    hafm_onnx_free(o);
    return m;
fail:
    free(nm.names);
    free(nm.slot);
    hafm_onnx_free(o);
    hafm_mdx_free(m);
    return NULL;
}

void hafm_mdx_free(hafm_mdx *m) {
    if (!m) return;
    free_steps(m);
    free(m->vals);
    free(m->slot_uses);
    for (int i = 0; i < m->npool; i++) free(m->pool[i].p);
    free(m->pool);
    free(m);
}

int hafm_mdx_dim_f(const hafm_mdx *m) { return m->dim_f; }
int hafm_mdx_dim_t(const hafm_mdx *m) { return m->dim_t; }
int hafm_mdx_steps(const hafm_mdx *m) { return m->nsteps; }

/* ---- kernels ------------------------------------------------------------------------------- */

/* y[c, i] = y * scale[c] + shift[c], then ReLU; y [C, n] */
static void epilogue(float *y, int C, int64_t n, const float *scale, const float *shift, int relu) {
    if (!scale && !shift && !relu) return;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float s = scale ? scale[c] : 1.0f, t = shift ? shift[c] : 0.0f;
        float *p = y + (size_t)c * n;
        if (relu)
            for (int64_t i = 0; i < n; i++) { float v = p[i] * s + t; p[i] = v > 0 ? v : 0; }
        else
            for (int64_t i = 0; i < n; i++) p[i] = p[i] * s + t;
    }
}

/* Conv2d, cross-correlation with zero padding: out [co, Ho, Wo], in [ci, H, W]. im2col by blocks
 * of output rows, so the column buffer stays a few MB at any input size. */
static void conv_forward(const step *s, float *out, const float *in, int H, int W, int Ho, int Wo) {
    const int K = s->ci * s->kh * s->kw;
    if (s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 && s->pw == 0) {
        hafm_sgemm(0, 0, s->co, H * W, s->ci, 1.0f, s->w, K, in, H * W, 0.0f, out, H * W);
        return;
    }
    int64_t per_row = (int64_t)K * Wo;
    int rows = (int)((1 << 21) / (per_row > 0 ? per_row : 1));
    if (rows < 1) rows = 1;
    if (rows > Ho) rows = Ho;
    float *cols = hafm_aligned_alloc((size_t)per_row * rows * sizeof(float));
    for (int r0 = 0; r0 < Ho; r0 += rows) {
        int nr = Ho - r0 < rows ? Ho - r0 : rows;
        int64_t N = (int64_t)nr * Wo;
#pragma omp parallel for collapse(2) schedule(static)
        for (int ci = 0; ci < s->ci; ci++)
            for (int k = 0; k < s->kh * s->kw; k++) {
                int ky = k / s->kw, kx = k % s->kw;
                float *dst = cols + ((size_t)ci * s->kh * s->kw + k) * N;
                const float *src = in + (size_t)ci * H * W;
                for (int r = 0; r < nr; r++) {
                    int iy = (r0 + r) * s->sh - s->ph + ky;
                    float *d = dst + (size_t)r * Wo;
                    if (iy < 0 || iy >= H) {
                        memset(d, 0, (size_t)Wo * sizeof(float));
                        continue;
                    }
                    const float *srow = src + (size_t)iy * W;
                    if (s->sw == 1) {
                        int lo = s->pw - kx, x0 = lo > 0 ? lo : 0;              /* first valid ox */
                        int x1 = W + s->pw - kx < Wo ? W + s->pw - kx : Wo;     /* end of valid ox */
                        for (int ox = 0; ox < x0 && ox < Wo; ox++) d[ox] = 0;
                        if (x1 > x0) memcpy(d + x0, srow + x0 - s->pw + kx, (size_t)(x1 - x0) * sizeof(float));
                        for (int ox = x1 > x0 ? x1 : x0; ox < Wo; ox++) d[ox] = 0;
                    } else {
                        for (int ox = 0; ox < Wo; ox++) {
                            int ix = ox * s->sw - s->pw + kx;
                            d[ox] = ix >= 0 && ix < W ? srow[ix] : 0.0f;
                        }
                    }
                }
            }
        hafm_sgemm(0, 0, s->co, (int)N, K, 1.0f, s->w, K, cols, (int)N, 0.0f,
                   out + (size_t)r0 * Wo, Ho * Wo);
    }
    free(cols);
}

/* ConvTranspose with kernel == stride, no padding: out[o, kh*i+a, kw*j+b] = sum_ci x[ci,i,j] W[ci,o,a,b] */
static void convt_forward(const step *s, float *out, const float *in, int H, int W) {
    const int kk = s->kh * s->kw, Ho = H * s->kh, Wo = W * s->kw;
    const int64_t HW = (int64_t)H * W;
    float *tmp = hafm_aligned_alloc((size_t)s->co * kk * HW * sizeof(float));
    hafm_sgemm(1, 0, s->co * kk, (int)HW, s->ci, 1.0f, s->w, s->co * kk, in, (int)HW, 0.0f, tmp, (int)HW);
#pragma omp parallel for collapse(2) schedule(static)
    for (int o = 0; o < s->co; o++)
        for (int i = 0; i < H; i++)
            for (int a = 0; a < s->kh; a++)
                for (int b = 0; b < s->kw; b++) {
                    const float *src = tmp + ((size_t)o * kk + a * s->kw + b) * HW + (size_t)i * W;
                    float *dst = out + ((size_t)o * Ho + (size_t)i * s->kh + a) * Wo + b;
                    for (int j = 0; j < W; j++) dst[(size_t)j * s->kw] = src[j];
                }
    free(tmp);
}

/* ---- execution ----------------------------------------------------------------------------- */

/* a buffer of at least *n floats; *n becomes its capacity */
static float *pool_get(hafm_mdx *m, size_t *n) {
    int best = -1;
    for (int i = 0; i < m->npool; i++)
        if (m->pool[i].n >= *n && (best < 0 || m->pool[i].n < m->pool[best].n)) best = i;
    if (best >= 0) {
        float *p = m->pool[best].p;
        *n = m->pool[best].n;
        m->pool[best] = m->pool[--m->npool];
        return p;
    }
    return hafm_aligned_alloc(*n * sizeof(float));
}

static void pool_put(hafm_mdx *m, float *p, size_t n) {
    if (m->npool == m->pool_cap) {
        m->pool_cap = m->pool_cap ? 2 * m->pool_cap : 16;
        m->pool = hafm_xrealloc(m->pool, (size_t)m->pool_cap * sizeof *m->pool);
    }
    m->pool[m->npool++] = (pool_block){ p, n };
}

static void release(hafm_mdx *m, int slot) {
    value *v = &m->vals[slot];
    if (--v->uses == 0 && slot != m->input_slot) {
        pool_put(m, v->data, v->cap);
        v->data = NULL;
    }
}

int hafm_mdx_forward(hafm_mdx *m, float *out, const float *in, int T) {
    if (T < 32 || T % 32 != 0) {
        hafm_error("MDX-Net: %d frames is not a positive multiple of 32", T);
        return -1;
    }
    for (int i = 0; i < m->nslots; i++) m->vals[i].uses = m->slot_uses[i];
    value *vin = &m->vals[m->input_slot];
    vin->data = (float *)in;
    vin->c = 4;
    vin->h = m->dim_f;
    vin->w = T;
    int rc = 0;
    for (int k = 0; k < m->nsteps && rc == 0; k++) {
        const step *s = &m->steps[k];
        value *x = &m->vals[s->in0], *y = &m->vals[s->out];
        value *x1 = s->in1 >= 0 ? &m->vals[s->in1] : NULL;
        int C = x->c, H = x->h, W = x->w;
        size_t n = (size_t)C * H * W;
        switch (s->kind) {
        case ST_CONV: {
            if (C != s->ci) { rc = -1; break; }
            int Ho = (H + 2 * s->ph - s->kh) / s->sh + 1, Wo = (W + 2 * s->pw - s->kw) / s->sw + 1;
            if (Ho < 1 || Wo < 1) { rc = -1; break; }
            y->c = s->co; y->h = Ho; y->w = Wo;
            y->cap = (size_t)s->co * Ho * Wo;
            y->data = pool_get(m, &y->cap);
            conv_forward(s, y->data, x->data, H, W, Ho, Wo);
            epilogue(y->data, s->co, (int64_t)Ho * Wo, s->scale, s->shift, s->relu);
            break;
        }
        case ST_CONVT:
            if (C != s->ci) { rc = -1; break; }
            y->c = s->co; y->h = H * s->kh; y->w = W * s->kw;
            y->cap = (size_t)y->c * y->h * y->w;
            y->data = pool_get(m, &y->cap);
            convt_forward(s, y->data, x->data, H, W);
            epilogue(y->data, s->co, (int64_t)y->h * y->w, s->scale, s->shift, s->relu);
            break;
        case ST_MATMUL:
            if (W != s->kin || (s->scale && s->co != C)) { rc = -1; break; }
            y->c = C; y->h = H; y->w = s->kout;
            y->cap = (size_t)C * H * s->kout;
            y->data = pool_get(m, &y->cap);
            hafm_sgemm(0, 0, C * H, s->kout, s->kin, 1.0f, x->data, s->kin, s->w, s->kout, 0.0f, y->data, s->kout);
            epilogue(y->data, C, (int64_t)H * s->kout, s->scale, s->shift, s->relu);
            break;
        case ST_BIAS_LAST:
            if (W != s->kout || (s->scale && s->co != C)) { rc = -1; break; }
            y->c = C; y->h = H; y->w = W;
            y->cap = n;
            y->data = pool_get(m, &y->cap);
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < (int64_t)C * H; r++)
                for (int j = 0; j < W; j++) y->data[r * W + j] = x->data[r * W + j] + s->w[j];
            epilogue(y->data, C, (int64_t)H * W, s->scale, s->shift, s->relu);
            break;
        case ST_ADD:
        case ST_MUL:
            if (x1->c != C || x1->h != H || x1->w != W) { rc = -1; break; }
            y->c = C; y->h = H; y->w = W;
            y->cap = n;
            y->data = pool_get(m, &y->cap);
            if (s->kind == ST_ADD) {
#pragma omp parallel for schedule(static)
                for (size_t i = 0; i < n; i++) y->data[i] = x->data[i] + x1->data[i];
            } else {
#pragma omp parallel for schedule(static)
                for (size_t i = 0; i < n; i++) y->data[i] = x->data[i] * x1->data[i];
            }
            epilogue(y->data, C, (int64_t)H * W, NULL, NULL, s->relu);
            break;
        case ST_RELU:
        case ST_AFFINE:
            if (s->scale && s->co != C) { rc = -1; break; }
            y->c = C; y->h = H; y->w = W;
            y->cap = n;
            y->data = pool_get(m, &y->cap);
            memcpy(y->data, x->data, n * sizeof(float));
            epilogue(y->data, C, (int64_t)H * W, s->scale, s->shift, s->relu);
            break;
        case ST_TRANSPOSE:
            y->c = C; y->h = W; y->w = H;
            y->cap = n;
            y->data = pool_get(m, &y->cap);
#pragma omp parallel for collapse(2) schedule(static)
            for (int c = 0; c < C; c++)
                for (int j0 = 0; j0 < W; j0 += 32) {
                    const float *src = x->data + (size_t)c * H * W;
                    float *dst = y->data + (size_t)c * H * W;
                    for (int i = 0; i < H; i++)
                        for (int j = j0; j < j0 + 32 && j < W; j++) dst[(size_t)j * H + i] = src[(size_t)i * W + j];
                }
            break;
        }
        if (rc < 0) {
            hafm_error("MDX-Net step %d: tensor [%d, %d, %d] does not fit the layer (channels or "
                       "size); is T a multiple of 32 and dim_f the model's?", k, C, H, W);
            break;
        }
        release(m, s->in0);
        if (s->in1 >= 0) release(m, s->in1);
    }
    value *vo = &m->vals[m->output_slot];
    if (rc == 0 && (vo->c != 4 || vo->h != m->dim_f || vo->w != T)) {
        hafm_error("MDX-Net: output [%d, %d, %d] is not [4, %d, %d]", vo->c, vo->h, vo->w, m->dim_f, T);
        rc = -1;
    }
    if (rc == 0) memcpy(out, vo->data, (size_t)4 * m->dim_f * T * sizeof(float));
    for (int i = 0; i < m->nslots; i++) {
        if (i != m->input_slot && m->vals[i].data) pool_put(m, m->vals[i].data, m->vals[i].cap);
        m->vals[i].data = NULL;
    }
    return rc;
}

/* ---- separation (UVR demix) ------------------------------------------------------------------ */

/* STFT of a stereo chunk x[chunk][2] into the net's input [4][dim_f][T] (L.re, L.im, R.re, R.im) */
static void chunk_spec(const hafm_stft *st, float *spec, float *net_in, const float *x, int chunk,
                       int T, int dim_f, int zero_bins) {
    for (int ch = 0; ch < 2; ch++) {
        hafm_stft_forward(st, spec, x + ch, chunk, 2, 1);
#pragma omp parallel for schedule(static)
        for (int k = 0; k < dim_f; k++)
            for (int t = 0; t < T; t++) {
                float re = spec[((size_t)t * st->nbins + k) * 2], im = spec[((size_t)t * st->nbins + k) * 2 + 1];
                if (k < zero_bins) re = im = 0;
                net_in[((size_t)(2 * ch) * dim_f + k) * T + t] = re;
                net_in[((size_t)(2 * ch + 1) * dim_f + k) * T + t] = im;
            }
    }
}

static void chunk_wave(const hafm_stft *st, float *spec, float *y, const float *net_out, int chunk,
                       int T, int dim_f) {
    for (int ch = 0; ch < 2; ch++) {
        memset(spec, 0, (size_t)T * st->nbins * 2 * sizeof(float));
        for (int k = 0; k < dim_f; k++)
            for (int t = 0; t < T; t++) {
                spec[((size_t)t * st->nbins + k) * 2] = net_out[((size_t)(2 * ch) * dim_f + k) * T + t];
                spec[((size_t)t * st->nbins + k) * 2 + 1] = net_out[((size_t)(2 * ch + 1) * dim_f + k) * T + t];
            }
        hafm_stft_inverse(st, y + ch, 2, spec, T, chunk, 1);
    }
}

/* The UVR chunk loop, incremental: a chunk runs as soon as its samples are in (or at the end,
 * when the padded length L is known), and the positions before the next chunk's start are final.
 * Padded position j holds mix[j - trim]; positions past the mixture are zeros. */
struct hafm_mdx_stream {
    hafm_mdx *m;
    hafm_mdx_params p;
    hafm_stft st;
    int T;
    int64_t trim, chunk, step, gen;
    float *buf;                 /* padded positions [start, start + buf_len), stereo */
    int64_t buf_len, buf_cap;
    int64_t received;           /* mixture samples pushed */
    int64_t start;              /* next chunk's start = first position not yet final */
    int64_t L;                  /* padded length, known after the final push (else -1) */
    double *res, *div;          /* accumulators over [start, start + chunk) */
    double *win;
    float *x, *y, *spec, *net_in, *net_out, *net_neg;
    float *out;
    int64_t out_cap;
};

void hafm_mdx_stream_free(hafm_mdx_stream *s) {
    if (!s) return;
    hafm_stft_free(&s->st);
    free(s->buf); free(s->res); free(s->div); free(s->win);
    free(s->x); free(s->y); free(s->spec); free(s->net_in); free(s->net_out); free(s->net_neg);
    free(s->out);
    free(s);
}

hafm_mdx_stream *hafm_mdx_stream_new(hafm_mdx *m, const hafm_mdx_params *p) {
    const int dim_f = m->dim_f;
    const int T = p->dim_t > 0 ? p->dim_t : (m->dim_t > 0 ? m->dim_t : 256);
    if (p->n_fft < 2 * dim_f - 1 || p->n_fft % 2 || p->hop < 1 || T % 32 || T < 32) {
        hafm_error("MDX-Net: n_fft %d / hop %d / dim_t %d do not fit a model of dim_f %d", p->n_fft,
                   p->hop, T, dim_f);
        return NULL;
    }
    hafm_mdx_stream *s = hafm_xcalloc(1, sizeof *s);
    s->m = m;
    s->p = *p;
    s->T = T;
    s->trim = p->n_fft / 2;
    s->chunk = (int64_t)p->hop * (T - 1);
    s->gen = s->chunk - 2 * s->trim;
    if (s->gen <= 0) {
        hafm_error("MDX-Net: chunk of %lld samples is not longer than n_fft", (long long)s->chunk);
        free(s);
        return NULL;
    }
    s->step = p->overlap > 0 ? (int64_t)((1.0 - p->overlap) * (double)s->chunk) : s->chunk - p->n_fft;
    if (s->step < 1) s->step = 1;
    if (s->step > s->chunk) s->step = s->chunk;
    if (hafm_stft_init(&s->st, p->n_fft, p->n_fft, p->hop, NULL) < 0) {
        free(s);
        return NULL;
    }
    size_t net_n = (size_t)4 * dim_f * T;
    s->L = -1;
    s->buf_cap = s->chunk + s->trim;
    s->buf = hafm_xcalloc((size_t)s->buf_cap * 2, sizeof(float));
    s->buf_len = s->trim;        /* the leading zeros */
    s->res = hafm_xcalloc((size_t)s->chunk * 2, sizeof(double));
    s->div = hafm_xcalloc((size_t)s->chunk, sizeof(double));
    s->win = hafm_xmalloc((size_t)s->chunk * sizeof(double));
    s->x = hafm_xmalloc((size_t)s->chunk * 2 * sizeof(float));
    s->y = hafm_xmalloc((size_t)s->chunk * 2 * sizeof(float));
    s->spec = hafm_xmalloc((size_t)T * s->st.nbins * 2 * sizeof(float));
    s->net_in = hafm_aligned_alloc(net_n * sizeof(float));
    s->net_out = hafm_aligned_alloc(net_n * sizeof(float));
    s->net_neg = p->denoise ? hafm_aligned_alloc(net_n * sizeof(float)) : NULL;
    return s;
}

/* runs the chunk at s->start over n padded samples, then emits the positions before the next
 * start into s->out (from index *nout) */
static int run_chunk(hafm_mdx_stream *s, int64_t n, int64_t *nout) {
    const int dim_f = s->m->dim_f, T = s->T;
    const int64_t chunk = s->chunk;
    size_t net_n = (size_t)4 * dim_f * T;
    for (int64_t i = 0; i < chunk; i++) {
        int ok = i < n && i < s->buf_len;
        s->x[2 * i] = ok ? s->buf[2 * i] : 0.0f;
        s->x[2 * i + 1] = ok ? s->buf[2 * i + 1] : 0.0f;
    }
    chunk_spec(&s->st, s->spec, s->net_in, s->x, (int)chunk, T, dim_f, s->p.zero_low_bins);
    if (hafm_mdx_forward(s->m, s->net_out, s->net_in, T) < 0) return -1;
    if (s->p.denoise) {
        for (size_t i = 0; i < net_n; i++) s->net_in[i] = -s->net_in[i];
        if (hafm_mdx_forward(s->m, s->net_neg, s->net_in, T) < 0) return -1;
        for (size_t i = 0; i < net_n; i++) s->net_out[i] = 0.5f * s->net_out[i] - 0.5f * s->net_neg[i];
    }
    chunk_wave(&s->st, s->spec, s->y, s->net_out, (int)chunk, T, dim_f);
    /* numpy.hanning(n): symmetric, zero ends; hanning(1) = [1] */
    for (int64_t i = 0; i < n; i++)
        s->win[i] = n > 1 ? 0.5 - 0.5 * cos(2.0 * M_PI * (double)i / (double)(n - 1)) : 1.0;
    for (int64_t i = 0; i < n; i++) {
        s->res[2 * i] += (double)s->y[2 * i] * s->win[i];
        s->res[2 * i + 1] += (double)s->y[2 * i + 1] * s->win[i];
        s->div[i] += s->win[i];
    }
    int64_t next = s->L >= 0 && s->start + s->step >= s->L ? s->L : s->start + s->step;
    int64_t shift = next - s->start;
    int64_t N = s->L >= 0 ? s->received : INT64_MAX;
    for (int64_t a = 0; a < shift; a++) {
        int64_t o = s->start + a - s->trim;
        if (o < 0 || o >= N) continue;
        if (*nout >= s->out_cap) {
            s->out_cap = s->out_cap ? 2 * s->out_cap : 65536;
            s->out = hafm_xrealloc(s->out, (size_t)s->out_cap * 2 * sizeof(float));
        }
        for (int c = 0; c < 2; c++)
            s->out[2 * *nout + c] = (float)(s->res[2 * a + c] / s->div[a] * s->p.compensate);
        (*nout)++;
    }
    if (shift < chunk) {
        memmove(s->res, s->res + 2 * shift, (size_t)(chunk - shift) * 2 * sizeof(double));
        memmove(s->div, s->div + shift, (size_t)(chunk - shift) * sizeof(double));
    }
    int64_t keep = shift < chunk ? chunk - shift : 0;
    memset(s->res + 2 * keep, 0, (size_t)(chunk - keep) * 2 * sizeof(double));
    memset(s->div + keep, 0, (size_t)(chunk - keep) * sizeof(double));
    int64_t drop = shift < s->buf_len ? shift : s->buf_len;
    memmove(s->buf, s->buf + 2 * drop, (size_t)(s->buf_len - drop) * 2 * sizeof(float));
    s->buf_len -= drop;
    s->start = next;
    return 0;
}

int64_t hafm_mdx_stream_push(hafm_mdx_stream *s, const float *x, int64_t n, int final, const float **out) {
    int64_t nout = 0;
    *out = NULL;
    if (s->L >= 0) {
        hafm_error("MDX-Net stream: push after the final push");
        return -1;
    }
    if (n > 0) {
        if (s->buf_len + n > s->buf_cap) {
            s->buf_cap = s->buf_len + n + s->chunk;
            s->buf = hafm_xrealloc(s->buf, (size_t)s->buf_cap * 2 * sizeof(float));
        }
        memcpy(s->buf + 2 * s->buf_len, x, (size_t)n * 2 * sizeof(float));
        s->buf_len += n;
        s->received += n;
    }
    /* chunks whose samples are all in */
    while (s->start + s->chunk <= s->trim + s->received)
        if (run_chunk(s, s->chunk, &nout) < 0) return -1;
    if (final) {
        if (s->received == 0) {
            hafm_error("MDX-Net: empty audio");
            return -1;
        }
        int64_t N = s->received, pad = s->gen + s->trim - N % s->gen;
        s->L = N + s->trim + pad;
        while (s->start < s->L) {
            int64_t end = s->start + s->chunk < s->L ? s->start + s->chunk : s->L;
            if (run_chunk(s, end - s->start, &nout) < 0) return -1;
        }
    }
    *out = s->out;
    return nout;
}

int hafm_mdx_separate(hafm_mdx *m, const hafm_mdx_params *p, float *out, const float *mix, int64_t N) {
    hafm_mdx_stream *s = hafm_mdx_stream_new(m, p);
    if (!s) return -1;
    const float *o;
    int64_t got = hafm_mdx_stream_push(s, mix, N, 1, &o);
    if (got >= 0) memcpy(out, o, (size_t)got * 2 * sizeof(float));
    hafm_mdx_stream_free(s);
    if (got != N) {
        if (got >= 0) hafm_error("MDX-Net: %lld output samples for %lld", (long long)got, (long long)N);
        return -1;
    }
    return 0;
}

/* ---- any rate, any channel count, incrementally ------------------------------------------- */

typedef struct {
    hafm_resampler *rin, *rout;     /* NULL at 44.1 kHz */
    hafm_mdx_stream *ms;
    float *tmp_in, *tmp_out;        /* resampler outputs */
    int64_t cap_in, cap_out;
    float *fifo;                    /* primary stem at the input rate, stereo, not yet emitted */
    int64_t fifo_len, fifo_cap;
} mdx_pair;

struct hafm_mdx_audio {
    int instrumental, channels, rate, npairs;
    mdx_pair *pairs;
    float *in_fifo;                 /* input samples not yet emitted [n][channels] */
    int64_t in_len, in_cap;
    float *stereo;
    int64_t stereo_cap;
    float *vocal, *accomp;
    int64_t out_cap;
};

void hafm_mdx_audio_free(hafm_mdx_audio *a) {
    if (!a) return;
    for (int i = 0; i < a->npairs; i++) {
        mdx_pair *p = &a->pairs[i];
        hafm_resampler_free(p->rin);
        hafm_resampler_free(p->rout);
        hafm_mdx_stream_free(p->ms);
        free(p->tmp_in); free(p->tmp_out); free(p->fifo);
    }
    free(a->pairs);
    free(a->in_fifo); free(a->stereo); free(a->vocal); free(a->accomp);
    free(a);
}

hafm_mdx_audio *hafm_mdx_audio_new(hafm_mdx *m, const hafm_mdx_params *p, int instrumental,
                                   int channels, int sample_rate) {
    if (channels < 1 || sample_rate < 1) {
        hafm_error("MDX-Net: bad audio format (%d channels, %d Hz)", channels, sample_rate);
        return NULL;
    }
    hafm_mdx_audio *a = hafm_xcalloc(1, sizeof *a);
    a->instrumental = instrumental;
    a->channels = channels;
    a->rate = sample_rate;
    a->npairs = (channels + 1) / 2;
    a->pairs = hafm_xcalloc((size_t)a->npairs, sizeof *a->pairs);
    for (int i = 0; i < a->npairs; i++) {
        mdx_pair *pr = &a->pairs[i];
        if (!(pr->ms = hafm_mdx_stream_new(m, p))) goto fail;
        if (sample_rate != 44100 && (!(pr->rin = hafm_resampler_new(sample_rate, 44100, 2)) ||
                                     !(pr->rout = hafm_resampler_new(44100, sample_rate, 2))))
            goto fail;
    }
    return a;
fail:
    hafm_mdx_audio_free(a);
    return NULL;
}

static void fifo_append(float **buf, int64_t *len, int64_t *cap, const float *x, int64_t n, int width) {
    if (n <= 0) return;
    if (*len + n > *cap) {
        *cap = (*len + n) * 2 + 4096;
        *buf = hafm_xrealloc(*buf, (size_t)*cap * width * sizeof(float));
    }
    if (x) memcpy(*buf + *len * width, x, (size_t)n * width * sizeof(float));
    else memset(*buf + *len * width, 0, (size_t)n * width * sizeof(float));
    *len += n;
}

static void fifo_drop(float *buf, int64_t *len, int64_t n, int width) {
    if (n <= 0) return;
    memmove(buf, buf + n * width, (size_t)(*len - n) * width * sizeof(float));
    *len -= n;
}

/* one channel pair through resampling and the net; appends its primary stem to pr->fifo */
static int pair_push(mdx_pair *pr, const float *x, int64_t n, int final) {
    const float *in = x, *prim;
    int64_t nin = n;
    if (pr->rin) {
        /* a push of nothing would flush the resampler: only the final one may */
        nin = n > 0 ? hafm_resampler_process(pr->rin, x, n, &pr->tmp_in, &pr->cap_in) : 0;
        if (nin < 0) return -1;
        if (final) {
            int64_t nt = hafm_resampler_process(pr->rin, NULL, 0, &pr->tmp_out, &pr->cap_out);
            if (nt < 0) return -1;
            fifo_append(&pr->tmp_in, &nin, &pr->cap_in, pr->tmp_out, nt, 2);
        }
        in = pr->tmp_in;
    }
    int64_t np = hafm_mdx_stream_push(pr->ms, in, nin, final, &prim);
    if (np < 0) return -1;
    if (!pr->rout) {
        fifo_append(&pr->fifo, &pr->fifo_len, &pr->fifo_cap, prim, np, 2);
        return 0;
    }
    int64_t no = np > 0 ? hafm_resampler_process(pr->rout, prim, np, &pr->tmp_out, &pr->cap_out) : 0;
    if (no < 0) return -1;
    fifo_append(&pr->fifo, &pr->fifo_len, &pr->fifo_cap, pr->tmp_out, no, 2);
    if (final) {
        no = hafm_resampler_process(pr->rout, NULL, 0, &pr->tmp_out, &pr->cap_out);
        if (no < 0) return -1;
        fifo_append(&pr->fifo, &pr->fifo_len, &pr->fifo_cap, pr->tmp_out, no, 2);
    }
    return 0;
}

int64_t hafm_mdx_audio_push(hafm_mdx_audio *a, const float *x, int64_t n, int final,
                            const float **vocal, const float **accomp) {
    const int C = a->channels;
    fifo_append(&a->in_fifo, &a->in_len, &a->in_cap, x, n, C);
    if (n > a->stereo_cap) {
        a->stereo_cap = n;
        a->stereo = hafm_xrealloc(a->stereo, (size_t)n * 2 * sizeof(float));
    }
    for (int i = 0; i < a->npairs; i++) {
        int c0 = 2 * i, c1 = c0 + 1 < C ? c0 + 1 : c0;   /* a lone channel is duplicated */
        for (int64_t t = 0; t < n; t++) {
            a->stereo[2 * t] = x[t * C + c0];
            a->stereo[2 * t + 1] = x[t * C + c1];
        }
        if (pair_push(&a->pairs[i], a->stereo, n, final) < 0) return -1;
    }
    int64_t k = a->in_len;
    for (int i = 0; i < a->npairs; i++) {
        mdx_pair *pr = &a->pairs[i];
        /* at the end the resampling round trip may be a sample short or long */
        if (final && pr->fifo_len < a->in_len)
            fifo_append(&pr->fifo, &pr->fifo_len, &pr->fifo_cap, NULL, a->in_len - pr->fifo_len, 2);
        if (pr->fifo_len < k) k = pr->fifo_len;
    }
    if (k > a->out_cap) {
        a->out_cap = k;
        a->vocal = hafm_xrealloc(a->vocal, (size_t)k * C * sizeof(float));
        a->accomp = hafm_xrealloc(a->accomp, (size_t)k * C * sizeof(float));
    }
    float *primary = a->instrumental ? a->accomp : a->vocal, *secondary = a->instrumental ? a->vocal : a->accomp;
    for (int i = 0; i < a->npairs; i++) {
        mdx_pair *pr = &a->pairs[i];
        int c0 = 2 * i, pair = c0 + 1 < C;
        for (int64_t t = 0; t < k; t++) {
            if (pair) {
                primary[t * C + c0] = pr->fifo[2 * t];
                primary[t * C + c0 + 1] = pr->fifo[2 * t + 1];
            } else {
                primary[t * C + c0] = 0.5f * (pr->fifo[2 * t] + pr->fifo[2 * t + 1]);
            }
        }
        fifo_drop(pr->fifo, &pr->fifo_len, final ? pr->fifo_len : k, 2);
    }
    for (int64_t i = 0; i < k * C; i++) secondary[i] = a->in_fifo[i] - primary[i];
    fifo_drop(a->in_fifo, &a->in_len, k, C);
    *vocal = a->vocal;
    *accomp = a->accomp;
    return k;
}

int hafm_mdx_separate_audio(hafm_mdx *m, const hafm_mdx_params *p, int instrumental, float *vocal,
                            float *accomp, const float *x, int64_t n, int channels, int sample_rate) {
    hafm_mdx_audio *a = hafm_mdx_audio_new(m, p, instrumental, channels, sample_rate);
    if (!a) return -1;
    const float *v, *ac;
    int64_t got = hafm_mdx_audio_push(a, x, n, 1, &v, &ac);
    if (got == n) {
        memcpy(vocal, v, (size_t)n * channels * sizeof(float));
        memcpy(accomp, ac, (size_t)n * channels * sizeof(float));
    } else if (got >= 0) {
        hafm_error("MDX-Net: %lld output samples for %lld", (long long)got, (long long)n);
    }
    hafm_mdx_audio_free(a);
    return got == n ? 0 : -1;
}

/* ---- UVR's model table ------------------------------------------------------------------------ */

/* UVR 5.6 models/MDX_Net_Models/model_data/model_data.json: MD5 of the file's last 10000 KiB ->
 * settings (names from a public third-party hash list; see shared/golden/mdxnet/SPEC.md 6). */
static const hafm_mdx_uvr_model uvr_models[] = {
    { "4910e7827f335048bdac11fa967772f9", "kuielab_b_drums", "Drums", 2048, 128, 4096, 1.035 },
    { "dc41ede5961d50f277eb846db17f5319", "kuielab_a_drums", "Drums", 2048, 512, 4096, 1.035 },
    { "1c56ec0224f1d559c42fd6fd2a67b154", "", "Instrumental", 2048, 256, 5120, 1.025 },
    { "1d64a6d2c30f709b8c9b4ce1366d96ee", "", "Instrumental", 2048, 256, 5120, 1.065 },
    { "8a88db95c7fb5dbe6a095ff2ffb428b1", "", "Instrumental", 2048, 256, 5120, 1.026 },
    { "0ddfc0eb5792638ad5dc27850236c246", "UVR_MDXNET_9482", "Vocals", 2048, 256, 6144, 1.035 },
    { "2f5501189a2f6db6349916fabe8c90de", "UVR_MDXNET_KARA", "Vocals", 2048, 256, 6144, 1.035 },
    { "6b31de20e84392859a3d09d43f089515", "kuielab_b_vocals", "Vocals", 2048, 256, 6144, 1.035 },
    { "a3cd63058945e777505c01d2507daf37", "UVR_MDXNET_1_9703", "Vocals", 2048, 256, 6144, 1.03 },
    { "d7bff498db9324db933d913388cba6be", "UVR_MDXNET_3_9662", "Vocals", 2048, 256, 6144, 1.035 },
    { "d94058f8c7f1fae4164868ae8ae66b20", "UVR_MDXNET_2_9682", "Vocals", 2048, 256, 6144, 1.035 },
    { "5f6483271e1efb9bfb59e4a3e6d4d098", "kuielab_a_vocals", "Vocals", 2048, 512, 6144, 1.035 },
    { "65ab5919372a128e4167f5e01a8fda85", "kuielab_b_other", "Other", 2048, 256, 8192, 1.035 },
    { "26d308f91f3423a67dc69a6d12a8793d", "kuielab_a_other", "Other", 2048, 512, 8192, 1.035 },
    { "c3b29bdce8c4fa17ec609e16220330ab", "kuielab_b_bass", "Bass", 2048, 256, 16384, 1.035 },
    { "6703e39f36f18aa7855ee1047765621d", "kuielab_a_bass", "Bass", 2048, 512, 16384, 1.035 },
    { "203f2a3955221b64df85a41af87cf8f0", "", "Instrumental", 3072, 256, 6144, 1.035 },
    { "291c2049608edb52648b96e27eb80e95", "", "Instrumental", 3072, 256, 6144, 1.035 },
    { "55657dd70583b0fedfba5f67df11d711", "", "Instrumental", 3072, 256, 6144, 1.022 },
    { "94ff780b977d3ca07c7a343dab2e25dd", "", "Instrumental", 3072, 256, 6144, 1.039 },
    { "b06327a00d5e5fbc7d96e1781bbdb596", "", "Instrumental", 3072, 256, 6144, 1.035 },
    { "cc63408db3d80b4d85b0287d1d7c9632", "", "Instrumental", 3072, 256, 6144, 1.033 },
    { "ead8d05dab12ec571d67549b3aab03fc", "", "Instrumental", 3072, 256, 6144, 1.035 },
    { "cd5b2989ad863f116c855db1dfe24e39", "Reverb_HQ_By_FoxJoy", "Reverb", 3072, 512, 6144, 1.035 },
    { "2cdd429caac38f0194b133884160f2c6", "", "Instrumental", 3072, 256, 7680, 1.045 },
    { "398580b6d5d973af3120df54cee6759d", "", "Vocals", 3072, 256, 7680, 1.75 },
    { "488b3e6f8bd3717d9d7c428476be2d75", "", "Instrumental", 3072, 256, 7680, 1.035 },
    { "53c4baf4d12c3e6c3831bb8f5b532b93", "", "Vocals", 3072, 256, 7680, 1.043 },
    { "5d343409ef0df48c7d78cce9f0106781", "", "Vocals", 3072, 256, 7680, 1.075 },
    { "73492b58195c3b52d34590d5474452f6", "Kim_Vocal_1", "Vocals", 3072, 256, 7680, 1.043 },
    { "77d07b2667ddf05b9e3175941b4454a0", "", "Vocals", 3072, 256, 7680, 1.021 },
    { "867595e9de46f6ab699008295df62798", "", "Vocals", 3072, 256, 7680, 1.03 },
    { "970b3f9492014d18fefeedfe4773cb42", "Kim_Vocal_2", "Vocals", 3072, 256, 7680, 1.009 },
    { "b33d9b3950b6cbf5fe90a32608924700", "", "Vocals", 3072, 256, 7680, 1.03 },
    { "b6bccda408a436db8500083ef3491e8b", "Kim_Inst", "Instrumental", 3072, 256, 7680, 1.02 },
    { "b78da4afc6512f98e4756f5977f5c6b9", "", "Instrumental", 3072, 256, 7680, 1.021 },
    { "ceed671467c1f64ebdfac8a2490d0d52", "", "Instrumental", 3072, 256, 7680, 1.035 },
    { "d2a1376f310e4f7fa37fb9b5774eb701", "", "Instrumental", 3072, 256, 7680, 1.035 },
    { "e5572e58abf111f80d8241d2e44e7fa4", "", "Instrumental", 3072, 256, 7680, 1.028 },
    { "e7324c873b1f615c35c1967f912db92a", "", "Vocals", 3072, 256, 7680, 1.03 },
    { "f2df6d6863d8f435436d8b561594ff49", "", "Instrumental", 3072, 256, 7680, 1.035 },
};

/* MD5 (RFC 1321) */
typedef struct { uint32_t h[4]; uint64_t len; unsigned char buf[64]; size_t nbuf; } md5_ctx;

static void md5_block(uint32_t h[4], const unsigned char *p) {
    static const uint32_t K[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391 };
    static const int R[64] = { 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                               5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
                               4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                               6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21 };
    uint32_t w[16], a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) { f = (b & c) | (~b & d); g = i; }
        else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) & 15; }
        else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) & 15; }
        else { f = c ^ (b | ~d); g = (7 * i) & 15; }
        uint32_t t = d;
        d = c;
        c = b;
        uint32_t x = a + f + K[i] + w[g];
        b = b + (x << R[i] | x >> (32 - R[i]));
        a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
}

static void md5_init(md5_ctx *c) {
    c->h[0] = 0x67452301; c->h[1] = 0xefcdab89; c->h[2] = 0x98badcfe; c->h[3] = 0x10325476;
    c->len = 0;
    c->nbuf = 0;
}

static void md5_update(md5_ctx *c, const unsigned char *p, size_t n) {
    c->len += n;
    while (n > 0) {
        size_t k = 64 - c->nbuf < n ? 64 - c->nbuf : n;
        memcpy(c->buf + c->nbuf, p, k);
        c->nbuf += k;
        p += k;
        n -= k;
        if (c->nbuf == 64) {
            md5_block(c->h, c->buf);
            c->nbuf = 0;
        }
    }
}

static void md5_final(md5_ctx *c, char hex[33]) {
    uint64_t bits = c->len * 8;
    unsigned char pad = 0x80, zero = 0, lenb[8];
    md5_update(c, &pad, 1);
    while (c->nbuf != 56) md5_update(c, &zero, 1);
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (8 * i));
    md5_update(c, lenb, 8);
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", (c->h[i / 4] >> (8 * (i % 4))) & 0xff);
}

int hafm_mdx_uvr_hash(const char *path, char hex[33]) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        hafm_error("%s:", path);
        return -1;
    }
    const long tail = 10000L * 1024;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        fseek(f, size > tail ? size - tail : 0, SEEK_SET);
    }
    md5_ctx c;
    md5_init(&c);
    unsigned char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) md5_update(&c, buf, got);
    int err = ferror(f);
    fclose(f);
    if (err) {
        hafm_error("%s: read error", path);
        return -1;
    }
    md5_final(&c, hex);
    return 0;
}

const hafm_mdx_uvr_model *hafm_mdx_uvr_lookup(const char *hex) {
    for (size_t i = 0; i < sizeof uvr_models / sizeof *uvr_models; i++)
        if (strcmp(uvr_models[i].md5, hex) == 0) return &uvr_models[i];
    return NULL;
}
