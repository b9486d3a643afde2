// The MPI calls KilnDistributed makes, over MPI_COMM_WORLD (see include/CKilnMPI.h).
#include "CKilnMPI.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>

// The tag of the "still here" messages ranks exchange after a deadline passes.
#define KILN_TAG_ALIVE 9091
#define KILN_TAG_RING 9090

int kiln_mpi_init(int *rank, int *size, int *local_rank, int *local_size) {
    int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    // Errors come back as codes: a failed peer must become a KilnError naming it, not an abort.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    MPI_Comm local;
    rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, *rank, MPI_INFO_NULL, &local);
    if (rc != MPI_SUCCESS) return rc;
    MPI_Comm_rank(local, local_rank);
    MPI_Comm_size(local, local_size);
    MPI_Comm_free(&local);
    return MPI_SUCCESS;
}

int kiln_mpi_initialized(void) {
    int done = 0, finalized = 0;
    MPI_Initialized(&done);
    MPI_Finalized(&finalized);
    return done && !finalized;
}

void kiln_mpi_finalize(void) { if (kiln_mpi_initialized()) MPI_Finalize(); }
void kiln_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
double kiln_mpi_wtime(void) { return MPI_Wtime(); }

static MPI_Datatype datatype(int type) {
    switch (type) {
    case KILN_MPI_F32: return MPI_FLOAT;
    case KILN_MPI_F64: return MPI_DOUBLE;
    case KILN_MPI_I32: return MPI_INT32_T;
    default: return MPI_INT64_T;
    }
}

static size_t element_size(int type) { return type == KILN_MPI_F32 || type == KILN_MPI_I32 ? 4 : 8; }

// Lets the other ranks of an oversubscribed machine run while this one waits: yields while
// the wait is young (each MPI_Test moves the transfer on, so sleeping then costs bandwidth),
// sleeps briefly once it has lasted a while (a slow or stalled peer).
static void pause_briefly(double waited) {
    if (waited < 0.05) { sched_yield(); return; }
    struct timespec t = {0, 50000};
    nanosleep(&t, NULL);
}

// After a deadline or an error: tells every rank this one is alive, and waits a grace period
// for the same word from the others; the ranks never heard from are the silent ones.
static void find_silent(double timeout, kiln_mpi_failure *failure) {
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (!failure || !failure->silent) return;
    for (int r = 0; r < size; r++) failure->silent[r] = r != rank;
    static int word = 1;
    for (int r = 0; r < size; r++) {
        if (r == rank) continue;
        MPI_Request ignored;
        if (MPI_Isend(&word, 1, MPI_INT, r, KILN_TAG_ALIVE, MPI_COMM_WORLD, &ignored) == MPI_SUCCESS) MPI_Request_free(&ignored);
    }
    double grace = timeout * 0.25;
    if (grace < 1) grace = 1;
    if (grace > 5) grace = 5;
    double end = MPI_Wtime() + grace;
    int heard = 1;
    const double began = MPI_Wtime();
    while (heard < size && MPI_Wtime() < end) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, KILN_TAG_ALIVE, MPI_COMM_WORLD, &flag, &st) != MPI_SUCCESS) break;
        if (!flag) { pause_briefly(MPI_Wtime() - began); continue; }
        int got;
        MPI_Recv(&got, 1, MPI_INT, st.MPI_SOURCE, KILN_TAG_ALIVE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (failure->silent[st.MPI_SOURCE]) { failure->silent[st.MPI_SOURCE] = 0; heard++; }
    }
}

// Point-to-point requests left pending by a failure are cancelled, so a late message from a
// rank that resumes cannot land in a buffer the caller has freed. (Nonblocking collectives
// cannot be cancelled; their buffers are the caller's to keep.)
static void cancel_pending(MPI_Request *requests, int count) {
    for (int i = 0; i < count; i++) {
        if (requests[i] == MPI_REQUEST_NULL) continue;
        MPI_Cancel(&requests[i]);
        MPI_Request_free(&requests[i]);
    }
}

// Polls `count` requests until all complete or `deadline` passes.
static int wait_all(MPI_Request *requests, int count, double deadline, double timeout, kiln_mpi_failure *failure) {
    const double began = MPI_Wtime();
    for (;;) {
        int done = 0;
        int rc = MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
            if (failure) {
                int len = 0;
                MPI_Error_string(rc, failure->message, &len);
                failure->message[len < 255 ? len : 255] = 0;
            }
            find_silent(timeout, failure);
            return KILN_MPI_ERROR;
        }
        if (done) return KILN_MPI_OK;
        if (MPI_Wtime() > deadline) { find_silent(timeout, failure); return KILN_MPI_TIMEOUT; }
        pause_briefly(MPI_Wtime() - began);
    }
}

static void add_into(void *dst, const void *src, int64_t n, int type) {
    switch (type) {
    case KILN_MPI_F32: { float *d = dst; const float *s = src; for (int64_t i = 0; i < n; i++) d[i] += s[i]; break; }
    case KILN_MPI_F64: { double *d = dst; const double *s = src; for (int64_t i = 0; i < n; i++) d[i] += s[i]; break; }
    case KILN_MPI_I32: { int32_t *d = dst; const int32_t *s = src; for (int64_t i = 0; i < n; i++) d[i] = (int32_t)((uint32_t)d[i] + (uint32_t)s[i]); break; }
    default: { int64_t *d = dst; const int64_t *s = src; for (int64_t i = 0; i < n; i++) d[i] = (int64_t)((uint64_t)d[i] + (uint64_t)s[i]); break; }
    }
}

int kiln_mpi_allreduce_sum(void *buffer, int64_t count, int type, double timeout, kiln_mpi_failure *failure) {
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1 || count == 0) return KILN_MPI_OK;
    const size_t es = element_size(type);
    const MPI_Datatype dt = datatype(type);
    // Chunk c is [START(c), START(c + 1)); rank c owns it.
    #define START(c) ((int64_t)(((__int128)count * (c)) / size))
    const int64_t mine = START(rank + 1) - START(rank);
    int64_t largest = 0;
    for (int c = 0; c < size; c++) if (START(c + 1) - START(c) > largest) largest = START(c + 1) - START(c);
    if (largest > 0x7fffffff) {
        if (failure) strcpy(failure->message, "a chunk of the allreduce holds more than 2^31-1 elements");
        return KILN_MPI_ERROR;
    }
    // One slot per rank for the owner's chunk as each rank holds it (its own copied in), kept
    // from call to call: a fresh 64 MB each step would cost its page faults every time.
    static char *slots = NULL;
    static size_t capacity = 0;
    const size_t need = (size_t)size * (size_t)(mine > 0 ? mine : 1) * es;
    if (need > capacity) {
        free(slots);
        slots = malloc(need);
        capacity = slots ? need : 0;
    }
    MPI_Request *req = malloc(sizeof(MPI_Request) * 2 * (size_t)size);
    if (!slots || !req) {
        free(req);
        if (failure) strcpy(failure->message, "out of memory for the allreduce's receive buffers");
        return KILN_MPI_ERROR;
    }
    char *base = buffer;
    const double deadline = MPI_Wtime() + timeout;
    // Reduce-scatter by direct exchange: every rank sends chunk c to its owner and receives every
    // rank's copy of its own chunk.
    int n = 0;
    for (int r = 0; r < size; r++) {
        if (r == rank) { memcpy(slots + (size_t)r * mine * es, base + START(rank) * es, mine * es); continue; }
        MPI_Irecv(slots + (size_t)r * mine * es, (int)mine, dt, r, KILN_TAG_RING, MPI_COMM_WORLD, &req[n++]);
        MPI_Isend(base + START(r) * es, (int)(START(r + 1) - START(r)), dt, r, KILN_TAG_RING, MPI_COMM_WORLD, &req[n++]);
    }
    int rc = wait_all(req, n, deadline, timeout, failure);
    if (rc != KILN_MPI_OK) cancel_pending(req, n);
    if (rc == KILN_MPI_OK) {
        // The sum in rank order, x0 + x1 + ... + x(size-1), for every element whatever chunk or
        // fused buffer it sits in: the same bits on every run, with fusion or without.
        char *out = base + START(rank) * es;
        memcpy(out, slots, mine * es);
        for (int r = 1; r < size; r++) add_into(out, slots + (size_t)r * mine * es, mine, type);
    }
    // Allgather around the ring: the summed chunks are copied, never added again.
    const int left = (rank - 1 + size) % size, right = (rank + 1) % size;
    for (int s = 0; s < size - 1 && rc == KILN_MPI_OK; s++) {
        int sc = ((rank - s) % size + size) % size, rcv = ((rank - s - 1) % size + size) % size;
        MPI_Irecv(base + START(rcv) * es, (int)(START(rcv + 1) - START(rcv)), dt, left, KILN_TAG_RING, MPI_COMM_WORLD, &req[0]);
        MPI_Isend(base + START(sc) * es, (int)(START(sc + 1) - START(sc)), dt, right, KILN_TAG_RING, MPI_COMM_WORLD, &req[1]);
        rc = wait_all(req, 2, deadline, timeout, failure);
        if (rc != KILN_MPI_OK) cancel_pending(req, 2);
    }
    #undef START
    free(req);
    return rc;
}

int kiln_mpi_broadcast(void *buffer, int64_t bytes, int root, double timeout, kiln_mpi_failure *failure) {
    const double deadline = MPI_Wtime() + timeout;
    char *p = buffer;
    // MPI counts are ints: large buffers go in pieces.
    for (int64_t off = 0; off < bytes; ) {
        int n = bytes - off > (1 << 30) ? (1 << 30) : (int)(bytes - off);
        MPI_Request req;
        MPI_Ibcast(p + off, n, MPI_BYTE, root, MPI_COMM_WORLD, &req);
        int rc = wait_all(&req, 1, deadline, timeout, failure);
        if (rc != KILN_MPI_OK) return rc;
        off += n;
    }
    return KILN_MPI_OK;
}

int kiln_mpi_allgather_u64(uint64_t value, uint64_t *values, double timeout, kiln_mpi_failure *failure) {
    MPI_Request req;
    static uint64_t sent;
    sent = value;
    MPI_Iallgather(&sent, 1, MPI_UINT64_T, values, 1, MPI_UINT64_T, MPI_COMM_WORLD, &req);
    return wait_all(&req, 1, MPI_Wtime() + timeout, timeout, failure);
}

int kiln_mpi_plain_allreduce(void *buffer, int64_t count, int type) {
    if (count > 0x7fffffff) return KILN_MPI_ERROR;
    return MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count, datatype(type), MPI_SUM, MPI_COMM_WORLD) == MPI_SUCCESS ? KILN_MPI_OK : KILN_MPI_ERROR;
}

int kiln_mpi_barrier(double timeout, kiln_mpi_failure *failure) {
    MPI_Request req;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    return wait_all(&req, 1, MPI_Wtime() + timeout, timeout, failure);
}
