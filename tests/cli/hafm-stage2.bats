#!/usr/bin/env bats
# hafm-stage2: vocal + accompaniment semantic tokens (50 Hz) -> coarse codebooks 1-4 (75 Hz).

load stages_common

setup() {
    need_python
    T=$BATS_TMPDIR/stage2.$$
    mkdir -p "$T"
    M=$MODELS/ref_stage2.safetensors
    export HAFM_THREADS=1
    random_stream "$T/in.hafm" --items 2 --seed 4 vocal.semantic:1:50:13:51 accomp.semantic:1:50:11:51 x:1:7:3:2
}

teardown() { rm -rf "$T"; }

@test "help, version, bad options" {
    run "$HAFM_BIN/hafm-stage2" --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    run "$HAFM_BIN/hafm-stage2" --version
    [ "$status" -eq 0 ]
    run "$HAFM_BIN/hafm-stage2" -x
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-stage2" -m "$M" -c vocal.semantic "$T/in.hafm"
    [ "$status" -eq 2 ]
    [[ "$output" == *"2 conditioning tracks, got 1"* ]]
}

@test "coarse track of T x 75/50 frames, rounded up; pass-through unchanged" {
    "$HAFM_BIN/hafm-stage2" -m "$M" "$T/in.hafm" > "$T/out.hafm"
    tracks "$T/in.hafm" > "$T/in.txt"
    tracks "$T/out.hafm" > "$T/out.txt"
    [ "$(grep -v accomp.coarse "$T/out.txt")" = "$(cat "$T/in.txt")" ]
    [ "$(grep -c 'accomp.coarse \[4\] 75 17 77' "$T/out.txt")" -eq 2 ]
}

@test "renamed tracks with -c and -o" {
    random_stream "$T/r.hafm" v:1:50:13:30 a:1:50:11:30
    "$HAFM_BIN/hafm-stage2" -m "$M" -c v -c a -o coarse "$T/r.hafm" > "$T/out.hafm"
    tracks "$T/out.hafm" | grep -q 'coarse \[4\] 75 17 45'
}

@test "bad input: missing accompaniment track, lengths that disagree" {
    random_stream "$T/x.hafm" vocal.semantic:1:50:13:20
    run "$HAFM_BIN/hafm-stage2" -m "$M" "$T/x.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"no track 'accomp.semantic'"* ]]
    random_stream "$T/x.hafm" vocal.semantic:1:50:13:20 accomp.semantic:1:50:11:40
    run "$HAFM_BIN/hafm-stage2" -m "$M" "$T/x.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"differ in length"* ]]
    random_stream "$T/x.hafm" vocal.semantic:1:50:13:1 accomp.semantic:1:50:11:0
    run "$HAFM_BIN/hafm-stage2" -m "$M" "$T/x.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"'accomp.semantic' is empty"* ]]
    random_stream "$T/x.hafm" vocal.semantic:1:50:13:0 accomp.semantic:1:50:11:0
    "$HAFM_BIN/hafm-stage2" -m "$M" "$T/x.hafm" > "$T/e.hafm"
    tracks "$T/e.hafm" | grep -q 'accomp.coarse \[4\] 75 17 0'
    run "$HAFM_BIN/hafm-stage2" -m "$MODELS/ref_stage1.safetensors" "$T/in.hafm"
    [ "$status" -eq 1 ]
    run "$HAFM_BIN/hafm-stage2" -m "$M" < /dev/null
    [ "$status" -eq 1 ]
}
