#!/usr/bin/env bats
# encodec-train: options, bad data, a tiny codec overfitting a clip, exact resume.

setup() {
    T=$BATS_TEST_TMPDIR
    D=$HAFM_DATA/codectrain
    # 2 cores shared with other jobs: idle OpenMP workers must sleep, not spin
    export OMP_WAIT_POLICY=passive
    # a tiny codec: hop 16 (1500 frames/s), 4 codebooks of 64, no discriminator
    TINY=(--n-filters 8 --dimension 16 --ratios 4,4 --lstm-layers 1 --bins 64 --bandwidths 36
          --no-adversarial --no-q-dropout --segment 0.1 --batch 4 --lr 3e-3 --w-time 1 --w-mel 0.2 -q -t 2)
}

@test "encodec-train --help and --version" {
    run "$HAFM_BIN/encodec-train" --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    [[ "$output" == *"--no-adversarial"* ]]
    [[ "$output" == *"--checkpoint-every N"* ]]
    run "$HAFM_BIN/encodec-train" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "encodec-train (hafm) "* ]]
}

@test "encodec-train: usage errors exit 2" {
    run "$HAFM_BIN/encodec-train" --bogus -o "$T/m.st" "$D/clip.wav"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/encodec-train" "$D/clip.wav"
    [ "$status" -eq 2 ]
    [[ "$output" == *"an output file (-o) is required"* ]]
    run "$HAFM_BIN/encodec-train" -o "$T/m.st"
    [ "$status" -eq 2 ]
    [[ "$output" == *"no training data"* ]]
    run "$HAFM_BIN/encodec-train" --steps 0 -o "$T/m.st" "$D/clip.wav"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--steps"* ]]
    run "$HAFM_BIN/encodec-train" --ratios 4,x -o "$T/m.st" "$D/clip.wav"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/encodec-train" --init "$T/none" --small -o "$T/m.st" "$D/clip.wav"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/encodec-train" --plot "$T/p.png" -o "$T/m.st" "$D/clip.wav"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/encodec-train" --segment 0.05 -o "$T/m.st" "$D/clip.wav"
    [ "$status" -eq 2 ]
    [[ "$output" == *"2048 samples"* ]]
    [ ! -e "$T/m.st" ]
}

@test "encodec-train: bad data is refused with a message, exit 1, no output" {
    run "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 1 -o "$T/m.st" "$D/silence.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"silence.wav: the audio is silent"* ]]
    run "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 1 -o "$T/m.st" "$D/short.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"short.wav: 0.020 s is shorter than the training segment (0.100 s)"* ]]
    run "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 1 -o "$T/m.st" "$D/rate16k.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"rate16k.wav: sample rate 16000 Hz, the model runs at 24000 Hz"* ]]
    run "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 1 -o "$T/m.st" "$T/missing.wav"
    [ "$status" -eq 1 ]
    printf 'not audio at all\n' > "$T/bad.wav"
    run "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 1 -o "$T/m.st" "$T/bad.wav"
    [ "$status" -eq 1 ]
    : > "$T/empty.wav"
    run "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 1 -o "$T/m.st" "$T/empty.wav"
    [ "$status" -eq 1 ]
    mkdir "$T/nothing"
    run "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 1 -o "$T/m.st" "$T/nothing"
    [ "$status" -eq 1 ]
    [[ "$output" == *"no audio found"* ]]
    [ ! -e "$T/m.st" ]
    [ -z "$(ls "$T" | grep -v -e bad.wav -e empty.wav -e nothing)" ]
    # the wrong rate is accepted when asked to resample
    run "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 1 --resample -o "$T/m.st" "$D/rate16k.wav"
    [ "$status" -eq 0 ]
}

@test "encodec-train: a tiny codec overfits a 1 s clip to SI-SDR >= 5 dB within 60 steps" {
    run "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 60 --eval-every 10 --log "$T/log.jsonl" \
        --plot "$T/curves.png" --reconstruct "$T/recon.wav" -o "$T/m.safetensors" "$D/clip.wav"
    [ "$status" -eq 0 ]
    if command -v gnuplot > /dev/null; then
        [ "$(head -c 4 "$T/curves.png" | tail -c 3)" = PNG ]
    fi
    [ "$(grep -c '"loss"' "$T/log.jsonl")" -eq 60 ]
    # from about -12 dB at the random start; the best of the evaluations every 10 steps
    sdr=$(grep -o '"eval_si_sdr_db":[-0-9.e]*' "$T/log.jsonl" | cut -d: -f2 | sort -g | tail -1)
    echo "# best SI-SDR within 60 steps: $sdr dB" >&3
    awk -v s="$sdr" 'BEGIN { exit !(s >= 5.0) }'
    # the weight file: original names, weight_g/weight_v, codebook buffers, the config
    python3 - "$T/m.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb"); h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
cfg = json.loads(h["__metadata__"]["config"])
assert cfg["ratios"] == [4, 4] and cfg["bins"] == 64 and cfg["n_q"] == 4 and cfg["dimension"] == 16, cfg
for k in ("encoder.model.0.conv.conv.weight_g", "encoder.model.0.conv.conv.weight_v",
          "decoder.model.3.convtr.convtr.weight_v", "encoder.model.7.lstm.weight_hh_l0",
          "quantizer.vq.layers.3._codebook.embed_avg", "quantizer.vq.layers.3._codebook.cluster_size"):
    assert k in h, k
assert json.loads(h["__metadata__"]["training"])["adversarial"] is False
PY
    [ -s "$T/recon.wav" ]
}

@test "encodec-train: a killed run resumed from its checkpoint ends exactly as an uninterrupted one" {
    "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 12 -o "$T/a.safetensors" "$D/clip.wav"
    # interrupted by SIGKILL just after its first checkpoint, then resumed
    "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 100000 --checkpoint-every 2 --checkpoint "$T/b.ckpt" \
        -o "$T/b.safetensors" "$D/clip.wav" &
    pid=$!
    for _ in $(seq 600); do [ -e "$T/b.ckpt" ] && break; sleep 0.05; done
    kill -9 $pid
    wait $pid || true
    [ -e "$T/b.ckpt" ]
    [ ! -e "$T/b.safetensors" ]
    "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 12 --resume "$T/b.ckpt" --checkpoint "$T/b.ckpt" \
        -o "$T/b.safetensors" "$D/clip.wav"
    cmp "$T/a.safetensors" "$T/b.safetensors"
}

@test "encodec-train: with the discriminator and balancer, resume is exact too" {
    ADV=(--n-filters 4 --dimension 8 --ratios 4,4 --lstm-layers 1 --bins 16 --bandwidths 6,12 --disc-filters 4
         --segment 0.1 --batch 2 -q -t 2)
    "$HAFM_BIN/encodec-train" "${ADV[@]}" --steps 4 --log "$T/a.jsonl" -o "$T/a.safetensors" "$D/clip.wav"
    grep -q '"adv":' "$T/a.jsonl"
    grep -q '"disc":' "$T/a.jsonl"
    "$HAFM_BIN/encodec-train" "${ADV[@]}" --steps 2 -o "$T/b.safetensors" "$D/clip.wav"
    "$HAFM_BIN/encodec-train" "${ADV[@]}" --steps 4 --resume "$T/b.safetensors.ckpt" -o "$T/b.safetensors" "$D/clip.wav"
    cmp "$T/a.safetensors" "$T/b.safetensors"
    # a checkpoint of the other kind is refused
    run "$HAFM_BIN/encodec-train" "${ADV[@]}" --no-adversarial --steps 5 --resume "$T/b.safetensors.ckpt" \
        -o "$T/c.safetensors" "$D/clip.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"adversarial"* ]]
}

@test "encodec-train: directories, streams with audio tracks, fine-tuning from a weight file" {
    mkdir -p "$T/dir/sub"
    cp "$D/clip.wav" "$T/dir/sub/x.wav"
    echo "not audio" > "$T/dir/readme.txt"
    run "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 2 -o "$T/m.safetensors" "$T/dir"
    [ "$status" -eq 0 ]
    python3 - "$D/clip.wav" > "$T/s.jsonl" <<'PY'
import json, struct, sys, wave
w = wave.open(sys.argv[1]); pcm = list(struct.unpack("<%dh" % w.getnframes(), w.readframes(w.getnframes())))
print(json.dumps({"type": "header", "magic": "hafm-stream", "version": [1, 0], "tool": "test"}))
print(json.dumps({"type": "item", "key": "song"}))
print(json.dumps({"type": "track", "id": 0, "name": "vocals", "kind": "audio", "dtype": "i16", "shape": [1],
                  "rate": 24000, "sample_rate": 24000, "channels": 1}))
print(json.dumps({"type": "data", "track": 0, "frames": len(pcm), "payload": pcm}))
print(json.dumps({"type": "end", "track": 0, "frames": len(pcm)}))
print(json.dumps({"type": "item_end", "key": "song"}))
PY
    "$HAFM_BIN/hafm-from-json" "$T/s.jsonl" > "$T/s.hafm"
    run "$HAFM_BIN/encodec-train" "${TINY[@]}" --steps 2 -o "$T/s.safetensors" - < "$T/s.hafm"
    [ "$status" -eq 0 ]
    run "$HAFM_BIN/encodec-train" --no-adversarial --segment 0.1 --batch 2 --steps 1 -q --init "$T/m.safetensors" \
        -o "$T/f.safetensors" "$D/clip.wav"
    [ "$status" -eq 0 ]
    python3 -c "import json,struct,sys; f=open(sys.argv[1],'rb'); h=json.loads(f.read(struct.unpack('<Q',f.read(8))[0])); assert h['__metadata__']['init'].endswith('m.safetensors')" "$T/f.safetensors"
}

@test "encodec-train: the trained file loads in encodec-enc/encodec-dec and decodes as the trainer's forward" {
    [ -x "$HAFM_BIN/encodec-enc" ] && [ -x "$HAFM_BIN/encodec-dec" ] || skip "encodec-enc/encodec-dec are not built"
    "$HAFM_BIN/encodec-train" "${TINY[@]}" --bandwidths 18,36 --steps 10 --reconstruct "$T/trainer.wav" \
        -o "$T/m.safetensors" "$D/clip.wav"
    "$HAFM_BIN/encodec-enc" -t 2 -m "$T/m.safetensors" -b 36 "$D/clip.wav" |
        "$HAFM_BIN/encodec-dec" -t 2 -m "$T/m.safetensors" -f float -o "$T/dec.wav"
    # float WAVs compared sample by sample: max |difference| <= 1e-4 * max |trainer|
    python3 - "$T/trainer.wav" "$T/dec.wav" >&3 <<'PY'
import struct, sys
def read(path):
    b = open(path, "rb").read()
    assert b[:4] == b"RIFF" and b[8:12] == b"WAVE", path
    i, fmt, data = 12, None, None
    while i + 8 <= len(b):
        cid, n = b[i:i + 4], struct.unpack("<I", b[i + 4:i + 8])[0]
        if cid == b"fmt ": fmt = struct.unpack("<HHIIHH", b[i + 8:i + 24])
        if cid == b"data": data = b[i + 8:i + 8 + n]
        i += 8 + n + (n & 1)
    assert fmt[5] == 32, (path, fmt)
    return struct.unpack("<%df" % (len(data) // 4), data)
a, b = read(sys.argv[1]), read(sys.argv[2])
assert len(a) == len(b) == 24000, (len(a), len(b))
m = max(abs(x) for x in a)
d = max(abs(x - y) for x, y in zip(a, b))
print("# encodec-dec vs the trainer's forward: max_diff %.3g (%.3g of max|trainer|)" % (d, d / m))
assert d <= 1e-4 * m
PY
}
