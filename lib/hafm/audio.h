/* hafm/audio.h - audio files through libsndfile, resampling through libsoxr, audio tracks.
 *
 * Samples in memory are float, interleaved, nominally in [-1, 1]. PCM16 files are also readable
 * as raw int16 so that a WAV -> stream -> WAV round trip is bit-exact.
 */
#ifndef HAFM_AUDIO_H
#define HAFM_AUDIO_H

#include "common.h"
#include "stream.h"

typedef struct {
    float *data;        /* frames * channels, interleaved */
    int64_t frames;
    int channels;
    int sample_rate;
} hafm_audio;

void hafm_audio_free(hafm_audio *a);

/* ---- files ------------------------------------------------------------------------------- */
/* Sample formats for writing. */
typedef enum { HAFM_PCM16 = 1, HAFM_PCM24, HAFM_PCM32, HAFM_FLOAT32 } hafm_sample_format;

/* Streaming reader of any format libsndfile reads; path "-" reads stdin (a pipe works). */
typedef struct hafm_sndreader hafm_sndreader;
hafm_sndreader *hafm_sndreader_open(const char *path);
int  hafm_sndreader_rate(const hafm_sndreader *r);
int  hafm_sndreader_channels(const hafm_sndreader *r);
int64_t hafm_sndreader_frames(const hafm_sndreader *r);     /* -1 if unknown (pipe) */
/* The file's native sample format: HAFM_PCM16 when the data are 16-bit PCM (then
 * hafm_sndreader_read_i16 gives the exact samples), HAFM_FLOAT32 for float, etc. */
hafm_sample_format hafm_sndreader_format(const hafm_sndreader *r);
/* Reads up to max_frames frames; returns frames read (0 at end), -1 on error. */
int64_t hafm_sndreader_read_f32(hafm_sndreader *r, float *buf, int64_t max_frames);
int64_t hafm_sndreader_read_i16(hafm_sndreader *r, int16_t *buf, int64_t max_frames);
void hafm_sndreader_close(hafm_sndreader *r);

/* Whole-file helpers. Reading an empty file is an error ("no audio samples"). */
int hafm_audio_read(const char *path, hafm_audio *out);
/* Writes WAV (or the format implied by the extension: .flac, .ogg, .wav) atomically through
 * hafm_outfile; path "-" writes WAV to stdout (buffered in memory when stdout is a pipe,
 * because WAV headers carry the length). */
int hafm_audio_write(const char *path, const hafm_audio *a, hafm_sample_format fmt);

/* Streaming writer (same rules as hafm_audio_write; the file appears only on close). */
typedef struct hafm_sndwriter hafm_sndwriter;
hafm_sndwriter *hafm_sndwriter_open(const char *path, int sample_rate, int channels, hafm_sample_format fmt);
int hafm_sndwriter_write_f32(hafm_sndwriter *w, const float *buf, int64_t frames);
int hafm_sndwriter_write_i16(hafm_sndwriter *w, const int16_t *buf, int64_t frames);
int hafm_sndwriter_close(hafm_sndwriter *w);  /* commits the file; frees w */
void hafm_sndwriter_abort(hafm_sndwriter *w); /* removes the temporary; frees w */

/* ---- conversion -------------------------------------------------------------------------- */
/* Mixes down to mono by averaging channels (in place allowed: out may equal a). */
int hafm_audio_to_mono(const hafm_audio *a, hafm_audio *out);
/* Resamples with libsoxr (very high quality). out_rate == a->sample_rate copies. */
int hafm_audio_resample(const hafm_audio *a, int out_rate, hafm_audio *out);
/* Mono + resample: what a model front end needs. */
int hafm_audio_prepare(const hafm_audio *a, int out_rate, hafm_audio *out);

/* Streaming resampler (libsoxr) for chunked processing with bounded memory. */
typedef struct hafm_resampler hafm_resampler;
hafm_resampler *hafm_resampler_new(double in_rate, double out_rate, int channels);
/* Feeds in_frames (NULL/0 at the end to flush); the output of this call is written from the
 * start of *out (grown with realloc, *out_cap in frames); returns frames produced, -1 on error. */
int64_t hafm_resampler_process(hafm_resampler *rs, const float *in, int64_t in_frames,
                               float **out, int64_t *out_cap);
void hafm_resampler_free(hafm_resampler *rs);

/* ---- audio tracks in streams ------------------------------------------------------------- */
/* Reads a whole audio track of the current item (the event loop calls this per DATA event):
 * appends the chunk to *a, converting PCM integers to float by 1/32768 (i16) or 1/2^31 (i32). */
int hafm_audio_append_event(hafm_audio *a, const hafm_event *ev);

/* An audio input a command takes: a file path, "-" for stdin, where stdin may hold either an
 * audio file or a hafm stream with an audio track (detected from the first bytes). */
int hafm_input_is_stream(FILE *fp);   /* peeks (ungetc-safe) without consuming */

#endif
