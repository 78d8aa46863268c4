#!/usr/bin/env bash
# examples/train/sampling.sh - chooses the stages' sampling defaults on validation songs (run by
# `make sampling`; the variables come from the Makefile). Test songs are never used here.
#
# The first SWEEP_SONGS validation vocals go through the pipeline once per setting of
# SAMPLING_GRID; each setting's accompaniments are compared with those songs' real ones by FAD
# (the codec's encoder latent and un-normalised MFCCs, as eval.sh) and by loudness. The other
# validation songs' real accompaniments give the random baseline.
# SAMPLING_GRID: settings separated by ';', each a name and the options given to all three
# stages, e.g. "paper:-s 3 -T 0.9 -k 250;pure:-s 3 -T 1 -k 0".
# Writes $WORK/sampling/sampling.tsv: setting, options, fad_encodec, fad_mfcc, level_db.
set -euo pipefail
: "${BIN:?}" "${MODELS:?}" "${CORPUS:?}" "${WORK:?}" "${SAMPLING_GRID:?}" "${SWEEP_SONGS:=7}" "${SEED:=1}"
S=$WORK/sampling
rm -rf "$S"
mkdir -p "$S/vocals"
head -n "$SWEEP_SONGS" "$CORPUS/lists/valid.txt" > "$S/songs.txt"
tail -n +"$((SWEEP_SONGS + 1))" "$CORPUS/lists/valid.txt" | head -n "$SWEEP_SONGS" > "$S/others.txt"
[ "$(wc -l < "$S/songs.txt")" -eq "$SWEEP_SONGS" ] && [ -s "$S/others.txt" ] ||
    { echo "sampling.sh: need at least $((SWEEP_SONGS + 1)) validation songs (SWEEP_SONGS=$SWEEP_SONGS)" >&2; exit 1; }
vocals=()
while read -r d; do
    ln -s "$d/vocal.wav" "$S/vocals/$(basename "$d").wav"
    vocals+=("$S/vocals/$(basename "$d").wav")
done < "$S/songs.txt"

embed() {   # list, out prefix: the two FAD embeddings of eval.sh
    xargs "$BIN/hafm-from-audio" < "$1" | "$BIN/encodec-enc" -m "$MODELS/codec.safetensors" --latent=latent |
        "$BIN/hafm-tracks" -k latent -o "$2.encodec.hafm"
    xargs "$BIN/hubert-tok" -F mfcc --cmvn none -e < "$1" | "$BIN/hafm-tracks" -k vocal.features -o "$2.mfcc.hafm"
}
fad() { "$BIN/fad" -e features --no-cache -j "$S/real.$1.hafm" "$2.$1.hafm" | jq .fad; }
level() {   # mean loudness of the files of a list, dB of mean square
    while read -r f; do sox "$f" -n stats 2>&1 | awk '/RMS lev dB/ { print $4 }'; done < "$1" |
        awk '{ s += $1; n++ } END { printf "%.1f", s / n }'
}
sed 's|$|/accomp.wav|' "$S/songs.txt" > "$S/real.list"
sed 's|$|/accomp.wav|' "$S/others.txt" > "$S/random.list"
embed "$S/real.list" "$S/real"
embed "$S/random.list" "$S/random"
printf 'setting\toptions\tfad_encodec\tfad_mfcc\tlevel_db\n' > "$S/sampling.tsv"
printf 'real\t\t0\t0\t%s\n' "$(level "$S/real.list")" >> "$S/sampling.tsv"
printf 'random\t\t%s\t%s\t%s\n' "$(fad encodec "$S/random")" "$(fad mfcc "$S/random")" "$(level "$S/random.list")" >> "$S/sampling.tsv"

IFS=';' read -ra settings <<< "$SAMPLING_GRID"
for setting in "${settings[@]}"; do
    name=${setting%%:*} opts=${setting#*:}
    G=$S/$name
    mkdir -p "$G/gen"
    # shellcheck disable=SC2086 # the options are words
    "$BIN/hubert-tok" -c "$MODELS/centroids.safetensors" "${vocals[@]}" |
        "$BIN/hafm-stage1" -q -m "$MODELS/stage1.safetensors" -S "$SEED" $opts |
        "$BIN/hafm-stage2" -q -m "$MODELS/stage2.safetensors" -S "$SEED" $opts |
        "$BIN/hafm-stage3" -q -m "$MODELS/stage3.safetensors" -S "$SEED" $opts |
        "$BIN/encodec-dec" -m "$MODELS/codec.safetensors" -f float -o "$G/gen/%k.wav"
    ls "$G"/gen/*.wav > "$G/gen.list"
    embed "$G/gen.list" "$G/gen"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$opts" "$(fad encodec "$G/gen")" "$(fad mfcc "$G/gen")" "$(level "$G/gen.list")" |
        tee -a "$S/sampling.tsv"
done
cat "$S/sampling.tsv"
