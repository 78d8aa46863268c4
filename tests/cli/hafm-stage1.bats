#!/usr/bin/env bats
# hafm-stage1: vocal semantic tokens -> accompaniment semantic tokens (tiny 0.24 s window model).

load stages_common

setup() {
    need_python
    T=$BATS_TMPDIR/stage1.$$
    mkdir -p "$T"
    M=$MODELS/ref_stage1.safetensors
    export HAFM_THREADS=1
    random_stream "$T/in.hafm" --items 2 --seed 3 vocal.semantic:1:50:13:101 notes:2:10:5:7
}

teardown() { rm -rf "$T"; }

@test "help, version, bad options" {
    run "$HAFM_BIN/hafm-stage1" --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    [[ "$output" == *"--cfg-scale"*"[model, else 3]"* ]]
    [[ "$output" == *"Sampling defaults are the model's own"* ]]
    run "$HAFM_BIN/hafm-stage1" --version
    [ "$status" -eq 0 ]
    [[ "$output" == *hafm* ]]
    run "$HAFM_BIN/hafm-stage1" --bogus
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-stage1" -m "$M" -s 101 "$T/in.hafm"
    [ "$status" -eq 2 ]
    [[ "$output" == *"-s"* ]]
    run "$HAFM_BIN/hafm-stage1" -m "$M" -p 0 "$T/in.hafm"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-stage1" -m "$M" --overlap 0.24 "$T/in.hafm"
    [ "$status" -eq 2 ]
}

@test "appends accomp.semantic of the input length to every item, passes the rest through" {
    "$HAFM_BIN/hafm-stage1" -m "$M" "$T/in.hafm" > "$T/out.hafm"
    tracks "$T/in.hafm" > "$T/in.txt"
    tracks "$T/out.hafm" > "$T/out.txt"
    # every input track unchanged (101 frames = 17 windows of 12 units with 3 units of overlap)
    [ "$(grep -v accomp.semantic "$T/out.txt")" = "$(cat "$T/in.txt")" ]
    [ "$(grep -c 'accomp.semantic \[1\] 50 11 101' "$T/out.txt")" -eq 2 ]
    "$HAFM_BIN/hafm-dump" < "$T/out.hafm" | grep '"name":"accomp.semantic"' | grep -q '"cfg_scale":3'
}

@test "the generated track ends with the source length of the conditioning track" {
    # hubert-tok writes the vocal's length in samples into the end of vocal.semantic; the stage
    # carries it on so encodec-dec can trim the accompaniment to the vocal's length
    "$HAFM_BIN/hafm-dump" -f "$T/in.hafm" |
        sed 's/{"type":"end","track":0,"frames":101}/{"type":"end","track":0,"frames":101,"source_samples":32300,"source_rate":16000}/' |
        "$HAFM_BIN/hafm-from-json" > "$T/src.hafm"
    "$HAFM_BIN/hafm-dump" "$T/src.hafm" | grep -q '"source_samples":32300'
    "$HAFM_BIN/hafm-stage1" -m "$M" "$T/src.hafm" > "$T/out.hafm"
    id=$("$HAFM_BIN/hafm-dump" "$T/out.hafm" | grep '"name":"accomp.semantic"' | head -1 | sed 's/.*"id":\([0-9]*\).*/\1/')
    [ "$("$HAFM_BIN/hafm-dump" "$T/out.hafm" | grep -c "{\"type\":\"end\",\"track\":$id,\"frames\":101,\"source_samples\":32300,\"source_rate\":16000}")" -eq 2 ]
    # without it in the input, none in the output
    [ "$("$HAFM_BIN/hafm-stage1" -m "$M" "$T/in.hafm" | "$HAFM_BIN/hafm-dump" | grep -c source_samples)" -eq 0 ]
}

@test "without -m or HAFM_STAGE1_MODEL, the model shipped in models/ beside the executable" {
    mkdir -p "$T/tree/bin" "$T/tree/models"
    cp "$HAFM_BIN/hafm-stage1" "$T/tree/bin/"
    HAFM_STAGE1_MODEL= run "$T/tree/bin/hafm-stage1" "$T/in.hafm"
    [ "$status" -ne 0 ]
    [[ "$output" == *"models/stage1.safetensors not found"* ]]
    cp "$M" "$T/tree/models/stage1.safetensors"
    HAFM_STAGE1_MODEL= "$T/tree/bin/hafm-stage1" "$T/in.hafm" > "$T/a.hafm"
    "$HAFM_BIN/hafm-stage1" -m "$M" "$T/in.hafm" > "$T/b.hafm"
    # the same tokens (the model parameter names the file it came from)
    [ "$("$HAFM_BIN/hafm-dump" -f "$T/a.hafm" | grep -v '"type":"track"')" = "$("$HAFM_BIN/hafm-dump" -f "$T/b.hafm" | grep -v '"type":"track"')" ]
}

@test "same seed, same tokens; another seed, other tokens; greedy ignores the seed" {
    "$HAFM_BIN/hafm-stage1" -m "$M" -S 7 "$T/in.hafm" > "$T/a.hafm"
    "$HAFM_BIN/hafm-stage1" -m "$M" -S 7 "$T/in.hafm" > "$T/b.hafm"
    "$HAFM_BIN/hafm-stage1" -m "$M" -S 8 "$T/in.hafm" > "$T/c.hafm"
    cmp "$T/a.hafm" "$T/b.hafm"
    ! cmp -s "$T/a.hafm" "$T/c.hafm"
    "$HAFM_BIN/hafm-stage1" -m "$M" -T 0 -S 1 "$T/in.hafm" | "$HAFM_BIN/hafm-dump" | grep -v '"seed"' > "$T/g1"
    "$HAFM_BIN/hafm-stage1" -m "$M" -T 0 -S 2 "$T/in.hafm" | "$HAFM_BIN/hafm-dump" | grep -v '"seed"' > "$T/g2"
    cmp "$T/g1" "$T/g2"
}

@test "scale 1, top-p, fp32 and threads are accepted; the model comes from \$HAFM_STAGE1_MODEL" {
    HAFM_STAGE1_MODEL=$M run "$HAFM_BIN/hafm-stage1" -s 1 -p 0.9 -k 0 --fp32 -t 2 "$T/in.hafm"
    [ "$status" -eq 0 ]
    HAFM_STAGE1_MODEL=$T/none.safetensors run "$HAFM_BIN/hafm-stage1" "$T/in.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == hafm-stage1:*none.safetensors* ]]
}

@test "bad input: missing track, wrong vocabulary, wrong rate, existing output track" {
    random_stream "$T/x.hafm" other:1:50:13:20
    run "$HAFM_BIN/hafm-stage1" -m "$M" "$T/x.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"no track 'vocal.semantic'"* ]]
    random_stream "$T/x.hafm" vocal.semantic:1:50:14:20
    run "$HAFM_BIN/hafm-stage1" -m "$M" "$T/x.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"track 'vocal.semantic': expected vocabulary 13, got 14"* ]]
    random_stream "$T/x.hafm" vocal.semantic:1:75:13:20
    run "$HAFM_BIN/hafm-stage1" -m "$M" "$T/x.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"expected rate 50 Hz"* ]]
    random_stream "$T/x.hafm" vocal.semantic:1:50:13:20 accomp.semantic:1:50:11:20
    run "$HAFM_BIN/hafm-stage1" -m "$M" "$T/x.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"already has a track 'accomp.semantic'"* ]]
}

@test "bad input: empty, truncated, not a stream" {
    run "$HAFM_BIN/hafm-stage1" -m "$M" < /dev/null
    [ "$status" -eq 1 ]
    [[ "$output" == hafm-stage1:* ]]
    head -c 300 "$T/in.hafm" > "$T/trunc.hafm"
    run "$HAFM_BIN/hafm-stage1" -m "$M" "$T/trunc.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *hafm-stage1:* ]]
    run "$HAFM_BIN/hafm-stage1" -m "$M" "$M"
    [ "$status" -eq 1 ]
    run "$HAFM_BIN/hafm-stage1" -m "$M" "$T/missing.hafm"
    [ "$status" -eq 1 ]
}

@test "bad model: another stage, corrupt, truncated, not a model" {
    run "$HAFM_BIN/hafm-stage1" -m "$MODELS/ref_stage2.safetensors" "$T/in.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"stage 2 model, not stage 1"* ]]
    head -c 5000 "$M" > "$T/trunc.safetensors"
    run "$HAFM_BIN/hafm-stage1" -m "$T/trunc.safetensors" "$T/in.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == hafm-stage1:* ]]
    printf 'garbage' > "$T/g.safetensors"
    run "$HAFM_BIN/hafm-stage1" -m "$T/g.safetensors" "$T/in.hafm"
    [ "$status" -eq 1 ]
    run "$HAFM_BIN/hafm-stage1" -m "$T/in.hafm" "$T/in.hafm"
    [ "$status" -eq 1 ]
}
