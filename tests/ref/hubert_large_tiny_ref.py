#!/usr/bin/python3
"""A tiny HuBERT-Large-style model ("stable layer norm": pre-norm blocks, encoder LayerNorm after
the last layer; LayerNorm and bias in every conv layer; normalised waveform) and its outputs,
for tests/unit/test_hubert.c. No Large golden exists (torchaudio/HF are not installed here), so
this is an independent float64 PyTorch 1.13 implementation of the Hugging Face
HubertModel semantics with do_stable_layer_norm=True, feat_extract_norm="layer":

    /usr/bin/python3 tests/ref/hubert_large_tiny_ref.py tests/data/hubert

writes large_tiny/model.safetensors (HF names, config in __metadata__, weight-normed pos conv as
parametrizations.weight.original0/1) and large_tiny/hidden_states_LL.f32 [T, D] for
inputs/synth_1s.f32, LL = 00..03 (HF hidden_states[LL]; 03 is after encoder.layer_norm)."""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(77)
out = sys.argv[1]
C, D, H, FF, L, K, G = 32, 64, 4, 128, 3, 16, 4
conv = [(C, 10, 5)] + [(C, 3, 2)] * 4 + [(C, 2, 2)] * 2
config = {"architectures": ["HubertModel"], "model_type": "hubert", "conv_bias": True,
          "conv_dim": [c for c, _, _ in conv], "conv_kernel": [k for _, k, _ in conv],
          "conv_stride": [s for _, _, s in conv], "do_stable_layer_norm": True,
          "feat_extract_norm": "layer", "feat_extract_activation": "gelu", "hidden_act": "gelu",
          "feat_proj_layer_norm": True, "hidden_size": D, "intermediate_size": FF,
          "num_attention_heads": H, "num_hidden_layers": L, "num_conv_pos_embeddings": K,
          "num_conv_pos_embedding_groups": G, "layer_norm_eps": 1e-5}

W = {}


def rand(name, *shape, scale=1.0):
    W[name] = torch.randn(*shape, dtype=torch.float64) * scale
    return W[name]


def norm(name, n):
    W[name + ".weight"] = 0.6 + 0.8 * torch.rand(n, dtype=torch.float64)
    W[name + ".bias"] = 0.1 * torch.randn(n, dtype=torch.float64)


cin = 1
for i, (c, k, s) in enumerate(conv):
    rand("feature_extractor.conv_layers.%d.conv.weight" % i, c, cin, k, scale=(2.0 / (cin * k)) ** 0.5)
    rand("feature_extractor.conv_layers.%d.conv.bias" % i, c, scale=0.1)
    norm("feature_extractor.conv_layers.%d.layer_norm" % i, c)
    cin = c
norm("feature_projection.layer_norm", C)
rand("feature_projection.projection.weight", D, C, scale=C ** -0.5)
rand("feature_projection.projection.bias", D, scale=0.05)
pre = "encoder.pos_conv_embed.conv.parametrizations.weight."
rand(pre + "original1", D, D // G, K, scale=(D // G * K) ** -0.5)                  # v
W[pre + "original0"] = (0.5 + torch.rand(1, 1, K, dtype=torch.float64)) * 2.0      # g
rand("encoder.pos_conv_embed.conv.bias", D, scale=0.05)
norm("encoder.layer_norm", D)
for n in range(L):
    p = "encoder.layers.%d." % n
    for proj in ("q", "k", "v", "out"):
        rand(p + "attention.%s_proj.weight" % proj, D, D, scale=(3.0 if proj in "qk" else 1.0) * D ** -0.5)
        rand(p + "attention.%s_proj.bias" % proj, D, scale=0.05)
    norm(p + "layer_norm", D)
    norm(p + "final_layer_norm", D)
    rand(p + "feed_forward.intermediate_dense.weight", FF, D, scale=D ** -0.5)
    rand(p + "feed_forward.intermediate_dense.bias", FF, scale=0.05)
    rand(p + "feed_forward.output_dense.weight", D, FF, scale=FF ** -0.5)
    rand(p + "feed_forward.output_dense.bias", D, scale=0.05)
# float32 weights are what the C side reads: compute from exactly those values
W = {k: v.float().double() for k, v in W.items()}

x = torch.from_numpy(np.fromfile(os.path.join(out, "inputs", "synth_1s.f32"), dtype="<f4").astype(np.float64))
x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
h = x[None, None, :]
for i, (c, k, s) in enumerate(conv):
    p = "feature_extractor.conv_layers.%d." % i
    h = F.conv1d(h, W[p + "conv.weight"], W[p + "conv.bias"], stride=s)
    h = F.layer_norm(h.transpose(1, 2), (c,), W[p + "layer_norm.weight"], W[p + "layer_norm.bias"], 1e-5).transpose(1, 2)
    h = F.gelu(h)
h = h[0].T                                                    # [T, C]
h = F.layer_norm(h, (C,), W["feature_projection.layer_norm.weight"], W["feature_projection.layer_norm.bias"], 1e-5)
h = h @ W["feature_projection.projection.weight"].T + W["feature_projection.projection.bias"]
v, g = W[pre + "original1"], W[pre + "original0"]
w = g * v / v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()
pos = F.conv1d(h.T[None], w, W["encoder.pos_conv_embed.conv.bias"], padding=K // 2, groups=G)
pos = F.gelu(pos[:, :, :-1] if K % 2 == 0 else pos)[0].T
x = h + pos
hidden = [x]


def ln(t, name):
    return F.layer_norm(t, (D,), W[name + ".weight"], W[name + ".bias"], 1e-5)


for n in range(L):
    p = "encoder.layers.%d." % n
    y = ln(x, p + "layer_norm")
    q, k_, v_ = ((y @ W[p + "attention.%s_proj.weight" % z].T + W[p + "attention.%s_proj.bias" % z])
                 .reshape(-1, H, D // H).transpose(0, 1) for z in "qkv")
    a = torch.softmax((q * (D // H) ** -0.5) @ k_.transpose(1, 2), dim=-1) @ v_
    a = a.transpose(0, 1).reshape(-1, D) @ W[p + "attention.out_proj.weight"].T + W[p + "attention.out_proj.bias"]
    x = x + a
    y = ln(x, p + "final_layer_norm")
    f = F.gelu(y @ W[p + "feed_forward.intermediate_dense.weight"].T + W[p + "feed_forward.intermediate_dense.bias"])
    x = x + f @ W[p + "feed_forward.output_dense.weight"].T + W[p + "feed_forward.output_dense.bias"]
    hidden.append(x)
hidden[-1] = ln(x, "encoder.layer_norm")

d = os.path.join(out, "large_tiny")
os.makedirs(d, exist_ok=True)
for i, t in enumerate(hidden):
    t.numpy().astype("<f4").tofile(os.path.join(d, "hidden_states_%02d.f32" % i))
header, blobs, off = {"__metadata__": {"format": "pt", "config": json.dumps(config, sort_keys=True)}}, [], 0
for name in sorted(W):
    b = W[name].numpy().astype("<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(W[name].shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
hj = json.dumps(header, separators=(",", ":")).encode()
hj += b" " * (-len(hj) % 8)
with open(os.path.join(d, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
print("T", hidden[0].shape[0], "max|h|", [round(float(t.abs().max()), 3) for t in hidden], "bytes", off)
