#!/usr/bin/env bash
# Corpus rendering speed: hafm-compose on four songs of seed 1 (composition, four fluidsynth
# stems, the formant singer, mixing, files), two fluidsynth runs at a time. Skips without
# fluidsynth and the SoundFont.
set -u
hc=${HAFM_BIN:-bin}/hafm-compose
sf=${HAFM_SOUNDFONT:-/usr/share/sounds/sf2/FluidR3_GM.sf2}
if ! command -v fluidsynth > /dev/null || [ ! -r "$sf" ]; then
    echo "bench corpus: skipped (fluidsynth or $sf missing)" >&2
    exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
n=4
start=$(date +%s.%N)
/usr/bin/time -f "%U %S" -o "$dir/cpu" "$hc" -q -t 2 --seed 1 --count $n -o "$dir/songs" || exit 1
end=$(date +%s.%N)
audio=$(find "$dir/songs" -name labels.json -exec grep -h '"duration"' {} + | tr -d , | awk '{ s += $2 } END { print s }')
read -r user sys < "$dir/cpu"
load=$(cut -d' ' -f1 /proc/loadavg)
awk -v n=$n -v t0="$start" -v t1="$end" -v a="$audio" -v u="$user" -v s="$sys" -v l="$load" 'BEGIN {
    wall = t1 - t0
    printf "bench corpus-render: %.1f songs/min  (%.1fx realtime on 2 cores, %.1f s songs, %.2f CPU-s per song, load average %s)\n",
           60 * n / wall, a / wall, a / n, (u + s) / n, l
}'
