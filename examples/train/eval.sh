#!/usr/bin/env bash
# examples/train/eval.sh - measured quality of the trained models on held-out test songs (run by
# `make eval`; the variables come from the Makefile). The songs are the first EVAL_SONGS of the
# test split of SEED, by index, past the training corpus too (examples/corpus `heldout`: the
# corpus's own test split is only about 5 % of SONGS, too few for a set measure like FAD).
# Writes $WORK/eval/:
#   codec.tsv     per song: SI-SDR and log-mel distance of the codec's reconstruction at 6 kbps
#                 (8 codebooks) and with 4 codebooks (3 kbps)
#   fit.tsv       per song and system: chord fit and beat fit against the song's labels
#   fad.tsv       FAD of each system's accompaniments against the real test accompaniments,
#                 with two embeddings (the codec's encoder latent, hubert-tok MFCC features
#                 without per-song normalisation: FAD compares the sets' means and covariances,
#                 which per-song mean/variance normalisation would erase)
#   usage.tsv     distinct codes per codebook in the test songs' tokens
#   times.tsv     the time of each pipeline stage over all test songs
#   eval.json     all of it summarised, with the stages' final validation loss and accuracy
# Systems: 'generated' (the 3-stage pipeline), 'coarse' (stages 1-2 only, codebooks 1-4 decoded:
# the paper's coarse-only ablation), 'oracle' (stages 2-3 from the true accompaniment semantic
# tokens: stage 1 taken out of the comparison), 'random' (the real accompaniment of another test song, the
# paper's random baseline; for FAD the real accompaniments of as many held-out validation-split
# songs, since the test songs' own accompaniments are the reference set), 'real' (the song's own accompaniment: the
# ceiling of the fit measures). 'random_coded' and 'real_coded' are the same through the codec
# (encodec-enc -b 6 | encodec-dec): generated audio passes the codec too, so these separate what
# the stages do from what the codec costs.
set -euo pipefail
: "${BIN:?}" "${MODELS:?}" "${CORPUS:?}" "${WORK:?}" "${EVAL_SONGS:=40}" "${SEED:=1}"
: "${CFG_SCALE:=}" "${TEMPERATURE:=}" "${TOP_K:=}" "${FEATURES:=mfcc}"   # empty: the models' own defaults
E=$WORK/eval
rm -rf "$E"
mkdir -p "$E/gen" "$E/coarse" "$E/rec6" "$E/rec3" "$E/valrec6"
for sp in test valid; do
    [ -s "$CORPUS/lists/heldout-$sp.txt" ] || { echo "eval.sh: no $CORPUS/lists/heldout-$sp.txt (make -C $CORPUS heldout)" >&2; exit 1; }
done
head -n "$EVAL_SONGS" "$CORPUS/lists/heldout-test.txt" > "$E/songs.txt"
mapfile -t songs < "$E/songs.txt"
n=${#songs[@]}
[ "$n" -ge 2 ] || { echo "eval.sh: need at least 2 test songs, have $n" >&2; exit 1; }
echo "eval: $n test songs"

timed() {   # name, output file, command...: runs it (stdout to the file), appends "name seconds" to times.tsv
    local name=$1 out=$2 t0 t1; shift 2
    t0=$(date +%s.%N)
    "$@" > "$out"
    t1=$(date +%s.%N)
    awk -v n="$name" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s\t%.3f\n", n, b - a }' | tee -a "$E/times.tsv"
}

# ---- codec reconstruction --------------------------------------------------------------------
printf 'song\tkbps\tcodebooks\tsi_sdr\tmel_distance\n' > "$E/codec.tsv"
for d in "${songs[@]}"; do
    id=$(basename "$d")
    for kb in 6 3; do
        "$BIN/encodec-enc" -m "$MODELS/codec.safetensors" -b $kb "$d/accomp.wav" |
            "$BIN/encodec-dec" -m "$MODELS/codec.safetensors" -f float -o "$E/rec$kb/$id.wav"
        "$BIN/hafm-fit" -r "$d/accomp.wav" "$E/rec$kb/$id.wav" |
            jq -r --arg id "$id" --arg kb $kb '[$id, $kb, (if $kb == "6" then 8 else 4 end), .si_sdr, .mel_distance] | @tsv' >> "$E/codec.tsv"
    done
done

# ---- codebook usage: distinct codes per codebook in the test songs' tokens (a collapsed codebook
# shows here first)
printf 'track\tcodebook\tdistinct\ttop_share\n' > "$E/usage.tsv"
for t in accomp.coarse accomp.fine; do
    for q in 1 2 3 4; do
        "$BIN/hafm-dump" --raw $t "$WORK/tokens/test.hafm" | od -An -v -td2 -w8 | awk -v q=$q '{ print $q }' |
            sort | uniq -c | sort -rn |
            awk -v t=$t -v q=$q '{ n++; s += $1; if (NR == 1) top = $1 } END { printf "%s\t%d\t%d\t%.4f\n", t, q, n, top / s }' >> "$E/usage.tsv"
    done
done

# ---- generation: every test vocal through the pipeline in one stream (each model loaded once) ---
# hubert-tok keys an item by its file name: links named by song id keep the items apart
mkdir -p "$E/vocals"
vocals=()
for d in "${songs[@]}"; do ln -s "$d/vocal.wav" "$E/vocals/$(basename "$d").wav"; vocals+=("$E/vocals/$(basename "$d").wav"); done
stage_opts=(-q -S "$SEED")
[ -z "$CFG_SCALE" ] || stage_opts+=(-s "$CFG_SCALE")
[ -z "$TEMPERATURE" ] || stage_opts+=(-T "$TEMPERATURE")
[ -z "$TOP_K" ] || stage_opts+=(-k "$TOP_K")
timed hubert-tok "$E/sem.hafm" "$BIN/hubert-tok" -F "$FEATURES" -c "$MODELS/centroids.safetensors" "${vocals[@]}"
timed hafm-stage1 "$E/s1.hafm" "$BIN/hafm-stage1" -m "$MODELS/stage1.safetensors" "${stage_opts[@]}" "$E/sem.hafm"
timed hafm-stage2 "$E/s2.hafm" "$BIN/hafm-stage2" -m "$MODELS/stage2.safetensors" "${stage_opts[@]}" "$E/s1.hafm"
timed hafm-stage3 "$E/s3.hafm" "$BIN/hafm-stage3" -m "$MODELS/stage3.safetensors" "${stage_opts[@]}" "$E/s2.hafm"
timed encodec-dec /dev/null "$BIN/encodec-dec" -m "$MODELS/codec.safetensors" -f float -o "$E/gen/%k.wav" "$E/s3.hafm"
"$BIN/encodec-dec" -m "$MODELS/codec.safetensors" -f float -i accomp.coarse -o "$E/coarse/%k.wav" "$E/s2.hafm"

# ---- oracle semantic: stages 2-3 given the songs' true accompaniment semantic tokens in place of
# stage 1's (items keyed by song id, as above): does the harmony get lost in stage 1 or after it?
mkdir -p "$E/oracle"
sed 's|$|/song.hafm|' "$E/songs.txt" | xargs cat |
    "$BIN/hubert-tok" -F "$FEATURES" -c "$MODELS/centroids.safetensors" -a vocal -n vocal.semantic |
    "$BIN/hubert-tok" -F "$FEATURES" -c "$MODELS/centroids.safetensors" -a accomp -n accomp.semantic |
    "$BIN/hafm-tracks" -d vocal,mix,accomp -o "$E/oracle.sem.hafm"
"$BIN/hafm-stage2" -m "$MODELS/stage2.safetensors" "${stage_opts[@]}" "$E/oracle.sem.hafm" |
    "$BIN/hafm-stage3" -m "$MODELS/stage3.safetensors" "${stage_opts[@]}" |
    "$BIN/encodec-dec" -m "$MODELS/codec.safetensors" -f float -o "$E/oracle/%k.wav"

# ---- harmonic and rhythmic fit ---------------------------------------------------------------
printf 'song\tsystem\tchord_fit\tbeat_fit\n' > "$E/fit.tsv"
for i in "${!songs[@]}"; do
    d=${songs[$i]}
    id=$(basename "$d")
    other=${songs[$(( (i + 1) % n ))]}
    for sys in generated coarse oracle random random_coded real real_coded; do
        case $sys in
            generated) a=$E/gen/$id.wav ;;
            oracle) a=$E/oracle/$id.wav ;;
            coarse) a=$E/coarse/$id.wav ;;
            random) a=$other/accomp.wav ;;
            random_coded) a=$E/rec6/$(basename "$other").wav ;;
            real) a=$d/accomp.wav ;;
            real_coded) a=$E/rec6/$id.wav ;;
        esac
        "$BIN/hafm-fit" -l "$d/labels.json" "$a" |
            jq -r --arg id "$id" --arg s $sys '[$id, $s, .chord_fit, .beat_fit] | @tsv' >> "$E/fit.tsv"
    done
done

# ---- FAD against the real test accompaniments ------------------------------------------------
head -n "$n" "$CORPUS/lists/heldout-valid.txt" | sed 's|$|/accomp.wav|' > "$E/random.list"
while read -r a; do
    v=$(basename "$(dirname "$a")")
    "$BIN/encodec-enc" -m "$MODELS/codec.safetensors" -b 6 "$a" |
        "$BIN/encodec-dec" -m "$MODELS/codec.safetensors" -f float -o "$E/valrec6/$v.wav"
done < "$E/random.list"
sed 's|$|/accomp.wav|' "$E/songs.txt" > "$E/real.list"
ls "$E"/gen/*.wav > "$E/generated.list"
ls "$E"/coarse/*.wav > "$E/coarse.list"
ls "$E"/oracle/*.wav > "$E/oracle.list"
ls "$E"/valrec6/*.wav > "$E/random_coded.list"
ls "$E"/rec6/*.wav > "$E/real_coded.list"
embed() {   # list, embedding, out.hafm
    case $2 in
        encodec) xargs "$BIN/hafm-from-audio" < "$1" | "$BIN/encodec-enc" -m "$MODELS/codec.safetensors" --latent=latent |
                     "$BIN/hafm-tracks" -k latent -o "$3" ;;
        mfcc) xargs "$BIN/hubert-tok" -F mfcc --cmvn none -e < "$1" | "$BIN/hafm-tracks" -k vocal.features -o "$3" ;;
    esac
}
printf 'embedding\tsystem\tfad\n' > "$E/fad.tsv"
for emb in encodec mfcc; do
    embed "$E/real.list" $emb "$E/real.$emb.hafm"
    for sys in generated coarse oracle random random_coded real_coded; do
        embed "$E/$sys.list" $emb "$E/$sys.$emb.hafm"
        f=$("$BIN/fad" -e features --no-cache -j "$E/real.$emb.hafm" "$E/$sys.$emb.hafm" | jq .fad)
        printf '%s\t%s\t%s\n' $emb $sys "$f" >> "$E/fad.tsv"
    done
done

# ---- summary ---------------------------------------------------------------------------------
python3 - "$E" "$WORK" <<'PY'
import csv, json, os, statistics, sys
E, W = sys.argv[1], sys.argv[2]
def rows(f): return list(csv.DictReader(open(os.path.join(E, f)), delimiter='\t'))
def mean(xs):
    xs = [float(x) for x in xs if x not in ('', 'null', 'nan')]
    return round(statistics.mean(xs), 4) if xs else None
out = {'songs': [l.strip() for l in open(os.path.join(E, 'songs.txt'))]}
c = rows('codec.tsv')
out['codec'] = {kb + ' kbps': {'codebooks': int(next(r['codebooks'] for r in c if r['kbps'] == kb)),
                               'si_sdr_db': mean(r['si_sdr'] for r in c if r['kbps'] == kb),
                               'mel_distance': mean(r['mel_distance'] for r in c if r['kbps'] == kb)}
                for kb in ('6', '3')}
fit = rows('fit.tsv')
out['fit'] = {s: {'chord_fit': mean(r['chord_fit'] for r in fit if r['system'] == s),
                  'beat_fit': mean(r['beat_fit'] for r in fit if r['system'] == s)}
              for s in ('generated', 'coarse', 'oracle', 'random', 'random_coded', 'real', 'real_coded')}
out['fad'] = {}
for r in rows('fad.tsv'):
    out['fad'].setdefault(r['embedding'], {})[r['system']] = float(r['fad'])
out['times_s'] = {r[0]: float(r[1]) for r in csv.reader(open(os.path.join(E, 'times.tsv')), delimiter='\t')}
out['stages'] = {}
for st in (1, 2, 3):
    f = os.path.join(W, 'stage%d' % st, 'log.jsonl')
    if not os.path.exists(f): continue
    log = [json.loads(l) for l in open(f)]
    val = [l for l in log if 'val_loss' in l]
    if val:
        out['stages']['stage%d' % st] = {'step': val[-1]['step'], 'val_loss': round(val[-1]['val_loss'], 4),
                                         'val_acc': round(val[-1]['val_acc'], 4)}
out['codebook_usage'] = [{'track': r['track'], 'codebook': int(r['codebook']), 'distinct': int(r['distinct']),
                          'top_share': float(r['top_share'])} for r in rows('usage.tsv')]
json.dump(out, open(os.path.join(E, 'eval.json'), 'w'), indent=1)
print(json.dumps(out, indent=1))
PY
