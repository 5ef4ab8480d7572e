// Learning-rate schedule (spec §6): linear warm-up, then cosine decay to a floor.
#pragma once
#include <cmath>
#include <cstdint>

namespace wavres {

struct LrSchedule {
  double peak = 1e-3;
  int64_t total_steps = 1000;
  int64_t warmup_steps = 50;  // default 5 % of total_steps
  double floor_frac = 0.1;    // decay to 10 % of peak

  // The one definition of the warm-up length used by training: floor(warmup_frac · total).
  static LrSchedule with_defaults(double peak, int64_t total, double warmup_frac = 0.05) {
    LrSchedule s;
    s.peak = peak;
    s.total_steps = total;
    s.warmup_steps = int64_t(warmup_frac * double(total) + 1e-9);
    return s;
  }
  // lr of step s (0-based): warm-up (s+1)/W·peak for s < W, then floor + (peak−floor)·½(1 + cos(π·p)),
  // p = (s−W)/(total−W) in [0, 1].
  double operator()(int64_t s) const {
    if (s < warmup_steps) return peak * double(s + 1) / double(warmup_steps);
    const double floor = peak * floor_frac;
    const int64_t span = total_steps - warmup_steps;
    const double p = span > 0 ? std::fmin(1.0, double(s - warmup_steps) / double(span)) : 1.0;
    return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * p));
  }
};

}  // namespace wavres
