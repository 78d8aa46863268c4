/* encodec-dec - EnCodec codes (tokens tracks) to audio, streaming. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hafm.h"
#include "hafm/encodec.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] [INPUT]\n"
            "Decodes EnCodec codes from a hafm stream (INPUT, '-' or nothing: stdin) into audio at\n"
            "the model's rate, trimmed to the encoder's input length when the stream records it.\n"
            "Codebooks may be split over several tracks joined by their codebook_offset attribute;\n"
            "without -i the track 'codes' is read, else the pair 'accomp.coarse' + 'accomp.fine'.\n"
            "  -m, --model FILE      EnCodec weights (safetensors)  [$HAFM_ENCODEC_MODEL, else\n"
            "                        models/codec.safetensors beside the executable]\n"
            "  -i, --input-tracks LIST  comma-separated tokens tracks     [codes | accomp.coarse,accomp.fine]\n"
            "  -o, --output FILE     WAV (or .flac) output; '%%k' is replaced by the item key, needed\n"
            "                        when the stream holds several items       [stdout]\n"
            "  -f, --format F        WAV samples: pcm16, pcm24 or float       [pcm16]\n"
            "  -s, --stream          write the stream with an added audio track instead of a WAV\n"
            "  -n, --name NAME       name of that audio track                 [decoded]\n"
            "  -t, --threads N       threads, 1-256                           [$HAFM_THREADS or all CPUs]\n"
            "  -h, --help            this help\n"
            "      --version         version\n",
            hafm_progname);
}

#define MAX_TRACKS 16

typedef struct {
    hafm_track *t;
    int offset, q;
    int32_t *buf;        /* [n, q] frames received, not yet decoded */
    int64_t n, cap;
    int ended;
} src;

typedef struct {
    const hafm_encodec *m;
    hafm_encodec_stream *dec;
    hafm_writer *w;                  /* --stream */
    hafm_sndwriter *snd;             /* WAV */
    int audio_id;
    src s[MAX_TRACKS];
    int ns;
    int started;                     /* selection fixed, output declared */
    int finished;                    /* decoded to the end */
    int ncb;                         /* codebooks over all selected tracks */
    int32_t *codes;
    float *lat, *hold;
    int64_t codes_cap, lat_cap, hold_n, hold_cap;
    int64_t out_samples;
} item;

static const char *model_path, *out_path = "-", *audio_name = "decoded";
static char *track_list;
static int stream_out;
static hafm_sample_format fmt = HAFM_PCM16;
static int64_t items_seen;

static int selected(const char *name)
{
    if (!track_list) return !strcmp(name, "codes") || !strcmp(name, "accomp.coarse") || !strcmp(name, "accomp.fine");
    size_t len = strlen(name);
    for (const char *p = track_list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == len && !strncmp(p, name, l)) return 1;
        p += l + (e ? 1 : 0);
    }
    return 0;
}

static int list_count(void)
{
    int n = 1;
    for (const char *p = track_list; *p; p++) n += *p == ',';
    return n;
}

static src *find_src(item *it, const hafm_track *t)
{
    for (int i = 0; i < it->ns; i++)
        if (it->s[i].t == t) return &it->s[i];
    return NULL;
}

/* Output path for an item: %k replaced by the key. */
static void item_path(char *out, size_t cap, const char *key)
{
    size_t o = 0;
    for (const char *p = out_path; *p && o + 1 < cap; p++) {
        if (p[0] == '%' && p[1] == 'k') {
            o += (size_t)snprintf(out + o, cap - o, "%s", key);
            p++;
        } else {
            out[o++] = *p;
        }
        if (o >= cap) o = cap - 1;
    }
    out[o] = 0;
}

/* Decides which tracks form the codes (once they are known) and declares the output. */
static int try_start(item *it, const char *key, int at_end)
{
    if (it->started) return 1;
    int use_codes = -1, coarse = -1, fine = -1;
    for (int i = 0; i < it->ns; i++) {
        if (!strcmp(it->s[i].t->name, "codes")) use_codes = i;
        if (!strcmp(it->s[i].t->name, "accomp.coarse")) coarse = i;
        if (!strcmp(it->s[i].t->name, "accomp.fine")) fine = i;
    }
    if (!track_list) {
        /* the default: 'codes' alone, else the coarse + fine pair */
        int keep[2] = {-1, -1};
        if (use_codes >= 0) keep[0] = use_codes;
        else if (coarse >= 0 && fine >= 0) { keep[0] = coarse; keep[1] = fine; }
        else if (!at_end) return 0;
        else keep[0] = coarse >= 0 ? coarse : fine;
        src kept[2];
        int nk = 0;
        for (int k = 0; k < 2; k++)
            if (keep[k] >= 0) kept[nk++] = it->s[keep[k]];
        for (int i = 0; i < it->ns; i++)
            if (i != keep[0] && i != keep[1]) free(it->s[i].buf);
        memset(it->s, 0, sizeof it->s);
        for (int k = 0; k < nk; k++) it->s[k] = kept[k];
        it->ns = nk;
    } else if (it->ns < list_count() && !at_end) {
        return 0;
    }
    if (it->ns == 0)
        hafm_die("item '%s' has no tokens track %s", key,
                 track_list ? track_list : "'codes' (nor 'accomp.coarse' + 'accomp.fine')");
    /* the tracks must tile codebooks 0..n-1 */
    int n = 0;
    for (int i = 0; i < it->ns; i++) n = it->s[i].offset + it->s[i].q > n ? it->s[i].offset + it->s[i].q : n;
    for (int cb = 0; cb < n; cb++) {
        int cover = 0;
        for (int i = 0; i < it->ns; i++) cover += cb >= it->s[i].offset && cb < it->s[i].offset + it->s[i].q;
        if (cover != 1)
            hafm_die("item '%s': codebook %d is %s by the tokens tracks (check codebook_offset)", key, cb,
                     cover ? "covered twice" : "not covered");
    }
    if (n > it->m->cfg.n_q)
        hafm_die("item '%s': the tokens tracks hold %d codebooks; the model has %d", key, n, it->m->cfg.n_q);
    it->ncb = n;
    it->started = 1;
    if (stream_out) {
        hafm_track t;
        hafm_track_init_audio(&t, audio_name, HAFM_DT_F32, it->m->cfg.sample_rate, 1);
        const char *base = strrchr(model_path, '/');
        if (hafm_track_set_producer(&t, "encodec-dec", HAFM_VERSION) ||
            hafm_track_param_str(&t, "model", base ? base + 1 : model_path) || hafm_track_param_int(&t, "codebooks", n) ||
            hafm_write_track(it->w, &t))
            hafm_die_last();
        it->audio_id = t.id;
        hafm_track_free(&t);
    } else {
        if (items_seen > 1 && !strstr(out_path, "%k"))
            hafm_die("the stream holds several items: put %%k in -o, or use --stream");
        char path[4096];
        item_path(path, sizeof path, key);
        if (!(it->snd = hafm_sndwriter_open(path, it->m->cfg.sample_rate, 1, fmt))) hafm_die_last();
    }
    return 1;
}

static void write_audio(item *it, const float *y, int64_t n)
{
    if (n <= 0) return;
    if (stream_out) {
        if (hafm_write_data_f32(it->w, it->audio_id, y, n)) hafm_die_last();
    } else {
        if (hafm_sndwriter_write_f32(it->snd, y, n)) hafm_die_last();
    }
    it->out_samples += n;
}

/* Emits decoded samples, holding back one hop: the trim to the source length is known only at
 * the end, and it removes less than a hop. */
static void emit(item *it, const float *y, int64_t n, int final, int64_t keep_total)
{
    int64_t hop = it->m->cfg.hop;
    if (it->hold_n + n > it->hold_cap) {
        it->hold_cap = (it->hold_n + n) * 2;
        it->hold = hafm_xrealloc(it->hold, (size_t)it->hold_cap * sizeof(float));
    }
    if (n > 0) memcpy(it->hold + it->hold_n, y, (size_t)n * sizeof(float));
    it->hold_n += n;
    int64_t out = final ? it->hold_n : it->hold_n - hop;
    if (final && keep_total >= 0 && it->out_samples + out > keep_total) out = keep_total - it->out_samples;
    if (out < 0) out = 0;
    write_audio(it, it->hold, out);
    if (final) { it->hold_n = 0; return; }
    if (it->hold_n > out) memmove(it->hold, it->hold + out, (size_t)(it->hold_n - out) * sizeof(float));
    it->hold_n -= out;
}

/* Decodes the frames all selected tracks have delivered. */
static void pump(item *it, const char *key, int final)
{
    if (!it->started || it->finished) return;
    int64_t avail = INT64_MAX;
    int all_ended = 1;
    for (int i = 0; i < it->ns; i++) {
        if (it->s[i].n < avail) avail = it->s[i].n;
        all_ended &= it->s[i].ended;
    }
    final = final || all_ended;
    if (avail == 0 && !final) return;
    if (final)
        for (int i = 0; i < it->ns; i++)
            if (it->s[i].t->frames_seen != it->s[0].t->frames_seen)
                hafm_die("item '%s': tracks '%s' and '%s' differ in length (%lld and %lld frames)", key,
                         it->s[0].t->name, it->s[i].t->name, (long long)it->s[0].t->frames_seen,
                         (long long)it->s[i].t->frames_seen);
    int K = it->ncb, D = it->m->cfg.dimension;
    if (avail * K > it->codes_cap) {
        it->codes_cap = avail * K;
        it->codes = hafm_xrealloc(it->codes, (size_t)it->codes_cap * sizeof(int32_t));
    }
    for (int i = 0; i < it->ns; i++) {
        src *s = &it->s[i];
        for (int64_t f = 0; f < avail; f++)
            memcpy(it->codes + f * K + s->offset, s->buf + f * s->q, (size_t)s->q * sizeof(int32_t));
        if (s->n > avail) memmove(s->buf, s->buf + avail * s->q, (size_t)(s->n - avail) * s->q * sizeof(int32_t));
        s->n -= avail;
    }
    if (avail * D > it->lat_cap) {
        it->lat_cap = avail * D;
        it->lat = hafm_xrealloc(it->lat, (size_t)it->lat_cap * sizeof(float));
    }
    if (hafm_encodec_dequantize(it->m, it->lat, it->codes, K, avail, K)) {
        hafm_error_prefix("item '%s'", key);
        hafm_die_last();
    }
    const float *y;
    int64_t got = hafm_encodec_decoder_push(it->dec, it->lat, avail, final, &y);
    int64_t keep = -1;
    if (final) {
        /* trim to round(source_samples * out_rate / source_rate) */
        for (int i = 0; i < it->ns && keep < 0; i++)
            if (it->s[i].t->source_samples >= 0 && it->s[i].t->source_rate > 0)
                keep = llround((double)it->s[i].t->source_samples * it->m->cfg.sample_rate / it->s[i].t->source_rate);
    }
    emit(it, y, got, final, keep);
    if (final) {
        it->finished = 1;
        if (stream_out) {
            if (hafm_write_end(it->w, it->audio_id, -1, 0)) hafm_die_last();
        } else {
            if (hafm_sndwriter_close(it->snd)) hafm_die_last();
            it->snd = NULL;
        }
    }
}

static void item_reset(item *it)
{
    for (int i = 0; i < MAX_TRACKS; i++) free(it->s[i].buf);
    memset(it->s, 0, sizeof it->s);
    it->ns = 0;
    it->started = 0;
    it->finished = 0;
    it->hold_n = 0;
    it->out_samples = 0;
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    enum { OPT_VERSION = 256 };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},  {"input-tracks", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'}, {"format", required_argument, NULL, 'f'},
        {"stream", no_argument, NULL, 's'},       {"name", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION}, {NULL, 0, NULL, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:i:o:f:sn:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'i': track_list = optarg; break;
        case 'o': out_path = optarg; break;
        case 'f':
            if (!strcmp(optarg, "pcm16")) fmt = HAFM_PCM16;
            else if (!strcmp(optarg, "pcm24")) fmt = HAFM_PCM24;
            else if (!strcmp(optarg, "float")) fmt = HAFM_FLOAT32;
            else hafm_usage_error("-f: expected pcm16, pcm24 or float, got '%s'", optarg);
            break;
        case 's': stream_out = 1; break;
        case 'n': audio_name = optarg; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 256)); break;
        case 'h': usage(stdout); return 0;
        case OPT_VERSION: hafm_print_version();
        case ':': hafm_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: hafm_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind > 1) hafm_usage_error("one input at most, got %d", argc - optind);
    if (track_list && !*track_list) hafm_usage_error("-i: expected track names");
    model_path = hafm_find_model(model_path, "HAFM_ENCODEC_MODEL", "codec.safetensors");
    if (!model_path)
        hafm_usage_error("no model: give -m FILE or set HAFM_ENCODEC_MODEL (models/codec.safetensors not found "
                         "beside the executable)");
    const char *in_path = optind < argc ? argv[optind] : "-";

    hafm_encodec *m = hafm_encodec_load(model_path);
    if (!m) hafm_die_last();
    FILE *in = strcmp(in_path, "-") ? fopen(in_path, "rb") : stdin;
    if (!in) hafm_die("%s:", in_path);
    hafm_reader *r = hafm_reader_open(in, strcmp(in_path, "-") ? in_path : "stdin");
    if (!r) hafm_die_last();
    hafm_outfile *of = NULL;
    item it = {.m = m};
    if (stream_out) {
        if (!(of = hafm_outfile_open(out_path))) hafm_die_last();
        it.w = hafm_writer_open(hafm_outfile_fp(of), "encodec-dec");
    }
    it.dec = hafm_encodec_decoder_new(m);
    hafm_event ev;
    int rc;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (stream_out && hafm_write_passthrough(it.w, &ev)) hafm_die_last();
        const char *key = hafm_reader_item_key(r);
        switch (ev.type) {
        case HAFM_EV_ITEM:
            items_seen++;
            item_reset(&it);
            break;
        case HAFM_EV_TRACK: {
            hafm_track *t = ev.track;
            if (!selected(t->name) || it.started) break;
            if (t->kind != HAFM_KIND_TOKENS || t->ndim != 1)
                hafm_die("item '%s': track '%s': expected a tokens track of shape [codebooks]", key, t->name);
            if (fabs(t->rate - m->cfg.frame_rate) > 1e-6)
                hafm_die("item '%s': track '%s': rate %g, the model's frame rate is %g", key, t->name, t->rate,
                         m->cfg.frame_rate);
            int64_t off = hafm_track_attr_int_or(t, "codebook_offset", 0);
            if (off < 0 || off + t->shape[0] > m->cfg.n_q)
                hafm_die("item '%s': track '%s' holds codebooks %lld..%lld; the model has %d", key, t->name, (long long)off,
                         (long long)(off + t->shape[0] - 1), m->cfg.n_q);
            if (it.ns == MAX_TRACKS) hafm_die("item '%s': more than %d tokens tracks", key, MAX_TRACKS);
            it.s[it.ns++] = (src){.t = t, .offset = (int)off, .q = (int)t->shape[0]};
            if (try_start(&it, key, 0)) pump(&it, key, 0);
            break;
        }
        case HAFM_EV_DATA: {
            src *s = find_src(&it, ev.track);
            if (!s) break;
            if ((s->n + ev.frames) * s->q > s->cap) {
                s->cap = (s->n + ev.frames) * s->q * 2;
                s->buf = hafm_xrealloc(s->buf, (size_t)s->cap * sizeof(int32_t));
            }
            hafm_event_to_i32(&ev, s->buf + s->n * s->q);
            s->n += ev.frames;
            if (try_start(&it, key, 0)) pump(&it, key, 0);
            break;
        }
        case HAFM_EV_END: {
            src *s = find_src(&it, ev.track);
            if (!s) break;
            s->ended = 1;
            if (try_start(&it, key, 0)) pump(&it, key, 0);
            break;
        }
        case HAFM_EV_ITEM_END:
            try_start(&it, ev.key, 1);
            pump(&it, ev.key, 1);
            break;
        default:
            break;
        }
    }
    if (rc < 0) hafm_die_last();
    if (items_seen == 0) hafm_die("the stream holds no items");
    hafm_reader_close(r);
    if (stream_out) {
        if (hafm_writer_close(it.w)) hafm_die_last();
        if (hafm_outfile_commit(of)) hafm_die_last();
    }
    if (in != stdin) fclose(in);
    item_reset(&it);
    hafm_encodec_stream_free(it.dec);
    free(it.codes); free(it.lat); free(it.hold);
    hafm_encodec_free(m);
    return 0;
}
