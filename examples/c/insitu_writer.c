/* A C simulation writing through residuum's asynchronous step writer (residuum::writer).
 *
 *   mpirun -n 2 insitu_writer CONFIG.xml OUTPUT.bp [STEPS [lend]]
 *
 * Each rank owns a slab of a 3D grid and writes two float fields, U and V (a travelling wave
 * and a Gaussian pulse), every step through the IO "SimulationOutput" of CONFIG.xml (e.g.
 * examples/gray_scott.xml: residuum at NRMSE 1e-5 of the global range). After each step it
 * prints the statistics the writer reports for the steps written so far: one line per rank,
 * step and field. Exit status 0 only if every call succeeded.
 *
 * The fields alternate between two sets of arrays. With `lend`, each step is lent
 * (residuum_writer_lend_step: the writer copies it on its own thread) and settled before the
 * step after next computes into the same arrays; otherwise it is copied as it is handed over
 * (residuum_writer_write_step). */
#include <mpi.h>
#include <residuum.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { L = 32 };

static void fail(const char *what, int rank)
{
    fprintf(stderr, "insitu_writer rank %d: %s: %s\n", rank, what, residuum_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void print_stats(void *ctx, const residuum_field_stats *s)
{
    const int rank = *(const int *)ctx;
    printf("rank %d step %zu field %s bytes %llu -> %llu nrmse %.3e range_kind %d range %.9e\n",
           rank, s->step, s->name, (unsigned long long)s->bytes_in,
           (unsigned long long)s->bytes_out, s->nrmse, s->range_kind, s->range);
}

int main(int argc, char **argv)
{
    int provided, rank, size;
    /* The writer thread calls MPI while the simulation may too. */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    /* STEPS a positive count (atoi made garbage 0 steps, and exit 0); a 5th argument "lend". */
    char *end = NULL;
    const long steps = argc > 3 ? strtol(argv[3], &end, 10) : 4;
    const int bad_steps = argc > 3 && (end == argv[3] || *end != '\0' || steps < 1 || steps > 1000000);
    const int bad_lend = argc > 4 && strcmp(argv[4], "lend") != 0;
    if (argc < 3 || argc > 5 || bad_steps || bad_lend)
    {
        if (rank == 0)
            fprintf(stderr, "usage: insitu_writer CONFIG.xml OUTPUT.bp [STEPS (1..1000000)] [lend]\n");
        MPI_Finalize();
        return 2;
    }
    const int lend = argc > 4;

    /* Slabs along the first axis. */
    const size_t n0 = L / size + (rank < L % size ? 1 : 0);
    const size_t s0 = rank * (L / size) + (rank < L % size ? rank : L % size);
    const size_t shape[3] = {L, L, L}, start[3] = {s0, 0, 0}, count[3] = {n0, L, L};
    const residuum_field fields[2] = {
        {"U", RESIDUUM_FLOAT, 3, shape, start, count},
        {"V", RESIDUUM_FLOAT, 3, shape, start, count},
    };
    residuum_writer *w = NULL;
    if (residuum_writer_open(MPI_Comm_c2f(MPI_COMM_WORLD), argv[1], "SimulationOutput", argv[2],
                             2, 1, fields, 2, &w) != RESIDUUM_OK)
        fail("residuum_writer_open", rank);

    const size_t n = n0 * L * L;
    float *us[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    float *vs[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    for (int t = 0; t < steps; ++t)
    {
        float *u = us[t % 2], *v = vs[t % 2];
        /* These arrays were lent two steps ago: they must not change before that loan is
         * settled. */
        if (lend && t >= 2 && residuum_writer_settle(w, (size_t)(t - 2)) != RESIDUUM_OK)
            fail("residuum_writer_settle", rank);
        for (size_t i = 0; i < n0; ++i)
            for (size_t j = 0; j < L; ++j)
                for (size_t k = 0; k < L; ++k)
                {
                    const double x = (double)(s0 + i) / L, y = (double)j / L, z = (double)k / L;
                    const size_t at = (i * L + j) * L + k;
                    u[at] = (float)(sin(6.283 * (x + 0.1 * t)) * cos(3.1 * y) + z);
                    const double r2 = (x - 0.5) * (x - 0.5) + (y - 0.5) * (y - 0.5) +
                                      (z - 0.3 - 0.05 * t) * (z - 0.3 - 0.05 * t);
                    v[at] = (float)exp(-20.0 * r2);
                }
        const void *data[2] = {u, v};
        size_t step;
        if (lend && residuum_writer_lend_step(w, data, &step) != RESIDUUM_OK)
            fail("residuum_writer_lend_step", rank);
        if (lend && step != (size_t)t)
            fail("residuum_writer_lend_step returned another step index", rank);
        if (!lend && residuum_writer_write_step(w, data) != RESIDUUM_OK)
            fail("residuum_writer_write_step", rank);
        if (residuum_writer_take_stats(w, print_stats, &rank) != RESIDUUM_OK)
            fail("residuum_writer_take_stats", rank);
    }
    /* Close writes what is still queued (settling what is lent) and reports those steps too. */
    if (residuum_writer_close(w, print_stats, &rank) != RESIDUUM_OK)
        fail("residuum_writer_close", rank);
    for (int i = 0; i < 2; ++i)
    {
        free(us[i]);
        free(vs[i]);
    }
    MPI_Finalize();
    return 0;
}
