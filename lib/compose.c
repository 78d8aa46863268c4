/* compose.c - the procedural song composer (see hafm/compose.h). */
#include "hafm/compose.h"
#include "hafm/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- random numbers: splitmix64 over a (seed, index) key ------------------------------------- */
typedef struct { uint64_t s; } rng64;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rng_next(rng64 *r) { return mix64(r->s += 0x9E3779B97F4A7C15ull); }
static double rng_uniform(rng64 *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static int rng_int(rng64 *r, int n) { return (int)(rng_uniform(r) * n); }   /* 0..n-1 */
static int rng_chance(rng64 *r, double p) { return rng_uniform(r) < p; }
static double rng_range(rng64 *r, double lo, double hi) { return lo + (hi - lo) * rng_uniform(r); }

/* Index drawn with the given weights. */
static int rng_pick(rng64 *r, const double *w, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += w[i];
    double x = rng_uniform(r) * sum;
    for (int i = 0; i < n; i++) {
        if (x < w[i])
            return i;
        x -= w[i];
    }
    return n - 1;
}

/* Independent generators per purpose, so the split never depends on the composer's draws. */
static rng64 song_rng(uint32_t seed, uint32_t index, uint64_t purpose)
{
    rng64 r = { mix64(((uint64_t)seed << 32 | index) ^ mix64(purpose + 0x6A09E667F3BCC909ull)) };
    return r;
}

/* ---- names ----------------------------------------------------------------------------------- */
static const char *const mode_names[HAFM_MODE_COUNT] = { "major", "minor", "dorian", "mixolydian" };
static const char *const meter_names[HAFM_METER_COUNT] = { "4/4", "3/4", "6/8" };
static const char *const split_names[HAFM_SPLIT_COUNT] = { "train", "valid", "test" };
static const char *const section_names[HAFM_SECTION_COUNT] = { "intro", "verse", "chorus", "bridge", "outro" };
static const char *const part_names[HAFM_PART_COUNT] = { "vocal", "bass", "keys", "pad", "drums" };
static const char *const quality_names[HAFM_CHORD_COUNT] = { "maj", "min", "dim", "aug", "maj7", "7", "min7", "hdim7" };
static const char *const pc_names[12] = { "C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B" };

enum { STYLE_POP, STYLE_ROCK, STYLE_BALLAD, STYLE_WALTZ, STYLE_SIX_EIGHT, STYLE_COUNT };
static const char *const style_names[STYLE_COUNT] = { "pop", "rock", "ballad", "waltz", "6/8 ballad" };

#define NAME(tab, n, i) ((i) >= 0 && (i) < (n) ? tab[i] : "?")
const char *hafm_mode_name(int m) { return NAME(mode_names, HAFM_MODE_COUNT, m); }
const char *hafm_meter_name(int m) { return NAME(meter_names, HAFM_METER_COUNT, m); }
const char *hafm_split_name(int s) { return NAME(split_names, HAFM_SPLIT_COUNT, s); }
const char *hafm_section_name(int k) { return NAME(section_names, HAFM_SECTION_COUNT, k); }
const char *hafm_part_name(int p) { return NAME(part_names, HAFM_PART_COUNT, p); }
const char *hafm_chord_quality_name(int q) { return NAME(quality_names, HAFM_CHORD_COUNT, q); }
const char *hafm_pitch_class_name(int pc) { return NAME(pc_names, 12, pc); }
const char *hafm_style_name(int s) { return NAME(style_names, STYLE_COUNT, s); }

/* ---- harmony ----------------------------------------------------------------------------------- */
static const int mode_scale[HAFM_MODE_COUNT][7] = {
    { 0, 2, 4, 5, 7, 9, 11 },   /* major */
    { 0, 2, 3, 5, 7, 8, 10 },   /* natural minor; the dominant borrows the leading tone */
    { 0, 2, 3, 5, 7, 9, 10 },   /* dorian */
    { 0, 2, 4, 5, 7, 9, 10 },   /* mixolydian */
};

static const int quality_intervals[HAFM_CHORD_COUNT][4] = {
    { 0, 4, 7, -1 }, { 0, 3, 7, -1 }, { 0, 3, 6, -1 }, { 0, 4, 8, -1 },
    { 0, 4, 7, 11 }, { 0, 4, 7, 10 }, { 0, 3, 7, 10 }, { 0, 3, 6, 10 },
};

int hafm_chord_pitch_classes(const hafm_chord *c, int pcs[4])
{
    int n = 0;
    for (int i = 0; i < 4 && quality_intervals[c->quality][i] >= 0; i++)
        pcs[n++] = (c->root + quality_intervals[c->quality][i]) % 12;
    return n;
}

/* Harmonic functions and, per mode, the degrees that serve each with their weights. */
enum { FN_TONIC, FN_PREDOMINANT, FN_DOMINANT, FN_COUNT };
typedef struct { int degree[3]; double weight[3]; } fn_choice;
static const fn_choice function_degrees[HAFM_MODE_COUNT][FN_COUNT] = {
    { { { 0, 5, 2 }, { 1, 0.5, 0.15 } }, { { 3, 1, 3 }, { 1, 0.7, 0 } }, { { 4, 6, 4 }, { 1, 0.08, 0 } } },
    { { { 0, 5, 2 }, { 1, 0.6, 0.35 } }, { { 3, 1, 5 }, { 1, 0.2, 0.3 } }, { { 4, 6, 4 }, { 0.8, 0.5, 0 } } },
    { { { 0, 2, 0 }, { 1, 0.3, 0 } },    { { 3, 1, 3 }, { 1, 0.5, 0 } }, { { 4, 6, 4 }, { 0.5, 0.8, 0 } } },
    { { { 0, 5, 0 }, { 1, 0.3, 0 } },    { { 3, 1, 3 }, { 1, 0.4, 0 } }, { { 6, 4, 6 }, { 1, 0.6, 0 } } },
};

/* The chord on a degree: stacked diatonic thirds; the minor mode's V gets the raised leading
 * tone (harmonic minor), which is what makes a minor-key cadence a cadence. */
static void chord_on_degree(hafm_chord *c, int tonic, int mode, int degree, int seventh)
{
    const int *sc = mode_scale[mode];
    int third = (sc[(degree + 2) % 7] - sc[degree] + 12) % 12;
    int fifth = (sc[(degree + 4) % 7] - sc[degree] + 12) % 12;
    int sev = (sc[(degree + 6) % 7] - sc[degree] + 12) % 12;
    if (mode == HAFM_MODE_MINOR && degree == 4) {
        third = 4;
        sev = 10;
    }
    int q;
    if (third == 4 && fifth == 7)
        q = seventh ? (sev == 11 ? HAFM_CHORD_MAJ7 : HAFM_CHORD_DOM7) : HAFM_CHORD_MAJ;
    else if (third == 3 && fifth == 7)
        q = seventh && sev == 10 ? HAFM_CHORD_MIN7 : HAFM_CHORD_MIN;
    else if (third == 3 && fifth == 6)
        q = seventh && sev == 10 ? HAFM_CHORD_HDIM7 : HAFM_CHORD_DIM;
    else
        q = HAFM_CHORD_AUG;
    c->root = (tonic + sc[degree]) % 12;
    c->quality = q;
    c->degree = degree;
}

static int pick_degree(rng64 *r, int mode, int fn, int avoid)
{
    const fn_choice *fc = &function_degrees[mode][fn];
    for (int tries = 0; tries < 4; tries++) {
        int d = fc->degree[rng_pick(r, fc->weight, 3)];
        if (d != avoid)
            return d;
    }
    return fc->degree[0] != avoid ? fc->degree[0] : fc->degree[1];
}

enum { CAD_AUTHENTIC, CAD_HALF, CAD_PLAGAL, CAD_DECEPTIVE };

/* Degrees of one phrase of n chord slots: starts on the tonic (or for a chorus, sometimes the
 * subdominant), moves T -> PD -> D -> T as a Markov chain, and ends with the cadence. */
static void phrase_degrees(rng64 *r, int mode, int n, int cadence, int chorus, int *deg)
{
    static const double next_fn[FN_COUNT][FN_COUNT] = {
        { 0.25, 0.55, 0.20 }, { 0.15, 0.25, 0.60 }, { 0.70, 0.05, 0.25 },
    };
    int fn = FN_TONIC;
    deg[0] = chorus && rng_chance(r, 0.35) ? pick_degree(r, mode, FN_PREDOMINANT, -1) : 0;
    if (deg[0] != 0)
        fn = FN_PREDOMINANT;
    int tail = cadence == CAD_HALF ? 1 : 2;
    for (int i = 1; i < n - tail; i++) {
        fn = rng_pick(r, next_fn[fn], FN_COUNT);
        deg[i] = pick_degree(r, mode, fn, deg[i - 1]);
    }
    int dom = function_degrees[mode][FN_DOMINANT].degree[0];
    switch (cadence) {
    case CAD_HALF:
        deg[n - 1] = dom;
        if (n >= 2 && deg[n - 2] == dom)
            deg[n - 2] = pick_degree(r, mode, FN_PREDOMINANT, -1);
        break;
    case CAD_PLAGAL:
        deg[n - 2] = 3;
        deg[n - 1] = 0;
        break;
    case CAD_DECEPTIVE:
        deg[n - 2] = dom;
        deg[n - 1] = mode == HAFM_MODE_MAJOR || mode == HAFM_MODE_MINOR ? 5 : 0;
        break;
    default:
        deg[n - 2] = dom;
        deg[n - 1] = 0;
        break;
    }
    if (n >= 3 && deg[n - 3] == deg[n - 2])
        deg[n - 3] = pick_degree(r, mode, FN_PREDOMINANT, deg[n - 2]);
}

/* ---- parts ------------------------------------------------------------------------------------ */
static void part_add(hafm_part *p, int64_t tick, int64_t dur, int pitch, int velocity)
{
    if (dur < 1 || pitch < 0 || pitch > 127)
        return;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 128;
        p->notes = hafm_xrealloc(p->notes, (size_t)p->cap * sizeof *p->notes);
    }
    velocity = velocity < 1 ? 1 : velocity > 127 ? 127 : velocity;
    p->notes[p->n++] = (hafm_note){ tick, dur, pitch, velocity };
}

static int cmp_note(const void *pa, const void *pb)
{
    const hafm_note *a = pa, *b = pb;
    if (a->tick != b->tick)
        return a->tick < b->tick ? -1 : 1;
    return a->pitch - b->pitch;
}

static const hafm_chord *chord_at(const hafm_song *s, int64_t tick)
{
    int lo = 0, hi = s->n_chords - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (s->chords[mid].start <= tick)
            lo = mid;
        else
            hi = mid - 1;
    }
    return &s->chords[lo];
}

static int is_chord_tone(const hafm_chord *c, int pitch)
{
    int pcs[4], n = hafm_chord_pitch_classes(c, pcs);
    for (int i = 0; i < n; i++)
        if (pcs[i] == ((pitch % 12) + 12) % 12)
            return 1;
    return 0;
}

/* The scale a melody moves in over a chord: the mode's scale with the chord's tones replacing
 * the scale steps they alter (the raised leading tone over a minor key's V). */
static int in_local_scale(const hafm_song *s, const hafm_chord *c, int pitch)
{
    int pc = ((pitch - s->tonic) % 12 + 12) % 12;
    if (is_chord_tone(c, pitch))
        return 1;
    for (int d = 0; d < 7; d++) {
        if (mode_scale[s->mode][d] != pc)
            continue;
        /* a scale step a semitone from a chord tone that replaced it is out */
        int pcs[4], n = hafm_chord_pitch_classes(c, pcs);
        for (int i = 0; i < n; i++) {
            int rel = ((pcs[i] - s->tonic) % 12 + 12) % 12, in_scale = 0;
            for (int e = 0; e < 7; e++)
                in_scale |= mode_scale[s->mode][e] == rel;
            if (!in_scale && (rel - pc == 1 || pc - rel == 1 || rel - pc == -11 || pc - rel == -11))
                return 0;
        }
        return 1;
    }
    return 0;
}

/* The nearest pitch in [lo, hi] strictly above (dir > 0) or below (dir < 0) from, in the local
 * scale; from itself when none is. */
static int scale_step(const hafm_song *s, const hafm_chord *c, int from, int dir, int lo, int hi)
{
    for (int p = from + dir; p >= lo && p <= hi; p += dir)
        if (in_local_scale(s, c, p))
            return p;
    return from;
}

/* ---- form and harmony ------------------------------------------------------------------------- */
static void build_form(hafm_song *s, double length)
{
    double bar_sec = hafm_song_seconds(s, s->bar_ticks);
    int target = (int)floor(length / bar_sec + 0.5);
    int intro = target >= 12 ? 2 : 1, outro = target >= 14 ? 2 : 1;
    int phrases = (int)floor((target - intro - outro) / 4.0 + 0.5);
    if (phrases < 1)
        phrases = 1;
    int bars = intro + 4 * phrases + outro;
    s->n_bars = bars;
    s->end_tick = (int64_t)bars * s->bar_ticks;

    /* phrase kinds: verses then choruses, a bridge before a last chorus in long songs */
    static const char *const plans[] = { "V", "VC", "VVC", "VVCC", "VCVCC", "VVCCBC", "VVCCVCC",
                                         "VVCCVCBC", "VVCCVVCBC", "VVCCVVCCBC" };
    int *kinds = hafm_xmalloc((size_t)(phrases + 2) * sizeof *kinds), nk = 0;
    kinds[nk++] = HAFM_SECTION_INTRO;
    const char *plan = phrases <= 10 ? plans[phrases - 1] : NULL;
    for (int i = 0; i < phrases; i++) {
        char c = plan ? plan[i] : "VVCCBC"[i % 6];
        if (!plan && i == phrases - 1)
            c = 'C';
        kinds[nk++] = c == 'V' ? HAFM_SECTION_VERSE : c == 'C' ? HAFM_SECTION_CHORUS : HAFM_SECTION_BRIDGE;
    }
    kinds[nk++] = HAFM_SECTION_OUTRO;
    s->sections = hafm_xcalloc((size_t)nk, sizeof *s->sections);
    int64_t t = 0;
    for (int i = 0; i < nk; i++) {
        int nb = kinds[i] == HAFM_SECTION_INTRO ? intro : kinds[i] == HAFM_SECTION_OUTRO ? outro : 4;
        if (s->n_sections && s->sections[s->n_sections - 1].kind == kinds[i] && kinds[i] != HAFM_SECTION_INTRO) {
            s->sections[s->n_sections - 1].end += nb * s->bar_ticks;
        } else {
            hafm_section *sec = &s->sections[s->n_sections++];
            sec->kind = kinds[i];
            sec->start = t;
            sec->end = t + nb * s->bar_ticks;
        }
        t += nb * s->bar_ticks;
    }
    free(kinds);
}

/* The chord grid: one progression per section kind (repeated phrases of a section reuse it with
 * their own cadence), one or two chords per bar. */
static void build_harmony(hafm_song *s, rng64 *r)
{
    int two_per_bar[HAFM_SECTION_COUNT], prog[HAFM_SECTION_COUNT][2][8], have[HAFM_SECTION_COUNT] = { 0 };
    double seventh_p = s->style == STYLE_BALLAD ? 0.35 : s->style == STYLE_ROCK ? 0.05 : 0.2;
    s->chords = hafm_xcalloc((size_t)s->n_bars * 2 + 2, sizeof *s->chords);
    for (int si = 0; si < s->n_sections; si++) {
        const hafm_section *sec = &s->sections[si];
        int kind = sec->kind, bars = (int)((sec->end - sec->start) / s->bar_ticks);
        if (kind == HAFM_SECTION_INTRO || kind == HAFM_SECTION_OUTRO) {
            /* intro: I (and V before the verse); outro: IV/V-I, the last bar a held tonic */
            int deg[8] = { 0 }, n = bars;
            if (kind == HAFM_SECTION_INTRO && bars >= 2)
                deg[bars - 1] = function_degrees[s->mode][FN_DOMINANT].degree[0];
            if (kind == HAFM_SECTION_OUTRO && bars >= 2) {
                deg[bars - 2] = rng_chance(r, 0.5) ? 3 : function_degrees[s->mode][FN_DOMINANT].degree[0];
                for (int b = 0; b < bars - 2; b++)
                    deg[b] = b % 2 ? 3 : 0;
            }
            for (int b = 0; b < n && b < 8; b++) {
                hafm_chord *c = &s->chords[s->n_chords++];
                chord_on_degree(c, s->tonic, s->mode, deg[b], 0);
                c->start = sec->start + b * s->bar_ticks;
                c->end = c->start + s->bar_ticks;
            }
            continue;
        }
        if (!have[kind]) {
            two_per_bar[kind] = s->meter == HAFM_METER_4_4 && rng_chance(r, 0.3);
            int slots = two_per_bar[kind] ? 8 : 4;
            int first_cad = rng_chance(r, 0.75) ? CAD_HALF : CAD_DECEPTIVE;
            int last_cad = rng_chance(r, 0.8) ? CAD_AUTHENTIC : CAD_PLAGAL;
            if (kind == HAFM_SECTION_BRIDGE)
                last_cad = CAD_HALF;
            phrase_degrees(r, s->mode, slots, first_cad, kind == HAFM_SECTION_CHORUS, prog[kind][0]);
            memcpy(prog[kind][1], prog[kind][0], sizeof prog[kind][0]);
            /* the answering phrase keeps the first half and cadences differently */
            int half = slots / 2, tmp[8];
            phrase_degrees(r, s->mode, slots, last_cad, kind == HAFM_SECTION_CHORUS, tmp);
            for (int i = half; i < slots; i++)
                prog[kind][1][i] = tmp[i];
            have[kind] = 1;
        }
        int slots = two_per_bar[kind] ? 8 : 4;
        int64_t slot_ticks = s->bar_ticks / (slots / 4);
        for (int phrase = 0; phrase < bars / 4; phrase++) {
            const int *deg = prog[kind][phrase % 2];
            if (bars / 4 == 1)
                deg = prog[kind][1];
            for (int i = 0; i < slots; i++) {
                int64_t start = sec->start + (int64_t)phrase * 4 * s->bar_ticks + i * slot_ticks;
                hafm_chord *prev = s->n_chords ? &s->chords[s->n_chords - 1] : NULL;
                if (prev && prev->degree == deg[i] && prev->end == start && prev->end - prev->start < s->bar_ticks) {
                    prev->end += slot_ticks;     /* a repeated chord within a bar is one chord */
                    continue;
                }
                hafm_chord *c = &s->chords[s->n_chords++];
                int dom = function_degrees[s->mode][FN_DOMINANT].degree[0];
                chord_on_degree(c, s->tonic, s->mode, deg[i], deg[i] == dom ? rng_chance(r, 0.4) : rng_chance(r, seventh_p));
                /* ii before V becomes V of V now and then: a major (or dominant seventh) chord
                 * whose raised third leads to the dominant's root */
                if (deg[i] == 1 && dom == 4 && i + 1 < slots && deg[i + 1] == dom && rng_chance(r, 0.25))
                    c->quality = rng_chance(r, 0.5) ? HAFM_CHORD_DOM7 : HAFM_CHORD_MAJ;
                c->start = start;
                c->end = start + slot_ticks;
            }
        }
    }
}

/* ---- arrangement ------------------------------------------------------------------------------ */
#define BIT(p) (1u << (p))

static void build_arrangement(hafm_song *s, rng64 *r)
{
    for (int i = 0; i < s->n_sections; i++) {
        hafm_section *sec = &s->sections[i];
        unsigned parts = BIT(HAFM_PART_KEYS);
        switch (sec->kind) {
        case HAFM_SECTION_INTRO:
            sec->density = 0;
            if (rng_chance(r, 0.5))
                parts |= BIT(HAFM_PART_PAD);
            if (rng_chance(r, 0.4))
                parts |= BIT(HAFM_PART_DRUMS) | BIT(HAFM_PART_BASS);
            break;
        case HAFM_SECTION_VERSE:
            sec->density = rng_chance(r, 0.6) ? 1 : 0;
            parts |= BIT(HAFM_PART_VOCAL) | BIT(HAFM_PART_BASS);
            if (rng_chance(r, 0.8))
                parts |= BIT(HAFM_PART_DRUMS);
            if (rng_chance(r, 0.35))
                parts |= BIT(HAFM_PART_PAD);
            break;
        case HAFM_SECTION_CHORUS:
            sec->density = 2;
            parts |= BIT(HAFM_PART_VOCAL) | BIT(HAFM_PART_BASS) | BIT(HAFM_PART_DRUMS) | BIT(HAFM_PART_PAD);
            break;
        case HAFM_SECTION_BRIDGE:
            sec->density = 1;
            parts |= BIT(HAFM_PART_VOCAL) | BIT(HAFM_PART_BASS) | BIT(HAFM_PART_PAD);
            if (rng_chance(r, 0.5))
                parts |= BIT(HAFM_PART_DRUMS);
            if (rng_chance(r, 0.3))
                parts &= ~BIT(HAFM_PART_KEYS);
            break;
        default:
            sec->density = 0;
            parts |= BIT(HAFM_PART_BASS);
            if (rng_chance(r, 0.6))
                parts |= BIT(HAFM_PART_PAD);
            if (rng_chance(r, 0.5))
                parts |= BIT(HAFM_PART_DRUMS);
            break;
        }
        if (s->style == STYLE_BALLAD && sec->kind == HAFM_SECTION_VERSE && rng_chance(r, 0.5))
            parts &= ~BIT(HAFM_PART_DRUMS);
        sec->parts = parts;
    }
}

/* ---- melody ----------------------------------------------------------------------------------- */
typedef struct { int64_t tick, dur; } slot;

/* A rhythm for one bar: note slots on an eighth-note grid (6/8: its eighths), or a long cadence
 * note. Returns the count. */
static int bar_rhythm(rng64 *r, const hafm_song *s, int64_t bar_start, int last_bar, int rest_first, slot *out)
{
    const int64_t e = HAFM_PPQ / 2;
    int n = 0;
    int64_t t = bar_start, end = bar_start + s->bar_ticks;
    if (last_bar) {
        /* the phrase's last note, on the downbeat or on the bar's middle beat, held, then a
         * breath */
        int64_t mid = s->meter == HAFM_METER_4_4 ? 2 * s->beat_ticks : s->beat_ticks;
        int64_t hold = s->meter == HAFM_METER_6_8 ? 3 * e : 4 * e;
        if (rng_chance(r, 0.5)) {
            while (t < bar_start + mid) {
                int64_t d = s->meter == HAFM_METER_6_8 ? (rng_chance(r, 0.5) ? 3 * e : 2 * e) : rng_chance(r, 0.6) ? 2 * e : e;
                if (t + d > bar_start + mid)
                    d = bar_start + mid - t;
                out[n++] = (slot){ t, d };
                t += d;
            }
            hold = end - t - e;
        }
        out[n++] = (slot){ t, hold };
        return n;
    }
    if (rest_first)
        t += s->beat_ticks;
    while (t < end) {
        int64_t beat_left = s->beat_ticks - (t - bar_start) % s->beat_ticks;
        if (s->meter == HAFM_METER_6_8) {
            static const int cells[4][3] = { { 3, 0, 0 }, { 2, 1, 0 }, { 1, 1, 1 }, { 1, 2, 0 } };
            static const double w[4] = { 0.3, 0.35, 0.2, 0.15 };
            const int *c = cells[rng_pick(r, w, 4)];
            for (int i = 0; i < 3 && c[i]; i++) {
                out[n++] = (slot){ t, c[i] * e };
                t += c[i] * e;
            }
        } else {
            static const double w[4] = { 0.35, 0.35, 0.12, 0.18 };
            int cell = rng_pick(r, w, 4);
            if (cell == 3 && (end - t) < 2 * s->beat_ticks)
                cell = 0;
            if (cell == 0) {                       /* quarter */
                out[n++] = (slot){ t, beat_left };
                t += beat_left;
            } else if (cell == 1) {                /* two eighths */
                out[n++] = (slot){ t, e };
                out[n++] = (slot){ t + e, e };
                t += 2 * e;
            } else if (cell == 2) {                /* dotted quarter and eighth over two beats */
                if (end - t >= 2 * s->beat_ticks) {
                    out[n++] = (slot){ t, 3 * e };
                    out[n++] = (slot){ t + 3 * e, e };
                    t += 4 * e;
                } else {
                    out[n++] = (slot){ t, beat_left };
                    t += beat_left;
                }
            } else {                               /* half note */
                out[n++] = (slot){ t, 4 * e };
                t += 4 * e;
            }
        }
    }
    return n;
}

static void write_phrase(hafm_song *s, rng64 *r, int64_t start, int section_kind, int final_tonic,
                         const slot *rhythm, int n, int *prev_pitch)
{
    hafm_part *voc = &s->parts[HAFM_PART_VOCAL];
    int lo = s->voice_lo, hi = s->voice_hi;
    double centre = 0.5 * (lo + hi) + (section_kind == HAFM_SECTION_CHORUS ? 2.5 : section_kind == HAFM_SECTION_BRIDGE ? 1 : -1.5);
    double arc = rng_range(r, 2, 6);
    int pitch[64];
    int anchor[64];
    int64_t phrase_len = rhythm[n - 1].tick + rhythm[n - 1].dur - rhythm[0].tick;
    /* anchors: notes on beats (and the first and the last) get chord tones near a phrase arc */
    for (int i = 0; i < n; i++)
        anchor[i] = i == 0 || i == n - 1 || (rhythm[i].tick - start) % s->beat_ticks == 0;
    int prev = *prev_pitch;
    for (int i = 0; i < n; i++) {
        if (!anchor[i])
            continue;
        const hafm_chord *c = chord_at(s, rhythm[i].tick);
        double x = (double)(rhythm[i].tick - rhythm[0].tick) / (double)(phrase_len ? phrase_len : 1);
        double target = centre + arc * sin(M_PI * x * 0.9) - 1.5 * x;
        int downbeat = (rhythm[i].tick - start) % s->bar_ticks == 0;
        int best = prev, best_cost = 1 << 30;
        for (int p = lo; p <= hi; p++) {
            int ct = is_chord_tone(c, p);
            /* 1 in 8 weak beats may take a diatonic non-chord tone (an appoggiatura) */
            if (!ct && (downbeat || i == n - 1 || !in_local_scale(s, c, p) || !rng_chance(r, 0.12)))
                continue;
            if (i == n - 1 && final_tonic && ((p - s->tonic) % 12 + 12) % 12 != 0)
                continue;
            double cost = fabs(p - target) + 0.4 * abs(p - prev) + (p == prev ? 1.2 : 0) + rng_range(r, 0, 3.5);
            if (cost * 100 < best_cost) {
                best_cost = (int)(cost * 100);
                best = p;
            }
        }
        pitch[i] = best;
        prev = best;
    }
    /* between anchors: passing tones toward the next anchor, neighbour tones around a repeat */
    for (int i = 0; i < n; i++) {
        if (anchor[i])
            continue;
        int a = i - 1, b = i;
        while (b < n && !anchor[b])
            b++;
        const hafm_chord *c = chord_at(s, rhythm[i].tick);
        int from = pitch[a], to = pitch[b];
        int dir = to > from ? 1 : to < from ? -1 : (rng_chance(r, 0.5) ? 1 : -1);
        int p = scale_step(s, c, from, dir, lo, hi);
        if (p == from)
            p = scale_step(s, c, from, -dir, lo, hi);
        if (to != from && rng_chance(r, 0.3)) {
            /* arpeggiation: the next chord tone on the way */
            for (int q = from + dir; q >= lo && q <= hi && q != to; q += dir)
                if (is_chord_tone(c, q)) {
                    p = q;
                    break;
                }
        }
        if ((dir > 0 && p > to && to != from) || (dir < 0 && p < to && to != from))
            p = is_chord_tone(c, from) ? from : to;
        pitch[i] = p;
        for (int j = i + 1; j < b; j++) {
            int q = scale_step(s, chord_at(s, rhythm[j].tick), pitch[j - 1], dir, lo, hi);
            pitch[j] = (dir > 0 && q > to) || (dir < 0 && q < to) ? pitch[j - 1] : q;
        }
        i = b - 1;
    }
    int velocity = section_kind == HAFM_SECTION_CHORUS ? 96 : section_kind == HAFM_SECTION_BRIDGE ? 86 : 80;
    for (int i = 0; i < n; i++) {
        int64_t dur = rhythm[i].dur;
        /* legato within the phrase; a short lift before rests and the final release */
        if (i == n - 1)
            dur = dur * 9 / 10;
        else if (rhythm[i + 1].tick > rhythm[i].tick + rhythm[i].dur)
            dur = dur * 85 / 100;
        int accent = (rhythm[i].tick - start) % s->bar_ticks == 0 ? 8 : 0;
        int v = velocity + accent + rng_int(r, 9) - 4;
        part_add(voc, rhythm[i].tick, dur, pitch[i], v);
        hafm_syllable syl = { 0 };
        static const double vowel_w[HAFM_VOWEL_COUNT] = { 0.3, 0.2, 0.15, 0.2, 0.15 };
        static const double cons_w[HAFM_CONS_COUNT] = { 0.25, 0.2, 0.15, 0.17, 0.11, 0.12 };
        syl.vowel = rng_pick(r, vowel_w, HAFM_VOWEL_COUNT);
        syl.consonant = rng_pick(r, cons_w, HAFM_CONS_COUNT);
        /* any rest is a breath: a new phrase for the singer */
        syl.phrase_start = i == 0 || rhythm[i].tick - (rhythm[i - 1].tick + rhythm[i - 1].dur) >= HAFM_PPQ / 2;
        if (i > 0 && !anchor[i] && rhythm[i].tick == rhythm[i - 1].tick + rhythm[i - 1].dur && rng_chance(r, 0.15)) {
            syl.melisma = 1;
            syl.vowel = s->syllables[voc->n - 2].vowel;
            syl.consonant = HAFM_CONS_NONE;
        }
        s->syllables = hafm_xrealloc(s->syllables, (size_t)voc->cap * sizeof *s->syllables);
        s->syllables[voc->n - 1] = syl;
    }
    *prev_pitch = pitch[n - 1];
}

static void build_melody(hafm_song *s, rng64 *r)
{
    int prev = (s->voice_lo + s->voice_hi) / 2;
    for (int si = 0; si < s->n_sections; si++) {
        const hafm_section *sec = &s->sections[si];
        if (!(sec->parts & BIT(HAFM_PART_VOCAL)))
            continue;
        int bars = (int)((sec->end - sec->start) / s->bar_ticks);
        /* one rhythm per section for bars 1-2 (bar 3 echoes bar 1): motifs make it a tune */
        slot motif[2][32];
        int motif_n[2];
        int rest_first = rng_chance(r, 0.3);
        motif_n[0] = bar_rhythm(r, s, 0, 0, rest_first, motif[0]);
        motif_n[1] = bar_rhythm(r, s, 0, 0, 0, motif[1]);
        for (int phrase = 0; phrase < bars / 4; phrase++) {
            int64_t start = sec->start + (int64_t)phrase * 4 * s->bar_ticks;
            slot rhythm[64];
            int n = 0;
            /* long bars: two 2-bar phrases with a breath between them */
            int split = hafm_song_seconds(s, s->bar_ticks) > 2.2 || rng_chance(r, 0.25);
            for (int b = 0; b < 4; b++) {
                int64_t bar = start + (int64_t)b * s->bar_ticks;
                if (b == 3 || (b == 1 && split)) {
                    n += bar_rhythm(r, s, bar, 1, 0, rhythm + n);
                } else {
                    const slot *m = motif[b == 1];
                    int mn = motif_n[b == 1];
                    if (b == 2 && rng_chance(r, 0.35)) {   /* varied echo */
                        n += bar_rhythm(r, s, bar, 0, 0, rhythm + n);
                        continue;
                    }
                    for (int i = 0; i < mn; i++)
                        rhythm[n++] = (slot){ bar + m[i].tick, m[i].dur };
                }
            }
            const hafm_chord *last = chord_at(s, rhythm[n - 1].tick);
            int final_tonic = last->root == s->tonic && phrase % 2 == 1 && rng_chance(r, 0.7);
            write_phrase(s, r, start, sec->kind, final_tonic, rhythm, n, &prev);
        }
    }
}

/* ---- accompaniment ---------------------------------------------------------------------------- */
/* The chord's tones voiced in [lo, hi] as close as possible to the previous voicing. */
static int voice_chord(const hafm_chord *c, int lo, int hi, const int *prev, int n_prev, int *out)
{
    int pcs[4], n = hafm_chord_pitch_classes(c, pcs);
    int best[4] = { 0 }, best_cost = 1 << 30;
    double centre = 0.5 * (lo + hi);
    for (int inv = 0; inv < n; inv++) {
        for (int base = lo; base < lo + 12; base++) {
            if ((base - pcs[inv]) % 12 != 0)
                continue;
            int v[4], p = base, ok = 1;
            for (int i = 0; i < n; i++) {
                int pc = pcs[(inv + i) % n];
                while (((p - pc) % 12 + 12) % 12)
                    p++;
                if (p > hi)
                    ok = 0;
                v[i] = p;
                p++;
            }
            if (!ok)
                continue;
            int cost = 0;
            for (int i = 0; i < n; i++) {
                int d = 1 << 20;
                for (int j = 0; j < n_prev; j++)
                    d = abs(v[i] - prev[j]) < d ? abs(v[i] - prev[j]) : d;
                cost += n_prev ? d : (int)fabs(v[i] - centre);
            }
            if (cost < best_cost) {
                best_cost = cost;
                memcpy(best, v, sizeof best);
            }
        }
    }
    memcpy(out, best, sizeof best);
    return n;
}

static int section_at(const hafm_song *s, int64_t tick)
{
    for (int i = 0; i < s->n_sections; i++)
        if (tick < s->sections[i].end)
            return i;
    return s->n_sections - 1;
}

static int bass_pitch(int pc) { return 36 + ((pc - 36) % 12 + 12) % 12 - (pc >= 8 ? 12 : 0); }

static void build_bass(hafm_song *s, rng64 *r)
{
    hafm_part *p = &s->parts[HAFM_PART_BASS];
    const int64_t e = HAFM_PPQ / 2;
    for (int ci = 0; ci < s->n_chords; ci++) {
        const hafm_chord *c = &s->chords[ci];
        const hafm_section *sec = &s->sections[section_at(s, c->start)];
        if (!(sec->parts & BIT(HAFM_PART_BASS)))
            continue;
        int root = bass_pitch(c->root), fifth = root + 7 - (root + 7 > 52 ? 12 : 0);
        int64_t len = c->end - c->start;
        int last = c->end >= s->end_tick;
        int v = 88 + 6 * sec->density;
        if (last || sec->density == 0 || s->style == STYLE_BALLAD) {
            part_add(p, c->start, len - 10, root, v + rng_int(r, 8));
            continue;
        }
        if (s->style == STYLE_ROCK && sec->density == 2) {
            for (int64_t t = c->start; t < c->end; t += e)
                part_add(p, t, e - 20, root, v - 6 + rng_int(r, 10) + ((t - c->start) % s->beat_ticks ? 0 : 8));
            continue;
        }
        if (s->meter == HAFM_METER_6_8) {
            for (int64_t t = c->start; t < c->end; t += s->beat_ticks)
                part_add(p, t, s->beat_ticks - 30, (t - c->start) % s->bar_ticks ? fifth : root, v + rng_int(r, 8));
            continue;
        }
        if (s->meter == HAFM_METER_3_4) {
            part_add(p, c->start, s->beat_ticks * (sec->density == 2 ? 1 : 2) - 20, root, v + rng_int(r, 8));
            if (sec->density == 2)
                part_add(p, c->start + 2 * s->beat_ticks, s->beat_ticks - 20, fifth, v - 8 + rng_int(r, 8));
            continue;
        }
        /* pop 4/4: root on 1, root or fifth on 3, an approach note into the next chord */
        for (int64_t t = c->start; t < c->end; t += 2 * s->beat_ticks) {
            int pitch = t == c->start ? root : (rng_chance(r, 0.5) ? fifth : root);
            int64_t dur = 2 * s->beat_ticks - 20;
            int approach = t + 2 * s->beat_ticks >= c->end && ci + 1 < s->n_chords && sec->density == 2 && rng_chance(r, 0.5);
            if (approach || (sec->density == 2 && rng_chance(r, 0.4)))
                dur = 3 * e - 20;
            part_add(p, t, dur, pitch, v + rng_int(r, 8));
            if (sec->density == 2 && dur < 2 * s->beat_ticks - 20) {
                int next = approach ? bass_pitch(s->chords[ci + 1].root) : root;
                int step = approach ? (next > root ? next - 1 : next + 1) : root + 12;
                part_add(p, t + 3 * e, e - 20, step, v - 10 + rng_int(r, 8));
            }
        }
    }
}

static int is_guitar(int program) { return program >= 24 && program <= 31; }

static void build_keys(hafm_song *s, rng64 *r)
{
    hafm_part *p = &s->parts[HAFM_PART_KEYS];
    const int64_t e = HAFM_PPQ / 2;
    int prev[4], n_prev = 0;
    int arpeggio = s->style == STYLE_BALLAD || s->style == STYLE_SIX_EIGHT ? rng_chance(r, 0.7) : rng_chance(r, 0.2);
    for (int ci = 0; ci < s->n_chords; ci++) {
        const hafm_chord *c = &s->chords[ci];
        const hafm_section *sec = &s->sections[section_at(s, c->start)];
        if (!(sec->parts & BIT(HAFM_PART_KEYS)))
            continue;
        int v[4], n = voice_chord(c, 53, 77, prev, n_prev, v);
        memcpy(prev, v, sizeof prev);
        n_prev = n;
        int vel = 62 + 8 * sec->density;
        if (c->end >= s->end_tick || sec->density == 0) {
            /* sparse: the chord on each downbeat, held */
            for (int64_t t = c->start; t < c->end; t += s->bar_ticks)
                for (int i = 0; i < n; i++)
                    part_add(p, t, (c->end - t < s->bar_ticks ? c->end - t : s->bar_ticks) - 15, v[i], vel + rng_int(r, 8));
            continue;
        }
        if (arpeggio) {
            /* broken chord on eighths, root below */
            static const int order[6] = { 0, 1, 2, 3, 2, 1 };
            int k = 0;
            for (int64_t t = c->start; t < c->end; t += e, k++) {
                int idx = order[k % 6] % n;
                int pitch = k % 6 == 0 ? v[0] - 12 : v[idx];
                part_add(p, t, (k % 6 == 0 ? 3 * e : 2 * e), pitch, vel - 4 + rng_int(r, 10));
            }
            continue;
        }
        if (s->meter == HAFM_METER_3_4) {
            for (int64_t t = c->start + s->beat_ticks; t < c->end; t += s->beat_ticks) {
                if ((t - c->start) % s->bar_ticks == 0)
                    continue;
                for (int i = 0; i < n; i++)
                    part_add(p, t, s->beat_ticks - 60, v[i], vel + rng_int(r, 8));
            }
            continue;
        }
        if (is_guitar(p->program)) {
            /* strumming: down on beats, up on offbeats, a little spread between strings */
            static const int strum[8] = { 1, 0, 1, 1, 0, 1, 1, 1 };
            int k = 0;
            for (int64_t t = c->start; t < c->end; t += e, k++) {
                if (!strum[k % 8] && sec->density < 2)
                    continue;
                int down = (t - c->start) % s->beat_ticks == 0;
                for (int i = 0; i < n; i++) {
                    int str = down ? i : n - 1 - i;
                    part_add(p, t + 8 * i, e - 20, v[str], vel - (down ? 0 : 12) + rng_int(r, 8));
                }
            }
            continue;
        }
        /* piano comping: beat 1 held, a syncopated push, beats repeated in a full section */
        for (int64_t t = c->start; t < c->end; t += s->beat_ticks) {
            int beat = (int)((t - c->start) / s->beat_ticks);
            int64_t dur = s->beat_ticks - 40;
            if (sec->density == 1 && beat % 2)
                continue;
            if (sec->density == 1)
                dur = 2 * s->beat_ticks - 60;
            for (int i = 0; i < n; i++)
                part_add(p, t, dur, v[i], vel + (beat == 0 ? 8 : 0) + rng_int(r, 8));
            if (s->meter == HAFM_METER_4_4 && sec->density == 2 && beat == 1 && rng_chance(r, 0.5))
                for (int i = 0; i < n; i++)
                    part_add(p, t + s->beat_ticks + e, e - 20, v[i], vel - 6 + rng_int(r, 8));
        }
    }
}

static void build_pad(hafm_song *s, rng64 *r)
{
    hafm_part *p = &s->parts[HAFM_PART_PAD];
    int prev[4], n_prev = 0;
    for (int ci = 0; ci < s->n_chords; ci++) {
        const hafm_chord *c = &s->chords[ci];
        const hafm_section *sec = &s->sections[section_at(s, c->start)];
        if (!(sec->parts & BIT(HAFM_PART_PAD)))
            continue;
        int v[4], n = voice_chord(c, 48, 72, prev, n_prev, v);
        memcpy(prev, v, sizeof prev);
        n_prev = n;
        int vel = 50 + 8 * sec->density;
        for (int i = 0; i < n; i++)
            part_add(p, c->start, c->end - c->start - 5, v[i], vel + rng_int(r, 6));
        /* the root doubled an octave down for weight in full sections */
        if (sec->density == 2)
            part_add(p, c->start, c->end - c->start - 5, v[0] - 12, vel - 10 + rng_int(r, 6));
    }
}

enum { KICK = 36, SIDESTICK = 37, SNARE = 38, HAT = 42, PEDAL_HAT = 44, OPEN_HAT = 46,
       TOM_LOW = 45, TOM_MID = 47, TOM_HIGH = 50, CRASH = 49, RIDE = 51, FLOOR_TOM = 41 };

static void build_drums(hafm_song *s, rng64 *r)
{
    hafm_part *p = &s->parts[HAFM_PART_DRUMS];
    const int64_t e = HAFM_PPQ / 2, sx = HAFM_PPQ / 4;
    for (int si = 0; si < s->n_sections; si++) {
        const hafm_section *sec = &s->sections[si];
        if (!(sec->parts & BIT(HAFM_PART_DRUMS)))
            continue;
        int d = sec->density;
        int cymbal = d == 2 && s->style == STYLE_ROCK && rng_chance(r, 0.5) ? RIDE : HAT;
        int backbeat = d == 0 || (s->style == STYLE_BALLAD && d < 2) ? SIDESTICK : SNARE;
        int fill = si + 1 < s->n_sections;
        for (int64_t bar = sec->start; bar < sec->end; bar += s->bar_ticks) {
            int last_bar = bar + s->bar_ticks >= sec->end;
            if (bar >= s->end_tick - s->bar_ticks) {
                /* the final downbeat */
                part_add(p, bar, e, KICK, 100);
                part_add(p, bar, s->bar_ticks, CRASH, 96);
                continue;
            }
            if (bar == sec->start && (d >= 1 || sec->kind == HAFM_SECTION_CHORUS))
                part_add(p, bar, e, CRASH, 92 + rng_int(r, 10));
            int64_t fill_from = fill && last_bar ? bar + s->bar_ticks - (d == 2 ? 2 : 1) * s->beat_ticks : bar + s->bar_ticks;
            for (int64_t t = bar; t < bar + s->bar_ticks; t += e) {
                int64_t pos = t - bar;
                int beat = (int)(pos / s->beat_ticks), on_beat = pos % s->beat_ticks == 0;
                int hv = (on_beat ? 72 : 56) + 6 * d + rng_int(r, 10);
                if (t >= fill_from) {
                    /* fill: sixteenths on snare and toms, falling in pitch */
                    static const int toms[4] = { SNARE, TOM_HIGH, TOM_MID, FLOOR_TOM };
                    int k = (int)((t - fill_from) / e);
                    part_add(p, t, sx, toms[k & 3], 80 + 4 * k + rng_int(r, 10));
                    part_add(p, t + sx, sx, toms[(k + 1) & 3], 74 + rng_int(r, 10));
                    continue;
                }
                if (d > 0 || on_beat)
                    part_add(p, t, e, cymbal, hv);
                switch (s->meter) {
                case HAFM_METER_6_8:
                    if (pos == 0)
                        part_add(p, t, e, KICK, 100 + rng_int(r, 10));
                    if (pos == s->beat_ticks && d > 0)
                        part_add(p, t, e, backbeat, 90 + rng_int(r, 10));
                    if (d == 2 && pos == s->beat_ticks - e)
                        part_add(p, t, e, KICK, 80 + rng_int(r, 10));
                    break;
                case HAFM_METER_3_4:
                    if (pos == 0)
                        part_add(p, t, e, KICK, 100 + rng_int(r, 10));
                    if (on_beat && beat > 0 && d > 0)
                        part_add(p, t, e, backbeat, 70 + 8 * d + rng_int(r, 10));
                    break;
                default:
                    if (pos == 0 || pos == 2 * s->beat_ticks)
                        part_add(p, t, e, KICK, 100 + rng_int(r, 10));
                    if ((s->style == STYLE_ROCK || d == 2) && pos == 2 * s->beat_ticks + e && rng_chance(r, 0.6))
                        part_add(p, t, e, KICK, 86 + rng_int(r, 10));
                    if (on_beat && beat % 2 == 1 && (d > 0 || s->style == STYLE_ROCK))
                        part_add(p, t, e, backbeat, 92 + rng_int(r, 12));
                    if (d == 2 && cymbal == HAT && pos == 4 * s->beat_ticks - e && rng_chance(r, 0.3))
                        part_add(p, t, e, OPEN_HAT, 70 + rng_int(r, 10));
                    break;
                }
            }
        }
    }
}

/* ---- the song ----------------------------------------------------------------------------------- */
void hafm_compose_defaults(hafm_compose_opts *o)
{
    o->length = 25;
    o->valid_share = 0.05;
    o->test_share = 0.05;
}

void hafm_song_id(char id[32], uint32_t seed, uint32_t index)
{
    snprintf(id, 32, "s%u-%06u", seed, index);
}

int hafm_song_split(uint32_t seed, uint32_t index, const hafm_compose_opts *o)
{
    rng64 r = song_rng(seed, index, 1);
    double u = rng_uniform(&r);
    if (u < o->test_share)
        return HAFM_SPLIT_TEST;
    if (u < o->test_share + o->valid_share)
        return HAFM_SPLIT_VALID;
    return HAFM_SPLIT_TRAIN;
}

double hafm_song_seconds(const hafm_song *s, int64_t tick)
{
    return (double)tick * 60.0 / (s->bpm * (double)s->beat_ticks);
}

double hafm_song_duration(const hafm_song *s) { return hafm_song_seconds(s, s->end_tick) + s->tail; }

void hafm_song_free(hafm_song *s)
{
    if (!s)
        return;
    free(s->sections);
    free(s->chords);
    for (int p = 0; p < HAFM_PART_COUNT; p++)
        free(s->parts[p].notes);
    free(s->syllables);
    memset(s, 0, sizeof *s);
}

int hafm_song_compose(hafm_song *s, uint32_t seed, uint32_t index, const hafm_compose_opts *o)
{
    memset(s, 0, sizeof *s);
    if (!(o->length >= 5 && o->length <= 3600)) {
        hafm_error("song length %g s outside 5..3600", o->length);
        return -1;
    }
    if (!(o->valid_share >= 0 && o->test_share >= 0 && o->valid_share + o->test_share <= 1)) {
        hafm_error("split shares must be >= 0 and sum to at most 1");
        return -1;
    }
    s->seed = seed;
    s->index = index;
    hafm_song_id(s->id, seed, index);
    s->split = hafm_song_split(seed, index, o);
    rng64 r = song_rng(seed, index, 2);

    static const double meter_w[HAFM_METER_COUNT] = { 0.6, 0.2, 0.2 };
    static const double mode_w[HAFM_MODE_COUNT] = { 0.45, 0.35, 0.1, 0.1 };
    s->meter = rng_pick(&r, meter_w, HAFM_METER_COUNT);
    s->mode = rng_pick(&r, mode_w, HAFM_MODE_COUNT);
    s->tonic = rng_int(&r, 12);
    switch (s->meter) {
    case HAFM_METER_3_4:
        s->beats_per_bar = 3;
        s->beat_ticks = HAFM_PPQ;
        s->bpm = 80 + rng_int(&r, 81);
        s->style = STYLE_WALTZ;
        break;
    case HAFM_METER_6_8:
        s->beats_per_bar = 2;
        s->beat_ticks = 3 * HAFM_PPQ / 2;
        s->bpm = 70 + rng_int(&r, 41);
        s->style = STYLE_SIX_EIGHT;
        break;
    default: {
        static const double style_w[3] = { 0.45, 0.3, 0.25 };
        s->beats_per_bar = 4;
        s->beat_ticks = HAFM_PPQ;
        s->style = rng_pick(&r, style_w, 3);
        s->bpm = s->style == STYLE_BALLAD ? 70 + rng_int(&r, 31) : s->style == STYLE_ROCK ? 100 + rng_int(&r, 61) : 80 + rng_int(&r, 71);
        break;
    }
    }
    s->bar_ticks = s->beats_per_bar * s->beat_ticks;
    s->tail = 1.5;

    /* instruments */
    static const int keys_programs[] = { 0, 1, 4, 5, 24, 25, 27, 16, 46 };
    static const int rock_keys[] = { 29, 30, 27, 0 };
    static const int pad_programs[] = { 48, 49, 50, 89, 88, 19, 61 };
    static const int bass_programs[] = { 32, 33, 34, 35, 38 };
    static const int kits[] = { 0, 8, 16, 32, 40 };
    s->parts[HAFM_PART_VOCAL] = (hafm_part){ .channel = 0, .program = 53 };
    s->parts[HAFM_PART_BASS] = (hafm_part){ .channel = 1, .program = bass_programs[rng_int(&r, 5)] };
    s->parts[HAFM_PART_KEYS] = (hafm_part){ .channel = 2,
        .program = s->style == STYLE_ROCK ? rock_keys[rng_int(&r, 4)] : keys_programs[rng_int(&r, 9)] };
    s->parts[HAFM_PART_PAD] = (hafm_part){ .channel = 3, .program = pad_programs[rng_int(&r, 7)] };
    s->parts[HAFM_PART_DRUMS] = (hafm_part){ .channel = 9,
        .program = s->style == STYLE_BALLAD || s->style == STYLE_SIX_EIGHT ? kits[3 + rng_int(&r, 2)]
                   : s->style == STYLE_ROCK ? kits[2 * rng_int(&r, 2) + (rng_chance(&r, 0.5) ? 0 : 2)] : kits[rng_int(&r, 3)] };

    /* the singer */
    static const double voice_w[HAFM_VOICE_COUNT] = { 0.15, 0.3, 0.25, 0.3 };
    int voice = rng_pick(&r, voice_w, HAFM_VOICE_COUNT);
    hafm_singer_defaults(&s->singer, voice);
    hafm_singer_range(voice, &s->voice_lo, &s->voice_hi);
    s->singer.vibrato_rate = rng_range(&r, 4.6, 6.4);
    s->singer.vibrato_depth = rng_range(&r, 18, 55);
    s->singer.vibrato_delay = rng_range(&r, 0.1, 0.3);
    s->singer.portamento = rng_range(&r, 0.04, 0.11);
    s->singer.scoop = rng_range(&r, 0, 70);
    s->singer.jitter = rng_range(&r, 0.003, 0.01);
    s->singer.shimmer = rng_range(&r, 0.02, 0.06);
    s->singer.breathiness = rng_range(&r, 0.05, 0.35);
    s->singer.breath_level = rng_range(&r, 0.3, 1.0);
    s->singer.open_quotient = rng_range(&r, 0.45, 0.75);
    s->singer.seed = rng_next(&r);
    s->vocal_db = rng_range(&r, -1, 5);

    build_form(s, o->length);
    build_harmony(s, &r);
    build_arrangement(s, &r);
    build_melody(s, &r);
    build_bass(s, &r);
    build_keys(s, &r);
    build_pad(s, &r);
    build_drums(s, &r);
    for (int p = HAFM_PART_BASS; p < HAFM_PART_COUNT; p++)
        if (s->parts[p].n)
            qsort(s->parts[p].notes, (size_t)s->parts[p].n, sizeof *s->parts[p].notes, cmp_note);
    return 0;
}
