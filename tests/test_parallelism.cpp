// Exposed parallelism of the device bodies: for each device launch of a 12-layer training step at the
// benchmark shape (B 16, T 256, D 256, H 4, F 704; text8's V = 27), the number of GPU threads it launches on
// CUDA (league × team × vector, or the range length), read from the same `device::*_launch` functions the
// bodies launch with: the ops, attention, and the routing kernels of Full AttnRes, Block AttnRes and WAV v1
// (block size 4, as bench_<variant>_l12 builds them; the two-phase mixer, Model's default). An H100/H200
// keeps ~270,000 threads in flight (132 SMs × 2048); a launch below 65,536 threads leaves most of it idle, so
// every launch must reach that wherever its work allows, and the exceptions are listed with their reason.
// These checks are host arithmetic only: they run in every build, GPU or not. One more case runs a 12-layer
// step of each routed variant at a small shape and counts its routing launches by label (Kokkos Tools
// callbacks), so that the routing list is checked to be complete; that needs the device bodies, so it runs
// where the default space has them (openmp-device, CUDA).
#include <boost/test/unit_test.hpp>
#include <map>
#include <string>
#include <vector>
#include "wavres/core/column_sum.hpp"
#include "wavres/core/launch.hpp"
#include "wavres/model/model.hpp"
#include "wavres/model/params.hpp"
#include "wavres/ops/attention.hpp"
#include "wavres/ops/cross_entropy.hpp"
#include "wavres/ops/embedding.hpp"
#include "wavres/ops/rmsnorm.hpp"
#include "wavres/ops/swiglu.hpp"
#include "wavres/routing/sources.hpp"
#include "wavres/routing/two_phase.hpp"
#include "wavres/routing/variant.hpp"

using namespace wavres;

namespace {

constexpr int64_t kMinThreads = 65536;

struct LaunchRow {
  std::string kernel;         // the kernel's label, then optionally " (which launch)"
  int per_step;               // launches in one 12-layer step (ops: PreNorm's, the same in routed variants)
  LaunchShape shape;          // what CUDA launches
  std::string below_because;  // empty: must reach kMinThreads; else why the work does not allow it
};

Dims bench_dims() {
  Dims d;  // B 16, T 256, D 256, H 4, F 704
  d.V = 27;
  return d;
}

// Row ops, column reductions, embedding, loss and optimizer (ops/, optim/).
std::vector<LaunchRow> row_op_launches(const Dims& d) {
  constexpr int L = 24;  // sublayers of 12 layers
  const int64_t N = d.rows(), P = make_param_table<ModelSpec<Variant::prenorm, 12>>(d).total;
  return {
      {"embedding_forward[device]", 1, device::embedding_forward_launch(N, d.D), ""},
      {"rmsnorm_forward[device]", L + 1, device::rmsnorm_forward_launch(N), ""},
      {"swiglu_forward[device]", L / 2, device::swiglu_launch(N, d.F), ""},
      {"cross_entropy[device]", 1, device::cross_entropy_launch(N), ""},
      {"rmsnorm_backward[device]", L + 1, device::rmsnorm_backward_launch(), ""},
      {"rmsnorm_backward_dg[device]", L + 1, device::column_sum_launch(d.D),
       "second level of the dg reduction: 1024 chunk partials × D = 262,144 additions, 32 per thread; a "
       "third "
       "level would cost a launch to save less than one"},
      {"swiglu_backward[device]", L / 2, device::swiglu_launch(N, d.F), ""},
      {"embedding_backward_pos[device]", 1, device::embedding_pos_launch(d.T, d.D), ""},
      {"embedding_backward_tok[device]", 1, device::embedding_tok_launch(d.V, d.D), ""},
      {"embedding_backward_sum[device]", 1, device::embedding_tok_sum_launch(d.V, d.D),
       "second level of the token gradient: V·D = 6,912 outputs of " +
           std::to_string(device::embedding_token_chunks(d.V, d.D)) + " chunk partials each, once per step"},
      // optim/adamw.hpp: already flat ranges over the parameter buffer on every backend
      {"grad_norm", 1, LaunchShape{P, 1, 1}, ""},
      {"adamw_step", 1, LaunchShape{P, 1, 1}, ""},
  };
}

// Attention (ops/attention/device.hpp): forward, and the backward's Δ, dK/dV and dQ kernels. The block sizes
// are chosen from a scratch budget, not from the backend, so the host build computes the blocks a GPU uses.
std::vector<LaunchRow> attention_launches(const Dims& d) {
  constexpr int NL = 12;  // one attention sublayer per layer
  std::vector<LaunchRow> rows;
  for (const auto& a : device::attention_launches<float, Kokkos::DefaultExecutionSpace>(d.B, d.T, d.H, d.D))
    rows.push_back({a.label, NL, LaunchShape{a.league, a.team, a.vector}, ""});
  return rows;
}

std::string label_of(const LaunchRow& r) {
  return r.kernel.substr(0, r.kernel.find(" ("));
}

std::string thousands(int64_t v) {
  std::string s = std::to_string(v);
  for (int k = int(s.size()) - 3; k > 0; k -= 3) s.insert(size_t(k), ",");
  return s;
}

// The second level of a routing column reduction (routing_device::chunk_column_sums, launched as
// device::column_sum_launch(E)): E columns of the 1024 chunk partials, a thread per (32-chunk group, column).
std::string column_sum_reason(const std::string& what, int64_t E, const std::string& why) {
  return "second level of the " + what + " reduction: " + thousands(E) + " columns of " +
         std::to_string(kDeviceRowChunks) + " chunk partials, " + thousands(E * kDeviceRowChunks) +
         " additions, " + std::to_string(kDeviceRowChunks / device::kColumnSumGroups) + " per thread; " + why;
}
const std::string kThirdLevel = "a third level would cost a launch to save less than one";

// Routing (routing/{mixer,two_phase,accumulate}/device.hpp) in one 12-layer step of Spec at dims d, as
// Model::forward and Model::backward schedule it (Block/WAV: the two-phase mixer). Per step: Full mixes
// L + 1 consumers (the L sublayers and the output) and writes 1/ρ of x0 and of each update; Block/WAV run
// phase 1 and the queries q̂ once per block of S sublayers (and q̂ again in backward), merge and accumulate
// per sublayer, mix the output in one phase, and in backward differentiate each running partial (S − 1 per
// block), each block's completed sources (at its first sublayer) and each block's last update.
template <class Spec>
std::vector<LaunchRow> routing_launches(const Dims& d) {
  constexpr int L = Spec::L, S = Spec::S, NB = Spec::N;
  constexpr bool wav = Spec::variant == Variant::wav_v1;
  const int64_t N = d.rows(), D = d.D, C = kDeviceRowChunks;
  if constexpr (Spec::variant == Variant::full_attnres) {
    return {
        {"source_rinv[device]", L + 1, device::source_rinv_launch(N, D), ""},
        {"mixer_forward[device]", L + 1, device::mixer_forward_launch(N, D), ""},
        {"mixer_backward[device]", L + 1, device::mixer_backward_launch<float>(N, D, C), ""},
        {"mixer_backward_params[device]", L + 1, device::column_sum_launch(D),
         column_sum_reason("query/key-gain", D, kThirdLevel)},
    };
  } else {
    static_assert(is_blocked(Spec::variant));
    std::vector<LaunchRow> rows = {
        {"source_rinv[device] (b0; the partials' 1/ρ comes from the accumulation)", 1,
         device::source_rinv_launch(N, D), ""},
        {"mixer_block_queries", 2 * NB, device::mixer_block_queries_launch(S, D),
         "q̂ = w ⊙ g of a block's S = " + std::to_string(S) + " consumers: S·D = " +
             thousands(int64_t(S) * D) + " products, once per block in forward and in backward"},
        {"mixer_block_phase1[device]", NB, device::mixer_block_phase1_launch(N, S, D), ""},
        {"mixer_block_merge[device]", L, device::mixer_block_merge_launch(N, D), ""},
        {"block_accumulate_forward[device]", L, device::block_accumulate_forward_launch(N, D), ""},
        {"mixer_forward[device] (the output)", 1, device::mixer_forward_launch(N, D), ""},
        {"mixer_backward[device] (the output)", 1, device::mixer_backward_launch<float>(N, D, C), ""},
        {"mixer_backward_params[device] (the output, then each running partial)", 1 + (L - NB),
         device::column_sum_launch(D), column_sum_reason("query/key-gain", D, kThirdLevel)},
        {"block_last_update_backward[device]", NB, device::block_last_update_backward_launch(N, D), ""},
        {"mixer_block_partial_backward[device]", L - NB,
         device::mixer_block_partial_backward_launch<float>(N, D, C), ""},
        {"mixer_block_backward_params[device]", NB, device::column_sum_launch(int64_t(S) * D),
         column_sum_reason("block's query/key-gain", int64_t(S) * D, kThirdLevel)},
    };
    // the completed sources' backward: a thread per consumer, then per completed source, so the team grows
    // with the block's nc
    const SourceList src = make_source_list<Spec>();
    for (int n = 1; n <= NB; ++n) {
      const int nc = src.count((n - 1) * S);
      rows.push_back(
          {"mixer_block_backward[device] (block " + std::to_string(n) + ", nc = " + std::to_string(nc) + ")",
           1, device::mixer_block_backward_launch(C, S, nc, D), ""});
    }
    if constexpr (wav) {
      rows.push_back({"wav_details_forward[device]", NB, device::wav_details_forward_launch(N, D), ""});
      rows.push_back(
          {"mixer_backward_beta[device] (the output)", 1, device::column_sum_launch(2),
           column_sum_reason("detail-bias", 2,
                             "only 2 outputs (phase, split): one team, 64 of its threads with work")});
      rows.push_back(
          {"mixer_block_backward_beta[device]", NB, device::column_sum_launch(2 * S),
           column_sum_reason(
               "block's detail-bias", 2 * S,
               "only 2S = " + std::to_string(2 * S) + " outputs (phase, split per consumer): one team, " +
                   std::to_string(2 * S * device::kColumnSumGroups) + " of its threads with work")});
    }
    return rows;
  }
}
// Launched only by the one-phase block mixer (Model::set_two_phase(false)), not by the default step: the
// suffix sum of a block's slot gradients, L per step there.
std::vector<LaunchRow> one_phase_routing_launches(const Dims& d) {
  constexpr int L = 24;
  return {
      {"block_accumulate_backward[device]", L, device::block_accumulate_backward_launch(d.rows(), d.D), ""}};
}

void check_launches(const std::string& group, const std::vector<LaunchRow>& rows) {
  for (const auto& r : rows) {
    const LaunchShape& s = r.shape;
    BOOST_TEST_MESSAGE(group << ": " << r.kernel << " × " << r.per_step << " per step: league " << s.league
                             << " × team " << s.team << " × vector " << s.vector << " = " << s.threads()
                             << " threads"
                             << (r.below_because.empty() ? "" : " (exception: " + r.below_because + ")"));
    // a valid CUDA launch: team·vector ≤ 1024, vector a power of two ≤ 32, league within a grid dimension
    BOOST_TEST(s.league >= 1, r.kernel);
    BOOST_TEST(s.league <= 2147483647LL, r.kernel);
    BOOST_TEST(s.team * s.vector <= 1024, r.kernel);
    BOOST_TEST((s.vector >= 1 && s.vector <= 32 && (s.vector & (s.vector - 1)) == 0), r.kernel);
    if (r.below_because.empty())
      BOOST_TEST(s.threads() >= kMinThreads,
                 r.kernel << " exposes " << s.threads() << " threads, below " << kMinThreads);
    else  // an exception that no longer applies must be removed from the list
      BOOST_TEST(s.threads() < kMinThreads,
                 r.kernel << " is listed as an exception but reaches " << s.threads() << " threads");
  }
}

bool is_routing_label(const std::string& k) {
  for (const char* p : {"mixer", "source_rinv", "block_", "wav_details"})
    if (k.rfind(p, 0) == 0) return true;
  return false;
}

std::map<std::string, int>& recorded_launches() {
  static std::map<std::string, int> m;
  return m;
}

// The routing launches of one 12-layer step of Spec (a small shape: the schedule does not depend on it), by
// label, recorded with a Kokkos Tools callback; empty where the default space runs the host bodies.
template <class Spec, class Exec = Kokkos::DefaultExecutionSpace>
std::map<std::string, int> step_routing_launches() {
  std::map<std::string, int> out;
  if constexpr (use_device_body_v<Exec>) {
    Dims d;
    d.B = 2, d.T = 8, d.D = 32, d.H = 2, d.F = 48, d.V = 27;
    Model<Spec, float, Exec> model(d);
    model.init_params(7, 0.02);
    View2<int32_t, Exec> tokens("tokens", d.B, d.T + 1);  // token 0 everywhere: a valid batch
    namespace KT = Kokkos::Tools::Experimental;
    const auto saved = KT::get_callbacks();
    recorded_launches().clear();
    Kokkos::fence();
    KT::set_begin_parallel_for_callback(
        [](const char* name, uint32_t, uint64_t*) { ++recorded_launches()[name]; });
    model.loss_and_grad(tokens);
    Kokkos::fence();
    KT::set_callbacks(saved);
    for (const auto& [k, n] : recorded_launches())
      if (is_routing_label(k)) out[k] = n;
  }
  return out;
}

// Every routing launch of a real step is in routing_launches<Spec>, as many times as listed.
template <class Spec>
void check_census(const Dims& d) {
  const auto step = step_routing_launches<Spec>();
  if (step.empty()) {
    BOOST_TEST_MESSAGE(Spec::name() << ": the default space runs the host bodies; launch census skipped");
    return;
  }
  std::map<std::string, int> listed;
  for (const auto& r : routing_launches<Spec>(d)) listed[label_of(r)] += r.per_step;
  for (const auto& [k, n] : step)
    BOOST_TEST(listed[k] == n, Spec::name() << ": a step launches " << k << " " << n
                                            << " times, the list says " << listed[k]);
  for (const auto& [k, n] : listed)
    BOOST_TEST(step.count(k) == 1u, Spec::name() << ": " << k << " is listed but a step never launches it");
  int total = 0;
  for (const auto& [k, n] : step) total += n;
  BOOST_TEST_MESSAGE(Spec::name() << ": a step launches " << step.size() << " routing kernels, " << total
                                  << " launches; the list counts the same");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(parallelism)

BOOST_AUTO_TEST_CASE(row_ops_and_reductions) {
  const Dims d = bench_dims();
  const auto rows = row_op_launches(d);
  BOOST_TEST(rows.size() == 12u);
  check_launches("ops", rows);
  // the figures the launch shapes were designed for (a change of shape must be a decision, not an accident)
  BOOST_TEST(device::rmsnorm_forward_launch(d.rows()).threads() == 131072);
  BOOST_TEST(device::rmsnorm_backward_launch().threads() == 262144);
  BOOST_TEST(device::embedding_token_chunks(d.V, d.D) == 38);  // ceil(2^18 / (27·256)): 1 MiB of partials
  BOOST_TEST(device::embedding_tok_launch(d.V, d.D).threads() == 38 * 27 * 256);
  // the token partial stays ~2^18 values at any vocabulary (V ≤ 256), unlike [1024, V, D]
  for (const int V : {2, 27, 100, 256})
    BOOST_TEST(device::embedding_token_chunks(V, d.D) * V * d.D <= 2 * device::kEmbeddingPartialTarget);
}

BOOST_AUTO_TEST_CASE(attention) {
  const auto rows = attention_launches(bench_dims());
  BOOST_TEST(rows.size() == 4u);  // forward, Δ, dK/dV, dQ
  check_launches("attention", rows);
}

// Routing kernels of the three routed variants.
using FullL12 = ModelSpec<Variant::full_attnres, 12>;
using BlockL12 = ModelSpec<Variant::block_attnres, 12>;
using WavL12 = ModelSpec<Variant::wav_v1, 12>;
static_assert(BlockL12::S == 4 && WavL12::S == 4, "bench_{block,wav}_l12's block size");

BOOST_AUTO_TEST_CASE(routing_full_attnres) {
  check_launches(FullL12::name(), routing_launches<FullL12>(bench_dims()));
}
BOOST_AUTO_TEST_CASE(routing_block_attnres) {
  check_launches(BlockL12::name(), routing_launches<BlockL12>(bench_dims()));
}
BOOST_AUTO_TEST_CASE(routing_wav_v1) {
  check_launches(WavL12::name(), routing_launches<WavL12>(bench_dims()));
}
BOOST_AUTO_TEST_CASE(routing_one_phase_only) {
  check_launches("one-phase block mixer", one_phase_routing_launches(bench_dims()));
}

// The lists above against the routing launches of a real 12-layer step of each variant.
BOOST_AUTO_TEST_CASE(routing_launch_census) {
  check_census<FullL12>(bench_dims());
  check_census<BlockL12>(bench_dims());
  check_census<WavL12>(bench_dims());
}

BOOST_AUTO_TEST_CASE(routing_shapes) {
  // the figures the routing shapes were designed for (a change of shape must be a decision, not an accident)
  const Dims d = bench_dims();
  const int64_t N = d.rows();
  BOOST_TEST(device::mixer_forward_launch(N, d.D).threads() == 131072);  // 1024 teams of 4 rows × 32 lanes
  BOOST_TEST(device::mixer_backward_launch<float>(N, d.D, kDeviceRowChunks).team == 4);  // 4 rows per chunk
  BOOST_TEST(device::mixer_block_phase1_launch(N, 4, d.D).threads() == 524288);  // (row, consumer) pairs
  // narrow rows get fewer lanes and more rows per team; a team never exceeds 256 threads × lanes
  BOOST_TEST(device::mixer_forward_launch(N, 8).vector == 8);
  BOOST_TEST(device::mixer_forward_launch(N, 8).team == 16);
  BOOST_TEST(device::mixer_block_backward_launch(kDeviceRowChunks, 4, 40, d.D).team == 8);
}

BOOST_AUTO_TEST_SUITE_END()
