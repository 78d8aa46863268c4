#!/usr/bin/env bash
# io: safetensors load rate and resampler speed; hafm-from-audio --rate against sox doing the
# same conversion with its own very-high-quality rate effect ("rate -v", by libsoxr's author),
# when sox is installed. Both read the same PCM16 WAV and write to /dev/null.
set -eu
"${HAFM_BENCHBIN:-build/release/bench}"/bench_io
song=$HAFM_SHARED/audio/song_demucs_test.mp3
command -v sox >/dev/null || exit 0
[ -f "$song" ] || exit 0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$HAFM_BIN"/hafm-from-audio "$song" | "$HAFM_BIN"/hafm-to-audio -f pcm16 -o "$tmp/song.wav"
best() {   # best wall time of 3 runs of "$@", in seconds
    local b=999 t0 t1 i
    for i in 1 2 3; do
        t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
        b=$(echo "$t1 - $t0" | bc -l | awk -v b=$b '{ print ($1 < b) ? $1 : b }')
    done
    echo "$b"
}
ours=$(best "$HAFM_BIN"/hafm-from-audio --rate 24000 "$tmp/song.wav")
theirs=$(best sox "$tmp/song.wav" -t f32 -r 24000 - rate -v)
awk -v o="$ours" -v s="$theirs" 'BEGIN { printf "bench from_audio_rate_24k: %.0f x real time  (%.2f x the speed of sox rate -v on the same 20 s stereo song)\n", 20 / o, s / o }'
