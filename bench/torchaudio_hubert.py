#!/usr/bin/python3
"""torchaudio 0.13.1 baseline for bench/hubert.sh: HuBERT Base through layer 9 on 10.0 s of
16 kHz audio, 2 threads, random weights (the speed does not depend on them). Prints the best of
5 runs in seconds."""
import sys
import time

import torch
import torchaudio

torch.set_num_threads(2)
torch.manual_seed(0)
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
model = torchaudio.models.hubert_base().eval()
x = 0.1 * torch.randn(1, int(16000 * seconds))
best = 1e30
with torch.inference_mode():
    model.extract_features(x, num_layers=9)
    for _ in range(5):
        t0 = time.perf_counter()
        feats, _ = model.extract_features(x, num_layers=9)
        best = min(best, time.perf_counter() - t0)
print("%.4f" % best)
