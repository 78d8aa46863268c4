/* hafm/onnx.h - a reader of ONNX model files (graph and float initializers), through protobuf-c
 * and the ONNX schema (third_party/onnx/onnx.proto from Debian's libonnx-dev 1.12.0; the C code
 * lib/onnx.pb-c.[ch] is generated from it by protoc-c, see mk/fadvsep.mk).
 *
 * It does not execute graphs: a model module (mdxnet.c) walks the nodes and builds its own
 * native implementation from them.
 */
#ifndef HAFM_ONNX_H
#define HAFM_ONNX_H

#include "common.h"

#define HAFM_ONNX_MAX_DIMS 8

typedef struct {
    const char *name;
    int ndim;
    int64_t dims[HAFM_ONNX_MAX_DIMS];
    int64_t numel;
    float *data;              /* float32 (converted from float_data or raw_data); owned by the model */
} hafm_onnx_tensor;

typedef struct {
    const char *op;           /* op_type, e.g. "Conv" */
    const char *name;
    int nin, nout;
    const char *const *in;    /* value names ("" = absent optional input) */
    const char *const *out;
    const void *proto;        /* the Onnx__NodeProto, for attributes */
} hafm_onnx_node;

typedef struct hafm_onnx hafm_onnx;

/* NULL + error ("x.onnx: truncated or not an ONNX model", "... initializer 'w': ...") */
hafm_onnx *hafm_onnx_load(const char *path);
hafm_onnx *hafm_onnx_load_mem(const void *buf, size_t nbytes, const char *name);
void hafm_onnx_free(hafm_onnx *m);

int64_t hafm_onnx_opset(const hafm_onnx *m);            /* default-domain opset version */
int hafm_onnx_num_nodes(const hafm_onnx *m);
const hafm_onnx_node *hafm_onnx_node_at(const hafm_onnx *m, int i);   /* topological order */
/* Initializer by name (NULL when the value is not an initializer). Only float32 initializers
 * are kept; a graph with another initializer type fails to load. */
const hafm_onnx_tensor *hafm_onnx_initializer(const hafm_onnx *m, const char *name);
int hafm_onnx_num_initializers(const hafm_onnx *m);
const hafm_onnx_tensor *hafm_onnx_initializer_at(const hafm_onnx *m, int i);

/* Graph inputs that are not initializers, and outputs: name and static shape (a symbolic
 * dimension is -1). */
int hafm_onnx_num_inputs(const hafm_onnx *m);
int hafm_onnx_num_outputs(const hafm_onnx *m);
const char *hafm_onnx_io(const hafm_onnx *m, int output, int i, int *ndim, int64_t *dims);

/* Attributes of a node: 1 found, 0 absent, -1 wrong type (error set). */
int hafm_onnx_attr_int(const hafm_onnx_node *n, const char *name, int64_t *out);
int hafm_onnx_attr_float(const hafm_onnx_node *n, const char *name, float *out);
/* ints: returns the count (up to max copied), 0 absent, -1 wrong type. */
int hafm_onnx_attr_ints(const hafm_onnx_node *n, const char *name, int64_t *out, int max);

#endif
