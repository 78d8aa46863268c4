#!/usr/bin/env bats
# hafm-compose: procedurally composed paired songs. Rendering needs fluidsynth and the General
# MIDI SoundFont; those tests skip without them. Songs are kept short (-l 5: six bars).

setup() {
    HC=$HAFM_BIN/hafm-compose
    T=$BATS_TEST_TMPDIR
    SF=${HAFM_SOUNDFONT:-/usr/share/sounds/sf2/FluidR3_GM.sf2}
}

need_fluidsynth() {
    command -v fluidsynth > /dev/null || skip "fluidsynth is not installed"
    [ -r "$SF" ] || skip "no SoundFont at $SF"
}

@test "--help prints the usage on stdout and exits 0" {
    run "$HC" --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "usage: hafm-compose "* ]]
    [[ "$output" == *"--length SEC"* ]]
}

@test "--version" {
    run "$HC" --version
    [ "$status" -eq 0 ]
    [[ "$output" == "hafm-compose (hafm) "* ]]
}

@test "bad options exit 2" {
    run "$HC" --bogus -o "$T/x"
    [ "$status" -eq 2 ]
    [[ "$output" == *"hafm-compose: unknown option '--bogus'"* ]]
    run "$HC" -s -1 -o "$T/x"
    [ "$status" -eq 2 ]
    [[ "$output" == *"-s: expected an integer in [0, 4294967295], got '-1'"* ]]
    run "$HC" -l 2 -o "$T/x"
    [ "$status" -eq 2 ]
    run "$HC" --split dev --list
    [ "$status" -eq 2 ]
    run "$HC" --valid 0.6 --test 0.6 --list
    [ "$status" -eq 2 ]
    run "$HC" -i 4294967295 -n 2 --list
    [ "$status" -eq 2 ]
    run "$HC" --no-audio
    [ "$status" -eq 2 ]
    [[ "$output" == *"no output directory"* ]]
    run "$HC" -o "$T/x" extra
    [ "$status" -eq 2 ]
    [ ! -e "$T/x" ]
}

@test "--list: index, id, split, directory; splits from (seed, index) alone" {
    run "$HC" --list -s 1 -n 400 -o out
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 400 ]
    [[ "${lines[0]}" == $'0\ts1-000000\ttrain\tout/train/s1-000000' ]]
    # the same songs listed from another first index say the same
    run "$HC" --list -s 1 -i 100 -n 5 -o out
    [ "$output" = "$("$HC" --list -s 1 -n 400 -o out | sed -n '101,105p')" ]
    n_test=$("$HC" --list -s 1 -n 400 --split test | wc -l)
    [ "$n_test" -gt 5 ] && [ "$n_test" -lt 40 ]
    [ "$("$HC" --list -s 1 -n 400 --split test | cut -f3 | sort -u)" = test ]
    [ "$("$HC" --list -s 1 -n 400 --valid 0 --test 0 | cut -f3 | sort -u)" = train ]
}

@test "--no-audio: song.mid and labels.json, byte-identical per seed, different across seeds" {
    run "$HC" -q --no-audio -s 5 -i 2 -l 5 --flat -o "$T/a"
    [ "$status" -eq 0 ]
    run "$HC" -q --no-audio -s 5 -i 2 -l 5 --flat -o "$T/b"
    run "$HC" -q --no-audio -s 6 -i 2 -l 5 --flat -o "$T/c"
    cmp "$T/a/s5-000002/song.mid" "$T/b/s5-000002/song.mid"
    cmp "$T/a/s5-000002/labels.json" "$T/b/s5-000002/labels.json"
    ! cmp -s "$T/a/s5-000002/song.mid" "$T/c/s6-000002/song.mid"
    [ "$(head -c 4 "$T/a/s5-000002/song.mid")" = MThd ]
    [ ! -e "$T/a/s5-000002/vocal.wav" ]
    if command -v jq > /dev/null; then
        jq -e '.key and .mode and .tempo_bpm >= 70 and .tempo_bpm <= 160 and (.beats | length) > 0
               and (.chords | length) > 0 and (.melody | length) > 0 and .melody[0].pitch > 0' \
            "$T/a/s5-000002/labels.json"
    fi
}

@test "a rendered song: three WAVs of one length, mix = vocal + accomp, identical on a re-run" {
    need_fluidsynth
    run "$HC" -q -t 2 -s 1 -i 7 -l 5 --stems --flat -o "$T/a"
    [ "$status" -eq 0 ]
    d=$T/a/s1-000007
    for f in vocal accomp mix; do [ -s "$d/$f.wav" ]; done
    [ -s "$d/stems/drums.wav" ] || [ -s "$d/stems/keys.wav" ]
    [ "$(stat -c %s "$d/vocal.wav")" -eq "$(stat -c %s "$d/mix.wav")" ]
    [ "$(stat -c %s "$d/accomp.wav")" -eq "$(stat -c %s "$d/mix.wav")" ]
    ls -a "$d" | { ! grep -q tmp; }
    if command -v python3 > /dev/null; then
        python3 - "$d" <<'PY'
import sys, wave, struct, json
d = sys.argv[1]
def pcm(name):
    w = wave.open(f"{d}/{name}.wav")
    assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 24000
    return struct.unpack(f"<{w.getnframes()}h", w.readframes(w.getnframes()))
v, a, m = pcm("vocal"), pcm("accomp"), pcm("mix")
lab = json.load(open(f"{d}/labels.json"))
assert len(m) == lab["mix"]["samples"], (len(m), lab["mix"]["samples"])
worst = max(abs(x + y - z) for x, y, z in zip(v, a, m))
assert worst == 0, worst
assert max(map(abs, v)) > 1000 and max(map(abs, a)) > 1000
PY
    fi
    # song.hafm holds the same samples as the WAV files, keyed by the song id
    for f in vocal accomp mix; do
        "$HAFM_BIN/hafm-from-audio" -k s1-000007 -n $f "$d/$f.wav" > "$T/$f.hafm"
        "$HAFM_BIN/hafm-tracks" -k $f "$d/song.hafm" > "$T/$f.song.hafm"
        run "$HAFM_BIN/hafm-cmp" "$T/$f.hafm" "$T/$f.song.hafm"
        [ "$status" -eq 0 ]
        [[ "$output" == *"s1-000007 $f: "*"max_diff 0"* ]]
    done
    "$HAFM_BIN/hafm-dump" < "$d/song.hafm" | grep -q '"attrs":{"role":"accompaniment"}'
    run "$HC" -q -t 1 -s 1 -i 7 -l 5 --stems --flat -o "$T/b"
    [ "$status" -eq 0 ]
    for f in vocal.wav accomp.wav mix.wav song.mid song.hafm labels.json stems/bass.wav; do
        cmp "$T/a/s1-000007/$f" "$T/b/s1-000007/$f"
    done
}

@test "a complete song is skipped, -f renders it again" {
    run "$HC" -s 1 -i 3 -l 5 --no-audio -o "$T/a"
    [ "$status" -eq 0 ]
    touch -d '2001-01-01' "$T/a/train/s1-000003/labels.json"
    run "$HC" -s 1 -i 3 -l 5 --no-audio -o "$T/a"
    [ "$status" -eq 0 ]
    [[ "$output" == *"complete, skipped"* ]]
    [ "$(stat -c %Y "$T/a/train/s1-000003/labels.json")" -lt 1000000000 ]
    run "$HC" -q -f -s 1 -i 3 -l 5 --no-audio -o "$T/a"
    [ "$(stat -c %Y "$T/a/train/s1-000003/labels.json")" -gt 1000000000 ]
}

@test "fluidsynth missing or failing, no SoundFont, unwritable output: exit 1, no song files" {
    run "$HC" -q -s 1 -i 3 -l 5 --flat -o "$T/a" --fluidsynth "$T/no-such-program"
    [ "$status" -eq 1 ]
    [[ "$output" == *"hafm-compose: s1-000003: cannot run '$T/no-such-program': No such file or directory"* ]]
    [ -z "$(ls -A "$T/a/s1-000003")" ]
    run "$HC" -q -s 1 -i 3 -l 5 --flat -o "$T/a" --fluidsynth false
    [ "$status" -eq 1 ]
    [[ "$output" == *"false failed on the"*"stem (exit status 1)"* ]]
    [ -z "$(ls -A "$T/a/s1-000003")" ]
    run "$HC" -q -s 1 -i 3 -l 5 --flat -o "$T/a" --soundfont "$T/none.sf2"
    [ "$status" -eq 1 ]
    [[ "$output" == *"soundfont $T/none.sf2: No such file or directory"* ]]
    [ -z "$(ls -A "$T/a/s1-000003")" ]
    touch "$T/file"
    run "$HC" -q --no-audio -o "$T/file/sub"
    [ "$status" -eq 1 ]
    [[ "$output" == "hafm-compose: s1-000000: cannot create directory $T/file/sub"* ]]
}

@test "a failed forced re-render leaves the song incomplete, not stale" {
    run "$HC" -q --no-audio -s 1 -i 3 -l 5 --flat -o "$T/a"
    [ -e "$T/a/s1-000003/labels.json" ]
    run "$HC" -q -f -s 1 -i 3 -l 5 --flat -o "$T/a" --fluidsynth false
    [ "$status" -eq 1 ]
    [ ! -e "$T/a/s1-000003/labels.json" ]
}

@test "the rendered accompaniment plays the labelled chords on the labelled beats" {
    need_fluidsynth
    py=
    for p in /usr/bin/python3 python3; do
        if "$p" -c 'import numpy' 2> /dev/null; then py=$p; break; fi
    done
    [ -n "$py" ] || skip "no python3 with numpy"
    run "$HC" -q -t 2 -s 2 -i 1 -l 12 --flat -o "$T/a"
    [ "$status" -eq 0 ]
    run "$py" - "$T/a/s2-000001" <<'PY'
import sys, json, wave
import numpy as np
d = sys.argv[1]
lab = json.load(open(f"{d}/labels.json"))
w = wave.open(f"{d}/accomp.wav")
sr = w.getframerate()
x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
hits = share = n = 0
for c in lab["chords"]:
    seg = x[int(c["start"] * sr):int(c["end"] * sr)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
    f = np.fft.rfftfreq(len(seg), 1 / sr)
    m = (f > 80) & (f < 2000)
    chroma = np.bincount(np.round(12 * np.log2(f[m] / 440) + 69).astype(int) % 12, weights=spec[m], minlength=12)
    chroma /= chroma.sum()
    share += chroma[c["pitch_classes"]].sum()
    best = max(((r, q) for r in range(12) for q in ((0, 4, 7), (0, 3, 7))),
               key=lambda rq: chroma[[(rq[0] + i) % 12 for i in rq[1]]].sum())
    minor = c["quality"] in ("min", "min7", "dim", "hdim7")
    hits += best == (c["root_pc"], (0, 3, 7) if minor else (0, 4, 7))
    n += 1
hop = 240
frames = np.stack([x[i:i + 1024] * np.hanning(1024) for i in range(0, len(x) - 1024, hop)])
s = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
flux = np.concatenate([[0], np.maximum(np.diff(s, axis=0), 0).sum(1)])
t = (np.arange(len(flux)) * hop + 512) / sr
def strength(times):
    return np.mean([flux[np.abs(t - b) < 0.05].max() for b in times if b < t[-1] - 0.1])
beats = np.array(lab["beats"])
ratio = strength(beats) / strength(beats + 0.5 * (beats[1] - beats[0]))
print(f"chords {n}: template match {hits / n:.2f}, chroma share on chord tones {share / n:.2f}; "
      f"onset strength on beats / between beats {ratio:.2f}")
assert hits / n >= 0.7 and share / n >= 0.6 and ratio > 1.2
PY
    echo "# $output" >&3
    [ "$status" -eq 0 ]
}
