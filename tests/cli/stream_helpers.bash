# Helpers for the stream utilities' bats tests: fixture streams written from JSON lines.
# Loaded with `load stream_helpers`.

HAFM_BIN=${HAFM_BIN:-$BATS_TEST_DIRNAME/../../bin}

setup() {
    T=$(mktemp -d "${BATS_TMPDIR:-/tmp}/hafm-stream.XXXXXX")
}

teardown() {
    rm -rf "$T"
}

# The fixture as hafm-dump --full prints it: two items; an audio track with an unknown key, a
# tokens track, an unknown message type inside an item and one between items; a features track
# with a NaN.
fixture_json() {
    cat <<'END'
{"type":"header","magic":"hafm-stream","version":[1,0],"tool":"fixture"}
{"type":"item","key":"song-a"}
{"type":"track","id":0,"name":"audio","kind":"audio","dtype":"i16","shape":[2],"rate":8000,"sample_rate":8000,"channels":2,"x-extra":"kept"}
{"type":"track","id":1,"name":"codes","kind":"tokens","dtype":"i16","shape":[2],"rate":75,"vocab":1024,"attrs":{"role":"accompaniment"}}
{"type":"x-comment","text":"an unknown message type"}
{"type":"data","track":0,"frames":3,"payload":[1,-1,2,-2,32767,-32768]}
{"type":"data","track":1,"frames":2,"payload":[5,6,1023,0]}
{"type":"data","track":0,"frames":1,"payload":[7,8]}
{"type":"end","track":0,"frames":4,"source_samples":4,"source_rate":8000}
{"type":"end","track":1,"frames":2}
{"type":"item_end","key":"song-a"}
{"type":"x-between","n":1}
{"type":"item","key":"song-b"}
{"type":"track","id":3,"name":"feat","kind":"features","dtype":"f32","shape":[3],"rate":12.5}
{"type":"data","track":3,"frames":2,"payload":[0.5,-0.25,1.0,"NaN",2.0,0.1]}
{"type":"end","track":3,"frames":2}
{"type":"item_end","key":"song-b"}
END
}

# fixture FILE: writes the fixture stream to FILE
fixture() {
    fixture_json | "$HAFM_BIN/hafm-from-json" -o "$1"
}

# stream FILE: writes the JSON lines of stdin as a stream to FILE
stream() {
    "$HAFM_BIN/hafm-from-json" -o "$1"
}

# The exit status a failing command must have (valgrind's wrapper turns leaks into 99).
assert_fails_with() {   # message
    [ "$status" -eq 1 ] || { echo "status $status, output: $output"; return 1; }
    [[ "$output" == *"$1"* ]] || { echo "expected '$1' in: $output"; return 1; }
}

# No file and no temporary file left in $T besides the ones listed.
assert_only_files() {
    local want="$*" have
    have=$(cd "$T" && ls -A | sort | tr '\n' ' ' | sed 's/ $//')
    [ "$have" = "$want" ] || { echo "files in $T: '$have', expected '$want'"; return 1; }
}
