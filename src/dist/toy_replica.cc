#include "dist/toy_replica.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "dist/checksum.h"

namespace holdfast::dist {

ToyReplica::ToyReplica(const ToyOptions& o) : o_(o), x_(size_t(o.n)) {
  if (o.n < 1 || o.slots < 1) throw InputError(fmt::format("toy job: n {} and slots {} must be >= 1", o.n, o.slots));
  for (int64_t i = 0; i < o.n; ++i) {
    const uint64_t key[2] = {o.seed, uint64_t(i)};
    x_[size_t(i)] = float(double(xxh64(key, sizeof(key)) >> 11) / double(1ULL << 53) * 2.0 - 1.0);
  }
}

size_t ToyReplica::state_size() const { return sizeof(int64_t) + x_.size() * sizeof(float); }

uint64_t ToyReplica::state_tag() const {
  const uint64_t key[4] = {uint64_t(o_.n), uint64_t(o_.slots), o_.seed, 0x746f79};
  return xxh64(key, sizeof(key));
}

void ToyReplica::save_state(std::span<std::byte> out, const std::function<void(size_t)>&) const {
  HOLDFAST_CHECK(out.size() == state_size(), "toy state: {} bytes, expected {}", out.size(), state_size());
  std::memcpy(out.data(), &step_, sizeof(step_));
  std::memcpy(out.data() + sizeof(step_), x_.data(), x_.size() * sizeof(float));
}

void ToyReplica::load_state(std::span<const std::byte> in) {
  if (in.size() != state_size())
    throw Error(fmt::format("toy state: {} bytes, expected {}", in.size(), state_size()));
  std::memcpy(&step_, in.data(), sizeof(step_));
  std::memcpy(x_.data(), in.data() + sizeof(step_), x_.size() * sizeof(float));
}

void ToyReplica::run_step(Group& g) {
  const size_t n = x_.size();
  std::vector<int> owner(size_t(o_.slots));
  std::vector<std::vector<float>> grads;
  std::vector<const float*> mine;
  for (int j = 0; j < o_.slots; ++j) {
    owner[size_t(j)] = j % g.world();
    if (owner[size_t(j)] != g.rank()) continue;
    std::vector<float> gj(n);
    const float a = 1.0f + float(j) / 4.0f, b = float(step_) / 100.0f, c = 1.0f + float(j) / 10.0f;
    for (size_t i = 0; i < n; ++i) gj[i] = std::sin(a * x_[i] + b) * c;
    if (o_.compute_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(o_.compute_ms));
    grads.push_back(std::move(gj));
  }
  for (const auto& gj : grads) mine.push_back(gj.data());
  work_ = int(grads.size());
  std::vector<float> sum(n);
  g.reduce_slots_sum(owner, mine, sum.data(), n);
  // Only now, after every collective of the step succeeded, is the state changed.
  const float scale = float(o_.lr) / float(o_.slots);
  for (size_t i = 0; i < n; ++i) x_[i] -= scale * sum[i];
  ++step_;
}

}  // namespace holdfast::dist
