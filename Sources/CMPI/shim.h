// Open MPI (pkg-config ompi.pc gives the include folder). Its handles are macros over addresses
// of globals, which Swift cannot import, so the few we use are wrapped here.
#include <mpi.h>

static inline MPI_Comm vm_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype vm_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype vm_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Op vm_mpi_sum(void) { return MPI_SUM; }
static inline void *vm_mpi_in_place(void) { return MPI_IN_PLACE; }
