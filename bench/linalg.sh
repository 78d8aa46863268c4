#!/usr/bin/env bash
# The machine's achieved sgemm rate, the reference for every GFLOP/s figure.
"${HAFM_BENCHBIN:-build/release/bench}"/bench_sgemm
