#!/usr/bin/env bats
# encodec-enc: audio -> EnCodec codes; parity with the golden small model through the command.

setup() {
    M=$HAFM_DATA/encodec/encodec_small_seed7.safetensors
    MH=$HAFM_DATA/encodec/encodec_small_seed7_hf.safetensors
    G=$HAFM_DATA/encodec
    CHECK="python3 $BATS_TEST_DIRNAME/encodec_check.py"
    T=$BATS_TEST_TMPDIR
    ENC=$HAFM_BIN/encodec-enc
    DEC=$HAFM_BIN/encodec-dec
}

@test "encodec-enc --help and --version" {
    run $ENC --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--bandwidth"* ]]
    run $ENC --version
    [ "$status" -eq 0 ]
    [[ "$output" == *"0."* ]]
}

@test "encodec-enc: bad options exit 2" {
    run $ENC --bogus
    [ "$status" -eq 2 ]
    run $ENC -m "$M" -b 7 "$G/inputs/synth_1s.wav"
    [ "$status" -eq 2 ]
    [[ "$output" == *"1.5, 3, 6"* ]]
    run $ENC -m "$M" -t 0 "$G/inputs/synth_1s.wav"
    [ "$status" -eq 2 ]
    # no model at all: encodec-dec.bats, on a copy of the executable with no models/ beside it
}

@test "encodec-enc: codes and latent equal the golden ones (both namings)" {
    for model in "$M" "$MH"; do
        $ENC -m "$model" --latent "$G/inputs/synth_1s.wav" -o "$T/s.hafm"
        $HAFM_BIN/hafm-dump --raw codes -o "$T/codes.i16" "$T/s.hafm"
        $CHECK codes "$T/codes.i16" 8 "$G/small/synth_1s/bw6.0/codes.i32" "$G/small/synth_1s/bw6.0/code_margin.f32"
        $HAFM_BIN/hafm-dump --raw latent -o "$T/latent.f32" "$T/s.hafm"
        $CHECK floats "$T/latent.f32" 32 "$G/small/synth_1s/latent.f32"
    done
    $HAFM_BIN/hafm-dump "$T/s.hafm" | grep -q '"source_samples":24000,"source_rate":24000'
}

@test "encodec-enc: -b 1.5 gives 2 codebooks, equal to the golden ones" {
    HAFM_ENCODEC_MODEL=$M $ENC -b 1.5 "$G/inputs/synth_1s.wav" > "$T/s.hafm"
    $HAFM_BIN/hafm-dump "$T/s.hafm" | grep -q '"name":"codes","kind":"tokens","dtype":"i16","shape":\[2\],"rate":75,"vocab":512'
    $HAFM_BIN/hafm-dump --raw codes -o "$T/codes.i16" "$T/s.hafm"
    $CHECK codes "$T/codes.i16" 2 "$G/small/synth_1s/bw1.5/codes.i32" "$G/small/synth_1s/bw1.5/code_margin.f32"
}

@test "encodec-enc: stdin, resampling and stereo mixdown" {
    sox -n -r 44100 -c 2 "$T/tone.wav" synth 1.3 sine 440 sine 660
    $ENC -m "$M" < "$T/tone.wav" > "$T/t.hafm"
    run $HAFM_BIN/hafm-dump "$T/t.hafm"
    [[ "$output" == *'"key":"stdin"'* ]]
    [[ "$output" == *'"frames":98,"source_samples":57330,"source_rate":44100'* ]]
}

@test "encodec-enc: an audio track in a stream, other tracks pass through, several items" {
    $ENC -m "$M" -k one "$G/inputs/synth_1s.wav" > "$T/a.hafm"
    $ENC -m "$M" -k two "$G/inputs/synth_short1000.f32" 2>/dev/null && false
    $ENC -m "$M" -k two "$G/inputs/synth_1s.wav" > "$T/b.hafm"
    cat "$T/a.hafm" "$T/b.hafm" | $DEC -m "$M" --stream -n audio > "$T/ab.hafm"
    $ENC -m "$M" -n codes2 "$T/ab.hafm" > "$T/re.hafm"
    run $HAFM_BIN/hafm-dump "$T/re.hafm"
    [ "$status" -eq 0 ]
    [ "$(grep -c '"name":"codes2"' <<< "$output")" -eq 2 ]
    [ "$(grep -c '"name":"codes"' <<< "$output")" -eq 2 ]
    [ "$(grep -c '"name":"audio"' <<< "$output")" -eq 2 ]
    [ "$(grep -c '"type":"item_end"' <<< "$output")" -eq 2 ]
    # the passed-through codes are unchanged
    $HAFM_BIN/hafm-dump --raw codes -i two -o "$T/c1" "$T/b.hafm"
    $HAFM_BIN/hafm-dump --raw codes -i two -o "$T/c2" "$T/re.hafm"
    cmp "$T/c1" "$T/c2"
}

@test "encodec-enc: a stream item without the audio track is an error" {
    $ENC -m "$M" "$G/inputs/synth_1s.wav" > "$T/a.hafm"
    run $ENC -m "$M" "$T/a.hafm" -o "$T/out.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"no audio track 'audio'"* ]]
    [ ! -e "$T/out.hafm" ]
    run $ENC -m "$M" -i codes "$T/a.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"expected an audio track"* ]]
}

@test "encodec-enc: empty, corrupt and truncated input: exit 1, no output file" {
    sox -n -r 24000 -c 1 "$T/empty.wav" trim 0 0
    run $ENC -m "$M" "$T/empty.wav" -o "$T/out.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"no audio samples"* ]]
    [ ! -e "$T/out.hafm" ]
    head -c 3000 /dev/urandom > "$T/junk"
    run $ENC -m "$M" "$T/junk" -o "$T/out.hafm"
    [ "$status" -eq 1 ]
    [ ! -e "$T/out.hafm" ]
    : > "$T/nothing"
    run $ENC -m "$M" "$T/nothing" -o "$T/out.hafm"
    [ "$status" -eq 1 ]
    [ ! -e "$T/out.hafm" ]
    $ENC -m "$M" "$G/inputs/synth_1s.wav" | $DEC -m "$M" --stream > "$T/s.hafm"
    head -c 2000 "$T/s.hafm" > "$T/trunc.hafm"
    run $ENC -m "$M" -i decoded -n codes2 "$T/trunc.hafm" -o "$T/out.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"truncated"* ]]
    [ ! -e "$T/out.hafm" ]
    run $ENC -m "$M" nonexistent.wav
    [ "$status" -eq 1 ]
}

@test "encodec-enc: defective weight files are refused with a message" {
    head -c 100000 "$M" > "$T/trunc.safetensors"
    run $ENC -m "$T/trunc.safetensors" "$G/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"trunc.safetensors"* ]]
    run $ENC -m "$G/inputs/synth_1s.wav" "$G/inputs/synth_1s.wav"
    [ "$status" -eq 1 ]
}

@test "encodec-enc: full-size model on the 12345-sample input" {
    F=$HAFM_SHARED/golden/encodec
    [ -f "$F/encodec24k_seed1234_full_hf.safetensors" ] || skip "$F is absent"
    $ENC -m "$F/encodec24k_seed1234_full_hf.safetensors" --latent "$F/inputs/synth_odd12345.wav" > "$T/f.hafm"
    $HAFM_BIN/hafm-dump --raw codes -o "$T/codes.i16" "$T/f.hafm"
    $CHECK codes "$T/codes.i16" 8 "$F/full24k/synth_odd12345/bw6.0/codes.i32" "$F/full24k/synth_odd12345/bw6.0/code_margin.f32"
    $HAFM_BIN/hafm-dump --raw latent -o "$T/latent.f32" "$T/f.hafm"
    $CHECK floats "$T/latent.f32" 128 "$F/full24k/synth_odd12345/latent.f32"
}
