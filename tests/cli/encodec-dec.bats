#!/usr/bin/env bats
# encodec-dec: EnCodec codes -> audio; parity with the golden small model through the command.

setup() {
    M=$HAFM_DATA/encodec/encodec_small_seed7.safetensors
    G=$HAFM_DATA/encodec
    CHECK="python3 $BATS_TEST_DIRNAME/encodec_check.py"
    T=$BATS_TEST_TMPDIR
    ENC=$HAFM_BIN/encodec-enc
    DEC=$HAFM_BIN/encodec-dec
    export HAFM_ENCODEC_MODEL=$M
}

@test "encodec-dec --help and --version" {
    run $DEC --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--stream"* ]]
    run $DEC --version
    [ "$status" -eq 0 ]
}

@test "encodec-dec: bad options exit 2" {
    run $DEC --bogus
    [ "$status" -eq 2 ]
    run $DEC -f mp3
    [ "$status" -eq 2 ]
    run $DEC -t abc
    [ "$status" -eq 2 ]
    # no model at all: the next test, on a copy of the executable with no models/ beside it
}

@test "encodec-dec and encodec-enc: without -m or HAFM_ENCODEC_MODEL, the codec shipped in models/" {
    mkdir -p "$T/tree/bin" "$T/tree/models"
    cp "$ENC" "$DEC" "$T/tree/bin/"
    HAFM_ENCODEC_MODEL= run "$T/tree/bin/encodec-enc" "$G/inputs/synth_1s.f32"
    [ "$status" -eq 2 ]
    [[ "$output" == *"models/codec.safetensors not found"* ]]
    cp "$M" "$T/tree/models/codec.safetensors"
    sox -n -r 24000 -c 1 -b 16 "$T/in.wav" synth 0.5 sine 440 2> /dev/null
    HAFM_ENCODEC_MODEL= "$T/tree/bin/encodec-enc" "$T/in.wav" | HAFM_ENCODEC_MODEL= "$T/tree/bin/encodec-dec" -o "$T/a.wav"
    "$ENC" -m "$M" "$T/in.wav" | "$DEC" -m "$M" -o "$T/b.wav"
    cmp "$T/a.wav" "$T/b.wav"
}

@test "encodec-dec: audio from the codes equals the golden decoded audio, trimmed to the source" {
    for input in synth_1s synth_odd12345 synth_short1000; do
        $ENC "$G/inputs/$input.f32" 2>/dev/null && false
        sox -t f32 -r 24000 -c 1 "$G/inputs/$input.f32" "$T/in.wav"
        $ENC "$T/in.wav" | $DEC --stream > "$T/d.hafm"
        $HAFM_BIN/hafm-dump --raw decoded -o "$T/y.f32" "$T/d.hafm"
        n=$(( $(stat -c %s "$T/y.f32") / 4 ))
        [ "$n" -eq "$(( $(stat -c %s "$G/inputs/$input.f32") / 4 ))" ]
        $CHECK floats "$T/y.f32" 1 "$G/small/$input/bw6.0/decoded.f32"
    done
}

@test "encodec-dec: WAV output, stdout and -o, pcm16 and float" {
    $ENC "$G/inputs/synth_1s.wav" > "$T/s.hafm"
    $DEC "$T/s.hafm" > "$T/a.wav"
    $DEC -o "$T/b.wav" < "$T/s.hafm"
    cmp "$T/a.wav" "$T/b.wav"
    [ "$(soxi -s "$T/a.wav")" -eq 24000 ]
    [ "$(soxi -r "$T/a.wav")" -eq 24000 ]
    $DEC -f float -o "$T/f.wav" "$T/s.hafm"
    [ "$(soxi -s "$T/f.wav")" -eq 24000 ]
    [[ "$(soxi -e "$T/f.wav")" == *"Floating Point"* ]]
}

@test "encodec-dec: accomp.coarse + accomp.fine joined by codebook_offset equal the codes track" {
    $ENC "$G/inputs/synth_1s.wav" > "$T/s.hafm"
    $HAFM_BIN/hafm-dump -f "$T/s.hafm" | $CHECK split | $HAFM_BIN/hafm-from-json > "$T/split.hafm"
    $DEC -f float "$T/s.hafm" > "$T/a.wav"
    $DEC -f float "$T/split.hafm" > "$T/b.wav"
    cmp "$T/a.wav" "$T/b.wav"
    $DEC -f float -i accomp.coarse,accomp.fine "$T/split.hafm" > "$T/c.wav"
    cmp "$T/a.wav" "$T/c.wav"
    # the coarse codebooks alone decode too (4 of 8)
    $DEC -i accomp.coarse -o "$T/d.wav" "$T/split.hafm"
    [ "$(soxi -s "$T/d.wav")" -eq 24000 ]
}

@test "encodec-dec: fewer codebooks than the model (1.5 kbps codes) match the golden audio" {
    $ENC -b 1.5 "$G/inputs/synth_1s.wav" | $DEC --stream > "$T/d.hafm"
    $HAFM_BIN/hafm-dump --raw decoded -o "$T/y.f32" "$T/d.hafm"
    $CHECK floats "$T/y.f32" 1 "$G/small/synth_1s/bw1.5/decoded.f32"
}

@test "encodec-dec: --stream passes everything through; several items; %k output names" {
    $ENC -k one "$G/inputs/synth_1s.wav" > "$T/a.hafm"
    sox -t f32 -r 24000 -c 1 "$G/inputs/synth_odd12345.f32" "$T/odd.wav"
    $ENC -k two "$T/odd.wav" > "$T/b.hafm"
    cat "$T/a.hafm" "$T/b.hafm" > "$T/ab.hafm"
    $DEC --stream "$T/ab.hafm" > "$T/out.hafm"
    run $HAFM_BIN/hafm-dump "$T/out.hafm"
    [ "$(grep -c '"name":"decoded","kind":"audio"' <<< "$output")" -eq 2 ]
    [[ "$output" == *'"frames":12345'* ]]
    $HAFM_BIN/hafm-dump --raw codes -i two -o "$T/c1" "$T/b.hafm"
    $HAFM_BIN/hafm-dump --raw codes -i two -o "$T/c2" "$T/out.hafm"
    cmp "$T/c1" "$T/c2"
    $DEC -o "$T/item-%k.wav" "$T/ab.hafm"
    [ "$(soxi -s "$T/item-one.wav")" -eq 24000 ]
    [ "$(soxi -s "$T/item-two.wav")" -eq 12345 ]
    run $DEC -o "$T/x.wav" "$T/ab.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"%k"* ]]
}

@test "encodec-dec: too many codebooks, out-of-range codes, missing track, truncated or empty stream" {
    $ENC "$G/inputs/synth_1s.wav" > "$T/s.hafm"
    $HAFM_BIN/hafm-dump -f "$T/s.hafm" | $CHECK widen | $HAFM_BIN/hafm-from-json > "$T/wide.hafm"
    run $DEC -o "$T/o.wav" "$T/wide.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"the model has 8"* ]]
    [ ! -e "$T/o.wav" ]
    $HAFM_BIN/hafm-dump -f "$T/s.hafm" | $CHECK oob | $HAFM_BIN/hafm-from-json > "$T/oob.hafm"
    run $DEC -o "$T/o.wav" "$T/oob.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"outside the vocabulary"* ]]
    [ ! -e "$T/o.wav" ]
    run $DEC -i nosuch -o "$T/o.wav" "$T/s.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"no tokens track"* ]]
    head -c 900 "$T/s.hafm" > "$T/trunc.hafm"
    run $DEC -o "$T/o.wav" "$T/trunc.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"truncated"* ]]
    [ ! -e "$T/o.wav" ]
    run $DEC --stream -o "$T/o.hafm" "$T/trunc.hafm"
    [ "$status" -eq 1 ]
    [ ! -e "$T/o.hafm" ]
    : > "$T/empty"
    run $DEC -o "$T/o.wav" "$T/empty"
    [ "$status" -eq 1 ]
    run $DEC -o "$T/o.wav" "$G/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
    [ ! -e "$T/o.wav" ]
}

@test "encodec-dec: round trip of encodec_test_24k.wav with the full-size model, streamed" {
    F=$HAFM_SHARED/golden/encodec/encodec24k_seed1234_full_hf.safetensors
    A=$HAFM_SHARED/audio/encodec_test_24k.wav
    [ -f "$F" ] && [ -f "$A" ] || skip "$HAFM_SHARED is absent"
    export HAFM_ENCODEC_MODEL=$F
    $ENC -b 24 "$A" > "$T/c.hafm"
    run $HAFM_BIN/hafm-dump "$T/c.hafm"
    [[ "$output" == *'"shape":[32],"rate":75,"vocab":1024'* ]]
    $DEC -f float -o "$T/y.wav" "$T/c.hafm"
    [ "$(soxi -s "$T/y.wav")" -eq "$(soxi -s "$A")" ]
    # the decoder output starts before its input ends: a slow writer still gets audio early
    $DEC --stream "$T/c.hafm" | $HAFM_BIN/hafm-dump | grep -c '"type":"data"' > "$T/n"
    [ "$(cat "$T/n")" -gt 2 ]
}
