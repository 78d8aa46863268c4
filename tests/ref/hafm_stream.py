"""Minimal hafm stream (formats/stream.md) writer and reader for the stage tests and for users who
prepare token data in Python. Needs only the standard library and numpy.

    python3 hafm_stream.py synth OUT.hafm --stage 1 --items 4 --seconds 3 [--vocab 16] [--seed 0]
        synthetic conditional task for hafm-train (target = f(condition, previous target))
    python3 hafm_stream.py random OUT.hafm [--items N] [--seed S] NAME:Q:RATE:VOCAB:FRAMES[:OFFSET] ...
        random tokens in the given tracks
    python3 hafm_stream.py tracks FILE.hafm
        one line per item and track: key name shape rate vocab frames first-tokens
"""
import struct
import sys

import numpy as np


# ---- msgpack subset ----------------------------------------------------------------------------
def _pack(o, out):
    if isinstance(o, bool):
        out.append(b"\xc3" if o else b"\xc2")
    elif isinstance(o, int):
        if 0 <= o < 128:
            out.append(struct.pack("B", o))
        elif 0 <= o < 1 << 32:
            out.append(b"\xce" + struct.pack(">I", o))
        else:
            out.append(b"\xd3" + struct.pack(">q", o))
    elif isinstance(o, float):
        out.append(b"\xcb" + struct.pack(">d", o))
    elif isinstance(o, str):
        b = o.encode()
        out.append((struct.pack("B", 0xA0 | len(b)) if len(b) < 32 else b"\xd9" + struct.pack("B", len(b))) + b)
    elif isinstance(o, (bytes, bytearray)):
        out.append(b"\xc6" + struct.pack(">I", len(o)) + bytes(o))
    elif isinstance(o, (list, tuple)):
        out.append(struct.pack("B", 0x90 | len(o)))
        for x in o:
            _pack(x, out)
    elif isinstance(o, dict):
        out.append(struct.pack("B", 0x80 | len(o)) if len(o) < 16 else b"\xde" + struct.pack(">H", len(o)))
        for k, v in o.items():
            _pack(k, out)
            _pack(v, out)
    else:
        raise TypeError(type(o))


def pack(o):
    out = []
    _pack(o, out)
    return b"".join(out)


def _unpack(b, i):
    t = b[i]
    if t < 0x80:
        return t, i + 1
    if 0x80 <= t <= 0x8F or t in (0xDE, 0xDF):
        if t <= 0x8F:
            n, i = t & 15, i + 1
        elif t == 0xDE:
            n, i = struct.unpack(">H", b[i + 1:i + 3])[0], i + 3
        else:
            n, i = struct.unpack(">I", b[i + 1:i + 5])[0], i + 5
        d = {}
        for _ in range(n):
            k, i = _unpack(b, i)
            v, i = _unpack(b, i)
            d[k] = v
        return d, i
    if 0x90 <= t <= 0x9F or t in (0xDC, 0xDD):
        if t <= 0x9F:
            n, i = t & 15, i + 1
        elif t == 0xDC:
            n, i = struct.unpack(">H", b[i + 1:i + 3])[0], i + 3
        else:
            n, i = struct.unpack(">I", b[i + 1:i + 5])[0], i + 5
        a = []
        for _ in range(n):
            v, i = _unpack(b, i)
            a.append(v)
        return a, i
    if 0xA0 <= t <= 0xBF:
        n = t & 31
        return b[i + 1:i + 1 + n].decode(), i + 1 + n
    if t >= 0xE0:
        return t - 256, i + 1
    fixed = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
             0xCA: ">f", 0xCB: ">d"}
    if t in fixed:
        f = fixed[t]
        n = struct.calcsize(f)
        return struct.unpack(f, b[i + 1:i + 1 + n])[0], i + 1 + n
    if t in (0xC0, 0xC2, 0xC3):
        return {0xC0: None, 0xC2: False, 0xC3: True}[t], i + 1
    if t in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6):
        w = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4}[t]
        n = int.from_bytes(b[i + 1:i + 1 + w], "big")
        s = b[i + 1 + w:i + 1 + w + n]
        return (s.decode() if t in (0xD9, 0xDA, 0xDB) else s), i + 1 + w + n
    raise ValueError(f"msgpack type 0x{t:02x}")


def read_messages(data):
    i = 0
    while i < len(data):
        m, i = _unpack(data, i)
        yield m


# ---- hafm streams ----------------------------------------------------------------------------------
_NP = {"u8": np.uint8, "i16": np.int16, "u16": np.uint16, "i32": np.int32}


def header():
    return pack({"type": "header", "magic": "hafm-stream", "version": [1, 0], "tool": "hafm_stream.py"})


def item(key, tracks):
    """tracks: list of (name, tokens [frames, Q] int array, rate, vocab, attrs dict)."""
    out = [pack({"type": "item", "key": key})]
    for tid, (name, tok, rate, vocab, attrs) in enumerate(tracks):
        tok = np.asarray(tok, dtype=np.int16)
        tok = tok.reshape(len(tok), -1) if tok.ndim != 2 else tok
        decl = {"type": "track", "id": tid, "name": name, "kind": "tokens", "dtype": "i16",
                "shape": [tok.shape[1]], "rate": rate, "vocab": vocab}
        if attrs:
            decl["attrs"] = attrs
        out.append(pack(decl))
        out.append(pack({"type": "data", "track": tid, "frames": len(tok), "payload": tok.astype("<i2").tobytes()}))
        out.append(pack({"type": "end", "track": tid, "frames": len(tok)}))
    out.append(pack({"type": "item_end", "key": key}))
    return b"".join(out)


def read_tracks(path):
    """[(key, {name: (decl, tokens [frames, Q])})]"""
    with open(path, "rb") as f:
        data = f.read()
    items, cur, decl, chunks = [], None, {}, {}
    for m in read_messages(data):
        t = m.get("type")
        if t == "item":
            cur, decl, chunks = m["key"], {}, {}
        elif t == "track":
            decl[m["id"]] = m
            chunks[m["id"]] = []
        elif t == "data":
            d = decl[m["track"]]
            chunks[m["track"]].append(np.frombuffer(m["payload"], dtype=np.dtype(_NP[d["dtype"]]).newbyteorder("<")))
        elif t == "item_end":
            tr = {}
            for tid, d in decl.items():
                a = np.concatenate(chunks[tid]) if chunks[tid] else np.zeros(0, np.int32)
                tr[d["name"]] = (d, a.reshape(-1, d["shape"][0]).astype(np.int64))
            items.append((cur, tr))
    return items


def synth_item(rng, stage, seconds, vocab):
    """The synthetic task of the learning test: each target token is a deterministic function of
    the conditioning and of the previous target token (context dependence). In stage 3 the
    dependence runs along the codebooks of a frame, so a crop (whole frames) holds all of it."""
    f50 = int(round(seconds * 50))
    f75 = f50 * 3 // 2
    if stage == 1:
        c = rng.integers(0, vocab, f50)
        t = np.zeros(f50, np.int64)
        for i in range(f50):
            t[i] = (3 * c[i] + (t[i - 1] if i else 0) % 2) % vocab
        return [("vocal.semantic", c[:, None], 50, vocab, None), ("accomp.semantic", t[:, None], 50, vocab, None)]
    if stage == 3:
        c = rng.integers(0, vocab, (f75, 4))
        t = np.zeros((f75, 4), np.int64)
        for q in range(4):
            t[:, q] = (5 * c[:, q] + 1 + (t[:, q - 1] % 2 if q else 0)) % vocab
        return [("accomp.coarse", c, 75, vocab, None), ("accomp.fine", t, 75, vocab, {"codebook_offset": 4})]
    v = rng.integers(0, vocab, f50)
    a = (v + 1) % vocab
    t = np.stack([(np.repeat(a, 3)[::2][:f75] + q) % vocab for q in range(4)], 1)
    return [("vocal.semantic", v[:, None], 50, vocab, None), ("accomp.semantic", a[:, None], 50, vocab, None),
            ("accomp.coarse", t, 75, vocab, None)]


def main(argv):
    if argv[0] == "synth":
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("out")
        p.add_argument("--stage", type=int, default=1)
        p.add_argument("--items", type=int, default=4)
        p.add_argument("--seconds", type=float, default=3.0)
        p.add_argument("--vocab", type=int, default=16)
        p.add_argument("--seed", type=int, default=0)
        a = p.parse_args(argv[1:])
        rng = np.random.default_rng(a.seed)
        with open(a.out, "wb") as f:
            f.write(header())
            for i in range(a.items):
                f.write(item(f"synth{i}", synth_item(rng, a.stage, a.seconds, a.vocab)))
    elif argv[0] == "random":
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("out")
        p.add_argument("--items", type=int, default=1)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("tracks", nargs="+")
        a = p.parse_args(argv[1:])
        rng = np.random.default_rng(a.seed)
        with open(a.out, "wb") as f:
            f.write(header())
            for i in range(a.items):
                tr = []
                for spec in a.tracks:
                    f_ = spec.split(":")
                    Q, rate, vocab, frames = int(f_[1]), int(f_[2]), int(f_[3]), int(f_[4])
                    attrs = {"codebook_offset": int(f_[5])} if len(f_) > 5 else None
                    tr.append((f_[0], rng.integers(0, vocab, (frames, Q)), rate, vocab, attrs))
                f.write(item(f"item{i}", tr))
    elif argv[0] == "tracks":
        for key, tr in read_tracks(argv[1]):
            for name, (d, tok) in tr.items():
                first = " ".join(str(x) for x in tok[:4].reshape(-1))
                print(key, name, d["shape"], d["rate"], d.get("vocab"), len(tok), first)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
