#!/usr/bin/python3
"""Writes the encodec-train test clips (PCM16 WAV, standard library only)."""
import math
import random
import struct
import wave


def write(name, rate, samples):
    with wave.open(name, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", max(-32768, min(32767, round(s * 32768)))) for s in samples))


def synth(rate, n):
    rng = random.Random(20240601)
    return [0.3 * math.sin(2 * math.pi * 220 * i / rate) + 0.2 * math.sin(2 * math.pi * 587.33 * i / rate + 0.5)
            + 0.1 * math.sin(2 * math.pi * 3000 * i / rate + 1.0) + 0.01 * rng.gauss(0, 1) for i in range(n)]


write("clip.wav", 24000, synth(24000, 24000))        # 1 s: the clip the tiny codec overfits
write("silence.wav", 24000, [0.0] * 12000)
write("short.wav", 24000, synth(24000, 480))         # 20 ms, shorter than any segment used
write("rate16k.wav", 16000, synth(16000, 16000))
