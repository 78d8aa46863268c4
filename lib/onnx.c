/* onnx.c - ONNX model reader over protobuf-c (see hafm/onnx.h). */
#include "hafm/onnx.h"
#include "hafm/linalg.h"
#include "onnx.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct hafm_onnx {
    Onnx__ModelProto *model;
    hafm_onnx_node *nodes;
    int nnodes;
    hafm_onnx_tensor *inits;
    int ninits;
    int *inputs;          /* indices of graph inputs that are not initializers */
    int ninputs;
    int64_t opset;
};

static int init_index(const hafm_onnx *m, const char *name) {
    for (int i = 0; i < m->ninits; i++)
        if (strcmp(m->inits[i].name, name) == 0) return i;
    return -1;
}

static int load_initializer(hafm_onnx_tensor *t, const Onnx__TensorProto *tp, const char *src) {
    memset(t, 0, sizeof *t);
    t->name = tp->name ? tp->name : "";
    if (tp->n_dims > HAFM_ONNX_MAX_DIMS) {
        hafm_error("%s: initializer '%s': %zu dimensions", src, t->name, tp->n_dims);
        return -1;
    }
    t->ndim = (int)tp->n_dims;
    t->numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (tp->dims[i] < 0 || tp->dims[i] > (int64_t)1 << 31 || (t->numel *= tp->dims[i]) > (int64_t)1 << 31) {
            hafm_error("%s: initializer '%s': bad dimensions", src, t->name);
            return -1;
        }
        t->dims[i] = tp->dims[i];
    }
    if (tp->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        hafm_error("%s: initializer '%s': data type %d, only float32 is supported", src, t->name,
                   (int)tp->data_type);
        return -1;
    }
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        hafm_error("%s: initializer '%s': external data is not supported", src, t->name);
        return -1;
    }
    t->data = hafm_aligned_alloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
    if (tp->has_raw_data && tp->raw_data.len > 0) {
        if (tp->raw_data.len != (size_t)t->numel * 4) {
            hafm_error("%s: initializer '%s': %zu bytes of data for %lld floats", src, t->name,
                       tp->raw_data.len, (long long)t->numel);
            return -1;
        }
        hafm_convert_to_f32(t->data, tp->raw_data.data, HAFM_DT_F32, (size_t)t->numel);
    } else if ((int64_t)tp->n_float_data == t->numel) {
        memcpy(t->data, tp->float_data, (size_t)t->numel * sizeof(float));
    } else {
        hafm_error("%s: initializer '%s': %zu values for %lld elements", src, t->name,
                   tp->n_float_data, (long long)t->numel);
        return -1;
    }
    return 0;
}

hafm_onnx *hafm_onnx_load_mem(const void *buf, size_t nbytes, const char *name) {
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, nbytes, buf);
    if (!mp || !mp->graph || mp->graph->n_node == 0) {
        if (mp) onnx__model_proto__free_unpacked(mp, NULL);
        hafm_error("%s: truncated or not an ONNX model", name);
        return NULL;
    }
    hafm_onnx *m = hafm_xcalloc(1, sizeof *m);
    m->model = mp;
    const Onnx__GraphProto *g = mp->graph;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const char *d = mp->opset_import[i]->domain;
        if (!d || !*d || strcmp(d, "ai.onnx") == 0) m->opset = mp->opset_import[i]->version;
    }
    m->ninits = (int)g->n_initializer;
    m->inits = hafm_xcalloc((size_t)(m->ninits ? m->ninits : 1), sizeof *m->inits);
    for (int i = 0; i < m->ninits; i++)
        if (load_initializer(&m->inits[i], g->initializer[i], name) < 0) {
            hafm_onnx_free(m);
            return NULL;
        }
    m->nnodes = (int)g->n_node;
    m->nodes = hafm_xcalloc((size_t)m->nnodes, sizeof *m->nodes);
    for (int i = 0; i < m->nnodes; i++) {
        const Onnx__NodeProto *np = g->node[i];
        hafm_onnx_node *n = &m->nodes[i];
        if (!np->op_type) {
            hafm_error("%s: node %d has no op_type", name, i);
            hafm_onnx_free(m);
            return NULL;
        }
        n->op = np->op_type;
        n->name = np->name ? np->name : "";
        n->nin = (int)np->n_input;
        n->nout = (int)np->n_output;
        n->in = (const char *const *)np->input;
        n->out = (const char *const *)np->output;
        n->proto = np;
    }
    m->inputs = hafm_xcalloc(g->n_input + 1, sizeof(int));
    for (size_t i = 0; i < g->n_input; i++)
        if (g->input[i]->name && init_index(m, g->input[i]->name) < 0) m->inputs[m->ninputs++] = (int)i;
    return m;
}

hafm_onnx *hafm_onnx_load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        hafm_error("%s:", path);
        return NULL;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = hafm_xmalloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) buf = hafm_xrealloc(buf, cap *= 2);
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        hafm_error("%s: read error", path);
        return NULL;
    }
    if (len == 0) {
        free(buf);
        hafm_error("%s: empty file", path);
        return NULL;
    }
    hafm_onnx *m = hafm_onnx_load_mem(buf, len, path);
    free(buf);
    return m;
}

void hafm_onnx_free(hafm_onnx *m) {
    if (!m) return;
    for (int i = 0; i < m->ninits; i++) free(m->inits[i].data);
    free(m->inits);
    free(m->nodes);
    free(m->inputs);
    onnx__model_proto__free_unpacked(m->model, NULL);
    free(m);
}

int64_t hafm_onnx_opset(const hafm_onnx *m) { return m->opset; }
int hafm_onnx_num_nodes(const hafm_onnx *m) { return m->nnodes; }
const hafm_onnx_node *hafm_onnx_node_at(const hafm_onnx *m, int i) { return &m->nodes[i]; }
int hafm_onnx_num_initializers(const hafm_onnx *m) { return m->ninits; }
const hafm_onnx_tensor *hafm_onnx_initializer_at(const hafm_onnx *m, int i) { return &m->inits[i]; }

const hafm_onnx_tensor *hafm_onnx_initializer(const hafm_onnx *m, const char *name) {
    int i = init_index(m, name);
    return i < 0 ? NULL : &m->inits[i];
}

int hafm_onnx_num_inputs(const hafm_onnx *m) { return m->ninputs; }
int hafm_onnx_num_outputs(const hafm_onnx *m) { return (int)m->model->graph->n_output; }

const char *hafm_onnx_io(const hafm_onnx *m, int output, int i, int *ndim, int64_t *dims) {
    const Onnx__GraphProto *g = m->model->graph;
    const Onnx__ValueInfoProto *vi = output ? g->output[i] : g->input[m->inputs[i]];
    *ndim = 0;
    const Onnx__TypeProto *tp = vi->type;
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type->shape) {
        const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
        for (size_t d = 0; d < sh->n_dim && d < HAFM_ONNX_MAX_DIMS; d++) {
            const Onnx__TensorShapeProto__Dimension *dim = sh->dim[d];
            dims[(*ndim)++] = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? dim->dim_value : -1;
        }
    }
    return vi->name ? vi->name : "";
}

static const Onnx__AttributeProto *find_attr(const hafm_onnx_node *n, const char *name) {
    const Onnx__NodeProto *np = n->proto;
    for (size_t i = 0; i < np->n_attribute; i++)
        if (np->attribute[i]->name && strcmp(np->attribute[i]->name, name) == 0) return np->attribute[i];
    return NULL;
}

int hafm_onnx_attr_int(const hafm_onnx_node *n, const char *name, int64_t *out) {
    const Onnx__AttributeProto *a = find_attr(n, name);
    if (!a) return 0;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) {
        hafm_error("node '%s': attribute '%s' is not an integer", n->name, name);
        return -1;
    }
    *out = a->i;
    return 1;
}

int hafm_onnx_attr_float(const hafm_onnx_node *n, const char *name, float *out) {
    const Onnx__AttributeProto *a = find_attr(n, name);
    if (!a) return 0;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) {
        hafm_error("node '%s': attribute '%s' is not a float", n->name, name);
        return -1;
    }
    *out = a->f;
    return 1;
}

int hafm_onnx_attr_ints(const hafm_onnx_node *n, const char *name, int64_t *out, int max) {
    const Onnx__AttributeProto *a = find_attr(n, name);
    if (!a) return 0;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) {
        hafm_error("node '%s': attribute '%s' is not a list of integers", n->name, name);
        return -1;
    }
    for (size_t i = 0; i < a->n_ints && (int)i < max; i++) out[i] = a->ints[i];
    return (int)a->n_ints;
}
