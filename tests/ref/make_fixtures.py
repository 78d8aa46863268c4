"""Writes tests/data/stages/ref_stage{1,2,3}.safetensors (and ref_stageN_aligned, the same with
aligned conditioning): a small random model of each stage's
configuration (a hafm model file) plus tokens, the reference logits, the mean cross-entropy and
every parameter's gradient. Run: /usr/bin/python3 tests/ref/make_fixtures.py tests/data/stages"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

from hafm_ref import HafmStage, rel_bucket

TINY = {"n_layer": 2, "d_model": 32, "n_head": 4, "d_ff": 48, "rel_buckets": 8, "rel_max_distance": 16,
        "norm_eps": 1e-6}


def stream(name, Q, vocab, rate, offset=0):
    return {"name": name, "codebooks": Q, "codebook_offset": offset, "vocab": vocab, "rate": rate}


STAGES = {
    1: ({"conditions": [stream("vocal.semantic", 1, 13, 50)], "target": stream("accomp.semantic", 1, 11, 50),
         "window_seconds": 0.24}, 12),
    2: ({"conditions": [stream("vocal.semantic", 1, 13, 50), stream("accomp.semantic", 1, 11, 50)],
         "target": stream("accomp.coarse", 4, 17, 75), "window_seconds": 0.12}, 3),
    3: ({"conditions": [stream("accomp.coarse", 4, 17, 75)], "target": stream("accomp.fine", 4, 19, 75, 4),
         "window_seconds": 0.08}, 6),
}


def main(outdir):
    for aligned in (False, True):
        for stage, (extra, n_units) in STAGES.items():
            write_fixture(outdir, stage, extra, n_units, aligned)


def write_fixture(outdir, stage, extra, n_units, aligned):
    if True:
        torch.manual_seed(stage + (10 if aligned else 0))
        cfg = dict(TINY, stage=stage, **extra)
        if aligned:
            cfg["aligned_conditioning"] = True
        m = HafmStage(cfg)
        with torch.no_grad():
            for n in m.names:   # random everything, norms around 1, so every path carries signal
                p = m.p(n)
                p.copy_(1.0 + 0.2 * torch.randn_like(p) if n.endswith("norm") else 0.3 * torch.randn_like(p))
        from hafm_ref import layout
        table, seg, ts = layout(cfg, n_units)
        L, B = len(table), 2
        rows = []
        tabsize = [s["vocab"] + 1 for s in cfg["conditions"] for _ in range(s["codebooks"])] + \
                  [cfg["target"]["vocab"]] * cfg["target"]["codebooks"]
        tok = torch.zeros(B, L, dtype=torch.long)
        for b in range(B):
            for p in range(L):
                if table[p] >= 0:
                    t = table[p]
                    # sequence 1 has the null conditioning (the unconditional CFG pass)
                    null = b == 1 and p < ts - 1
                    tok[b, p] = tabsize[t] - 1 if null else int(torch.randint(0, tabsize[t] - (1 if p < ts else 0), ()))
        logits, _ = m(tok, n_units)
        target = tok[:, ts:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        loss.backward()
        bk = np.array([rel_bucket(n, cfg["rel_buckets"], cfg["rel_max_distance"]) for n in range(L)], np.int32)
        extra_t = {"fixture.tokens": tok.numpy().astype(np.int32), "fixture.logits": logits.detach().numpy(),
                   "fixture.loss": np.array([loss.item()], np.float32), "fixture.buckets": bk,
                   "fixture.n_units": np.array([n_units], np.int32)}
        for n in m.names:
            extra_t["grad." + n] = m.p(n).grad.numpy().astype(np.float32)
        path = f"{outdir}/ref_stage{stage}{'_aligned' if aligned else ''}.safetensors"
        m.save(path, extra=extra_t)
        print(f"{path}: L={L} loss={loss.item():.6f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/stages")
