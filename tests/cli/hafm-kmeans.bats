#!/usr/bin/env bats
# hafm-kmeans: codebooks from features tracks (written here by hubert-tok --emit-features).

setup() {
    KM=$HAFM_BIN/hafm-kmeans
    HT=$HAFM_BIN/hubert-tok
    H=$HAFM_DATA/hubert
    MODEL=$H/hubert_small_seed5_hf.safetensors
    T=$BATS_TEST_TMPDIR
    if [ ! -e "$BATS_FILE_TMPDIR/feat.hafm" ]; then
        "$HT" -m "$MODEL" -l 2 -e "$H/inputs/synth_1s.wav" - < "$H/inputs/synth_1s.wav" > "$BATS_FILE_TMPDIR/feat.hafm"
    fi
    F=$BATS_FILE_TMPDIR/feat.hafm
}

@test "--help prints the usage on stdout and exits 0" {
    run "$KM" --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "usage: hafm-kmeans "* ]]
    [[ "$output" == *"--batch B"* ]]
}

@test "--version" {
    run "$KM" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hafm-kmeans (hafm) "* ]]
}

@test "bad options exit 2" {
    run "$KM" --bogus -o "$T/c.npy" "$F"
    [ "$status" -eq 2 ]
    run "$KM" "$F"
    [ "$status" -eq 2 ]
    [[ "$output" == *"-o CODEBOOK"* ]]
    run "$KM" -k 0 -o "$T/c.npy" "$F"
    [ "$status" -eq 2 ]
    [[ "$output" == *"-k: expected an integer in [1, 65536], got '0'"* ]]
    run "$KM" -b 10 -o "$T/c.npy" < "$F"
    [ "$status" -eq 2 ]
    run "$KM" --tol 2 -o "$T/c.npy" "$F"
    [ "$status" -eq 2 ]
}

@test "fits a codebook hubert-tok uses; inertia per iteration; deterministic under --seed" {
    run "$KM" -k 4 --seed 7 -o "$T/a.npy" "$F"
    [ "$status" -eq 0 ]
    [[ "$output" == *"hafm-kmeans: init 1 iter 1 inertia "* ]]
    [[ "$output" == *"98 frames of 96 dimensions from 2 items: 4 centroids, inertia "* ]]
    "$KM" -q -k 4 --seed 7 -o "$T/b.npy" < "$F"
    cmp "$T/a.npy" "$T/b.npy"
    "$KM" -q -k 4 --seed 7 -o "$T/a.safetensors" "$F"
    "$HT" -m "$MODEL" -l 2 -c "$T/a.safetensors" "$H/inputs/synth_1s.wav" | "$HAFM_BIN/hafm-dump" | grep -q '"vocab":4,"frames":49'
}

@test "reproduces the golden 16-centroid codebook's inertia (940 frames of the small model)" {
    G=$HAFM_SHARED/golden/hubert
    [ -e "$G/inputs/kmfit_extra7.wav" ] || skip "\$HAFM_SHARED/golden/hubert not available"
    "$HT" -m "$MODEL" -l 2 -e "$G"/inputs/{synth_1s,real_2s,kmfit_extra?}.wav > "$T/fit.hafm"
    run "$KM" -q -k 16 --n-init 10 -o "$T/c.npy" "$T/fit.hafm"
    [ "$status" -eq 0 ]
    inertia=$(sed -n 's/.*940 frames of 96 dimensions from 10 items: 16 centroids, inertia \([0-9.e+]*\).*/\1/p' <<< "$output")
    echo "inertia $inertia, scikit-learn (manifest.json) 33814.48"
    awk -v x="$inertia" 'BEGIN { exit !(x <= 33814.48 * 1.01) }'
}

@test "mini-batch mode reads the files once per epoch" {
    run "$KM" -k 4 -b 32 --epochs 3 -o "$T/m.npy" "$F" "$F"
    [ "$status" -eq 0 ]
    [[ "$output" == *"epoch 3 inertia"* ]]
    [[ "$output" == *"196 frames of 96 dimensions from 4 items: 4 centroids"* ]]
    [ -s "$T/m.npy" ]
}

@test "bad input: exit 1, no output file" {
    run "$KM" -o "$T/c.npy" < /dev/null
    [ "$status" -eq 1 ]
    [[ "$output" == *"empty input"* ]]
    head -c 1000 /dev/urandom > "$T/junk"
    run "$KM" -o "$T/c.npy" "$T/junk"
    [ "$status" -eq 1 ]
    head -c 20000 "$F" > "$T/cut.hafm"
    run "$KM" -k 2 -o "$T/c.npy" "$T/cut.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"truncated"* ]]
    run "$KM" -k 200 -o "$T/c.npy" "$F"
    [ "$status" -eq 1 ]
    [[ "$output" == *"too few for 200 centroids"* ]]
    run "$KM" -k 2 -n other -o "$T/c.npy" "$F"
    [ "$status" -eq 1 ]
    [[ "$output" == *"has no track 'other'"* ]]
    "$HT" -m "$MODEL" -l 2 -c "$H/kmeans/hubert_small_seed5_L2_km16.npy" "$H/inputs/synth_1s.wav" > "$T/tok.hafm"
    run "$KM" -k 2 -n vocal.semantic -o "$T/c.npy" "$T/tok.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"expected a features track"* ]]
    [ ! -e "$T/c.npy" ]
}
