#!/usr/bin/env bats
# hafm-stage3: coarse codebooks 1-4 -> fine codebooks 5-8, and the whole 3-stage chain.

load stages_common

setup() {
    need_python
    T=$BATS_TMPDIR/stage3.$$
    mkdir -p "$T"
    M=$MODELS/ref_stage3.safetensors
    export HAFM_THREADS=1
}

teardown() { rm -rf "$T"; }

@test "help, version, bad options" {
    run "$HAFM_BIN/hafm-stage3" --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    run "$HAFM_BIN/hafm-stage3" --version
    [ "$status" -eq 0 ]
    run "$HAFM_BIN/hafm-stage3" --top-k=-1
    [ "$status" -eq 2 ]
}

@test "the 3-stage chain: fine track with codebook_offset 4, every earlier track intact" {
    random_stream "$T/v.hafm" --items 2 --seed 5 vocal.semantic:1:50:13:40
    "$HAFM_BIN/hafm-stage1" -m "$MODELS/ref_stage1.safetensors" "$T/v.hafm" |
        "$HAFM_BIN/hafm-stage2" -m "$MODELS/ref_stage2.safetensors" |
        "$HAFM_BIN/hafm-stage3" -m "$M" > "$T/out.hafm"
    tracks "$T/out.hafm" > "$T/out.txt"
    [ "$(grep -c 'accomp.fine \[4\] 75 19 60' "$T/out.txt")" -eq 2 ]
    [ "$(grep -c 'accomp.coarse \[4\] 75 17 60' "$T/out.txt")" -eq 2 ]
    "$HAFM_BIN/hafm-dump" < "$T/out.hafm" | grep '"name":"accomp.fine"' | grep -q '"codebook_offset":4'
}

@test "bad input: coarse track with the fine offset, wrong shape" {
    random_stream "$T/x.hafm" accomp.coarse:4:75:17:30:4
    run "$HAFM_BIN/hafm-stage3" -m "$M" "$T/x.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"expected codebook_offset 0, got 4"* ]]
    random_stream "$T/x.hafm" accomp.coarse:2:75:17:30
    run "$HAFM_BIN/hafm-stage3" -m "$M" "$T/x.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"expected shape [4]"* ]]
}
