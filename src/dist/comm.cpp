// Comm (include/wavres/dist/comm.hpp): MPI where the build has it (WAVRES_HAVE_MPI) and a launcher started
// us, else one process.
#include "wavres/dist/comm.hpp"
#include <cstdlib>
#include <iostream>
#ifdef WAVRES_HAVE_MPI
#include <mpi.h>
#endif

namespace wavres {

bool started_by_mpi_launcher() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

Comm& Comm::world() {
  static Comm c;
  return c;
}

#ifdef WAVRES_HAVE_MPI

namespace {
void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  std::cerr << "wavres: " << what << " failed: " << std::string(msg, size_t(len)) << "\n";
  MPI_Abort(MPI_COMM_WORLD, 1);
}
}  // namespace

void Comm::init(int* argc, char*** argv) {
  if (mpi_ || !started_by_mpi_launcher()) return;
  int provided = 0;
  // Only the main thread calls MPI (Kokkos' OpenMP workers never do).
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm node;  // the ranks sharing this node's memory: the local rank picks the GPU
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_free(&node);
}

void Comm::finalize() {
  if (!mpi_) return;
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
  mpi_ = false;
}

void Comm::sum(double* x, int n) const {
  if (size_ > 1)
    check(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
}
void Comm::sum(float* x, int n) const {
  if (size_ > 1)
    check(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
}
bool Comm::any(bool flag) const {
  int v = flag ? 1 : 0;
  if (size_ > 1) check(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD), "MPI_Allreduce");
  return v != 0;
}
int Comm::min(int x) const {
  if (size_ > 1) check(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
  return x;
}
void Comm::broadcast(double* x, int n, int root) const {
  if (size_ > 1) check(MPI_Bcast(x, n, MPI_DOUBLE, root, MPI_COMM_WORLD), "MPI_Bcast");
}
void Comm::broadcast(std::string& s, int root) const {
  if (size_ <= 1) return;
  int n = int(s.size());
  check(MPI_Bcast(&n, 1, MPI_INT, root, MPI_COMM_WORLD), "MPI_Bcast");
  s.resize(size_t(n));
  if (n > 0) check(MPI_Bcast(s.data(), n, MPI_CHAR, root, MPI_COMM_WORLD), "MPI_Bcast");
}
void Comm::barrier() const {
  if (size_ > 1) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}
void Comm::abort(int code) const {
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}
#else  // one process

void Comm::init(int*, char***) {
  // R copies that each train alone would race for one run directory: refuse, saying why
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"})
    if (const char* n = std::getenv(v); n && std::atoi(n) > 1) {
      std::cerr
          << "wavres: started by an MPI launcher with " << n
          << " processes, but this build has no MPI (configure with -DWAVRES_MPI=ON and libopenmpi-dev)\n";
      std::exit(2);
    }
}
void Comm::finalize() {}
void Comm::sum(double*, int) const {}
void Comm::sum(float*, int) const {}
bool Comm::any(bool flag) const {
  return flag;
}
int Comm::min(int x) const {
  return x;
}
void Comm::broadcast(double*, int, int) const {}
void Comm::broadcast(std::string&, int) const {}
void Comm::barrier() const {}
void Comm::abort(int code) const {
  std::exit(code);
}

#endif

}  // namespace wavres
