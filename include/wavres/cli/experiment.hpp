// The three commands of every experiment executable (train, eval, dump), written once for any ModelSpec.
#pragma once
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include "wavres/cli/blas_env.hpp"
#include "wavres/cli/options.hpp"
#include "wavres/cli/progress.hpp"
#include "wavres/cli/run_dir.hpp"
#include "wavres/cli/sample.hpp"
#include "wavres/data/corpus.hpp"
#include "wavres/dist/allreduce.hpp"
#include "wavres/dist/comm.hpp"
#include "wavres/io/checkpoint.hpp"
#include "wavres/model/model.hpp"
#include "wavres/ops/gemm_precision.hpp"
#include "wavres/optim/adamw.hpp"
#include "wavres/optim/schedule.hpp"

#ifndef WAVRES_BUILD_TYPE
#define WAVRES_BUILD_TYPE "unknown"
#endif

namespace wavres {

const char* git_revision();  // the revision the build was configured at (src/cli/build_info.cpp.in)

// Exit statuses, documented in the README ("Failure behaviour").
enum ExitCode { kOk = 0, kError = 1, kUsage = 2, kInterrupted = 3, kNonFinite = 4 };

// agreed: every rank of a data-parallel run raised it at the same point (agree(), or a decision made on
// all-reduced values): the leader prints it once and every rank exits with `code`, instead of MPI_Abort.
// usage: printed as a usage error ("name: message", no "error:").
struct RunError : std::runtime_error {
  int code;
  bool agreed = false, usage = false;
  RunError(const std::string& m, int c, bool agreed_ = false, bool usage_ = false)
      : std::runtime_error(m), code(c), agreed(agreed_), usage(usage_) {}
};

// Data parallelism: after a phase that may fail on some ranks only (files, memory), every rank learns whether
// any failed, and all throw the error of the lowest failing rank, so none waits forever in the next
// collective. On one process it rethrows err unchanged.
inline void agree(const Comm& comm, std::exception_ptr err) {
  if (!comm.distributed()) {
    if (err) std::rethrow_exception(err);
    return;
  }
  std::string what;
  int code = 0;
  bool usage = false;
  if (err) try {
      std::rethrow_exception(err);
    } catch (const UsageError& e) {
      what = e.what(), code = kUsage, usage = true;
    } catch (const RunError& e) {
      what = e.what(), code = e.code, usage = e.usage;
    } catch (const std::exception& e) {
      what = e.what(), code = kError;
    }
  const int first = comm.min(err ? comm.rank() : comm.size());
  if (first == comm.size()) return;
  double head[2] = {double(code), usage ? 1.0 : 0.0};
  comm.broadcast(head, 2, first);
  comm.broadcast(what, first);
  if (first != 0) what = "rank " + std::to_string(first) + ": " + what;
  throw RunError(what, int(head[0]), true, head[1] != 0);
}

// The first SIGINT/SIGTERM asks for a checkpoint at the end of the step; a second one quits at once (a step
// or a checkpoint can take minutes), leaving the checkpoints already written as they are. Under mpirun, a
// SIGTERM within 2 s of a SIGINT is the same request, not a second one: Ctrl-C reaches a rank from the
// terminal, and then from mpirun, which forwards it as SIGTERM a second later.
inline std::atomic<int> g_stop_signal{0};
inline std::atomic<long long> g_stop_signal_ns{0};
inline std::atomic<bool> g_forwarded_signals{false};  // set when the run has several ranks
extern "C" inline void wavres_on_signal(int sig) {
  static const char first[] =
      "stopping: finishing the step and writing a checkpoint (signal again to quit at once)\n";
  static const char second[] = "second signal: quitting at once, without a checkpoint\n";
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
  const long long now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
  const int before = g_stop_signal.exchange(sig);
  if (before == SIGINT && sig == SIGTERM && g_forwarded_signals && now - g_stop_signal_ns < 2000000000LL)
    return;
  if (before == 0) g_stop_signal_ns = now;
  const bool again = before != 0;
  ssize_t ignored = again ? ::write(2, second, sizeof second - 1) : ::write(2, first, sizeof first - 1);
  (void)ignored;
  if (again) ::_exit(128 + sig);
}

namespace fs = std::filesystem;

inline std::string checkpoint_name(int64_t step) {
  std::ostringstream s;
  s << "ckpt_" << std::setw(8) << std::setfill('0') << step << ".h5";
  return s.str();
}

// The checkpoints (ckpt_XXXXXXXX.h5) of a run directory, oldest first: the zero-padded step sorts by name.
inline std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() == 16 && n.rfind("ckpt_", 0) == 0 && n.substr(13) == ".h5") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Newest checkpoint in a run directory, or throws naming the directory.
inline std::string latest_checkpoint(const std::string& dir) {
  const auto all = list_checkpoints(dir);
  if (all.empty()) throw IoError(dir + ": no checkpoint (ckpt_XXXXXXXX.h5) to resume from");
  return all.back();
}

// MemAvailable (free + reclaimable page cache) from /proc/meminfo; MemFree alone would refuse runs after a
// build or after mapping a large corpus. Falls back to free pages where /proc is missing.
inline double available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  for (std::string key; f >> key;) {
    double kb = 0;
    f >> kb;
    if (key == "MemAvailable:") return kb * 1024.0;
    f.ignore(1 << 10, '\n');
  }
  return double(sysconf(_SC_AVPHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
}

// Free memory where the execution space allocates: the GPU's (cudaMemGetInfo) for CUDA, else the host's.
template <class Exec>
double available_bytes_for() {
#ifdef KOKKOS_ENABLE_CUDA
  if constexpr (std::is_same_v<typename Exec::memory_space, Kokkos::CudaSpace>) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return std::numeric_limits<double>::infinity();
    return double(free_b);
  }
#endif
  return available_memory_bytes();
}

inline std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// Fixed validation windows: stride T through the split, spread evenly, in whole batches.
inline std::vector<int64_t> eval_offsets(const Split& s, int B, int T, int max_batches) {
  const int64_t windows = (s.size - 1) / T;
  int64_t batches = windows / B;
  if (batches == 0)
    throw DataError(s.file + ": validation split (" + std::to_string(s.size) +
                    " bytes) is too small for one batch of " + std::to_string(B) + " windows of " +
                    std::to_string(T + 1) + " bytes");
  if (max_batches > 0 && batches > max_batches) batches = max_batches;
  const int64_t n = batches * B;
  std::vector<int64_t> off(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) off[size_t(k)] = (k * windows / n) * T;
  return off;
}

template <class Spec, class Exec = Kokkos::DefaultExecutionSpace>
class Experiment {
 public:
  using M = Model<Spec, float, Exec>;

  Experiment(Options o, std::string name, std::string dataset)
      : o_(std::move(o)), name_(std::move(name)), dataset_(std::move(dataset)) {}

  int run() {
    if (Comm::world().distributed() && o_.command != "train" && o_.command != "eval")
      throw RunError(o_.command + " runs on one process (started as " + std::to_string(Comm::world().size()) +
                         " ranks by an MPI launcher); only train and eval are data-parallel",
                     kUsage, true, true);
    if (o_.command == "train") return train();
    if (o_.command == "eval") return eval();
    if (o_.command == "sample") return sample_command<Spec, Exec>(o_, name_, dataset_);
    return dump();
  }

 private:
  RunMeta meta() const {
    RunMeta m;
    m.git_rev = git_revision();
    m.build_type = WAVRES_BUILD_TYPE;
    m.backend = backend_name<Exec>();
    m.threads = int64_t(Exec().concurrency());
    m.ranks = Comm::world().size();
    for (auto& a : o_.argv) m.command_line += (m.command_line.empty() ? "" : " ") + a;
    m.start_time = start_time_;
    return m;
  }

  // Loads the corpus; with a checkpoint, switches to its vocabulary (every data byte must be in it).
  Corpus open_corpus(const H5File* ckpt) {
    Corpus c = Corpus::open(dataset_, o_.data_dir);
    if (ckpt) c.use_vocab(read_vocab(*ckpt));
    o_.dims.V = c.vocab().size();
    c.require_window(c.train(), o_.dims.T);
    c.require_window(c.val(), o_.dims.T);
    return c;
  }

  // This rank's rows of the global batch that starts at offsets[first]: rank r of R takes rows
  // [r·B/R, (r+1)·B/R), so R ranks together see exactly the batch one process would.
  void load_batch(const Corpus& c, const Split& s, const std::vector<int64_t>& offsets, size_t first,
                  View2<int32_t, Exec>& dev, typename View2<int32_t, Exec>::HostMirror& host) {
    const size_t rows = dev.extent(0), mine = first + size_t(Comm::world().rank()) * rows;
    std::vector<int64_t> off(offsets.begin() + mine, offsets.begin() + mine + rows);
    c.gather(s, off, o_.dims.T, host.data());
    Kokkos::deep_copy(dev, host);
  }

  // Mean validation loss over the batches of `offsets` (each rank its rows of every batch). With
  // `interrupted` (training), a stop signal on any rank ends it early and sets *interrupted: a whole-split
  // evaluation took ~15 s to act on Ctrl-C.
  double evaluate(M& model, const Corpus& c, const std::vector<int64_t>& offsets, View2<int32_t, Exec>& dev,
                  typename View2<int32_t, Exec>::HostMirror& host, bool* interrupted = nullptr) {
    const Comm& comm = Comm::world();
    double sum = 0;
    const size_t nb = offsets.size() / size_t(o_.dims.B);
    for (size_t b = 0; b < nb; ++b) {
      if (interrupted && comm.any(g_stop_signal != 0)) {
        *interrupted = true;
        return NAN;
      }
      load_batch(c, c.val(), offsets, b * size_t(o_.dims.B), dev, host);
      sum += model.forward(dev, false);
    }
    if (comm.distributed()) sum = comm.sum(sum) / double(comm.size());
    return sum / double(nb);
  }

  // The model's dimensions on this rank: the global batch split over the ranks (the widths are the run's).
  Dims local_dims() const {
    const Comm& comm = Comm::world();
    if (o_.dims.B % comm.size() != 0)
      throw UsageError("--batch " + std::to_string(o_.dims.B) + " is not divisible by the " +
                       std::to_string(comm.size()) +
                       " ranks of this run: --batch is the global batch, split " + "evenly over the ranks");
    Dims d = o_.dims;
    d.B /= comm.size();
    return d;
  }

  void write_checkpoint(const std::string& path, M& model, const View1<float, Exec>& m,
                        const View1<float, Exec>& v, const Vocab& vocab, const TrainState& st,
                        const std::vector<float>& alpha) {
    write_atomically(path, [&](H5File& f) {
      write_config<Spec>(f, "wavres-checkpoint", o_.dims, dataset_, backend_name<Exec>(), st.step);
      write_run_meta(f, meta());
      write_flat(f, "/params/", model.table(), model.params());
      write_flat(f, "/optimizer/m/", model.table(), m);
      write_flat(f, "/optimizer/v/", model.table(), v);
      write_vocab(f, vocab);
      write_train_state(f, st);
      write_routing<Spec>(f, alpha, model.source_labels());
    });
  }

  // Data parallel (dist/comm.hpp): every rank holds the whole model and draws the same global batch; it takes
  // its rows, the gradients are summed over the ranks, and the identical clipped AdamW step follows on each.
  // Only the leader (rank 0) prints, writes log.csv and checkpoints; on one process all of this is as before.
  int train() {
    namespace chr = std::chrono;
    const Comm& comm = Comm::world();
    const bool leader = comm.leader(), talk = leader && !o_.quiet;
    std::error_code ec;
    std::unique_ptr<RunDirLock> lock;
    std::string resume_path;
    std::exception_ptr err;
    try {
      if (leader) {
        fs::create_directories(o_.out_dir, ec);
        {  // fail now, not after an hour of training
          std::ofstream probe(o_.out_dir + "/.write_test");
          if (!probe) throw IoError(o_.out_dir + ": output directory cannot be written");
        }
        fs::remove(o_.out_dir + "/.write_test", ec);
        // one training per directory, taken before anything in it is read
        lock = std::make_unique<RunDirLock>(o_.out_dir);
        if (o_.resume.empty()) prepare_fresh_run_dir(o_.out_dir, o_.overwrite);
        if (!o_.resume.empty())
          resume_path = o_.resume == "latest" ? latest_checkpoint(o_.out_dir) : o_.resume;
      }
    } catch (...) {
      err = std::current_exception();
    }
    agree(comm, err);
    comm.broadcast(resume_path);

    std::unique_ptr<H5File> ckpt;
    std::optional<Corpus> corpus_opt;
    std::optional<M> model_opt;
    View1<float, Exec> adam_m, adam_v;
    TrainState st;
    bool finished = false;
    try {
      if (!resume_path.empty()) {
        ckpt = std::make_unique<H5File>(resume_path, H5File::Mode::read);
        check_config<Spec>(*ckpt, o_.dims, o_.dims_given, dataset_);
      }
      corpus_opt.emplace(open_corpus(ckpt.get()));
      const Dims dl = local_dims();
      check_memory(dl, 3, true);
      model_opt.emplace(dl);
      M& model = *model_opt;
      adam_m = View1<float, Exec>("adam_m", model.table().total);
      adam_v = View1<float, Exec>("adam_v", model.table().total);
      if (ckpt) {
        read_flat(*ckpt, "/params/", model.table(), model.params());
        read_flat(*ckpt, "/optimizer/m/", model.table(), adam_m);
        read_flat(*ckpt, "/optimizer/v/", model.table(), adam_v);
        st = read_train_state(*ckpt);
        ckpt.reset();
        if (!o_.steps_given && st.step == st.total_steps) {
          if (leader)
            std::cout << name_ << ": " << resume_path << ": the run is finished (step " << st.step << " of "
                      << st.total_steps << "); nothing to do (--steps N trains it further)\n";
          finished = true;
        } else {
          if (talk && (o_.lr_given || o_.warmup_given))
            std::cerr << name_
                      << ": --lr/--warmup-frac are ignored on --resume: the schedule is the checkpoint's\n";
          if (o_.steps_given && o_.steps <= st.step)
            throw UsageError("--steps " + std::to_string(o_.steps) + " is not beyond the checkpoint's step " +
                             std::to_string(st.step));
          if (o_.steps_given && o_.steps != st.total_steps) {
            if (talk)
              std::cerr << name_ << ": --steps " << o_.steps << " replaces the checkpoint's "
                        << st.total_steps << " (the cosine schedule is stretched from here on)\n";
            st.total_steps = o_.steps;
          }
        }
      } else {
        model.init_params(o_.seed, o_.routing_init_std);
        st.total_steps = o_.steps;
        st.warmup_steps = LrSchedule::with_defaults(o_.lr, o_.steps, o_.warmup_frac).warmup_steps;
        st.lr_peak = o_.lr;
        st.seed = o_.seed;
        st.data_rng = Rng(o_.seed ^ 0x5eed0da7aULL).s;
      }
    } catch (...) {
      err = std::current_exception();
    }
    agree(comm, err);
    if (finished) return kOk;
    Corpus& corpus = *corpus_opt;
    M& model = *model_opt;
    const Dims& d = o_.dims;        // the global batch; the model's is model.dims()
    const int Bl = model.dims().B;  // this rank's rows (local_dims())
    GradientAllreduce<Exec> reduce(comm, model.table().total);
    const double inv_ranks = 1.0 / double(comm.size());

    LrSchedule sched{st.lr_peak, st.total_steps, st.warmup_steps, 0.1};
    Rng data_rng;
    data_rng.s = st.data_rng;
    const auto val_off = eval_offsets(corpus.val(), d.B, d.T, o_.eval_batches);
    View2<int32_t, Exec> tokens("tokens", Bl, d.T + 1);
    auto tokens_h = Kokkos::create_mirror_view(tokens);
    std::vector<int64_t> offsets(size_t(d.B));
    const int64_t tokens_per_step = int64_t(d.B) * d.T;
    const std::string log_path = o_.out_dir + "/log.csv";
    const bool resumed = !resume_path.empty();
    std::ofstream log;
    auto check_log = [&] {
      if (leader && !log) throw IoError(log_path + ": cannot be written (" + std::strerror(errno) + ")");
    };
    if (leader) {
      if (resumed) cut_log(log_path, st.step);  // drop steps logged after the checkpoint we resume from
      log.open(log_path, resumed ? std::ios::app : std::ios::trunc);
      if (!resumed) log << kLogHeader << "\n";
      check_log();
    }

    if (talk) {
      std::cerr << name_ << ": " << corpus.describe() << "\n"
                << name_ << ": " << Spec::name() << ", " << model.table().count_parameters()
                << " parameters, d_model " << d.D << ", heads " << d.H << ", d_ff " << d.F << ", T " << d.T
                << ", batch " << d.B << ", " << backend_name<Exec>() << " x" << Exec().concurrency() << ", "
                << double(model.bytes_allocated()) / (1 << 20) << " MiB\n";
      if (comm.distributed())
        std::cerr << name_ << ": " << comm.size() << " ranks, " << Bl
                  << " rows of each batch per rank, gradients "
                  << "summed by " << reduce.transport() << "\n";
      if (!resume_path.empty())
        std::cerr << name_ << ": resumed from " << resume_path << " at step " << st.step << "\n";
    }
    std::signal(SIGINT, wavres_on_signal);
    std::signal(SIGTERM, wavres_on_signal);
    if (comm.distributed())
      std::signal(SIGUSR1, wavres_on_signal);  // mpirun forwards SIGUSR1 and nothing kills

    // oldest first, including checkpoints of earlier sessions of this run
    std::vector<std::string> kept = leader ? list_checkpoints(o_.out_dir) : std::vector<std::string>{};
    std::string last_good = resume_path;
    auto save = [&](bool final_save) {
      const std::string path = o_.out_dir + "/" + checkpoint_name(st.step);
      // routing statistics on a fixed evaluation batch (the first validation batch; each rank its rows)
      std::vector<float> alpha;
      if (Spec::routed) {
        load_batch(corpus, corpus.val(), val_off, 0, tokens, tokens_h);
        model.forward(tokens, false);
        alpha = model.alpha_mean();
        if (comm.distributed()) {
          comm.sum(alpha.data(), int(alpha.size()));
          for (auto& a : alpha) a = float(a * inv_ranks);
        }
      }
      st.data_rng = data_rng.s;
      if (!leader) {
        last_good = path;
        return;
      }
      log.flush();  // the log must cover every step the checkpoint has taken, even if we are killed next
      check_log();
      write_checkpoint(path, model, adam_m, adam_v, corpus.vocab(), st, alpha);
      last_good = path;
      kept.push_back(path);
      while (int(kept.size()) > o_.keep_checkpoints) {
        fs::remove(kept.front(), ec);
        kept.erase(kept.begin());
      }
      if (!o_.quiet && final_save) std::cerr << name_ << ": checkpoint " << path << "\n";
    };

    std::unique_ptr<ProgressBar> bar;
    if (leader) bar = std::make_unique<ProgressBar>(st.total_steps - st.step);
    auto say = [&](const std::string& line) {
      if (bar) bar->message(line);
    };
    std::unique_ptr<Decoder<Spec, float, Exec>> sampler;  // --sample-every, made at its first use
    const auto t0 = chr::steady_clock::now();
    double last_val = NAN, ema_loss = NAN;
    int64_t steps_this_run = 0;
    AdamWConfig acfg;
    const char* nan_rank = std::getenv("WAVRES_INJECT_NAN_RANK");  // test hook: poison one rank only
    const bool inject_here = !nan_rank || std::atoi(nan_rank) == comm.rank();
    while (st.step < st.total_steps) {
      for (auto& x : offsets) x = data_rng.below(corpus.train().size - d.T);  // the global batch
      load_batch(corpus, corpus.train(), offsets, 0, tokens, tokens_h);
      double loss = model.loss_and_grad(tokens);
      if (st.step + 1 == inject_nan_at_ && inject_here)
        Kokkos::deep_copy(Kokkos::subview(model.grads(), std::make_pair(int64_t(5), int64_t(6))), NAN);
      // Σ over ranks of the rank means; with equal rows per rank, 1/R of it is the global batch's mean
      reduce.sum(model.grads());
      double gnorm = global_grad_norm<float, Exec>(model.grads()) * inv_ranks;
      if (comm.distributed()) {
        loss = comm.sum(loss) * inv_ranks;
        comm.broadcast(&gnorm, 1);  // the same clip factor on every rank, whatever each one's thread count
      }
      if (!std::isfinite(loss) || !std::isfinite(gnorm)) {
        std::string where = !std::isfinite(loss) ? "loss" : first_nonfinite(model);
        throw RunError("non-finite " + where + " at step " + std::to_string(st.step + 1) +
                           "; last good checkpoint: " + (last_good.empty() ? "none" : last_good) +
                           " (left untouched)",
                       kNonFinite, comm.distributed());
      }
      const double lr = sched(st.step);
      adamw_step<float, Exec>(model.params(), model.grads(), adam_m, adam_v, model.table().decay_end, lr,
                              st.step + 1, gnorm, acfg, inv_ranks);
      ++st.step;
      ++steps_this_run;
      st.tokens_seen += tokens_per_step;
      const double secs = chr::duration<double>(chr::steady_clock::now() - t0).count();
      const double tps = double(steps_this_run * tokens_per_step) / secs;
      ema_loss = std::isnan(ema_loss) ? loss : 0.9 * ema_loss + 0.1 * loss;
      const bool do_eval = (o_.eval_every > 0 && st.step % o_.eval_every == 0) || st.step == st.total_steps;
      double out_of_time = (o_.max_minutes > 0 && secs > o_.max_minutes * 60) || st.step == o_.stop_at;
      comm.broadcast(&out_of_time, 1);  // the leader's clock decides for all
      bool eval_cut = false;            // a stop signal ended the evaluation: no val_loss in this row
      if (do_eval || out_of_time != 0) {
        last_val = evaluate(model, corpus, val_off, tokens, tokens_h, &eval_cut);
        if (!eval_cut)
          say("step " + std::to_string(st.step) + ": train " + fmt(loss) + ", val " + fmt(last_val) +
              " nats (" + fmt(last_val / std::log(2.0)) + " bits/char)");
      }
      if (leader && o_.sample_every > 0 && st.step % o_.sample_every == 0) {
        if (!sampler) sampler = std::make_unique<Decoder<Spec, float, Exec>>(d);
        say("step " + std::to_string(st.step) + " sample: " +
            training_sample(*sampler, model.params(), corpus.vocab(), st.seed + uint64_t(st.step)));
      }
      // also a signal that arrived during the evaluation, on any rank
      const bool stop = comm.any(g_stop_signal != 0);
      if (leader) {
        log << st.step << "," << st.tokens_seen << "," << fmt(loss, 6) << ","
            << (do_eval && !eval_cut ? fmt(last_val, 6) : "") << "," << lr << "," << fmt(tps, 1) << ","
            << fmt(gnorm, 5) << "\n";
        log.flush();  // one write per step: the log can be followed live, and a full disk shows at once
        check_log();
        if (!o_.quiet)
          bar->update(steps_this_run, double(steps_this_run * tokens_per_step), "loss " + fmt(ema_loss));
      }
      if ((o_.checkpoint_every > 0 && st.step % o_.checkpoint_every == 0) || st.step == st.total_steps ||
          out_of_time != 0 || stop)
        save(st.step == st.total_steps || out_of_time != 0 || stop);
      if (stop) {
        if (leader) {
          log.flush();
          bar->finish();
          std::cerr << name_ << ": stopped by "
                    << (g_stop_signal != 0 ? "signal " + std::to_string(int(g_stop_signal))
                                           : std::string("a signal to another rank"))
                    << " at step " << st.step << "; resume with --resume " << last_good << "\n";
        }
        return kInterrupted;
      }
      if (out_of_time != 0) {
        if (bar) bar->finish();
        if (talk) std::cerr << name_ << ": stopping at step " << st.step << " (--max-minutes/--stop-at)\n";
        break;
      }
    }
    if (!leader) return kOk;
    bar->finish();
    log.flush();
    check_log();
    const double secs = chr::duration<double>(chr::steady_clock::now() - t0).count();
    std::cout << name_ << ": final val loss " << fmt(last_val) << " nats (" << fmt(last_val / std::log(2.0))
              << " bits/char), " << fmt(double(steps_this_run * tokens_per_step) / secs, 0) << " tokens/s, "
              << fmt(secs, 1) << " s, step " << st.step
              << (comm.distributed() ? ", " + std::to_string(comm.size()) + " ranks" : "") << "\n";
    return kOk;
  }

  // Refuse sizes that cannot fit before allocating anything (Linux overcommits: an oversized run would be
  // killed mid-way instead). extra_param_copies: optimizer moments etc. beyond params and grads; with
  // `checkpoints` on the host, the two copies of a checkpoint (3 parameter copies) that writing one holds.
  // The message names what dominates: the weights (widths) or the activations (batch x sequence).
  // dims: this rank's (local_dims()).
  void check_memory(const Dims& dims, int extra_param_copies, bool checkpoints = false) const {
    constexpr bool host = std::is_same_v<typename Exec::memory_space, Kokkos::HostSpace>;
    const int64_t n_params = make_param_table<Spec>(dims).total;
    const double param_bytes = double(n_params) * sizeof(float);
    const int copies = extra_param_copies + (checkpoints && host ? 6 : 0);
    const double need = double(M::bytes_required(dims)) + double(copies) * param_bytes;
    const double weights = double(2 + copies) * param_bytes;  // params, grads and the copies above
    const double avail = available_bytes_for<Exec>();
    if (need > 0.9 * avail) {
      std::ostringstream s;
      s << std::fixed << std::setprecision(1);
      if (weights >= need - weights)
        s << "--d-model " << o_.dims.D << ", --d-ff " << o_.dims.F << ": " << n_params << " parameters need "
          << weights / double(1 << 30) << " GiB for weights, gradients and optimizer state ("
          << need / double(1 << 30) << " GiB in all) but " << avail / double(1 << 30) << " GiB are available"
          << (host ? "" : " on the GPU") << "; lower --d-model or --d-ff";
      else
        s << "--batch " << o_.dims.B
          << (dims.B != o_.dims.B ? " (" + std::to_string(dims.B) + " per rank)" : "") << " x --seq-len "
          << o_.dims.T << " needs " << need / double(1 << 30) << " GiB but " << avail / double(1 << 30)
          << " GiB are available" << (host ? "" : " on the GPU") << "; lower --batch";
      throw UsageError(s.str());
    }
  }

  std::string first_nonfinite(M& model) {
    auto g = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), model.grads());
    for (auto& e : model.table().entries)
      for (int64_t k = 0; k < e.size(); ++k)
        if (!std::isfinite(g(e.offset + k))) return "gradient of " + e.name;
    return "gradient norm";
  }

  // Under mpirun, each rank evaluates its rows of every batch.
  int eval() {
    std::optional<Corpus> corpus_opt;
    std::optional<M> model_opt;
    std::exception_ptr err;
    try {
      H5File f(o_.checkpoint, H5File::Mode::read);
      check_config<Spec>(f, o_.dims, o_.dims_given, dataset_);
      corpus_opt.emplace(open_corpus(&f));
      const Dims dl = local_dims();
      check_memory(dl, 0);
      model_opt.emplace(dl);
      read_flat(f, "/params/", model_opt->table(), model_opt->params());
    } catch (...) {
      err = std::current_exception();
    }
    agree(Comm::world(), err);
    Corpus& corpus = *corpus_opt;
    M& model = *model_opt;
    View2<int32_t, Exec> tokens("tokens", model.dims().B, o_.dims.T + 1);
    auto tokens_h = Kokkos::create_mirror_view(tokens);
    const auto off = eval_offsets(corpus.val(), o_.dims.B, o_.dims.T, o_.eval_batches);
    const double loss = evaluate(model, corpus, off, tokens, tokens_h);
    if (!Comm::world().leader()) return kOk;
    std::cout << name_ << ": " << o_.checkpoint << ": val loss " << fmt(loss, 5) << " nats ("
              << fmt(loss / std::log(2.0), 5) << " bits/char) over " << off.size() * size_t(o_.dims.T)
              << " tokens of " << corpus.val().file << "\n";
    return kOk;
  }

  int dump() {
    std::unique_ptr<H5File> ckpt;
    if (!o_.checkpoint.empty()) {
      ckpt = std::make_unique<H5File>(o_.checkpoint, H5File::Mode::read);
      check_config<Spec>(*ckpt, o_.dims, o_.dims_given, dataset_);
    }
    Corpus corpus = open_corpus(ckpt.get());
    const Dims& d = o_.dims;
    M model(d);
    int64_t step = 0;
    if (ckpt) {
      read_flat(*ckpt, "/params/", model.table(), model.params());
      step = ckpt->attr_int("/config", "step");
    } else {
      model.init_params(o_.seed, o_.routing_init_std);
    }
    // the batch: B windows of the validation split drawn with --seed
    Rng rng(o_.seed * 0x9E3779B97F4A7C15ULL + 17);
    std::vector<int64_t> off(size_t(d.B));
    for (auto& x : off) x = rng.below(corpus.val().size - d.T);
    View2<int32_t, Exec> tokens("tokens", d.B, d.T + 1);
    auto tokens_h = Kokkos::create_mirror_view(tokens);
    corpus.gather(corpus.val(), off, d.T, tokens_h.data());
    Kokkos::deep_copy(tokens, tokens_h);
    const double loss = model.loss_and_grad(tokens);
    const auto alpha = model.alpha_mean();
    write_atomically(o_.out_dir, [&](H5File& f) {
      write_config<Spec>(f, "wavres-dump", d, dataset_, backend_name<Exec>(), step);
      write_run_meta(f, meta());
      write_flat(f, "/params/", model.table(), model.params());
      write_flat(f, "/grads/", model.table(), model.grads());
      f.write("/batch/tokens", tokens_h.data(), {d.B, d.T + 1});
      f.write("/loss", &loss, {});
      write_vocab(f, corpus.vocab());
      write_routing<Spec>(f, alpha, model.source_labels());
    });
    std::cout << name_ << ": dump " << o_.out_dir << ": loss " << fmt(loss, 7) << " on " << d.B << "x" << d.T
              << " validation tokens\n";
    return kOk;
  }

  static std::string fmt(double x, int prec = 4) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(prec) << x;
    return s.str();
  }

  Options o_;
  std::string name_, dataset_;
  // Test hook: WAVRES_INJECT_NAN_AT_STEP=k poisons one gradient at step k (non-finite detection path).
  int64_t inject_nan_at_ =
      std::getenv("WAVRES_INJECT_NAN_AT_STEP") ? std::atoll(std::getenv("WAVRES_INJECT_NAN_AT_STEP")) : -1;
  std::string start_time_ = now_iso8601();
};

// A CUDA rank of a data-parallel run uses GPU local_rank mod (the GPUs it sees), unless --kokkos-device-id
// (or Kokkos' own mapping options) says otherwise; Kokkos 3.4 would put every rank on GPU 0.
inline std::vector<std::string> kokkos_args(int argc, char** argv, const Comm& comm) {
  std::vector<std::string> a(argv, argv + argc);
#ifdef KOKKOS_ENABLE_CUDA
  bool chosen = false;
  for (auto& x : a)
    chosen |= x.rfind("--kokkos-device", 0) == 0 || x.rfind("--kokkos-map-device", 0) == 0 ||
              x.rfind("--kokkos-num-devices", 0) == 0;
  int n = 0;
  if (comm.distributed() && !chosen && cudaGetDeviceCount(&n) == cudaSuccess && n > 0)
    a.push_back("--kokkos-device-id=" + std::to_string(comm.local_rank() % n));
#else
  (void)comm;
#endif
  return a;
}

// main() of an experiment executable.
template <class Spec, class Exec = Kokkos::DefaultExecutionSpace>
int experiment_main(int argc, char** argv, const std::string& name, const std::string& dataset,
                    const std::string& default_data) {
  ensure_blas_coretype(argc, argv);  // may re-exec: before MPI is initialised
  std::signal(SIGXFSZ, SIG_IGN);     // past ulimit -f, a write fails with EFBIG (an error message), no kill
  Comm& comm = Comm::world();
  comm.init(&argc, &argv);  // a no-op unless an MPI launcher started us
  // Errors are printed once: by the leader when every rank has the same one (agreed), else by the rank that
  // had it, which then ends the job (MPI_Abort) so that no rank waits forever for it.
  // Every rank leaves through a barrier: mpirun ends the whole job as soon as one rank exits with a non-zero
  // status, and the leader may still be writing the checkpoint the others have already agreed on.
  auto leave = [&](int code) {
    comm.barrier();
    comm.finalize();
    return code;
  };
  auto fail = [&](const std::string& line, int code, bool agreed) {
    if (!comm.distributed() || agreed) {
      if (comm.leader()) std::cerr << name << ": " << line << "\n";
      return leave(code);
    }
    std::cerr << name << ": rank " << comm.rank() << ": " << line << "\n";
    comm.abort(code);
  };
  Options o;
  try {
    o = parse_options(argc, argv, "runs/" + name, default_data);
  } catch (const UsageError& e) {
    return fail(e.what(), kUsage, true);  // every rank parses the same command line
  }
  if (o.command == "--help") {
    if (comm.leader()) std::cout << usage(name) << "\n";
    return leave(kOk);
  }
  int code = kOk;
  try {
    std::vector<std::string> args = kokkos_args(argc, argv, comm);
    std::vector<char*> ptrs;
    for (auto& x : args) ptrs.push_back(x.data());
    int kargc = int(ptrs.size());
    ptrs.push_back(nullptr);
    Kokkos::ScopeGuard kokkos(kargc, ptrs.data());
    try {
      set_gemm_precision<Exec>(o.tf32 ? GemmPrecision::tf32 : GemmPrecision::fp32);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    code = Experiment<Spec, Exec>(o, name, dataset).run();
  } catch (const UsageError& e) {
    return fail(e.what(), kUsage, false);
  } catch (const RunError& e) {
    return fail(e.usage ? e.what() : std::string("error: ") + e.what(), e.code, e.agreed);
  } catch (const std::exception& e) {
    return fail(std::string("error: ") + e.what(), kError, false);
  }
  return leave(code);
}

}  // namespace wavres
