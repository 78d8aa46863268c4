/* compose_render.c - a composed song as audio files (see hafm/compose.h).
 *
 * The accompaniment is rendered by the fluidsynth program, one run per stem, rather than by
 * linking libfluidsynth: Debian ships the program with the SoundFont but not the library's
 * headers (libfluidsynth-dev), the program's file renderer is deterministic (float output, no
 * dither), and a separate process keeps the 140 MB SoundFont out of libhafm's users. It costs
 * about 0.7 s of SoundFont loading per stem; see examples/corpus/README.md for the figures.
 */
#include "hafm/compose.h"
#include "hafm/audio.h"
#include "hafm/common.h"
#include "hafm/stream.h"
#include "compose_internal.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- rendering -------------------------------------------------------------------------------- */
void hafm_render_defaults(hafm_render_opts *o)
{
    const char *sf = getenv("HAFM_SOUNDFONT"), *fs = getenv("HAFM_FLUIDSYNTH");
    o->soundfont = sf && *sf ? sf : "/usr/share/sounds/sf2/FluidR3_GM.sf2";
    o->fluidsynth = fs && *fs ? fs : "fluidsynth";
    o->sample_rate = 24000;
    o->keep_stems = 0;
    o->no_audio = 0;
    o->jobs = 0;
}

static int make_dirs(const char *path)
{
    char *p = hafm_xstrdup(path);
    for (char *q = p + 1; ; q++) {
        if (*q == '/' || *q == 0) {
            char c = *q;
            *q = 0;
            if (mkdir(p, 0777) < 0 && errno != EEXIST) {
                hafm_error("cannot create directory %s:", p);
                free(p);
                return -1;
            }
            *q = c;
            if (!c)
                break;
        }
    }
    free(p);
    return 0;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = hafm_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int write_text(const char *path, const char *text)
{
    hafm_outfile *of = hafm_outfile_open(path);
    if (!of)
        return -1;
    FILE *fp = hafm_outfile_fp(of);
    if (fputs(text, fp) < 0 || fputc('\n', fp) < 0) {
        hafm_error("writing %s:", path);
        hafm_outfile_abort(of);
        return -1;
    }
    return hafm_outfile_commit(of);
}

/* Starts fluidsynth on one MIDI file (its chatter goes to /dev/null); -1 + error on failure. */
static pid_t spawn_fluidsynth(const hafm_render_opts *o, const char *mid, const char *wav)
{
    char rate[16];
    snprintf(rate, sizeof rate, "%d", o->sample_rate);
    /* dynamic sample loading reads only the samples the stem's presets use: the same output,
     * a fraction of the 140 MB SoundFont read per run */
    char *argv[] = { (char *)o->fluidsynth, "-n", "-i", "-q", "-T", "wav", "-O", "float", "-r", rate,
                     "-o", "synth.dynamic-sample-loading=1",
                     "-F", (char *)wav, (char *)o->soundfont, (char *)mid, NULL };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, o->fluidsynth, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        errno = rc;
        hafm_error("cannot run '%s':", o->fluidsynth);
        return -1;
    }
    return pid;
}

static int wait_fluidsynth(const hafm_render_opts *o, pid_t pid, int part)
{
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            hafm_error("waiting for %s:", o->fluidsynth);
            return -1;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        hafm_error("%s failed on the %s stem (exit status %d)", o->fluidsynth, hafm_part_name(part),
                   WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        return -1;
    }
    return 0;
}

/* Renders the accompaniment parts, each through its own fluidsynth run, up to o->jobs runs at
 * a time, into mono stems[p][0..n) (NULL for a silent part). */
static int render_stems(const hafm_song *s, const hafm_render_opts *o, const char *dir, float **stems, int64_t n)
{
    char *mid[HAFM_PART_COUNT] = { 0 }, *wav[HAFM_PART_COUNT] = { 0 };
    pid_t pid[HAFM_PART_COUNT];
    int rc = 0, jobs = o->jobs > 0 ? o->jobs : hafm_get_threads(), running = 0, first_running = 0;
    for (int p = 0; p < HAFM_PART_COUNT; p++)
        pid[p] = 0;
    for (int p = HAFM_PART_BASS; p < HAFM_PART_COUNT && rc == 0; p++) {
        if (!s->parts[p].n)
            continue;
        char name[64];
        if (o->keep_stems)
            snprintf(name, sizeof name, "stems/%s.mid", hafm_part_name(p));
        else
            snprintf(name, sizeof name, ".tmp-%ld-%s.mid", (long)getpid(), hafm_part_name(p));
        mid[p] = path_join(dir, name);
        snprintf(name, sizeof name, ".tmp-%ld-%s.wav", (long)getpid(), hafm_part_name(p));
        wav[p] = path_join(dir, name);
        hafm_smf *m = hafm_song_midi(s, 1u << p);
        rc = hafm_smf_save(m, mid[p]);
        hafm_smf_free(m);
    }
    /* start runs in part order, waiting for the oldest when jobs are busy */
    for (int p = HAFM_PART_BASS; p < HAFM_PART_COUNT && rc == 0; p++) {
        if (!mid[p])
            continue;
        while (running >= jobs) {
            while (!pid[first_running])
                first_running++;
            if (wait_fluidsynth(o, pid[first_running], first_running) < 0)
                rc = -1;
            pid[first_running++] = 0;
            running--;
        }
        if (rc == 0) {
            pid[p] = spawn_fluidsynth(o, mid[p], wav[p]);
            if (pid[p] < 0) {
                pid[p] = 0;
                rc = -1;
            } else {
                running++;
            }
        }
    }
    for (int p = 0; p < HAFM_PART_COUNT; p++) {
        if (pid[p] > 0) {
            int wrc = wait_fluidsynth(o, pid[p], p);
            if (rc == 0)
                rc = wrc;
        }
    }
    for (int p = HAFM_PART_BASS; p < HAFM_PART_COUNT; p++) {
        if (!mid[p])
            continue;
        hafm_audio a = { 0 };
        if (rc == 0 && hafm_audio_read(wav[p], &a) < 0) {
            hafm_error_prefix("reading fluidsynth output");
            rc = -1;
        }
        if (rc == 0 && a.sample_rate != o->sample_rate) {
            hafm_error("fluidsynth wrote %d Hz, asked for %d Hz", a.sample_rate, o->sample_rate);
            rc = -1;
        }
        if (rc == 0) {
            stems[p] = hafm_xcalloc((size_t)n, sizeof *stems[p]);
            int64_t m = a.frames < n ? a.frames : n;
            for (int64_t i = 0; i < m; i++) {
                double acc = 0;
                for (int c = 0; c < a.channels; c++)
                    acc += a.data[i * a.channels + c];
                stems[p][i] = (float)(acc / a.channels);
            }
        }
        hafm_audio_free(&a);
        unlink(wav[p]);
        if (!o->keep_stems)
            unlink(mid[p]);
        free(wav[p]);
        free(mid[p]);
    }
    return rc;
}

static double rms(const float *x, int64_t n)
{
    double acc = 0;
    for (int64_t i = 0; i < n; i++)
        acc += (double)x[i] * x[i];
    return n ? sqrt(acc / (double)n) : 0;
}

/* Float to PCM16 the way the toolkit reads it back (x 32768, saturating). */
static void quantise(int16_t *out, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        double v = floor((double)x[i] * 32768.0 + 0.5);
        out[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
    }
}

static int write_mono(const char *dir, const char *name, const int16_t *x, int64_t n, int rate)
{
    char *path = path_join(dir, name);
    hafm_sndwriter *w = hafm_sndwriter_open(path, rate, 1, HAFM_PCM16);
    int rc = -1;
    if (w) {
        if (hafm_sndwriter_write_i16(w, x, n) < 0)
            hafm_sndwriter_abort(w);
        else
            rc = hafm_sndwriter_close(w);
    }
    if (rc < 0)
        hafm_error_prefix("%s", path);
    free(path);
    return rc;
}

/* song.hafm: one item keyed by the song id with the vocal, accomp and mix tracks (the same
 * PCM16 samples as the WAV files), so per-split streams are a plain concatenation of songs. */
static int write_pair_stream(const hafm_song *s, const char *dir, int16_t *const pcm[3], int64_t n, int rate)
{
    static const char *const names[3] = { "vocal", "accomp", "mix" };
    static const char *const roles[3] = { "vocal", "accompaniment", "mixture" };
    char *path = path_join(dir, "song.hafm");
    hafm_outfile *of = hafm_outfile_open(path);
    free(path);
    if (!of)
        return -1;
    hafm_writer *w = hafm_writer_open(hafm_outfile_fp(of), hafm_progname);
    int rc = w && hafm_write_item(w, s->id) == 0 ? 0 : -1;
    for (int k = 0; k < 3 && rc == 0; k++) {
        hafm_track t;
        hafm_track_init_audio(&t, names[k], HAFM_DT_I16, rate, 1);
        t.frames = n;
        rc = hafm_track_set_producer(&t, hafm_progname, HAFM_VERSION) < 0 ||
             hafm_track_param_int(&t, "seed", s->seed) < 0 || hafm_track_param_int(&t, "index", s->index) < 0 ||
             hafm_track_attr_str(&t, "role", roles[k]) < 0 || hafm_write_track(w, &t) < 0 ||
             hafm_write_data(w, t.id, pcm[k], n) < 0 || hafm_write_end(w, t.id, -1, 0) < 0 ? -1 : 0;
        hafm_track_free(&t);
    }
    if (rc == 0)
        rc = hafm_write_item_end(w);
    if (rc == 0) {
        rc = hafm_writer_close(w);
        w = NULL;
    }
    if (w)
        hafm_writer_free(w);
    if (rc < 0) {
        hafm_outfile_abort(of);
        return -1;
    }
    return hafm_outfile_commit(of);
}

/* After a failure: no half-made song stays behind (the directories may). */
static void remove_song_files(const char *dir)
{
    static const char *const names[] = { "song.mid", "song.hafm", "vocal.wav", "accomp.wav", "mix.wav", "labels.json" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = path_join(dir, names[i]);
        unlink(p);
        free(p);
    }
    for (int part = HAFM_PART_BASS; part < HAFM_PART_COUNT; part++) {
        char name[64];
        snprintf(name, sizeof name, "stems/%s.wav", hafm_part_name(part));
        char *p = path_join(dir, name);
        unlink(p);
        free(p);
        snprintf(name, sizeof name, "stems/%s.mid", hafm_part_name(part));
        p = path_join(dir, name);
        unlink(p);
        free(p);
    }
}

int hafm_song_render(const hafm_song *s, const char *dir, const hafm_render_opts *o)
{
    if (o->sample_rate < 8000 || o->sample_rate > 96000) {
        hafm_error("sample rate %d outside 8000..96000", o->sample_rate);
        return -1;
    }
    if (make_dirs(dir) < 0)
        return -1;
    int rc = -1;
    char *stem_dir = path_join(dir, "stems");
    float *acc = NULL, *voc = NULL;
    int16_t *pcm[3] = { NULL, NULL, NULL };      /* vocal, accomp, mix as written */
    float *stems[HAFM_PART_COUNT] = { 0 };
    hafm_sung_note *notes = NULL;
    cJSON *labels = NULL;

    /* an old labels.json goes first: until the new one is written the song is incomplete */
    char *labels_path = path_join(dir, "labels.json");
    if (unlink(labels_path) < 0 && errno != ENOENT) {
        hafm_error("cannot remove %s:", labels_path);
        free(labels_path);
        free(stem_dir);
        return -1;
    }
    labels = hafm__labels_object(s, o->sample_rate);
    if (!o->no_audio) {
        if (access(o->soundfont, R_OK) < 0) {
            hafm_error("soundfont %s:", o->soundfont);
            goto done;
        }
        if (o->keep_stems && make_dirs(stem_dir) < 0)
            goto done;
        int64_t n = (int64_t)floor(hafm_song_duration(s) * o->sample_rate + 0.5);
        acc = hafm_xcalloc((size_t)n, sizeof *acc);
        voc = hafm_xcalloc((size_t)n, sizeof *voc);
        if (render_stems(s, o, dir, stems, n) < 0)
            goto done;
        for (int p = HAFM_PART_BASS; p < HAFM_PART_COUNT; p++)
            for (int64_t i = 0; stems[p] && i < n; i++)
                acc[i] += stems[p][i];
        int n_notes = hafm_song_sung_notes(s, &notes);
        if (hafm_singer_render(voc, n, o->sample_rate, notes, n_notes, &s->singer) < 0)
            goto done;

        /* levels: accompaniment at -20 dBFS RMS, the vocal vocal_db above it while it sings */
        double acc_rms = rms(acc, n), voc_energy = 0, voc_time = 0;
        for (int i = 0; i < n_notes; i++) {
            int64_t a = (int64_t)(notes[i].onset * o->sample_rate), b = (int64_t)(notes[i].offset * o->sample_rate);
            if (b > n)
                b = n;
            for (int64_t j = a; j < b; j++)
                voc_energy += (double)voc[j] * voc[j];
            voc_time += (double)(b - a);
        }
        double voc_rms = voc_time > 0 ? sqrt(voc_energy / voc_time) : 0;
        double target = pow(10, -20.0 / 20);
        double g_acc = acc_rms > 0 ? target / acc_rms : 1;
        double g_voc = voc_rms > 0 ? target * pow(10, s->vocal_db / 20) / voc_rms : 1;
        double peak = 0;
        for (int64_t i = 0; i < n; i++) {
            double a = g_acc * acc[i], v = g_voc * voc[i];
            peak = fmax(peak, fmax(fabs(a + v), fmax(fabs(a), fabs(v))));
        }
        for (int p = HAFM_PART_BASS; p < HAFM_PART_COUNT; p++)
            for (int64_t i = 0; stems[p] && i < n; i++)
                peak = fmax(peak, fabs(g_acc * stems[p][i]));
        if (peak > 0.95) {                      /* headroom for PCM16 without clipping */
            g_acc *= 0.95 / peak;
            g_voc *= 0.95 / peak;
        }
        for (int64_t i = 0; i < n; i++) {
            acc[i] = (float)(g_acc * acc[i]);
            voc[i] = (float)(g_voc * voc[i]);
        }
        /* the mixture is the sum of the quantised stems: mix = vocal + accomp exactly */
        pcm[0] = hafm_xmalloc((size_t)n * sizeof *pcm[0]);
        pcm[1] = hafm_xmalloc((size_t)n * sizeof *pcm[1]);
        pcm[2] = hafm_xmalloc((size_t)n * sizeof *pcm[2]);
        quantise(pcm[0], voc, n);
        quantise(pcm[1], acc, n);
        for (int64_t i = 0; i < n; i++)
            pcm[2][i] = (int16_t)(pcm[0][i] + pcm[1][i]);
        if (write_mono(dir, "vocal.wav", pcm[0], n, o->sample_rate) < 0 ||
            write_mono(dir, "accomp.wav", pcm[1], n, o->sample_rate) < 0 ||
            write_mono(dir, "mix.wav", pcm[2], n, o->sample_rate) < 0 ||
            write_pair_stream(s, dir, pcm, n, o->sample_rate) < 0)
            goto done;
        for (int p = HAFM_PART_BASS; p < HAFM_PART_COUNT && o->keep_stems; p++) {
            if (!stems[p])
                continue;
            for (int64_t i = 0; i < n; i++)
                stems[p][i] = (float)(g_acc * stems[p][i]);
            quantise(pcm[1], stems[p], n);
            char name[64];
            snprintf(name, sizeof name, "%s.wav", hafm_part_name(p));
            if (write_mono(stem_dir, name, pcm[1], n, o->sample_rate) < 0)
                goto done;
        }
        cJSON *mixj = cJSON_AddObjectToObject(labels, "mix");
        cJSON_AddNumberToObject(mixj, "samples", (double)n);
        cJSON_AddNumberToObject(mixj, "vocal_db", hafm__us(s->vocal_db));
        cJSON_AddNumberToObject(mixj, "accomp_gain", hafm__us(g_acc));
        cJSON_AddNumberToObject(mixj, "vocal_gain", hafm__us(g_voc));
        cJSON_AddStringToObject(mixj, "rule", "mix = vocal + accomp exactly (PCM16); accompaniment at -20 dBFS RMS, vocal vocal_db above it while singing, scaled down together to 0.95 peak");
    }
    {
        char *song_mid = path_join(dir, "song.mid");
        hafm_smf *m = hafm_song_midi(s, (1u << HAFM_PART_COUNT) - 1);
        int mrc = hafm_smf_save(m, song_mid);
        hafm_smf_free(m);
        free(song_mid);
        if (mrc < 0)
            goto done;
        char *text = hafm__print_labels(labels);
        labels = NULL;
        rc = text ? write_text(labels_path, text) : -1;
        free(text);
    }
done:
    if (rc < 0)
        remove_song_files(dir);
    free(labels_path);
    if (labels)
        cJSON_Delete(labels);
    for (int p = 0; p < HAFM_PART_COUNT; p++)
        free(stems[p]);
    free(notes);
    free(acc);
    free(voc);
    for (int k = 0; k < 3; k++)
        free(pcm[k]);
    free(stem_dir);
    return rc;
}
