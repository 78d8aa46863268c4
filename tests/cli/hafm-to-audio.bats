#!/usr/bin/env bats
# hafm-to-audio: stream -> audio files.

setup() {
    FA=$HAFM_BIN/hafm-from-audio
    TA=$HAFM_BIN/hafm-to-audio
    IO=$HAFM_DATA/io
    T=$BATS_TEST_TMPDIR
}

fmt_field() { od -An -tu"$3" -j"$2" -N"$3" "$1" | tr -d ' '; }

# Nothing but the expected files in $T/out (no temporaries left behind).
only_files() { [ "$(cd "$T/out" && echo $(ls -A))" = "$*" ]; }

@test "--help prints the usage on stdout and exits 0" {
    run "$TA" --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "usage: hafm-to-audio "* ]]
    [[ "$output" == *"--format F"* ]]
}

@test "--version" {
    run "$TA" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hafm-to-audio (hafm) "* ]]
}

@test "bad options exit 2" {
    run "$TA" --bogus
    [ "$status" -eq 2 ]
    run "$TA" -f mp3
    [ "$status" -eq 2 ]
    [[ "$output" == *"-f: expected pcm16, pcm24, pcm32 or float, got 'mp3'"* ]]
    run "$TA" -o a.wav -d dir
    [ "$status" -eq 2 ]
    run "$TA" -t 0
    [ "$status" -eq 2 ]
    run "$TA" a b
    [ "$status" -eq 2 ]
}

@test "-f chooses the sample format; the default follows the track dtype" {
    "$FA" "$IO/pcm16_stereo_22k.wav" > "$T/s.hafm"
    "$TA" -o "$T/d.wav" "$T/s.hafm"
    [ "$(fmt_field "$T/d.wav" 34 2)" -eq 16 ]
    "$TA" -f pcm24 -o "$T/p24.wav" "$T/s.hafm"
    [ "$(fmt_field "$T/p24.wav" 34 2)" -eq 24 ]
    "$TA" -f float -o "$T/f.wav" "$T/s.hafm"
    [ "$(fmt_field "$T/f.wav" 20 2)" -eq 3 ]
    # PCM16 -> pcm24 / float -> back to PCM16: still the same samples
    "$FA" "$T/p24.wav" | "$TA" -f pcm16 -o "$T/b24.wav"
    cmp "$IO/pcm16_stereo_22k.wav" "$T/b24.wav"
    "$FA" "$T/f.wav" | "$TA" -f pcm16 -o "$T/bf.wav"
    cmp "$IO/pcm16_stereo_22k.wav" "$T/bf.wav"
}

@test "-d writes every item, -i picks one for -o" {
    "$FA" "$IO/pcm16_stereo_22k.wav" "$IO/float_mono_24k.wav" > "$T/two.hafm"
    "$TA" -d "$T/out" < "$T/two.hafm"
    only_files float_mono_24k.wav pcm16_stereo_22k.wav
    "$TA" -i float_mono_24k -o "$T/one.wav" "$T/two.hafm"
    cmp "$IO/float_mono_24k.wav" "$T/one.wav"
    run "$TA" -i nope -o "$T/none.wav" "$T/two.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == "hafm-to-audio: no item 'nope' in the stream" ]]
    [ ! -e "$T/none.wav" ]
}

@test "other tracks and unknown messages are skipped" {
    "$FA" - "$IO/float_mono_24k.wav" < "$IO/tokens.hafm" > "$T/mixed.hafm"
    mkdir "$T/out"
    run "$TA" -d "$T/out" "$T/mixed.hafm"
    [ "$status" -eq 1 ]                        # item 'voc' has no audio track
    [[ "$output" == *"item 'voc': no track 'audio'"* ]]
    only_files
    "$TA" -i float_mono_24k -o "$T/a.wav" "$T/mixed.hafm"
    cmp "$IO/float_mono_24k.wav" "$T/a.wav"
    run "$TA" -n vocal.semantic -o "$T/tok.wav" "$T/mixed.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"item 'voc': track 'vocal.semantic': kind tokens, expected audio"* ]]
    [ ! -e "$T/tok.wav" ]
}

@test "empty, corrupt and truncated streams exit 1 and leave no file" {
    run "$TA" -o "$T/x.wav" < /dev/null
    [ "$status" -eq 1 ]
    [[ "$output" == "hafm-to-audio: stdin: empty input" ]]
    run "$TA" -o "$T/x.wav" "$IO/pcm16_stereo_22k.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"not a hafm stream"* ]]
    "$FA" "$IO/pcm16_stereo_22k.wav" "$IO/float_mono_24k.wav" > "$T/two.hafm"
    size=$(stat -c %s "$T/two.hafm")
    first=$("$FA" "$IO/pcm16_stereo_22k.wav" | wc -c)   # header + first item
    mkdir "$T/out"
    # -o reads the first item only: cuts inside it are errors
    for cut in 10 100 5000 $((first / 2)) $((first - 1)); do
        head -c $cut "$T/two.hafm" > "$T/cut.hafm"
        run "$TA" -o "$T/out/x.wav" "$T/cut.hafm"
        [ "$status" -eq 1 ]
        [[ "$output" == "hafm-to-audio: "*"truncated"* ]] || [ $cut -le 100 ]
        only_files
    done
    # -d: the first item is complete and kept; the cut second one leaves nothing
    head -c $((size - 1)) "$T/two.hafm" | { run "$TA" -d "$T/out"; [ "$status" -eq 1 ]; }
    only_files pcm16_stereo_22k.wav
    cmp "$IO/pcm16_stereo_22k.wav" "$T/out/pcm16_stereo_22k.wav"
}

@test "a key that is not a file name is refused with -d" {
    "$FA" -k 'a/b' "$IO/float_mono_24k.wav" > "$T/k.hafm"
    run "$TA" -d "$T/out" "$T/k.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"item 'a/b': the key cannot be used as a file name"* ]]
}

@test "writes are atomic: an unwritable output exits 1" {
    "$FA" "$IO/float_mono_24k.wav" > "$T/s.hafm"
    run "$TA" -o "$T/no/such/dir/x.wav" "$T/s.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"cannot create $T/no/such/dir/x.wav"* ]]
}
