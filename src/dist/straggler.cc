#include "dist/straggler.h"

#include <algorithm>

namespace holdfast::dist {

StragglerDetector::StragglerDetector(int world, double factor, int consecutive)
    : world_(world), factor_(factor), consecutive_(consecutive), streak_(size_t(world), 0),
      reported_(size_t(world), false) {}

std::vector<StragglerReport> StragglerDetector::add(int rank, int64_t step, int64_t compute_ns) {
  std::vector<StragglerReport> out;
  if (rank < 0 || rank >= world_ || step <= last_judged_ || world_ < 2) return out;
  auto& row = pending_[step];
  if (row.empty()) row.assign(size_t(world_), -1);
  row[size_t(rank)] = compute_ns;
  // Judge complete steps in order.
  while (!pending_.empty()) {
    auto it = pending_.begin();
    if (std::count(it->second.begin(), it->second.end(), -1) > 0) break;
    const std::vector<int64_t> t = it->second;
    const int64_t s = it->first;
    pending_.erase(it);
    last_judged_ = s;
    for (int r = 0; r < world_; ++r) {
      if (t[size_t(r)] <= 0) continue;  // no work this step
      std::vector<int64_t> others;
      for (int q = 0; q < world_; ++q)
        if (q != r && t[size_t(q)] > 0) others.push_back(t[size_t(q)]);
      if (others.empty()) continue;
      std::nth_element(others.begin(), others.begin() + long(others.size() / 2), others.end());
      double median = double(others[others.size() / 2]);
      if (others.size() % 2 == 0) {
        const double lower = double(*std::max_element(others.begin(), others.begin() + long(others.size() / 2)));
        median = 0.5 * (median + lower);
      }
      const double mine = double(t[size_t(r)]);
      const bool slow = median > 0 ? mine > factor_ * median : false;
      streak_[size_t(r)] = slow ? streak_[size_t(r)] + 1 : 0;
      if (!slow) reported_[size_t(r)] = false;
      if (slow && streak_[size_t(r)] >= consecutive_ && !reported_[size_t(r)]) {
        reported_[size_t(r)] = true;
        out.push_back({r, s, mine / 1e6, median / 1e6, mine / median});
      }
    }
  }
  // A step that can never complete (a rank restarted past it) must not block the queue forever.
  while (pending_.size() > 64) pending_.erase(pending_.begin());
  return out;
}

}  // namespace holdfast::dist
