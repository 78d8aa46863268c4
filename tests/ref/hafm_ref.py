"""PyTorch reference of the hafm stage Transformer (formats/model.md), reading and writing the
same safetensors layout as the C tools.

It is the parity oracle of tests/unit/test_transformer.c and the bridge for users who train on
GPUs in PyTorch and generate with the C tools:

    model = HafmStage.load("stage2.safetensors")        # or HafmStage(config) for a new one
    logits = model(tokens, layout)                         # tokens [B, L] int64
    model.save("trained.safetensors", dtype="bf16")

Only torch and numpy are needed (no safetensors package: the container is 30 lines below).
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

# ---- safetensors -----------------------------------------------------------------------------
_DT = {"F32": (np.float32, 4), "I32": (np.int32, 4), "I64": (np.int64, 8), "BF16": (np.uint16, 2)}


def st_read(path):
    """Returns ({name: float32/int numpy array}, metadata dict). BF16 is widened to float32."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        dt, _ = _DT[e["dtype"]]
        a, b = e["data_offsets"]
        arr = np.frombuffer(raw[base + a:base + b], dtype=dt).reshape(e["shape"])
        if e["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.copy()
    return out, meta


def st_write(path, tensors, meta, dtype="F32"):
    """tensors: {name: numpy array}; floats stored as dtype (F32 or BF16, round to nearest even)."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype == np.float32 and dtype == "BF16":
            u = arr.view(np.uint32).astype(np.uint64)
            u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
            code, data = "BF16", u.tobytes()
        else:
            code = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.int64): "I64"}[arr.dtype]
            data = arr.tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        pad = (-len(data)) % 8
        blobs.append(data + b"\0" * pad)
        off += len(data) + pad
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---- the model ---------------------------------------------------------------------------------
def rel_bucket(n, buckets, max_distance):
    """T5 causal bucket of distance n >= 0, in float32 like lib/transformer_kernels.c."""
    exact = buckets // 2
    if n < exact:
        return n
    v = np.float32(np.log(np.float32(n) / np.float32(exact))) / np.float32(math.log(max_distance / exact)) \
        * np.float32(buckets - exact)
    return min(buckets - 1, exact + int(v))


def frames_per_unit(cfg, s):
    g = cfg["target"]["rate"]
    for c in cfg["conditions"]:
        g = math.gcd(g, c["rate"])
    return s["rate"] // g


def layout(cfg, n_units):
    """(table [L], seg [L], target_start): as hafm_tf_layout_init."""
    table, seg, t0 = [], [], 0
    for i, s in enumerate(cfg["conditions"]):
        for _ in range(n_units * frames_per_unit(cfg, s)):
            for q in range(s["codebooks"]):
                table.append(t0 + q)
                seg.append(i)
        t0 += s["codebooks"]
    table.append(-1)
    seg.append(len(cfg["conditions"]))
    ts = len(table)
    Q = cfg["target"]["codebooks"]
    for i in range(n_units * frames_per_unit(cfg, cfg["target"]) * Q):
        table.append(t0 + i % Q)
        seg.append(len(cfg["conditions"]))
    return table, seg, ts


def aligned_positions(cfg, n_units):
    """formats/model.md 3.2, aligned conditioning: for each position from SEP on (row r is
    position ts - 1 + r, predicting target token r), the conditioning positions of its time."""
    table, seg, ts = layout(cfg, n_units)
    Qt, rt = cfg["target"]["codebooks"], cfg["target"]["rate"]
    Ft = n_units * frames_per_unit(cfg, cfg["target"])
    starts, p = [], 0
    for s in cfg["conditions"]:
        starts.append(p)
        p += n_units * frames_per_unit(cfg, s) * s["codebooks"]
    rows = []
    for r in range(Ft * Qt + 1):
        f = min(r // Qt, Ft - 1)
        row = []
        for s, st in zip(cfg["conditions"], starts):
            fc = f * s["rate"] // rt
            row += [st + fc * s["codebooks"] + q for q in range(s["codebooks"])]
        rows.append(row)
    return rows


def tensor_shapes(cfg):
    """[(name, shape)] in file order (formats/model.md 3.5)."""
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


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class HafmStage(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.names = []
        for name, shape in tensor_shapes(cfg):
            init = torch.ones(shape) if name.endswith("norm") else torch.zeros(shape)
            self.register_parameter(name.replace(".", "__"), torch.nn.Parameter(init))
            self.names.append(name)

    def p(self, name):
        return getattr(self, name.replace(".", "__"))

    @classmethod
    def load(cls, path):
        tensors, meta = st_read(path)
        assert meta.get("format") == "hafm-stage" and meta.get("format_version") in ("1", "2"), path
        m = cls(json.loads(meta["config"]))
        with torch.no_grad():
            for name in m.names:
                m.p(name).copy_(torch.from_numpy(tensors[name]))
        return m

    def save(self, path, dtype="F32", extra=None):
        t = {n: self.p(n).detach().cpu().numpy().astype(np.float32) for n in self.names}
        t.update(extra or {})
        version = "2" if self.cfg.get("aligned_conditioning") else "1"
        st_write(path, t, {"format": "hafm-stage", "format_version": version, "config": json.dumps(self.cfg)}, dtype)

    def forward(self, tokens, n_units):
        """tokens [B, L] (row indices into each position's table, SEP 0) -> logits [B, n_target, V]."""
        cfg = self.cfg
        table, seg, ts = layout(cfg, n_units)
        B, L = tokens.shape
        d, H = cfg["d_model"], cfg["n_head"]
        hd, eps = d // H, cfg["norm_eps"]
        tables = [self.p(f"cond.{i}.emb.{q}") for i, s in enumerate(cfg["conditions"]) for q in range(s["codebooks"])]
        tables += [self.p(f"target.emb.{q}") for q in range(cfg["target"]["codebooks"])]
        rows = []
        for pos in range(L):
            e = self.p("sep").expand(B, d) if table[pos] < 0 else tables[table[pos]][tokens[:, pos]]
            rows.append(e + self.p("seg")[seg[pos]])
        x = torch.stack(rows, 1)
        if cfg.get("aligned_conditioning"):
            add = []
            for r, row in enumerate(aligned_positions(cfg, n_units)):
                add.append(sum(tables[table[a]][tokens[:, a]] for a in row))
            x = torch.cat([x[:, :ts - 1], x[:, ts - 1:] + torch.stack(add, 1)], 1)
        bk = torch.tensor([[rel_bucket(i - j, cfg["rel_buckets"], cfg["rel_max_distance"]) if j <= i else 0
                            for j in range(L)] for i in range(L)])
        bias = self.p("rel_bias")[bk].permute(2, 0, 1)                       # [H, L, L]
        mask = torch.ones(L, L, dtype=torch.bool).tril()
        bias = bias.masked_fill(~mask, float("-inf"))
        for l in range(cfg["n_layer"]):
            P = lambda n: self.p(f"layers.{l}.{n}")
            h = rmsnorm(x, P("attn_norm"), eps)
            qkv = F.linear(h, P("qkv.weight"), P("qkv.bias"))
            q, k, v = qkv.split(d, -1)
            q = rmsnorm(q.view(B, L, H, hd), P("q_norm"), eps).transpose(1, 2)
            k = rmsnorm(k.view(B, L, H, hd), P("k_norm"), eps).transpose(1, 2)
            v = v.view(B, L, H, hd).transpose(1, 2)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + bias
            y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, L, d)
            x = x + F.linear(y, P("out.weight"), P("out.bias"))
            h = rmsnorm(x, P("ffn_norm"), eps)
            a, b = F.linear(h, P("ffn_in.weight"), P("ffn_in.bias")).split(cfg["d_ff"], -1)
            x = x + F.linear(F.gelu(a) * b, P("ffn_out.weight"), P("ffn_out.bias"))
        y = rmsnorm(x, self.p("out_norm"), eps)
        Q = cfg["target"]["codebooks"]
        pred = y[:, ts - 1:L - 1]                                             # [B, n_target, d]
        out = torch.empty(B, pred.shape[1], cfg["target"]["vocab"])
        for q in range(Q):
            out[:, q::Q] = F.linear(pred[:, q::Q], self.p(f"head.{q}.weight"), self.p(f"head.{q}.bias"))
        return out, ts
