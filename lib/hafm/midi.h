/* hafm/midi.h - Standard MIDI File (SMF) writer.
 *
 * A song is built in memory as tracks of timed events (ticks at a fixed PPQ) and written as a
 * format-1 SMF. Events at the same tick are ordered meta < control/program < note-off < note-on
 * (then by insertion), so a repeated pitch is released before it is struck again and a program
 * change precedes the notes it applies to. Writing is deterministic: the same calls give the
 * same bytes.
 */
#ifndef HAFM_MIDI_H
#define HAFM_MIDI_H

#include <stdint.h>
#include <stdio.h>

typedef struct hafm_smf hafm_smf;

hafm_smf *hafm_smf_new(int ppq);                 /* ticks per quarter note, 1..32767 */
void hafm_smf_free(hafm_smf *m);
/* Appends a track (named by a meta event); returns its index. */
int  hafm_smf_add_track(hafm_smf *m, const char *name);

/* Meta events. */
void hafm_smf_tempo(hafm_smf *m, int track, int64_t tick, double quarter_bpm);
/* num/den as written (den a power of two); clocks per metronome click as SMF defines. */
void hafm_smf_time_signature(hafm_smf *m, int track, int64_t tick, int num, int den, int click_clocks);
/* sharps: -7..7 (negative: flats); minor: 0 or 1. */
void hafm_smf_key_signature(hafm_smf *m, int track, int64_t tick, int sharps, int minor);

/* Channel events; channel 0..15, data bytes 0..127 (clamped). */
void hafm_smf_program(hafm_smf *m, int track, int64_t tick, int channel, int program);
void hafm_smf_control(hafm_smf *m, int track, int64_t tick, int channel, int controller, int value);
/* A note: note-on at tick, note-off at tick + dur (dur >= 1). */
void hafm_smf_note(hafm_smf *m, int track, int64_t tick, int64_t dur, int channel, int pitch, int velocity);

/* Every track ends at this tick or at its last event, whichever is later. */
void hafm_smf_set_end(hafm_smf *m, int64_t tick);

/* Writes the file to fp; 0 ok, -1 + hafm_error on a write error. */
int hafm_smf_write(const hafm_smf *m, FILE *fp);
/* Writes atomically to path (hafm_outfile). */
int hafm_smf_save(const hafm_smf *m, const char *path);

#endif
