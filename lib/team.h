/* team.h - a spinning barrier for phases inside one OpenMP region (internal header).
 * Steps of a few microseconds (a decode step's layers, an LSTM frame) cannot afford an OpenMP
 * region or barrier each: under OMP_WAIT_POLICY=passive (the setting that keeps OpenMP and
 * OpenBLAS from fighting over the cores) each is a futex wake-up and sleep. Inside one region,
 * phases are separated by this barrier, which spins briefly and then yields the core, so a
 * partner that was descheduled does not cost a whole spin. */
#ifndef HAFM_TEAM_H
#define HAFM_TEAM_H

#include <sched.h>
#include <stdatomic.h>

typedef struct {
    atomic_int arrived, generation;
    int n;   /* threads in the team; set before the first wait */
} hafm_team_barrier;

static inline void hafm_team_wait(hafm_team_barrier *b)
{
    if (b->n <= 1) return;
    int gen = atomic_load_explicit(&b->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) == b->n - 1) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->generation, 1, memory_order_release);
        return;
    }
    for (long spins = 0; atomic_load_explicit(&b->generation, memory_order_acquire) == gen; spins++) {
        if (spins < 20000) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
        }
    }
}

#endif
