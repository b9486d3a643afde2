// Open MPI's header, reached through pkg-config `ompi-c` (libopenmpi-dev). Only CKilnMPI's C
// code includes it: its handles (MPI_COMM_WORLD, MPI_SUM, ...) are macros Swift cannot import.
#include <mpi.h>
