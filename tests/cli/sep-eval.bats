#!/usr/bin/env bats
# sep-eval: museval v4 SDR, uSDR and SI-SDR of files and streams.

setup() {
    EV=$HAFM_BIN/sep-eval
    VS=$HAFM_BIN/vsep
    D=$HAFM_DATA/fadvsep
    T=$BATS_TEST_TMPDIR
}

@test "--help prints the usage on stdout and exits 0" {
    run "$EV" --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "usage: sep-eval "* ]]
}

@test "--version" {
    run "$EV" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "sep-eval (hafm) "* ]]
}

@test "bad options exit 2" {
    run "$EV" --bogus
    [ "$status" -eq 2 ]
    run "$EV" -w 0 a b
    [ "$status" -eq 2 ]
    run "$EV" onlyone
    [ "$status" -eq 2 ]
    run "$EV" -s a,b,c r1 e1 r2 e2
    [ "$status" -eq 2 ]
}

@test "the mixture as estimate: SDR = -/+ the stems' level ratio; a reference scores inf" {
    run "$EV" "$D/vocal.wav" "$D/mix.wav" "$D/accomp.wav" "$D/mix.wav"
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == *"SDR"*"uSDR"*"SI-SDR"* ]]
    v=$(awk '$2 == "vocal" { print $3 }' <<< "$output")
    a=$(awk '$2 == "accomp" { print $3 }' <<< "$output")
    awk -v v="$v" -v a="$a" 'BEGIN { exit !(v < 0 && a > 0 && (v + a) * (v + a) < 0.01) }'
    run "$EV" -s vocal "$D/vocal.wav" "$D/vocal.wav"
    [ "$status" -eq 0 ]
    [[ "${lines[1]}" == *"inf"* ]]
}

@test "JSON with frame SDRs; streams matched by item key" {
    run "$EV" -j -w 2 "$D/vocal.wav" "$D/mix.wav" "$D/accomp.wav" "$D/mix.wav"
    [ "$status" -eq 0 ]
    [[ "$output" == *'"SDR_frames":'* ]]
    [ "$(grep -c '"SI-SDR"' <<< "$output")" -eq 4 ]
    "$VS" "$D/mix.wav" > "$T/est.hafm"
    run "$EV" "$T/est.hafm" "$T/est.hafm"
    [ "$status" -eq 0 ]
    [[ "${lines[1]}" == "mix "*"vocal"* ]]
}

@test "bad input exits 1" {
    : > "$T/empty.wav"
    run "$EV" "$D/vocal.wav" "$T/empty.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == "sep-eval: "* ]]
    "$VS" "$D/mix.wav" > "$T/est.hafm"
    head -c 3000 "$T/est.hafm" > "$T/trunc.hafm"
    run "$EV" "$T/est.hafm" "$T/trunc.hafm"
    [ "$status" -eq 1 ]
    run "$EV" -s vocal,nope "$T/est.hafm" "$T/est.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"no audio track 'nope'"* ]]
    run "$EV" "$T/est.hafm" "$D/mix.wav"
    [ "$status" -eq 1 ]
}
