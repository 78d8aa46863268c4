# Makes vggish_tiny.safetensors (torch-port naming, reduced widths, seed 5), vggish_tiny_in_2x96x64.f32
# and vggish_tiny_emb_2x16.f32 (the embedding before the final ReLU, torchvggish's forward).
# Run: /usr/bin/python3 tests/data/fadvsep/make_vggish_tiny.py  (Debian python3-torch 1.13)
import json, struct, os
import numpy as np
import torch, torch.nn as nn

torch.manual_seed(5)
ch = [4, 8, 8, 8, 16, 16]
layers, c = [], 1
for i, co in enumerate(ch):
    layers += [nn.Conv2d(c, co, 3, padding=1), nn.ReLU(inplace=True)]
    if i in (0, 1, 3, 5):
        layers.append(nn.MaxPool2d(2, 2))
    c = co
features = nn.Sequential(*layers)
embeddings = nn.Sequential(nn.Linear(16 * 6 * 4, 32), nn.ReLU(True), nn.Linear(32, 32), nn.ReLU(True),
                           nn.Linear(32, 16), nn.ReLU(True))
x = torch.randn(2, 1, 96, 64, generator=torch.Generator().manual_seed(6)) * 2 - 3
with torch.no_grad():
    h = features(x)
    h = torch.transpose(h, 1, 3)
    h = torch.transpose(h, 1, 2)
    h = h.contiguous().view(h.size(0), -1)
    emb = embeddings[:-1](h)
here = os.path.dirname(os.path.abspath(__file__))
tensors = {}
for prefix, mod in (("features", features), ("embeddings", embeddings)):
    for k, v in mod.state_dict().items():
        tensors[f"{prefix}.{k}"] = v.numpy().astype("<f4")
header, off, blobs = {}, 0, []
for k in sorted(tensors):
    b = tensors[k].tobytes()
    header[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(os.path.join(here, "vggish_tiny.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
x.numpy().astype("<f4").tofile(os.path.join(here, "vggish_tiny_in_2x96x64.f32"))
emb.numpy().astype("<f4").tofile(os.path.join(here, "vggish_tiny_emb_2x16.f32"))
print("emb", emb.shape, float(emb.abs().max()))
