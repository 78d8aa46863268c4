#!/usr/bin/env bats
# hafm-codebooks: a tokens track split into tracks of codebook ranges.
load stream_helpers

codes_json() {
    cat <<'END'
{"type":"header","magic":"hafm-stream","version":[1,0],"tool":"fixture"}
{"type":"item","key":"song-a"}
{"type":"track","id":0,"name":"codes","kind":"tokens","dtype":"i16","shape":[4],"rate":75,"vocab":1024,"attrs":{"role":"accompaniment"}}
{"type":"x-comment","text":"kept"}
{"type":"data","track":0,"frames":2,"payload":[1,2,3,4,5,6,7,8]}
{"type":"track","id":1,"name":"later","kind":"tokens","dtype":"i16","shape":[1],"rate":50,"vocab":10}
{"type":"data","track":0,"frames":1,"payload":[9,10,11,1023]}
{"type":"data","track":1,"frames":1,"payload":[3]}
{"type":"end","track":0,"frames":3,"source_samples":960,"source_rate":24000}
{"type":"end","track":1,"frames":1}
{"type":"item_end","key":"song-a"}
END
}

@test "hafm-codebooks --help and --version" {
    run "$HAFM_BIN/hafm-codebooks" --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    [[ "$output" == *"--select NAME=FIRST:END"* ]]
    run "$HAFM_BIN/hafm-codebooks" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hafm-codebooks (hafm) "* ]]
}

@test "hafm-codebooks: usage errors exit 2" {
    run "$HAFM_BIN/hafm-codebooks" --bogus
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-codebooks"
    [ "$status" -eq 2 ]
    [[ "$output" == *"no --select given"* ]]
    run "$HAFM_BIN/hafm-codebooks" -s a=2:2
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-codebooks" -s a=x:2
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-codebooks" -s a
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-codebooks" -s a=0:1 -s a=1:2
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-codebooks" -s codes=0:1
    [ "$status" -eq 2 ]
}

@test "hafm-codebooks splits codes into coarse and fine tracks and passes everything through" {
    codes_json | stream "$T/in.hafm"
    "$HAFM_BIN/hafm-codebooks" -s coarse=0:2 -s fine=2:4 "$T/in.hafm" > "$T/out.hafm"
    run "$HAFM_BIN/hafm-dump" -f "$T/out.hafm"
    [ "$status" -eq 0 ]
    # the input's messages, unchanged and in order
    diff <(codes_json | tail -n +2) <(echo "$output" | tail -n +2 | grep -v '"name":"coarse"\|"name":"fine"\|"track":6553[45]')
    echo "$output" | grep -q '"name":"coarse".*"shape":\[2\].*"vocab":1024'
    echo "$output" | grep '"name":"fine"' | grep -q '"codebook_offset":2'
    echo "$output" | grep '"name":"coarse"' | grep -q '"codebook_offset":0'
    echo "$output" | grep '"name":"coarse"' | grep -q '"role":"accompaniment"'
    "$HAFM_BIN/hafm-dump" --raw coarse "$T/out.hafm" | od -An -td2 | tr -s ' \n' ' ' | grep -q '^ 1 2 5 6 9 10 $'
    "$HAFM_BIN/hafm-dump" --raw fine "$T/out.hafm" | od -An -td2 | tr -s ' \n' ' ' | grep -q '^ 3 4 7 8 11 1023 $'
    # the end message keeps the source length
    [ "$(echo "$output" | grep -c '"type":"end","track":6553[45],"frames":3,"source_samples":960')" -eq 2 ]
}

@test "hafm-codebooks --drop leaves the input track out" {
    codes_json | stream "$T/in.hafm"
    "$HAFM_BIN/hafm-codebooks" -d -s c=1:3 -o "$T/out.hafm" "$T/in.hafm"
    run "$HAFM_BIN/hafm-dump" "$T/out.hafm"
    [[ "$output" != *'"name":"codes"'* ]]
    [[ "$output" == *'"name":"later"'* ]]
    "$HAFM_BIN/hafm-dump" --raw c "$T/out.hafm" | od -An -td2 | tr -s ' \n' ' ' | grep -q '^ 2 3 6 7 10 11 $'
}

@test "hafm-codebooks: bad input exits 1 without output file" {
    codes_json | stream "$T/in.hafm"
    run "$HAFM_BIN/hafm-codebooks" -s c=2:5 -o "$T/out.hafm" "$T/in.hafm"
    assert_fails_with "has 4 codebooks, so it has no codebooks 3-5"
    run "$HAFM_BIN/hafm-codebooks" -i nothing -s c=0:1 -o "$T/out.hafm" "$T/in.hafm"
    assert_fails_with "no item has a track 'nothing'"
    run "$HAFM_BIN/hafm-codebooks" -s later=0:1 -o "$T/out.hafm" "$T/in.hafm"
    [ "$status" -eq 1 ]
    head -c 100 "$T/in.hafm" > "$T/cut.hafm"
    run "$HAFM_BIN/hafm-codebooks" -s c=0:1 -o "$T/out.hafm" "$T/cut.hafm"
    [ "$status" -eq 1 ]
    : > "$T/empty.hafm"
    run "$HAFM_BIN/hafm-codebooks" -s c=0:1 -o "$T/out.hafm" "$T/empty.hafm"
    [ "$status" -eq 1 ]
    run "$HAFM_BIN/hafm-codebooks" -s c=0:1 -o "$T/out.hafm" "$T/missing.hafm"
    assert_fails_with "cannot open"
    assert_only_files "cut.hafm empty.hafm in.hafm"
}
