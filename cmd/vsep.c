/* vsep - vocal / accompaniment separation: REPET-SIM (no weights) or MDX-Net (ONNX). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "hafm.h"
#include "hafm/audio_stream.h"
#include "hafm/mdxnet.h"
#include "hafm/repet.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: %s [options] [INPUT]\n"
            "Separates the vocal from the accompaniment of INPUT: an audio file, or a hafm stream\n"
            "with an audio track (a file, or standard input). Writes the two stems to files with\n"
            "-v/-a, otherwise a stream on stdout: the input passed through with two audio tracks\n"
            "added to every item (an audio file becomes one item holding the two tracks).\n"
            "  -m, --model FILE      MDX-Net ONNX model; selects MDX-Net        [$HAFM_MDX_MODEL]\n"
            "  -M, --method NAME     repet or mdx                               [mdx with a model, else repet]\n"
            "  -v, --vocal FILE      write the vocal to FILE (WAV/FLAC/OGG by extension)\n"
            "  -a, --accomp FILE     write the accompaniment to FILE\n"
            "  -T, --track NAME      stream audio track to separate             [audio]\n"
            "      --vocal-name NAME   name of the vocal track                  [vocal]\n"
            "      --accomp-name NAME  name of the accompaniment track          [accomp]\n"
            "REPET-SIM:\n"
            "      --min-distance S  seconds between similar frames, 0-60       [1]\n"
            "      --neighbours N    similar frames per frame, 1-1000           [100]\n"
            "      --threshold X     minimum cosine similarity, -1-1            [0]\n"
            "      --highpass HZ     bins below go to the accompaniment, 0-1000 [100]\n"
            "      --window N        STFT window, samples, 16-65536             [2^ceil(log2(0.032 rate))]\n"
            "      --centre W        stereo centre mask weight, 0-1             [0]\n"
            "MDX-Net (UVR settings; a model in UVR's table gets its own by default):\n"
            "      --n-fft N         STFT size, 256-32768                       [6144]\n"
            "      --dim-t N         frames per chunk, multiple of 32, 32-4096  [the model's]\n"
            "      --compensate X    output gain, 0.5-2                         [1.035]\n"
            "      --overlap X       chunk overlap, 0 = UVR default, 0-0.99     [0]\n"
            "      --stem NAME       the model's primary stem: vocals or instrumental [vocals]\n"
            "      --denoise         average net(S) and -net(-S) (twice the time)\n"
            "  -t, --threads N       threads, 1-1024                            [$HAFM_THREADS or all]\n"
            "  -h, --help            this help\n"
            "      --version         the version\n",
            hafm_progname);
}

static HAFM_NORETURN void bad_option(int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':') hafm_usage_error("option '%s' needs an argument", arg);
    if (optopt) hafm_usage_error("unknown option '-%c'", optopt);
    hafm_usage_error("unknown option '%s'", arg);
}

typedef struct {
    int mdx;
    hafm_mdx *model;
    hafm_mdx_params mp;
    int instrumental;
    hafm_repet_params rp;
} separator;

static void separate(separator *s, const hafm_audio *a, float *vocal, float *accomp)
{
    if (hafm_repet_sim(vocal, accomp, a->data, a->frames, a->channels, a->sample_rate, &s->rp) < 0)
        hafm_die_last();
}

/* Where the stems go: two files, or two tracks of the current item of a stream. */
typedef struct {
    const char *vpath, *apath;          /* files mode when either is set */
    hafm_sndwriter *vf, *af;
    hafm_writer *w;
    const char *vname, *aname;
    hafm_track vt, at;
    const char *item_key;               /* an audio file's item, begun with the first output */
    int open;
    const separator *sep;
} sink;

static void declare(sink *k, hafm_track *t, const char *name, const char *role, int rate, int channels, int64_t frames)
{
    hafm_track_init_audio(t, name, HAFM_DT_F32, rate, channels);
    t->frames = frames;
    hafm_track_set_producer(t, "vsep", HAFM_VERSION);
    hafm_track_param_str(t, "method", k->sep->mdx ? "mdx" : "repet");
    hafm_track_attr_str(t, "role", role);
    if (hafm_write_track(k->w, t) < 0) hafm_die_last();
}

static void sink_open(sink *k, int rate, int channels, int64_t frames)
{
    if (k->open) return;
    k->open = 1;
    if (k->vpath || k->apath) {
        if (k->vpath && !(k->vf = hafm_sndwriter_open(k->vpath, rate, channels, HAFM_FLOAT32))) hafm_die_last();
        if (k->apath && !(k->af = hafm_sndwriter_open(k->apath, rate, channels, HAFM_FLOAT32))) hafm_die_last();
        return;
    }
    if (k->item_key && hafm_write_item(k->w, k->item_key) < 0) hafm_die_last();
    declare(k, &k->vt, k->vname, "vocal", rate, channels, frames);
    declare(k, &k->at, k->aname, "accompaniment", rate, channels, frames);
}

static void sink_write(sink *k, const float *v, const float *a, int64_t n)
{
    if (n <= 0) return;
    if (k->vf && hafm_sndwriter_write_f32(k->vf, v, n) < 0) hafm_die_last();
    if (k->af && hafm_sndwriter_write_f32(k->af, a, n) < 0) hafm_die_last();
    if (k->w && (hafm_write_data_f32(k->w, k->vt.id, v, n) < 0 || hafm_write_data_f32(k->w, k->at.id, a, n) < 0))
        hafm_die_last();
}

static void sink_close(sink *k)
{
    if (!k->open) return;
    k->open = 0;
    if (k->vf && hafm_sndwriter_close(k->vf) < 0) hafm_die_last();
    if (k->af && hafm_sndwriter_close(k->af) < 0) hafm_die_last();
    k->vf = k->af = NULL;
    if (k->w && !(k->vpath || k->apath)) {
        if (hafm_write_end(k->w, k->vt.id, -1, 0) < 0 || hafm_write_end(k->w, k->at.id, -1, 0) < 0) hafm_die_last();
        hafm_track_free(&k->vt);
        hafm_track_free(&k->at);
    }
}

/* REPET-SIM needs the whole song; MDX-Net streams through hafm_mdx_audio. */
static void repet_whole(sink *k, separator *s, const hafm_audio *a)
{
    float *voc = hafm_xmalloc((size_t)a->frames * a->channels * sizeof(float));
    float *acc = hafm_xmalloc((size_t)a->frames * a->channels * sizeof(float));
    separate(s, a, voc, acc);
    sink_open(k, a->sample_rate, a->channels, a->frames);
    sink_write(k, voc, acc, a->frames);
    sink_close(k);
    free(voc);
    free(acc);
}

static void mdx_push(sink *k, hafm_mdx_audio *ma, const float *x, int64_t n, int final, int rate, int channels)
{
    const float *v, *a;
    int64_t got = hafm_mdx_audio_push(ma, x, n, final, &v, &a);
    if (got < 0) hafm_die_last();
    if (got > 0 || final) sink_open(k, rate, channels, -1);
    sink_write(k, v, a, got);
}

int main(int argc, char **argv)
{
    hafm_init(argc, argv);
    enum { O_VNAME = 256, O_ANAME, O_MIND, O_NB, O_THR, O_HP, O_WIN, O_CENTRE, O_NFFT, O_DIMT, O_COMP,
           O_OVL, O_STEM, O_DENOISE };
    static const struct option opts[] = {
        { "model", required_argument, NULL, 'm' },  { "method", required_argument, NULL, 'M' },
        { "vocal", required_argument, NULL, 'v' },  { "accomp", required_argument, NULL, 'a' },
        { "track", required_argument, NULL, 'T' },  { "vocal-name", required_argument, NULL, O_VNAME },
        { "accomp-name", required_argument, NULL, O_ANAME }, { "min-distance", required_argument, NULL, O_MIND },
        { "neighbours", required_argument, NULL, O_NB }, { "threshold", required_argument, NULL, O_THR },
        { "highpass", required_argument, NULL, O_HP }, { "window", required_argument, NULL, O_WIN },
        { "centre", required_argument, NULL, O_CENTRE }, { "n-fft", required_argument, NULL, O_NFFT },
        { "dim-t", required_argument, NULL, O_DIMT }, { "compensate", required_argument, NULL, O_COMP },
        { "overlap", required_argument, NULL, O_OVL }, { "stem", required_argument, NULL, O_STEM },
        { "denoise", no_argument, NULL, O_DENOISE }, { "threads", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },         { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    separator s = { 0 };
    hafm_repet_defaults(&s.rp);
    hafm_mdx_defaults(&s.mp);
    const char *model = getenv("HAFM_MDX_MODEL"), *method = NULL, *vpath = NULL, *apath = NULL;
    const char *track = "audio", *vname = "vocal", *aname = "accomp";
    int c, set_nfft = 0, set_dimt = 0, set_comp = 0, set_stem = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:M:v:a:T:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; if (!method) method = "mdx"; break;
        case 'M':
            if (strcmp(optarg, "repet") && strcmp(optarg, "mdx")) hafm_usage_error("-M: expected repet or mdx, got '%s'", optarg);
            method = optarg;
            break;
        case 'v': vpath = optarg; break;
        case 'a': apath = optarg; break;
        case 'T': track = optarg; break;
        case O_VNAME: vname = optarg; break;
        case O_ANAME: aname = optarg; break;
        case O_MIND: s.rp.min_distance = hafm_opt_double("--min-distance", optarg, 0, 60); break;
        case O_NB: s.rp.max_neighbours = (int)hafm_opt_long("--neighbours", optarg, 1, 1000); break;
        case O_THR: s.rp.threshold = hafm_opt_double("--threshold", optarg, -1, 1); break;
        case O_HP: s.rp.highpass_hz = hafm_opt_double("--highpass", optarg, 0, 1000); break;
        case O_WIN: s.rp.window = (int)hafm_opt_long("--window", optarg, 16, 65536); break;
        case O_CENTRE: s.rp.centre = hafm_opt_double("--centre", optarg, 0, 1); break;
        case O_NFFT: set_nfft = 1; s.mp.n_fft = (int)hafm_opt_long("--n-fft", optarg, 256, 32768); break;
        case O_DIMT:
            set_dimt = 1;
            s.mp.dim_t = (int)hafm_opt_long("--dim-t", optarg, 32, 4096);
            if (s.mp.dim_t % 32) hafm_usage_error("--dim-t: expected a multiple of 32, got '%s'", optarg);
            break;
        case O_COMP: set_comp = 1; s.mp.compensate = hafm_opt_double("--compensate", optarg, 0.5, 2); break;
        case O_OVL: s.mp.overlap = hafm_opt_double("--overlap", optarg, 0, 0.99); break;
        case O_STEM:
            set_stem = 1;
            if (strcmp(optarg, "vocals") && strcmp(optarg, "instrumental"))
                hafm_usage_error("--stem: expected vocals or instrumental, got '%s'", optarg);
            s.instrumental = optarg[0] == 'i';
            break;
        case O_DENOISE: s.mp.denoise = 1; break;
        case 't': hafm_set_threads((int)hafm_opt_long("-t", optarg, 1, 1024)); break;
        case 'h': usage(stdout); return hafm_close_stdout() == 0 ? 0 : 1;
        case 'V': hafm_print_version();
        default: bad_option(c, argv);
        }
    }
    if (argc - optind > 1) hafm_usage_error("one input at most, got %d", argc - optind);
    if (s.mp.n_fft % 2) hafm_usage_error("--n-fft: expected an even number, got %d", s.mp.n_fft);
    if (vpath && apath && !strcmp(vpath, apath) && strcmp(vpath, "-")) hafm_usage_error("-v and -a name the same file");
    if (vpath && apath && !strcmp(vpath, "-") && !strcmp(apath, "-")) hafm_usage_error("-v and -a cannot both be stdout");
    s.mdx = method && !strcmp(method, "mdx");
    if (s.mdx && !model) hafm_usage_error("MDX-Net needs a model (-m FILE or $HAFM_MDX_MODEL)");
    if (s.mdx && !(s.model = hafm_mdx_load(model))) hafm_die_last();
    if (s.mdx) {   /* UVR's settings for a model it knows, unless given */
        char hex[33];
        if (hafm_mdx_uvr_hash(model, hex) < 0) hafm_die_last();
        const hafm_mdx_uvr_model *u = hafm_mdx_uvr_lookup(hex);
        if (u) {
            if (strcmp(u->stem, "Vocals") && strcmp(u->stem, "Instrumental") && !set_stem)
                hafm_die("%s: UVR's model '%s' separates %s, not vocals (--stem overrides)", model,
                         *u->name ? u->name : hex, u->stem);
            if (!set_nfft) s.mp.n_fft = u->n_fft;
            if (!set_dimt) s.mp.dim_t = u->dim_t;
            if (!set_comp) s.mp.compensate = u->compensate;
            if (!set_stem) s.instrumental = !strcmp(u->stem, "Instrumental");
        }
    }

    const char *in_path = optind < argc ? argv[optind] : "-";
    FILE *in = strcmp(in_path, "-") ? fopen(in_path, "rb") : stdin;
    if (!in) hafm_die("cannot open %s:", in_path);
    int is_stream = hafm_input_is_stream(in);
    int files = vpath || apath;

    sink k = { .vpath = vpath, .apath = apath, .vname = vname, .aname = aname, .sep = &s };
    char key[HAFM_MAX_KEY + 1];
    if (!is_stream) {
        if (!files) {
            hafm_audio_key_from_path(key, sizeof key, in_path);
            if (!(k.w = hafm_writer_open(stdout, "vsep"))) hafm_die_last();
            k.item_key = key;
        }
        if (s.mdx) {
            if (in != stdin) fclose(in);
            hafm_sndreader *rd = hafm_sndreader_open(in_path);
            if (!rd) hafm_die_last();
            int rate = hafm_sndreader_rate(rd), ch = hafm_sndreader_channels(rd);
            hafm_mdx_audio *ma = hafm_mdx_audio_new(s.model, &s.mp, s.instrumental, ch, rate);
            if (!ma) hafm_die_last();
            const int64_t block = 65536;
            float *buf = hafm_xmalloc((size_t)block * ch * sizeof(float));
            int64_t got, total = 0;
            while ((got = hafm_sndreader_read_f32(rd, buf, block)) > 0) {
                mdx_push(&k, ma, buf, got, 0, rate, ch);
                total += got;
            }
            if (got < 0) hafm_die_last();
            if (total == 0) hafm_die("%s: no audio samples", in_path);
            mdx_push(&k, ma, NULL, 0, 1, rate, ch);
            sink_close(&k);
            hafm_mdx_audio_free(ma);
            hafm_sndreader_close(rd);
            free(buf);
        } else {
            if (in != stdin) fclose(in);
            hafm_audio a = { 0 };
            if (hafm_audio_read(in_path, &a) < 0) hafm_die_last();
            repet_whole(&k, &s, &a);
            hafm_audio_free(&a);
        }
        if (k.w && (hafm_write_item_end(k.w) < 0 || hafm_writer_close(k.w) < 0)) hafm_die_last();
        hafm_mdx_free(s.model);
        return hafm_close_stdout() == 0 ? 0 : 1;
    }

    /* stream: MDX-Net separates the chosen track as it arrives; REPET-SIM at the track's end */
    hafm_reader *r = hafm_reader_open(in, in == stdin ? "stdin" : in_path);
    if (!r) hafm_die_last();
    k.w = files ? NULL : hafm_writer_open(stdout, "vsep");
    hafm_event ev;
    int rc, id = -1, items = 0, rate = 0, ch = 0;
    hafm_audio a = { 0 }, piece = { 0 };
    hafm_mdx_audio *ma = NULL;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (k.w && hafm_write_passthrough(k.w, &ev) < 0) hafm_die_last();
        if (ev.type == HAFM_EV_ITEM) {
            if (files && items) hafm_die("-v/-a write one song: the stream has more than one item");
            items++;
            id = -1;
            hafm_audio_free(&a);
            memset(&a, 0, sizeof a);
        } else if (ev.type == HAFM_EV_TRACK && !strcmp(ev.track->name, track)) {
            if (ev.track->kind != HAFM_KIND_AUDIO) hafm_die("track '%s': not an audio track", track);
            id = ev.track->id;
            rate = ev.track->sample_rate;
            ch = ev.track->channels;
            if (s.mdx && !(ma = hafm_mdx_audio_new(s.model, &s.mp, s.instrumental, ch, rate))) hafm_die_last();
        } else if (ev.type == HAFM_EV_DATA && ev.track->id == id) {
            hafm_audio *dst = s.mdx ? &piece : &a;
            if (s.mdx) piece.frames = 0;
            if (hafm_audio_append_event(dst, &ev) < 0) hafm_die_last();
            if (s.mdx) mdx_push(&k, ma, piece.data, piece.frames, 0, rate, ch);
        } else if (ev.type == HAFM_EV_END && ev.track->id == id) {
            if (ev.track->frames_seen == 0) hafm_die("item '%s': track '%s' has no samples", hafm_reader_item_key(r), track);
            if (s.mdx) {
                mdx_push(&k, ma, NULL, 0, 1, rate, ch);
                sink_close(&k);
                hafm_mdx_audio_free(ma);
                ma = NULL;
            } else {
                repet_whole(&k, &s, &a);
            }
        } else if (ev.type == HAFM_EV_ITEM_END && id < 0) {
            hafm_die("item '%s' has no audio track '%s'", ev.key, track);
        }
    }
    if (rc < 0) hafm_die_last();
    if (files && !items) hafm_die("the input stream has no items");
    hafm_reader_close(r);
    if (in != stdin) fclose(in);
    if (k.w && hafm_writer_close(k.w) < 0) hafm_die_last();
    hafm_audio_free(&a);
    hafm_audio_free(&piece);
    hafm_mdx_audio_free(ma);
    hafm_mdx_free(s.model);
    return hafm_close_stdout() == 0 ? 0 : 1;
}
