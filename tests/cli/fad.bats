#!/usr/bin/env bats
# fad: Frechet Audio Distance between sets given as streams of features, audio directories,
# lists and files (VGGish through a reduced random-weight model in tests/data/fadvsep).

setup() {
    FAD=$HAFM_BIN/fad
    FJ=$HAFM_BIN/hafm-from-json
    D=$HAFM_DATA/fadvsep
    T=$BATS_TEST_TMPDIR
    export HAFM_CACHE=$T/cache
}

# feats OUT ITEMS FRAMES DIM SHIFT [EXTRA]: a stream of ITEMS items with a features track "emb"
# of FRAMES x DIM pseudo-random values (mean SHIFT); EXTRA adds an unrelated tokens track.
feats() {
    awk -v items="$2" -v frames="$3" -v dim="$4" -v shift="$5" -v extra="${6:-0}" 'BEGIN {
        srand(7 + 100 * shift);
        print "{\"type\":\"header\",\"magic\":\"hafm-stream\",\"version\":[1,0]}";
        for (k = 0; k < items; k++) {
            printf "{\"type\":\"item\",\"key\":\"song%d\"}\n", k;
            if (extra) {
                print "{\"type\":\"track\",\"id\":0,\"name\":\"tok\",\"kind\":\"tokens\",\"dtype\":\"i16\",\"shape\":[1],\"rate\":50,\"vocab\":10}";
                print "{\"type\":\"data\",\"track\":0,\"frames\":2,\"payload\":[1,2]}";
                print "{\"type\":\"end\",\"track\":0,\"frames\":2}";
            }
            printf "{\"type\":\"track\",\"id\":1,\"name\":\"emb\",\"kind\":\"features\",\"dtype\":\"f32\",\"shape\":[%d],\"rate\":75}\n", dim;
            printf "{\"type\":\"data\",\"track\":1,\"frames\":%d,\"payload\":[", frames;
            for (i = 0; i < frames * dim; i++) printf "%s%.5f", (i ? "," : ""), shift + (rand() + rand() + rand() - 1.5) * 2;
            print "]}";
            printf "{\"type\":\"end\",\"track\":1,\"frames\":%d}\n", frames;
            printf "{\"type\":\"item_end\",\"key\":\"song%d\"}\n", k;
        }
    }' | "$FJ" > "$1"
}

@test "--help prints the usage on stdout and exits 0" {
    run "$FAD" --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "usage: fad "* ]]
    [[ "$output" == *"--per-song"* ]]
}

@test "--version" {
    run "$FAD" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "fad (hafm) "* ]]
}

@test "bad options exit 2" {
    run "$FAD" --bogus a b
    [ "$status" -eq 2 ]
    [[ "$output" == *"fad: unknown option '--bogus'"* ]]
    run "$FAD" -e mfcc a b
    [ "$status" -eq 2 ]
    run "$FAD" --inf-steps 1 a b
    [ "$status" -eq 2 ]
    run "$FAD" only-one
    [ "$status" -eq 2 ]
    run "$FAD" - -
    [ "$status" -eq 2 ]
}

@test "a features set against itself is 0; a shifted set is farther" {
    feats "$T/a.hafm" 3 40 8 0
    feats "$T/b.hafm" 3 40 8 1
    run "$FAD" -e features "$T/a.hafm" "$T/a.hafm"
    [ "$status" -eq 0 ]
    awk -v x="$output" 'BEGIN { exit !(x < 1e-9 && x > -1e-9) }'
    run "$FAD" -e features "$T/a.hafm" - < "$T/b.hafm"
    [ "$status" -eq 0 ]
    awk -v x="$output" 'BEGIN { exit !(x > 4) }'   # |mean shift|^2 = 8
}

@test "JSON report with per-song scores and FAD-inf" {
    feats "$T/a.hafm" 4 60 4 0
    feats "$T/b.hafm" 4 60 4 0.5
    run "$FAD" -e features -j -p -i --inf-min 50 --inf-steps 5 "$T/a.hafm" "$T/b.hafm"
    [ "$status" -eq 0 ]
    [[ "$output" == *'"fad":'* ]]
    [[ "$output" == *'"per_song":'* ]]
    [[ "$output" == *'"name":	"song3"'* ]]
    [[ "$output" == *'"fad_inf":'* ]]
    run "$FAD" -e features -p "$T/a.hafm" "$T/b.hafm"
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "fad	"* ]]
    [ "${#lines[@]}" -eq 5 ]
}

@test "unknown tracks are ignored; -T picks a track by name" {
    feats "$T/a.hafm" 2 30 4 0 1
    run "$FAD" -e features "$T/a.hafm" "$T/a.hafm"
    [ "$status" -eq 0 ]
    run "$FAD" -e features -T emb "$T/a.hafm" "$T/a.hafm"
    [ "$status" -eq 0 ]
    run "$FAD" -e features -T tok "$T/a.hafm" "$T/a.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"neither features nor audio"* ]]
}

@test "mismatched dimensions, too few frames, bad streams: exit 1" {
    feats "$T/a.hafm" 2 30 4 0
    feats "$T/b.hafm" 2 30 5 0
    feats "$T/one.hafm" 1 1 4 0
    run "$FAD" -e features "$T/a.hafm" "$T/b.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"fad: embedding dimensions differ"* ]]
    run "$FAD" -e features "$T/a.hafm" "$T/one.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"at least 2 are needed"* ]]
    head -c 200 "$T/a.hafm" > "$T/trunc.hafm"
    run "$FAD" -e features "$T/a.hafm" "$T/trunc.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == "fad: "* ]]
    : > "$T/empty.wav"
    run "$FAD" -e features "$T/a.hafm" "$T/empty.wav"
    [ "$status" -eq 1 ]
    run "$FAD" -e features "$T/a.hafm" "$T/missing"
    [ "$status" -eq 1 ]
}

@test "VGGish on audio: directories, lists, the statistics cache" {
    mkdir -p "$T/ref" "$T/ev"
    cp "$D/mix.wav" "$D/accomp.wav" "$T/ref/"
    cp "$D/vocal.wav" "$T/ev/"
    M=$D/vggish_tiny.safetensors
    run "$FAD" -m "$M" -j "$T/ref" "$T/ref"
    [ "$status" -eq 0 ]
    [[ "$output" == *'"cached_songs":	0'* ]]
    [ "$(ls "$HAFM_CACHE/fad" | wc -l)" -eq 2 ]
    run "$FAD" -m "$M" -j "$T/ref" "$T/ref"
    [ "$status" -eq 0 ]
    [[ "$output" == *'"cached_songs":	2'* ]]
    printf '%s\n' "$D/mix.wav" "# comment" "$D/accomp.wav" > "$T/list"
    run "$FAD" -m "$M" "@$T/list" "$T/ref"
    [ "$status" -eq 0 ]
    awk -v x="$output" 'BEGIN { exit !(x < 1e-6 && x > -1e-6) }'
    run "$FAD" -m "$M" --no-cache "$T/ref" "$T/ev"
    [ "$status" -eq 0 ]
    awk -v x="$output" 'BEGIN { exit !(x > 0) }'
    run "$FAD" "$T/ref" "$T/ev"     # no weights
    [ "$status" -eq 1 ]
    [[ "$output" == *"need weights"* ]]
}

# golden SET ROWS OUT: the golden float32 rows as a one-item features stream
golden() {
    od -An -v -tf4 -w512 "$HAFM_SHARED/golden/fad/$1" | awk -v n="$2" '
        BEGIN { print "{\"type\":\"header\",\"magic\":\"hafm-stream\",\"version\":[1,0]}";
                print "{\"type\":\"item\",\"key\":\"set\"}";
                print "{\"type\":\"track\",\"id\":0,\"name\":\"emb\",\"kind\":\"features\",\"dtype\":\"f32\",\"shape\":[128],\"rate\":1}" }
        { printf "{\"type\":\"data\",\"track\":0,\"frames\":1,\"payload\":[";
          for (i = 1; i <= NF; i++) printf "%s%s", (i > 1 ? "," : ""), $i; print "]}" }
        END { printf "{\"type\":\"end\",\"track\":0,\"frames\":%d}\n{\"type\":\"item_end\",\"key\":\"set\"}\n", n }' |
        "$FJ" > "$3"
}

@test "end to end on the golden sets: FAD 27.2378834 (numpy/scipy/mpmath)" {
    [ -f "$HAFM_SHARED/golden/fad/A_ref_2000x128.f32" ] || skip "no \$HAFM_SHARED golden/fad"
    golden A_ref_2000x128.f32 2000 "$T/ref.hafm"
    golden A_eval_1500x128.f32 1500 "$T/eval.hafm"
    run "$FAD" -e features "$T/ref.hafm" "$T/eval.hafm"
    [ "$status" -eq 0 ]
    echo "fad $output"
    awk -v x="$output" 'BEGIN { d = x - 27.237883398904206; exit !(d < 1e-5 && d > -1e-5) }'
}

@test "EnCodec embeddings: audio directories = encodec-enc --latent streams" {
    M=$HAFM_SHARED/golden/encodec/encodec_small_seed7.safetensors
    [ -f "$M" ] || skip "no \$HAFM_SHARED golden/encodec"
    mkdir -p "$T/ref" "$T/ev"
    cp "$D/mix.wav" "$D/accomp.wav" "$T/ref/"
    cp "$D/vocal.wav" "$T/ev/"
    direct=$("$FAD" -e encodec -m "$M" "$T/ref" "$T/ev")
    "$HAFM_BIN/hafm-from-audio" "$T/ref/accomp.wav" "$T/ref/mix.wav" | "$HAFM_BIN/encodec-enc" -m "$M" --latent > "$T/r.hafm"
    "$HAFM_BIN/encodec-enc" -m "$M" --latent "$T/ev/vocal.wav" > "$T/e.hafm"
    streams=$("$FAD" -e features "$T/r.hafm" "$T/e.hafm")
    echo "direct $direct streams $streams"
    [ "$direct" = "$streams" ]
    awk -v x="$direct" 'BEGIN { exit !(x > 0) }'
}

@test "HuBERT layer features (reduced random-weight checkpoint of tests/data/hubert)" {
    M=$HAFM_DATA/hubert/hubert_small_seed5_hf.safetensors
    [ -f "$M" ] || skip "no tests/data/hubert"
    mkdir -p "$T/ref" "$T/ev"
    cp "$D/mix.wav" "$D/accomp.wav" "$T/ref/"
    cp "$D/vocal.wav" "$T/ev/"
    run "$FAD" -e hubert -m "$M" -l 2 "$T/ref" "$T/ref"
    [ "$status" -eq 0 ]
    [ "$output" = "0.000000" ]
    run "$FAD" -e hubert -m "$M" -l 2 -j "$T/ref" "$T/ev"
    [ "$status" -eq 0 ]
    [[ "$output" == *'"embedding":	"hubert"'* ]]
    run "$FAD" -e hubert -m "$M" -l 40 "$T/ref" "$T/ev"
    [ "$status" -eq 1 ]
    [[ "$output" == "fad: "* ]]
}
