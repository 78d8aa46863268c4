#!/usr/bin/env bats
# hafm-train: learning a synthetic conditional task, bit-identical resume, MPI equality, curves,
# and the trained model generating with hafm-stage3.

load stages_common

CFG='{"stage":3,"n_layer":2,"d_model":64,"n_head":4,"d_ff":128,"rel_buckets":128,"rel_max_distance":256,"norm_eps":1e-6,"window_seconds":0.16,"conditions":[{"name":"accomp.coarse","codebooks":4,"vocab":16,"rate":75}],"target":{"name":"accomp.fine","codebooks":4,"codebook_offset":4,"vocab":16,"rate":75}}'

setup() {
    need_python
    T=$BATS_TMPDIR/train.$$
    mkdir -p "$T"
    export HAFM_THREADS=1
    echo "$CFG" > "$T/cfg.json"
    # fine codebook q = (5 coarse[q] + 1 + fine[q-1] mod 2) mod 16: condition plus context
    $PY "$STREAM_PY" synth "$T/train.hafm" --stage 3 --items 8 --seconds 3 --vocab 16 --seed 1
    $PY "$STREAM_PY" synth "$T/val.hafm" --stage 3 --items 2 --seconds 3 --vocab 16 --seed 2
    COMMON="--config $T/cfg.json --batch 4 --micro-batch 2 --lr 1e-2 --warmup 2 -q"
}

teardown() { rm -rf "$T"; }

losses() { grep -o '"step":[0-9]*,"loss":[-0-9.e]*' "$1"; }

@test "help, version, bad options, paper parameter counts" {
    run "$HAFM_BIN/hafm-train" --help
    [ "$status" -eq 0 ]
    [[ "$output" == usage:* ]]
    run "$HAFM_BIN/hafm-train" --version
    [ "$status" -eq 0 ]
    run "$HAFM_BIN/hafm-train" --frobnicate
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-train" --stage 4 -o "$T/x" "$T/train.hafm"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-train" --stage 1 --lr 2 -o "$T/x" "$T/train.hafm"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-train" -o "$T/x" "$T/train.hafm"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-train" --stage 1 --print-params
    [ "$output" = "stage 1: 38591212 parameters, window 10 s = 1001 tokens" ]
    run "$HAFM_BIN/hafm-train" --stage 2 --print-params
    [ "$output" = "stage 2: 42534136 parameters, window 10 s = 4001 tokens" ]
    run "$HAFM_BIN/hafm-train" --stage 3 --print-params
    [ "$output" = "stage 3: 44119800 parameters, window 10 s = 6001 tokens" ]
}

@test "a tiny model learns the synthetic task to >= 99% validation token accuracy within a minute" {
    # The minute is CPU time (user + system): on a shared machine the wall clock also counts
    # the other users; both are printed.
    TIMEFORMAT='%R %U %S'
    { time "$HAFM_BIN/hafm-train" --config "$T/cfg.json" --steps 250 --batch 16 --micro-batch 16 --lr 1e-2 --warmup 25 \
        --val "$T/val.hafm" --val-every 50 --log "$T/log.jsonl" --plot "$T/curves.png" --export "$T/model.safetensors" \
        -o "$T/ckpt.safetensors" -q "$T/train.hafm" ; } 2> "$T/time"
    read -r wall user sys < "$T/time"
    acc=$(grep val_acc "$T/log.jsonl" | tail -1 | sed 's/.*"val_acc":\([0-9.e-]*\).*/\1/')
    echo "# validation token accuracy $acc after 250 steps: ${user} s user + ${sys} s system CPU, ${wall} s wall" >&3
    awk -v a="$acc" 'BEGIN { exit !(a >= 0.99) }'
    awk -v u="$user" -v s="$sys" 'BEGIN { exit !(u + s <= 60) }'
    # curves: a PNG from the log
    [ "$(head -c 4 "$T/curves.png" | od -An -c | tr -d ' ')" = "211PNG" ]
    # the exported model generates the learned function with hafm-stage3 (greedy, no guidance),
    # across several generation windows
    $PY "$STREAM_PY" synth "$T/test.hafm" --stage 3 --items 1 --seconds 1 --vocab 16 --seed 9
    $PY -c "
import sys; sys.path.insert(0, '$(dirname "$STREAM_PY")')
import hafm_stream as h
(key, tr), = h.read_tracks('$T/test.hafm')
d, c = tr['accomp.coarse']
sys.stdout.buffer.write(h.header() + h.item(key, [('accomp.coarse', c, 75, 16, None)]))
" > "$T/cond.hafm"
    "$HAFM_BIN/hafm-stage3" -m "$T/model.safetensors" -s 1 -T 0 "$T/cond.hafm" > "$T/gen.hafm"
    $PY -c "
import sys; sys.path.insert(0, '$(dirname "$STREAM_PY")')
import hafm_stream as h
(_, want), = h.read_tracks('$T/test.hafm')
(_, got), = h.read_tracks('$T/gen.hafm')
a = (want['accomp.fine'][1] == got['accomp.fine'][1]).mean()
print('# generated fine tokens equal to the task function: %.4f' % a, file=sys.stderr)
sys.exit(0 if a >= 0.99 else 1)
"
}

@test "--export-dtype bf16/f16: half-size models, validated after rounding, that the stages load" {
    "$HAFM_BIN/hafm-train" $COMMON --steps 40 --val "$T/val.hafm" --val-every 20 --val-crops 4 --log "$T/log.jsonl" \
        --export "$T/f32.safetensors" -o "$T/c.safetensors" "$T/train.hafm"
    for dt in bf16 f16; do
        run "$HAFM_BIN/hafm-train" --config "$T/cfg.json" --batch 4 --micro-batch 2 --lr 1e-2 --warmup 2 --steps 40 \
            --val "$T/val.hafm" --val-every 20 --val-crops 4 --log "$T/log.$dt.jsonl" \
            --export "$T/$dt.safetensors" --export-dtype $dt -o "$T/c.$dt.safetensors" "$T/train.hafm"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"hafm-train: $dt weights: validation loss "*" (f32 "*"), token accuracy "* ]]
        $PY - "$T" $dt <<'PY'
import json, struct, sys, os
T, dt = sys.argv[1], sys.argv[2]
def header(p):
    f = open(p, 'rb'); n = struct.unpack('<Q', f.read(8))[0]; return json.loads(f.read(n))
h = header(os.path.join(T, dt + '.safetensors'))
dtypes = {v['dtype'] for k, v in h.items() if k != '__metadata__'}
assert dtypes == {dt.upper()}, dtypes
full = [json.loads(l) for l in open(os.path.join(T, 'log.%s.jsonl' % dt))]
val = [l for l in full if 'val_loss' in l][-1]
exp = [l for l in full if 'export_val_loss' in l]
assert len(exp) == 1 and exp[0]['export_dtype'] == dt and exp[0]['step'] == 40, exp
# the checkpoint holds f32 and the same training as the f32 run; rounding moves the loss a little
assert abs(exp[0]['export_val_loss'] - val['val_loss']) < 0.02 * val['val_loss'], (exp, val)
ratio = os.path.getsize(os.path.join(T, dt + '.safetensors')) / os.path.getsize(os.path.join(T, 'f32.safetensors'))
assert 0.45 < ratio < 0.6, ratio
print('# %s: validation loss %.5f, f32 %.5f' % (dt, exp[0]['export_val_loss'], val['val_loss']), file=sys.stderr)
PY
        cmp "$T/c.safetensors" "$T/c.$dt.safetensors"
        "$HAFM_BIN/hafm-tracks" -d accomp.fine "$T/val.hafm" | "$HAFM_BIN/hafm-stage3" -m "$T/$dt.safetensors" -s 1 -T 0 |
            "$HAFM_BIN/hafm-dump" | grep -q '"name":"accomp.fine"'

    done
    run "$HAFM_BIN/hafm-train" $COMMON --steps 2 --export "$T/x.safetensors" --export-dtype f64 -o "$T/x" "$T/train.hafm"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--export-dtype: expected f32, bf16 or f16, got 'f64'"* ]]
}

@test "--sampling: the model carries sampling defaults that hafm-stage3 uses unless options override them" {
    "$HAFM_BIN/hafm-train" $COMMON --steps 4 --val "$T/val.hafm" --val-crops 2 --export "$T/plain.safetensors" \
        -o "$T/c.safetensors" "$T/train.hafm"
    # re-export the finished checkpoint with defaults: no steps run, validated once
    "$HAFM_BIN/hafm-train" --resume "$T/c.safetensors" --val "$T/val.hafm" --log "$T/re.jsonl" -q \
        --sampling '{"temperature":0,"cfg_scale":1}' --export "$T/greedy.safetensors" -o "$T/c2.safetensors" "$T/train.hafm"
    [ "$(grep -c '"step":4,"val_loss"' "$T/re.jsonl")" -eq 1 ]
    ! grep -q '"loss"' "$T/re.jsonl"
    $PY - "$T/greedy.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]
cfg = json.loads(json.loads(f.read(n))['__metadata__']['config'])
assert cfg['sampling'] == {'cfg_scale': 1, 'temperature': 0}, cfg
PY
    "$HAFM_BIN/hafm-tracks" -d accomp.fine "$T/val.hafm" > "$T/in.hafm"
    gen() { "$HAFM_BIN/hafm-stage3" "$@" "$T/in.hafm" | "$HAFM_BIN/hafm-dump" -f | sed -e 's/"model":"[^"]*",//' -e 's/"seed":[0-9]*//'; }
    gen -m "$T/greedy.safetensors" -S 1 > "$T/g1"
    gen -m "$T/plain.safetensors" -S 2 -T 0 -s 1 > "$T/g2"
    cmp "$T/g1" "$T/g2"
    grep -q '"cfg_scale":1.0,"temperature":0.0,"top_k":250,"top_p":1.0,' "$T/g1"
    # options still win over the model's defaults
    gen -m "$T/greedy.safetensors" -S 1 -T 1 -k 3 | grep -q '"cfg_scale":1.0,"temperature":1.0,"top_k":3,'
    run "$HAFM_BIN/hafm-train" $COMMON --steps 2 --sampling '{"top_k":-1}' -o "$T/x" "$T/train.hafm"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--sampling: model config: sampling: cfg_scale must be 0..100, temperature 0..10"* ]]
    run "$HAFM_BIN/hafm-train" $COMMON --steps 2 --sampling 'temperature=1' -o "$T/x" "$T/train.hafm"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--sampling: model config: 'sampling' must be an object"* ]]
}

@test "--aligned-conditioning: a format-2 model that resumes, generates, and is refused with --init" {
    "$HAFM_BIN/hafm-train" $COMMON --aligned-conditioning --steps 4 --stop-at 2 --log "$T/a.jsonl" \
        -o "$T/a.safetensors" "$T/train.hafm"
    "$HAFM_BIN/hafm-train" --resume "$T/a.safetensors" --log "$T/a.jsonl" -q --export "$T/aligned.safetensors" \
        -o "$T/a.safetensors" "$T/train.hafm"
    "$HAFM_BIN/hafm-train" $COMMON --aligned-conditioning --steps 4 --log "$T/b.jsonl" -o "$T/b.safetensors" "$T/train.hafm"
    [ "$(losses "$T/a.jsonl")" = "$(losses "$T/b.jsonl")" ]
    "$HAFM_BIN/hafm-train" $COMMON --steps 4 --log "$T/p.jsonl" -o "$T/p.safetensors" "$T/train.hafm"
    [ "$(losses "$T/a.jsonl")" != "$(losses "$T/p.jsonl")" ]   # it changes the model
    $PY - "$T/aligned.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]
meta = json.loads(f.read(n))['__metadata__']
assert meta['format_version'] == '2', meta['format_version']
assert json.loads(meta['config'])['aligned_conditioning'] is True
PY
    "$HAFM_BIN/hafm-tracks" -d accomp.fine "$T/val.hafm" > "$T/in.hafm"
    "$HAFM_BIN/hafm-stage3" -m "$T/aligned.safetensors" -S 1 "$T/in.hafm" > "$T/out.hafm"
    "$HAFM_BIN/hafm-dump" -f "$T/out.hafm" | grep -q '"name":"accomp.fine"'
    run "$HAFM_BIN/hafm-train" --init "$T/p.safetensors" --aligned-conditioning --steps 2 -q -o "$T/x" "$T/train.hafm"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--init keeps the model's architecture"* ]]
}

@test "--codebook-weights: equal weights change nothing, others change training, resume keeps them, bad lists refused" {
    "$HAFM_BIN/hafm-train" $COMMON --steps 6 --log "$T/p.jsonl" -o "$T/p.safetensors" "$T/train.hafm"
    "$HAFM_BIN/hafm-train" $COMMON --steps 6 --codebook-weights 2,2,2,2 --log "$T/e.jsonl" -o "$T/e.safetensors" "$T/train.hafm"
    [ "$(losses "$T/p.jsonl")" = "$(losses "$T/e.jsonl")" ]
    "$HAFM_BIN/hafm-train" $COMMON --steps 6 --codebook-weights 4,1,1,1 --log "$T/a.jsonl" -o "$T/a.safetensors" "$T/train.hafm"
    # the first step's loss is the same unweighted cross-entropy; the update differs
    [ "$(losses "$T/p.jsonl" | head -1)" = "$(losses "$T/a.jsonl" | head -1)" ]
    [ "$(losses "$T/p.jsonl")" != "$(losses "$T/a.jsonl")" ]
    "$HAFM_BIN/hafm-train" $COMMON --steps 6 --codebook-weights 4,1,1,1 --stop-at 3 --log "$T/b.jsonl" -o "$T/b.safetensors" "$T/train.hafm"
    "$HAFM_BIN/hafm-train" --resume "$T/b.safetensors" -q --log "$T/b.jsonl" -o "$T/b.safetensors" "$T/train.hafm"
    [ "$(losses "$T/a.jsonl")" = "$(losses "$T/b.jsonl")" ]
    cmp "$T/a.safetensors" "$T/b.safetensors"
    run "$HAFM_BIN/hafm-train" $COMMON --steps 2 --codebook-weights 4,1,1 -o "$T/x" "$T/train.hafm"
    [ "$status" -eq 2 ]
    [[ "$output" == "hafm-train: --codebook-weights: the target has 4 codebooks, got 3 weights"* ]]
    run "$HAFM_BIN/hafm-train" $COMMON --steps 2 --codebook-weights 0,0,0,0 -o "$T/x" "$T/train.hafm"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-train" $COMMON --steps 2 --codebook-weights 1,-1,1,1 -o "$T/x" "$T/train.hafm"
    [ "$status" -eq 2 ]
    run "$HAFM_BIN/hafm-train" $COMMON --steps 2 --codebook-weights 1,x,1,1 -o "$T/x" "$T/train.hafm"
    [ "$status" -eq 2 ]
    [ ! -e "$T/x" ]
}

@test "kill and resume: the loss trajectory and the final checkpoint equal an uninterrupted run" {
    "$HAFM_BIN/hafm-train" $COMMON --steps 12 --log "$T/a.jsonl" -o "$T/a.safetensors" "$T/train.hafm"
    "$HAFM_BIN/hafm-train" $COMMON --steps 12 --stop-at 5 --log "$T/b.jsonl" -o "$T/b.safetensors" "$T/train.hafm"
    [ "$(grep -c '"loss"' "$T/b.jsonl")" -eq 5 ]
    "$HAFM_BIN/hafm-train" --resume "$T/b.safetensors" -q --log "$T/b.jsonl" -o "$T/b.safetensors" "$T/train.hafm"
    [ "$(losses "$T/a.jsonl")" = "$(losses "$T/b.jsonl")" ]
    cmp "$T/a.safetensors" "$T/b.safetensors"
}

@test "mpirun -np 2 at the same global batch equals one process within float tolerance" {
    command -v mpirun >/dev/null || skip "mpirun is not installed"
    "$HAFM_BIN/hafm-train" $COMMON --steps 8 --log "$T/one.jsonl" -o "$T/one.safetensors" "$T/train.hafm"
    mpirun --allow-run-as-root --oversubscribe -np 2 "$HAFM_BIN/hafm-train" $COMMON --steps 8 \
        --log "$T/two.jsonl" -o "$T/two.safetensors" "$T/train.hafm"
    paste -d' ' <(losses "$T/one.jsonl" | sed 's/.*://') <(losses "$T/two.jsonl" | sed 's/.*://') > "$T/pairs"
    [ "$(wc -l < "$T/pairs")" -eq 8 ]
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "# max loss difference over 8 steps: %.3g\n", m > "/dev/stderr"; exit !(m < 1e-5) }' "$T/pairs"
}

@test "bad input: corrupt checkpoint, plain model, no usable items, wrong vocabulary" {
    "$HAFM_BIN/hafm-train" $COMMON --steps 2 --export "$T/plain.safetensors" -o "$T/c.safetensors" "$T/train.hafm"
    head -c 20000 "$T/c.safetensors" > "$T/bad.safetensors"
    run "$HAFM_BIN/hafm-train" --resume "$T/bad.safetensors" -o "$T/r.safetensors" "$T/train.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == hafm-train:* ]]
    [ ! -e "$T/r.safetensors" ]
    run "$HAFM_BIN/hafm-train" --resume "$T/plain.safetensors" -o "$T/r.safetensors" "$T/train.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"not a resumable checkpoint"* ]]
    random_stream "$T/short.hafm" accomp.coarse:4:75:16:5 accomp.fine:4:75:16:5:4
    run "$HAFM_BIN/hafm-train" $COMMON --steps 2 -o "$T/r.safetensors" "$T/short.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"no training item is at least one window"* ]]
    random_stream "$T/v.hafm" accomp.coarse:4:75:17:50 accomp.fine:4:75:16:50:4
    run "$HAFM_BIN/hafm-train" $COMMON --steps 2 -o "$T/r.safetensors" "$T/v.hafm"
    [ "$status" -eq 1 ]
    [[ "$output" == *"expected vocabulary 16, got 17"* ]]
    [ ! -e "$T/r.safetensors" ]
}
