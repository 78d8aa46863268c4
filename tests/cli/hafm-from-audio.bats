#!/usr/bin/env bats
# hafm-from-audio: audio files -> stream. Round trips go back through hafm-to-audio; the WAV
# fixtures in tests/data/io were written by libsndfile, so equal samples give equal files.

setup() {
    FA=$HAFM_BIN/hafm-from-audio
    TA=$HAFM_BIN/hafm-to-audio
    IO=$HAFM_DATA/io
    T=$BATS_TEST_TMPDIR
}

# fmt_field FILE OFFSET BYTES: an unsigned little-endian field of the WAV header
fmt_field() { od -An -tu"$3" -j"$2" -N"$3" "$1" | tr -d ' '; }

@test "--help prints the usage on stdout and exits 0" {
    run "$FA" --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "usage: hafm-from-audio "* ]]
    [[ "$output" == *"--rate HZ"* ]]
}

@test "--version" {
    run "$FA" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hafm-from-audio (hafm) "* ]]
}

@test "bad options exit 2" {
    run "$FA" --bogus
    [ "$status" -eq 2 ]
    [[ "$output" == *"hafm-from-audio: unknown option '--bogus'"* ]]
    run "$FA" -r 12 "$IO/pcm16_stereo_22k.wav"
    [ "$status" -eq 2 ]
    [[ "$output" == *"-r: expected an integer in [1000, 768000], got '12'"* ]]
    run "$FA" -k one "$IO/pcm16_stereo_22k.wav" "$IO/float_mono_24k.wav"
    [ "$status" -eq 2 ]
    run "$FA" -n 'bad name' "$IO/pcm16_stereo_22k.wav"
    [ "$status" -eq 2 ]
    run "$FA" - - < /dev/null
    [ "$status" -eq 2 ]
}

@test "PCM16 WAV -> stream -> WAV is bit-exact (file and pipe)" {
    "$FA" "$IO/pcm16_stereo_22k.wav" > "$T/s.hafm"
    "$TA" -o "$T/back.wav" "$T/s.hafm"
    cmp "$IO/pcm16_stereo_22k.wav" "$T/back.wav"
    cat "$IO/pcm16_stereo_22k.wav" | "$FA" | "$TA" | cat > "$T/piped.wav"
    cmp "$IO/pcm16_stereo_22k.wav" "$T/piped.wav"
    "$FA" - < "$IO/pcm16_stereo_22k.wav" | "$TA" -o - > "$T/redirected.wav"
    cmp "$IO/pcm16_stereo_22k.wav" "$T/redirected.wav"
}

@test "float WAV -> stream -> WAV is bit-exact" {
    "$FA" "$IO/float_mono_24k.wav" | "$TA" -o "$T/back.wav"
    cmp "$IO/float_mono_24k.wav" "$T/back.wav"
    [ "$(fmt_field "$T/back.wav" 20 2)" -eq 3 ]   # WAVE_FORMAT_IEEE_FLOAT
}

@test "FLAC through a pipe (spooled) decodes to the same samples" {
    "$FA" "$IO/pcm16_stereo_22k.wav" | "$TA" -o "$T/x.flac"
    [ "$(head -c 4 "$T/x.flac")" = fLaC ]
    cat "$T/x.flac" | "$FA" | "$TA" -o "$T/y.wav"
    cmp "$IO/pcm16_stereo_22k.wav" "$T/y.wav"
}

@test "several files make several items keyed by file name" {
    cp "$IO/pcm16_stereo_22k.wav" "$T/first song.wav"
    "$FA" "$T/first song.wav" "$IO/float_mono_24k.wav" | "$TA" -d "$T/out"
    cmp "$IO/pcm16_stereo_22k.wav" "$T/out/first_song.wav"
    cmp "$IO/float_mono_24k.wav" "$T/out/float_mono_24k.wav"
    [ "$(ls "$T/out" | wc -l)" -eq 2 ]
}

@test "-k names the item, -n the track" {
    "$FA" -k song -n vocal "$IO/float_mono_24k.wav" | "$TA" -i song -n vocal -o "$T/v.wav"
    cmp "$IO/float_mono_24k.wav" "$T/v.wav"
    "$FA" -k song -n vocal "$IO/float_mono_24k.wav" > "$T/s.hafm"
    run "$TA" -o "$T/none.wav" "$T/s.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"item 'song': no track 'audio'"* ]]
}

@test "--keys-from-list reads KEY PATH lines" {
    printf '# songs\n\nalpha %s\nbeta   %s\n' "$IO/float_mono_24k.wav" "$IO/pcm16_stereo_22k.wav" > "$T/list"
    "$FA" --keys-from-list "$T/list" | "$TA" -d "$T/out"
    cmp "$IO/float_mono_24k.wav" "$T/out/alpha.wav"
    cmp "$IO/pcm16_stereo_22k.wav" "$T/out/beta.wav"
    printf 'lonely\n' > "$T/bad"
    run "$FA" --keys-from-list "$T/bad"
    [ "$status" -eq 1 ]
    [[ "$output" == *"bad:1: expected 'KEY PATH'"* ]]
}

@test "--rate and --mono convert through libsoxr to f32" {
    "$FA" --rate 16000 --mono "$IO/pcm16_stereo_22k.wav" | "$TA" -o "$T/m.wav"
    [ "$(fmt_field "$T/m.wav" 20 2)" -eq 3 ]       # float
    [ "$(fmt_field "$T/m.wav" 22 2)" -eq 1 ]       # one channel
    [ "$(fmt_field "$T/m.wav" 24 4)" -eq 16000 ]   # 16 kHz
    # 0.3 s at 22050 Hz = 6615 frames -> 4800 at 16 kHz: 19200 bytes of float samples
    off=$(grep -obUa data "$T/m.wav" | head -1 | cut -d: -f1)
    [ "$(fmt_field "$T/m.wav" $((off + 4)) 4)" -eq 19200 ]
    "$FA" --mono "$IO/pcm16_stereo_22k.wav" | "$TA" -o "$T/m2.wav"
    [ "$(fmt_field "$T/m2.wav" 22 2)" -eq 1 ]
    [ "$(fmt_field "$T/m2.wav" 24 4)" -eq 22050 ]
}

@test "a stream on stdin passes through unchanged, the files are appended" {
    "$FA" - "$IO/pcm16_stereo_22k.wav" < "$IO/tokens.hafm" > "$T/out.hafm"
    in_hdr=$(stat -c %s "$IO/header.hafm")
    out_hdr=$("$FA" - < "$IO/header.hafm" | wc -c)
    body=$(( $(stat -c %s "$IO/tokens.hafm") - in_hdr ))
    # every message after the header, byte for byte, in order, then the new item
    cmp -i "$in_hdr:$out_hdr" -n "$body" "$IO/tokens.hafm" "$T/out.hafm"
    "$TA" -i pcm16_stereo_22k -o "$T/back.wav" "$T/out.hafm"
    cmp "$IO/pcm16_stereo_22k.wav" "$T/back.wav"
}

@test "empty input, bad and missing files exit 1 with a message" {
    run "$FA" < /dev/null
    [ "$status" -eq 1 ]
    [[ "$output" == "hafm-from-audio: stdin: empty input" ]]
    : > "$T/empty.wav"
    run "$FA" "$T/empty.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"empty.wav: empty file"* ]]
    printf 'RIFF\044\0\0\0WAVEfmt \020\0\0\0\377\377\0\0junkjunkjunkjunk' > "$T/bad.wav"
    run "$FA" "$T/bad.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == "hafm-from-audio: $T/bad.wav: not a readable audio file"* ]]
    head -c 44 "$IO/pcm16_stereo_22k.wav" > "$T/nosamples.wav"
    run "$FA" "$T/nosamples.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"nosamples.wav: no audio samples"* ]]
    run "$FA" "$T/missing.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"missing.wav: No such file or directory"* ]]
}

@test "a truncated stream on stdin exits 1" {
    head -c 200 "$IO/tokens.hafm" > "$T/cut.hafm"
    run "$FA" - "$IO/float_mono_24k.wav" < "$T/cut.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"truncated"* ]]
}

@test "a real recording survives the round trip" {
    f=$HAFM_SHARED/audio/encodec_test_24k.wav
    [ -f "$f" ] || skip "$f is missing"
    "$FA" "$f" | "$TA" -o "$T/a.wav"
    "$FA" "$T/a.wav" | "$TA" -o "$T/b.wav"
    cmp "$T/a.wav" "$T/b.wav"
}
