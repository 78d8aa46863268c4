#!/usr/bin/env python3
"""check_labels.py SONGDIR... - do the rendered songs agree with their labels?

Harmony: over every labelled chord span, the accompaniment's chroma (80-2000 Hz, one FFT over
the span) is matched against the 24 major/minor triad templates; reports how often the best
template is the labelled chord (sevenths and diminished chords counted by their third), and the
mean share of chroma energy on the chord's pitch classes.
Rhythm: spectral-flux onset strength at the labelled beats (accompaniment) and at the labelled
note onsets (vocal), divided by the strength at the same times shifted by 0.1-0.4 s.
Needs numpy. Used for the figures in README.md."""
import glob, json, sys, wave

import numpy as np


def read(path):
    w = wave.open(path)
    x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    return x, w.getframerate()


def chord_fit(x, sr, chords):
    hits = share = n = 0
    triads = [(r, q) for r in range(12) for q in ((0, 4, 7), (0, 3, 7))]
    for c in chords:
        seg = x[int(c["start"] * sr):int(c["end"] * sr)]
        if len(seg) < 2048:
            continue
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
        f = np.fft.rfftfreq(len(seg), 1 / sr)
        m = (f > 80) & (f < 2000)
        pcs = np.round(12 * np.log2(f[m] / 440) + 69).astype(int) % 12
        chroma = np.bincount(pcs, weights=spec[m], minlength=12)
        chroma /= chroma.sum()
        best = max(triads, key=lambda rq: chroma[[(rq[0] + i) % 12 for i in rq[1]]].sum())
        minor = c["quality"] in ("min", "min7", "dim", "hdim7")
        hits += best == (c["root_pc"], (0, 3, 7) if minor else (0, 4, 7))
        share += chroma[c["pitch_classes"]].sum()
        n += 1
    return hits, share, n


def onset_ratio(x, sr, times, rng, hop=240):
    frames = np.stack([x[i:i + 1024] * np.hanning(1024) for i in range(0, len(x) - 1024, hop)])
    s = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
    flux = np.concatenate([[0], np.maximum(np.diff(s, axis=0), 0).sum(1)])
    t = (np.arange(len(flux)) * hop + 512) / sr

    def strength(ts):
        return np.mean([flux[np.abs(t - b) < 0.05].max() for b in ts if 0.05 < b < t[-1] - 0.1])

    times = np.asarray(times)
    shifted = np.mean([strength(times + rng.uniform(0.1, 0.4)) for _ in range(3)])
    return strength(times) / shifted


def main():
    dirs = [d for a in sys.argv[1:] for d in sorted(glob.glob(a))]
    if not dirs:
        sys.exit("usage: check_labels.py SONGDIR...")
    rng = np.random.default_rng(0)
    hits = share = n = 0
    beat, onset = [], []
    for d in dirs:
        lab = json.load(open(f"{d}/labels.json"))
        acc, sr = read(f"{d}/accomp.wav")
        voc, _ = read(f"{d}/vocal.wav")
        h, s, k = chord_fit(acc, sr, lab["chords"])
        hits, share, n = hits + h, share + s, n + k
        beat.append(onset_ratio(acc, sr, lab["beats"], rng))
        onset.append(onset_ratio(voc, sr, [m["onset"] for m in lab["melody"]], rng))
    print(f"{len(dirs)} songs, {n} chord spans: best triad template = label {hits / n:.3f}, "
          f"chroma share on chord tones {share / n:.3f}")
    print(f"onset strength ratio, accompaniment at beats: median {np.median(beat):.2f}, min {min(beat):.2f}")
    print(f"onset strength ratio, vocal at note onsets: median {np.median(onset):.2f}, min {min(onset):.2f}")


if __name__ == "__main__":
    main()
