#!/usr/bin/env bash
# encodec-train throughput in seconds of audio per second of wall time (the first step, with the
# k-means codebook initialisation, is not timed), 2 threads, against the same architecture and
# losses in PyTorch 1.13 (bench/ref/encodec_train_torch.py) on the same machine at the same time.
#   small: --small config (4 filters, D 32, 8 x 512 codebooks); full: the 24 kHz model (32 filters,
#   D 128, 32 x 1024); "recon": L1 + mel + RVQ; "adv": + MS-STFT discriminator and balancer.
set -u
bin=${HAFM_BIN:-bin}
threads=${HAFM_THREADS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# one second of the shipped test recording, or the golden synthetic input
clip=${HAFM_SHARED:-../shared}/audio/encodec_test_24k.wav
[ -f "$clip" ] || clip=tests/data/codectrain/clip.wav

run_case() {   # name, batch, steps, hafm args..., --, torch args...
    local name=$1 batch=$2 steps=$3
    shift 3
    local hargs=() targs=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do hargs+=("$1"); shift; done
    shift
    targs=("$@")
    "$bin/encodec-train" -q -t "$threads" --batch "$batch" --segment 1 --steps "$steps" --log "$tmp/$name.jsonl" \
        "${hargs[@]}" -o "$tmp/$name.safetensors" "$clip" || return 1
    local ours theirs
    ours=$(awk -F'"sec":' -v b="$batch" 'NF > 1 && NR > 1 { s += $2 + 0; n++ } END { printf "%.3f", n * b / s }' "$tmp/$name.jsonl")
    theirs=$(/usr/bin/python3 bench/ref/encodec_train_torch.py --threads "$threads" --batch "$batch" --segment 1 \
        --steps $((steps - 1)) "${targs[@]}") || return 1
    echo "bench codectrain_$name: $ours s_audio/s  ($(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2fx PyTorch 1.13 at %.3f s_audio/s", a / b, b }'))"
}

# sizes kept small: the discriminator costs ~130 GFLOP per second of audio and step
run_case small_recon 4 3 --small --no-adversarial -- --small
run_case small_adv 1 2 --small -- --small --adversarial
run_case full_recon 2 2 --no-adversarial --
run_case full_adv 1 2 -- --adversarial
