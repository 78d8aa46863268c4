/* test_compose.c - the song composer: harmony, melody, meter, range, determinism, MIDI, labels. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hafm/common.h"
#include "hafm/compose.h"

#define N_SONGS 60

static int pc_of(int pitch) { return ((pitch % 12) + 12) % 12; }

static const hafm_chord *chord_at(const hafm_song *s, int64_t tick)
{
    for (int i = 0; i < s->n_chords; i++)
        if (tick >= s->chords[i].start && tick < s->chords[i].end)
            return &s->chords[i];
    return NULL;
}

static int chord_has(const hafm_chord *c, int pitch)
{
    int pcs[4], n = hafm_chord_pitch_classes(c, pcs);
    for (int i = 0; i < n; i++)
        if (pcs[i] == pc_of(pitch))
            return 1;
    return 0;
}

static void compose(hafm_song *s, uint32_t seed, uint32_t index)
{
    hafm_compose_opts o;
    hafm_compose_defaults(&o);
    assert_int_equal(hafm_song_compose(s, seed, index, &o), 0);
}

/* Melody notes that start on a beat are chord tones: always on downbeats, mostly on the others. */
static void test_strong_beats_are_chord_tones(void **state)
{
    (void)state;
    long down = 0, down_ct = 0, beat = 0, beat_ct = 0, other = 0, other_ct = 0;
    for (uint32_t i = 0; i < N_SONGS; i++) {
        hafm_song s;
        compose(&s, 7, i);
        const hafm_part *v = &s.parts[HAFM_PART_VOCAL];
        assert_true(v->n > 0);
        for (int k = 0; k < v->n; k++) {
            const hafm_chord *c = chord_at(&s, v->notes[k].tick);
            assert_non_null(c);
            int ct = chord_has(c, v->notes[k].pitch);
            if (v->notes[k].tick % s.bar_ticks == 0) {
                down++;
                down_ct += ct;
            } else if (v->notes[k].tick % s.beat_ticks == 0) {
                beat++;
                beat_ct += ct;
            } else {
                other++;
                other_ct += ct;
            }
        }
        hafm_song_free(&s);
    }
    double down_share = (double)down_ct / down, beat_share = (double)beat_ct / beat;
    double other_share = (double)other_ct / other;
    printf("# OK (chord tones) downbeats %.3f (%ld notes), other beats %.3f (%ld), off-beats %.3f (%ld)\n",
           down_share, down, beat_share, beat, other_share, other);
    assert_true(down_share == 1.0);
    assert_true(beat_share >= 0.85);
    /* passing and neighbour tones make the off-beats less consonant than the beats */
    assert_true(other_share < beat_share);
}

/* Every sung note lies in the singer's range; the melody moves mostly by step and never by more
 * than an octave; phrases are separated by breaths. */
static void test_melody_range_and_shape(void **state)
{
    (void)state;
    long steps = 0, moves = 0, max_leap = 0;
    double longest_phrase = 0;
    for (uint32_t i = 0; i < N_SONGS; i++) {
        hafm_song s;
        compose(&s, 3, i);
        const hafm_part *v = &s.parts[HAFM_PART_VOCAL];
        int phrases = 0;
        double phrase_onset = 0, longest = 0;
        assert_true(s.voice_hi - s.voice_lo <= 24);
        for (int k = 0; k < v->n; k++) {
            assert_in_range(v->notes[k].pitch, s.voice_lo, s.voice_hi);
            phrases += s.syllables[k].phrase_start;
            if (s.syllables[k].phrase_start)
                phrase_onset = hafm_song_seconds(&s, v->notes[k].tick);
            longest = fmax(longest, hafm_song_seconds(&s, v->notes[k].tick + v->notes[k].dur) - phrase_onset);
            if (k && !s.syllables[k].phrase_start) {
                long d = labs((long)v->notes[k].pitch - v->notes[k - 1].pitch);
                steps += d <= 2;
                moves++;
                max_leap = d > max_leap ? d : max_leap;
            }
            if (k)  /* monophonic: no overlaps */
                assert_true(v->notes[k].tick >= v->notes[k - 1].tick + v->notes[k - 1].dur);
        }
        assert_true(phrases >= 1);
        assert_true(s.syllables[0].phrase_start);
        longest_phrase = fmax(longest_phrase, longest);
        hafm_song_free(&s);
    }
    printf("# OK (melody) stepwise share %.3f of %ld moves, largest leap %ld semitones, longest phrase %.1f s\n",
           (double)steps / moves, moves, max_leap, longest_phrase);
    assert_true(longest_phrase <= 10);
    assert_true((double)steps / moves >= 0.5);
    assert_true(max_leap <= 12);
}

/* Meter and grid: whole bars, chords tiling the song on beat boundaries, notes on the grid and
 * inside the song, tempi 70..160, every meter and mode in use, the song ending on the tonic. */
static void test_meter_and_form(void **state)
{
    (void)state;
    int meters[HAFM_METER_COUNT] = { 0 }, modes[HAFM_MODE_COUNT] = { 0 };
    double min_len = 1e9, max_len = 0;
    for (uint32_t i = 0; i < N_SONGS; i++) {
        hafm_song s;
        compose(&s, 11, i);
        meters[s.meter]++;
        modes[s.mode]++;
        static const int bpb[HAFM_METER_COUNT] = { 4, 3, 2 };
        assert_int_equal(s.beats_per_bar, bpb[s.meter]);
        assert_int_equal(s.bar_ticks, s.beats_per_bar * s.beat_ticks);
        assert_true(s.bpm >= 70 && s.bpm <= 160);
        assert_int_equal(s.end_tick, (int64_t)s.n_bars * s.bar_ticks);
        double len = hafm_song_seconds(&s, s.end_tick);
        min_len = fmin(min_len, len);
        max_len = fmax(max_len, len);
        assert_int_equal(s.sections[0].start, 0);
        assert_int_equal(s.sections[s.n_sections - 1].end, s.end_tick);
        for (int k = 0; k < s.n_sections; k++) {
            assert_int_equal(s.sections[k].start % s.bar_ticks, 0);
            if (k)
                assert_int_equal(s.sections[k].start, s.sections[k - 1].end);
        }
        assert_int_equal(s.chords[0].start, 0);
        assert_int_equal(s.chords[s.n_chords - 1].end, s.end_tick);
        for (int k = 0; k < s.n_chords; k++) {
            assert_int_equal(s.chords[k].start % s.beat_ticks, 0);
            assert_true(s.chords[k].end > s.chords[k].start);
            if (k)
                assert_int_equal(s.chords[k].start, s.chords[k - 1].end);
        }
        const hafm_chord *last = &s.chords[s.n_chords - 1];
        assert_int_equal(last->root, s.tonic);
        for (int p = 0; p < HAFM_PART_COUNT; p++)
            for (int k = 0; k < s.parts[p].n; k++) {
                const hafm_note *nt = &s.parts[p].notes[k];
                assert_true(nt->tick >= 0 && nt->dur > 0);
                assert_true(nt->tick + nt->dur <= s.end_tick + s.bar_ticks);
                assert_in_range(nt->velocity, 1, 127);
                if (p == HAFM_PART_VOCAL)
                    assert_int_equal(nt->tick % (HAFM_PPQ / 2), 0);
            }
        /* the vocal sings in verses and choruses only when they say so */
        const hafm_part *v = &s.parts[HAFM_PART_VOCAL];
        for (int k = 0; k < v->n; k++) {
            int sec = 0;
            while (v->notes[k].tick >= s.sections[sec].end)
                sec++;
            assert_true(s.sections[sec].parts & (1u << HAFM_PART_VOCAL));
        }
        hafm_song_free(&s);
    }
    printf("# OK (form) meters 4/4 %d, 3/4 %d, 6/8 %d; modes %d %d %d %d; lengths %.1f..%.1f s\n",
           meters[0], meters[1], meters[2], modes[0], modes[1], modes[2], modes[3], min_len, max_len);
    for (int m = 0; m < HAFM_METER_COUNT; m++)
        assert_true(meters[m] > 0);
    for (int m = 0; m < HAFM_MODE_COUNT; m++)
        assert_true(modes[m] > 0);
    assert_true(min_len >= 15 && max_len <= 40);
}

/* Cadences: the chord before the final tonic is a dominant or subdominant function. */
static void test_harmony(void **state)
{
    (void)state;
    int dominant = 0, total = 0;
    for (uint32_t i = 0; i < N_SONGS; i++) {
        hafm_song s;
        compose(&s, 5, i);
        int k = s.n_chords - 1;
        while (k > 0 && s.chords[k].degree == 0)
            k--;
        const hafm_chord *pen = &s.chords[k];
        assert_true(pen->degree == 3 || pen->degree == 4 || pen->degree == 6);
        for (int k = 0; k < s.n_chords; k++) {
            /* a minor key's V is major: the borrowed leading tone */
            if (s.mode == HAFM_MODE_MINOR && s.chords[k].degree == 4) {
                assert_true(s.chords[k].quality == HAFM_CHORD_MAJ || s.chords[k].quality == HAFM_CHORD_DOM7);
                dominant++;
            }
            total++;
        }
        hafm_song_free(&s);
    }
    printf("# OK (harmony) %d chords, %d minor-key dominants checked\n", total, dominant);
    assert_true(dominant > 0);
}

/* Arrangement: parts change between sections, a chorus is at least as full as the verses, drums
 * fill the last beat(s) of a section with toms when the next section follows, and every
 * section has a harmonic part (keys or pad) so the chords are always heard. */
static void test_arrangement(void **state)
{
    (void)state;
    int fills = 0, section_ends = 0, varied = 0;
    for (uint32_t i = 0; i < N_SONGS; i++) {
        hafm_song s;
        compose(&s, 13, i);
        unsigned verse = 0, chorus = 0;
        int distinct = 0;
        for (int k = 0; k < s.n_sections; k++) {
            const hafm_section *sec = &s.sections[k];
            assert_true(sec->parts & ((1u << HAFM_PART_KEYS) | (1u << HAFM_PART_PAD)));
            if (sec->kind == HAFM_SECTION_VERSE)
                verse |= sec->parts;
            if (sec->kind == HAFM_SECTION_CHORUS)
                chorus |= sec->parts;
            distinct += k && sec->parts != s.sections[k - 1].parts;
            if (k + 1 < s.n_sections && (sec->parts & (1u << HAFM_PART_DRUMS))) {
                section_ends++;
                const hafm_part *d = &s.parts[HAFM_PART_DRUMS];
                for (int n = 0; n < d->n; n++)
                    if (d->notes[n].tick >= sec->end - s.beat_ticks && d->notes[n].tick < sec->end &&
                        (d->notes[n].pitch == 50 || d->notes[n].pitch == 47 || d->notes[n].pitch == 41)) {
                        fills++;
                        break;
                    }
            }
        }
        if (chorus)   /* every part of the verses plays in the chorus */
            assert_int_equal(verse & ~chorus, 0);
        varied += distinct > 0;
        hafm_song_free(&s);
    }
    printf("# OK (arrangement) %d of %d songs change parts between sections; fills at %d of %d drummed section ends\n",
           varied, N_SONGS, fills, section_ends);
    assert_int_equal(fills, section_ends);
    assert_true(varied == N_SONGS);
}

/* Long songs (up to the 3600 s limit) keep their form: sections and chords tile the song. */
static void test_long_song(void **state)
{
    (void)state;
    hafm_compose_opts o;
    hafm_compose_defaults(&o);
    o.length = 3600;
    hafm_song s;
    assert_int_equal(hafm_song_compose(&s, 1, 0, &o), 0);
    double len = hafm_song_seconds(&s, s.end_tick);
    assert_true(fabs(len - 3600) < 20);
    assert_int_equal(s.sections[s.n_sections - 1].end, s.end_tick);
    assert_int_equal(s.chords[s.n_chords - 1].end, s.end_tick);
    const hafm_part *v = &s.parts[HAFM_PART_VOCAL];
    assert_true(hafm_song_seconds(&s, v->notes[v->n - 1].tick) > 3500);
    printf("# OK (long song) %.1f s, %d sections, %d chords, %d sung notes\n", len, s.n_sections, s.n_chords, v->n);
    hafm_song_free(&s);
}

static char *midi_bytes(const hafm_song *s, size_t *len)
{
    char *buf = NULL;
    FILE *fp = open_memstream(&buf, len);
    assert_non_null(fp);
    hafm_smf *m = hafm_song_midi(s, (1u << HAFM_PART_COUNT) - 1);
    assert_int_equal(hafm_smf_write(m, fp), 0);
    hafm_smf_free(m);
    fclose(fp);
    return buf;
}

/* The same (seed, index) gives the same song byte for byte; another seed or index does not. */
static void test_determinism(void **state)
{
    (void)state;
    hafm_song a, b, c, d;
    compose(&a, 42, 9);
    compose(&b, 42, 9);
    compose(&c, 43, 9);
    compose(&d, 42, 10);
    size_t la, lb, lc, ld;
    char *ma = midi_bytes(&a, &la), *mb = midi_bytes(&b, &lb), *mc = midi_bytes(&c, &lc), *md = midi_bytes(&d, &ld);
    assert_int_equal(la, lb);
    assert_memory_equal(ma, mb, la);
    assert_true(la != lc || memcmp(ma, mc, la) != 0);
    assert_true(la != ld || memcmp(ma, md, la) != 0);
    char *ja = hafm_song_labels_json(&a, 24000), *jb = hafm_song_labels_json(&b, 24000);
    char *jc = hafm_song_labels_json(&c, 24000);
    assert_string_equal(ja, jb);
    assert_string_not_equal(ja, jc);
    printf("# OK (determinism) MIDI %zu bytes identical; seed 43 and index 10 differ\n", la);
    free(ma); free(mb); free(mc); free(md);
    free(ja); free(jb); free(jc);
    hafm_song_free(&a); hafm_song_free(&b); hafm_song_free(&c); hafm_song_free(&d);
}

/* Splits come from (seed, index) alone, in the asked proportions. */
static void test_splits(void **state)
{
    (void)state;
    hafm_compose_opts o;
    hafm_compose_defaults(&o);
    int count[HAFM_SPLIT_COUNT] = { 0 }, n = 4000;
    for (int i = 0; i < n; i++) {
        int sp = hafm_song_split(1, (uint32_t)i, &o);
        assert_int_equal(sp, hafm_song_split(1, (uint32_t)i, &o));
        count[sp]++;
    }
    printf("# OK (splits) train %d, valid %d, test %d of %d\n", count[0], count[1], count[2], n);
    assert_in_range(count[HAFM_SPLIT_VALID], 140, 260);
    assert_in_range(count[HAFM_SPLIT_TEST], 140, 260);
    hafm_song s;
    compose(&s, 1, 17);
    assert_int_equal(s.split, hafm_song_split(1, 17, &o));
    hafm_song_free(&s);
    o.valid_share = 0;
    o.test_share = 1;
    assert_int_equal(hafm_song_split(1, 17, &o), HAFM_SPLIT_TEST);
    o.length = 2;
    assert_int_equal(hafm_song_compose(&s, 1, 1, &o), -1);
}

/* Reads a variable-length quantity. */
static uint32_t vlq(const uint8_t **p)
{
    uint32_t v = 0;
    do
        v = (v << 7) | (**p & 0x7F);
    while (*(*p)++ & 0x80);
    return v;
}

/* The SMF parses back: header, one chunk per track, end-of-track last, every note-on matched by
 * a note-off, a note-off before a note-on of the same pitch at the same tick. */
static void test_midi_file(void **state)
{
    (void)state;
    hafm_song s;
    compose(&s, 2, 4);
    size_t len;
    uint8_t *m = (uint8_t *)midi_bytes(&s, &len);
    assert_memory_equal(m, "MThd\0\0\0\6\0\1", 10);
    int tracks = m[10] << 8 | m[11];
    assert_int_equal(tracks, 1 + HAFM_PART_COUNT);
    assert_int_equal(m[12] << 8 | m[13], HAFM_PPQ);
    const uint8_t *p = m + 14;
    int notes_on = 0, notes_expected = 0;
    for (int t = 0; t < tracks; t++) {
        assert_memory_equal(p, "MTrk", 4);
        uint32_t n = (uint32_t)p[4] << 24 | p[5] << 16 | p[6] << 8 | p[7];
        const uint8_t *q = p + 8, *end = q + n;
        int held[128] = { 0 }, ended = 0;
        while (q < end) {
            assert_false(ended);
            vlq(&q);
            uint8_t st = *q++;
            if (st == 0xFF) {
                uint8_t type = *q++;
                uint32_t l = vlq(&q);
                q += l;
                ended = type == 0x2F;
            } else if ((st & 0xF0) == 0x90) {
                assert_int_equal(held[q[0]], 0);     /* released before struck again */
                held[q[0]] = 1;
                notes_on++;
                q += 2;
            } else if ((st & 0xF0) == 0x80) {
                held[q[0]] = 0;
                q += 2;
            } else if ((st & 0xF0) == 0xC0) {
                q += 1;
            } else {
                q += 2;
            }
        }
        assert_true(ended);
        assert_ptr_equal(q, end);
        p = end;
    }
    assert_ptr_equal(p, m + len);
    for (int pp = 0; pp < HAFM_PART_COUNT; pp++)
        notes_expected += s.parts[pp].n;
    /* drums and chords may strike a pitch still held: those are merged, never doubled */
    assert_true(notes_on <= notes_expected && notes_on > notes_expected * 9 / 10);
    printf("# OK (midi) %zu bytes, %d tracks, %d of %d notes struck\n", len, tracks, notes_on, notes_expected);
    free(m);
    hafm_song_free(&s);
}

/* labels.json parses and agrees with the song: beats, downbeats, chords, melody. */
static void test_labels(void **state)
{
    (void)state;
    hafm_song s;
    compose(&s, 9, 1);
    char *text = hafm_song_labels_json(&s, 24000);
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, s.id);
    assert_string_equal(cJSON_GetObjectItem(j, "mode")->valuestring, hafm_mode_name(s.mode));
    assert_string_equal(cJSON_GetObjectItem(j, "meter")->valuestring, hafm_meter_name(s.meter));
    int beats = cJSON_GetArraySize(cJSON_GetObjectItem(j, "beats"));
    assert_int_equal(beats, s.n_bars * s.beats_per_bar);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "downbeats")), s.n_bars);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "beat_chords")), beats);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "chords")), s.n_chords);
    cJSON *mel = cJSON_GetObjectItem(j, "melody");
    assert_int_equal(cJSON_GetArraySize(mel), s.parts[HAFM_PART_VOCAL].n);
    double beat_sec = 60.0 / s.bpm;
    double b1 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "beats"), 1)->valuedouble;
    assert_true(fabs(b1 - beat_sec) < 1e-6);
    cJSON *n0 = cJSON_GetArrayItem(mel, 0);
    assert_true(fabs(cJSON_GetObjectItem(n0, "onset")->valuedouble - hafm_song_seconds(&s, s.parts[HAFM_PART_VOCAL].notes[0].tick)) < 1e-6);
    assert_int_equal(cJSON_GetObjectItem(n0, "pitch")->valueint, s.parts[HAFM_PART_VOCAL].notes[0].pitch);
    cJSON_Delete(j);
    free(text);
    hafm_song_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strong_beats_are_chord_tones),
        cmocka_unit_test(test_melody_range_and_shape),
        cmocka_unit_test(test_meter_and_form),
        cmocka_unit_test(test_harmony),
        cmocka_unit_test(test_arrangement),
        cmocka_unit_test(test_long_song),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_midi_file),
        cmocka_unit_test(test_labels),
    };
    return cmocka_run_group_tests_name("compose", tests, NULL, NULL);
}
