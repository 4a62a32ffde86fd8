#include <mpi.h>
#include <adios2_c.h>
