#include "fovea_mpi.h"
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

static MPI_Datatype datatype(int type) {
    switch (type) {
    case FOVEA_MPI_FLOAT: return MPI_FLOAT;
    case FOVEA_MPI_DOUBLE: return MPI_DOUBLE;
    case FOVEA_MPI_INT64: return MPI_INT64_T;
    default: return MPI_BYTE;
    }
}

static MPI_Op operation(int op) {
    switch (op) {
    case FOVEA_MPI_MAX: return MPI_MAX;
    case FOVEA_MPI_MIN: return MPI_MIN;
    default: return MPI_SUM;
    }
}

int fovea_mpi_init(int *rank, int *size) {
    int provided = 0;
    int code = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (code != MPI_SUCCESS) return code;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if ((code = MPI_Comm_rank(MPI_COMM_WORLD, rank)) != MPI_SUCCESS) return code;
    return MPI_Comm_size(MPI_COMM_WORLD, size);
}

int fovea_mpi_finalize(void) { return MPI_Finalize(); }

int fovea_mpi_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }

void fovea_mpi_error_string(int code, char *buffer, int length) {
    char text[MPI_MAX_ERROR_STRING];
    int written = 0;
    if (MPI_Error_string(code, text, &written) != MPI_SUCCESS) written = 0;
    text[written < MPI_MAX_ERROR_STRING ? written : MPI_MAX_ERROR_STRING - 1] = 0;
    if (length > 0) {
        strncpy(buffer, text, (size_t)length - 1);
        buffer[length - 1] = 0;
    }
}

int fovea_mpi_processor_name(char *buffer, int length) {
    char name[MPI_MAX_PROCESSOR_NAME];
    int written = 0;
    int code = MPI_Get_processor_name(name, &written);
    name[written < MPI_MAX_PROCESSOR_NAME ? written : MPI_MAX_PROCESSOR_NAME - 1] = 0;
    if (length > 0) {
        strncpy(buffer, name, (size_t)length - 1);
        buffer[length - 1] = 0;
    }
    return code;
}

static int start(void **request, MPI_Request **handle) {
    *handle = malloc(sizeof(MPI_Request));
    *request = *handle;
    return *handle ? MPI_SUCCESS : MPI_ERR_NO_MEM;
}

int fovea_mpi_iallreduce(void *buffer, int count, int type, int op, void **request) {
    MPI_Request *handle;
    int code = start(request, &handle);
    if (code != MPI_SUCCESS) return code;
    code = MPI_Iallreduce(MPI_IN_PLACE, buffer, count, datatype(type), operation(op), MPI_COMM_WORLD, handle);
    if (code != MPI_SUCCESS) { free(handle); *request = NULL; }
    return code;
}

int fovea_mpi_ibcast(void *buffer, int count, int type, int root, void **request) {
    MPI_Request *handle;
    int code = start(request, &handle);
    if (code != MPI_SUCCESS) return code;
    code = MPI_Ibcast(buffer, count, datatype(type), root, MPI_COMM_WORLD, handle);
    if (code != MPI_SUCCESS) { free(handle); *request = NULL; }
    return code;
}

int fovea_mpi_iallgather(const void *send, void *receive, int count, int type, void **request) {
    MPI_Request *handle;
    int code = start(request, &handle);
    if (code != MPI_SUCCESS) return code;
    code = MPI_Iallgather(send, count, datatype(type), receive, count, datatype(type), MPI_COMM_WORLD, handle);
    if (code != MPI_SUCCESS) { free(handle); *request = NULL; }
    return code;
}

int fovea_mpi_ibarrier(void **request) {
    MPI_Request *handle;
    int code = start(request, &handle);
    if (code != MPI_SUCCESS) return code;
    code = MPI_Ibarrier(MPI_COMM_WORLD, handle);
    if (code != MPI_SUCCESS) { free(handle); *request = NULL; }
    return code;
}

int fovea_mpi_test(void *request, int *done) {
    MPI_Request *handle = request;
    int code = MPI_Test(handle, done, MPI_STATUS_IGNORE);
    if (code != MPI_SUCCESS || *done) free(handle);
    return code;
}
