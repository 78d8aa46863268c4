/* accompany.c - vocal file -> accompaniment and mix through the HAFM commands (hafm/accompany.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <ebur128.h>
#include "hafm/accompany.h"

extern char **environ;

void hafm_accompany_opts_default(hafm_accompany_opts *o)
{
    memset(o, 0, sizeof *o);
    /* negative: unset, so each stage uses its model's sampling defaults */
    o->cfg_scale = -1.0;
    o->temperature = -1.0;
    o->top_k = -1;
    o->top_p = -1.0;
    o->balance_db = 2.0;
}

static int exe_dir(char *out, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    snprintf(out, size, "%s", dirname(exe));
    return 0;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *hafm_accompany_models_dir(const char *dir)
{
    if (dir) return hafm_xstrdup(dir);
    const char *env = getenv("HAFM_MODELS");
    if (env && *env) return hafm_xstrdup(env);
    char here[PATH_MAX];
    if (exe_dir(here, sizeof here) == 0) {
        const char *rel[] = { "../share/hafm/models", "../models" };
        for (int i = 0; i < 2; i++) {
            char path[PATH_MAX + 64];
            snprintf(path, sizeof path, "%s/%s/stage1.safetensors", here, rel[i]);
            if (is_file(path)) {
                path[strlen(path) - strlen("/stage1.safetensors")] = 0;
                return hafm_xstrdup(path);
            }
        }
    }
    hafm_error("no models: give --models DIR or set HAFM_MODELS (neither ../share/hafm/models nor ../models "
               "beside the executable holds stage1.safetensors; examples/train makes them)");
    return NULL;
}

/* ---- running a command ------------------------------------------------------------------------ */
/* Runs argv[0] (beside this executable, in bin_dir, or on PATH) with stdout to out_path. */
static int run(const char *bin_dir, char **argv, const char *out_path, double *seconds)
{
    char path[PATH_MAX + 64], here[PATH_MAX];
    const char *dir = bin_dir;
    if (!dir && exe_dir(here, sizeof here) == 0) {
        snprintf(path, sizeof path, "%s/%s", here, argv[0]);
        if (access(path, X_OK) == 0) dir = here;
    }
    if (dir) snprintf(path, sizeof path, "%s/%s", dir, argv[0]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    double t0 = hafm_now();
    int err = dir ? posix_spawn(&pid, path, &fa, NULL, argv, environ) : posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err) {
        errno = err;
        hafm_error("cannot run %s:", dir ? path : argv[0]);
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            hafm_error("waiting for %s:", argv[0]);
            return -1;
        }
    *seconds = hafm_now() - t0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFEXITED(status)) hafm_error("%s failed (exit status %d)", argv[0], WEXITSTATUS(status));
    else hafm_error("%s was killed by signal %d", argv[0], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return -1;
}

/* ---- loudness and mixing ---------------------------------------------------------------------- */
int hafm_loudness(const hafm_audio *a, double *lufs)
{
    ebur128_state *st = ebur128_init((unsigned)a->channels, (unsigned long)a->sample_rate, EBUR128_MODE_I);
    if (!st) {
        hafm_error("libebur128: cannot measure %d channels at %d Hz", a->channels, a->sample_rate);
        return -1;
    }
    int rc = ebur128_add_frames_float(st, a->data, (size_t)a->frames) == EBUR128_SUCCESS &&
             ebur128_loudness_global(st, lufs) == EBUR128_SUCCESS ? 0 : -1;
    ebur128_destroy(&st);
    if (rc < 0) hafm_error("libebur128: loudness measurement failed");
    return rc;
}

int hafm_mix_loudness(const hafm_audio *vocal, const hafm_audio *accomp, double balance_db, hafm_audio *out,
                      hafm_accompany_report *rep)
{
    hafm_audio mono = { 0 }, res = { 0 };
    if (hafm_audio_to_mono(accomp, &mono) < 0 || hafm_audio_resample(&mono, vocal->sample_rate, &res) < 0) {
        hafm_audio_free(&mono);
        return -1;
    }
    hafm_audio_free(&mono);
    /* the accompaniment as it will sound in the mix: in every channel of the vocal, at its length
     * (BS.1770 sums the channels' power, so its loudness depends on the channel count) */
    int C = vocal->channels;
    int64_t n = vocal->frames;
    hafm_audio acc = { hafm_xcalloc((size_t)n * C, sizeof(float)), n, C, vocal->sample_rate };
    for (int64_t t = 0; t < n && t < res.frames; t++)
        for (int c = 0; c < C; c++) acc.data[t * C + c] = res.data[t];
    hafm_audio_free(&res);
    double lv, la;
    if (hafm_loudness(vocal, &lv) < 0 || hafm_loudness(&acc, &la) < 0) {
        hafm_audio_free(&acc);
        return -1;
    }
    /* gated loudness is -inf for silence: then there is nothing to match */
    double gain_db = isfinite(lv) && isfinite(la) ? lv - balance_db - la : 0.0;
    float g = (float)pow(10.0, gain_db / 20.0);
    out->channels = C;
    out->sample_rate = vocal->sample_rate;
    out->frames = n;
    out->data = hafm_xmalloc((size_t)n * C * sizeof *out->data);
    double peak = 0;
    for (int64_t i = 0; i < n * C; i++) {
        out->data[i] = vocal->data[i] + g * acc.data[i];
        if (fabs(out->data[i]) > peak) peak = fabs(out->data[i]);
    }
    hafm_audio_free(&acc);
    double limit = peak > 0.99 ? 0.99 / peak : 1.0;
    if (limit < 1.0)
        for (int64_t i = 0; i < n * C; i++) out->data[i] = (float)(out->data[i] * limit);
    if (rep) {
        rep->vocal_lufs = lv;
        rep->accomp_lufs = la;
        rep->accomp_gain_db = gain_db;
        rep->peak_gain_db = 20 * log10(limit);
    }
    return 0;
}

/* ---- the pipeline ----------------------------------------------------------------------------- */
typedef struct {
    char dir[PATH_MAX];
    char path[HAFM_ACCOMPANY_STEPS + 1][PATH_MAX + 32];
} workspace;

static void workspace_remove(workspace *w)
{
    for (int i = 0; i <= HAFM_ACCOMPANY_STEPS; i++) unlink(w->path[i]);
    rmdir(w->dir);
}

#define MAX_ARGS 32
typedef struct { char *v[MAX_ARGS + 1]; int n; char buf[MAX_ARGS][64]; } args;

static void arg(args *a, const char *s) { if (a->n < MAX_ARGS) a->v[a->n++] = (char *)s; a->v[a->n] = NULL; }
static void argf(args *a, const char *fmt, double v)
{
    if (a->n >= MAX_ARGS) return;
    snprintf(a->buf[a->n], sizeof a->buf[a->n], fmt, v);
    arg(a, a->buf[a->n]);
}
static void argu(args *a, uint64_t v)
{
    if (a->n >= MAX_ARGS) return;
    snprintf(a->buf[a->n], sizeof a->buf[a->n], "%llu", (unsigned long long)v);
    arg(a, a->buf[a->n]);
}

static int write_audio(const char *path, const hafm_audio *a)
{
    if (hafm_audio_write(path, a, HAFM_PCM16) < 0) {
        hafm_error_prefix("%s", path);
        return -1;
    }
    return 0;
}

int hafm_accompany(const hafm_accompany_opts *o, hafm_accompany_report *rep)
{
    memset(rep, 0, sizeof *rep);
    char model[6][PATH_MAX + 64];
    const char *names[] = { "centroids", "stage1", "stage2", "stage3", "codec" };
    for (int i = 0; i < 5 && !o->accomp_in; i++) {
        snprintf(model[i], sizeof model[i], "%s/%s.safetensors", o->models, names[i]);
        if (!is_file(model[i])) {
            hafm_error("%s: no such model file", model[i]);
            return -1;
        }
    }
    /* read the vocal first: a bad input fails before any model runs */
    hafm_audio vocal;
    if (hafm_audio_read(o->vocal, &vocal) < 0) {
        hafm_error_prefix("%s", o->vocal);
        return -1;
    }
    workspace w;
    const char *tmp = getenv("TMPDIR");
    snprintf(w.dir, sizeof w.dir, "%s/hafm-accompany.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(w.dir)) {
        hafm_error("cannot create a directory in %s:", tmp && *tmp ? tmp : "/tmp");
        hafm_audio_free(&vocal);
        return -1;
    }
    /* a copy of the name: snprintf from one member of w into another trips -Wrestrict */
    char dir[PATH_MAX];
    memcpy(dir, w.dir, sizeof dir);
    for (int i = 0; i < HAFM_ACCOMPANY_STEPS; i++) snprintf(w.path[i], sizeof w.path[i], "%s/%d.hafm", dir, i);
    snprintf(w.path[HAFM_ACCOMPANY_STEPS], sizeof w.path[0], "%s/accompaniment.wav", dir);
    char threads[32];
    snprintf(threads, sizeof threads, "%d", o->threads);
    int status = -1;
    hafm_audio acc = { 0 }, mix = { 0 };
    for (int s = 0; s < HAFM_ACCOMPANY_STEPS && !o->accomp_in; s++) {
        args a = { 0 };
        const char *out = w.path[s];
        if (s == 0) {
            arg(&a, "hubert-tok");
            if (o->features) { arg(&a, "-F"); arg(&a, o->features); }
            if (o->hubert_model) { arg(&a, "-m"); arg(&a, o->hubert_model); }
            arg(&a, "-c"); arg(&a, model[0]);
        } else if (s <= 3) {
            static const char *cmd[] = { NULL, "hafm-stage1", "hafm-stage2", "hafm-stage3" };
            arg(&a, cmd[s]);
            arg(&a, "-q");
            arg(&a, "-m"); arg(&a, model[s]);
            arg(&a, "-S"); argu(&a, o->seed);
            if (o->cfg_scale >= 0) { arg(&a, "-s"); argf(&a, "%.17g", o->cfg_scale); }
            if (o->temperature >= 0) { arg(&a, "-T"); argf(&a, "%.17g", o->temperature); }
            if (o->top_k >= 0) { arg(&a, "-k"); argu(&a, (uint64_t)o->top_k); }
            if (o->top_p >= 0) { arg(&a, "-p"); argf(&a, "%.17g", o->top_p); }
        } else {
            arg(&a, "encodec-dec");
            arg(&a, "-m"); arg(&a, model[4]);
            arg(&a, "-f"); arg(&a, "float");
            arg(&a, "-o"); arg(&a, w.path[HAFM_ACCOMPANY_STEPS]);
        }
        if (o->threads > 0) { arg(&a, "-t"); arg(&a, threads); }
        arg(&a, s == 0 ? o->vocal : w.path[s - 1]);
        rep->name[s] = a.v[0];
        if (run(o->bin_dir, a.v, out, &rep->seconds[s]) < 0) goto out;
        if (!o->quiet) fprintf(stderr, "%s: %-12s %8.2f s\n", hafm_progname, rep->name[s], rep->seconds[s]);
    }
    double t0 = hafm_now();
    const char *acc_path = o->accomp_in ? o->accomp_in : w.path[HAFM_ACCOMPANY_STEPS];
    if (hafm_audio_read(acc_path, &acc) < 0) {
        hafm_error_prefix("%s", acc_path);
        goto out;
    }
    /* the stages generate whole frames: give the accompaniment exactly the vocal's duration */
    int64_t want = (int64_t)llround((double)vocal.frames * acc.sample_rate / vocal.sample_rate);
    if (want != acc.frames) {
        acc.data = hafm_xrealloc(acc.data, (size_t)(want > 0 ? want : 1) * acc.channels * sizeof *acc.data);
        if (want > acc.frames)
            memset(acc.data + acc.frames * acc.channels, 0, (size_t)(want - acc.frames) * acc.channels * sizeof *acc.data);
        acc.frames = want;
    }
    if (o->accomp_out && write_audio(o->accomp_out, &acc) < 0) goto out;
    if (o->mix_out) {
        if (hafm_mix_loudness(&vocal, &acc, o->balance_db, &mix, rep) < 0) goto out;
        if (write_audio(o->mix_out, &mix) < 0) goto out;
    }
    rep->mix_seconds = hafm_now() - t0;
    if (!o->quiet) {
        if (o->mix_out)
            fprintf(stderr, "%s: %-12s %8.2f s  (vocal %.1f LUFS, accompaniment %.1f LUFS %+.1f dB, peak %+.1f dB)\n",
                    hafm_progname, "mix", rep->mix_seconds, rep->vocal_lufs, rep->accomp_lufs, rep->accomp_gain_db,
                    rep->peak_gain_db);
        double total = rep->mix_seconds;
        for (int s = 0; s < HAFM_ACCOMPANY_STEPS; s++) total += rep->seconds[s];
        if (!o->accomp_in) fprintf(stderr, "%s: %-12s %8.2f s for %.1f s of vocal\n", hafm_progname, "total", total,
                (double)vocal.frames / vocal.sample_rate);
    }
    status = 0;
out:
    workspace_remove(&w);
    hafm_audio_free(&vocal);
    hafm_audio_free(&acc);
    hafm_audio_free(&mix);
    return status;
}
