// Deterministic RNG: splitmix64 seeding + xoshiro256** (Blackman & Vigna).
#include <cmath>
#include <stdexcept>

#include "wavres/data/corpus.hpp"

namespace wavres {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

}  // namespace

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& w : s) w = splitmix64(x);  // never all zero: splitmix64 is a bijection of distinct inputs
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double Rng::uniform() {
  return double(next() >> 11) * 0x1.0p-53;
}

int64_t Rng::below(int64_t n) {
  if (n <= 0) throw std::invalid_argument("Rng::below: n must be positive, got " + std::to_string(n));
  const uint64_t un = uint64_t(n);
  // Reject the lowest (2^64 mod n) values so that every residue is equally likely.
  const uint64_t threshold = (0 - un) % un;
  for (;;) {
    const uint64_t r = next();
    if (r >= threshold) return int64_t(r % un);
  }
}

double Rng::normal() {
  const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
}

}  // namespace wavres
