/* audio.c - audio files through libsndfile, resampling through libsoxr, audio tracks.
 *
 * Reading from a pipe (path "-" or a FIFO). libsndfile streams WAV, AIFF, AU and Ogg from a
 * pipe file descriptor (its "pipe mode" skips the seeks it would otherwise do), but callers read
 * stdin through stdio first (hafm_input_is_stream peeks at a byte, so the FILE buffer already
 * holds data that the descriptor no longer has). So the reader looks at the first bytes:
 *  - formats libsndfile streams from a pipe: a pump thread copies the peeked bytes and the rest
 *    of the FILE into a fresh pipe whose read end libsndfile opens in pipe mode (bounded memory,
 *    output starts before the input ends);
 *  - any other format (FLAC, CAF, W64, ...: libsndfile seeks while decoding them): the whole
 *    input is spooled into memory and read through SF_VIRTUAL_IO (memory bounded by the input).
 * Seekable stdin is read in place through SF_VIRTUAL_IO over the FILE.
 *
 * Writing to "-" (WAV): when stdout is a regular file at offset 0, libsndfile writes it
 * directly; otherwise the file is built in memory (WAV headers carry the length, written at
 * the end) and copied out on close.
 *
 * Float <-> PCM conversion is done here, not by libsndfile, so that it is symmetric: reading
 * scales PCM16 by 1/32768 (libsndfile's read normalisation) and writing by 32768, rounding to
 * nearest and clipping, so float -> PCM16 -> float is exact for every x = k/32768.
 */
#define _GNU_SOURCE
#include "hafm/audio.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

void hafm_audio_free(hafm_audio *a) {
    if (!a) return;
    free(a->data);
    a->data = NULL;
    a->frames = 0;
}

/* ---- in-memory files for SF_VIRTUAL_IO ---------------------------------------------------- */

typedef struct {
    unsigned char *buf;
    sf_count_t len, cap, pos;
} memfile;

static sf_count_t mem_len(void *u) { return ((memfile *)u)->len; }
static sf_count_t mem_tell(void *u) { return ((memfile *)u)->pos; }

static sf_count_t mem_seek(sf_count_t off, int whence, void *u) {
    memfile *m = u;
    sf_count_t to = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : m->len + off;
    if (to < 0) return -1;
    m->pos = to;
    return to;
}

static sf_count_t mem_read(void *p, sf_count_t n, void *u) {
    memfile *m = u;
    sf_count_t k = m->pos >= m->len ? 0 : m->len - m->pos < n ? m->len - m->pos : n;
    if (k > 0) memcpy(p, m->buf + m->pos, (size_t)k);
    m->pos += k;
    return k;
}

static sf_count_t mem_write(const void *p, sf_count_t n, void *u) {
    memfile *m = u;
    if (m->pos + n > m->cap) {
        sf_count_t cap = m->cap ? m->cap : 1 << 16;
        while (cap < m->pos + n) cap *= 2;
        unsigned char *b = realloc(m->buf, (size_t)cap);
        if (!b) return 0;
        m->buf = b;
        m->cap = cap;
    }
    if (m->pos > m->len) memset(m->buf + m->len, 0, (size_t)(m->pos - m->len));
    memcpy(m->buf + m->pos, p, (size_t)n);
    m->pos += n;
    if (m->pos > m->len) m->len = m->pos;
    return n;
}

static SF_VIRTUAL_IO mem_vio = {mem_len, mem_seek, mem_read, mem_write, mem_tell};

/* ---- a seekable FILE for SF_VIRTUAL_IO (stdin redirected from a file) ----------------------- */

static sf_count_t file_len(void *u) {
    struct stat sb;
    return fstat(fileno((FILE *)u), &sb) == 0 ? (sf_count_t)sb.st_size : -1;
}
static sf_count_t file_tell(void *u) { return (sf_count_t)ftello((FILE *)u); }
static sf_count_t file_seek(sf_count_t off, int whence, void *u) {
    return fseeko((FILE *)u, (off_t)off, whence) == 0 ? (sf_count_t)ftello((FILE *)u) : -1;
}
static sf_count_t file_read(void *p, sf_count_t n, void *u) { return (sf_count_t)fread(p, 1, (size_t)n, (FILE *)u); }
static sf_count_t file_write(const void *p, sf_count_t n, void *u) { return 0; }

static SF_VIRTUAL_IO file_vio = {file_len, file_seek, file_read, file_write, file_tell};

/* ---- reading ------------------------------------------------------------------------------ */

#define PEEK_BYTES 12

typedef struct {
    FILE *in;
    int wfd;
    unsigned char prefix[PEEK_BYTES];
    size_t nprefix;
    pthread_t thread;
    int started;
} pump;

struct hafm_sndreader {
    SNDFILE *sf;
    SF_INFO info;
    char *name;
    FILE *own_fp;       /* a FIFO path we opened */
    memfile mem;        /* spooled input */
    pump pump;
    int pipe_mode;      /* frame count unknown */
};

static int write_all(int fd, const void *p, size_t n) {
    const unsigned char *b = p;
    while (n > 0) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Bytes the FILE holds in its buffer, readable without blocking; SIZE_MAX when unknown. This
 * is gnulib's freadahead() for glibc (coreutils relies on it too): the get area plus the
 * ungetc backup area (flag _IO_IN_BACKUP of glibc's libio). */
static size_t stdio_buffered(FILE *fp) {
#ifdef __GLIBC__
    size_t n = (size_t)(fp->_IO_read_end - fp->_IO_read_ptr);
    if (fp->_flags & 0x100) n += (size_t)(fp->_IO_save_end - fp->_IO_save_base);
    return n;
#else
    (void)fp;
    return SIZE_MAX;
#endif
}

static void *pump_main(void *arg) {
    pump *p = arg;
    /* A reader that stops early closes the pipe: see EPIPE here rather than die of SIGPIPE. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    unsigned char buf[1 << 16];
    if (write_all(p->wfd, p->prefix, p->nprefix) < 0) goto done;
    /* First what stdio already buffered, then straight from the descriptor: fread() would
     * wait for a full buffer, holding back audio that has arrived. */
    size_t n;
    while ((n = stdio_buffered(p->in)) > 0) {
        size_t k = fread(buf, 1, n < sizeof buf ? n : sizeof buf, p->in);
        if (k == 0 || write_all(p->wfd, buf, k) < 0) goto done;
    }
    for (;;) {
        ssize_t k = read(fileno(p->in), buf, sizeof buf);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0 || write_all(p->wfd, buf, (size_t)k) < 0) break;
    }
done:
    close(p->wfd);
    return NULL;
}

/* Formats libsndfile reads from a pipe without seeking. */
static int pipe_friendly(const unsigned char *m, size_t n) {
    static const char *const magic[] = {"RIFF", "RIFX", "RF64", "FORM", ".snd", "OggS"};
    if (n < 4) return 0;
    for (size_t i = 0; i < sizeof magic / sizeof magic[0]; i++)
        if (memcmp(m, magic[i], 4) == 0) return 1;
    return 0;
}

/* Opens libsndfile on a non-seekable FILE (see the top of the file). */
static int open_pipe(hafm_sndreader *r, FILE *in) {
    unsigned char m[PEEK_BYTES];
    size_t n = fread(m, 1, sizeof m, in);
    if (n == 0) {
        if (ferror(in)) hafm_error("%s: read:", r->name);
        else hafm_error("%s: empty input", r->name);
        return -1;
    }
    r->pipe_mode = 1;
    if (pipe_friendly(m, n)) {
        int fds[2];
        if (pipe(fds) < 0) { hafm_error("%s: pipe:", r->name); return -1; }
        fcntl(fds[0], F_SETFD, FD_CLOEXEC);
        fcntl(fds[1], F_SETFD, FD_CLOEXEC);
        pump *p = &r->pump;
        p->in = in;
        p->wfd = fds[1];
        memcpy(p->prefix, m, n);
        p->nprefix = n;
        if (pthread_create(&p->thread, NULL, pump_main, p) != 0) {
            close(fds[0]);
            close(fds[1]);
            hafm_error("%s: cannot start the input thread", r->name);
            return -1;
        }
        p->started = 1;
        r->sf = sf_open_fd(fds[0], SFM_READ, &r->info, SF_TRUE);
        if (!r->sf) close(fds[0]);
    } else {
        memfile *mf = &r->mem;
        if (mem_write(m, (sf_count_t)n, mf) != (sf_count_t)n) { hafm_error("%s: out of memory", r->name); return -1; }
        unsigned char buf[1 << 16];
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, in)) > 0)
            if (mem_write(buf, (sf_count_t)k, mf) != (sf_count_t)k) {
                hafm_error("%s: out of memory spooling the input (%lld bytes so far)", r->name, (long long)mf->len);
                return -1;
            }
        if (ferror(in)) { hafm_error("%s: read:", r->name); return -1; }
        mf->pos = 0;
        r->pipe_mode = 0;
        r->sf = sf_open_virtual(&mem_vio, SFM_READ, &r->info, mf);
    }
    return 0;
}

static int seekable(FILE *fp) {
    struct stat sb;
    return fstat(fileno(fp), &sb) == 0 && S_ISREG(sb.st_mode);
}

hafm_sndreader *hafm_sndreader_open(const char *path) {
    hafm_sndreader *r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(strcmp(path, "-") == 0 ? "stdin" : path))) {
        free(r);
        hafm_error("%s: out of memory", path);
        return NULL;
    }
    int rc = 0;
    if (strcmp(path, "-") == 0) {
        if (seekable(stdin)) {
            if (fseeko(stdin, 0, SEEK_END) == 0 && ftello(stdin) == 0) {
                hafm_error("stdin: empty input");
                rc = -1;
            } else {
                rewind(stdin);
                r->sf = sf_open_virtual(&file_vio, SFM_READ, &r->info, stdin);
            }
        } else {
            rc = open_pipe(r, stdin);
        }
    } else {
        struct stat sb;
        if (stat(path, &sb) < 0) {
            hafm_error("%s:", path);
            rc = -1;
        } else if (S_ISDIR(sb.st_mode)) {
            hafm_error("%s: is a directory", path);
            rc = -1;
        } else if (S_ISREG(sb.st_mode)) {
            if (sb.st_size == 0) {
                hafm_error("%s: empty file", path);
                rc = -1;
            } else {
                r->sf = sf_open(path, SFM_READ, &r->info);
            }
        } else {
            r->own_fp = fopen(path, "rb");
            if (!r->own_fp) { hafm_error("%s:", path); rc = -1; }
            else rc = open_pipe(r, r->own_fp);
        }
    }
    if (rc == 0 && !r->sf) {
        hafm_error("%s: not a readable audio file: %s", r->name, sf_strerror(NULL));
        rc = -1;
    }
    if (rc == 0 && (r->info.channels < 1 || r->info.samplerate < 1)) {
        hafm_error("%s: invalid audio header (%d channels, %d Hz)", r->name, r->info.channels, r->info.samplerate);
        rc = -1;
    }
    if (rc < 0) { hafm_sndreader_close(r); return NULL; }
    return r;
}

int hafm_sndreader_rate(const hafm_sndreader *r) { return r->info.samplerate; }
int hafm_sndreader_channels(const hafm_sndreader *r) { return r->info.channels; }

int64_t hafm_sndreader_frames(const hafm_sndreader *r) {
    return r->pipe_mode || r->info.frames == SF_COUNT_MAX ? -1 : (int64_t)r->info.frames;
}

hafm_sample_format hafm_sndreader_format(const hafm_sndreader *r) {
    switch (r->info.format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_16: return HAFM_PCM16;
    case SF_FORMAT_PCM_24: return HAFM_PCM24;
    case SF_FORMAT_PCM_32: return HAFM_PCM32;
    default: return HAFM_FLOAT32;   /* float, double, 8-bit, compressed: read as float */
    }
}

static int64_t read_done(hafm_sndreader *r, sf_count_t got) {
    int err = sf_error(r->sf);
    if (got == 0 && err != SF_ERR_NO_ERROR) {
        hafm_error("%s: read error: %s", r->name, sf_strerror(r->sf));
        return -1;
    }
    return (int64_t)got;
}

int64_t hafm_sndreader_read_f32(hafm_sndreader *r, float *buf, int64_t max_frames) {
    return read_done(r, sf_readf_float(r->sf, buf, (sf_count_t)max_frames));
}

int64_t hafm_sndreader_read_i16(hafm_sndreader *r, int16_t *buf, int64_t max_frames) {
    return read_done(r, sf_readf_short(r->sf, buf, (sf_count_t)max_frames));
}

void hafm_sndreader_close(hafm_sndreader *r) {
    if (!r) return;
    if (r->sf) sf_close(r->sf);      /* closes the pump's read end: the pump sees EPIPE */
    if (r->pump.started) {
        /* The pump may still wait for input nobody needs any more. */
        pthread_cancel(r->pump.thread);
        pthread_join(r->pump.thread, NULL);
    }
    if (r->own_fp) fclose(r->own_fp);
    free(r->mem.buf);
    free(r->name);
    free(r);
}

int hafm_audio_read(const char *path, hafm_audio *out) {
    memset(out, 0, sizeof *out);
    hafm_sndreader *r = hafm_sndreader_open(path);
    if (!r) return -1;
    int ch = r->info.channels;
    int64_t known = hafm_sndreader_frames(r), cap = known > 0 ? known : r->info.samplerate, n = 0;
    float *data = malloc((size_t)cap * (size_t)ch * sizeof(float));
    for (;;) {
        if (!data) { hafm_error("%s: out of memory", r->name); hafm_sndreader_close(r); return -1; }
        if (n == cap) {
            cap *= 2;
            float *d = realloc(data, (size_t)cap * (size_t)ch * sizeof(float));
            if (!d) free(data);
            data = d;
            continue;
        }
        int64_t got = hafm_sndreader_read_f32(r, data + n * ch, cap - n);
        if (got < 0) { free(data); hafm_sndreader_close(r); return -1; }
        if (got == 0) break;
        n += got;
    }
    if (n == 0) {
        hafm_error("%s: no audio samples", r->name);
        free(data);
        hafm_sndreader_close(r);
        return -1;
    }
    out->data = data;
    out->frames = n;
    out->channels = ch;
    out->sample_rate = r->info.samplerate;
    hafm_sndreader_close(r);
    return 0;
}

/* ---- writing ------------------------------------------------------------------------------ */

struct hafm_sndwriter {
    SNDFILE *sf;
    char *path;
    hafm_outfile *of;
    memfile mem;         /* WAV to a pipe */
    int to_memory;
    int channels;
    hafm_sample_format fmt;
    void *conv;          /* PCM conversion buffer */
    size_t conv_frames;
};

/* The container from the file name's extension; WAV for anything else and for "-". */
static int container_for(const char *path) {
    const char *dot = strrchr(path, '.');
    if (strcmp(path, "-") != 0 && dot && !strchr(dot, '/')) {
        if (!strcasecmp(dot, ".flac")) return SF_FORMAT_FLAC;
        if (!strcasecmp(dot, ".ogg") || !strcasecmp(dot, ".oga")) return SF_FORMAT_OGG;
        if (!strcasecmp(dot, ".aiff") || !strcasecmp(dot, ".aif")) return SF_FORMAT_AIFF;
        if (!strcasecmp(dot, ".au")) return SF_FORMAT_AU;
    }
    return SF_FORMAT_WAV;
}

static const char *fmt_name(hafm_sample_format f) {
    return f == HAFM_PCM16 ? "pcm16" : f == HAFM_PCM24 ? "pcm24" : f == HAFM_PCM32 ? "pcm32" : "float";
}

hafm_sndwriter *hafm_sndwriter_open(const char *path, int sample_rate, int channels, hafm_sample_format fmt) {
    if (sample_rate < 1 || channels < 1 || channels > 1024) {
        hafm_error("%s: cannot write audio with %d channels at %d Hz", path, channels, sample_rate);
        return NULL;
    }
    int container = container_for(path), sub;
    switch (fmt) {
    case HAFM_PCM16: sub = SF_FORMAT_PCM_16; break;
    case HAFM_PCM24: sub = SF_FORMAT_PCM_24; break;
    case HAFM_PCM32: sub = SF_FORMAT_PCM_32; break;
    case HAFM_FLOAT32: sub = SF_FORMAT_FLOAT; break;
    default: hafm_error("%s: unknown sample format %d", path, (int)fmt); return NULL;
    }
    if (container == SF_FORMAT_OGG) sub = SF_FORMAT_VORBIS;
    SF_INFO info = {.samplerate = sample_rate, .channels = channels, .format = container | sub};
    if (!sf_format_check(&info)) {
        hafm_error("%s: this file type cannot hold %s samples (%d channels)", path, fmt_name(fmt), channels);
        return NULL;
    }
    hafm_sndwriter *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        hafm_error("%s: out of memory", path);
        return NULL;
    }
    w->channels = channels;
    w->fmt = container == SF_FORMAT_OGG ? HAFM_FLOAT32 : fmt;
    w->of = hafm_outfile_open(path);
    if (!w->of) { free(w->path); free(w); return NULL; }
    FILE *fp = hafm_outfile_fp(w->of);
    int direct = 1;
    if (strcmp(path, "-") == 0) {
        fflush(fp);
        direct = seekable(fp) && lseek(fileno(fp), 0, SEEK_CUR) == 0;
    }
    if (direct) {
        w->sf = sf_open_fd(fileno(fp), SFM_WRITE, &info, SF_FALSE);
    } else {
        w->to_memory = 1;
        w->sf = sf_open_virtual(&mem_vio, SFM_WRITE, &info, &w->mem);
    }
    if (!w->sf) {
        hafm_error("%s: cannot write audio: %s", path, sf_strerror(NULL));
        hafm_sndwriter_abort(w);
        return NULL;
    }
    /* The PEAK chunk carries a time stamp: without it equal audio gives equal files. */
    sf_command(w->sf, SFC_SET_ADD_PEAK_CHUNK, NULL, SF_FALSE);
    sf_command(w->sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
    return w;
}

static int sf_wrote(hafm_sndwriter *w, sf_count_t done, int64_t frames) {
    if (done == (sf_count_t)frames) return 0;
    hafm_error("%s: write error: %s", w->path, sf_strerror(w->sf));
    return -1;
}

static void *conv_buffer(hafm_sndwriter *w, int64_t frames, size_t elem) {
    if ((size_t)frames > w->conv_frames) {
        free(w->conv);
        w->conv = malloc((size_t)frames * (size_t)w->channels * elem);
        w->conv_frames = w->conv ? (size_t)frames : 0;
        if (!w->conv) hafm_error("%s: out of memory", w->path);
    }
    return w->conv;
}

int hafm_sndwriter_write_f32(hafm_sndwriter *w, const float *buf, int64_t frames) {
    size_t n = (size_t)frames * (size_t)w->channels;
    if (frames <= 0) return 0;
    if (w->fmt == HAFM_PCM16) {
        int16_t *s = conv_buffer(w, frames, sizeof *s);
        if (!s) return -1;
        for (size_t i = 0; i < n; i++) {
            float v = nearbyintf(buf[i] * 32768.0f);
            s[i] = (int16_t)(v > 32767.0f ? 32767 : v < -32768.0f ? -32768 : isnan(v) ? 0 : v);
        }
        return sf_wrote(w, sf_writef_short(w->sf, s, frames), frames);
    }
    if (w->fmt == HAFM_PCM24 || w->fmt == HAFM_PCM32) {
        int32_t *s = conv_buffer(w, frames, sizeof *s);
        if (!s) return -1;
        /* libsndfile takes the top 24 bits of an int for PCM24: round at that precision. */
        double scale = w->fmt == HAFM_PCM24 ? 8388608.0 : 2147483648.0;
        double top = scale - 1, shift = w->fmt == HAFM_PCM24 ? 256.0 : 1.0;
        for (size_t i = 0; i < n; i++) {
            double v = nearbyint((double)buf[i] * scale);
            v = v > top ? top : v < -scale ? -scale : isnan(v) ? 0 : v;
            s[i] = (int32_t)(v * shift);
        }
        return sf_wrote(w, sf_writef_int(w->sf, s, frames), frames);
    }
    return sf_wrote(w, sf_writef_float(w->sf, buf, frames), frames);
}

int hafm_sndwriter_write_i16(hafm_sndwriter *w, const int16_t *buf, int64_t frames) {
    if (frames <= 0) return 0;
    if (w->fmt == HAFM_FLOAT32) {
        size_t n = (size_t)frames * (size_t)w->channels;
        float *f = conv_buffer(w, frames, sizeof *f);
        if (!f) return -1;
        for (size_t i = 0; i < n; i++) f[i] = (float)buf[i] / 32768.0f;
        return sf_wrote(w, sf_writef_float(w->sf, f, frames), frames);
    }
    /* libsndfile widens short to PCM24/32 exactly (left shift). */
    return sf_wrote(w, sf_writef_short(w->sf, buf, frames), frames);
}

static void sndwriter_free(hafm_sndwriter *w) {
    free(w->mem.buf);
    free(w->conv);
    free(w->path);
    free(w);
}

int hafm_sndwriter_close(hafm_sndwriter *w) {
    int rc = sf_close(w->sf);
    w->sf = NULL;
    if (rc != 0) {
        hafm_error("%s: cannot finish the audio file: %s", w->path, sf_error_number(rc));
        hafm_sndwriter_abort(w);
        return -1;
    }
    if (w->to_memory) {
        FILE *fp = hafm_outfile_fp(w->of);
        if (fwrite(w->mem.buf, 1, (size_t)w->mem.len, fp) != (size_t)w->mem.len) {
            hafm_error("%s: write:", w->path);
            hafm_sndwriter_abort(w);
            return -1;
        }
    }
    rc = hafm_outfile_commit(w->of);
    sndwriter_free(w);
    return rc;
}

void hafm_sndwriter_abort(hafm_sndwriter *w) {
    if (!w) return;
    if (w->sf) sf_close(w->sf);
    if (w->of) hafm_outfile_abort(w->of);
    sndwriter_free(w);
}

int hafm_audio_write(const char *path, const hafm_audio *a, hafm_sample_format fmt) {
    hafm_sndwriter *w = hafm_sndwriter_open(path, a->sample_rate, a->channels, fmt);
    if (!w) return -1;
    if (hafm_sndwriter_write_f32(w, a->data, a->frames) < 0) { hafm_sndwriter_abort(w); return -1; }
    return hafm_sndwriter_close(w);
}

/* ---- conversion --------------------------------------------------------------------------- */

int hafm_audio_to_mono(const hafm_audio *a, hafm_audio *out) {
    int ch = a->channels;
    float *m = malloc(a->frames > 0 ? (size_t)a->frames * sizeof(float) : 1);
    if (!m) { hafm_error("mono mixdown: out of memory"); return -1; }
    for (int64_t t = 0; t < a->frames; t++) {
        float s = 0;
        for (int c = 0; c < ch; c++) s += a->data[t * ch + c];
        m[t] = ch == 1 ? s : s / (float)ch;
    }
    int64_t frames = a->frames;
    int rate = a->sample_rate;
    if (out == a) free(out->data);
    out->data = m;
    out->frames = frames;
    out->channels = 1;
    out->sample_rate = rate;
    return 0;
}

struct hafm_resampler {
    soxr_t soxr;
    int channels;
    double ratio;
};

hafm_resampler *hafm_resampler_new(double in_rate, double out_rate, int channels) {
    if (!(in_rate > 0) || !(out_rate > 0) || channels < 1) {
        hafm_error("resampler: invalid rates %g -> %g Hz or %d channels", in_rate, out_rate, channels);
        return NULL;
    }
    hafm_resampler *rs = calloc(1, sizeof *rs);
    if (!rs) { hafm_error("resampler: out of memory"); return NULL; }
    soxr_error_t err;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_VHQ, 0);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    rs->soxr = soxr_create(in_rate, out_rate, (unsigned)channels, &err, &io, &q, &rt);
    if (!rs->soxr) {
        hafm_error("resampler: %s", err);
        free(rs);
        return NULL;
    }
    rs->channels = channels;
    rs->ratio = out_rate / in_rate;
    return rs;
}

/* The output goes to the start of *out (the header's "appended" cannot mean more: there is no
 * length argument); the caller copies it away before the next call. */
int64_t hafm_resampler_process(hafm_resampler *rs, const float *in, int64_t in_frames,
                               float **out, int64_t *out_cap) {
    int flush = in == NULL || in_frames <= 0;
    int64_t produced = 0, consumed = 0;
    size_t ch = (size_t)rs->channels;
    for (;;) {
        int64_t want = (int64_t)ceil((double)(in_frames - consumed) * rs->ratio) + 1024;
        if (*out_cap - produced < want) {
            int64_t cap = *out_cap > 0 ? *out_cap : 1024;
            while (cap - produced < want) cap *= 2;
            float *o = realloc(*out, (size_t)cap * ch * sizeof(float));
            if (!o) { hafm_error("resampler: out of memory"); return -1; }
            *out = o;
            *out_cap = cap;
        }
        size_t space = (size_t)(*out_cap - produced), idone = 0, odone = 0;
        soxr_error_t err = soxr_process(rs->soxr, flush ? NULL : in + (size_t)consumed * ch,
                                        flush ? 0 : (size_t)(in_frames - consumed), &idone,
                                        *out + (size_t)produced * ch, space, &odone);
        if (err) { hafm_error("resampler: %s", err); return -1; }
        consumed += (int64_t)idone;
        produced += (int64_t)odone;
        /* Input: done when all is taken and soxr did not fill the space it was given.
         * Flush: soxr hands out the tail over several calls; done when it gives nothing. */
        if (flush ? odone == 0 : consumed == in_frames && odone < space) break;
    }
    return produced;
}

void hafm_resampler_free(hafm_resampler *rs) {
    if (!rs) return;
    soxr_delete(rs->soxr);
    free(rs);
}

int hafm_audio_resample(const hafm_audio *a, int out_rate, hafm_audio *out) {
    if (out_rate == a->sample_rate) {
        size_t n = (size_t)a->frames * (size_t)a->channels;
        float *d = malloc(n ? n * sizeof(float) : 1);
        if (!d) { hafm_error("resample: out of memory"); return -1; }
        if (n) memcpy(d, a->data, n * sizeof(float));
        int64_t frames = a->frames;
        int ch = a->channels;
        if (out == a) free(out->data);
        *out = (hafm_audio){d, frames, ch, out_rate};
        return 0;
    }
    hafm_resampler *rs = hafm_resampler_new(a->sample_rate, out_rate, a->channels);
    if (!rs) return -1;
    float *o = NULL, *tail = NULL;
    int64_t cap = 0, tail_cap = 0, ch = a->channels;
    int64_t n1 = hafm_resampler_process(rs, a->data, a->frames, &o, &cap);
    int64_t n2 = n1 < 0 ? -1 : hafm_resampler_process(rs, NULL, 0, &tail, &tail_cap);
    hafm_resampler_free(rs);
    float *all = n2 < 0 ? NULL : realloc(o, (size_t)((n1 + n2) * ch + 1) * sizeof(float));
    if (!all) {
        if (n2 >= 0) hafm_error("resample: out of memory");
        free(o);
        free(tail);
        return -1;
    }
    if (n2 > 0) memcpy(all + n1 * ch, tail, (size_t)(n2 * ch) * sizeof(float));
    free(tail);
    if (out == a) free(out->data);
    *out = (hafm_audio){all, n1 + n2, (int)ch, out_rate};
    return 0;
}

int hafm_audio_prepare(const hafm_audio *a, int out_rate, hafm_audio *out) {
    hafm_audio mono = {0};
    if (hafm_audio_to_mono(a, &mono) < 0) return -1;
    int rc = hafm_audio_resample(&mono, out_rate, out);
    hafm_audio_free(&mono);
    return rc;
}

/* ---- audio tracks in streams -------------------------------------------------------------- */

int hafm_audio_append_event(hafm_audio *a, const hafm_event *ev) {
    const hafm_track *t = ev->track;
    if (ev->type != HAFM_EV_DATA || !t) {
        hafm_error("audio: not a data message");
        return -1;
    }
    if (t->kind != HAFM_KIND_AUDIO || t->channels < 1 || t->sample_rate < 1) {
        hafm_error("track '%s': not an audio track", t->name);
        return -1;
    }
    if (a->data && (a->channels != t->channels || a->sample_rate != t->sample_rate)) {
        hafm_error("track '%s': %d channels at %d Hz, appending to %d channels at %d Hz", t->name,
                   t->channels, t->sample_rate, a->channels, a->sample_rate);
        return -1;
    }
    size_t ch = (size_t)t->channels, n = (size_t)ev->frames * ch, esize = hafm_dtype_size(t->dtype);
    if (t->dtype != HAFM_DT_I16 && t->dtype != HAFM_DT_I32 && t->dtype != HAFM_DT_F32) {
        hafm_error("track '%s': audio dtype %s (expected i16, i32 or f32)", t->name, hafm_dtype_name(t->dtype));
        return -1;
    }
    if (ev->nbytes != n * esize) {
        hafm_error("track '%s': payload of %zu bytes for %lld frames", t->name, ev->nbytes, (long long)ev->frames);
        return -1;
    }
    if (!a->data) {
        a->frames = 0;
        a->channels = t->channels;
        a->sample_rate = t->sample_rate;
    }
    float *d = realloc(a->data, ((size_t)a->frames * ch + n) * sizeof(float) + (n ? 0 : sizeof(float)));
    if (!d) { hafm_error("track '%s': out of memory", t->name); return -1; }
    a->data = d;
    float *dst = d + (size_t)a->frames * ch;
    const unsigned char *p = ev->data;
    for (size_t i = 0; i < n; i++) {
        if (t->dtype == HAFM_DT_I16) {
            int16_t v = (int16_t)(p[2 * i] | p[2 * i + 1] << 8);
            dst[i] = (float)v / 32768.0f;
        } else if (t->dtype == HAFM_DT_I32) {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                         (uint32_t)p[4 * i + 3] << 24;
            dst[i] = (float)((double)(int32_t)u / 2147483648.0);
        } else {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                         (uint32_t)p[4 * i + 3] << 24;
            memcpy(&dst[i], &u, 4);
        }
    }
    a->frames += ev->frames;
    return 0;
}

int hafm_input_is_stream(FILE *fp) {
    /* A stream begins with a MessagePack map (fixmap 0x80-0x8f, map16 0xde, map32 0xdf). No
     * audio container libsndfile reads begins with such a byte (RIFF, FORM, fLaC, OggS, .snd,
     * caff, ...), so one byte decides, and one byte is what ungetc() guarantees to push back. */
    int c = getc(fp);
    if (c == EOF) return 0;
    ungetc(c, fp);
    return (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf;
}
