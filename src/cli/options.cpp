#include "wavres/cli/options.hpp"

#include <cerrno>
#include <cstdlib>
#include <map>
#include <sstream>

namespace wavres {
namespace {

int64_t to_int(const std::string& opt, const std::string& v, int64_t lo, int64_t hi) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno) throw UsageError(opt + " expects an integer, got '" + v + "'");
  if (x < lo || x > hi)
    throw UsageError(opt + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v);
  return x;
}

double to_double(const std::string& opt, const std::string& v, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || errno || !(x == x)) throw UsageError(opt + " expects a number, got '" + v + "'");
  if (x < lo || x > hi) {
    std::ostringstream s;
    s << opt << " must be in [" << lo << ", " << hi << "], got " << v;
    throw UsageError(s.str());
  }
  return x;
}

}  // namespace

std::string usage(const std::string& p) {
  return "usage: " + p +
         " train|eval|dump|sample [options]\n"
         "  train  --steps N --lr X --warmup-frac F --seed S --eval-every N --eval-batches N\n"
         "         --checkpoint-every N --keep-checkpoints K --max-minutes M --stop-at STEP --out DIR\n"
         "         --resume CKPT|latest --sample-every N  --overwrite (a fresh run replaces the run in --out)\n"
         "  eval   --checkpoint CKPT [--eval-batches N (0 = whole validation split)]\n"
         "  dump   --out FILE [--checkpoint CKPT] [--seed S] [--routing-init zeros|normal:STD]\n"
         "  sample --checkpoint CKPT [--prompt TEXT | --prompt-file F] [--tokens N] [--temperature T]\n"
         "         [--top-k K] [--seed S] [--routing-out F.h5] [--keep K] [--no-cache]\n"
         "         (width, depth, dataset and vocabulary come from the checkpoint)\n"
         "  width  --d-model D --heads H --d-ff F --seq-len T --batch B   (defaults 256 4 704 256 16)\n"
         "  data   --data-dir DIR (text8: text8 or text8-prefix; tinystories: TinyStories-*.txt or the "
         "copies)\n"
         "  other  --gemm-precision fp32|tf32 (tf32: tensor-core gemms, CUDA builds only), --quiet, --help";
}

Options parse_options(int argc, char** argv, const std::string& default_out,
                      const std::string& default_data) {
  Options o;
  o.out_dir = default_out;
  o.data_dir = default_data;
  for (int i = 0; i < argc; ++i) o.argv.push_back(argv[i]);
  if (argc < 2) throw UsageError("missing command (train, eval, dump or sample); see --help");
  o.command = argv[1];
  if (o.command == "--help" || o.command == "-h") return o;
  if (o.command != "train" && o.command != "eval" && o.command != "dump" && o.command != "sample")
    throw UsageError("unknown command '" + o.command + "' (expected train, eval, dump or sample)");
  bool out_given = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i], v;
    if (a == "--help" || a == "-h") {
      o.command = "--help";
      return o;
    }
    if (a == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (a == "--overwrite") {
      o.overwrite = true;
      continue;
    }
    if (a == "--no-cache") {
      o.no_cache = true;
      continue;
    }
    if (a.rfind("--kokkos-", 0) == 0) continue;  // Kokkos' own options (--kokkos-threads=N, ...) pass through
    if (a.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + a + "'");
    const auto eq = a.find('=');
    if (eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else {
      if (i + 1 >= argc) throw UsageError(a + " needs a value");
      v = argv[++i];
    }
    constexpr int64_t big = int64_t(1) << 40;
    const bool path_option = a == "--out" || a == "--data-dir" || a == "--resume" || a == "--checkpoint";
    if (path_option && v.empty()) throw UsageError(a + " needs a path, got an empty string");
    if (a == "--d-model")
      o.dims.D = int(to_int(a, v, 1, 1 << 16)), o.dims_given.D = true;
    else if (a == "--heads")
      o.dims.H = int(to_int(a, v, 1, 1 << 12)), o.dims_given.H = true;
    else if (a == "--d-ff")
      o.dims.F = int(to_int(a, v, 1, 1 << 18)), o.dims_given.F = true;
    else if (a == "--seq-len")
      o.dims.T = int(to_int(a, v, 1, 1 << 16)), o.dims_given.T = true;
    else if (a == "--batch")
      o.dims.B = int(to_int(a, v, 1, 1 << 16));
    else if (a == "--steps")
      o.steps = to_int(a, v, 1, big), o.steps_given = true;
    else if (a == "--lr")
      o.lr = to_double(a, v, 1e-12, 10.0), o.lr_given = true;
    else if (a == "--warmup-frac")
      o.warmup_frac = to_double(a, v, 0.0, 1.0), o.warmup_given = true;
    else if (a == "--seed")
      o.seed = uint64_t(to_int(a, v, 0, big));
    else if (a == "--eval-every")
      o.eval_every = to_int(a, v, 0, big);
    else if (a == "--eval-batches")
      o.eval_batches = int(to_int(a, v, 0, 1 << 20));
    else if (a == "--checkpoint-every")
      o.checkpoint_every = to_int(a, v, 0, big);
    else if (a == "--keep-checkpoints")
      o.keep_checkpoints = int(to_int(a, v, 1, 1 << 20));
    else if (a == "--stop-at")
      o.stop_at = to_int(a, v, 1, big);
    else if (a == "--max-minutes")
      o.max_minutes = to_double(a, v, 0.0, 1e7);
    else if (a == "--out")
      o.out_dir = v, out_given = true;
    else if (a == "--data-dir")
      o.data_dir = v;
    else if (a == "--resume")
      o.resume = v;
    else if (a == "--checkpoint")
      o.checkpoint = v;
    else if (a == "--prompt")
      o.prompt = v;
    else if (a == "--prompt-file")
      o.prompt_file = v;
    else if (a == "--tokens")
      o.sample_tokens = to_int(a, v, 1, big);
    else if (a == "--temperature")
      o.temperature = to_double(a, v, 0.0, 1e6);
    else if (a == "--top-k")
      o.top_k = int(to_int(a, v, 0, 256));
    else if (a == "--routing-out")
      o.routing_out = v;
    else if (a == "--keep")
      o.keep = int(to_int(a, v, 1, 1 << 16));
    else if (a == "--sample-every")
      o.sample_every = to_int(a, v, 0, big);
    else if (a == "--gemm-precision") {
      if (v != "fp32" && v != "tf32")
        throw UsageError("--gemm-precision expects fp32 or tf32, got '" + v + "'");
      o.tf32 = v == "tf32";
    } else if (a == "--routing-init") {
      if (v == "zeros")
        o.routing_init_std = 0;
      else if (v.rfind("normal:", 0) == 0)
        o.routing_init_std = to_double(a, v.substr(7), 0.0, 100.0);
      else
        throw UsageError("--routing-init expects zeros or normal:STD, got '" + v + "'");
    } else
      throw UsageError("unknown option " + a + " (see --help)");
  }
  if (o.command == "eval" && o.checkpoint.empty()) throw UsageError("eval needs --checkpoint CKPT");
  if (o.command == "dump" && !out_given) throw UsageError("dump needs --out FILE");
  if (o.command == "sample" && o.checkpoint.empty()) throw UsageError("sample needs --checkpoint CKPT");
  if (!o.prompt.empty() && !o.prompt_file.empty())
    throw UsageError("--prompt and --prompt-file exclude each other");
  if (o.overwrite && (o.command != "train" || !o.resume.empty()))
    throw UsageError("--overwrite replaces a run with a fresh one; it cannot be used with " +
                     (o.command == "train" ? std::string("--resume") : o.command));
  // widths come from the checkpoint where there is one: validated after it is read (check_config)
  const bool from_checkpoint = !o.resume.empty() || !o.checkpoint.empty();
  if (from_checkpoint) return o;
  try {
    o.dims.V = 1;  // checked later against the corpus
    o.dims.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  return o;
}

}  // namespace wavres
