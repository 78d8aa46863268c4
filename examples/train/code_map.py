#!/usr/bin/env python3
"""code_map.py - can stage 2 get harmony from its conditioning frame by frame?

Usage: code_map.py TRAIN.hafm TEST.hafm OUT.jsonl [sample|argmax]
TRAIN.hafm and TEST.hafm hold accomp.semantic (50 Hz) and accomp.coarse (75 Hz, 4 codebooks)
tracks per song (work/tokens/train.hafm, test.hafm). Counts on TRAIN how often each codebook-1
code goes with each semantic token at the same time (frame t of 75 Hz with token 2t/3 of 50 Hz),
then replaces codebook 1 of every TEST song by a draw from that table given the song's true token
(or its most frequent code): the best a stage 2 can do that follows its conditioning frame by
frame, with no context. Writes the result as hafm-dump JSON lines (hafm-from-json makes a stream
of it; decode codebook 1 alone with hafm-codebooks -i accomp.coarse -s codes=0:1 -d | encodec-dec)
and prints H(codebook 1 | token) against H(codebook 1). Needs NumPy."""
import json, os, subprocess, sys
import numpy as np

BIN = os.environ.get('BIN', os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../bin'))

def dump(path):
    out = subprocess.run([os.path.join(BIN, 'hafm-dump'), '-f', path], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]

def tracks(msgs):
    items, key, names = {}, None, {}
    for m in msgs:
        if m['type'] == 'item': key = m['key']; items[key] = {}
        elif m['type'] == 'track': names[m['id']] = m['name']
        elif m['type'] == 'data' and isinstance(m.get('payload'), list):
            items[key].setdefault(names[m['track']], []).extend(m['payload'])
    return items

def main():
    if len(sys.argv) not in (4, 5) or (len(sys.argv) == 5 and sys.argv[4] not in ('sample', 'argmax')): sys.exit(__doc__)
    train, test, out = sys.argv[1:4]
    mode = sys.argv[4] if len(sys.argv) == 5 else 'sample'
    K, V = 0, 1024
    pairs = []
    for tr in tracks(dump(train)).values():
        s, c = tr['accomp.semantic'], tr['accomp.coarse']
        for t in range(len(c) // 4):
            pairs.append((s[min(2 * t // 3, len(s) - 1)], c[4 * t]))
    pairs = np.array(pairs)
    K = int(pairs[:, 0].max()) + 1
    counts = np.zeros((K, V))
    np.add.at(counts, (pairs[:, 0], pairs[:, 1]), 1)
    p = (counts + 1e-3) / (counts + 1e-3).sum(1, keepdims=True)
    rng = np.random.default_rng(1)
    msgs = dump(test)
    sem, names, key = tracks(msgs), {}, None
    with open(out, 'w') as f:
        for m in msgs:
            if m['type'] == 'item': key = m['key']
            elif m['type'] == 'track': names[m['id']] = m['name']
            elif m['type'] == 'data' and names.get(m['track']) == 'accomp.coarse':
                s, c = sem[key]['accomp.semantic'], list(m['payload'])
                for t in range(len(c) // 4):
                    row = p[min(s[min(2 * t // 3, len(s) - 1)], K - 1)]
                    c[4 * t] = int(np.argmax(row)) if mode == 'argmax' else int(rng.choice(V, p=row))
                m['payload'] = c
            f.write(json.dumps(m) + '\n')
    w = counts.sum(1) / counts.sum()
    marginal = counts.sum(0) / counts.sum()
    print('H(codebook 1 | token) = %.2f bits, H(codebook 1) = %.2f bits' % (
        (w * -(p * np.log2(p)).sum(1)).sum(), -(marginal * np.log2(marginal + 1e-12)).sum()))

main()
