#!/usr/bin/env bats
# hafm-from-json: JSON lines -> stream.
load stream_helpers

@test "hafm-from-json --help and --version" {
    run "$HAFM_BIN/hafm-from-json" --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    run "$HAFM_BIN/hafm-from-json" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hafm-from-json (hafm) "* ]]
}

@test "hafm-from-json: usage errors exit 2" {
    run "$HAFM_BIN/hafm-from-json" --bogus
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-from-json" -o
    [ "$status" -eq 2 ]
    [[ "$output" == *"option '-o' needs an argument"* ]]
}

@test "hafm-from-json writes the header of the format's example byte for byte" {
    echo '{"type":"header","magic":"hafm-stream","version":[1,0],"tool":"hafm-from-audio"}' | stream "$T/h.hafm"
    [ "$(od -An -tx1 -N 13 "$T/h.hafm" | tr -d ' ')" = "84a474797065a6686561646572" ]
    run "$HAFM_BIN/hafm-dump" "$T/h.hafm"
    [ "$status" -eq 0 ]
}

@test "hafm-from-json: bad lines fail with the line number and leave no file" {
    printf '{"type":"header"}\nnot json\n' > "$T/bad.json"
    run "$HAFM_BIN/hafm-from-json" -o "$T/out" "$T/bad.json"
    assert_fails_with "hafm-from-json: $T/bad.json: line 2: not valid JSON"
    fixture_json | sed 's/"payload":\[1,-1,2/"payload":[1,-1,40000/' > "$T/range.json"
    run "$HAFM_BIN/hafm-from-json" -o "$T/out" "$T/range.json"
    assert_fails_with "line 6: data message: payload value 2 (40000) does not fit dtype i16"
    fixture "$T/s.hafm"
    "$HAFM_BIN/hafm-dump" "$T/s.hafm" > "$T/summary.json"
    run "$HAFM_BIN/hafm-from-json" -o "$T/out" "$T/summary.json"
    assert_fails_with "line 6: data message: the payload is a summary (<12 bytes>); dump with --full"
    run "$HAFM_BIN/hafm-from-json" -o "$T/out" < /dev/null
    assert_fails_with "hafm-from-json: stdin: no messages in the input"
    echo '[1,2]' | { run "$HAFM_BIN/hafm-from-json"; assert_fails_with "line 1: a message must be a JSON object"; }
    assert_only_files "bad.json range.json s.hafm summary.json"
}
