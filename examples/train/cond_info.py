#!/usr/bin/env python3
"""cond_info.py - how much a trained stage model uses its conditioning.

Usage: /usr/bin/python3 cond_info.py MODEL.safetensors STREAM.hafm [--windows N] [--seed S]
                                     [--batch B] [--check]

Takes up to N (default 64) windows of the model's window_seconds from the keyed items of STREAM
(tracks named by the model's config, as hafm-train reads them) and computes the mean
cross-entropy (nats per target token) and top-1 accuracy of the target tokens under three
conditionings:

  own    each window's own conditioning tokens (hafm-train's validation loss);
  null   every conditioning token replaced by its stream's null token (row `vocab` of its table:
         the unconditional pass of classifier-free guidance);
  other  each window's conditioning taken from a window of a different item (the items of the
         selection rotated by one: item k's p-th window gets the conditioning of item k+1's
         p-th window, modulo its count), its target unchanged.

loss(other) - loss(own) is what the model takes from its conditioning about this very song
(nats per target token); loss(null) - loss(own) also counts what any plausible conditioning
tells it (that there is a song, its style). Near 0: the conditioning is ignored.

Windows: without --seed, those of hafm-train's validation (lib/train.c, hafm_trainer_eval):
consecutive whole windows u = 0, W, 2W, ... of each item in stream order, the first N of them,
so `--windows VAL_CROPS` reproduces the logged validation loss (the `export_val_loss` of the
stored weights; the `val_loss` before it is of the f32 weights before their bf16 rounding).
With --seed S, N windows drawn at random (without replacement) from that grid over all items.
Sequences are laid out as formats/model.md 3.1 (hafm_stage_crop); the model is
tests/ref/hafm_ref.py's (its loader, its parameters), run by a vectorised forward pass that
--check compares with the reference's own forward on two windows. The last line printed is
JSON: {"own":{"loss":..,"acc":..},"null":{..},"other":{..},"windows":N, ...}.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "ref"))
import hafm_ref  # noqa: E402
from hafm_stream import read_messages  # noqa: E402

_NP = {"u8": np.uint8, "i16": np.int16, "u16": np.uint16, "i32": np.int32}


# ---- the stream: the wanted token tracks of every item ----------------------------------------
def read_items(path, streams):
    """[(key, [tokens [frames, Q] int64 per stream])] for the items holding every stream's track
    (hafm_stage_read_items skips the others); checks kind, shape, rate, vocab, codebook_offset."""
    with open(path, "rb") as f:
        data = f.read()
    names = [s["name"] for s in streams]
    items, skipped, key, ids, chunks = [], [], None, {}, {}
    for m in read_messages(data):
        t = m.get("type")
        if t == "item":
            key, ids, chunks = m["key"], {}, {}
        elif t == "track" and m["name"] in names:
            s = streams[names.index(m["name"])]
            where = "%s: item '%s': track '%s'" % (path, key, m["name"])
            if m["kind"] != "tokens" or m["dtype"] not in _NP:
                sys.exit("%s: expected tokens, got %s %s" % (where, m["kind"], m["dtype"]))
            if list(m["shape"]) != [s["codebooks"]] or abs(float(m["rate"]) - s["rate"]) > 1e-9 * s["rate"] \
                    or m.get("vocab") != s["vocab"] \
                    or (m.get("attrs") or {}).get("codebook_offset", 0) != s["codebook_offset"]:
                sys.exit("%s: shape %s rate %s vocab %s offset %s; the model wants [%d] %d Hz %d offset %d" % (
                    where, m["shape"], m["rate"], m.get("vocab"), (m.get("attrs") or {}).get("codebook_offset", 0),
                    s["codebooks"], s["rate"], s["vocab"], s["codebook_offset"]))
            ids[m["id"]] = (names.index(m["name"]), np.dtype(_NP[m["dtype"]]).newbyteorder("<"))
            chunks[m["id"]] = []
        elif t == "data" and m["track"] in ids:
            chunks[m["track"]].append(np.frombuffer(m["payload"], dtype=ids[m["track"]][1]))
        elif t == "item_end":
            got = {ids[i][0]: np.concatenate(c) if c else np.zeros(0, np.int64) for i, c in chunks.items()}
            if len(got) < len(streams):
                skipped.append(key)
                continue
            toks = [got[j].astype(np.int64).reshape(-1, streams[j]["codebooks"]) for j in range(len(streams))]
            for j, s in enumerate(streams):
                if toks[j].size and (toks[j].min() < 0 or toks[j].max() >= s["vocab"]):
                    sys.exit("%s: item '%s': track '%s': token outside [0, %d)" % (path, key, s["name"], s["vocab"]))
            items.append((key, toks))
    return items, skipped


# ---- a vectorised forward pass of hafm_ref.HafmStage ----------------------------------------------
class Fast:
    """The computation of HafmStage.forward with the per-position loops done once per layout."""

    def __init__(self, model, n_units):
        cfg = model.cfg
        self.m, self.cfg, self.n = model, cfg, n_units
        table, seg, ts = hafm_ref.layout(cfg, n_units)
        self.L, self.ts = len(table), ts
        self.table = np.array(table)
        self.tables = [model.p(f"cond.{i}.emb.{q}") for i, s in enumerate(cfg["conditions"]) for q in range(s["codebooks"])]
        self.tables += [model.p(f"target.emb.{q}") for q in range(cfg["target"]["codebooks"])]
        self.pos = [torch.from_numpy(np.nonzero(self.table == k)[0]) for k in range(len(self.tables))]
        self.seg = torch.tensor(seg)
        self.aligned = None
        if cfg.get("aligned_conditioning"):
            A = np.array(hafm_ref.aligned_positions(cfg, n_units))            # [rows, cond tokens]
            assert all((self.table[A[:, a]] == self.table[A[0, a]]).all() for a in range(A.shape[1]))
            self.aligned = [(int(self.table[A[0, a]]), torch.from_numpy(A[:, a])) for a in range(A.shape[1])]
        L, B_, E = self.L, cfg["rel_buckets"], cfg["rel_max_distance"]
        by_dist = torch.tensor([hafm_ref.rel_bucket(n, B_, E) for n in range(L)])
        i = torch.arange(L)
        dist = (i[:, None] - i[None, :]).clamp(min=0)
        bias = model.p("rel_bias").detach()[by_dist[dist]].permute(2, 0, 1)   # [H, L, L]
        self.bias = bias.masked_fill(~torch.ones(L, L, dtype=torch.bool).tril(), float("-inf")).contiguous()

    @torch.no_grad()
    def __call__(self, tokens):
        """tokens [B, L] int64 -> logits [B, n_target, V]"""
        cfg, m = self.cfg, self.m
        B, L = tokens.shape
        d, H = cfg["d_model"], cfg["n_head"]
        hd, eps = d // H, cfg["norm_eps"]
        x = torch.empty(B, L, d)
        for k, pos in enumerate(self.pos):
            x[:, pos] = self.tables[k][tokens[:, pos]]
        x[:, self.ts - 1] = m.p("sep")
        x += m.p("seg")[self.seg]
        if self.aligned:
            for k, pos in self.aligned:
                x[:, self.ts - 1:] += self.tables[k][tokens[:, pos]]
        for l in range(cfg["n_layer"]):
            P = lambda n: m.p(f"layers.{l}.{n}")
            h = hafm_ref.rmsnorm(x, P("attn_norm"), eps)
            q, k, v = F.linear(h, P("qkv.weight"), P("qkv.bias")).split(d, -1)
            q = hafm_ref.rmsnorm(q.view(B, L, H, hd), P("q_norm"), eps).transpose(1, 2)
            k = hafm_ref.rmsnorm(k.view(B, L, H, hd), P("k_norm"), eps).transpose(1, 2)
            v = v.view(B, L, H, hd).transpose(1, 2)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + self.bias
            y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, L, d)
            x = x + F.linear(y, P("out.weight"), P("out.bias"))
            h = hafm_ref.rmsnorm(x, P("ffn_norm"), eps)
            a, b = F.linear(h, P("ffn_in.weight"), P("ffn_in.bias")).split(cfg["d_ff"], -1)
            x = x + F.linear(F.gelu(a) * b, P("ffn_out.weight"), P("ffn_out.bias"))
        y = hafm_ref.rmsnorm(x, m.p("out_norm"), eps)
        Q = cfg["target"]["codebooks"]
        pred = y[:, self.ts - 1:L - 1]
        out = torch.empty(B, pred.shape[1], cfg["target"]["vocab"])
        for q in range(Q):
            out[:, q::Q] = F.linear(pred[:, q::Q], m.p(f"head.{q}.weight"), m.p(f"head.{q}.bias"))
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("stream")
    ap.add_argument("--windows", type=int, default=64, help="windows to evaluate (default 64)")
    ap.add_argument("--seed", type=int, default=None,
                    help="draw the windows at random with this seed (default: hafm-train's validation windows)")
    ap.add_argument("--batch", type=int, default=8, help="windows per forward pass (default 8)")
    ap.add_argument("--check", action="store_true", help="compare the fast forward with hafm_ref's on 2 windows")
    a = ap.parse_args()
    if a.windows < 1 or a.batch < 1:
        sys.exit("cond_info: --windows and --batch must be positive")
    torch.set_num_threads(1)
    t0 = time.time()

    model = hafm_ref.HafmStage.load(a.model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = model.cfg
    conds, tgt = cfg["conditions"], cfg["target"]
    streams = conds + [tgt]
    g = 0
    for s in streams:
        g = math.gcd(g, s["rate"])
    W = int(round(cfg["window_seconds"] * g))                               # units of 1/g s
    fpu = [s["rate"] // g for s in streams]

    items, skipped = read_items(a.stream, streams)
    if skipped:
        print("cond_info: skipped %d items without all tracks" % len(skipped), file=sys.stderr)
    # whole units where every stream has data (hafm_stage_collector_finish, need_target)
    units = [min(len(t) // f for t, f in zip(toks, fpu)) for _, toks in items]
    grid = [(i, u) for i in range(len(items)) for u in range(0, units[i] - W + 1, W)]
    if not grid:
        sys.exit("cond_info: no item is at least one window (%g s) long" % cfg["window_seconds"])
    if a.seed is None:
        sel = grid[:a.windows]
    else:
        pick = np.random.default_rng(a.seed).choice(len(grid), min(a.windows, len(grid)), replace=False)
        sel = [grid[j] for j in sorted(pick)]
    N = len(sel)

    # sequences (hafm_stage_crop): [cond 0] ... [cond C-1] [SEP = 0] [target], time-major, codebook-minor
    def cond_part(i, u):
        return np.concatenate([items[i][1][c][u * fpu[c]:(u + W) * fpu[c]].reshape(-1) for c in range(len(conds))])

    def target_part(i, u):
        return items[i][1][-1][u * fpu[-1]:(u + W) * fpu[-1]].reshape(-1)

    cond = np.stack([cond_part(i, u) for i, u in sel])
    target = np.stack([target_part(i, u) for i, u in sel])
    null = np.concatenate([np.full(W * fpu[c] * s["codebooks"], s["vocab"]) for c, s in enumerate(conds)])
    # other: the items of the selection rotated by one
    order = sorted(set(i for i, _ in sel))
    if len(order) < 2:
        sys.exit("cond_info: the %d windows come from one item; 'other' needs two (more --windows)" % N)
    members = {i: [j for j, (k, _) in enumerate(sel) if k == i] for i in order}
    other = np.empty(N, np.int64)
    for r, i in enumerate(order):
        nxt = members[order[(r + 1) % len(order)]]
        for p, j in enumerate(members[i]):
            other[j] = nxt[p % len(nxt)]
    sep = np.zeros((N, 1), np.int64)
    seqs = {"own": np.concatenate([cond, sep, target], 1),
            "null": np.concatenate([np.broadcast_to(null, cond.shape), sep, target], 1),
            "other": np.concatenate([cond[other], sep, target], 1)}

    fast = Fast(model, W)
    assert fast.L == seqs["own"].shape[1] and fast.ts == cond.shape[1] + 1, "layout mismatch"
    if a.check:
        worst = 0.0
        for name in ("own", "null"):
            x = torch.from_numpy(seqs[name][:2].copy())
            with torch.no_grad():
                ref, _ = model(x, W)
            worst = max(worst, (ref - fast(x)).abs().max().item())
        print("check: fast forward against hafm_ref.HafmStage.forward: max |logit difference| %.3g" % worst)
        if worst > 1e-3:
            sys.exit("cond_info: the fast forward disagrees with the reference")

    res = {}
    for name, s in seqs.items():
        loss, ok = 0.0, 0
        for b0 in range(0, N, a.batch):
            x = torch.from_numpy(s[b0:b0 + a.batch].copy())
            logits = fast(x)
            y = x[:, fast.ts:]
            loss += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").double().sum().item()
            ok += (logits.argmax(-1) == y).sum().item()
        res[name] = {"loss": loss / target.size, "acc": ok / target.size}

    tr = {}
    try:
        tr = json.loads(hafm_ref.st_read(a.model)[1].get("training", "{}"))
    except ValueError:
        pass
    print("%s: stage %s, %s%d windows of %g s (%d items; %d target tokens each), %s" % (
        a.model, cfg.get("stage"), "aligned conditioning, " if cfg.get("aligned_conditioning") else "",
        N, cfg["window_seconds"], len(order), target.shape[1],
        "hafm-train's validation windows" if a.seed is None else "drawn with seed %d" % a.seed))
    print("  %-6s %10s %8s %12s" % ("cond", "loss", "acc", "loss - own"))
    for name in ("own", "null", "other"):
        r = res[name]
        print("  %-6s %10.5f %8.4f %+12.5f" % (name, r["loss"], r["acc"], r["loss"] - res["own"]["loss"]))
    if "val_loss" in tr:
        print("  (training metadata: val_loss %.5f, val_acc %.4f, of the f32 weights before rounding)" % (
            tr["val_loss"], tr.get("val_acc", float("nan"))))
    print("  information from the conditioning: other - own %.4f, null - own %.4f nats/token (%.1f s)" % (
        res["other"]["loss"] - res["own"]["loss"], res["null"]["loss"] - res["own"]["loss"], time.time() - t0))
    out = dict(res)
    out.update({"windows": N, "items": len(order), "model": a.model, "stream": a.stream})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
