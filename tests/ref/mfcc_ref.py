#!/usr/bin/python3
"""Reference MFCC / log-mel features for tests/unit/test_mfcc.c, written independently of
lib/mfcc.c from the definition in lib/hafm/mfcc.h, in float64 NumPy.

    /usr/bin/python3 tests/ref/mfcc_ref.py tests/data/hubert

Writes mfcc/<input>_{mfcc,mfcc_cmvn,logmel,chroma}.f32 ([T, 39], [T, 39], [T, 80], [T, 25],
float32 LE)."""
import os
import sys

import numpy as np

SR, WIN, HOP, NFFT = 16000, 400, 320, 512


def mel(f):
    return 1127.0 * np.log1p(f / 700.0)


def filterbank(n_mels, fmin=20.0, fmax=7600.0):
    edges = np.linspace(mel(fmin), mel(fmax), n_mels + 2)
    bins = mel(np.arange(NFFT // 2 + 1) * SR / NFFT)
    fb = np.zeros((n_mels, NFFT // 2 + 1))
    for f in range(n_mels):
        lo, c, hi = edges[f], edges[f + 1], edges[f + 2]
        up = (bins > lo) & (bins <= c)
        down = (bins > c) & (bins < hi)
        fb[f, up] = (bins[up] - lo) / (c - lo)
        fb[f, down] = (hi - bins[down]) / (hi - c)
    return fb


def logmel(x, n_mels):
    T = (len(x) - WIN) // HOP + 1
    frames = np.stack([x[t * HOP:t * HOP + WIN] for t in range(T)]).astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    prev = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = (frames - 0.97 * prev) * np.hamming(WIN)
    power = np.abs(np.fft.rfft(frames, NFFT)) ** 2
    return np.log(np.maximum(power @ filterbank(n_mels).T, 1e-10))


def deltas(c):
    p = np.concatenate([c[:1], c[:1], c, c[-1:], c[-1:]])
    T = len(c)
    return sum(k * (p[2 + k:2 + k + T] - p[2 - k:2 - k + T]) for k in (1, 2)) / 10.0


def cepstrum(x):
    lm = logmel(x, 40)
    n = np.arange(40)
    dct = np.stack([np.cos(np.pi * i * (n + 0.5) / 40) * (np.sqrt(1 / 40) if i == 0 else np.sqrt(2 / 40))
                    for i in range(13)])
    return lm @ dct.T * (1 + 11 * np.sin(np.pi * np.arange(13) / 22))


def mfcc(x):
    c = cepstrum(x)
    d = deltas(c)
    return np.concatenate([c, d, deltas(d)], axis=1)


def chroma(x, n=4096, fmin=65.406, fmax=2093.0):
    """12 pitch-class shares of a periodic-Hann window of n samples centred on each frame."""
    T = (len(x) - WIN) // HOP + 1
    padded = np.concatenate([np.zeros(n), x.astype(np.float64), np.zeros(n)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    f = np.arange(n // 2 + 1) * SR / n
    keep = (f >= fmin) & (f <= fmax)
    midi = 69 + 12 * np.log2(f[keep] / 440.0)
    nearest = np.floor(midi + 0.5)
    weight = 1 - 2 * np.abs(midi - nearest)
    onehot = np.zeros((keep.sum(), 12))
    onehot[np.arange(keep.sum()), nearest.astype(int) % 12] = weight
    out = np.empty((T, 12))
    for t in range(T):
        start = t * HOP + WIN // 2 - n // 2 + n
        mag = np.abs(np.fft.rfft(padded[start:start + n] * window))[keep]
        s = mag @ onehot
        out[t] = s / s.sum() if s.sum() >= 1e-3 else 1 / 12
    return np.concatenate([cepstrum(x), out], axis=1)


def cmvn(f):
    return (f - f.mean(axis=0)) / f.std(axis=0)


def main():
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "mfcc"), exist_ok=True)
    for name in ("synth_1s", "real_2s"):
        x = np.fromfile(os.path.join(out, "inputs", name + ".f32"), dtype="<f4")
        m = mfcc(x)
        for suffix, f in (("mfcc", m), ("mfcc_cmvn", cmvn(m)), ("logmel", logmel(x, 80)), ("chroma", chroma(x))):
            f.astype("<f4").tofile(os.path.join(out, "mfcc", "%s_%s.f32" % (name, suffix)))
            print(name, suffix, f.shape, "max|x| %.3f" % np.abs(f).max())


main()
