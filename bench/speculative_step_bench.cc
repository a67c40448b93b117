// Cost of the pieces of one MTP speculative decoding step against one plain decode step, on a
// checkpoint with an MTP module: forward of one token, Model::decode of the verify pair [token, draft],
// and Model::mtp_decode of one and two rows. Prints one JSON line per case (median microseconds over
// --runs calls, cases interleaved, each on a fresh copy of a prefilled cache so the context stays the same) and the
// step-cost ratio speculative / plain; speculation pays off when tokens per verify step exceed it.
//
//   build/speculative_step_bench --model DIR [--threads 2] [--context 64] [--runs 200]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/context.h"
#include "model/transformer.h"

namespace {

using namespace holdfast;
using Clock = std::chrono::steady_clock;

// Runs the cases round-robin (so load changes hit them alike); returns the median microseconds of each.
std::vector<double> median_us(int runs, const std::function<void()>& setup,
                              const std::vector<std::function<void()>>& cases) {
  std::vector<std::vector<double>> t(cases.size());
  for (int i = 0; i < runs; ++i)
    for (size_t c = 0; c < cases.size(); ++c) {
      setup();
      const auto t0 = Clock::now();
      cases[c]();
      t[c].push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  std::vector<double> med;
  for (auto& v : t) {
    std::sort(v.begin(), v.end());
    med.push_back(v[v.size() / 2]);
  }
  return med;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  int threads = 2, runs = 200;
  int64_t context = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--model") dir = argv[i + 1];
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--context") context = std::atoll(argv[i + 1]);
    else if (a == "--runs") runs = std::atoi(argv[i + 1]);
  }
  if (dir.empty()) {
    fmt::print(stderr, "usage: speculative_step_bench --model DIR [--threads 2] [--context 64] [--runs 200]\n");
    return 2;
  }
  auto m = model::Model::load(dir);
  const auto& cfg = m->config();
  if (cfg.num_nextn_predict_layers < 1) {
    fmt::print(stderr, "{}: no MTP module\n", dir);
    return 1;
  }
  Context ctx(threads);
  const int64_t V = cfg.vocab_size, H = cfg.hidden_size;
  std::vector<int32_t> prompt(context);
  for (int64_t i = 0; i < context; ++i) prompt[i] = int32_t((i * 97 + 13) % V);
  model::KVCache base = m->new_cache();
  std::vector<float> hidden(context * H), logits(2 * V), h2(2 * H);
  m->forward(ctx, prompt, base, model::MlaForm::kNaive, logits.data(), false, hidden.data());
  m->mtp_forward(ctx, 1, prompt, hidden.data(), base, model::MlaForm::kNaive, nullptr);
  std::copy(hidden.end() - 2 * H, hidden.end(), h2.begin());
  model::KVCache c = base;
  auto reset = [&] { c = base; };
  const int32_t one[1] = {7}, two[2] = {7, 9};
  model::KVCache* const self[2] = {&c, &c};
  const int64_t head0[1] = {0}, head1[1] = {1};

  const std::vector<double> us = median_us(runs, reset, {
      [&] { m->forward(ctx, one, c, model::MlaForm::kAbsorb, logits.data(), false); },
      [&] { m->decode(ctx, one, std::span(self, 1), logits.data()); },
      [&] { m->decode(ctx, two, self, logits.data(), h2.data()); },
      [&] { m->mtp_decode(ctx, 1, one, h2.data(), std::span(self, 1), head0, logits.data()); },
      [&] { m->mtp_decode(ctx, 1, two, h2.data(), self, head1, logits.data()); }});
  const double fwd = us[0], dec1 = us[1], dec2 = us[2], mtp1 = us[3], mtp2 = us[4];
  auto line = [&](const char* c, double us) {
    fmt::print("{{\"bench\":\"speculative_step\",\"case\":\"{}\",\"context\":{},\"threads\":{},\"median_us\":{:.1f}}}\n",
               c, context, threads, us);
  };
  line("forward_1_token", fwd);
  line("decode_1_row", dec1);
  line("decode_verify_2_rows", dec2);
  line("mtp_decode_1_row", mtp1);
  line("mtp_decode_2_rows", mtp2);
  fmt::print("{{\"bench\":\"speculative_step\",\"case\":\"ratio\",\"kept_step_over_plain\":{:.3f},"
             "\"rejected_step_over_plain\":{:.3f}}}\n",
             (dec2 + mtp2) / fwd, (dec2 + mtp1) / fwd);
  return 0;
}
