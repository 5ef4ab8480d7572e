// One-line progress bar (see include/wavres/cli/progress.hpp).
#include "wavres/cli/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace wavres {
namespace {

constexpr int kBarWidth = 24;

std::string format_rate(double tok_per_s) {
  char buf[32];
  if (!std::isfinite(tok_per_s) || tok_per_s < 0) tok_per_s = 0;
  if (tok_per_s >= 1e9)
    std::snprintf(buf, sizeof buf, "%.1fG tok/s", tok_per_s / 1e9);
  else if (tok_per_s >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1fM tok/s", tok_per_s / 1e6);
  else if (tok_per_s >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fk tok/s", tok_per_s / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f tok/s", tok_per_s);
  return buf;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const long long s = std::llround(seconds);
  const long long h = s / 3600, m = (s / 60) % 60, sec = s % 60;
  char buf[48];
  if (h > 0)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", h, m, sec);
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", m, sec);
  return buf;
}

ProgressBar::ProgressBar(long total, FILE* out, int plain_every)
    : total_(total),
      out_(out ? out : stderr),
      plain_every_(plain_every > 0 ? plain_every : 1),
      tty_(::isatty(::fileno(out_)) == 1),
      start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(long done, double tokens_done, const std::string& extra) {
  ++updates_;
  const bool last = total_ > 0 && done >= total_;
  if (!tty_ && !last && updates_ % plain_every_ != 0) return;

  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string line = "step " + std::to_string(done) + "/" + std::to_string(total_) + " [";
  const double frac = total_ > 0 ? std::min(1.0, std::max(0.0, double(done) / double(total_))) : 0.0;
  const int filled = int(frac * kBarWidth);
  line += std::string(size_t(filled), '#') + std::string(size_t(kBarWidth - filled), '.') + "]";
  if (!extra.empty()) line += " " + extra;
  line += " | " + format_rate(elapsed > 0 ? tokens_done / elapsed : 0.0);
  const double eta =
      done > 0 && total_ > done ? elapsed / double(done) * double(total_ - done) : (last ? 0.0 : -1.0);
  line += " | ETA " + format_duration(eta);

  if (tty_) {
    std::fprintf(out_, "\r%s\033[K", line.c_str());
    drawn_ = true;
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

void ProgressBar::message(const std::string& line) {
  if (tty_ && drawn_) {
    std::fprintf(out_, "\r\033[K");  // the bar reappears on the next update
    drawn_ = false;
  }
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

void ProgressBar::finish() {
  if (tty_ && drawn_) std::fprintf(out_, "\n");
  drawn_ = false;
  std::fflush(out_);
}

}  // namespace wavres
