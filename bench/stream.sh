#!/usr/bin/env bash
# Stream reader and pass-through throughput (lib/stream.c), 256 MiB of audio in memory.
"${HAFM_BENCHBIN:-build/release/bench}"/bench_stream
