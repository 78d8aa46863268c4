#!/usr/bin/env bash
# EnCodec 24 kHz (full-size model), 10.0 s of audio, $HAFM_THREADS threads (2 by bench/run):
# encode at 6 kbps and decode, best of 10 (run-to-run spread is +-15% here), against PyTorch 1.13 running the same architecture.
# Baselines: 0.62 s encode / 0.72 s decode, measured by the project with Debian's python3-torch
# on this machine (reference code, oneDNN convolutions, 2 threads); bench/encodec_torch.py
# re-measures a faithful PyTorch model now, under the same load (ENCODEC_BENCH_TORCH=0 skips).
# Then the peak resident memory of encodec-enc / encodec-dec on a 10-minute input.
set -u
model=$HAFM_SHARED/golden/encodec/encodec24k_seed1234_full_hf.safetensors
benchbin=${HAFM_BENCHBIN:-build/release/bench}
if [ ! -f "$model" ]; then
    echo "bench encodec: skipped ($model is absent)" >&2
    exit 0
fi
th=${HAFM_THREADS:-2}
out=$("$benchbin/encodec_bench" "$model" 10 10 6) || exit 1
enc_s=$(awk '/^encode/ {print $2}' <<< "$out"); enc_gf=$(awk '/^encode/ {print $4}' <<< "$out")
dec_s=$(awk '/^decode/ {print $2}' <<< "$out"); dec_gf=$(awk '/^decode/ {print $4}' <<< "$out")
torch_enc= torch_dec=
if [ "${ENCODEC_BENCH_TORCH:-1}" != 0 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    t=$(/usr/bin/python3 "$(dirname "$0")/encodec_torch.py" 10 3 "$th") &&
        torch_enc=$(awk '/^encode/ {print $2}' <<< "$t") && torch_dec=$(awk '/^decode/ {print $2}' <<< "$t")
fi
load=$(cut -d' ' -f1 /proc/loadavg)
line() {   # name seconds gflop baseline torch_now
    awk -v n="$1" -v s="$2" -v g="$3" -v b="$4" -v tn="$5" -v th="$th" -v load="$load" 'BEGIN {
        now = tn != "" ? sprintf("; PyTorch 1.13 measured now, same load: %.3f s, speedup %.2fx", tn, tn / s) : ""
        printf "bench %s: %.3f s  (%d threads, load average %s; speedup vs the PyTorch 1.13 baseline %.2f s: %.2fx%s; %.1f GFLOP/s of ~200 sgemm peak)\n",
               n, s, th, load, b, b / s, now, g / s }'
}
line encodec_encode_10s_6kbps "$enc_s" "$enc_gf" 0.62 "$torch_enc"
line encodec_decode_10s "$dec_s" "$dec_gf" 0.72 "$torch_dec"

# Peak memory of the commands on 10 minutes of audio (streaming: bounded by the block, not the
# input; the model's weights are most of it).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sox -n -r 24000 -c 1 -b 16 "$tmp/in.wav" synth 600 sine 220 sine 587 gain -6 2>/dev/null || exit 1
rss() { awk -F: '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$1"; }
/usr/bin/time -v -o "$tmp/enc.time" "$HAFM_BIN/encodec-enc" -m "$model" "$tmp/in.wav" -o "$tmp/codes.hafm" || exit 1
/usr/bin/time -v -o "$tmp/dec.time" "$HAFM_BIN/encodec-dec" -m "$model" "$tmp/codes.hafm" -o "$tmp/out.wav" || exit 1
wall() { awk '/Elapsed \(wall clock\)/ {n = split($NF, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$1"; }
echo "bench encodec_enc_peak_rss_10min: $(rss "$tmp/enc.time") MiB  (600 s input, $(wall "$tmp/enc.time") s wall; weights alone ~90 MiB)"
echo "bench encodec_dec_peak_rss_10min: $(rss "$tmp/dec.time") MiB  (600 s input, $(wall "$tmp/dec.time") s wall)"
