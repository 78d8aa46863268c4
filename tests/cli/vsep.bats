#!/usr/bin/env bats
# vsep: REPET-SIM on synthetic stems (tests/data/fadvsep), stream pass-through, MDX-Net plumbing
# with the tiny random-weight golden model when $HAFM_SHARED is present.

setup() {
    VS=$HAFM_BIN/vsep
    EV=$HAFM_BIN/sep-eval
    DUMP=$HAFM_BIN/hafm-dump
    D=$HAFM_DATA/fadvsep
    T=$BATS_TEST_TMPDIR
    TINY=$HAFM_SHARED/golden/mdxnet/mdx_tiny_seed3.onnx
}

@test "--help prints the usage on stdout and exits 0" {
    run "$VS" --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "usage: vsep "* ]]
    [[ "$output" == *"--centre W"* ]]
}

@test "--version" {
    run "$VS" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "vsep (hafm) "* ]]
}

@test "bad options exit 2" {
    run "$VS" --bogus
    [ "$status" -eq 2 ]
    [[ "$output" == *"vsep: unknown option '--bogus'"* ]]
    run "$VS" --centre 2 "$D/mix.wav"
    [ "$status" -eq 2 ]
    run "$VS" --dim-t 33 "$D/mix.wav"
    [ "$status" -eq 2 ]
    run "$VS" -M mdx "$D/mix.wav"
    [ "$status" -eq 2 ]
    run "$VS" a b
    [ "$status" -eq 2 ]
}

@test "REPET-SIM improves the vocal and the accompaniment over the mixture" {
    "$VS" -v "$T/v.wav" -a "$T/a.wav" "$D/mix.wav"
    run "$EV" -j "$D/vocal.wav" "$D/mix.wav" "$D/accomp.wav" "$D/mix.wav"
    base=$(printf '%s\n' "$output" | awk '/"vocal":/ { v = 1 } v && /"SI-SDR":/ { gsub(/[^-0-9.e]/, "", $2); print $2; exit }')
    run "$EV" -j "$D/vocal.wav" "$T/v.wav" "$D/accomp.wav" "$T/a.wav"
    sep=$(printf '%s\n' "$output" | awk '/"vocal":/ { v = 1 } v && /"SI-SDR":/ { gsub(/[^-0-9.e]/, "", $2); print $2; exit }')
    echo "vocal SI-SDR: mixture $base, REPET-SIM $sep"
    awk -v a="$base" -v b="$sep" 'BEGIN { exit !(b > a + 6) }'
}

@test "stream output: two audio tracks; stream input passes every message through" {
    "$VS" "$D/mix.wav" > "$T/s.hafm"
    run "$DUMP" "$T/s.hafm"
    [ "$status" -eq 0 ]
    [[ "$output" == *'"name":"vocal","kind":"audio"'* ]]
    [[ "$output" == *'"name":"accomp","kind":"audio"'* ]]
    [[ "$output" == *'"role":"accompaniment"'* ]]
    "$VS" -T accomp --vocal-name v2 --accomp-name a2 < "$T/s.hafm" > "$T/s2.hafm"
    "$DUMP" "$T/s.hafm" | grep -v '"item_end"' > "$T/before"
    "$DUMP" "$T/s2.hafm" | head -n "$(wc -l < "$T/before")" > "$T/after"
    diff <(grep -v '"tool"' "$T/before") <(grep -v '"tool"' "$T/after")
    run "$DUMP" "$T/s2.hafm"
    [[ "$output" == *'"name":"a2"'* ]]
    "$VS" -T vocal -v "$T/x.wav" "$T/s.hafm"
    [ -s "$T/x.wav" ]
}

@test "bad input: empty, corrupt, truncated, missing track: exit 1 and no output file" {
    : > "$T/empty.wav"
    run "$VS" -v "$T/v.wav" "$T/empty.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == "vsep: "* ]]
    [ ! -e "$T/v.wav" ]
    head -c 1000 /dev/urandom > "$T/junk.wav"
    run "$VS" -v "$T/v.wav" "$T/junk.wav"
    [ "$status" -eq 1 ]
    [ ! -e "$T/v.wav" ]
    "$VS" "$D/mix.wav" > "$T/s.hafm"
    head -c 5000 "$T/s.hafm" > "$T/trunc.hafm"
    run "$VS" -T vocal "$T/trunc.hafm"
    [ "$status" -eq 1 ]
    run "$VS" -T nothere "$T/s.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"no audio track 'nothere'"* ]]
}

@test "MDX-Net: a foreign or truncated ONNX file is refused" {
    run "$VS" -m "$D/other_arch.onnx" -v "$T/v.wav" "$D/mix.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"not an MDX-Net"* ]]
    [ ! -e "$T/v.wav" ]
    head -c 3000 /dev/urandom > "$T/bad.onnx"
    run "$VS" -m "$T/bad.onnx" -v "$T/v.wav" "$D/mix.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == "vsep: "* ]]
    [ -f "$TINY" ] || skip "no \$HAFM_SHARED golden/mdxnet"
    head -c 90000 "$TINY" > "$T/trunc.onnx"
    run "$VS" -m "$T/trunc.onnx" -v "$T/v.wav" "$D/mix.wav"
    [ "$status" -eq 1 ]
}

@test "MDX-Net (tiny golden model) on 16 kHz input (resampled to 44.1 kHz and back), files and stream" {
    [ -f "$TINY" ] || skip "no \$HAFM_SHARED golden/mdxnet"
    run "$VS" -m "$TINY" --n-fft 256 -v "$T/v.wav" -a "$T/a.wav" "$D/mix.wav"
    [ "$status" -eq 0 ]
    [ -s "$T/v.wav" ] && [ -s "$T/a.wav" ]
    run "$EV" -s mix "$D/mix.wav" "$T/v.wav"
    [ "$status" -eq 0 ]
    "$VS" -m "$TINY" --n-fft 256 "$D/mix.wav" | "$DUMP" > "$T/d"
    grep -q '"method":"mdx"' "$T/d"
}

@test "a hafm-from-audio pipeline: the audio track passes through, stems are added" {
    "$HAFM_BIN/hafm-from-audio" "$D/mix.wav" | "$VS" > "$T/s.hafm"
    run "$DUMP" "$T/s.hafm"
    [ "$status" -eq 0 ]
    [[ "$output" == *'"name":"audio","kind":"audio","dtype":"i16"'* ]]
    [[ "$output" == *'"name":"vocal"'* ]]
    [[ "$output" == *'"name":"accomp"'* ]]
    "$HAFM_BIN/hafm-from-audio" "$D/mix.wav" | "$VS" -a "$T/a.wav"
    [ -s "$T/a.wav" ]
}

@test "mono input: REPET-SIM and MDX-Net keep one channel" {
    "$HAFM_BIN/hafm-from-audio" -m "$D/mix.wav" > "$T/mono.hafm"
    "$VS" < "$T/mono.hafm" | "$DUMP" > "$T/d"
    grep -q '"name":"vocal","kind":"audio","dtype":"f32","shape":\[1\]' "$T/d"
    [ -f "$TINY" ] || skip "no \$HAFM_SHARED golden/mdxnet"
    "$VS" -m "$TINY" --n-fft 256 < "$T/mono.hafm" | "$DUMP" > "$T/d"
    grep -q '"name":"accomp","kind":"audio","dtype":"f32","shape":\[1\]' "$T/d"
    grep -q '"type":"end","track":2,"frames":96000' "$T/d"
}
