// Text generation from a checkpoint: the `sample` command of every experiment executable, and the short
// sample that `train --sample-every N` prints beside the validation loss. Decoding is incremental
// (model/decoder.hpp); width, depth, dataset and vocabulary come from the checkpoint.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <numeric>
#include <sstream>
#include "wavres/cli/options.hpp"
#include "wavres/data/corpus.hpp"
#include "wavres/io/checkpoint.hpp"
#include "wavres/model/decoder.hpp"

namespace wavres {

// How the next token is drawn from the logits z.
struct SamplingArgs {
  double temperature = 1.0;  // 0 = argmax
  int top_k = 0;             // 0 = the whole vocabulary
};

// temperature 0:  argmax_v z_v (the lowest id among ties)
// otherwise:      p_v ∝ exp((z_v − max z)/temperature) over the top_k largest z (ties at the k-th value
//                 kept), one uniform draw u from rng, the first v whose cumulative p exceeds u·Σp
// In double, over at most 256 ids: the host is the right place for it.
template <class HostLogits>
int32_t pick_token(const HostLogits& z, const SamplingArgs& a, Rng& rng) {
  const int V = int(z.extent(1));
  int best = 0;
  for (int v = 1; v < V; ++v)
    if (z(0, v) > z(0, best)) best = v;
  if (a.temperature <= 0) return best;
  double cut = -INFINITY;  // logits below the k-th largest are dropped
  if (a.top_k > 0 && a.top_k < V) {
    std::vector<double> s(static_cast<size_t>(V));
    for (int v = 0; v < V; ++v) s[size_t(v)] = double(z(0, v));
    std::nth_element(s.begin(), s.begin() + (a.top_k - 1), s.end(), std::greater<double>());
    cut = s[size_t(a.top_k - 1)];
  }
  std::vector<double> p(static_cast<size_t>(V));
  double sum = 0;
  for (int v = 0; v < V; ++v) {
    const double x = double(z(0, v));
    p[size_t(v)] = x >= cut ? std::exp((x - double(z(0, best))) / a.temperature) : 0.0;
    sum += p[size_t(v)];
  }
  const double u = rng.uniform() * sum;
  double acc = 0;
  for (int v = 0; v < V; ++v) {
    acc += p[size_t(v)];
    if (u < acc) return v;
  }
  return best;  // u within rounding of sum
}

// "0x21 '!'" for printable bytes, "0x0a" otherwise.
inline std::string describe_byte(uint8_t b) {
  char buf[16];
  if (b >= 0x20 && b < 0x7f)
    std::snprintf(buf, sizeof buf, "0x%02x '%c'", b, b);
  else
    std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

// Token ids of a prompt; a byte outside the vocabulary is a UsageError naming it and its (0-based) byte
// position.
inline std::vector<int32_t> encode_prompt(const Vocab& v, const std::string& text) {
  if (text.empty()) throw UsageError("the prompt is empty");
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const uint8_t b = uint8_t(text[i]);
    if (v.id_of[b] < 0)
      throw UsageError("prompt byte " + describe_byte(b) + " at position " + std::to_string(i) +
                       " is not in the checkpoint's vocabulary of " + std::to_string(v.size()) + " bytes");
    ids.push_back(v.id_of[b]);
  }
  return ids;
}

// Generates n tokens after the prompt; on_token(id, decoder) sees each one as soon as it is drawn (its
// routing is the decoder's routing(): the mixer weights of the position that predicted it).
template <class Dec>
std::vector<int32_t> generate(Dec& dec, const std::vector<int32_t>& prompt, int64_t n, const SamplingArgs& a,
                              Rng& rng, const std::function<void(int32_t, const Dec&)>& on_token = {}) {
  std::vector<int32_t> out;
  out.reserve(size_t(n));
  const auto* z = &dec.start(prompt);
  for (int64_t k = 0; k < n; ++k) {
    const int32_t t = pick_token(*z, a, rng);
    out.push_back(t);
    if (on_token) on_token(t, dec);
    if (k + 1 < n) z = &dec.feed(t);
  }
  return out;
}

// The one-line sample `train --sample-every` prints: 64 tokens at temperature 0.8 after a space (or the
// vocabulary's first byte), control bytes shown as spaces.
template <class Dec, class Params>
std::string training_sample(Dec& dec, const Params& params, const Vocab& vocab, uint64_t seed) {
  Kokkos::deep_copy(dec.params(), params);
  Rng rng(seed);
  const int32_t first = vocab.id_of[uint8_t(' ')] >= 0 ? vocab.id_of[uint8_t(' ')] : 0;
  std::string s;
  for (int32_t t : generate(dec, {first}, 64, {0.8, 0}, rng)) {
    const uint8_t b = vocab.bytes[size_t(t)];
    s += b < 0x20 || b == 0x7f ? ' ' : char(b);
  }
  return s;
}

// The model described by a checkpoint's /config, checked against this executable's Spec and dataset.
template <class Spec>
Dims dims_from_checkpoint(const H5File& f, const std::string& dataset) {
  if (!f.has_attr("/config", "format")) throw IoError(f.path() + ": not a wavres file (no /config format)");
  Dims d;
  d.B = 1;
  d.D = int(f.attr_int("/config", "d_model"));
  d.H = int(f.attr_int("/config", "n_head"));
  d.F = int(f.attr_int("/config", "d_ff"));
  d.T = int(f.attr_int("/config", "seq_len"));
  d.V = int(f.attr_int("/config", "vocab_size"));
  check_config<Spec>(f, d, DimsGiven{}, dataset);  // variant, depth, block size, dataset; no width given
  try {
    d.validate();
  } catch (const std::invalid_argument& e) {
    throw IoError(f.path() + ": /config describes no valid model (" + e.what() + ")");
  }
  return d;
}

// exp_… sample --checkpoint CKPT [--prompt TEXT | --prompt-file F] [--tokens N] [--temperature T]
//               [--top-k K] [--seed S] [--routing-out F.h5] [--keep K] [--no-cache]
// Streams the prompt and the generated bytes to stdout; a summary line to stderr unless --quiet.
template <class Spec, class Exec>
int sample_command(const Options& o, const std::string& name, const std::string& dataset) {
  namespace chr = std::chrono;
  H5File f(o.checkpoint, H5File::Mode::read);
  const Dims d = dims_from_checkpoint<Spec>(f, dataset);
  const Vocab vocab = read_vocab(f);
  if (vocab.size() != d.V)
    throw IoError(f.path() + ": /vocab has " + std::to_string(vocab.size()) +
                  " bytes, /config vocab_size is " + std::to_string(d.V));
  std::string text = o.prompt;
  if (!o.prompt_file.empty()) {
    std::ifstream in(o.prompt_file, std::ios::binary);
    if (!in) throw IoError(o.prompt_file + ": cannot be read");
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (text.empty()) throw IoError(o.prompt_file + ": file is empty");
  }
  if (text.empty()) text = std::string(1, char(vocab.id_of[uint8_t(' ')] >= 0 ? ' ' : vocab.bytes[0]));
  const std::vector<int32_t> prompt = encode_prompt(vocab, text);

  Decoder<Spec, float, Exec> dec(d);
  read_flat(f, "/params/", dec.table(), dec.params());
  if (o.keep > 0) {
    if (o.keep > d.T - 1)
      throw UsageError("--keep " + std::to_string(o.keep) + " must be below the checkpoint's seq_len " +
                       std::to_string(d.T));
    dec.set_keep(o.keep);
  }
  dec.set_no_cache(o.no_cache);

  std::vector<float> routing;  // [tokens][L+1][n_max]
  const bool want_routing = !o.routing_out.empty();
  if (want_routing && !Spec::routed)
    throw UsageError("--routing-out: " + std::string(variant_name(Spec::variant)) +
                     " has no routing weights");
  if (want_routing) {  // fail now, not after the generation
    const std::string probe = o.routing_out + ".tmp";
    if (!std::ofstream(probe)) throw IoError(o.routing_out + ": cannot be written");
    std::remove(probe.c_str());
  }
  std::cout.write(text.data(), std::streamsize(text.size()));
  std::cout.flush();
  Rng rng(o.seed);
  const auto t0 = chr::steady_clock::now();
  const auto out =
      generate<Decoder<Spec, float, Exec>>(dec, prompt, o.sample_tokens, {o.temperature, o.top_k}, rng,
                                           [&](int32_t t, const Decoder<Spec, float, Exec>& dd) {
                                             std::cout.put(char(vocab.bytes[size_t(t)]));
                                             std::cout.flush();
                                             if (want_routing) {
                                               const auto r = dd.routing();
                                               routing.insert(routing.end(), r.begin(), r.end());
                                             }
                                           });
  const double secs = chr::duration<double>(chr::steady_clock::now() - t0).count();
  std::cout << "\n";
  std::cout.flush();
  if (!o.quiet)
    std::cerr << name << ": " << out.size() << " tokens in " << std::fixed << std::setprecision(3) << secs
              << " s: " << std::setprecision(1) << double(out.size()) / secs << " tokens/s (batch 1, "
              << (o.no_cache ? "no cache" : "KV cache") << ", " << dec.slides() << " window slides)\n";

  if (want_routing) {
    const int64_t rows = Spec::L + 1, cols = rows ? int64_t(dec.routing().size()) / rows : 0,
                  n = int64_t(out.size());
    std::vector<float> mean(size_t(rows * cols), 0.0f);
    for (int64_t k = 0; k < n; ++k)
      for (int64_t e = 0; e < rows * cols; ++e)
        mean[size_t(e)] += routing[size_t(k * rows * cols + e)] / float(n);
    std::vector<uint8_t> gen_bytes, prompt_bytes(text.begin(), text.end());
    for (int32_t t : out) gen_bytes.push_back(vocab.bytes[size_t(t)]);
    write_atomically(o.routing_out, [&](H5File& g) {
      write_config<Spec>(g, "wavres-generation", d, dataset, backend_name<Exec>(),
                         f.attr_int("/config", "step"));
      g.set_attr("/generation", "checkpoint", o.checkpoint);
      g.set_attr("/generation", "temperature", o.temperature);
      g.set_attr("/generation", "top_k", int64_t(o.top_k));
      g.set_attr("/generation", "seed", int64_t(o.seed));
      g.write("/generation/prompt", prompt_bytes.data(), {int64_t(prompt_bytes.size())});
      g.write("/generation/text", gen_bytes.data(), {n});
      g.write("/routing/alpha", routing.data(), {n, rows, cols});
      write_routing<Spec>(g, mean, dec.source_labels());
    });
  }
  return 0;
}

}  // namespace wavres
