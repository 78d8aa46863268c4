#!/usr/bin/env bats
# hafm-tracks: keep, drop and rename tracks.
load stream_helpers

@test "hafm-tracks --help and --version" {
    run "$HAFM_BIN/hafm-tracks" --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    [[ "$output" == *"--rename OLD=NEW"* ]]
    run "$HAFM_BIN/hafm-tracks" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hafm-tracks (hafm) "* ]]
}

@test "hafm-tracks: usage errors exit 2" {
    run "$HAFM_BIN/hafm-tracks" --bogus
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-tracks" --rename audio
    [ "$status" -eq 2 ]
    [[ "$output" == *"--rename: expected OLD=NEW, got 'audio'"* ]]
    run "$HAFM_BIN/hafm-tracks" --rename 'a=b c'
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-tracks" -R a=b -R a=c
    [ "$status" -eq 2 ]
    [[ "$output" == *"'a' is renamed twice"* ]]
    run "$HAFM_BIN/hafm-tracks" --keep ','
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-tracks" --drop 'a,b/c'
    [ "$status" -eq 2 ]
}

@test "hafm-tracks without options passes everything through unchanged" {
    fixture "$T/s.hafm"
    "$HAFM_BIN/hafm-tracks" < "$T/s.hafm" > "$T/t.hafm"
    diff <("$HAFM_BIN/hafm-dump" -f "$T/s.hafm" | tail -n +2) <("$HAFM_BIN/hafm-dump" -f "$T/t.hafm" | tail -n +2)
    [ "$("$HAFM_BIN/hafm-dump" "$T/t.hafm" | head -1)" = '{"type":"header","magic":"hafm-stream","version":[1,0],"tool":"hafm-tracks"}' ]
}

@test "hafm-tracks --keep keeps the named tracks and every other message" {
    fixture "$T/s.hafm"
    "$HAFM_BIN/hafm-tracks" --keep codes,feat "$T/s.hafm" > "$T/t.hafm"
    run "$HAFM_BIN/hafm-dump" "$T/t.hafm"
    [ "$status" -eq 0 ]
    [[ "$output" != *'"name":"audio"'* ]]
    [[ "$output" != *'"track":0,'* ]]
    [[ "$output" == *'"name":"codes"'* ]]
    [[ "$output" == *'{"type":"x-comment","text":"an unknown message type"}'* ]]
    [[ "$output" == *'{"type":"x-between","n":1}'* ]]
    run "$HAFM_BIN/hafm-tracks" --keep audio,nothing -o "$T/out" "$T/s.hafm"
    assert_fails_with "hafm-tracks: no track 'nothing' in the input"
    assert_only_files "s.hafm t.hafm"
}

@test "hafm-tracks --drop drops the named tracks" {
    fixture "$T/s.hafm"
    "$HAFM_BIN/hafm-tracks" --drop audio,nothing -o "$T/t.hafm" "$T/s.hafm"
    run "$HAFM_BIN/hafm-dump" "$T/t.hafm"
    [ "$status" -eq 0 ]
    [[ "$output" != *'"name":"audio"'* ]]
    [ "$(grep -c '"type":"data"' <<< "$output")" -eq 2 ]
}

@test "hafm-tracks --rename re-declares the track under the new name, other keys kept" {
    fixture "$T/s.hafm"
    "$HAFM_BIN/hafm-tracks" --rename audio=vocal -R feat=emb "$T/s.hafm" > "$T/t.hafm"
    run "$HAFM_BIN/hafm-dump" -f "$T/t.hafm"
    [ "$status" -eq 0 ]
    [ "${lines[2]}" = '{"type":"track","id":0,"name":"vocal","kind":"audio","dtype":"i16","shape":[2],"rate":8000,"sample_rate":8000,"channels":2,"x-extra":"kept"}' ]
    [[ "$output" == *'"name":"emb"'* ]]
    "$HAFM_BIN/hafm-dump" -r vocal "$T/t.hafm" | cmp - <("$HAFM_BIN/hafm-dump" -r audio "$T/s.hafm")
    run "$HAFM_BIN/hafm-tracks" --rename audio=codes "$T/s.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"track name 'codes' is already used"* ]]
}

@test "hafm-tracks: empty, truncated and corrupt input fail, no partial -o file" {
    run "$HAFM_BIN/hafm-tracks" -o "$T/out" < /dev/null
    assert_fails_with "hafm-tracks: empty input"
    fixture "$T/s.hafm"
    head -c 250 "$T/s.hafm" > "$T/cut"
    run "$HAFM_BIN/hafm-tracks" -o "$T/out" "$T/cut"
    assert_fails_with "truncated stream"
    printf 'RIFF\044\000\000\000WAVE' > "$T/x.wav"
    run "$HAFM_BIN/hafm-tracks" -o "$T/out" "$T/x.wav"
    assert_fails_with "hafm-tracks: $T/x.wav: not a hafm stream: the input looks like a RIFF/WAV file"
    assert_only_files "cut s.hafm x.wav"
}
