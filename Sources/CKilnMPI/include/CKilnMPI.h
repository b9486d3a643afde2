#ifndef CKILNMPI_H
#define CKILNMPI_H
// Plain functions over MPI_COMM_WORLD for KilnDistributed: no MPI handle or macro crosses into
// Swift. Every collective is nonblocking underneath and polled against a deadline, so a dead or
// stalled rank becomes an error the caller can name instead of a hang or Open MPI's abort.
#include <stdint.h>

// Results of the collectives.
enum { KILN_MPI_OK = 0, KILN_MPI_TIMEOUT = 1, KILN_MPI_ERROR = 2 };
// Element types the reductions add.
enum { KILN_MPI_F32 = 0, KILN_MPI_F64 = 1, KILN_MPI_I32 = 2, KILN_MPI_I64 = 3 };

typedef struct {
    // On failure: the ranks that did not answer (1) during the grace period after the deadline;
    // filled for `size` entries. Ranks that answered are 0.
    unsigned char *silent;
    // Open MPI's message for KILN_MPI_ERROR.
    char message[256];
} kiln_mpi_failure;

// MPI_Init_thread (serialized: any thread, one call at a time; KilnDistributed holds a lock)
// with errors returned rather than fatal. Returns 0 or an MPI code.
int kiln_mpi_init(int *rank, int *size, int *local_rank, int *local_size);
int kiln_mpi_initialized(void);
void kiln_mpi_finalize(void);
void kiln_mpi_abort(int code);
double kiln_mpi_wtime(void);

// In-place sum over every rank of `count` elements, over point-to-point messages: a
// reduce-scatter where each chunk's owner adds every rank's copy in rank order, then an allgather
// around the ring. Each element is x0 + x1 + ... in that order whatever the timing or the
// buffer's layout, so every rank gets bit-identical results on every run, fused or not.
// `timeout` seconds bound the whole call.
int kiln_mpi_allreduce_sum(void *buffer, int64_t count, int type, double timeout, kiln_mpi_failure *failure);
// `bytes` bytes from `root` to every rank, in place.
int kiln_mpi_broadcast(void *buffer, int64_t bytes, int root, double timeout, kiln_mpi_failure *failure);
// Every rank's `value` into values[size].
int kiln_mpi_allgather_u64(uint64_t value, uint64_t *values, double timeout, kiln_mpi_failure *failure);
// A plain blocking MPI_Allreduce (MPI_SUM), the baseline the benchmark compares the ring with.
int kiln_mpi_plain_allreduce(void *buffer, int64_t count, int type);
int kiln_mpi_barrier(double timeout, kiln_mpi_failure *failure);

#endif
