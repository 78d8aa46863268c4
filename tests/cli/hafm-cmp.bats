#!/usr/bin/env bats
# hafm-cmp: compares two streams track by track within a tolerance.
load stream_helpers

@test "hafm-cmp --help and --version" {
    run "$HAFM_BIN/hafm-cmp" --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    [[ "$output" == *"--max-token-diff"* ]]
    run "$HAFM_BIN/hafm-cmp" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hafm-cmp (hafm) "* ]]
}

@test "hafm-cmp: usage errors exit 2" {
    fixture "$T/s.hafm"
    run "$HAFM_BIN/hafm-cmp" --bogus "$T/s.hafm" "$T/s.hafm"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-cmp" "$T/s.hafm"
    [ "$status" -eq 2 ]
    [[ "$output" == *"expected two streams, got 1"* ]]
    run "$HAFM_BIN/hafm-cmp" --atol -1 "$T/s.hafm" "$T/s.hafm"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--atol: expected a number >= 0, got '-1'"* ]]
    run "$HAFM_BIN/hafm-cmp" --max-token-diff x "$T/s.hafm" "$T/s.hafm"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-cmp" - - < "$T/s.hafm"
    [ "$status" -eq 2 ]
}

@test "hafm-cmp: a stream equals itself; one line per track with its largest difference" {
    fixture "$T/s.hafm"
    run "$HAFM_BIN/hafm-cmp" "$T/s.hafm" - < "$T/s.hafm"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "song-a audio: 4 frames, max_diff 0" ]
    [ "${lines[1]}" = "song-a codes: 2 frames, 0 of 4 tokens differ" ]
    [ "${lines[2]}" = "song-b feat: 2 frames, max_diff 0" ]
    run "$HAFM_BIN/hafm-cmp" -q "$T/s.hafm" "$T/s.hafm"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
}

@test "hafm-cmp: chunking, interleaving, ids and unknown messages do not matter" {
    fixture "$T/s.hafm"
    stream "$T/t.hafm" <<'END'
{"type":"header","magic":"hafm-stream","version":[1,0],"tool":"other"}
{"type":"item","key":"song-a"}
{"type":"track","id":7,"name":"codes","kind":"tokens","dtype":"i16","shape":[2],"rate":75,"vocab":1024}
{"type":"data","track":7,"frames":1,"payload":[5,6]}
{"type":"track","id":2,"name":"audio","kind":"audio","dtype":"i16","shape":[2],"rate":8000,"sample_rate":8000,"channels":2}
{"type":"data","track":2,"frames":1,"payload":[1,-1]}
{"type":"data","track":2,"frames":3,"payload":[2,-2,32767,-32768,7,8]}
{"type":"end","track":2,"frames":4}
{"type":"data","track":7,"frames":1,"payload":[1023,0]}
{"type":"end","track":7,"frames":2}
{"type":"item_end","key":"song-a"}
{"type":"item","key":"song-b"}
{"type":"track","id":0,"name":"feat","kind":"features","dtype":"f32","shape":[3],"rate":12.5}
{"type":"data","track":0,"frames":2,"payload":[0.5,-0.25,1.0,"NaN",2.0,0.1]}
{"type":"end","track":0,"frames":2}
{"type":"item_end","key":"song-b"}
END
    run "$HAFM_BIN/hafm-cmp" "$T/s.hafm" "$T/t.hafm"
    [ "$status" -eq 0 ]
}

@test "hafm-cmp: values within --atol/--rtol, tokens within --max-token-diff" {
    fixture "$T/s.hafm"
    fixture_json | sed 's/"NaN",2.0,0.1/"NaN",2.001,0.1/; s/\[5,6,1023,0\]/[5,7,1023,0]/' | stream "$T/t.hafm"
    run "$HAFM_BIN/hafm-cmp" "$T/s.hafm" "$T/t.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"song-a codes: 2 frames, 1 of 4 tokens differ, first at frame 0, codebook 1: 6 in $T/s.hafm, 7 in $T/t.hafm"* ]]
    [[ "$output" == *"song-b feat: 2 frames, max_diff 0.001 at frame 1"* ]]
    [[ "$output" == *"hafm-cmp: $T/s.hafm and $T/t.hafm differ: item 'song-a', track 'codes': 1 of 4 tokens differ (0 allowed)"* ]]
    run "$HAFM_BIN/hafm-cmp" --max-token-diff 1 "$T/s.hafm" "$T/t.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"differ: item 'song-b', track 'feat', frame 1, value 1: 2 in $T/s.hafm, 2.00099993 in $T/t.hafm (|diff| 0.001 > atol 0 + rtol 0 x 2)"* ]]
    run "$HAFM_BIN/hafm-cmp" -T 1 --atol 0.0011 "$T/s.hafm" "$T/t.hafm"
    [ "$status" -eq 0 ]
    run "$HAFM_BIN/hafm-cmp" -T 1 --rtol 0.0006 "$T/s.hafm" "$T/t.hafm"
    [ "$status" -eq 0 ]
}

@test "hafm-cmp: structural differences" {
    fixture "$T/s.hafm"
    fixture_json | sed 's/"key":"song-b"/"key":"song-c"/' | stream "$T/a.hafm"
    run "$HAFM_BIN/hafm-cmp" -q "$T/s.hafm" "$T/a.hafm"
    assert_fails_with "differ: item 2: key 'song-b' in $T/s.hafm, 'song-c' in $T/a.hafm"
    fixture_json | sed 's/"vocab":1024/"vocab":2048/' | stream "$T/b.hafm"
    run "$HAFM_BIN/hafm-cmp" -q "$T/s.hafm" "$T/b.hafm"
    assert_fails_with "differ: item 'song-a': track 'codes': vocab 1024 in $T/s.hafm, 2048 in $T/b.hafm"
    fixture_json | sed 's/"name":"feat"/"name":"feat2"/' | stream "$T/c.hafm"
    run "$HAFM_BIN/hafm-cmp" -q "$T/s.hafm" "$T/c.hafm"
    assert_fails_with "differ: item 'song-b': track 'feat' is in $T/s.hafm but not in $T/c.hafm"
    fixture_json | sed '/"track":0,"frames":1,"payload"/d; s/"frames":4,"source/"frames":3,"source/' | stream "$T/d.hafm"
    run "$HAFM_BIN/hafm-cmp" -q "$T/s.hafm" "$T/d.hafm"
    assert_fails_with "differ: item 'song-a': track 'audio': 4 frames in $T/s.hafm, 3 in $T/d.hafm"
    fixture_json | sed '/song-b/,$d' | stream "$T/e.hafm"
    run "$HAFM_BIN/hafm-cmp" -q "$T/s.hafm" "$T/e.hafm"
    assert_fails_with "differ: $T/e.hafm has 1 items, $T/s.hafm more (the next is 'song-b')"
}

@test "hafm-cmp: unreadable input is exit 1 with a read error, not 'differ'" {
    fixture "$T/s.hafm"
    head -c 150 "$T/s.hafm" > "$T/cut.hafm"
    run "$HAFM_BIN/hafm-cmp" "$T/s.hafm" "$T/cut.hafm"
    assert_fails_with "hafm-cmp: $T/cut.hafm: item 'song-a': truncated stream"
    [[ "$output" != *differ* ]]
    run "$HAFM_BIN/hafm-cmp" "$T/s.hafm" - < /dev/null
    assert_fails_with "hafm-cmp: stdin: empty input"
    run "$HAFM_BIN/hafm-cmp" "$T/s.hafm" "$BATS_TEST_FILENAME"
    assert_fails_with "not a hafm stream"
    run "$HAFM_BIN/hafm-cmp" "$T/s.hafm" "$T/missing"
    assert_fails_with "hafm-cmp: cannot open $T/missing: No such file or directory"
}
