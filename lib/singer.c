/* singer.c - formant singing-voice synthesiser (see hafm/singer.h). */
#include "hafm/singer.h"
#include "hafm/common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define N_FORMANTS 5

/* Vowel formants of sung vowels (a e i o u) for bass, tenor, alto and soprano: the classic table
 * of singing formants used by FOF synthesis (Csound manual, appendix "Formant values"). */
static const struct {
    double f[N_FORMANTS], g[N_FORMANTS], bw[N_FORMANTS];
} vowel_table[HAFM_VOICE_COUNT][HAFM_VOWEL_COUNT] = {
    { /* bass */
        { { 600, 1040, 2250, 2450, 2750 }, { 0, -7, -9, -9, -20 },   { 60, 70, 110, 120, 130 } },
        { { 400, 1620, 2400, 2800, 3100 }, { 0, -12, -9, -12, -18 }, { 40, 80, 100, 120, 120 } },
        { { 250, 1750, 2600, 3050, 3340 }, { 0, -30, -16, -22, -28 }, { 60, 90, 100, 120, 120 } },
        { { 400, 750, 2400, 2600, 2900 },  { 0, -11, -21, -20, -40 }, { 40, 80, 100, 120, 120 } },
        { { 350, 600, 2400, 2675, 2950 },  { 0, -20, -32, -28, -36 }, { 40, 80, 100, 120, 120 } },
    },
    { /* tenor */
        { { 650, 1080, 2650, 2900, 3250 }, { 0, -6, -7, -8, -22 },   { 80, 90, 120, 130, 140 } },
        { { 400, 1700, 2600, 3200, 3580 }, { 0, -14, -12, -14, -20 }, { 70, 80, 100, 120, 120 } },
        { { 290, 1870, 2800, 3250, 3540 }, { 0, -15, -18, -20, -30 }, { 40, 90, 100, 120, 120 } },
        { { 400, 800, 2600, 2800, 3000 },  { 0, -10, -12, -12, -26 }, { 40, 80, 100, 120, 120 } },
        { { 350, 600, 2700, 2900, 3300 },  { 0, -20, -17, -14, -26 }, { 40, 60, 100, 120, 120 } },
    },
    { /* alto */
        { { 800, 1150, 2800, 3500, 4950 }, { 0, -4, -20, -36, -60 }, { 80, 90, 120, 130, 140 } },
        { { 400, 1600, 2700, 3300, 4950 }, { 0, -24, -30, -35, -60 }, { 60, 80, 120, 150, 200 } },
        { { 350, 1700, 2700, 3700, 4950 }, { 0, -20, -30, -36, -60 }, { 50, 100, 120, 150, 200 } },
        { { 450, 800, 2830, 3500, 4950 },  { 0, -9, -16, -28, -55 }, { 70, 80, 100, 130, 135 } },
        { { 325, 700, 2530, 3500, 4950 },  { 0, -12, -30, -40, -64 }, { 50, 60, 170, 180, 200 } },
    },
    { /* soprano */
        { { 800, 1150, 2900, 3900, 4950 }, { 0, -6, -32, -20, -50 }, { 80, 90, 120, 130, 140 } },
        { { 350, 2000, 2800, 3600, 4950 }, { 0, -20, -15, -40, -56 }, { 60, 100, 120, 150, 200 } },
        { { 270, 2140, 2950, 3900, 4950 }, { 0, -12, -26, -26, -44 }, { 60, 90, 100, 120, 120 } },
        { { 450, 800, 2830, 3800, 4950 },  { 0, -11, -22, -22, -50 }, { 70, 80, 100, 130, 135 } },
        { { 325, 700, 2700, 3800, 4950 },  { 0, -16, -35, -40, -60 }, { 50, 60, 170, 180, 200 } },
    },
};

/* Consonant murmurs (male vocal tract; scaled up for the smaller female tract). */
static const struct {
    double f[N_FORMANTS], g[N_FORMANTS], bw[N_FORMANTS];
} nasal_set = { { 250, 1100, 2500, 3300, 4500 }, { 0, -20, -26, -34, -45 }, { 100, 200, 300, 300, 300 } },
  liquid_set = { { 360, 1300, 2900, 3500, 4500 }, { 0, -14, -24, -30, -45 }, { 80, 150, 200, 250, 250 } },
  voicebar_set = { { 200, 1500, 2500, 3500, 4500 }, { 0, -40, -50, -60, -60 }, { 80, 200, 300, 300, 300 } };

static const double tract_scale[HAFM_VOICE_COUNT] = { 0.95, 1.0, 1.12, 1.18 };

/* Consonant durations before the vowel, seconds. */
static const double consonant_dur[HAFM_CONS_COUNT] = { 0, 0.075, 0.055, 0.07, 0.095, 0.055 };

static const char *const vowel_names[HAFM_VOWEL_COUNT] = { "a", "e", "i", "o", "u" };
static const char *const consonant_names[HAFM_CONS_COUNT] = { "", "t", "d", "m", "s", "l" };
static const char *const voice_names[HAFM_VOICE_COUNT] = { "bass", "tenor", "alto", "soprano" };
static const int voice_range[HAFM_VOICE_COUNT][2] = { { 43, 62 }, { 48, 67 }, { 55, 74 }, { 60, 79 } };

const char *hafm_vowel_name(int v) { return v >= 0 && v < HAFM_VOWEL_COUNT ? vowel_names[v] : "?"; }
const char *hafm_consonant_name(int c) { return c >= 0 && c < HAFM_CONS_COUNT ? consonant_names[c] : "?"; }
const char *hafm_voice_name(int v) { return v >= 0 && v < HAFM_VOICE_COUNT ? voice_names[v] : "?"; }

void hafm_singer_range(int voice, int *lo, int *hi)
{
    if (voice < 0 || voice >= HAFM_VOICE_COUNT)
        voice = HAFM_VOICE_TENOR;
    *lo = voice_range[voice][0];
    *hi = voice_range[voice][1];
}

void hafm_singer_formants(int voice, int vowel, double freq[5], double bw[5], double gain_db[5])
{
    if (voice < 0 || voice >= HAFM_VOICE_COUNT)
        voice = HAFM_VOICE_TENOR;
    if (vowel < 0 || vowel >= HAFM_VOWEL_COUNT)
        vowel = HAFM_VOWEL_A;
    for (int k = 0; k < N_FORMANTS; k++) {
        freq[k] = vowel_table[voice][vowel].f[k];
        bw[k] = vowel_table[voice][vowel].bw[k];
        gain_db[k] = vowel_table[voice][vowel].g[k];
    }
}

void hafm_singer_defaults(hafm_singer_params *p, int voice)
{
    memset(p, 0, sizeof *p);
    p->voice = voice;
    p->vibrato_rate = 5.5;
    p->vibrato_depth = 35;
    p->vibrato_delay = 0.25;
    p->vibrato_spread = 0.04;
    p->drift = 6;
    p->portamento = 0.07;
    p->scoop = 40;
    p->jitter = 0.006;
    p->shimmer = 0.04;
    p->breathiness = 0.15;
    p->breath_level = 0.5;
    p->open_quotient = 0.6;
    p->seed = 1;
}

/* ---- small deterministic helpers ------------------------------------------------------------- */
typedef struct { uint64_t s; } rng64;

static uint64_t rng_next(rng64 *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(rng64 *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* Approximately Gaussian (sum of four uniforms, unit variance): bounded, so a perturbation
 * never produces an absurd period. */
static double rng_gauss(rng64 *r)
{
    double s = rng_uniform(r) + rng_uniform(r) + rng_uniform(r) + rng_uniform(r);
    return (s - 2.0) * 1.7320508075688772;
}

static double smoothstep(double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    return x * x * (3 - 2 * x);
}

/* Two-pole resonator with unit gain at its centre frequency (Klatt). */
typedef struct { double b0, a1, a2, y1, y2; } resonator;

static void resonator_set(resonator *r, double freq, double bw, double fs)
{
    double rr = exp(-M_PI * bw / fs), th = 2 * M_PI * freq / fs;
    r->a1 = 2 * rr * cos(th);
    r->a2 = -rr * rr;
    r->b0 = (1 - rr) * sqrt(1 - 2 * rr * cos(2 * th) + rr * rr);
}

static double resonator_run(resonator *r, double x)
{
    double y = r->b0 * x + r->a1 * r->y1 + r->a2 * r->y2;
    r->y2 = r->y1;
    r->y1 = y;
    return y;
}

/* Formant target of the tract: frequencies in log Hz (so glides are perceptually even). */
typedef struct { double logf[N_FORMANTS], bw[N_FORMANTS], g[N_FORMANTS]; } tract_shape;

static void shape_vowel(tract_shape *s, int voice, int vowel)
{
    double f[5], bw[5], g[5];
    hafm_singer_formants(voice, vowel, f, bw, g);
    for (int k = 0; k < N_FORMANTS; k++) {
        s->logf[k] = log(f[k]);
        s->bw[k] = bw[k];
        s->g[k] = g[k];
    }
}

static void shape_consonant(tract_shape *s, int voice, int consonant)
{
    const double *f = nasal_set.f, *g = nasal_set.g, *bw = nasal_set.bw;
    if (consonant == HAFM_CONS_LIQUID) {
        f = liquid_set.f; g = liquid_set.g; bw = liquid_set.bw;
    } else if (consonant == HAFM_CONS_VOICED_PLOSIVE) {
        f = voicebar_set.f; g = voicebar_set.g; bw = voicebar_set.bw;
    }
    for (int k = 0; k < N_FORMANTS; k++) {
        s->logf[k] = log(f[k] * tract_scale[voice]);
        s->bw[k] = bw[k];
        s->g[k] = g[k];
    }
}

/* What the singer aims at during one internal sample, before smoothing. */
typedef struct {
    double voicing;         /* glottal amplitude */
    double pitch;           /* MIDI pitch, semitones */
    double vibrato;         /* vibrato depth envelope, 0..1 */
    double aspiration;      /* noise into the tract (plosive release, 'h') */
    double frication;       /* hiss outside the tract */
    double fric_freq, fric_bw;
    double attack;          /* time constant of the voicing rise, seconds */
    tract_shape shape;
    int has_shape;
} targets;

typedef struct {
    double start, onset, offset, end;  /* consonant start .. region end */
    int legato;
} note_span;

static void consonant_targets(targets *tg, const hafm_sung_note *nt, const note_span *sp, double t, int voice)
{
    double d = sp->onset - sp->start, x = d > 0 ? (t - sp->start) / d : 1;
    int front = nt->vowel == HAFM_VOWEL_E || nt->vowel == HAFM_VOWEL_I;
    switch (nt->consonant) {
    case HAFM_CONS_PLOSIVE:
        /* closure (silence), a burst, then aspiration shaped by the coming vowel */
        if (x >= 0.55 && x < 0.55 + 0.012 / d) {
            tg->frication = 0.9 * exp(-(t - sp->start - 0.55 * d) / 0.003);
            tg->fric_freq = front ? 4200 : 2500;
            tg->fric_bw = 3000;
        }
        if (x >= 0.6)
            tg->aspiration = 0.35;
        tg->attack = 0.006;
        break;
    case HAFM_CONS_VOICED_PLOSIVE:
        tg->voicing = 0.12 * nt->velocity;
        shape_consonant(&tg->shape, voice, nt->consonant);
        tg->has_shape = 1;
        if (x >= 0.8 && x < 0.8 + 0.008 / d) {
            tg->frication = 0.3;
            tg->fric_freq = front ? 3800 : 2200;
            tg->fric_bw = 2500;
        }
        tg->attack = 0.008;
        break;
    case HAFM_CONS_NASAL:
    case HAFM_CONS_LIQUID:
        tg->voicing = (nt->consonant == HAFM_CONS_NASAL ? 0.4 : 0.55) * nt->velocity;
        shape_consonant(&tg->shape, voice, nt->consonant);
        tg->has_shape = 1;
        tg->attack = 0.02;
        break;
    case HAFM_CONS_FRICATIVE:
        tg->frication = 0.45 * smoothstep(x / 0.35) * (1 - smoothstep((x - 0.85) / 0.15));
        tg->fric_freq = front ? 6000 : 3200;
        tg->fric_bw = front ? 2500 : 1800;
        tg->attack = 0.012;
        break;
    default:
        break;
    }
}

int hafm_singer_render(float *out, int64_t n, int sample_rate,
                       const hafm_sung_note *notes, int n_notes, const hafm_singer_params *p)
{
    if (sample_rate < 8000 || sample_rate > 96000) {
        hafm_error("singer: sample rate %d outside 8000..96000", sample_rate);
        return -1;
    }
    if (n < 0 || n_notes < 0 || (n_notes > 0 && !notes)) {
        hafm_error("singer: invalid arguments");
        return -1;
    }
    int voice = p->voice >= 0 && p->voice < HAFM_VOICE_COUNT ? p->voice : HAFM_VOICE_TENOR;
    for (int i = 0; i < n_notes; i++) {
        if (!(notes[i].offset > notes[i].onset) || (i && notes[i].onset < notes[i - 1].offset - 1e-9)) {
            hafm_error("singer: note %d is empty, unsorted or overlaps the previous one", i);
            return -1;
        }
    }
    memset(out, 0, (size_t)n * sizeof *out);
    if (n == 0)
        return 0;

    /* Note spans: the consonant borrows time from the rest or the previous note before it. */
    note_span *sp = hafm_xcalloc((size_t)n_notes + 1, sizeof *sp);
    for (int i = 0; i < n_notes; i++) {
        const hafm_sung_note *nt = &notes[i];
        int c = nt->consonant >= 0 && nt->consonant < HAFM_CONS_COUNT ? nt->consonant : 0;
        double start = nt->onset - consonant_dur[c];
        if (i) {
            double prev_mid = 0.5 * (notes[i - 1].onset + notes[i - 1].offset);
            if (start < prev_mid)
                start = prev_mid;
        }
        if (start < 0)
            start = 0;
        sp[i].start = start;
        sp[i].onset = nt->onset;
        sp[i].offset = nt->offset;
        sp[i].legato = i > 0 && !nt->phrase_start;
    }
    for (int i = 0; i < n_notes; i++) {
        double end = sp[i].offset + 0.25;
        if (i + 1 < n_notes && end > sp[i + 1].start)
            end = sp[i + 1].start;
        if (i + 1 < n_notes && sp[i].offset > sp[i + 1].start)
            sp[i].offset = sp[i + 1].start;
        sp[i].end = end;
    }

    const double fs = 2.0 * sample_rate, dt = 1.0 / fs;
    const int64_t n_int = 2 * n + 128;
    float *buf = hafm_xcalloc((size_t)n_int, sizeof *buf);
    rng64 rng = { p->seed * 0x2545F4914F6CDD1Dull + 0x1234567ull };

    const double oq_base = p->open_quotient < 0.3 ? 0.3 : p->open_quotient > 0.9 ? 0.9 : p->open_quotient;
    /* scales the flow derivative by the singer's base pulse, so a shorter closing phase gives a
     * larger closure discontinuity: more high-frequency energy at the same flow amplitude */
    const double dg_norm = 2 * (oq_base / 3.5) / M_PI;

    /* adjacent formants alternate in sign so their skirts add instead of cancelling (Klatt) */
    resonator formant[N_FORMANTS], fric = { 0 }, breath = { 0 };
    double formant_gain[N_FORMANTS] = { 0 };
    memset(formant, 0, sizeof formant);
    resonator_set(&breath, 1400 * tract_scale[voice], 1800, fs);
    /* a broad, weak resonance above the fifth formant: the table stops near 3-5 kHz, real
     * voices keep some harmonic energy up to 8 kHz ("air") */
    resonator presence = { 0 };
    resonator_set(&presence, 5200 * tract_scale[voice], 2500, fs);
    const double presence_gain = pow(10.0, -34.0 / 20);
    tract_shape cur;
    shape_vowel(&cur, voice, n_notes ? notes[0].vowel : HAFM_VOWEL_A);

    double phase = 0, period_scale = 1, amp_scale = 1, tilt = 0;
    double voicing = 0, vib_env = 0, vib_phase = 0, pitch = n_notes ? notes[0].pitch : 60;
    double drift = 0, drift_target = 0, dc_x1 = 0, dc_y1 = 0, fric_freq = 3000, fric_bw = 2000;
    double note_vib_rate = p->vibrato_rate;
    int k = -1;
    for (int64_t s = 0; s < n_int; s++) {
        double t = s * dt;
        while (k + 1 < n_notes && t >= sp[k + 1].start) {
            k++;
            note_vib_rate = p->vibrato_rate * (1 + p->vibrato_spread * rng_gauss(&rng));
        }
        targets tg = { 0 };
        tg.pitch = pitch;
        tg.attack = 0.025;
        tg.fric_freq = fric_freq;
        tg.fric_bw = fric_bw;
        if (k >= 0 && t < sp[k].end) {
            const hafm_sung_note *nt = &notes[k];
            double prev_pitch = k > 0 ? notes[k - 1].pitch : nt->pitch;
            if (t < sp[k].onset) {
                tg.pitch = sp[k].legato ? prev_pitch : nt->pitch - p->scoop / 100;
                consonant_targets(&tg, nt, &sp[k], t, voice);
            } else if (t < sp[k].offset) {
                double u = t - sp[k].onset;
                if (sp[k].legato)
                    tg.pitch = prev_pitch + (nt->pitch - prev_pitch) * smoothstep(u / (p->portamento > 1e-4 ? p->portamento : 1e-4));
                else
                    tg.pitch = nt->pitch - p->scoop / 100 * (1 - smoothstep(u / 0.12));
                /* a long note swells and eases (messa di voce) */
                double len = sp[k].offset - sp[k].onset;
                tg.voicing = nt->velocity * (len > 1 ? 1 + 0.12 * sin(M_PI * u / len) : 1);
                tg.vibrato = smoothstep((u - p->vibrato_delay) / 0.2);
                shape_vowel(&tg.shape, voice, nt->vowel);
                tg.has_shape = 1;
                if (nt->consonant == HAFM_CONS_PLOSIVE)
                    tg.attack = 0.008;
            } else {
                tg.pitch = nt->pitch;
            }
        }
        double breath_env = 0;
        if (k + 1 < n_notes && notes[k + 1].phrase_start) {
            double b_end = sp[k + 1].start - 0.06, b_dur = 0.3;
            double b_start = b_end - b_dur;
            if (k >= 0 && b_start < sp[k].end) {
                b_start = sp[k].end;
                b_dur = b_end - b_start;
            }
            if (b_dur > 0.08 && t >= b_start && t < b_end) {
                double x = sin(M_PI * (t - b_start) / b_dur);
                breath_env = x * x;
            }
        }

        /* smoothing: muscles and articulators do not jump */
        double tau_v = tg.voicing > voicing ? tg.attack : 0.045;
        voicing += (tg.voicing - voicing) * (dt / (tau_v + dt));
        vib_env += (tg.vibrato - vib_env) * (dt / (0.08 + dt));
        pitch += (tg.pitch - pitch) * (dt / (0.012 + dt));
        if (tg.has_shape) {
            double a = dt / (0.025 + dt);
            for (int f = 0; f < N_FORMANTS; f++) {
                cur.logf[f] += (tg.shape.logf[f] - cur.logf[f]) * a;
                cur.bw[f] += (tg.shape.bw[f] - cur.bw[f]) * a;
                cur.g[f] += (tg.shape.g[f] - cur.g[f]) * a;
            }
        }
        if ((s & 4095) == 0)
            drift_target = p->drift * rng_gauss(&rng);
        drift += (drift_target - drift) * (dt / (0.2 + dt));
        if ((s & 7) == 0) {
            for (int f = 0; f < N_FORMANTS; f++) {
                resonator_set(&formant[f], exp(cur.logf[f]), cur.bw[f], fs);
                formant_gain[f] = ((f & 1) ? -1 : 1) * pow(10.0, cur.g[f] / 20);
            }
            if (tg.frication > 0 && (tg.fric_freq != fric_freq || tg.fric_bw != fric_bw)) {
                fric_freq = tg.fric_freq;
                fric_bw = tg.fric_bw;
            }
            resonator_set(&fric, fric_freq, fric_bw, fs);
        }

        /* glottal source: Rosenberg flow and its derivative, one period at a time */
        vib_phase += 2 * M_PI * note_vib_rate * dt;
        if (vib_phase > 2 * M_PI)
            vib_phase -= 2 * M_PI;
        double cents = p->vibrato_depth * vib_env * sin(vib_phase) + drift;
        double f0 = 440.0 * pow(2.0, (pitch - 69) / 12 + cents / 1200);
        phase += f0 * dt * period_scale;
        if (phase >= 1) {
            phase -= floor(phase);
            period_scale = 1 + p->jitter * rng_gauss(&rng);
            amp_scale = 1 + p->shimmer * rng_gauss(&rng);
            if (amp_scale < 0.5)
                amp_scale = 0.5;
        }
        /* louder singing closes the glottis for longer: a smaller open quotient */
        double oq = oq_base + 0.25 * (0.8 - voicing);
        oq = oq < 0.3 ? 0.3 : oq > 0.9 ? 0.9 : oq;
        double tp = oq * 2.5 / 3.5, tn = oq / 3.5;
        double flow, dflow;
        if (phase < tp) {
            flow = 0.5 * (1 - cos(M_PI * phase / tp));
            dflow = M_PI / (2 * tp) * sin(M_PI * phase / tp);
        } else if (phase < tp + tn) {
            flow = cos(M_PI / 2 * (phase - tp) / tn);
            dflow = -M_PI / (2 * tn) * sin(M_PI / 2 * (phase - tp) / tn);
        } else {
            flow = 0;
            dflow = 0;
        }
        double noise = rng_gauss(&rng);
        /* the closing phase's return (the LF model's Ta) as a first-order low-pass whose
         * corner rises with loudness: soft singing is dark, full voice bright */
        double fa = 1200 + 4000 * voicing * voicing;
        double pulse = voicing * amp_scale * dflow * dg_norm;
        tilt += (pulse - tilt) * (1 - exp(-2 * M_PI * fa * dt));
        double source = tilt
                      + noise * (p->breathiness * voicing * (0.25 + flow) * 0.35 + tg.aspiration * 0.25);
        double voiced = presence_gain * resonator_run(&presence, source);
        for (int f = 0; f < N_FORMANTS; f++)
            voiced += formant_gain[f] * resonator_run(&formant[f], source);
        double noise2 = rng_gauss(&rng);
        double hiss = resonator_run(&fric, noise2 * tg.frication);
        double inhale = resonator_run(&breath, noise * breath_env * p->breath_level * 0.12);
        double x = 2.5 * voiced + 0.6 * hiss + inhale;
        double y = x - dc_x1 + 0.995 * dc_y1;  /* DC blocker */
        dc_x1 = x;
        dc_y1 = y;
        buf[s] = (float)y;
    }

    /* decimate by two: Blackman-windowed sinc, cut-off at 0.92 of the output's Nyquist frequency */
    enum { HALF = 47 };
    double h[2 * HALF + 1], hsum = 0;
    for (int i = -HALF; i <= HALF; i++) {
        double fc = 0.23, x = 2 * M_PI * fc * i;
        double w = 0.42 + 0.5 * cos(M_PI * i / (HALF + 1)) + 0.08 * cos(2 * M_PI * i / (HALF + 1));
        h[i + HALF] = (i ? sin(x) / (M_PI * i) : 2 * fc) * w;
        hsum += h[i + HALF];
    }
    for (int64_t o = 0; o < n; o++) {
        double acc = 0;
        int64_t c = 2 * o;
        for (int i = -HALF; i <= HALF; i++) {
            int64_t j = c + i;
            if (j >= 0 && j < n_int)
                acc += h[i + HALF] * buf[j];
        }
        out[o] = (float)(acc / hsum);
    }
    free(buf);
    free(sp);
    return 0;
}
