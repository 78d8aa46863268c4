#!/usr/bin/env bash
# fad / vsep benchmarks (2 threads):
#   FAD between two sets of 1000 x 128 frames (statistics + distance); target: well under 1 s.
#   One MDX-Net forward pass on a 5.9 s chunk ([1, 4, 2048, 256], the vocals model of the golden
#   data) against the same network in Debian's PyTorch 1.13 on CPU, measured in the same run
#   (bench/mdxnet_torch.py). Wall and process CPU seconds are both printed: on a shared machine
#   the CPU seconds are the steadier comparison.
#   REPET-SIM on a synthetic 3-minute 44.1 kHz stereo song; target: faster than real time.
set -u
B=${HAFM_BENCHBIN:-build/release/bench}/bench_fadvsep
MDX=$HAFM_SHARED/golden/mdxnet/mdx_vocals_seed3.onnx

read -r _ fad_s _ _ < <("$B" fad)
awk -v s="$fad_s" 'BEGIN { printf "bench fad_1000x128: %.4f s  (%.1f%% of the 1 s target)\n", s, 100 * s }'

if [ -f "$MDX" ]; then
    read -r _ ours _ ours_cpu < <("$B" mdx "$MDX" 256)
    if torch=$(/usr/bin/python3 bench/mdxnet_torch.py 256 2 2>/dev/null); then
        read -r _ theirs _ theirs_cpu <<< "$torch"
        awk -v a="$ours" -v b="$theirs" -v ac="$ours_cpu" -v bc="$theirs_cpu" 'BEGIN {
            printf "bench mdxnet_chunk_5.9s: %.2f s  (PyTorch 1.13 same run %.2f s: %.2fx faster; cpu %.2f s vs %.2f s: %.2fx)\n",
                a, b, b / a, ac, bc, bc / ac }'
    else
        awk -v a="$ours" -v ac="$ours_cpu" 'BEGIN {
            printf "bench mdxnet_chunk_5.9s: %.2f s  (cpu %.2f s; PyTorch baseline unavailable, issue figure ~4.4 s: %.2fx)\n", a, ac, 4.4 / a }'
    fi
else
    echo "bench mdxnet_chunk_5.9s: skipped (no \$HAFM_SHARED/golden/mdxnet)" >&2
fi

read -r _ rep _ rep_cpu < <("$B" repet 180)
awk -v s="$rep" -v c="$rep_cpu" 'BEGIN {
    printf "bench repet_sim_3min_stereo: %.1f s  (%.1fx faster than real time; cpu %.1f s)\n", s, 180 / s, c }'
