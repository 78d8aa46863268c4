/* fad_sets.c - sets of songs for FAD: inputs, embeddings and the statistics cache (hafm/fad.h). */
#include "hafm/fad.h"
#include "hafm/audio.h"
#include "hafm/encodec.h"
#include "hafm/hubert.h"
#include "hafm/stream.h"
#include "hafm/vggish.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct hafm_fad_embedder {
    hafm_fad_config cfg;
    hafm_vggish *vggish;
    hafm_encodec *encodec;
    hafm_encodec_stream *enc;
    hafm_hubert *hubert;
    char model_id[PATH_MAX + 64];   /* resolved path, size, mtime of the weights */
};

hafm_fad_embedder *hafm_fad_embedder_new(const hafm_fad_config *cfg) {
    hafm_fad_embedder *e = hafm_xcalloc(1, sizeof *e);
    e->cfg = *cfg;
    int vggish = strcmp(cfg->emb, "vggish") == 0, encodec = strcmp(cfg->emb, "encodec") == 0;
    int hubert = strcmp(cfg->emb, "hubert") == 0;
    if (vggish || encodec || hubert) {
        if (!cfg->model) {
            hafm_error("%s embeddings need weights (-m FILE or $%s)",
                       vggish ? "VGGish" : encodec ? "EnCodec" : "HuBERT",
                       vggish ? "HAFM_VGGISH_MODEL" : encodec ? "HAFM_ENCODEC_MODEL" : "HAFM_HUBERT_MODEL");
            goto fail;
        }
        struct stat sb;
        char real[PATH_MAX];
        if (stat(cfg->model, &sb) < 0 || !realpath(cfg->model, real)) {
            hafm_error("%s:", cfg->model);
            goto fail;
        }
        snprintf(e->model_id, sizeof e->model_id, "%s:%lld:%lld.%09ld:layer%d", real, (long long)sb.st_size,
                 (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec, hubert ? cfg->layer : 0);
        if (vggish && !(e->vggish = hafm_vggish_load(cfg->model))) goto fail;
        if (encodec) {
            if (!(e->encodec = hafm_encodec_load(cfg->model))) goto fail;
            if (e->encodec->cfg.channels != 1) {
                hafm_error("%s: EnCodec embeddings need a mono model (fadtk's encodec-emb: 24 kHz)", cfg->model);
                hafm_encodec_free(e->encodec);
                goto fail;
            }
            e->enc = hafm_encodec_encoder_new(e->encodec);
        }
        if (hubert) {
            if (!(e->hubert = hafm_hubert_load(cfg->model, cfg->layer))) goto fail;
            if (cfg->layer < 0 || cfg->layer > hafm_hubert_max_layer(e->hubert)) {
                hafm_error("%s: layer %d out of range [0, %d]", cfg->model, cfg->layer, hafm_hubert_max_layer(e->hubert));
                hafm_hubert_free(e->hubert);
                goto fail;
            }
        }
    } else if (strcmp(cfg->emb, "features") != 0) {
        hafm_error("unknown embedding '%s' (vggish, encodec, hubert or features)", cfg->emb);
        goto fail;
    }
    return e;
fail:
    free(e);
    return NULL;
}

void hafm_fad_embedder_free(hafm_fad_embedder *e) {
    if (!e) return;
    hafm_vggish_free(e->vggish);
    hafm_encodec_stream_free(e->enc);
    hafm_encodec_free(e->encodec);
    hafm_hubert_free(e->hubert);
    free(e);
}

/* Embedding frames [*n, dim] of audio; NULL + error. */
static float *embed_audio(hafm_fad_embedder *e, const hafm_audio *a, int64_t *n, int *dim, const char *what) {
    if (e->encodec) {   /* the encoder's continuous latent, one D-dim frame per hop samples */
        hafm_audio mono = { 0 };
        if (hafm_audio_prepare(a, e->encodec->cfg.sample_rate, &mono) < 0) return NULL;
        const float *lat;
        int64_t T = hafm_encodec_encoder_push(e->enc, mono.data, mono.frames, 1, &lat);
        hafm_audio_free(&mono);
        if (T < 0) return NULL;
        *dim = e->encodec->cfg.dimension;
        *n = T;
        float *emb = hafm_xmalloc((size_t)(T ? T : 1) * *dim * sizeof(float));
        memcpy(emb, lat, (size_t)T * *dim * sizeof(float));
        return emb;
    }
    if (e->hubert) {   /* hidden_states[layer], one D-dim frame per 20 ms */
        hafm_audio mono = { 0 };
        if (hafm_audio_prepare(a, HAFM_HUBERT_SAMPLE_RATE, &mono) < 0) return NULL;
        *dim = hafm_hubert_get_config(e->hubert)->hidden;
        float *emb = hafm_hubert_features(e->hubert, mono.data, mono.frames, e->cfg.layer, n);
        hafm_audio_free(&mono);
        if (!emb) hafm_error_prefix("%s", what);
        return emb;
    }
    if (!e->vggish) {
        hafm_error("%s: audio needs an embedding model (--emb vggish, encodec or hubert), or give a features track", what);
        return NULL;
    }
    hafm_audio mono = { 0 };
    if (hafm_audio_prepare(a, HAFM_VGGISH_RATE, &mono) < 0) return NULL;
    int64_t ex = hafm_vggish_num_examples(mono.frames);
    *dim = hafm_vggish_dim(e->vggish);
    *n = ex;
    float *mel = hafm_xmalloc((size_t)(ex ? ex : 1) * HAFM_VGGISH_FRAMES * HAFM_VGGISH_BANDS * sizeof(float));
    float *emb = hafm_xmalloc((size_t)(ex ? ex : 1) * *dim * sizeof(float));
    hafm_vggish_logmel(mel, mono.data, mono.frames);
    hafm_audio_free(&mono);
    hafm_vggish_embed(e->vggish, emb, mel, ex);
    free(mel);
    return emb;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int hafm_fad_cache_path(const hafm_fad_embedder *e, const char *audio_path, char *out, size_t cap) {
    FILE *f = fopen(audio_path, "rb");
    if (!f) {
        hafm_error("%s:", audio_path);
        return -1;
    }
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a(h, "hafm-fad-1", 11);
    h = fnv1a(h, e->cfg.emb, strlen(e->cfg.emb) + 1);
    h = fnv1a(h, e->model_id, strlen(e->model_id) + 1);
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) h = fnv1a(h, buf, got);
    int err = ferror(f);
    fclose(f);
    if (err) {
        hafm_error("%s: read error", audio_path);
        return -1;
    }
    snprintf(out, cap, "%s/%016" PRIx64 ".safetensors", e->cfg.cache_dir, h);
    return 0;
}

static hafm_fad_song *add_song(hafm_fad_set *set, const char *name) {
    set->songs = hafm_xrealloc(set->songs, (size_t)(set->nsongs + 1) * sizeof *set->songs);
    hafm_fad_song *s = &set->songs[set->nsongs++];
    memset(s, 0, sizeof *s);
    s->name = hafm_xstrdup(name);
    return s;
}

/* frames [n, dim] of one song: statistics, set totals, kept frames */
static int add_frames(hafm_fad_set *set, hafm_fad_song *s, const float *x, int64_t n, int dim, int keep) {
    if (set->total.dim == 0 && hafm_fad_stats_init(&set->total, dim) < 0) return -1;
    if (dim != set->total.dim) {
        hafm_error("%s: embedding dimension %d, the set's is %d", s->name, dim, set->total.dim);
        return -1;
    }
    if (s->stats.dim == 0 && hafm_fad_stats_init(&s->stats, dim) < 0) return -1;
    hafm_fad_stats_add_f32(&s->stats, x, n);
    if (keep && n > 0) {
        set->frames = hafm_xrealloc(set->frames, (size_t)(set->nframes + n) * dim * sizeof(float));
        memcpy(set->frames + set->nframes * dim, x, (size_t)n * dim * sizeof(float));
        set->nframes += n;
    }
    return 0;
}

static void mkdirs(const char *dir) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0777);
            *p = '/';
        }
    mkdir(tmp, 0777);
}

static int load_audio_file(hafm_fad_set *set, hafm_fad_embedder *e, const char *path, int keep) {
    hafm_fad_song *s = add_song(set, path);
    char cpath[PATH_MAX + 64];
    int use_cache = e->cfg.cache_dir && (e->vggish || e->encodec || e->hubert) && !keep;
    if (use_cache) {
        if (hafm_fad_cache_path(e, path, cpath, sizeof cpath) < 0) return -1;
        hafm_fad_stats cached;
        FILE *probe = fopen(cpath, "rb");
        if (probe) {
            fclose(probe);
            if (hafm_fad_stats_load(&cached, cpath) == 0) {
                if (set->total.dim == 0 && hafm_fad_stats_init(&set->total, cached.dim) < 0) return -1;
                if (cached.dim == set->total.dim) {
                    s->stats = cached;
                    s->cached = 1;
                    return hafm_fad_stats_merge(&set->total, &s->stats);
                }
                hafm_fad_stats_free(&cached);
            }
        }
    }
    hafm_audio a = { 0 };
    if (hafm_audio_read(path, &a) < 0) return -1;
    int64_t n;
    int dim;
    float *emb = embed_audio(e, &a, &n, &dim, path);
    hafm_audio_free(&a);
    if (!emb) return -1;
    int rc = add_frames(set, s, emb, n, dim, keep);
    free(emb);
    if (rc < 0) return -1;
    if (use_cache) {
        mkdirs(e->cfg.cache_dir);
        if (hafm_fad_stats_save(&s->stats, cpath, "source", path) < 0)
            hafm_warn("cannot write the statistics cache %s: %s", cpath, hafm_last_error());
    }
    return hafm_fad_stats_merge(&set->total, &s->stats);
}

/* One stream: every item is a song. */
static int load_stream(hafm_fad_set *set, hafm_fad_embedder *e, FILE *fp, const char *name, int keep) {
    hafm_reader *r = hafm_reader_open(fp, name);
    if (!r) return -1;
    hafm_event ev;
    int rc, id = -1, is_audio = 0;
    hafm_fad_song *s = NULL;
    hafm_audio a = { 0 };
    float *buf = NULL;
    size_t cap = 0;
    while ((rc = hafm_reader_next(r, &ev)) > 0) {
        if (ev.type == HAFM_EV_ITEM) {
            s = add_song(set, ev.key);
            id = -1;
        } else if (ev.type == HAFM_EV_TRACK && id < 0) {
            const hafm_track *t = ev.track;
            int named = e->cfg.track && strcmp(t->name, e->cfg.track) == 0;
            int pick = named || (!e->cfg.track && t->kind == HAFM_KIND_FEATURES);
            if (pick && t->kind == HAFM_KIND_FEATURES) {
                if (t->ndim != 1 || !hafm_dtype_is_float(t->dtype)) {
                    hafm_error("%s: item '%s': track '%s': expected float features of shape [D]", name, s->name, t->name);
                    rc = -1;
                    break;
                }
                id = t->id;
                is_audio = 0;
            } else if ((named || (!e->cfg.track && (e->vggish || e->encodec || e->hubert))) && t->kind == HAFM_KIND_AUDIO) {
                id = t->id;
                is_audio = 1;
                hafm_audio_free(&a);
                memset(&a, 0, sizeof a);
            } else if (named) {
                hafm_error("%s: item '%s': track '%s' is neither features nor audio", name, s->name, t->name);
                rc = -1;
                break;
            }
        } else if (ev.type == HAFM_EV_DATA && ev.track->id == id) {
            if (is_audio) {
                if (hafm_audio_append_event(&a, &ev) < 0) { rc = -1; break; }
            } else {
                size_t need = (size_t)ev.frames * hafm_track_frame_elems(ev.track);
                if (need > cap) buf = hafm_xrealloc(buf, (cap = need) * sizeof(float));
                hafm_event_to_f32(&ev, buf);
                if (add_frames(set, s, buf, ev.frames, (int)ev.track->shape[0], keep) < 0) { rc = -1; break; }
            }
        } else if (ev.type == HAFM_EV_ITEM_END) {
            if (id < 0) {
                hafm_error("%s: item '%s' has no %s track", name, s->name,
                           e->cfg.track ? e->cfg.track : (e->vggish || e->encodec || e->hubert) ? "features or audio" : "features");
                rc = -1;
                break;
            }
            if (is_audio) {
                int64_t n;
                int dim;
                float *emb = embed_audio(e, &a, &n, &dim, s->name);
                hafm_audio_free(&a);
                memset(&a, 0, sizeof a);
                if (!emb || add_frames(set, s, emb, n, dim, keep) < 0) { free(emb); rc = -1; break; }
                free(emb);
            }
            if (s->stats.dim == 0) {
                hafm_error("%s: item '%s': no frames", name, s->name);
                rc = -1;
                break;
            }
            if (hafm_fad_stats_merge(&set->total, &s->stats) < 0) { rc = -1; break; }
        }
    }
    hafm_audio_free(&a);
    free(buf);
    hafm_reader_close(r);
    return rc < 0 ? -1 : 0;
}

static int has_audio_ext(const char *name) {
    static const char *ext[] = { "wav", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "au", "caf", "w64" };
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (strcasecmp(dot + 1, ext[i]) == 0) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_path(hafm_fad_set *set, hafm_fad_embedder *e, const char *path, int keep) {
    if (strcmp(path, "-") == 0) return load_stream(set, e, stdin, "stdin", keep);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        hafm_error("%s:", path);
        return -1;
    }
    int stream = hafm_input_is_stream(fp);
    int rc;
    if (stream) rc = load_stream(set, e, fp, path, keep);
    else rc = load_audio_file(set, e, path, keep);
    fclose(fp);
    return rc;
}

int hafm_fad_set_load(hafm_fad_set *set, const char *spec, hafm_fad_embedder *e, int keep_frames) {
    memset(set, 0, sizeof *set);
    struct stat sb;
    int rc = 0;
    if (spec[0] == '@') {
        FILE *f = fopen(spec + 1, "r");
        if (!f) {
            hafm_error("%s:", spec + 1);
            return -1;
        }
        char line[PATH_MAX + 2];
        while (rc == 0 && fgets(line, sizeof line, f)) {
            size_t len = strcspn(line, "\r\n");
            line[len] = 0;
            char *p = line;
            while (*p == ' ' || *p == '\t') p++;
            if (!*p || *p == '#') continue;
            rc = load_path(set, e, p, keep_frames);
        }
        fclose(f);
    } else if (stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(spec);
        if (!d) {
            hafm_error("%s:", spec);
            return -1;
        }
        char **names = NULL;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.' || !has_audio_ext(de->d_name)) continue;
            names = hafm_xrealloc(names, (size_t)(n + 1) * sizeof *names);
            size_t len = strlen(spec) + strlen(de->d_name) + 2;
            names[n] = hafm_xmalloc(len);
            snprintf(names[n++], len, "%s/%s", spec, de->d_name);
        }
        closedir(d);
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        for (int i = 0; i < n; i++) {
            if (rc == 0) rc = load_path(set, e, names[i], keep_frames);
            free(names[i]);
        }
        free(names);
        if (rc == 0 && n == 0) {
            hafm_error("%s: no audio files in the directory", spec);
            rc = -1;
        }
    } else {
        rc = load_path(set, e, spec, keep_frames);
    }
    if (rc == 0 && set->total.n < 2) {
        hafm_error("%s: the set has %" PRId64 " embedding frame%s, at least 2 are needed", spec,
                   set->total.n, set->total.n == 1 ? "" : "s");
        rc = -1;
    }
    return rc;
}

void hafm_fad_set_free(hafm_fad_set *set) {
    for (int i = 0; i < set->nsongs; i++) {
        free(set->songs[i].name);
        hafm_fad_stats_free(&set->songs[i].stats);
    }
    free(set->songs);
    if (set->total.dim) hafm_fad_stats_free(&set->total);
    free(set->frames);
    memset(set, 0, sizeof *set);
}
