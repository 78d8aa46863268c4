/* encodec-enc - audio to EnCodec codes (a tokens track), streaming. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "hafm.h"
#include "hafm/encodec.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] [INPUT]\n"
            "Encodes audio into EnCodec codes: a tokens track (one row of codebooks per frame).\n"
            "INPUT is an audio file (WAV, FLAC, ...) or a hafm stream with an audio track; '-' or\n"
            "nothing reads stdin. Audio is mixed to mono and resampled to the model's rate.\n"
            "  -m, --model FILE      EnCodec weights (safetensors)  [$HAFM_ENCODEC_MODEL, else\n"
            "                        models/codec.safetensors beside the executable]\n"
            "  -b, --bandwidth K     kbps, one of the model's target bandwidths\n"
            "                        (24 kHz model: 1.5, 3, 6, 12, 24)       [6]\n"
            "  -i, --input-track NAME  audio track read from a stream input   [audio]\n"
            "  -n, --name NAME       name of the tokens track written         [codes]\n"
            "  -l, --latent[=NAME]   also write the continuous pre-quantisation latent as a\n"
            "                        features track                           [latent]\n"
            "  -k, --key KEY         item key for a file input     [file name without extension]\n"
            "  -o, --output FILE     write the stream to FILE                 [stdout]\n"
            "  -t, --threads N       threads, 1-256                           [$HAFM_THREADS or all CPUs]\n"
            "  -h, --help            this help\n"
            "      --version         version\n",
            hafm_progname);
}

typedef struct {
    const hafm_encodec *m;
    hafm_encodec_stream *enc;
    hafm_writer *w;
    hafm_resampler *rs;
    int n_q, tok_id, lat_id;
    int in_rate, in_channels;
    int64_t in_frames;            /* source samples per channel */
    float *mono, *rsout, *lat;
    int64_t mono_cap, rs_cap, lat_cap;
    int32_t *codes;
    int64_t codes_cap;
    int64_t frames_out;
} job;

static const char *tok_name = "codes", *lat_name = NULL, *model_path = NULL;
static double kbps = 6.0;

static void job_begin(job *j, int rate, int channels)
{
    const hafm_encodec_config *c = &j->m->cfg;
    j->in_rate = rate;
    j->in_channels = channels;
    j->in_frames = 0;
    j->frames_out = 0;
    j->rs = NULL;
    if (rate != c->sample_rate && !(j->rs = hafm_resampler_new(rate, c->sample_rate, 1))) hafm_die_last();
    hafm_track t;
    hafm_track_init_tokens(&t, tok_name, j->n_q, c->bins, c->frame_rate);
    t.dtype = c->bins <= 32768 ? HAFM_DT_I16 : HAFM_DT_I32;
    const char *base = strrchr(model_path, '/');
    if (hafm_track_set_producer(&t, "encodec-enc", HAFM_VERSION) || hafm_track_param_float(&t, "bandwidth", kbps) ||
        hafm_track_param_str(&t, "model", base ? base + 1 : model_path) || hafm_write_track(j->w, &t))
        hafm_die_last();
    j->tok_id = t.id;
    hafm_track_free(&t);
    j->lat_id = -1;
    if (lat_name) {
        hafm_track_init_features(&t, lat_name, c->dimension, c->frame_rate);
        if (hafm_track_set_producer(&t, "encodec-enc", HAFM_VERSION) ||
            hafm_track_param_str(&t, "model", base ? base + 1 : model_path) ||
            hafm_track_attr_str(&t, "layer", "encoder") || hafm_write_track(j->w, &t))
            hafm_die_last();
        j->lat_id = t.id;
        hafm_track_free(&t);
    }
}

/* Writes latent frames and their codes. */
static void emit(job *j, const float *latent, int64_t n)
{
    if (n <= 0) return;
    int D = j->m->cfg.dimension;
    if (j->lat_id >= 0 && hafm_write_data_f32(j->w, j->lat_id, latent, n)) hafm_die_last();
    if (n * D > j->lat_cap) { j->lat_cap = n * D; j->lat = hafm_xrealloc(j->lat, (size_t)j->lat_cap * sizeof(float)); }
    if (n * j->n_q > j->codes_cap) {
        j->codes_cap = n * j->n_q;
        j->codes = hafm_xrealloc(j->codes, (size_t)j->codes_cap * sizeof(int32_t));
    }
    memcpy(j->lat, latent, (size_t)n * D * sizeof(float));
    hafm_encodec_quantize(j->m, j->codes, j->lat, n, j->n_q);
    if (hafm_write_data_i32(j->w, j->tok_id, j->codes, n)) hafm_die_last();
    j->frames_out += n;
}

static void encode_mono(job *j, const float *x, int64_t n, int final)
{
    const float *lat;
    int64_t got = hafm_encodec_encoder_push(j->enc, x, n, final, &lat);
    emit(j, lat, got);
}

/* frames of interleaved float audio at the input rate */
static void job_feed(job *j, const float *x, int64_t frames)
{
    if (frames <= 0) return;
    int C = j->in_channels;
    if (frames > j->mono_cap) { j->mono_cap = frames; j->mono = hafm_xrealloc(j->mono, (size_t)frames * sizeof(float)); }
    for (int64_t i = 0; i < frames; i++) {
        float s = 0;
        for (int c = 0; c < C; c++) s += x[i * C + c];
        j->mono[i] = s / C;
    }
    j->in_frames += frames;
    if (!j->rs) { encode_mono(j, j->mono, frames, 0); return; }
    int64_t got = hafm_resampler_process(j->rs, j->mono, frames, &j->rsout, &j->rs_cap);
    if (got < 0) hafm_die_last();
    encode_mono(j, j->rsout, got, 0);
}

static void job_finish(job *j, const char *what)
{
    if (j->in_frames == 0) hafm_die("%s: no audio samples", what);
    if (j->rs) {
        int64_t got = hafm_resampler_process(j->rs, NULL, 0, &j->rsout, &j->rs_cap);
        if (got < 0) hafm_die_last();
        encode_mono(j, j->rsout, got, 1);
        hafm_resampler_free(j->rs);
        j->rs = NULL;
    } else {
        encode_mono(j, NULL, 0, 1);
    }
    if (hafm_write_end(j->w, j->tok_id, j->in_frames, j->in_rate)) hafm_die_last();
    if (j->lat_id >= 0 && hafm_write_end(j->w, j->lat_id, j->in_frames, j->in_rate)) hafm_die_last();
}

static void encode_file(job *j, const char *path, const char *key)
{
    hafm_sndreader *r = hafm_sndreader_open(path);
    if (!r) hafm_die_last();
    char keybuf[HAFM_MAX_KEY + 1];
    if (!key) {
        const char *b = strcmp(path, "-") ? strrchr(path, '/') : NULL;
        b = !strcmp(path, "-") ? "stdin" : b ? b + 1 : path;
        snprintf(keybuf, sizeof keybuf, "%s", b);
        char *dot = strrchr(keybuf, '.');
        if (dot && dot != keybuf) *dot = 0;
        for (char *p = keybuf; *p; p++)
            if ((unsigned char)*p <= ' ') *p = '_';
        key = keybuf;
    }
    if (hafm_write_item(j->w, key)) hafm_die_last();
    int C = hafm_sndreader_channels(r);
    job_begin(j, hafm_sndreader_rate(r), C);
    int64_t chunk = hafm_sndreader_rate(r);   /* one second per read */
    float *buf = hafm_xmalloc((size_t)chunk * C * sizeof(float));
    int64_t got;
    while ((got = hafm_sndreader_read_f32(r, buf, chunk)) > 0) job_feed(j, buf, got);
    if (got < 0) hafm_die_last();
    free(buf);
    hafm_sndreader_close(r);
    job_finish(j, path);
    if (hafm_write_item_end(j->w)) hafm_die_last();
}

static void encode_stream(job *j, FILE *fp, const char *name, const char *track_name)
{
    hafm_reader *r = hafm_reader_open(fp, name);
    if (!r) hafm_die_last();
    hafm_event ev;
    int rc, have = 0, done = 0;
    float *buf = NULL;
    size_t cap = 0;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (hafm_write_passthrough(j->w, &ev)) hafm_die_last();
        const char *key = hafm_reader_item_key(r);
        switch (ev.type) {
        case HAFM_EV_ITEM:
            have = done = 0;
            break;
        case HAFM_EV_TRACK:
            if (strcmp(ev.track->name, track_name)) break;
            if (ev.track->kind != HAFM_KIND_AUDIO)
                hafm_die("item '%s': track '%s': expected an audio track, got %s", key, track_name,
                         hafm_kind_name(ev.track->kind));
            job_begin(j, ev.track->sample_rate, ev.track->channels);
            have = 1;
            break;
        case HAFM_EV_DATA: {
            if (!have || strcmp(ev.track->name, track_name)) break;
            size_t n = (size_t)ev.frames * ev.track->channels;
            if (n > cap) { cap = n; buf = hafm_xrealloc(buf, cap * sizeof(float)); }
            hafm_event_to_f32(&ev, buf);
            /* integer PCM is full scale */
            float scale = ev.track->dtype == HAFM_DT_I16 ? 1.0f / 32768.0f :
                          ev.track->dtype == HAFM_DT_I32 ? 1.0f / 2147483648.0f : 1.0f;
            if (scale != 1.0f)
                for (size_t i = 0; i < n; i++) buf[i] *= scale;
            job_feed(j, buf, ev.frames);
            break;
        }
        case HAFM_EV_END:
            if (!have || strcmp(ev.track->name, track_name)) break;
            {
                char what[HAFM_MAX_KEY + HAFM_MAX_NAME + 32];
                snprintf(what, sizeof what, "item '%s': track '%s'", key, track_name);
                job_finish(j, what);
            }
            done = 1;
            break;
        case HAFM_EV_ITEM_END:
            if (!done) hafm_die("item '%s' has no audio track '%s'", ev.key, track_name);
            break;
        default:
            break;
        }
    }
    if (rc < 0) hafm_die_last();
    free(buf);
    hafm_reader_close(r);
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    enum { OPT_VERSION = 256 };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},       {"bandwidth", required_argument, NULL, 'b'},
        {"input-track", required_argument, NULL, 'i'}, {"name", required_argument, NULL, 'n'},
        {"latent", optional_argument, NULL, 'l'},      {"key", required_argument, NULL, 'k'},
        {"output", required_argument, NULL, 'o'},      {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},              {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0}};
    const char *in_track = "audio", *key = NULL, *out_path = "-";
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:b:i:n:l::k:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'b': kbps = hafm_opt_double("-b", optarg, 0.001, 1000); break;
        case 'i': in_track = optarg; break;
        case 'n': tok_name = optarg; break;
        case 'l': lat_name = optarg ? optarg : "latent"; break;
        case 'k': key = optarg; break;
        case 'o': out_path = optarg; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 256)); break;
        case 'h': usage(stdout); return 0;
        case OPT_VERSION: hafm_print_version();
        case ':': hafm_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: hafm_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind > 1) hafm_usage_error("one input at most, got %d", argc - optind);
    model_path = hafm_find_model(model_path, "HAFM_ENCODEC_MODEL", "codec.safetensors");
    if (!model_path)
        hafm_usage_error("no model: give -m FILE or set HAFM_ENCODEC_MODEL (models/codec.safetensors not found "
                         "beside the executable)");
    const char *in_path = optind < argc ? argv[optind] : "-";

    hafm_encodec *m = hafm_encodec_load(model_path);
    if (!m) hafm_die_last();
    job j = {.m = m};
    j.n_q = hafm_encodec_n_q(m, kbps);
    if (j.n_q < 0) {
        char list[256] = "";
        for (int i = 0; i < m->cfg.nbw; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%g", i ? ", " : "", m->cfg.bandwidths[i]);
        hafm_usage_error("-b: expected one of the model's bandwidths (%s), got '%g'", list, kbps);
    }
    FILE *in = strcmp(in_path, "-") ? fopen(in_path, "rb") : stdin;
    if (!in) hafm_die("%s:", in_path);
    int is_stream = hafm_input_is_stream(in);
    hafm_outfile *of = hafm_outfile_open(out_path);
    if (!of) hafm_die_last();
    j.w = hafm_writer_open(hafm_outfile_fp(of), "encodec-enc");
    j.enc = hafm_encodec_encoder_new(m);
    if (is_stream) {
        encode_stream(&j, in, strcmp(in_path, "-") ? in_path : "stdin", in_track);
    } else {
        if (in != stdin) fclose(in);
        encode_file(&j, in_path, key);
    }
    if (hafm_writer_close(j.w)) hafm_die_last();
    if (hafm_outfile_commit(of)) hafm_die_last();
    if (is_stream && in != stdin) fclose(in);
    hafm_encodec_stream_free(j.enc);
    free(j.mono); free(j.rsout); free(j.lat); free(j.codes);
    hafm_encodec_free(m);
    return 0;
}
