#!/usr/bin/python3
"""The PyTorch baseline of the training figure of bench/stages.sh: the hafm stage Transformer of
formats/model.md section 3 (RMSNorm pre-norm blocks, QK-norm, GEGLU, one causal T5 relative bias
table shared by all layers, per-codebook heads), vectorised with PyTorch 1.13's standard ops
(matmul + softmax attention: 1.13 has no scaled_dot_product_attention), randomly initialised as
hafm_tf_init_random does (normal 0.02, norms 1, biases 0), trained on the tokens and with the
timing of `stages_bench train STAGE BATCH UNITS STEPS` (bench/stages_bench.c):

  - one sequence per item, `units` time units of the stage's layout: stage 1 at 512 units is
    512 conditioning tokens + SEP + 512 target tokens = 1025; tokens counted = batch x L
    (every position, as stages_bench counts them), the loss (mean cross-entropy over the
    batch x n_target predictions) covers the target tokens only;
  - token at position p of item b: (p * 7 + b) mod (rows of p's table - 1), SEP 0;
  - forward, loss.backward(), torch.optim.AdamW(lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight
    decay 0.01 on the 2-D weights as hafm-train applies it; stages_bench's decay mask is all
    zeros, so it decays nothing: one multiply per weight either way); no gradient clipping, as
    stages_bench has none (hafm-train clips at 1.0: --clip 1.0 adds it);
  - `--warmup` untimed steps (1, like stages_bench's step 0), then `--steps` timed ones (1 in
    bench/stages.sh); the figure is steps x batch x L over their total wall time (--best: the
    best single step instead).

The whole batch goes through the model at once (PyTorch's usual way; the issue quotes its figure
for "batch 8 x 1024"); --micro-batch N accumulates gradients over chunks of N like hafm-train's
--micro-batch (stages_bench runs items one at a time). At paper size the whole batch of 8 peaks
at about 11 GiB of memory (the 12 layers' [8, 8, 1025, 1025] attention probabilities kept for the
backward are 3.2 GB of it).

Prints one line: "<tokens/s>" (with --cpu: "<tokens/s> <tokens per CPU-second>").
The thread count is --threads; OMP_WAIT_POLICY is read from the environment by libgomp.

usage: hafm_train_torch.py [--stage 1] [--batch 8] [--units 512] [--steps 1] [--warmup 1]
                           [--threads 2] [--micro-batch B] [--clip C] [--best] [--cpu] [-v]
                           [--layers N --d-model D --heads H --d-ff F]   (a smaller model)
       hafm_train_torch.py --check    (tiny model: parity with tests/ref/hafm_ref.py, loss falls)
"""
import argparse
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F


def stream(name, q, off, vocab, rate):
    return {"name": name, "codebooks": q, "codebook_offset": off, "vocab": vocab, "rate": rate}


def paper_config(stage):
    """hafm_tf_config_paper (lib/transformer.c), as the JSON config of formats/model.md."""
    cfg = {"stage": stage, "n_layer": 12, "d_model": 512, "n_head": 8, "d_ff": 1365,
           "rel_buckets": 32, "rel_max_distance": 128, "norm_eps": 1e-6, "window_seconds": 10}
    if stage == 1:
        cfg["conditions"] = [stream("vocal.semantic", 1, 0, 500, 50)]
        cfg["target"] = stream("accomp.semantic", 1, 0, 500, 50)
    elif stage == 2:
        cfg["conditions"] = [stream("vocal.semantic", 1, 0, 500, 50), stream("accomp.semantic", 1, 0, 500, 50)]
        cfg["target"] = stream("accomp.coarse", 4, 0, 1024, 75)
    elif stage == 3:
        cfg["conditions"] = [stream("accomp.coarse", 4, 0, 1024, 75)]
        cfg["target"] = stream("accomp.fine", 4, 4, 1024, 75)
    else:
        raise SystemExit(f"stage must be 1, 2 or 3, got {stage}")
    return cfg


def tensor_shapes(cfg):
    """[(name, shape)] in file order (formats/model.md 3.5; as tests/ref/hafm_ref.py)."""
    d, ff, hd = cfg["d_model"], cfg["d_ff"], cfg["d_model"] // cfg["n_head"]
    out = []
    for i, s in enumerate(cfg["conditions"]):
        for q in range(s["codebooks"]):
            out.append((f"cond.{i}.emb.{q}", [s["vocab"] + 1, d]))
    t = cfg["target"]
    for q in range(t["codebooks"]):
        out.append((f"target.emb.{q}", [t["vocab"], d]))
    out += [("sep", [d]), ("seg", [len(cfg["conditions"]) + 1, d]), ("rel_bias", [cfg["rel_buckets"], cfg["n_head"]])]
    for l in range(cfg["n_layer"]):
        p = f"layers.{l}."
        out += [(p + "attn_norm", [d]), (p + "qkv.weight", [3 * d, d]), (p + "qkv.bias", [3 * d]),
                (p + "q_norm", [hd]), (p + "k_norm", [hd]), (p + "out.weight", [d, d]), (p + "out.bias", [d]),
                (p + "ffn_norm", [d]), (p + "ffn_in.weight", [2 * ff, d]), (p + "ffn_in.bias", [2 * ff]),
                (p + "ffn_out.weight", [d, ff]), (p + "ffn_out.bias", [d])]
    out.append(("out_norm", [d]))
    for q in range(t["codebooks"]):
        out += [(f"head.{q}.weight", [t["vocab"], d]), (f"head.{q}.bias", [t["vocab"]])]
    return out


def frames_per_unit(cfg, s):
    g = cfg["target"]["rate"]
    for c in cfg["conditions"]:
        g = math.gcd(g, c["rate"])
    return s["rate"] // g


def table_rows(cfg):
    """Rows of each embedding table: cond tables (codebook-minor, vocab + 1 rows), then target."""
    rows = [s["vocab"] + 1 for s in cfg["conditions"] for _ in range(s["codebooks"])]
    return rows + [cfg["target"]["vocab"]] * cfg["target"]["codebooks"]


def layout(cfg, n_units):
    """(table [L], seg [L], target_start) as hafm_tf_layout_init: long tensors, SEP's table -1."""
    tables, segs, t0 = [], [], 0
    for i, s in enumerate(cfg["conditions"]):
        n = n_units * frames_per_unit(cfg, s) * s["codebooks"]
        tables.append(t0 + torch.arange(n) % s["codebooks"])
        segs.append(torch.full((n,), i))
        t0 += s["codebooks"]
    C, Q = len(cfg["conditions"]), cfg["target"]["codebooks"]
    nt = n_units * frames_per_unit(cfg, cfg["target"]) * Q
    tables += [torch.tensor([-1]), t0 + torch.arange(nt) % Q]
    segs += [torch.full((nt + 1,), C)]
    table, seg = torch.cat(tables), torch.cat(segs)
    return table, seg, table.numel() - nt


def rel_buckets(n, buckets, max_distance):
    """T5 causal buckets of the distances n (long tensor, >= 0), in float32 and truncated toward
    zero as hafm_rel_bucket (lib/transformer_kernels.c) and hafm_ref.rel_bucket compute them."""
    exact = buckets // 2
    v = torch.log(n.to(torch.float32) / exact) / torch.tensor(math.log(max_distance / exact), dtype=torch.float32) \
        * torch.tensor(float(buckets - exact), dtype=torch.float32)
    far = (exact + v.clamp(min=0).to(torch.int64)).clamp(max=buckets - 1)
    return torch.where(n < exact, n, far)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class HafmStageFast(torch.nn.Module):
    """The stage Transformer, vectorised; parameters named as hafm_ref.HafmStage ('.' -> '__')."""

    def __init__(self, cfg, n_units, seed=1):
        super().__init__()
        self.cfg = cfg
        self.names = []
        g = torch.Generator().manual_seed(seed)
        for name, shape in tensor_shapes(cfg):
            if name.endswith("norm"):
                init = torch.ones(shape)
            elif name.endswith("bias") and name != "rel_bias":
                init = torch.zeros(shape)
            else:
                init = torch.randn(shape, generator=g) * 0.02
            self.register_parameter(name.replace(".", "__"), torch.nn.Parameter(init))
            self.names.append(name)
        table, seg, ts = layout(cfg, n_units)
        L = table.numel()
        self.L, self.ts, self.n_target = L, ts, L - ts
        rows = table_rows(cfg)
        # the tables are concatenated (then SEP's vector) so one gather embeds every position
        offs = torch.tensor([0] + rows).cumsum(0)
        self.register_buffer("row_off", torch.where(table < 0, offs[-1], offs[table.clamp(min=0)]), persistent=False)
        self.register_buffer("seg_idx", seg, persistent=False)
        pos = torch.arange(L)
        dist = pos[:, None] - pos[None, :]
        self.register_buffer("bucket", rel_buckets(dist.clamp(min=0), cfg["rel_buckets"], cfg["rel_max_distance"]),
                             persistent=False)                                   # [L, L]
        self.register_buffer("causal", torch.zeros(L, L).masked_fill(dist < 0, float("-inf")), persistent=False)
        self.table, self.rows = table, rows

    def p(self, name):
        return getattr(self, name.replace(".", "__"))

    def tokens(self, batch):
        """stages_bench's tokens: (p * 7 + b) mod (rows - 1), SEP 0; [batch, L] long."""
        rows = torch.tensor(self.rows)[self.table.clamp(min=0)]
        p = torch.arange(self.L)
        tok = (p[None, :] * 7 + torch.arange(batch)[:, None]) % (rows - 1)
        return torch.where(self.table < 0, 0, tok)

    def forward(self, tokens):
        """tokens [B, L] -> logits [B, n_target, vocab_t] (row i predicts target token i)."""
        cfg = self.cfg
        B, L = tokens.shape
        d, H = cfg["d_model"], cfg["n_head"]
        hd, eps, ff = d // H, cfg["norm_eps"], cfg["d_ff"]
        tabs = [self.p(f"cond.{i}.emb.{q}") for i, s in enumerate(cfg["conditions"]) for q in range(s["codebooks"])]
        tabs += [self.p(f"target.emb.{q}") for q in range(cfg["target"]["codebooks"])]
        emb = torch.cat(tabs + [self.p("sep")[None]])
        x = F.embedding(tokens + self.row_off, emb) + F.embedding(self.seg_idx, self.p("seg"))
        bias = F.embedding(self.bucket, self.p("rel_bias")).permute(2, 0, 1) + self.causal   # [H, L, L]
        scale = 1.0 / math.sqrt(hd)
        for l in range(cfg["n_layer"]):
            P = lambda n: self.p(f"layers.{l}.{n}")
            h = rmsnorm(x, P("attn_norm"), eps)
            q, k, v = F.linear(h, P("qkv.weight"), P("qkv.bias")).split(d, -1)
            # the 1/sqrt(hd) on q, not on the [B, H, L, L] scores: one pass less over them
            q = (rmsnorm(q.view(B, L, H, hd), P("q_norm"), eps) * scale).transpose(1, 2)
            k = rmsnorm(k.view(B, L, H, hd), P("k_norm"), eps).transpose(1, 2)
            v = v.view(B, L, H, hd).transpose(1, 2)
            att = torch.matmul(q, k.transpose(-1, -2)) + bias
            y = torch.matmul(att.softmax(-1), v).transpose(1, 2).reshape(B, L, d)
            x = x + F.linear(y, P("out.weight"), P("out.bias"))
            a, b = F.linear(rmsnorm(x, P("ffn_norm"), eps), P("ffn_in.weight"), P("ffn_in.bias")).split(ff, -1)
            x = x + F.linear(F.gelu(a) * b, P("ffn_out.weight"), P("ffn_out.bias"))
        y = rmsnorm(x[:, self.ts - 1:L - 1], self.p("out_norm"), eps)              # [B, n_target, d]
        Q = cfg["target"]["codebooks"]
        if Q == 1:
            return F.linear(y, self.p("head.0.weight"), self.p("head.0.bias"))
        out = [F.linear(y[:, q::Q], self.p(f"head.{q}.weight"), self.p(f"head.{q}.bias")) for q in range(Q)]
        return torch.stack(out, 2).reshape(B, self.n_target, -1)

    def loss(self, tokens):
        """Mean cross-entropy of the target tokens (hafm_tf_loss with scale 1 / (B n_target))."""
        logits = self.forward(tokens)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, self.ts:].reshape(-1))


def optimizer(model, lr=1e-4, weight_decay=0.01):
    """AdamW with decay on the 2-D weights (hafm_tf_tensor.decay), none on norms, biases, sep."""
    decay = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() != 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.999), eps=1e-8)


def train_step(model, opt, tokens, micro, clip):
    opt.zero_grad(set_to_none=True)
    B = tokens.shape[0]
    total = 0.0
    for b0 in range(0, B, micro):
        chunk = tokens[b0:b0 + micro]
        loss = model.loss(chunk) * (chunk.shape[0] / B)
        loss.backward()
        total += loss.item()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return total


def tiny_config():
    cfg = paper_config(1)
    cfg.update(n_layer=2, d_model=64, n_head=4, d_ff=171)
    return cfg


def check():
    """Parity of the tiny model with tests/ref/hafm_ref.py, buckets with hafm_ref.rel_bucket, and a
    falling loss. Exit status 1 on a failure."""
    ok = True
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "ref"))
    import hafm_ref
    n = torch.arange(20000)
    for B, M in ((32, 128), (16, 64), (8, 20)):
        mine = rel_buckets(n, B, M)
        ref = torch.tensor([hafm_ref.rel_bucket(int(i), B, M) for i in n])
        bad = int((mine != ref).sum())
        print(f"check: buckets {B}/{M} over distances 0..19999: {bad} differ from hafm_ref", file=sys.stderr)
        ok &= bad == 0
    for stage, units in ((1, 24), (2, 8), (3, 6)):
        cfg = paper_config(stage)
        cfg.update(n_layer=2, d_model=64, n_head=4, d_ff=171)
        torch.manual_seed(0)
        m = HafmStageFast(cfg, units, seed=stage)
        for name in m.names:   # larger biases and gains than the init, so that every term matters
            with torch.no_grad():
                m.p(name).add_(0.1 * torch.randn(m.p(name).shape))
        ref = hafm_ref.HafmStage(cfg)
        ref.load_state_dict(m.state_dict())
        tok = m.tokens(3)
        tok[1] = torch.where(m.table < 0, 0, torch.randint(0, 10 ** 6, (m.L,)) % (torch.tensor(m.rows)[m.table.clamp(min=0)]))
        lm = m(tok)
        lr_, ts = ref(tok, units)
        err = float((lm - lr_).abs().max())
        ce_ref = F.cross_entropy(lr_.reshape(-1, lr_.shape[-1]), tok[:, ts:].reshape(-1))
        ce = m.loss(tok)
        lerr = abs(float(ce) - float(ce_ref))
        ce.backward()
        ce_ref.backward()
        gerr = max(float((m.p(n).grad - ref.p(n).grad).abs().max()) for n in m.names)
        gmax = max(float(ref.p(n).grad.abs().max()) for n in m.names)
        good = ts == m.ts and err < 1e-4 and lerr < 1e-5 and gerr < 1e-5 * max(gmax, 1.0)
        print(f"check: stage {stage} tiny, L {m.L}: logits max |diff| {err:.2e}, loss diff {lerr:.2e}, gradients max "
              f"|diff| {gerr:.2e} (max |grad| {gmax:.2e}) against hafm_ref: {'ok' if good else 'FAIL'}", file=sys.stderr)
        ok &= good
    torch.manual_seed(0)
    m = HafmStageFast(tiny_config(), 64)
    opt = optimizer(m, lr=3e-3)
    tok = m.tokens(4)
    losses = [train_step(m, opt, tok, 2, 1.0) for _ in range(30)]
    good = losses[-1] < 0.5 * losses[0]
    print(f"check: tiny training, 30 steps on one batch: loss {losses[0]:.3f} -> {losses[-1]:.3f} "
          f"(ln 500 = {math.log(500):.3f}): {'ok' if good else 'FAIL'}", file=sys.stderr)
    ok &= good
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--units", type=int, default=512, help="time units per item (stage 1: 512 -> L 1025)")
    ap.add_argument("--steps", type=int, default=1, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("HAFM_THREADS", "2")))
    ap.add_argument("--micro-batch", type=int, default=0, help="items per forward/backward (default: the batch)")
    ap.add_argument("--clip", type=float, default=0.0, help="global gradient-norm clipping (hafm-train: 1.0)")
    ap.add_argument("--best", action="store_true", help="the best timed step, not their mean")
    ap.add_argument("--cpu", action="store_true", help="also print tokens per CPU-second of the process")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--d-ff", type=int)
    ap.add_argument("--check", action="store_true", help="tiny-model parity and loss checks, then exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="per-step times, loss and peak memory on stderr")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.check:
        return check()
    cfg = paper_config(a.stage)
    for key, val in (("n_layer", a.layers), ("d_model", a.d_model), ("n_head", a.heads), ("d_ff", a.d_ff)):
        if val:
            cfg[key] = val
    torch.manual_seed(1)
    model = HafmStageFast(cfg, a.units)
    opt = optimizer(model)
    tok = model.tokens(a.batch)
    micro = a.micro_batch if a.micro_batch > 0 else a.batch
    ntok = a.batch * model.L
    if a.verbose:
        n = sum(p.numel() for p in model.parameters())
        print(f"hafm_train_torch: stage {a.stage}, {n} parameters, batch {a.batch} x {model.L} tokens "
              f"({model.n_target} targets), micro-batch {micro}, {torch.get_num_threads()} threads, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}", file=sys.stderr)
    walls, cpus = [], []
    for s in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = train_step(model, opt, tok, micro, a.clip)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if s >= a.warmup:
            walls.append(wall)
            cpus.append(cpu)
        if a.verbose:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
            print(f"hafm_train_torch: step {s}{' (warmup)' if s < a.warmup else ''}: loss {loss:.4f}, {wall:.2f} s, "
                  f"{cpu:.2f} CPU-s, {ntok / wall:.1f} tokens/s, peak RSS {rss:.2f} GiB", file=sys.stderr)
    if not walls:
        raise SystemExit("hafm_train_torch: no timed steps")
    if a.best:
        tps, cps = ntok / min(walls), ntok / min(cpus)
    else:
        tps, cps = ntok * len(walls) / sum(walls), ntok * len(cpus) / sum(cpus)
    print(f"{tps:.1f} {cps:.1f}" if a.cpu else f"{tps:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
