/* hafm/audio_stream.h - audio files <-> audio tracks of a stream, chunk by chunk.
 *
 * The logic of hafm-from-audio and hafm-to-audio, so that the commands stay thin and other
 * tools can reuse it. Memory is bounded by one chunk (about one second of audio).
 */
#ifndef HAFM_AUDIO_STREAM_H
#define HAFM_AUDIO_STREAM_H

#include "audio.h"
#include "stream.h"

typedef struct {
    const char *track_name;   /* NULL: "audio" */
    int out_rate;             /* 0: keep the file's rate; else resample (libsoxr) */
    int mono;                 /* mix down to one channel */
    const char *tool;         /* producer tool name */
} hafm_audio_import;

/* Writes one item KEY holding audio file PATH ("-": stdin) as an audio track: dtype i16 with
 * the exact samples when the file is 16-bit PCM and nothing is converted, f32 otherwise. The
 * item is begun only after the first samples were read, so a file with no samples (an error)
 * writes nothing. */
int hafm_audio_import_item(hafm_writer *w, const char *path, const char *key, const hafm_audio_import *opt);

/* An item key from a file name: the base name without its extension; bytes that a key may
 * not hold (whitespace, control characters) become '_'. "-" gives "stdin". */
void hafm_audio_key_from_path(char *key, size_t cap, const char *path);

/* Opens a writer for audio track t: format 0 picks PCM16 for i16 tracks and float otherwise. */
hafm_sndwriter *hafm_sndwriter_for_track(const char *path, const hafm_track *t, hafm_sample_format fmt);
/* Writes a DATA event of t's track (i16 directly, i32 and f32 as float). */
int hafm_sndwriter_write_event(hafm_sndwriter *w, const hafm_event *ev);

#endif
