"""Writes a stage model with the paper configuration and random weights (for benchmarks: speed
does not depend on the values). Usage: random_model.py STAGE OUT.safetensors [bf16]"""
import json
import sys

import numpy as np

from hafm_ref import st_write, tensor_shapes


def paper_config(stage):
    s = lambda name, Q, vocab, rate, off=0: {"name": name, "codebooks": Q, "codebook_offset": off, "vocab": vocab, "rate": rate}
    conds, target = {1: ([s("vocal.semantic", 1, 500, 50)], s("accomp.semantic", 1, 500, 50)),
                     2: ([s("vocal.semantic", 1, 500, 50), s("accomp.semantic", 1, 500, 50)], s("accomp.coarse", 4, 1024, 75)),
                     3: ([s("accomp.coarse", 4, 1024, 75)], s("accomp.fine", 4, 1024, 75, 4))}[stage]
    return {"stage": stage, "n_layer": 12, "d_model": 512, "n_head": 8, "d_ff": 1365, "rel_buckets": 32,
            "rel_max_distance": 128, "norm_eps": 1e-6, "window_seconds": 10, "conditions": conds, "target": target}


def main(stage, out, dtype="F32"):
    cfg = paper_config(stage)
    rng = np.random.default_rng(stage)
    t = {}
    for name, shape in tensor_shapes(cfg):
        t[name] = np.ones(shape, np.float32) if name.endswith("norm") else \
            (0.02 * rng.standard_normal(shape)).astype(np.float32)
    st_write(out, t, {"format": "hafm-stage", "format_version": "1", "config": json.dumps(cfg)}, dtype)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3].upper() if len(sys.argv) > 3 else "F32")
