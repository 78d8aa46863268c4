#!/usr/bin/env python3
"""Comparisons for the encodec command-line tests (standard library only).

  encodec_check.py codes RAW_I16 N GOLDEN_I32 MARGIN_F32
      RAW: frame-major [T, N] int16 (hafm-dump --raw); GOLDEN/MARGIN: [N, T]. Codes must match
      where the margin is >= 1e-4 (a near-tie flip invalidates the later stages of its frame).
  encodec_check.py floats RAW_F32 C GOLDEN_F32 [LIMIT]
      RAW: frame-major [T, C]; GOLDEN: [C, T'] (T' >= T, compared over the first T frames, or
      LIMIT frames); max|diff| <= 1e-4 * max|golden|.
  encodec_check.py split|widen|oob < in.jsonl > out.jsonl
      edits hafm-dump --full output of a stream with one 'codes' track: split it into
      accomp.coarse + accomp.fine (codebook_offset), add a codebook, or put code 600 in it.
"""
import array, json, sys


def load(path, code):
    a = array.array(code)
    with open(path, "rb") as f:
        a.frombytes(f.read())
    return a


def main():
    mode = sys.argv[1]
    if mode == "codes":
        raw, n = load(sys.argv[2], "h"), int(sys.argv[3])
        gold, margin = load(sys.argv[4], "i"), load(sys.argv[5], "f")
        T = len(gold) // n
        if len(raw) != T * n:
            sys.exit(f"codes: {len(raw) // n} frames, golden has {T}")
        checked = bad = 0
        for t in range(T):
            for k in range(n):
                if margin[k * T + t] < 1e-4:
                    if raw[t * n + k] != gold[k * T + t]:
                        break
                    continue
                checked += 1
                bad += raw[t * n + k] != gold[k * T + t]
        print(f"codes: {checked} checked, {bad} mismatches")
        sys.exit(1 if bad else 0)
    if mode == "floats":
        raw, C, gold = load(sys.argv[2], "f"), int(sys.argv[3]), load(sys.argv[4], "f")
        T = len(raw) // C
        Tg = len(gold) // C
        if len(sys.argv) > 5:
            T = int(sys.argv[5])
        if T > Tg or T * C > len(raw):
            sys.exit(f"floats: {len(raw) // C} frames, golden has {Tg}")
        maxg = max(abs(g) for g in gold)
        maxd = max(abs(raw[t * C + c] - gold[c * Tg + t]) for t in range(T) for c in range(C))
        print(f"max_diff={maxd:.3g} (max|golden| {maxg:.3g})")
        sys.exit(0 if maxd <= 1e-4 * maxg else 1)
    if mode in ("split", "widen", "oob"):
        # edits hafm-dump --full output of a stream with one 'codes' track (id 0)
        for line in sys.stdin:
            m = json.loads(line)
            t, q = m.get("type"), None
            if mode == "split" and t == "track" and m["name"] == "codes":
                q = m["shape"][0] // 2
                a = dict(m, name="accomp.coarse", shape=[q])
                b = dict(m, id=m["id"] + 100, name="accomp.fine", shape=[q], attrs={"codebook_offset": q})
                print(json.dumps(a)); print(json.dumps(b)); split_q = q
                continue
            if mode == "split" and t in ("data", "end") and m["track"] == 0:
                if t == "data":
                    n = len(m["payload"]) // m["frames"]
                    rows = [m["payload"][i:i + n] for i in range(0, len(m["payload"]), n)]
                    a = dict(m, payload=[v for r in rows for v in r[:n // 2]])
                    b = dict(m, track=100, payload=[v for r in rows for v in r[n // 2:]])
                else:
                    a, b = m, dict(m, track=100)
                print(json.dumps(a)); print(json.dumps(b))
                continue
            if mode == "widen" and t == "track":
                m["shape"] = [m["shape"][0] + 1]
            if mode == "widen" and t == "data":
                n = len(m["payload"]) // m["frames"]
                m["payload"] = [v for i in range(m["frames"]) for v in m["payload"][i * n:(i + 1) * n] + [0]]
            if mode == "oob" and t == "track":
                m["vocab"] = 1024
            if mode == "oob" and t == "data":
                m["payload"][5] = 600
            print(json.dumps(m))
        return
    sys.exit("unknown mode")


main()
