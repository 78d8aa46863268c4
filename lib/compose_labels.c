/* compose_labels.c - a composed song as MIDI, singer input and labels (see hafm/compose.h). */
#include "hafm/compose.h"
#include "hafm/common.h"
#include "compose_internal.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- MIDI --------------------------------------------------------------------------------- */
/* Sharps (negative: flats) of the major key on each pitch class. */
static const int major_key_sharps[12] = { 0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5 };
/* The major key that shares a mode's key signature, as semitones above the tonic. */
static const int parent_major[HAFM_MODE_COUNT] = { 0, 3, 10, 5 };
/* Channel volume and reverb send per part: a plausible balance before the mix. */
static const int part_volume[HAFM_PART_COUNT] = { 100, 108, 96, 84, 104 };
static const int part_reverb[HAFM_PART_COUNT] = { 40, 20, 40, 70, 30 };

hafm_smf *hafm_song_midi(const hafm_song *s, unsigned part_mask)
{
    hafm_smf *m = hafm_smf_new(HAFM_PPQ);
    int conductor = hafm_smf_add_track(m, s->id);
    hafm_smf_tempo(m, conductor, 0, s->bpm * (double)s->beat_ticks / HAFM_PPQ);
    static const int num[HAFM_METER_COUNT] = { 4, 3, 6 }, den[HAFM_METER_COUNT] = { 4, 4, 8 };
    hafm_smf_time_signature(m, conductor, 0, num[s->meter], den[s->meter], s->meter == HAFM_METER_6_8 ? 36 : 24);
    hafm_smf_key_signature(m, conductor, 0, major_key_sharps[(s->tonic + parent_major[s->mode]) % 12],
                           s->mode == HAFM_MODE_MINOR);
    for (int p = 0; p < HAFM_PART_COUNT; p++) {
        if (!(part_mask & (1u << p)))
            continue;
        const hafm_part *part = &s->parts[p];
        int t = hafm_smf_add_track(m, hafm_part_name(p));
        hafm_smf_program(m, t, 0, part->channel, part->program);
        hafm_smf_control(m, t, 0, part->channel, 7, part_volume[p]);
        hafm_smf_control(m, t, 0, part->channel, 91, part_reverb[p]);
        for (int i = 0; i < part->n; i++)
            hafm_smf_note(m, t, part->notes[i].tick, part->notes[i].dur, part->channel,
                          part->notes[i].pitch, part->notes[i].velocity);
    }
    hafm_smf_set_end(m, s->end_tick + (int64_t)(s->tail * s->bpm * (double)s->beat_ticks / 60.0));
    return m;
}

int hafm_song_sung_notes(const hafm_song *s, hafm_sung_note **out)
{
    const hafm_part *v = &s->parts[HAFM_PART_VOCAL];
    hafm_sung_note *n = hafm_xcalloc((size_t)v->n + 1, sizeof *n);
    for (int i = 0; i < v->n; i++) {
        n[i].onset = hafm_song_seconds(s, v->notes[i].tick);
        n[i].offset = hafm_song_seconds(s, v->notes[i].tick + v->notes[i].dur);
        n[i].pitch = v->notes[i].pitch;
        n[i].velocity = v->notes[i].velocity / 127.0;
        n[i].vowel = s->syllables[i].vowel;
        n[i].consonant = s->syllables[i].consonant;
        n[i].phrase_start = s->syllables[i].phrase_start;
    }
    *out = n;
    return v->n;
}

/* ---- labels --------------------------------------------------------------------------------- */
double hafm__us(double seconds) { return floor(seconds * 1e6 + 0.5) / 1e6; }

cJSON *hafm__labels_object(const hafm_song *s, int sample_rate)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddNumberToObject(o, "seed", s->seed);
    cJSON_AddNumberToObject(o, "index", s->index);
    cJSON_AddStringToObject(o, "split", hafm_split_name(s->split));
    cJSON_AddNumberToObject(o, "sample_rate", sample_rate);
    cJSON_AddNumberToObject(o, "duration", hafm__us(hafm_song_duration(s)));
    cJSON_AddNumberToObject(o, "music_end", hafm__us(hafm_song_seconds(s, s->end_tick)));
    cJSON_AddStringToObject(o, "key", hafm_pitch_class_name(s->tonic));
    cJSON_AddNumberToObject(o, "tonic_pc", s->tonic);
    cJSON_AddStringToObject(o, "mode", hafm_mode_name(s->mode));
    cJSON_AddNumberToObject(o, "tempo_bpm", s->bpm);
    cJSON_AddNumberToObject(o, "quarter_bpm", s->bpm * (double)s->beat_ticks / HAFM_PPQ);
    cJSON_AddStringToObject(o, "meter", hafm_meter_name(s->meter));
    cJSON_AddNumberToObject(o, "beats_per_bar", s->beats_per_bar);
    cJSON_AddStringToObject(o, "style", hafm_style_name(s->style));

    cJSON *beats = cJSON_AddArrayToObject(o, "beats");
    cJSON *downbeats = cJSON_AddArrayToObject(o, "downbeats");
    cJSON *beat_chords = cJSON_AddArrayToObject(o, "beat_chords");
    int ci = 0;
    for (int64_t t = 0; t < s->end_tick; t += s->beat_ticks) {
        cJSON_AddItemToArray(beats, cJSON_CreateNumber(hafm__us(hafm_song_seconds(s, t))));
        if (t % s->bar_ticks == 0)
            cJSON_AddItemToArray(downbeats, cJSON_CreateNumber(hafm__us(hafm_song_seconds(s, t))));
        while (ci + 1 < s->n_chords && s->chords[ci + 1].start <= t)
            ci++;
        char label[24];
        snprintf(label, sizeof label, "%s:%s", hafm_pitch_class_name(s->chords[ci].root),
                 hafm_chord_quality_name(s->chords[ci].quality));
        cJSON_AddItemToArray(beat_chords, cJSON_CreateString(label));
    }
    cJSON *chords = cJSON_AddArrayToObject(o, "chords");
    for (int i = 0; i < s->n_chords; i++) {
        const hafm_chord *c = &s->chords[i];
        cJSON *j = cJSON_CreateObject();
        char label[24];
        snprintf(label, sizeof label, "%s:%s", hafm_pitch_class_name(c->root), hafm_chord_quality_name(c->quality));
        cJSON_AddNumberToObject(j, "start", hafm__us(hafm_song_seconds(s, c->start)));
        cJSON_AddNumberToObject(j, "end", hafm__us(hafm_song_seconds(s, c->end)));
        cJSON_AddStringToObject(j, "label", label);
        cJSON_AddStringToObject(j, "root", hafm_pitch_class_name(c->root));
        cJSON_AddNumberToObject(j, "root_pc", c->root);
        cJSON_AddStringToObject(j, "quality", hafm_chord_quality_name(c->quality));
        cJSON_AddNumberToObject(j, "degree", c->degree + 1);
        int pcs[4], n = hafm_chord_pitch_classes(c, pcs);
        cJSON_AddItemToObject(j, "pitch_classes", cJSON_CreateIntArray(pcs, n));
        cJSON_AddItemToArray(chords, j);
    }
    cJSON *sections = cJSON_AddArrayToObject(o, "sections");
    for (int i = 0; i < s->n_sections; i++) {
        const hafm_section *sec = &s->sections[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", hafm_section_name(sec->kind));
        cJSON_AddNumberToObject(j, "start", hafm__us(hafm_song_seconds(s, sec->start)));
        cJSON_AddNumberToObject(j, "end", hafm__us(hafm_song_seconds(s, sec->end)));
        cJSON_AddNumberToObject(j, "density", sec->density);
        cJSON *parts = cJSON_AddArrayToObject(j, "parts");
        for (int p = 0; p < HAFM_PART_COUNT; p++)
            if (sec->parts & (1u << p))
                cJSON_AddItemToArray(parts, cJSON_CreateString(hafm_part_name(p)));
        cJSON_AddItemToArray(sections, j);
    }
    cJSON *melody = cJSON_AddArrayToObject(o, "melody");
    const hafm_part *v = &s->parts[HAFM_PART_VOCAL];
    for (int i = 0; i < v->n; i++) {
        cJSON *j = cJSON_CreateObject();
        char syl[8];
        snprintf(syl, sizeof syl, "%s%s", s->syllables[i].melisma ? "-" : hafm_consonant_name(s->syllables[i].consonant),
                 hafm_vowel_name(s->syllables[i].vowel));
        cJSON_AddNumberToObject(j, "onset", hafm__us(hafm_song_seconds(s, v->notes[i].tick)));
        cJSON_AddNumberToObject(j, "offset", hafm__us(hafm_song_seconds(s, v->notes[i].tick + v->notes[i].dur)));
        cJSON_AddNumberToObject(j, "pitch", v->notes[i].pitch);
        cJSON_AddNumberToObject(j, "velocity", v->notes[i].velocity);
        cJSON_AddStringToObject(j, "syllable", syl);
        cJSON_AddBoolToObject(j, "phrase_start", s->syllables[i].phrase_start);
        cJSON_AddItemToArray(melody, j);
    }
    cJSON *singer = cJSON_AddObjectToObject(o, "singer");
    cJSON_AddStringToObject(singer, "voice", hafm_voice_name(s->singer.voice));
    int range[2] = { s->voice_lo, s->voice_hi };
    cJSON_AddItemToObject(singer, "range", cJSON_CreateIntArray(range, 2));
    cJSON_AddNumberToObject(singer, "vibrato_rate", hafm__us(s->singer.vibrato_rate));
    cJSON_AddNumberToObject(singer, "vibrato_depth_cents", hafm__us(s->singer.vibrato_depth));
    cJSON_AddNumberToObject(singer, "vibrato_delay", hafm__us(s->singer.vibrato_delay));
    cJSON_AddNumberToObject(singer, "portamento", hafm__us(s->singer.portamento));
    cJSON_AddNumberToObject(singer, "breathiness", hafm__us(s->singer.breathiness));
    cJSON *inst = cJSON_AddArrayToObject(o, "instruments");
    for (int p = HAFM_PART_BASS; p < HAFM_PART_COUNT; p++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "part", hafm_part_name(p));
        cJSON_AddNumberToObject(j, "channel", s->parts[p].channel);
        cJSON_AddNumberToObject(j, "program", s->parts[p].program);
        cJSON_AddNumberToObject(j, "notes", s->parts[p].n);
        cJSON_AddItemToArray(inst, j);
    }
    return o;
}

char *hafm__print_labels(cJSON *o)
{
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text)
        hafm_error("out of memory printing labels");
    return text;
}

char *hafm_song_labels_json(const hafm_song *s, int sample_rate)
{
    return hafm__print_labels(hafm__labels_object(s, sample_rate));
}
