// Open MPI's C API (libopenmpi-dev; pkg-config ompi). Only the bridge library CFoveaMPI includes it, so the fovea
// binary itself never links libmpi: FoveaDistributed loads the bridge when mpirun started the process.
#include <mpi.h>
