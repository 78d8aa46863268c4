#!/usr/bin/env bats
# hafm-accompany: the whole pipeline on a vocal, with tiny models trained here by the toolkit's
# own trainers on one composed song (no placeholder models).

HAFM_BIN=${HAFM_BIN:-$BATS_TEST_DIRNAME/../../bin}
# the stage commands under test, wherever HAFM_BIN is (a sanitizer build, say)
ACC() { "$HAFM_BIN/hafm-accompany" --bin "$HAFM_BIN" "$@"; }

# Tiny models: a codec of 32 bins, 8 centroids, three 1-layer stages of width 16; each trained a
# few steps, enough to be real models of the right shapes (quality is examples/train's business).
setup_file() {
    export M=$BATS_FILE_TMPDIR/models D=$BATS_FILE_TMPDIR/data
    for t in hafm-compose encodec-train hafm-train hafm-stage1 hafm-stage2 hafm-stage3 encodec-enc encodec-dec hubert-tok hafm-kmeans hafm-codebooks; do
        [ -x "$HAFM_BIN/$t" ] || { export NO_TRAINERS="$t is not built"; return 0; }
    done
    mkdir -p "$M" "$D"
    # the trainers only make fixtures here (their own tests check them); under LeakSanitizer,
    # OpenMPI's initialisation inside hafm-train reports leaks of its own
    local noleak=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
    "$HAFM_BIN/hafm-compose" -q -t 1 --seed 3 --index 0 --length 5 --flat -o "$D/songs"
    song=$(ls -d "$D"/songs/*/)
    cp "$song/vocal.wav" "$D/vocal.wav"
    "$HAFM_BIN/hubert-tok" -F mfcc -e -a vocal --features-name features "$song/song.hafm" |
        "$HAFM_BIN/hafm-tracks" -k features -o "$D/feat.hafm"
    "$HAFM_BIN/hafm-kmeans" -q -k 8 -n features -o "$M/centroids.safetensors" "$D/feat.hafm"
    ASAN_OPTIONS=$noleak "$HAFM_BIN/encodec-train" --small --bins 32 --no-adversarial --steps 2 --batch 2 --segment 0.5 -q \
        --checkpoint "$D/codec.ckpt" -o "$M/codec.safetensors" "$song/accomp.wav"
    "$HAFM_BIN/hubert-tok" -F mfcc -c "$M/centroids.safetensors" -a vocal -n vocal.semantic "$song/song.hafm" |
        "$HAFM_BIN/hubert-tok" -F mfcc -c "$M/centroids.safetensors" -a accomp -n accomp.semantic |
        "$HAFM_BIN/encodec-enc" -m "$M/codec.safetensors" -b 6 -i accomp -n codes |
        "$HAFM_BIN/hafm-codebooks" -d -s accomp.coarse=0:4 -s accomp.fine=4:8 > "$D/tokens.hafm"
    local arch='"n_layer":1,"d_model":16,"n_head":2,"d_ff":32,"rel_buckets":8,"rel_max_distance":32,"norm_eps":1e-6,"window_seconds":0.4'
    local sem='"codebooks":1,"codebook_offset":0,"vocab":8,"rate":50'
    echo "{\"stage\":1,$arch,\"conditions\":[{\"name\":\"vocal.semantic\",$sem}],\"target\":{\"name\":\"accomp.semantic\",$sem}}" > "$D/s1.json"
    echo "{\"stage\":2,$arch,\"conditions\":[{\"name\":\"vocal.semantic\",$sem},{\"name\":\"accomp.semantic\",$sem}],\"target\":{\"name\":\"accomp.coarse\",\"codebooks\":4,\"codebook_offset\":0,\"vocab\":32,\"rate\":75}}" > "$D/s2.json"
    echo "{\"stage\":3,$arch,\"conditions\":[{\"name\":\"accomp.coarse\",\"codebooks\":4,\"codebook_offset\":0,\"vocab\":32,\"rate\":75}],\"target\":{\"name\":\"accomp.fine\",\"codebooks\":4,\"codebook_offset\":4,\"vocab\":32,\"rate\":75}}" > "$D/s3.json"
    for s in 1 2 3; do
        ASAN_OPTIONS=$noleak "$HAFM_BIN/hafm-train" --config "$D/s$s.json" --steps 2 --batch 2 -q -o "$D/s$s.ckpt" \
            --export "$M/stage$s.safetensors" "$D/tokens.hafm"
    done
}

setup() {
    T=$(mktemp -d "${BATS_TMPDIR:-/tmp}/hafm-accompany.XXXXXX")
}

teardown() {
    rm -rf "$T"
}

need_models() {
    [ -z "${NO_TRAINERS:-}" ] || skip "$NO_TRAINERS: no models can be trained for this test"
}

@test "hafm-accompany --help and --version" {
    run ACC --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    [[ "$output" == *"--accompaniment-only FILE"* ]]
    run ACC --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hafm-accompany (hafm) "* ]]
}

@test "hafm-accompany: usage errors exit 2" {
    run ACC --bogus v.wav -o m.wav
    [ "$status" -eq 2 ]
    run ACC v.wav
    [ "$status" -eq 2 ]
    [[ "$output" == *"no output"* ]]
    run ACC -o m.wav
    [ "$status" -eq 2 ]
    run ACC -o m.wav -s 101 v.wav
    [ "$status" -eq 2 ]
    run ACC -o m.wav -p 0 v.wav
    [ "$status" -eq 2 ]
    run ACC -o m.wav -S -1 v.wav
    [ "$status" -eq 2 ]
    run ACC -o m.wav -F wav2vec v.wav
    [ "$status" -eq 2 ]
}

@test "hafm-accompany --accompaniment mixes a given accompaniment, loudness-matched, without models" {
    sox -n -r 44100 -c 2 "$T/v.wav" synth 3 sine 220 gain -10
    sox -n -r 24000 -c 1 "$T/a.wav" synth 2 sine 330 gain -30
    run ACC -M "$T/none" -b 4 -a "$T/a.wav" -o "$T/mix.wav" "$T/v.wav"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"hafm-accompany: mix "* ]]
    [ "$(soxi -r "$T/mix.wav")" = 44100 ]
    [ "$(soxi -c "$T/mix.wav")" = 2 ]
    [ "$(soxi -s "$T/mix.wav")" = "$(soxi -s "$T/v.wav")" ]
    # the accompaniment was raised to 4 LU below the vocal: the vocal's -10 dB sine against -30 dB
    [[ "$output" == *"+16."*" dB"* ]]
    run ACC -a "$T/a.wav" "$T/v.wav"
    [ "$status" -eq 2 ]
    run ACC -a "$T/missing.wav" -o "$T/mix2.wav" "$T/v.wav"
    [ "$status" -eq 1 ]
    [ ! -e "$T/mix2.wav" ]
}

@test "hafm-accompany: a vocal becomes a loudness-matched mix and an accompaniment, with stage times" {
    need_models
    run ACC -M "$M" -t 1 -S 5 -o "$T/mix.wav" -A "$T/acc.wav" "$D/vocal.wav"
    echo "$output"
    [ "$status" -eq 0 ]
    for s in hubert-tok hafm-stage1 hafm-stage2 hafm-stage3 encodec-dec mix total; do
        [[ "$output" == *"hafm-accompany: $s "*" s"* ]]
    done
    [ "$(soxi -r "$T/mix.wav")" = 24000 ]
    [ "$(soxi -s "$T/mix.wav")" = "$(soxi -s "$D/vocal.wav")" ]
    [ "$(soxi -s "$T/acc.wav")" = "$(soxi -s "$D/vocal.wav")" ]
    # the same seed gives the same accompaniment
    ACC -q -M "$M" -t 1 -S 5 -A "$T/acc2.wav" "$D/vocal.wav"
    cmp "$T/acc.wav" "$T/acc2.wav"
    # nothing is left in the temporary directory
    [ -z "$(ls -A "$T" | grep -v '^\(mix\|acc\|acc2\)\.wav$')" ]
}

@test "hafm-accompany: any rate and channel count, and a 60-second vocal (windowed generation)" {
    need_models
    sox "$D/vocal.wav" -r 44100 -c 2 "$T/v44.wav"
    run ACC -q -M "$M" -t 1 -o "$T/mix44.wav" "$T/v44.wav"
    [ "$status" -eq 0 ]
    [ "$(soxi -r "$T/mix44.wav")" = 44100 ]
    [ "$(soxi -c "$T/mix44.wav")" = 2 ]
    [ "$(soxi -s "$T/mix44.wav")" = "$(soxi -s "$T/v44.wav")" ]
    sox "$D/vocal.wav" -r 16000 "$T/v60.flac" repeat 14 trim 0 60
    run ACC -M "$M" -t 1 -o "$T/mix60.wav" -A "$T/acc60.wav" "$T/v60.flac"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(soxi -s "$T/mix60.wav")" = 960000 ]
    [ "$(soxi -s "$T/acc60.wav")" = 1440000 ]
}

@test "hafm-accompany: bad input and missing models exit 1 without output" {
    need_models
    echo 'not audio' > "$T/bad.wav"
    run ACC -M "$M" -o "$T/mix.wav" "$T/bad.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == hafm-accompany:* ]]
    : > "$T/empty.wav"
    run ACC -M "$M" -o "$T/mix.wav" "$T/empty.wav"
    [ "$status" -eq 1 ]
    run ACC -M "$M" -o "$T/mix.wav" "$T/missing.wav"
    [ "$status" -eq 1 ]
    run ACC -M "$T" -o "$T/mix.wav" "$D/vocal.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"centroids.safetensors: no such model file"* ]]
    # a corrupt model: the stage's own error, then hafm-accompany's
    mkdir "$T/m"
    cp "$M"/*.safetensors "$T/m/"
    head -c 100 "$M/stage2.safetensors" > "$T/m/stage2.safetensors"
    run ACC -M "$T/m" -o "$T/mix.wav" "$D/vocal.wav"
    [ "$status" -eq 1 ]
    [[ "$output" == *"hafm-stage2 failed"* ]]
    [ ! -e "$T/mix.wav" ]
    [ -z "$(ls "$T" | grep -v '^\(bad\|empty\)\.wav$\|^m$')" ]
}

@test "examples/demo: the README's pipeline on models, each stage timed, and the stream-utility fallback" {
    need_models
    local top=$BATS_TEST_DIRNAME/../..
    run env HAFM_BIN="$HAFM_BIN" HAFM_MODELS="$M" HAFM_DEMO_OUT="$T/demo" HAFM_THREADS=1 "$top/examples/demo" "$D/vocal.wav"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"hubert-tok < vocal | hafm-stage1 | hafm-stage2 | hafm-stage3 | encodec-dec"* ]]
    for s in hubert-tok hafm-stage1 hafm-stage2 hafm-stage3 encodec-dec mix; do
        [[ "$output" == *"demo: $s "*" s"* ]]
    done
    [ "$(soxi -s "$T/demo/mix.wav")" = "$(soxi -s "$D/vocal.wav")" ]
    [ "$(soxi -r "$T/demo/accompaniment.wav")" = 24000 ]
    # without models: the stream utilities, checked bit-exact
    run env HAFM_BIN="$HAFM_BIN" HAFM_MODELS="$T/none" HAFM_DEMO_OUT="$T/demo2" "$top/examples/demo" "$D/vocal.wav"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"round trip is bit-exact"* ]]
}
