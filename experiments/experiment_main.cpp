// One experiment executable: the routing variant, depth, block size and dataset are fixed at compile time by
// wavres_add_experiment() (cmake/wavres_experiments.cmake).
#include "wavres/cli/experiment.hpp"

#ifndef WAVRES_EXEC_SPACE
#define WAVRES_EXEC_SPACE Kokkos::DefaultExecutionSpace
#endif

int main(int argc, char** argv) {
  using Spec = wavres::ModelSpec<wavres::Variant::WAVRES_VARIANT, WAVRES_LAYERS, WAVRES_BLOCK>;
  return wavres::experiment_main<Spec, WAVRES_EXEC_SPACE>(argc, argv, WAVRES_EXPERIMENT, WAVRES_DATASET,
                                                          WAVRES_DEFAULT_DATA_DIR);
}
