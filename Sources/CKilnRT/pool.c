// A small worker pool for kernels of tens of microseconds. Parts of a job are claimed
// dynamically, so when a worker is descheduled (a loaded machine) the caller simply runs the
// remaining parts itself instead of waiting; idle workers spin briefly (offering their core to
// the process's host threads now and then, while it has any: see kiln_host_thread), then sleep.
// In-process the pool is started explicitly (kiln_runtime_init); in an artifact it starts at the
// first job worth splitting, with the size kiln_pool_configure asked for; the portable build has
// no threads at all.
#include "CKilnRT.h"

#ifdef KILN_PORTABLE
KILN_API void kiln_parallel_for(kiln_range_kernel kernel, void **args, int64_t count) {
    kernel(args[0], args[1], args[2], args[3], 0, count);
}

KILN_API void kiln_parallel_tasks(kiln_range_kernel kernel, void **args, int64_t count) {
    kernel(args[0], args[1], args[2], args[3], 0, count);
}

KILN_API int kiln_pool_configure(int threads) {
    (void)threads;
    return 1;
}
#else
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

// What a spinning thread tells the CPU (a hint only, so nothing where there is none).
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define kiln_spin_hint() _mm_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define kiln_spin_hint() __asm__ volatile("yield")
#else
#define kiln_spin_hint() ((void)0)
#endif

#define KILN_MAX_THREADS 64
#define KILN_SPIN 2000
// While the process has host threads, a spinning worker yields every this many pauses.
#define KILN_SPIN_YIELD_EVERY 64
#define KILN_PARTS_PER_THREAD 4

static int pool_threads = 1;
static pthread_t workers[KILN_MAX_THREADS];
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

// One word says which job is current and which of its parts are left: serial (high 32 bits),
// the first part left (16 bits), one past the last (low 16 bits). In a job of rows
// (kiln_parallel_for) the submitting thread takes parts from the front and the workers from
// the back: a job's first rows run on the submitting thread and its last on a worker, as in
// the job before, so with two threads each core goes on with rows it wrote itself, in its own
// cache, from one kernel to the next (claimed in turns, the halves of a tensor changed cores
// between kernels: the digits step took 8% longer). In a job of tasks (kiln_parallel_tasks)
// every thread takes parts from the front, in the order given, largest first. A thread claims
// a part only by a compare-and-swap on that exact word, so a worker still leaving the previous
// job can never take a part index of the next one (or read the next job's fields against the
// previous job's).
static _Atomic uint64_t claim;
static _Atomic int sleepers;
static _Atomic int done_parts;
// Host threads of the process (queue runners) alive now. Always 0 in an artifact.
static _Atomic int host_threads;
static kiln_range_kernel job_kernel;
static void *job_args[4];
static int64_t job_count;
static uint64_t job_number;
static int job_parts;
// Read by a worker before it claims (its direction), so atomic; written before the serial.
static _Atomic int job_in_order;
#ifndef KILN_ARTIFACT
static _Atomic uint64_t jobs_given;
#endif

static inline uint32_t claim_serial(uint64_t c) { return (uint32_t)(c >> 32); }
static inline int claim_front(uint64_t c) { return (int)((c >> 16) & 0xFFFF); }
static inline int claim_back(uint64_t c) { return (int)(c & 0xFFFF); }

// Jobs are numbered from 1, never reused (64 bits); a thread running a part of one, or a job run
// whole on the calling thread, has its number here, 0 outside any.
static _Atomic uint64_t jobs_numbered;
static _Thread_local uint64_t running_job;

uint64_t kiln_pool_running_job(void) { return running_job; }

// kernel(args, begin, end) as part of job `number`.
static void run_part(kiln_range_kernel kernel, void **args, int64_t begin, int64_t end, uint64_t number) {
    uint64_t outer = running_job;
    running_job = number;
    kernel(args[0], args[1], args[2], args[3], begin, end);
    running_job = outer;
}

static void run_parts(uint32_t serial, int from_back) {
    uint64_t c = atomic_load_explicit(&claim, memory_order_acquire);
    for (;;) {
        if (claim_serial(c) != serial || claim_front(c) >= claim_back(c)) return;
        uint64_t taken = from_back ? c - 1 : c + ((uint64_t)1 << 16);
        if (!atomic_compare_exchange_weak_explicit(&claim, &c, taken, memory_order_acq_rel, memory_order_acquire)) continue;
        int part = from_back ? claim_back(c) - 1 : claim_front(c), parts = job_parts;
        int64_t begin = job_count * part / parts, end = job_count * (part + 1) / parts;
        if (begin < end) run_part(job_kernel, job_args, begin, end, job_number);
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
            if (++spins < KILN_SPIN) {
                // A queue runner woken beside a training step (a dequeue made room) gets this
                // core now rather than when the spin ends or by preempting the step's own
                // thread; sched_yield returns at once when no thread waits for the core. Only
                // with host threads: a pool yielding to other processes on a loaded machine
                // lost whole time slices in the middle of a step.
                if (spins % KILN_SPIN_YIELD_EVERY == 0 && atomic_load_explicit(&host_threads, memory_order_relaxed) > 0) sched_yield();
                else kiln_spin_hint();
                continue;
            }
            pthread_mutex_lock(&sleep_lock);
            atomic_fetch_add(&sleepers, 1);
            while ((s = claim_serial(atomic_load_explicit(&claim, memory_order_acquire))) == seen) pthread_cond_wait(&wake, &sleep_lock);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&sleep_lock);
            break;
        }
        seen = s;
        // The job's fields were written before its serial was published.
        run_parts(s, !atomic_load_explicit(&job_in_order, memory_order_relaxed));
    }
    return 0;
}

// The size asked for (<= 0: one per online CPU) and what it resolves to (0 until resolved),
// both under config_lock; started says the workers exist and pool_threads is final.
static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
#ifdef KILN_ARTIFACT
static int requested = 0;
#else
static int requested = 1;
#endif
static int planned = 0;
static _Atomic int started;

static int planned_size(void) {
    if (planned == 0) {
        int threads = requested;
        if (threads <= 0) {
            long online = sysconf(_SC_NPROCESSORS_ONLN);
            threads = online > 0 ? (online > KILN_MAX_THREADS ? KILN_MAX_THREADS : (int)online) : 1;
        }
        planned = threads > KILN_MAX_THREADS ? KILN_MAX_THREADS : threads;
    }
    return planned;
}

static void start_once(void) {
    pthread_mutex_lock(&config_lock);
    int threads = planned_size(), i = 1;
    // A worker the system refuses leaves a smaller pool; the caller still runs every part.
    for (; i < threads; i++)
        if (pthread_create(&workers[i], 0, worker_main, 0) != 0) break;
    pool_threads = i;
    atomic_store_explicit(&started, 1, memory_order_release);
    pthread_mutex_unlock(&config_lock);
}

KILN_API int kiln_pool_configure(int threads) {
    pthread_mutex_lock(&config_lock);
    int size;
    if (atomic_load_explicit(&started, memory_order_acquire)) size = pool_threads;
    else {
        requested = threads;
        planned = 0;
        size = planned_size();
    }
    pthread_mutex_unlock(&config_lock);
    return size;
}

int kiln_pool_threads(void) {
    if (atomic_load_explicit(&started, memory_order_acquire)) return pool_threads;
#ifdef KILN_ARTIFACT
    pthread_mutex_lock(&config_lock);
    int size = planned_size();
    pthread_mutex_unlock(&config_lock);
    return size;
#else
    return 1;
#endif
}

#ifndef KILN_ARTIFACT
void kiln_pool_start(int threads) {
    pthread_mutex_lock(&config_lock);
    if (!atomic_load_explicit(&started, memory_order_acquire)) {
        requested = threads < 1 ? 1 : threads;
        planned = 0;
    }
    pthread_mutex_unlock(&config_lock);
    pthread_once(&once, start_once);
}

uint64_t kiln_parallel_jobs(void) { return atomic_load_explicit(&jobs_given, memory_order_relaxed); }

// Whether the calling thread is counted a host thread.
static _Thread_local int host_thread;

void kiln_host_thread(int on) {
    on = on != 0;
    if (on == host_thread) return;
    host_thread = on;
    atomic_fetch_add_explicit(&host_threads, on ? 1 : -1, memory_order_relaxed);
}

int kiln_host_threads(void) { return atomic_load_explicit(&host_threads, memory_order_relaxed); }
#endif

static void run_job(kiln_range_kernel kernel, void **args, int64_t count, int in_order) {
#ifdef KILN_ARTIFACT
    if (count >= 2 && !atomic_load_explicit(&started, memory_order_acquire)) pthread_once(&once, start_once);
#else
    if (count >= 2) atomic_fetch_add_explicit(&jobs_given, 1, memory_order_relaxed);
#endif
    uint64_t number = atomic_fetch_add_explicit(&jobs_numbered, 1, memory_order_relaxed) + 1;
    if (pool_threads < 2 || count < 2 || pthread_mutex_trylock(&submit_lock) != 0) {
        run_part(kernel, args, 0, count, number);
        return;
    }
    job_kernel = kernel;
    job_number = number;
    for (int i = 0; i < 4; i++) job_args[i] = args[i];
    job_count = count;
    int parts = pool_threads * KILN_PARTS_PER_THREAD;
    if (count < parts) parts = (int)count;
    job_parts = parts;
    atomic_store_explicit(&job_in_order, in_order, memory_order_relaxed);
    atomic_store_explicit(&done_parts, 0, memory_order_relaxed);
    uint32_t serial = claim_serial(atomic_load_explicit(&claim, memory_order_relaxed)) + 1;
    // Sequentially consistent, so the sleepers check below cannot miss a worker going to sleep.
    atomic_store_explicit(&claim, ((uint64_t)serial << 32) | (uint64_t)parts, memory_order_seq_cst);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    run_parts(serial, 0);
    // Only parts a worker has already claimed remain; if it was descheduled, yield to it.
    int spins = 0;
    while (atomic_load_explicit(&done_parts, memory_order_acquire) < parts) {
        if (++spins < 4000) kiln_spin_hint(); else sched_yield();
    }
    pthread_mutex_unlock(&submit_lock);
}

KILN_API void kiln_parallel_for(kiln_range_kernel kernel, void **args, int64_t count) { run_job(kernel, args, count, 0); }

KILN_API void kiln_parallel_tasks(kiln_range_kernel kernel, void **args, int64_t count) { run_job(kernel, args, count, 1); }
#endif
