#!/usr/bin/env bats
# hafm-fit: chord and beat fit against song labels, SI-SDR and log-mel distance.
load stream_helpers

# A C major chord for 2 s then a G major chord for 2 s, clicks on the beats every 0.5 s, and the
# labels that describe it.
song() {
    sox -n -r 24000 -c 1 "$T/cmaj.wav" synth 2 sine 261.63 sine 329.63 sine 392.00 remix - gain -12
    sox -n -r 24000 -c 1 "$T/gmaj.wav" synth 2 sine 196.00 sine 246.94 sine 293.66 remix - gain -12
    sox "$T/cmaj.wav" "$T/gmaj.wav" "$T/chords.wav"
    cat > "$T/labels.json" <<'END'
{"beats":[0.25,0.75,1.25,1.75,2.25,2.75,3.25,3.75],
 "chords":[{"start":0,"end":2,"pitch_classes":[0,4,7]},{"start":2,"end":4,"pitch_classes":[7,11,2]}]}
END
    cat > "$T/wrong.json" <<'END'
{"beats":[0.5,1.0,1.5,2.0,2.5,3.0,3.5],
 "chords":[{"start":0,"end":2,"pitch_classes":[6,10,1]},{"start":2,"end":4,"pitch_classes":[1,5,8]}]}
END
    rm -f "$T/cmaj.wav" "$T/gmaj.wav"
}

@test "hafm-fit --help and --version" {
    run "$HAFM_BIN/hafm-fit" --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    [[ "$output" == *"--labels FILE"* ]]
    run "$HAFM_BIN/hafm-fit" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hafm-fit (hafm) "* ]]
}

@test "hafm-fit: usage errors exit 2" {
    run "$HAFM_BIN/hafm-fit" --bogus x.wav
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-fit" x.wav
    [ "$status" -eq 2 ]
    [[ "$output" == *"nothing to measure"* ]]
    run "$HAFM_BIN/hafm-fit" -l a.json
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-fit" -l a.json --tol 2 x.wav
    [ "$status" -eq 2 ]
}

@test "hafm-fit: the played chords fit, disjoint ones do not" {
    song
    run "$HAFM_BIN/hafm-fit" -l "$T/labels.json" "$T/chords.wav"
    [ "$status" -eq 0 ]
    echo "$output"
    [ "$(echo "$output" | jq '.chord_fit > 0.9 and .chord_spans == 2 and .beats == 8')" = true ]
    run "$HAFM_BIN/hafm-fit" -l "$T/wrong.json" "$T/chords.wav"
    echo "$output"
    [ "$(echo "$output" | jq '.chord_fit < 0.1')" = true ]
}

@test "hafm-fit -r: a signal against itself and against another" {
    song
    run "$HAFM_BIN/hafm-fit" -r "$T/chords.wav" "$T/chords.wav"
    [ "$status" -eq 0 ]
    # no error at all: an infinite SI-SDR, which JSON writes as null
    [ "$(echo "$output" | jq '.si_sdr == null and .mel_distance == 0')" = true ]
    sox "$T/chords.wav" "$T/rev.wav" reverse
    run "$HAFM_BIN/hafm-fit" -r "$T/chords.wav" "$T/rev.wav"
    echo "$output"
    [ "$(echo "$output" | jq '.si_sdr < 0 and .mel_distance > 0.05')" = true ]
    # another rate is resampled to the audio's
    sox "$T/chords.wav" -r 16000 "$T/c16.wav"
    run "$HAFM_BIN/hafm-fit" -r "$T/c16.wav" "$T/chords.wav"
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | jq '.si_sdr > 20')" = true ]
}

@test "hafm-fit: bad input exits 1" {
    song
    echo 'not audio' > "$T/bad.wav"
    run "$HAFM_BIN/hafm-fit" -l "$T/labels.json" "$T/bad.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == hafm-fit:* ]]
    : > "$T/empty.wav"
    run "$HAFM_BIN/hafm-fit" -l "$T/labels.json" "$T/empty.wav"
    [ "$status" -eq 1 ]
    echo '{"beats":[1],"chords":[{"start":1}]}' > "$T/bad.json"
    run "$HAFM_BIN/hafm-fit" -l "$T/bad.json" "$T/chords.wav"
    assert_fails_with "pitch_classes"
    run "$HAFM_BIN/hafm-fit" -l "$T/missing.json" "$T/chords.wav"
    assert_fails_with "cannot open"
    run "$HAFM_BIN/hafm-fit" -r "$T/missing.wav" "$T/chords.wav"
    [ "$status" -eq 1 ]
}
