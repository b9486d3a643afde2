// A small worker pool for kernels of tens of microseconds. Parts of a job are claimed
// dynamically, so when a worker is descheduled (a loaded machine) the caller simply runs the
// remaining parts itself instead of waiting; idle workers spin briefly, then sleep.
#include "CKilnRT.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <immintrin.h>

#define KILN_MAX_THREADS 64
#define KILN_SPIN 2000
#define KILN_PARTS_PER_THREAD 4

static int pool_threads = 1;
static pthread_t workers[KILN_MAX_THREADS];
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static _Atomic uint64_t generation;
static _Atomic int sleepers;
static _Atomic int next_part;
static _Atomic int done_parts;
static kiln_range_kernel job_kernel;
static void *job_args[4];
static int64_t job_count;
static int job_parts;

static void run_parts(void) {
    for (;;) {
        int part = atomic_fetch_add_explicit(&next_part, 1, memory_order_acq_rel);
        if (part >= job_parts) return;
        int64_t begin = job_count * part / job_parts, end = job_count * (part + 1) / job_parts;
        if (begin < end) job_kernel(job_args[0], job_args[1], job_args[2], job_args[3], begin, end);
        atomic_fetch_add_explicit(&done_parts, 1, memory_order_release);
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) {
            if (++spins < KILN_SPIN) { _mm_pause(); continue; }
            pthread_mutex_lock(&sleep_lock);
            atomic_fetch_add(&sleepers, 1);
            while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) pthread_cond_wait(&wake, &sleep_lock);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&sleep_lock);
            break;
        }
        seen = g;
        run_parts();
    }
    return 0;
}

static int requested = 1;
static void start_once(void) {
    pool_threads = requested < 1 ? 1 : (requested > KILN_MAX_THREADS ? KILN_MAX_THREADS : requested);
    for (int i = 1; i < pool_threads; i++) pthread_create(&workers[i], 0, worker_main, 0);
}

void kiln_pool_start(int threads) {
    requested = threads;
    pthread_once(&once, start_once);
}

int kiln_pool_threads(void) { return pool_threads; }

void kiln_parallel_for(kiln_range_kernel kernel, void **args, int64_t count) {
    if (pool_threads < 2 || count < 2 || pthread_mutex_trylock(&submit_lock) != 0) {
        kernel(args[0], args[1], args[2], args[3], 0, count);
        return;
    }
    job_kernel = kernel;
    for (int i = 0; i < 4; i++) job_args[i] = args[i];
    job_count = count;
    int parts = pool_threads * KILN_PARTS_PER_THREAD;
    job_parts = count < parts ? (int)count : parts;
    atomic_store_explicit(&done_parts, 0, memory_order_relaxed);
    atomic_store_explicit(&next_part, 0, memory_order_release);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    run_parts();
    // Only parts a worker has already claimed remain; if it was descheduled, yield to it.
    int spins = 0;
    while (atomic_load_explicit(&done_parts, memory_order_acquire) < job_parts) {
        if (++spins < 4000) _mm_pause(); else sched_yield();
    }
    pthread_mutex_unlock(&submit_lock);
}
