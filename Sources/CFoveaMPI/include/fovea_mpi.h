#ifndef FOVEA_MPI_H
#define FOVEA_MPI_H
// Fovea's bridge to Open MPI, built as libFoveaMPI.so (product FoveaMPI) and opened with dlopen by FoveaDistributed
// only when a process runs under mpirun. Every function returns an MPI error code (0 = MPI_SUCCESS); requests are
// opaque heap handles released by fovea_mpi_test when they complete.
#include <stdint.h>

/// MPI_Init_thread (funneled: one thread of the process makes every call), errors returned instead of aborting.
int fovea_mpi_init(int *rank, int *size);
int fovea_mpi_finalize(void);
/// Ends every process of the job with `code`.
int fovea_mpi_abort(int code);
/// The text of an MPI error code into `buffer` (of `length` bytes, NUL-terminated).
void fovea_mpi_error_string(int code, char *buffer, int length);
/// This node's name (NUL-terminated).
int fovea_mpi_processor_name(char *buffer, int length);

/// Element types and reductions of the calls below.
enum { FOVEA_MPI_FLOAT = 0, FOVEA_MPI_DOUBLE = 1, FOVEA_MPI_INT64 = 2, FOVEA_MPI_BYTE = 3 };
enum { FOVEA_MPI_SUM = 0, FOVEA_MPI_MAX = 1, FOVEA_MPI_MIN = 2 };

/// Non-blocking in-place allreduce of `count` elements.
int fovea_mpi_iallreduce(void *buffer, int count, int type, int op, void **request);
/// Non-blocking broadcast of `count` elements from `root`.
int fovea_mpi_ibcast(void *buffer, int count, int type, int root, void **request);
/// Non-blocking allgather: `count` elements from every rank into `receive` (size × count elements, rank order).
int fovea_mpi_iallgather(const void *send, void *receive, int count, int type, void **request);
/// Non-blocking barrier.
int fovea_mpi_ibarrier(void **request);
/// Sets `*done` to 1 (and frees the request) once it has completed.
int fovea_mpi_test(void *request, int *done);

#endif
