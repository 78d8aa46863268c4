#!/usr/bin/env python3
"""token_info.py - how much of the music's pitch the semantic tokens keep.

Usage: token_info.py TOKENS.hafm [CORPUS]
TOKENS.hafm holds vocal.semantic and accomp.semantic tracks per song (work/tokens/train.sem.hafm);
CORPUS (default ../corpus) has songs/<split>/<id>/labels.json. Prints the mutual information,
in bits and as a share of the label's entropy, between the vocal tokens and the sung note's pitch
class, and between the vocal or accompaniment tokens and the chord root, over all 20 ms frames.
The estimate is biased upward by about (K-1)(12-1)/(2 n ln 2) bits (0.03 here)."""
import collections, glob, json, math, os, subprocess, sys

def tokens(path):
    bin_dir = os.environ.get('BIN', os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../bin'))
    out = subprocess.run([os.path.join(bin_dir, 'hafm-dump'), '-f', path], check=True,
                         capture_output=True, text=True).stdout
    items, key, names = {}, None, {}
    for line in out.splitlines():
        m = json.loads(line)
        if m['type'] == 'item': key = m['key']; items[key] = {}
        elif m['type'] == 'track': names[m['id']] = m['name']
        elif m['type'] == 'data' and isinstance(m.get('payload'), list):
            items[key].setdefault(names[m['track']], []).extend(m['payload'])
    return items

def mutual_information(pairs):
    n = len(pairs)
    cx = collections.Counter(a for a, _ in pairs)
    cy = collections.Counter(b for _, b in pairs)
    i = sum(c / n * math.log2(c * n / (cx[a] * cy[b])) for (a, b), c in collections.Counter(pairs).items())
    h = -sum(c / n * math.log2(c / n) for c in cy.values())
    return i, h

def main():
    if len(sys.argv) not in (2, 3): sys.exit(__doc__)
    corpus = sys.argv[2] if len(sys.argv) == 3 else os.path.join(os.path.dirname(os.path.abspath(__file__)), '../corpus')
    melody, chord_v, chord_a = [], [], []
    for key, tr in tokens(sys.argv[1]).items():
        found = glob.glob(os.path.join(corpus, 'songs', '*', key, 'labels.json'))
        if not found or 'vocal.semantic' not in tr or 'accomp.semantic' not in tr: continue
        labels = json.load(open(found[0]))
        v, a = tr['vocal.semantic'], tr['accomp.semantic']
        for t in range(min(len(v), len(a))):
            s = 0.02 * t + 0.01
            note = next((n for n in labels['melody'] if n['onset'] <= s < n['offset']), None)
            if note: melody.append((v[t], note['pitch'] % 12))
            chord = next((c for c in labels['chords'] if c['start'] <= s < c['end']), None)
            if chord:
                chord_v.append((v[t], chord['root_pc']))
                chord_a.append((a[t], chord['root_pc']))
    for name, pairs in (('vocal tokens ; sung pitch class', melody), ('vocal tokens ; chord root', chord_v),
                        ('accompaniment tokens ; chord root', chord_a)):
        if not pairs: continue
        i, h = mutual_information(pairs)
        print('%-36s %.3f of %.3f bits (%.0f %%), %d frames' % (name, i, h, 100 * i / h, len(pairs)))

main()
