#!/usr/bin/env bats
# hubert-tok: audio -> tokens track. The small golden model (tests/data/hubert) and its 16-centroid
# codebook reproduce the torchaudio/scikit-learn tokens.

setup() {
    HT=$HAFM_BIN/hubert-tok
    DUMP=$HAFM_BIN/hafm-dump
    H=$HAFM_DATA/hubert
    MODEL=$H/hubert_small_seed5_hf.safetensors
    KM=$H/kmeans/hubert_small_seed5_L2_km16.npy
    T=$BATS_TEST_TMPDIR
    unset HAFM_HUBERT_MODEL HAFM_CENTROIDS
}

# mkwav FILE SAMPLES [RATE]: a 16-bit PCM mono WAV of silence
mkwav() {
    local n=$2 rate=${3:-16000}
    le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }
    { printf 'RIFF'; le32 $((36 + 2 * n)); printf 'WAVEfmt '; le32 16; printf '\x01\x00\x01\x00'
      le32 "$rate"; le32 $((2 * rate)); printf '\x02\x00\x10\x00data'; le32 $((2 * n))
      head -c $((2 * n)) /dev/zero; } > "$1"
}

# tokens STREAM TRACK: the tokens of the first item as one space-separated line
tokens() { "$DUMP" -f "$1" | grep "\"type\":\"data\"" | grep "\"track\":$2," | sed 's/.*"payload":\[\([^]]*\)\].*/\1/' | tr ',' ' '; }

# golden NAME: the golden tokens of input NAME
golden() { od -An -td4 -v "$H/small/$1/tokens_L2_km16.i32" | tr -s ' \n' '  ' | sed 's/^ //; s/ $//'; }

@test "--help prints the usage on stdout and exits 0" {
    run "$HT" --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "usage: hubert-tok "* ]]
    [[ "$output" == *"--layer L"* ]]
}

@test "--version" {
    run "$HT" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hubert-tok (hafm) "* ]]
}

@test "bad options exit 2" {
    run "$HT" --bogus
    [ "$status" -eq 2 ]
    [[ "$output" == *"unknown option '--bogus'"* ]]
    run "$HT" -m "$MODEL" -c "$KM" -l x "$H/inputs/synth_1s.wav"
    [ "$status" -eq 2 ]
    run "$HT" -m "$MODEL" -c "$KM" --noise 2 "$H/inputs/synth_1s.wav"
    [ "$status" -eq 2 ]
    run "$HT" -m "$MODEL" -c "$KM" -F wav2vec "$H/inputs/synth_1s.wav"
    [ "$status" -eq 2 ]
    # no codebook given and none shipped beside this copy of the executable
    mkdir -p "$T/lone/bin"
    cp "$HT" "$T/lone/bin/"
    run "$T/lone/bin/hubert-tok" -m "$MODEL" "$H/inputs/synth_1s.wav"
    [ "$status" -eq 2 ]
    [[ "$output" == *"-c FILE"* ]]
    run "$HT" -m "$MODEL" -c "$KM" --window 2 --context 1 "$H/inputs/synth_1s.wav"
    [ "$status" -eq 2 ]
}

@test "golden tokens of the small model (file, stdin, model from the environment)" {
    "$HT" -m "$MODEL" -l 2 -c "$KM" "$H/inputs/synth_1s.wav" > "$T/a.hafm"
    [ "$(tokens "$T/a.hafm" 0)" = "$(golden synth_1s)" ]
    run "$DUMP" "$T/a.hafm"
    [[ "$output" == *'"key":"synth_1s"'* ]]
    [[ "$output" == *'"name":"vocal.semantic","kind":"tokens","dtype":"u8","shape":[1],"rate":50,"vocab":16,"frames":49'* ]]
    [[ "$output" == *'"source_samples":16000,"source_rate":16000'* ]]
    HAFM_HUBERT_MODEL=$MODEL "$HT" -l 2 -c "$H/kmeans/hubert_small_seed5_L2_km16.safetensors" < "$H/inputs/synth_1s.wav" > "$T/b.hafm"
    [ "$(tokens "$T/b.hafm" 0)" = "$(golden synth_1s)" ]
}

@test "any sample rate is resampled to 16 kHz; the end message keeps the source length" {
    mkwav "$T/cd.wav" 44100 44100
    "$HT" -m "$MODEL" -l 2 -c "$KM" "$T/cd.wav" > "$T/cd.hafm"
    run "$DUMP" "$T/cd.hafm"
    [[ "$output" == *'"frames":49'* ]]
    [[ "$output" == *'"source_samples":44100,"source_rate":44100'* ]]
}

@test "audio tracks of a stream: every item tokenized, other tracks pass through" {
    [ -x "$HAFM_BIN/hafm-from-audio" ] || skip "hafm-from-audio not built"
    "$HAFM_BIN/hafm-from-audio" "$H/inputs/synth_1s.wav" "$H/inputs/synth_1s.wav" > "$T/in.hafm"
    "$HT" -m "$MODEL" -l 2 -c "$KM" -e < "$T/in.hafm" > "$T/out.hafm"
    run "$DUMP" "$T/out.hafm"
    [ "$(grep -c '"name":"vocal.semantic"' <<< "$output")" -eq 2 ]
    [ "$(grep -c '"name":"vocal.features","kind":"features","dtype":"f32","shape":\[96\]' <<< "$output")" -eq 2 ]
    [ "$(grep -c '"name":"audio"' <<< "$output")" -eq 2 ]
    # the input's messages come through unchanged and in order
    "$DUMP" "$T/in.hafm" | grep -v '"type":"header"' > "$T/in.json"
    "$DUMP" "$T/out.hafm" | grep -v '"type":"header"' | grep -v '"track":[12]' | grep -v 'vocal\.' > "$T/out.json"
    diff "$T/in.json" "$T/out.json"
}

@test "unknown tracks and messages pass through unchanged" {
    [ -x "$HAFM_BIN/hafm-from-json" ] || skip "hafm-from-json not built"
    samples=$(od -An -tf4 -v "$H/inputs/synth_1s.f32" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
    {
        echo '{"type":"header","magic":"hafm-stream","version":[1,0]}'
        echo '{"type":"item","key":"song"}'
        echo '{"type":"track","id":3,"name":"lyrics.tokens","kind":"tokens","dtype":"i16","shape":[1],"rate":10,"vocab":100}'
        echo '{"type":"track","id":5,"name":"audio","kind":"audio","dtype":"f32","shape":[1],"rate":16000,"sample_rate":16000,"channels":1}'
        echo '{"type":"data","track":3,"frames":3,"payload":[1,2,3]}'
        echo '{"type":"future_message","x":1}'
        echo "{\"type\":\"data\",\"track\":5,\"frames\":16000,\"payload\":[$samples]}"
        echo '{"type":"end","track":5,"frames":16000}'
        echo '{"type":"end","track":3,"frames":3}'
        echo '{"type":"item_end","key":"song"}'
    } | "$HAFM_BIN/hafm-from-json" > "$T/in.hafm"
    "$HT" -m "$MODEL" -l 2 -c "$KM" -n my.tokens "$T/in.hafm" > "$T/out.hafm"
    run "$DUMP" "$T/out.hafm"
    [ "$status" -eq 0 ]
    [[ "$output" == *'"name":"lyrics.tokens"'* ]]
    [[ "$output" == *'"type":"future_message"'* ]]
    [[ "$output" == *'"id":0,"name":"my.tokens"'* ]]
    [ "$(tokens "$T/out.hafm" 0)" = "$(golden synth_1s)" ]
}

@test "--noise is reproducible with --seed" {
    "$HT" -m "$MODEL" -l 2 -c "$KM" -e --noise 0.01 --seed 3 "$H/inputs/synth_1s.wav" > "$T/a.hafm"
    "$HT" -m "$MODEL" -l 2 -c "$KM" -e --noise 0.01 --seed 3 "$H/inputs/synth_1s.wav" > "$T/b.hafm"
    "$HT" -m "$MODEL" -l 2 -c "$KM" -e --noise 0.01 --seed 4 "$H/inputs/synth_1s.wav" > "$T/c.hafm"
    cmp "$T/a.hafm" "$T/b.hafm"
    ! cmp -s "$T/a.hafm" "$T/c.hafm"
    run "$DUMP" "$T/a.hafm"
    [[ "$output" == *'"noise":0.01,"seed":3'* ]]
}

@test "weight-free MFCC features and their codebook" {
    "$HT" -F mfcc -e "$H/inputs/synth_1s.wav" "$H/inputs/synth_1s.wav" > "$T/f.hafm"
    run "$DUMP" "$T/f.hafm"
    [[ "$output" == *'"name":"vocal.features","kind":"features","dtype":"f32","shape":[39],"rate":50,"frames":49'* ]]
    "$HAFM_BIN/hafm-kmeans" -q -k 8 -o "$T/mfcc8.npy" "$T/f.hafm"
    "$HT" -F mfcc -c "$T/mfcc8.npy" "$H/inputs/synth_1s.wav" > "$T/t.hafm"
    run "$DUMP" "$T/t.hafm"
    [[ "$output" == *'"vocab":8,"frames":49'* ]]
    [[ "$output" == *'"features":"mfcc"'* ]]
    "$HT" -F logmel -e --cmvn none "$H/inputs/synth_1s.wav" | "$DUMP" | grep -q '"shape":\[80\]'
}

@test "chroma features: 13 cepstra and 12 chroma shares, and a codebook that names them" {
    "$HT" -F chroma -e --cmvn none "$H/inputs/synth_1s.wav" > "$T/f.hafm"
    run "$DUMP" "$T/f.hafm"
    [[ "$output" == *'"name":"vocal.features","kind":"features","dtype":"f32","shape":[25],"rate":50,"frames":49'* ]]
    # without normalisation the last 12 values of every frame are shares: they sum to 1
    "$DUMP" -f "$T/f.hafm" | python3 -c '
import json, sys
rows = [m["payload"] for m in map(json.loads, sys.stdin) if m["type"] == "data"]
frames = [r[i:i + 25] for r in rows for i in range(0, len(r), 25)]
assert len(frames) == 49, len(frames)
assert all(abs(sum(f[13:]) - 1) < 1e-5 and min(f[13:]) >= 0 for f in frames)'
    "$HT" -F chroma -e "$H/inputs/synth_1s.wav" > "$T/g.hafm"
    "$HAFM_BIN/hafm-kmeans" -q -k 8 -o "$T/km.safetensors" "$T/g.hafm"
    grep -q '"features":"chroma"' "$T/km.safetensors"
    "$HT" -c "$T/km.safetensors" "$H/inputs/synth_1s.wav" | "$DUMP" | grep -q '"features":"chroma"'
    run "$HT" -F mfcc -c "$T/km.safetensors" "$H/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"fitted on chroma features, not mfcc"* ]]
    run "$HT" -F chord "$H/inputs/synth_1s.wav"
    [ "$status" -eq 2 ]
    [[ "$output" == *"expected hubert, mfcc, logmel or chroma, got 'chord'"* ]]
}

@test "a codebook names its features: hubert-tok takes them from it, and finds the shipped one" {
    "$HT" -F mfcc --cmvn mean -e "$H/inputs/synth_1s.wav" > "$T/f.hafm"
    "$HAFM_BIN/hafm-kmeans" -q -k 8 --seed 2 -o "$T/km.safetensors" "$T/f.hafm"
    "$HAFM_BIN/hafm-kmeans" -q -k 8 --seed 2 -o "$T/km.npy" "$T/f.hafm"
    grep -q '"features":"mfcc"' "$T/km.safetensors"
    grep -q '"cmvn":"mean"' "$T/km.safetensors"
    "$HT" -F mfcc --cmvn mean -c "$T/km.npy" "$H/inputs/synth_1s.wav" > "$T/explicit.hafm"
    want=$(tokens "$T/explicit.hafm" 0)
    [ -n "$want" ]
    # the .npy has no metadata: these options matter, and other ones give other tokens
    "$HT" -F mfcc --cmvn meanvar -c "$T/km.npy" "$H/inputs/synth_1s.wav" > "$T/other.hafm"
    [ "$(tokens "$T/other.hafm" 0)" != "$want" ]
    "$HT" -c "$T/km.safetensors" "$H/inputs/synth_1s.wav" > "$T/auto.hafm"
    [ "$(tokens "$T/auto.hafm" 0)" = "$want" ]
    # found through the environment, then beside the executable as models/centroids.safetensors
    HAFM_CENTROIDS=$T/km.safetensors "$HT" < "$H/inputs/synth_1s.wav" > "$T/env.hafm"
    [ "$(tokens "$T/env.hafm" 0)" = "$want" ]
    mkdir -p "$T/inst/bin" "$T/inst/models"
    cp "$HT" "$T/inst/bin/"
    cp "$T/km.safetensors" "$T/inst/models/centroids.safetensors"
    "$T/inst/bin/hubert-tok" < "$H/inputs/synth_1s.wav" > "$T/shipped.hafm"
    [ "$(tokens "$T/shipped.hafm" 0)" = "$want" ]
    # options that contradict the codebook are refused
    run "$HT" -F logmel -c "$T/km.safetensors" "$H/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"km.safetensors: the centroids were fitted on mfcc features, not logmel"* ]]
    run "$HT" --cmvn none -c "$T/km.safetensors" "$H/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"fitted on features with cmvn mean"* ]]
    run "$HT" -m "$MODEL" -c "$T/km.safetensors" "$H/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"fitted on mfcc features, not hubert"* ]]
    # features of different kinds in one codebook's training data
    "$HT" -F mfcc -e "$H/inputs/synth_1s.wav" > "$T/g.hafm"
    run "$HAFM_BIN/hafm-kmeans" -q -k 8 -o "$T/mixed.safetensors" "$T/f.hafm" "$T/g.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"cmvn 'meanvar', earlier items had 'mean'"* ]]
    [ ! -e "$T/mixed.safetensors" ]
}

@test "too-short audio, wrong centroid dimension, bad weights: exit 1 with a message" {
    mkwav "$T/short.wav" 399
    run "$HT" -m "$MODEL" -l 2 -c "$KM" "$T/short.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"hubert-tok: "*"too short: 399 samples"* ]]
    mkwav "$T/ok.wav" 400
    run "$HT" -m "$MODEL" -l 2 -c "$KM" "$T/ok.wav"
    [ "$status" -eq 0 ]
    run "$HT" -F mfcc -c "$KM" "$H/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"centroids have dimension 96, the mfcc features are 39-dimensional"* ]]
    head -c 100000 "$MODEL" > "$T/trunc.safetensors"
    run "$HT" -m "$T/trunc.safetensors" -l 2 -c "$KM" "$H/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == "hubert-tok: "*"trunc.safetensors"* ]]
    run "$HT" -m "$H/kmeans/hubert_small_seed5_L2_km16.safetensors" -l 2 -c "$KM" "$H/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"missing tensor 'feature_projection.projection.weight'"* ]]
    run "$HT" -m "$MODEL" -l 3 -c "$KM" "$H/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"layer 3 out of range"* ]]
    run "$HT" -c "$KM" "$H/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"HAFM_HUBERT_MODEL"* ]]
}

@test "empty, corrupt and truncated input: exit 1, no output file" {
    run "$HT" -m "$MODEL" -l 2 -c "$KM" -o "$T/o.hafm" < /dev/null
    [ "$status" -eq 1 ]
    [[ "$output" == *"empty input"* ]]
    head -c 3000 /dev/urandom > "$T/noise.bin"
    run "$HT" -m "$MODEL" -l 2 -c "$KM" -o "$T/o.hafm" "$T/noise.bin"
    [ "$status" -eq 1 ]
    "$HT" -m "$MODEL" -l 2 -c "$KM" -e "$H/inputs/synth_1s.wav" > "$T/s.hafm"
    head -c 2000 "$T/s.hafm" > "$T/cut.hafm"
    run "$HT" -m "$MODEL" -l 2 -c "$KM" -a vocal.features -o "$T/o.hafm" "$T/cut.hafm"
    [ "$status" -eq 1 ]
    run "$HT" -m "$MODEL" -l 2 -c "$KM" -o "$T/o.hafm" "$T/s.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"has no track 'audio'"* ]]
    run "$HT" -m "$MODEL" -l 2 -c "$KM" -a vocal.features -o "$T/o.hafm" "$T/s.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"not an audio track"* ]]
    [ ! -e "$T/o.hafm" ]
    [ -z "$(ls "$T" | grep tmp)" ]
}
