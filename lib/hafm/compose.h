/* hafm/compose.h - procedural paired songs: a composer, labels and a renderer.
 *
 * hafm_song_compose() writes a whole song from (seed, index): key, mode, meter, tempo, a form of
 * sections, a functional chord progression with cadences, a sung melody that fits the chords
 * and the meter, and an arrangement of bass, drums and two harmonic parts that changes between
 * sections. Everything comes from one counter-based random generator seeded by (seed, index),
 * so a song does not depend on which other songs are made, nor in what order.
 *
 * hafm_song_render() turns a song into time-aligned audio: the accompaniment stems through the
 * fluidsynth program and a General MIDI SoundFont, the vocal through the formant singer
 * (hafm/singer.h), and writes vocal.wav, accomp.wav, mix.wav, song.mid and labels.json.
 */
#ifndef HAFM_COMPOSE_H
#define HAFM_COMPOSE_H

#include <stdint.h>

#include "midi.h"
#include "singer.h"

#define HAFM_PPQ 480              /* MIDI ticks per quarter note */

enum { HAFM_MODE_MAJOR, HAFM_MODE_MINOR, HAFM_MODE_DORIAN, HAFM_MODE_MIXOLYDIAN, HAFM_MODE_COUNT };
enum { HAFM_METER_4_4, HAFM_METER_3_4, HAFM_METER_6_8, HAFM_METER_COUNT };
enum { HAFM_SPLIT_TRAIN, HAFM_SPLIT_VALID, HAFM_SPLIT_TEST, HAFM_SPLIT_COUNT };
enum { HAFM_SECTION_INTRO, HAFM_SECTION_VERSE, HAFM_SECTION_CHORUS, HAFM_SECTION_BRIDGE,
       HAFM_SECTION_OUTRO, HAFM_SECTION_COUNT };
/* Parts; each accompaniment part is one stem. */
enum { HAFM_PART_VOCAL, HAFM_PART_BASS, HAFM_PART_KEYS, HAFM_PART_PAD, HAFM_PART_DRUMS, HAFM_PART_COUNT };
/* Chord qualities, named as in Harte's chord syntax (maj, min, dim, aug, maj7, 7, min7, hdim7). */
enum { HAFM_CHORD_MAJ, HAFM_CHORD_MIN, HAFM_CHORD_DIM, HAFM_CHORD_AUG, HAFM_CHORD_MAJ7,
       HAFM_CHORD_DOM7, HAFM_CHORD_MIN7, HAFM_CHORD_HDIM7, HAFM_CHORD_COUNT };

typedef struct {
    int64_t tick, dur;            /* MIDI ticks */
    int pitch, velocity;          /* MIDI note number, 1..127 */
} hafm_note;

typedef struct {
    hafm_note *notes;             /* sorted by tick */
    int n, cap;
    int channel, program;         /* GM channel (drums: 9, program = kit) and program */
} hafm_part;

typedef struct {
    int64_t start, end;           /* ticks */
    int root;                     /* pitch class 0..11 (C = 0) */
    int quality;                  /* HAFM_CHORD_* */
    int degree;                   /* scale degree of the root, 0..6 */
} hafm_chord;

typedef struct {
    int kind;                     /* HAFM_SECTION_* */
    int64_t start, end;           /* ticks, whole bars */
    unsigned parts;               /* bit p set: part p plays */
    int density;                  /* 0 sparse, 1 normal, 2 full */
} hafm_section;

typedef struct {
    int vowel, consonant;         /* HAFM_VOWEL_*, HAFM_CONS_* */
    int phrase_start;             /* first note of a phrase: breath before it */
    int melisma;                  /* continues the previous note's syllable */
} hafm_syllable;

typedef struct {
    double length;                /* target length in seconds; the song has whole bars [25] */
    double valid_share, test_share;  /* split shares [0.05, 0.05] */
} hafm_compose_opts;

typedef struct {
    uint32_t seed, index;
    char id[32];                  /* "s<seed>-<index, 6 digits>" */
    int split;                    /* HAFM_SPLIT_* */
    int tonic, mode, meter;       /* tonic pitch class; HAFM_MODE_*, HAFM_METER_* */
    int style;                    /* groove family, see hafm_style_name() */
    double bpm;                   /* counted beats per minute (6/8: dotted quarters) */
    int beats_per_bar;            /* 4, 3 or 2 (6/8) */
    int64_t beat_ticks, bar_ticks;
    int n_bars;
    int64_t end_tick;             /* end of the music (the last bar) */
    double tail;                  /* seconds of release after end_tick in the audio */
    hafm_section *sections; int n_sections;
    hafm_chord *chords; int n_chords;
    hafm_part parts[HAFM_PART_COUNT];
    hafm_syllable *syllables;     /* one per vocal note */
    hafm_singer_params singer;
    int voice_lo, voice_hi;       /* the singer's range (MIDI) */
    double vocal_db;              /* vocal loudness relative to the accompaniment in the mix */
} hafm_song;

void hafm_compose_defaults(hafm_compose_opts *o);
/* 0 ok; -1 + hafm_error on invalid options. */
int  hafm_song_compose(hafm_song *song, uint32_t seed, uint32_t index, const hafm_compose_opts *o);
void hafm_song_free(hafm_song *song);

/* The split and id of a song, without composing it. */
int  hafm_song_split(uint32_t seed, uint32_t index, const hafm_compose_opts *o);
void hafm_song_id(char id[32], uint32_t seed, uint32_t index);

double hafm_song_seconds(const hafm_song *song, int64_t tick);
double hafm_song_duration(const hafm_song *song);     /* audio length: music + tail */

/* Pitch classes of a chord (3 or 4); returns the count. */
int hafm_chord_pitch_classes(const hafm_chord *c, int pcs[4]);

const char *hafm_mode_name(int mode);
const char *hafm_meter_name(int meter);
const char *hafm_split_name(int split);
const char *hafm_section_name(int kind);
const char *hafm_part_name(int part);
const char *hafm_chord_quality_name(int quality);
const char *hafm_pitch_class_name(int pc);
const char *hafm_style_name(int style);

/* A MIDI file of the parts whose bits are set in part_mask (tempo, meter and key included). */
hafm_smf *hafm_song_midi(const hafm_song *song, unsigned part_mask);
/* The vocal part as singer input (times in seconds); returns the count, *out malloc'd. */
int hafm_song_sung_notes(const hafm_song *song, hafm_sung_note **out);
/* labels.json text (malloc'd): key, mode, tempo, meter, beats, downbeats, chords, sections,
 * melody, instruments. NULL + hafm_error on failure. */
char *hafm_song_labels_json(const hafm_song *song, int sample_rate);

/* ---- rendering ----------------------------------------------------------------------------- */
typedef struct {
    const char *soundfont;        /* [$HAFM_SOUNDFONT, else /usr/share/sounds/sf2/FluidR3_GM.sf2] */
    const char *fluidsynth;       /* program [$HAFM_FLUIDSYNTH, else "fluidsynth"] */
    int sample_rate;              /* [24000] */
    int keep_stems;               /* also write stems/<part>.wav and stems/<part>.mid */
    int no_audio;                 /* write only song.mid and labels.json */
    int jobs;                     /* fluidsynth runs at a time [0: hafm_get_threads()] */
} hafm_render_opts;

void hafm_render_defaults(hafm_render_opts *o);
/* Writes the song's files into dir (created if missing). Files appear atomically; labels.json is
 * written last, so its presence marks a complete song. */
int hafm_song_render(const hafm_song *song, const char *dir, const hafm_render_opts *o);

#endif
