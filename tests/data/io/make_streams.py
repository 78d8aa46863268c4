#!/usr/bin/env python3
"""Writes the stream fixtures of tests/cli/hafm-*-audio.bats (no msgpack module needed):
header.hafm, a header alone; tokens.hafm, the same header and an item 'voc' with a tokens
track, a features track and a message of a type no reader knows, for pass-through tests.
Run from this directory: python3 make_streams.py"""
import struct


def pack(o):
    if isinstance(o, dict):
        out = bytes([0x80 | len(o)])
        for k, v in o.items():
            out += pack(k) + pack(v)
        return out
    if isinstance(o, (list, tuple)):
        return bytes([0x90 | len(o)]) + b"".join(pack(x) for x in o)
    if isinstance(o, str):
        b = o.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else bytes([0xd9, len(b)])) + b
    if isinstance(o, bytes):
        return bytes([0xc5]) + struct.pack(">H", len(o)) + o
    if isinstance(o, float):
        return bytes([0xcb]) + struct.pack(">d", o)
    if isinstance(o, int) and 0 <= o < 128:
        return bytes([o])
    if isinstance(o, int) and 0 <= o < 65536:
        return bytes([0xcd]) + struct.pack(">H", o)
    raise TypeError(o)


header = pack({"type": "header", "magic": "hafm-stream", "version": [1, 0], "tool": "make_streams.py"})
tokens = [3, 1, 4, 1, 5, 9, 2, 6]
feats = [0.5, -0.25, 1.0, 2.0, -1.5, 0.125]
body = b"".join(pack(m) for m in [
    {"type": "item", "key": "voc"},
    {"type": "track", "id": 0, "name": "vocal.semantic", "kind": "tokens", "dtype": "i16",
     "shape": [1], "rate": 50, "vocab": 500},
    {"type": "track", "id": 3, "name": "feat", "kind": "features", "dtype": "f32",
     "shape": [2], "rate": 12.5, "attrs": {"layer": 9}},
    {"type": "data", "track": 0, "frames": 8, "payload": struct.pack("<8h", *tokens)},
    {"type": "note", "text": "an unknown message type"},
    {"type": "data", "track": 3, "frames": 3, "payload": struct.pack("<6f", *feats)},
    {"type": "end", "track": 0, "frames": 8},
    {"type": "end", "track": 3, "frames": 3},
    {"type": "item_end", "key": "voc"},
])
open("header.hafm", "wb").write(header)
open("tokens.hafm", "wb").write(header + body)
