#!/usr/bin/env bats
# hafm-dump: stream -> JSON lines, raw track values.
load stream_helpers

@test "hafm-dump --help and --version" {
    run "$HAFM_BIN/hafm-dump" --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    [[ "$output" == *"--raw NAME"* ]]
    run "$HAFM_BIN/hafm-dump" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hafm-dump (hafm) "* ]]
}

@test "hafm-dump: bad options are usage errors (exit 2)" {
    run "$HAFM_BIN/hafm-dump" --bogus
    [ "$status" -eq 2 ]
    [[ "$output" == *"hafm-dump: unknown option '--bogus'"* ]]
    run "$HAFM_BIN/hafm-dump" --raw
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-dump" --raw audio --full
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-dump" -t 0
    [ "$status" -eq 2 ]
    [[ "$output" == *"-t: expected an integer in [1, 1024], got '0'"* ]]
    run "$HAFM_BIN/hafm-dump" a b
    [ "$status" -eq 2 ]
}

@test "hafm-dump --full shows every message as it was written (unknown ones included)" {
    fixture "$T/s.hafm"
    run "$HAFM_BIN/hafm-dump" --full "$T/s.hafm"
    [ "$status" -eq 0 ]
    [ "$output" = "$(fixture_json)" ]
}

@test "hafm-dump summarises payloads with min, max, mean" {
    fixture "$T/s.hafm"
    run "$HAFM_BIN/hafm-dump" < "$T/s.hafm"
    [ "$status" -eq 0 ]
    [ "${lines[5]}" = '{"type":"data","track":0,"frames":3,"payload":"<12 bytes>","stats":{"min":-32768,"max":32767,"mean":-0.16666666666666666}}' ]
    [ "${lines[14]}" = '{"type":"data","track":3,"frames":2,"payload":"<24 bytes>","stats":{"min":-0.25,"max":2.0,"mean":0.6700000002980232,"nonfinite":1}}' ]
    [ "${lines[11]}" = '{"type":"x-between","n":1}' ]
}

@test "hafm-dump | hafm-from-json gives back the same bytes" {
    fixture "$T/s.hafm"
    "$HAFM_BIN/hafm-dump" -f "$T/s.hafm" | "$HAFM_BIN/hafm-from-json" > "$T/t.hafm"
    cmp "$T/s.hafm" "$T/t.hafm"
}

@test "hafm-dump --item shows one item" {
    fixture "$T/s.hafm"
    run "$HAFM_BIN/hafm-dump" -i song-b "$T/s.hafm"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 5 ]
    [ "${lines[0]}" = '{"type":"item","key":"song-b"}' ]
    run "$HAFM_BIN/hafm-dump" -i nope "$T/s.hafm"
    assert_fails_with "hafm-dump: no item 'nope' in the input"
}

@test "hafm-dump --raw writes the values of one track, little-endian" {
    fixture "$T/s.hafm"
    "$HAFM_BIN/hafm-dump" --raw audio "$T/s.hafm" > "$T/a.raw"
    [ "$(od -An -v -t d2 "$T/a.raw" | tr -s ' ' | sed 's/^ //')" = "1 -1 2 -2 32767 -32768 7 8" ]
    [ "$(od -An -v -tx1 "$T/a.raw" | head -1 | tr -d ' ')" = "0100ffff0200feffff7f008007000800" ]
    "$HAFM_BIN/hafm-dump" -r feat -i song-b -o "$T/f.raw" "$T/s.hafm"
    [ "$(stat -c %s "$T/f.raw")" -eq 24 ]
    [ "$(od -An -v -t f4 -j 0 -N 4 "$T/f.raw" | tr -d ' ')" = "0.5" ]
    assert_only_files "a.raw f.raw s.hafm"
}

@test "hafm-dump --raw: a track that is not in the item is an error" {
    fixture "$T/s.hafm"
    run "$HAFM_BIN/hafm-dump" -r feat -o "$T/x.raw" "$T/s.hafm"
    assert_fails_with "hafm-dump: item 'song-a' has no track 'feat'"
    assert_only_files "s.hafm"
}

@test "hafm-dump: empty input" {
    run "$HAFM_BIN/hafm-dump" < /dev/null
    assert_fails_with "hafm-dump: empty input"
}

@test "hafm-dump: truncated input fails and leaves no output file" {
    fixture "$T/s.hafm"
    size=$(stat -c %s "$T/s.hafm")
    for n in 1 30 200 $((size - 1)); do
        head -c $n "$T/s.hafm" > "$T/cut"
        run "$HAFM_BIN/hafm-dump" -o "$T/out.json" "$T/cut"
        assert_fails_with "hafm-dump: $T/cut: "
        [[ "$output" == *"truncated stream"* ]]
        # --raw stops after the first item: a cut in the second one goes unnoticed
        if [ $n -lt 200 ]; then
            run "$HAFM_BIN/hafm-dump" -r audio -o "$T/out.raw" "$T/cut"
            assert_fails_with "truncated stream"
        fi
    done
    assert_only_files "cut s.hafm"
}

@test "hafm-dump: not a stream (WAV, FLAC, text) fails with a hint" {
    printf 'RIFF\044\000\000\000WAVEfmt \020\000\000\000' > "$T/x.wav"
    run "$HAFM_BIN/hafm-dump" "$T/x.wav"
    assert_fails_with "not a hafm stream: the input looks like a RIFF/WAV file"
    printf 'fLaC\000\000\000\042' | { run "$HAFM_BIN/hafm-dump"; assert_fails_with "looks like a FLAC file"; }
    run "$HAFM_BIN/hafm-dump" "$BATS_TEST_FILENAME"
    assert_fails_with "not a hafm stream"
}

@test "hafm-dump: corrupt streams fail with a message naming the problem" {
    fixture_json | sed 's/"frames":4,"source/"frames":5,"source/' | stream "$T/a.hafm"
    run "$HAFM_BIN/hafm-dump" "$T/a.hafm"
    assert_fails_with "item 'song-a': track 'audio' (id 0): frame count mismatch: end says 5 frames, data messages had 4"
    fixture_json | sed 's/"version":\[1,0\]/"version":[2,0]/' | stream "$T/b.hafm"
    run "$HAFM_BIN/hafm-dump" "$T/b.hafm"
    assert_fails_with "unsupported hafm stream version 2.0 (this reader knows 1.x)"
    fixture_json | sed 's/"payload":\[5,6,1023,0\]/"payload":[5,6,1024,0]/' | stream "$T/c.hafm"
    run "$HAFM_BIN/hafm-dump" "$T/c.hafm"
    assert_fails_with "track 'codes' (id 1): token 1024 at frame 1 is outside [0, 1024)"
    fixture_json | sed 's/"frames":2,"payload":\[5,6,1023,0\]/"frames":3,"payload":[5,6,1023,0]/' | stream "$T/d.hafm"
    run "$HAFM_BIN/hafm-dump" "$T/d.hafm"
    assert_fails_with "payload size mismatch: 8 bytes for 3 frames of 4 bytes"
    fixture_json | sed 's/"key":"song-b"}$/"key":"song-c"}/' | sed '0,/song-c/s/song-c/song-b/' | stream "$T/e.hafm"
    run "$HAFM_BIN/hafm-dump" "$T/e.hafm"
    assert_fails_with "item 'song-b': key mismatch: item_end says 'song-c'"
    fixture_json | sed 's/"name":"codes"/"name":"audio"/' | stream "$T/f.hafm"
    run "$HAFM_BIN/hafm-dump" "$T/f.hafm"
    assert_fails_with "item 'song-a': duplicate track name 'audio' (ids 0 and 1)"
    fixture_json | sed 's/"type":"track","id":1,/"type":"track","id":0,/' | sed '/"track":1,"frames":2,"payload"/d' | stream "$T/g.hafm"
    run "$HAFM_BIN/hafm-dump" "$T/g.hafm"
    assert_fails_with "item 'song-a': duplicate track id 0 ('audio' and 'codes')"
}
