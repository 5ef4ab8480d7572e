// Command line of an experiment executable:  exp_<variant>_l<N>_<dataset> train|eval|dump|sample [options]
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>
#include "wavres/core/types.hpp"

namespace wavres {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string command;   // train | eval | dump | sample
  Dims dims;             // dims.V is set from the corpus, not the command line
  DimsGiven dims_given;  // widths set on the command line (a checkpoint supplies the others)
  int64_t steps = 2000;
  bool steps_given = false;  // --steps on a resume extends (or shortens) the run's schedule
  bool lr_given = false, warmup_given = false;  // ignored on --resume (with a warning)
  double lr = 1e-3;
  double warmup_frac = 0.05;
  uint64_t seed = 1;
  int64_t eval_every = 200;
  int64_t checkpoint_every = 1000;
  int eval_batches = 16;   // validation batches per evaluation during training; eval: 0 = whole split
  double max_minutes = 0;  // stop training (with a checkpoint) after this wall time; 0 = no limit
  int64_t stop_at = 0;     // stop (with a checkpoint) once this step is reached; 0 = run to --steps
  int keep_checkpoints = 3;
  std::string out_dir;     // train: run directory;  dump: output file (--out)
  bool overwrite = false;  // train: a fresh run may replace the run already in --out
  std::string data_dir;
  std::string resume;           // checkpoint path, or "latest" (newest in --out)
  std::string checkpoint;       // eval / dump
  double routing_init_std = 0;  // --routing-init zeros | normal:STD
  bool quiet = false;
  bool tf32 = false;  // --gemm-precision tf32: TF32 tensor-core gemms on CUDA (ops/gemm_precision.hpp)
  // sample (cli/sample.hpp); sample_every is train's
  std::string prompt, prompt_file, routing_out;
  int64_t sample_tokens = 256;
  double temperature = 1.0;       // 0 = argmax
  int top_k = 0;                  // 0 = whole vocabulary
  int keep = 0;                   // tokens kept when the window slides; 0 = T-1
  bool no_cache = false;          // re-encode the window before every token (benchmark baseline)
  int64_t sample_every = 0;       // train: print a short sample every N steps; 0 = never
  std::vector<std::string> argv;  // as given, for run metadata
};

// Parses argv[1..]; throws UsageError with a one-line message naming the offending option.
Options parse_options(int argc, char** argv, const std::string& default_out, const std::string& default_data);
std::string usage(const std::string& program);

}  // namespace wavres
