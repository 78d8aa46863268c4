/* hafm/singer.h - a formant singing-voice synthesiser.
 *
 * Source-filter model: a Rosenberg glottal pulse (its flow derivative, with jitter, shimmer,
 * aspiration noise and a spectral tilt that brightens with loudness) drives a parallel bank of
 * five formant resonators whose frequencies, bandwidths and gains glide between vowel
 * targets; consonant-like onsets (plosive bursts,
 * fricative noise, nasal and liquid murmurs), inhalation noise before phrases, vibrato with an
 * onset delay, portamento between legato notes and a smoothed amplitude envelope make it sound
 * sung. The synthesiser runs at twice the output rate and decimates with a windowed-sinc
 * low-pass, so the glottal closure does not alias audibly.
 *
 * Deterministic: the same notes and parameters (seed included) give the same samples.
 */
#ifndef HAFM_SINGER_H
#define HAFM_SINGER_H

#include <stdint.h>

enum { HAFM_VOWEL_A, HAFM_VOWEL_E, HAFM_VOWEL_I, HAFM_VOWEL_O, HAFM_VOWEL_U, HAFM_VOWEL_COUNT };

/* Consonant sounded before a note's vowel; the vowel itself starts at the note's onset. */
enum {
    HAFM_CONS_NONE,
    HAFM_CONS_PLOSIVE,        /* t, k, p: closure, burst, aspiration */
    HAFM_CONS_VOICED_PLOSIVE, /* d, b, g: voice bar, weak burst */
    HAFM_CONS_NASAL,          /* m, n: nasal murmur */
    HAFM_CONS_FRICATIVE,      /* s, sh: hiss */
    HAFM_CONS_LIQUID,         /* l: voiced glide into the vowel */
    HAFM_CONS_COUNT
};

/* Formant sets (and the default range) of four voice types. */
enum { HAFM_VOICE_BASS, HAFM_VOICE_TENOR, HAFM_VOICE_ALTO, HAFM_VOICE_SOPRANO, HAFM_VOICE_COUNT };

typedef struct {
    double onset, offset;   /* seconds: the vowel starts at onset, the note releases at offset */
    double pitch;           /* MIDI note number (fractional allowed) */
    double velocity;        /* loudness, 0..1 */
    int vowel;              /* HAFM_VOWEL_* */
    int consonant;          /* HAFM_CONS_*, sounded just before onset */
    int phrase_start;       /* 1: a breath precedes the note and no portamento leads into it */
} hafm_sung_note;

typedef struct {
    int voice;              /* HAFM_VOICE_*: formant set */
    double vibrato_rate;    /* Hz */
    double vibrato_depth;   /* cents, peak deviation (half the peak-to-peak swing) */
    double vibrato_delay;   /* seconds after a note's onset before vibrato fades in */
    double vibrato_spread;  /* relative standard deviation of the rate from note to note */
    double drift;           /* cents, standard deviation of a slow random pitch wander */
    double portamento;      /* seconds of glide into a legato note */
    double scoop;           /* cents below the target a phrase's first note starts from */
    double jitter;          /* relative standard deviation of the glottal period */
    double shimmer;         /* relative standard deviation of the per-period amplitude */
    double breathiness;     /* aspiration noise relative to voicing, 0..1 */
    double breath_level;    /* inhalation noise before phrases, 0..1 */
    double open_quotient;   /* glottal open phase as a share of the period, 0.3..0.9 */
    uint64_t seed;          /* noise and perturbations */
} hafm_singer_params;

/* Typical parameters of a voice type (vibrato 5.5 Hz, 35 cents, ...). */
void hafm_singer_defaults(hafm_singer_params *p, int voice);

/* The default MIDI range [*lo, *hi] a singer of this voice type is given. */
void hafm_singer_range(int voice, int *lo, int *hi);

/* Target formants of a vowel for a voice type: frequency (Hz), bandwidth (Hz), gain (dB). */
void hafm_singer_formants(int voice, int vowel, double freq[5], double bw[5], double gain_db[5]);

const char *hafm_vowel_name(int vowel);
const char *hafm_consonant_name(int consonant);
const char *hafm_voice_name(int voice);

/* Renders notes (sorted by onset, not overlapping) into out[0..n) at sample_rate (8000..96000),
 * overwriting it. Returns 0, or -1 + hafm_error on invalid arguments. */
int hafm_singer_render(float *out, int64_t n, int sample_rate,
                       const hafm_sung_note *notes, int n_notes, const hafm_singer_params *p);

#endif
