// The processes of one data-parallel run (MPI), and the few host-side collectives training needs.
//
// A process joins MPI only when an MPI launcher started it (mpirun, srun, mpiexec: they set
// OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK); started on its own, or in a build without MPI
// (WAVRES_MPI=OFF), it is rank 0 of 1 and no MPI function is ever called, so a single-process run behaves
// exactly as it did before MPI existed. The gradient allreduce over the execution space's memory is in
// dist/allreduce.hpp.
#pragma once
#include <cstdint>
#include <string>

namespace wavres {

class Comm {
 public:
  // The run's communicator. init() once, before Kokkos (the device of a CUDA rank follows its local rank).
  static Comm& world();
  void init(int* argc, char*** argv);
  // MPI_Finalize when MPI was initialised; called on every normal exit path (experiment_main).
  void finalize();

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // rank among the processes of this node
  bool distributed() const { return size_ > 1; }
  bool leader() const { return rank_ == 0; }  // the one rank that prints and writes files

  // Host collectives; no-ops (identity) on one process.
  void sum(double* x, int n) const;
  void sum(float* x, int n) const;
  double sum(double x) const {
    sum(&x, 1);
    return x;
  }
  bool any(bool flag) const;  // logical or over the ranks
  int min(int x) const;       // minimum over the ranks
  void broadcast(double* x, int n, int root = 0) const;
  void broadcast(std::string& s, int root = 0) const;
  void barrier() const;
  // Ends every rank of the job with `code` (MPI_Abort); on one process, std::exit.
  [[noreturn]] void abort(int code) const;

 private:
  bool mpi_ = false;  // MPI_Init was called
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

// Whether an MPI launcher started this process (the environment variables named above).
bool started_by_mpi_launcher();

}  // namespace wavres
