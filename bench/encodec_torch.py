#!/usr/bin/python3
"""PyTorch baseline for bench/encodec.sh: the EnCodec 24 kHz model written as the reference
(facebookresearch/encodec 0.1.2) computes it - weight-normed Conv1d/ConvTranspose1d (the norm is
recomputed at every forward, as torch.nn.utils.weight_norm does), reflect padding with the
extra-padding rule, ELU, residual blocks with 1x1 shortcuts, 2-layer nn.LSTM with skip, and the
RVQ's expanded-distance argmax - timed with torch.set_num_threads(N), best of RUNS.

usage: encodec_torch.py SECONDS RUNS THREADS [KBPS]
Prints "encode S" and "decode S". Weights are random: the cost does not depend on their values.
"""
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import weight_norm


def pad1d(x, pl, pr):
    length = x.shape[-1]
    maxpad = max(pl, pr)
    extra = 0
    if length <= maxpad:
        extra = maxpad - length + 1
        x = F.pad(x, (0, extra))
    y = F.pad(x, (pl, pr), "reflect")
    return y[..., :y.shape[-1] - extra]


class SConv1d(nn.Module):
    def __init__(self, cin, cout, k, stride=1, dilation=1):
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(cin, cout, k, stride, dilation=dilation))
        self.k, self.s, self.d = k, stride, dilation

    def forward(self, x):
        keff = (self.k - 1) * self.d + 1
        pt = keff - self.s
        length = x.shape[-1]
        n_frames = (length - keff + pt) / self.s + 1
        ideal = (math.ceil(n_frames) - 1) * self.s + (keff - pt)
        return self.conv(pad1d(x, pt, ideal - length))


class SConvTranspose1d(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.convtr = weight_norm(nn.ConvTranspose1d(cin, cout, k, stride))
        self.pt = k - stride

    def forward(self, x):
        y = self.convtr(x)
        return y[..., :y.shape[-1] - self.pt]


class ResBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.block = nn.Sequential(nn.ELU(), SConv1d(dim, dim // 2, 3), nn.ELU(), SConv1d(dim // 2, dim, 1))
        self.shortcut = SConv1d(dim, dim, 1)

    def forward(self, x):
        return self.shortcut(x) + self.block(x)


class SLSTM(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, 2)

    def forward(self, x):
        x = x.permute(2, 0, 1)
        y, _ = self.lstm(x)
        return (y + x).permute(1, 2, 0)


def encoder(nf=32, dim=128, ratios=(8, 5, 4, 2)):
    layers, mult = [SConv1d(1, nf, 7)], 1
    for r in reversed(ratios):
        layers += [ResBlock(mult * nf), nn.ELU(), SConv1d(mult * nf, 2 * mult * nf, 2 * r, r)]
        mult *= 2
    layers += [SLSTM(mult * nf), nn.ELU(), SConv1d(mult * nf, dim, 7)]
    return nn.Sequential(*layers)


def decoder(nf=32, dim=128, ratios=(8, 5, 4, 2)):
    mult = 2 ** len(ratios)
    layers = [SConv1d(dim, mult * nf, 7), SLSTM(mult * nf)]
    for r in ratios:
        layers += [nn.ELU(), SConvTranspose1d(mult * nf, mult * nf // 2, 2 * r, r), ResBlock(mult * nf // 2)]
        mult //= 2
    layers += [nn.ELU(), SConv1d(nf, 1, 7)]
    return nn.Sequential(*layers)


def rvq_encode(z, embeds):
    r = z.transpose(1, 2).reshape(-1, z.shape[1])
    codes = []
    for e in embeds:
        et = e.t()
        dist = -(r.pow(2).sum(1, keepdim=True) - 2 * r @ et + et.pow(2).sum(0, keepdim=True))
        c = dist.max(dim=-1).indices
        r = r - F.embedding(c, e)
        codes.append(c)
    return torch.stack(codes)


def rvq_decode(codes, embeds):
    q = torch.tensor(0.0)
    for c, e in zip(codes, embeds):
        q = q + F.embedding(c, e)
    return q.t().unsqueeze(0)


def main():
    secs, runs, threads = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    kbps = float(sys.argv[4]) if len(sys.argv) > 4 else 6.0
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    enc, dec = encoder().eval(), decoder().eval()
    n_q = int(kbps * 1000 // (10 * 75))
    embeds = [torch.randn(1024, 128) for _ in range(n_q)]
    t = torch.arange(int(secs * 24000)) / 24000.0
    x = (0.3 * torch.sin(2 * math.pi * 220 * t) + 0.2 * torch.sin(2 * math.pi * 587.33 * t)).view(1, 1, -1)
    best_e = best_d = 1e30
    with torch.no_grad():
        for _ in range(runs):
            t0 = time.perf_counter()
            codes = rvq_encode(enc(x), embeds)
            t1 = time.perf_counter()
            y = dec(rvq_decode(codes, embeds))
            t2 = time.perf_counter()
            best_e, best_d = min(best_e, t1 - t0), min(best_d, t2 - t1)
    assert y.shape[-1] == x.shape[-1]
    print(f"encode {best_e:.4f}")
    print(f"decode {best_d:.4f}")


main()
