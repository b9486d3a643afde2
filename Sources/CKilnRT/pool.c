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

// One word says which job is current and which of its parts is next: serial (high 32 bits),
// parts (16 bits), next part (low 16 bits). A worker claims a part only by a compare-and-swap on
// that exact word, so a worker still leaving the previous job can never take a part index of the
// next one (or read the next job's fields against the previous job's count).
static _Atomic uint64_t claim;
static _Atomic int sleepers;
static _Atomic int done_parts;
static kiln_range_kernel job_kernel;
static void *job_args[4];
static int64_t job_count;
static _Atomic uint64_t jobs_given;

static inline uint32_t claim_serial(uint64_t c) { return (uint32_t)(c >> 32); }
static inline int claim_parts(uint64_t c) { return (int)((c >> 16) & 0xFFFF); }
static inline int claim_next(uint64_t c) { return (int)(c & 0xFFFF); }

static void run_parts(uint32_t serial) {
    uint64_t c = atomic_load_explicit(&claim, memory_order_acquire);
    for (;;) {
        if (claim_serial(c) != serial || claim_next(c) >= claim_parts(c)) return;
        if (!atomic_compare_exchange_weak_explicit(&claim, &c, c + 1, memory_order_acq_rel, memory_order_acquire)) continue;
        int part = claim_next(c), parts = claim_parts(c);
        int64_t begin = job_count * part / parts, end = job_count * (part + 1) / parts;
        if (begin < end) job_kernel(job_args[0], job_args[1], job_args[2], job_args[3], begin, end);
        atomic_fetch_add_explicit(&done_parts, 1, memory_order_release);
        c = atomic_load_explicit(&claim, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    uint32_t seen = 0;
    for (;;) {
        uint32_t s;
        int spins = 0;
        while ((s = claim_serial(atomic_load_explicit(&claim, memory_order_acquire))) == seen) {
            if (++spins < KILN_SPIN) { _mm_pause(); continue; }
            pthread_mutex_lock(&sleep_lock);
            atomic_fetch_add(&sleepers, 1);
            while ((s = claim_serial(atomic_load_explicit(&claim, memory_order_acquire))) == seen) pthread_cond_wait(&wake, &sleep_lock);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&sleep_lock);
            break;
        }
        seen = s;
        run_parts(s);
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

uint64_t kiln_parallel_jobs(void) { return atomic_load_explicit(&jobs_given, memory_order_relaxed); }

void kiln_parallel_for(kiln_range_kernel kernel, void **args, int64_t count) {
    if (count >= 2) atomic_fetch_add_explicit(&jobs_given, 1, memory_order_relaxed);
    if (pool_threads < 2 || count < 2 || pthread_mutex_trylock(&submit_lock) != 0) {
        kernel(args[0], args[1], args[2], args[3], 0, count);
        return;
    }
    job_kernel = kernel;
    for (int i = 0; i < 4; i++) job_args[i] = args[i];
    job_count = count;
    int parts = pool_threads * KILN_PARTS_PER_THREAD;
    if (count < parts) parts = (int)count;
    atomic_store_explicit(&done_parts, 0, memory_order_relaxed);
    uint32_t serial = claim_serial(atomic_load_explicit(&claim, memory_order_relaxed)) + 1;
    // Sequentially consistent, so the sleepers check below cannot miss a worker going to sleep.
    atomic_store_explicit(&claim, ((uint64_t)serial << 32) | ((uint64_t)parts << 16), memory_order_seq_cst);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    run_parts(serial);
    // Only parts a worker has already claimed remain; if it was descheduled, yield to it.
    int spins = 0;
    while (atomic_load_explicit(&done_parts, memory_order_acquire) < parts) {
        if (++spins < 4000) _mm_pause(); else sched_yield();
    }
    pthread_mutex_unlock(&submit_lock);
}
