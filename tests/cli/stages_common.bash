# Shared setup of the stage command tests: tiny models (tests/data/stages, made by
# tests/ref/make_fixtures.py) and token streams made by tests/ref/hafm_stream.py.
PY=/usr/bin/python3
STREAM_PY=$BATS_TEST_DIRNAME/../ref/hafm_stream.py
MODELS=$HAFM_DATA/stages

need_python() {
    $PY -c 'import numpy' 2>/dev/null || skip "python3 with numpy is needed to make test streams"
}

tracks() { $PY "$STREAM_PY" tracks "$1"; }
random_stream() { $PY "$STREAM_PY" random "$@"; }
