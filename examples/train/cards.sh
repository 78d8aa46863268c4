#!/usr/bin/env bash
# examples/train/cards.sh - writes the model cards $MODELS/<name>.md from the training logs and
# $WORK/eval/eval.json (run by `make cards`; the variables come from the Makefile). Every number in
# a card is read from a log or a measurement of this run.
set -euo pipefail
: "${MODELS:?}" "${WORK:?}" "${CORPUS:?}"
commit=$(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown)
hours=$(make -s --no-print-directory -C "$CORPUS" hours 2>/dev/null || true)
export commit hours
python3 - <<'PY'
import csv, json, os, re
env = os.environ
M, W, C = env['MODELS'], env['WORK'], env['CORPUS']
ev = json.load(open(os.path.join(W, 'eval', 'eval.json')))
per_song = {}   # song -> system -> {chord_fit, beat_fit}, from the eval's per-song table
fit_tsv = os.path.join(W, 'eval', 'fit.tsv')
if os.path.exists(fit_tsv):
    for r in csv.DictReader(open(fit_tsv), delimiter='\t'):
        try:
            per_song.setdefault(r['song'], {})[r['system']] = {k: float(r[k]) for k in ('chord_fit', 'beat_fit')}
        except ValueError:
            pass
def count(split):
    p = os.path.join(C, 'lists', split + '.txt')
    return sum(1 for _ in open(p)) if os.path.exists(p) else 0
def train_among(first):   # training songs among the corpus's first `first`
    index = os.path.join(C, 'lists', 'index.tsv')
    return sum(1 for r in csv.reader(open(index), delimiter='\t') if int(r[0]) < first and r[2] == 'train') \
        if os.path.exists(index) else 0
def size(name):
    p = os.path.join(M, name)
    return '%.2f MB' % (os.path.getsize(p) / 1e6) if os.path.exists(p) else 'missing'
def load(p):
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
data = ('The paired corpus of `examples/corpus` (seed %s, %s songs of about %s s; %s): %d training, '
        '%d validation and %d test songs; vocals from the formant singer, accompaniments rendered with '
        'FluidSynth (true stems, not separated).' % (env['SEED'], env['SONGS'], env['LENGTH'], env['hours'].strip(),
                                                     count('train'), count('valid'), count('test')))
usage = ev.get('codebook_usage', [])
collapsed = bool(usage) and min(u['distinct'] for u in usage if u['track'] == 'accomp.coarse') < 16
warn = ('**Status: this codec collapsed.** On the test songs its first codebook uses %d of 1024 codes; the '
        'reconstructions are not the input (SI-SDR %s dB at 6 kbps). It was trained far too briefly for this '
        'configuration; `make -C examples/train` with the default CODEC_STEPS, or a larger CODEC_ARCH, is what '
        'a usable codec needs.\n\n' % (min(u['distinct'] for u in usage if u['track'] == 'accomp.coarse'),
                                       ev['codec']['6 kbps']['si_sdr_db'])) if collapsed else ''
if not collapsed and float(ev['codec']['6 kbps']['si_sdr_db']) < 0:
    warn = ('**Status: the waveform is not reproduced** (SI-SDR %s dB at 6 kbps on the test songs: the error is larger '
            'than the signal); the log-mel distance below says how close the spectrum is. It was trained %s steps, '
            'a fraction of what EnCodec-size codecs get; a longer run (`CODEC_STEPS`) resumes from the recipe\'s '
            'checkpoint.\n\n' % (ev['codec']['6 kbps']['si_sdr_db'], env['CODEC_STEPS']))
warn_stage = ('**Status: the codec these tokens come from collapsed** (see codec.md), so this stage\'s targets '
              'are nearly constant codes and its accuracy says nothing about music; retrain it after the codec.\n\n'
              if collapsed else '')
note = (' ' + env['TRAINED_WITH']) if env.get('TRAINED_WITH') else ''
head = lambda name, what: '# %s\n\n%s\n\nMade by `make -C examples/train` at commit %s.%s File: `%s.safetensors` (%s).\n\n' % (
    name, what, env['commit'], note, name, size(name + '.safetensors'))

# ---- codec
log = load(os.path.join(W, 'codec', 'log.jsonl'))
steps = {}
for l in log:
    if 'loss' in l: steps[l['step']] = l   # a resumed run re-logs steps after its checkpoint: keep the last
evals = {}
for l in log:
    if 'eval_si_sdr_db' in l: evals[l['step']] = l['eval_si_sdr_db']
last = steps[max(steps)] if steps else {}
secs = sum(l.get('sec', 0) for l in steps.values())
c = ev['codec']
card = head('codec', 'A small EnCodec-architecture codec (SEANet encoder/decoder with an LSTM, residual vector '
            'quantiser), 24 kHz mono, 75 frames per second, 8 codebooks of 1024 at 6 kbps; the codec of '
            '`encodec-enc`/`encodec-dec` in the default pipeline.') + warn
codec_songs = int(env.get('CODEC_SONGS') or env['SONGS'])
card += ('## Data\n\n%s The codec trained on the accompaniments of the %d training songs among the first %d '
         '(`CODEC_SONGS`; the codec only codes accompaniments).\n\n' % (data, train_among(codec_songs), codec_songs))
card += ('## Configuration and training\n\n`encodec-train %s %s --lr %s --steps %s --batch %s --segment %s --seed %s` '
         '(reconstruction losses: time-domain L1, multi-scale mel; quantiser dropout over 1.5/3/6 kbps).\n\n'
         '%d optimiser steps logged, %.0f s of training step time in all; final step: loss %.4f, L1 %.4f, mel %.4f.\n\n'
         % (env['CODEC_ARCH'], env['CODEC_LOSS'], env['CODEC_LR'], env['CODEC_STEPS'], env['CODEC_BATCH'], env['CODEC_SEGMENT'], env['SEED'],
            len(steps), secs, last.get('loss', float('nan')), last.get('l1', float('nan')), last.get('mel', float('nan'))))
if evals:
    card += 'SI-SDR of the first training clip at 6 kbps during training: ' + ', '.join(
        'step %d: %.2f dB' % (k, v) for k, v in sorted(evals.items())) + '.\n\n'
card += '![training curves](codec.png)\n\n'
card += ('## Measured on the %d held-out test songs (`make eval`)\n\n| bandwidth | codebooks | SI-SDR (dB) | log-mel distance |\n|---|---|---|---|\n'
         % len(ev['songs']))
for kb, r in c.items():
    card += '| %s | %d | %s | %s |\n' % (kb, r['codebooks'], r['si_sdr_db'], r['mel_distance'])
card += '\nCodes of the corpus\'s own test songs\' accompaniments (their tokens): ' + ', '.join(
    '%s codebook %d: %d distinct (the most frequent %.1f %%)' % (u['track'], u['codebook'], u['distinct'], 100 * u['top_share'])
    for u in ev.get('codebook_usage', [])) + '.\n'
card += ('\nSI-SDR of the reconstruction against the true accompaniment (means removed); log-mel distance: mean '
         'absolute difference of log10 mel power, 64 bands (`hafm-fit -r`).\n')
open(os.path.join(M, 'codec.md'), 'w').write(card)

# ---- tokenizer
kl = open(os.path.join(W, 'features', 'kmeans.log')).read().strip().splitlines()
feat_desc = {'mfcc': '39-dimensional MFCCs with deltas', 'logmel': '80-band log-mel spectra',
             'chroma': '13 cepstra and a 12-bin chroma from a 256 ms window'}.get(env['FEATURES'], env['FEATURES'])
card = head('centroids', 'The semantic tokenizer: %s k-means centroids over `hubert-tok -F %s` features (%s, '
            'normalised per song, 50 frames per second), used by `hubert-tok` for the vocal and the accompaniment '
            'semantic tokens (the file names its features, so `hubert-tok -c centroids.safetensors` needs no -F). '
            'No HuBERT checkpoint can be downloaded here; clusters of spectral features are what HuBERT\'s own '
            'first iteration is trained on.%s'
            % (env['K'], env['FEATURES'], feat_desc,
               {'logmel': ' Log-mel clusters keep the pitch that MFCCs drop.',
                'chroma': ' The chroma makes the clusters keep the notes and chords that cepstra drop.'}.get(env['FEATURES'], '')))
tok_songs = int(env.get('TOKENIZER_SONGS') or env['SONGS'])
card += ('## Data\n\n%s Fitted on the features of both the vocals and the accompaniments of the %d training songs '
         'among the first %d (`TOKENIZER_SONGS`).\n\n' % (data, train_among(tok_songs), tok_songs))
card += '## Fit\n\n`hafm-kmeans -k %s -b ... --seed %s` (mini-batch k-means); its log:\n\n```\n%s\n```\n' % (
    env['K'], env['SEED'], '\n'.join(kl[-4:]))
open(os.path.join(M, 'centroids.md'), 'w').write(card)

# ---- stages
sweep_path = os.path.join(W, 'sampling', 'sampling.tsv')
sweep = [l.rstrip('\n').split('\t') for l in open(sweep_path)][1:] if os.path.exists(sweep_path) else []
what = {1: 'Stage 1: vocal semantic tokens -> accompaniment semantic tokens (50 Hz).',
        2: 'Stage 2: vocal and accompaniment semantic tokens -> the accompaniment\'s coarse codec codebooks 1-4 (75 Hz).',
        3: 'Stage 3: coarse codebooks 1-4 -> fine codebooks 5-8 of the accompaniment.'}
for st in (1, 2, 3):
    name = 'stage%d' % st
    cfg_path = os.path.join(W, name + '.json')
    if not os.path.exists(cfg_path): continue
    cfg = json.load(open(cfg_path))
    log = load(os.path.join(W, name, 'log.jsonl'))
    tr = [l for l in log if 'loss' in l]
    va = [l for l in log if 'val_loss' in l]
    card = head(name, what[st] + ' A decoder-only Transformer of the paper\'s architecture (RMSNorm, QK-norm, '
                'T5 relative position bias, GEGLU, per-codebook heads) at a small size.') + (warn_stage if st > 1 else '')
    card += '## Data\n\n%s Tokens: `hubert-tok -F %s -c centroids.safetensors` on vocal and accompaniment, `encodec-enc -b 6` with `codec.safetensors` on the accompaniment.\n\n' % (data, env['FEATURES'])
    card += ('## Configuration and training\n\n```json\n%s\n```\n\n`hafm-train --config stage%d.json --steps %s --batch %s '
             '--lr %s --seed %s%s%s` (AdamW, warmup and cosine decay, condition dropout 0.1).\n\n'
             % (json.dumps(cfg), st, env['STAGE%d_STEPS' % st], env.get('STAGE%d_BATCH' % st, env['BATCH']), env['LR'], env['SEED'],
                ' --codebook-weights %s' % env['STAGE%d_CODEBOOK_WEIGHTS' % st] if env.get('STAGE%d_CODEBOOK_WEIGHTS' % st) else '',
                " --sampling '%s'" % env['SAMPLING'] if env.get('SAMPLING') else ''))
    if tr:
        card += '%d steps, %.0f s of step time in all, %d target tokens per step; final training loss %.4f, accuracy %.4f.\n\n' % (
            len(tr), sum(l['step_s'] for l in tr), tr[-1]['tokens'] // max(1, tr[-1]['step']), tr[-1]['loss'], tr[-1]['acc'])
    card += '![training curves](%s.png)\n\n## Validation (held-out validation songs)\n\n| step | loss | token accuracy |\n|---|---|---|\n' % name
    for l in va:
        card += '| %d | %.4f | %.4f |\n' % (l['step'], l['val_loss'], l['val_acc'])
    if env.get('SAMPLING'):
        card += ('\n## Sampling defaults\n\nThe model carries `%s` (`hafm-train --sampling`; the config\'s `sampling`), which '
                 '`hafm-stage%d` uses unless `-s`, `-T`, `-k` or `-p` is given; the paper\'s 3 / 0.9 / 250 are the fallback. '
                 'Chosen on validation songs, never the test songs, by `make sampling`%s.\n'
                 % (env['SAMPLING'], st, ' (examples/train/README.md has the table)' if sweep else ''))
    ex = [l for l in log if 'export_val_loss' in l]
    if ex and va:
        e = ex[-1]
        card += ('\nShipped with %s weights (`--export-dtype`): the rounded weights give validation loss %.4f and '
                 'token accuracy %.4f, against %.4f and %.4f in f32 (%+.2f %% loss).\n'
                 % (e['export_dtype'], e['export_val_loss'], e['export_val_acc'], va[-1]['val_loss'], va[-1]['val_acc'],
                    100 * (e['export_val_loss'] / va[-1]['val_loss'] - 1)))
    f = ev['fit']
    card += ('\n## The whole pipeline on the %d test songs (`make eval`)\n\n' % len(ev['songs']))
    if collapsed:
        card += ('The generated accompaniments were decoded by the collapsed codec (codec.md): these figures '
                 'measure that codec, not the stages.\n\n')
    systems = [s for s in ('generated', 'coarse', 'oracle', 'random', 'random_coded', 'real', 'real_coded') if s in f]
    card += '| system | chord fit | beat fit |\n|---|---|---|\n'
    for s in systems:
        card += '| %s | %s | %s |\n' % (s, f[s]['chord_fit'], f[s]['beat_fit'])
    fs = [s for s in ('generated', 'coarse', 'oracle', 'random', 'random_coded', 'real_coded') if s in next(iter(ev['fad'].values()))]
    card += '\n| FAD embedding | ' + ' | '.join(fs) + ' |\n|---|' + '---|' * len(fs) + '\n'
    for emb, r in ev['fad'].items():
        card += '| %s | ' % emb + ' | '.join('%.4g' % r[s] for s in fs) + ' |\n'
    card += ('\nChord fit: share of the accompaniment\'s chroma on the labelled chord tones; beat fit: onset strength '
             'at the labelled beats over chance (`hafm-fit`, examples/train/README.md); FAD against the real test '
             'accompaniments (lower is better). Generated: the 3-stage pipeline; coarse: stages 1-2 only, '
             'codebooks 1-4 decoded; oracle: stages 2-3 from the true accompaniment semantic tokens; random: the real accompaniment of another song (for FAD: of validation '
             'songs); real: the song\'s own accompaniment; *_coded: the same through the codec at 6 kbps, '
             'which generated audio passes too.\n')
    def paired_se(k, base):   # standard error of the per-song difference generated - base
        d = [per_song[sg]['generated'][k] - per_song[sg][base][k] for sg in per_song
             if 'generated' in per_song[sg] and base in per_song[sg]]
        if len(d) < 2: return None
        mu = sum(d) / len(d)
        return (sum((x - mu) ** 2 for x in d) / (len(d) - 1) / len(d)) ** 0.5
    def verdict(base):
        if base not in f: return ''
        parts = []
        for k, nm in (('chord_fit', 'chord fit'), ('beat_fit', 'beat fit')):
            g, b = f['generated'][k], f[base][k]
            if g is None or b is None: continue
            se = paired_se(k, base)
            if se is None:
                word = 'better' if g > b else 'not better'
            else:   # beyond two standard errors, or not
                word = 'better' if g - b > 2 * se else 'worse' if g - b < -2 * se else 'within two standard errors'
            parts.append('%s %+.4f%s (%s)' % (nm, g - b, ' +- %.4f' % se if se is not None else '', word))
        for emb, r in ev['fad'].items():
            if base in r:
                parts.append('FAD %s %.3gx of it (%s)' % (emb, r['generated'] / r[base] if r[base] else float('nan'),
                                                          'better' if r['generated'] < r[base] else 'not better'))
        return '- against %s: %s.\n' % (base, '; '.join(parts))
    card += ('\nGenerated against the random baselines (fit differences: mean over songs +- its standard '
             'error):\n\n' + verdict('random') + verdict('random_coded'))
    open(os.path.join(M, name + '.md'), 'w').write(card)
print('cards written to', M)
PY
