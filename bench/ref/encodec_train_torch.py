#!/usr/bin/python3
"""The PyTorch baseline of bench/codectrain.sh: EnCodec's architecture and training losses as
hafm's encodec-train runs them (SEANet with weight norm, causal reflect padding, 2-layer LSTM,
EMA RVQ with k-means init, dead codes and quantiser dropout, L1 + multi-scale mel, optionally the
MS-STFT discriminator with feature matching and the loss balancer), timed on random audio.

Prints one line: "<seconds of audio per second of wall time>".
usage: encodec_train_torch.py [--small] [--adversarial] [--batch N] [--segment SEC] [--steps N] [--threads N]
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import weight_norm


def pad1d(x, left, right):
    """PyTorch reflect padding with EnCodec's rule for inputs shorter than the padding."""
    length = x.shape[-1]
    extra = 0
    if length <= max(left, right):
        extra = max(left, right) - length + 1
        x = F.pad(x, (0, extra))
    y = F.pad(x, (left, right), mode="reflect")
    return y[..., : y.shape[-1] - extra]


class SConv1d(nn.Module):
    def __init__(self, cin, cout, k, stride=1, dil=1):
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(cin, cout, k, stride, dilation=dil))
        self.k, self.s, self.d = k, stride, dil

    def forward(self, x):
        keff = (self.k - 1) * self.d + 1
        length = x.shape[-1]
        extra = math.ceil(length / self.s) * self.s - length
        return self.conv(pad1d(x, keff - self.s, extra))


class SConvTranspose1d(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.conv = weight_norm(nn.ConvTranspose1d(cin, cout, k, stride))
        self.trim = k - stride

    def forward(self, x):
        y = self.conv(x)
        return y[..., : y.shape[-1] - self.trim]


class ResBlock(nn.Module):
    def __init__(self, dim, compress=2, k=3, dil=1):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(nn.ELU(), SConv1d(dim, hidden, k, dil=dil), nn.ELU(), SConv1d(hidden, dim, 1))
        self.shortcut = SConv1d(dim, dim, 1)

    def forward(self, x):
        return self.shortcut(x) + self.block(x)


class SLSTM(nn.Module):
    def __init__(self, dim, layers):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, layers)

    def forward(self, x):
        x = x.permute(2, 0, 1)
        y, _ = self.lstm(x)
        return (y + x).permute(1, 2, 0)


def seanet(nf, dim, ratios, lstm):
    enc = [SConv1d(1, nf, 7)]
    mult = 1
    for r in reversed(ratios):
        enc += [ResBlock(mult * nf), nn.ELU(), SConv1d(mult * nf, mult * nf * 2, 2 * r, r)]
        mult *= 2
    enc += [SLSTM(mult * nf, lstm), nn.ELU(), SConv1d(mult * nf, dim, 7)]
    dec = [SConv1d(dim, mult * nf, 7), SLSTM(mult * nf, lstm)]
    for r in ratios:
        dec += [nn.ELU(), SConvTranspose1d(mult * nf, mult * nf // 2, 2 * r, r), ResBlock(mult * nf // 2)]
        mult //= 2
    dec += [nn.ELU(), SConv1d(nf, 1, 7)]
    return nn.Sequential(*enc), nn.Sequential(*dec)


class Codebook:
    """EnCodec's EuclideanCodebook (training path): k-means init, EMA, dead-code replacement."""

    def __init__(self, dim, bins, decay=0.99, eps=1e-5, threshold=2.0, kmeans_iters=50):
        self.embed = torch.zeros(bins, dim)
        self.embed_avg = torch.zeros(bins, dim)
        self.cluster_size = torch.zeros(bins)
        self.inited = False
        self.bins, self.decay, self.eps, self.threshold, self.iters = bins, decay, eps, threshold, kmeans_iters

    def sample(self, x):
        n = x.shape[0]
        idx = torch.randperm(n)[: self.bins] if n >= self.bins else torch.randint(0, n, (self.bins,))
        return x[idx]

    def nearest(self, x, embed):
        dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed.t() + embed.pow(2).sum(1)[None])
        return dist.max(dim=-1).indices

    @torch.no_grad()
    def forward(self, x):
        if not self.inited:
            means = self.sample(x)
            for _ in range(self.iters):
                buckets = self.nearest(x, means)
                counts = torch.bincount(buckets, minlength=self.bins)
                new = torch.zeros_like(means).index_add_(0, buckets, x) / counts.clamp(min=1)[:, None]
                means = torch.where((counts == 0)[:, None], means, new)
            self.embed, self.embed_avg, self.cluster_size = means, means.clone(), counts.float()
            self.inited = True
        ind = self.nearest(x, self.embed)
        quant = self.embed[ind]
        expired = self.cluster_size < self.threshold
        if expired.any():
            self.embed = torch.where(expired[:, None], self.sample(x), self.embed)
        onehot = F.one_hot(ind, self.bins).float()
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(onehot.t() @ x, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.bins * self.eps) * n
        self.embed = self.embed_avg / smoothed[:, None]
        return quant


def rvq(codebooks, z, n_q):
    x = z.permute(0, 2, 1).reshape(-1, z.shape[1])
    residual, out, losses = x, 0.0, []
    for cb in codebooks[:n_q]:
        q = cb.forward(residual.detach())
        q_st = residual + (q - residual).detach()
        losses.append(F.mse_loss(q.detach(), residual))
        residual = residual - q_st
        out = out + q_st
    return out.reshape(z.shape[0], z.shape[2], z.shape[1]).permute(0, 2, 1), torch.stack(losses).mean()


def mel_fb(n_mels, nb, sr):
    hz2mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)
    pts = torch.tensor([700.0 * (10 ** (hz2mel(sr / 2) * i / (n_mels + 1) / 2595.0) - 1) for i in range(n_mels + 2)],
                       dtype=torch.float64)
    freqs = torch.linspace(0, sr // 2, nb, dtype=torch.float64)[:, None]
    down = (freqs - pts[:-2]) / (pts[1:-1] - pts[:-2])
    up = (pts[2:] - freqs) / (pts[2:] - pts[1:-1])
    return torch.clamp(torch.minimum(down, up), min=0).float()   # [nb, n_mels]


class MelLoss:
    def __init__(self, sr, n_mels=64):
        self.scales = []
        for i in range(5, 12):
            n = 2 ** i
            self.scales.append((n, n // 4, torch.hann_window(n), mel_fb(n_mels, n // 2 + 1, sr)))

    def mel(self, x, n, hop, win, fb):
        x = F.pad(x[:, None], ((n - hop) // 2, (n - hop) // 2), mode="reflect")[:, 0]
        spec = torch.stft(x, n, hop, n, win, center=False, normalized=True, return_complex=True)
        return (spec.real ** 2 + spec.imag ** 2).transpose(1, 2) @ fb

    def __call__(self, y, x):
        total = 0.0
        for n, hop, win, fb in self.scales:
            my, mx = self.mel(y, n, hop, win, fb), self.mel(x, n, hop, win, fb)
            total = total + F.l1_loss(my, mx) + F.mse_loss(torch.log10(my + 1e-5), torch.log10(mx + 1e-5))
        return total / len(self.scales)


class DiscSTFT(nn.Module):
    def __init__(self, n_fft, hop, filters=32):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("win", torch.hann_window(n_fft))
        c = lambda i, o, k, s=(1, 1), d=(1, 1): weight_norm(
            nn.Conv2d(i, o, k, s, dilation=d, padding=((k[0] - 1) * d[0] // 2, (k[1] - 1) * d[1] // 2)))
        self.convs = nn.ModuleList([c(2, filters, (3, 9))] +
                                   [c(filters, filters, (3, 9), (1, 2), (d, 1)) for d in (1, 2, 4)] +
                                   [c(filters, filters, (3, 3))])
        self.post = c(filters, 1, (3, 3))

    def forward(self, x):
        z = torch.stft(x, self.n_fft, self.hop, self.n_fft, self.win, center=False, normalized=True, return_complex=True)
        z = torch.stack([z.real, z.imag], 1).transpose(2, 3)   # [B, 2, frames, freq]
        fmaps = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), 0.2)
            fmaps.append(z)
        return self.post(z), fmaps


class MSSTFTD(nn.Module):
    def __init__(self, filters=32):
        super().__init__()
        self.ds = nn.ModuleList([DiscSTFT(n, n // 4, filters) for n in (1024, 2048, 512, 256, 128)])

    def forward(self, x):
        return [d(x) for d in self.ds]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--adversarial", action="store_true")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--segment", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    sr = 24000
    nf, dim, bins, bws = (4, 32, 512, [1.5, 3, 6]) if a.small else (32, 128, 1024, [1.5, 3, 6, 12, 24])
    enc, dec = seanet(nf, dim, [8, 5, 4, 2], 2)
    nq_of = lambda bw: max(1, int(bw * 1000 // (math.log2(bins) * 75)))
    codebooks = [Codebook(dim, bins) for _ in range(nq_of(max(bws)))]
    opt = torch.optim.AdamW(list(enc.parameters()) + list(dec.parameters()), lr=3e-4, betas=(0.5, 0.9), weight_decay=0)
    mel = MelLoss(sr)
    disc = MSSTFTD() if a.adversarial else None
    dopt = torch.optim.AdamW(disc.parameters(), lr=3e-4, betas=(0.5, 0.9), weight_decay=0) if disc else None
    ema = {}
    seg = int(a.segment * sr)
    audio = torch.randn(a.batch * 4, seg) * 0.1

    def step(i):
        x = audio[torch.randint(0, audio.shape[0], (a.batch,))]
        n_q = nq_of(bws[int(torch.randint(0, len(bws), (1,)))])
        q, commit = rvq(codebooks, enc(x[:, None]), n_q)
        y = dec(q)[:, 0, :seg]
        losses = {"l1": (0.1, F.l1_loss(y, x)), "mel": (1.0, mel(y, x))}
        if disc:
            outs_y, outs_x = disc(y), disc(x)
            adv = sum(F.relu(1 - o).mean() for o, _ in outs_y) / len(outs_y)
            feat = sum(F.l1_loss(fy, fx.detach()) / fx.detach().abs().mean()
                       for (_, fys), (_, fxs) in zip(outs_y, outs_x) for fy, fx in zip(fys, fxs)) / (5 * len(outs_y))
            losses.update({"adv": (3.0, adv), "feat": (3.0, feat)})
            # EnCodec's balancer: each gradient w.r.t. y rescaled by its weight over its EMA norm
            total_w = sum(w for w, _ in losses.values())
            grad = torch.zeros_like(y)
            for name, (w, l) in losses.items():
                g, = torch.autograd.grad(l, y, retain_graph=True)
                norm = g.norm(dim=1).mean().item()
                fix, tot = ema.get(name, (0.0, 0.0))
                fix, tot = fix * 0.999 + 1, tot * 0.999 + norm
                ema[name] = (fix, tot)
                grad += w / total_w / (1e-12 + tot / fix) * g
            opt.zero_grad()
            torch.autograd.backward([y, commit], [grad, torch.ones_like(commit)])
        else:
            opt.zero_grad()
            (sum(w * l for w, l in losses.values()) + commit).backward()
        opt.step()
        if disc:
            dopt.zero_grad()
            outs_y, outs_x = disc(y.detach()), disc(x)
            dl = sum(F.relu(1 - ox).mean() + F.relu(1 + oy).mean() for (oy, _), (ox, _) in zip(outs_y, outs_x))
            (dl / len(outs_y)).backward()
            dopt.step()

    step(0)   # k-means init and allocator warm-up are not timed
    t0 = time.perf_counter()
    for i in range(a.steps):
        step(i + 1)
    dt = time.perf_counter() - t0
    print(f"{a.steps * a.batch * a.segment / dt:.4f}")


if __name__ == "__main__":
    main()
