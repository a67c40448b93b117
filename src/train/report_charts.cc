// Chart assembly for the training report: which series, axes, colours and markers each chart has.
#include "train/report_charts.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "train/report_faults.h"

namespace holdfast::train {

namespace {

constexpr std::array<const char*, 10> kPalette = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr size_t kMaxMarkers = 400;

std::string event_color(const std::string& e) {
  if (e == "nan_skip" || e == "spike_skip") return "#e6550d";
  if (e == "nan_rollback" || e == "spike_rollback") return "#d62728";
  if (e == "fault") return "#7f0000";
  if (e == "resume") return "#6a3d9a";
  if (e == "checkpoint") return "#969696";
  return "#525252";  // start, done, anything new
}

// Events as markers: checkpoints become faint ticks, the rest labelled lines (labels optional).
std::vector<svg::Marker> event_markers(const RunMetrics& m, bool labels) {
  std::vector<svg::Marker> out;
  size_t begin = m.events.size() > kMaxMarkers ? m.events.size() - kMaxMarkers : 0;
  for (size_t i = begin; i < m.events.size(); ++i) {
    const auto& e = m.events[i];
    svg::Marker mk{.x = double(e.step),
                   .label = labels ? e.event : "",
                   .tooltip = fmt::format("step {}: {}{}{}", e.step, e.event, e.detail.empty() ? "" : " - ", e.detail),
                   .color = event_color(e.event),
                   .faint = e.event == "checkpoint"};
    out.push_back(std::move(mk));
  }
  return out;
}

// Faults of events.jsonl as markers with their kind and rank: labelled on the loss chart, plain lines
// on the others; the tooltip says how the fault was detected and recovered.
std::vector<svg::Marker> fault_markers(const RunMetrics& m, bool labels) {
  std::vector<svg::Marker> out;
  size_t begin = m.faults.size() > kMaxMarkers ? m.faults.size() - kMaxMarkers : 0;
  for (size_t i = begin; i < m.faults.size(); ++i) {
    const FaultMark& f = m.faults[i];
    out.push_back({.x = double(f.step),
                   .label = labels ? fault_label(f) : "",
                   .tooltip = describe_fault(f),
                   .color = f.event == "straggler" ? "#a35200" : f.event == "chaos" ? "#6a3d9a" : "#b30000",
                   .css_class = "fault"});
  }
  return out;
}

std::vector<double> step_x(const RunMetrics& m) {
  std::vector<double> x;
  x.reserve(m.steps.size());
  for (const auto& s : m.steps) x.push_back(double(s.step));
  return x;
}

template <typename F>
std::vector<double> column(const RunMetrics& m, F f) {
  std::vector<double> y;
  y.reserve(m.steps.size());
  for (const auto& s : m.steps) y.push_back(f(s));
  return y;
}

// Trailing mean over the last `window` finite values (NaN until the first finite one).
std::vector<double> trailing_mean(const std::vector<double>& y, size_t window) {
  std::vector<double> out(y.size(), kMissing);
  std::vector<double> ring;
  double sum = 0;
  size_t head = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (std::isfinite(y[i])) {
      if (ring.size() < window) {
        ring.push_back(y[i]);
      } else {
        sum -= ring[head];
        ring[head] = y[i];
        head = (head + 1) % window;
      }
      sum += y[i];
    }
    if (!ring.empty()) out[i] = sum / double(ring.size());
  }
  return out;
}

bool differs(const std::vector<double>& a, const std::vector<double>& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (std::isfinite(a[i]) && std::isfinite(b[i]) && std::fabs(a[i] - b[i]) > 1e-9 * (1 + std::fabs(a[i])))
      return true;
  return false;
}

std::string layer_label(int layer) { return fmt::format("layer {}", layer); }

}  // namespace

double median_of(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return kMissing;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(mid), v.end());
  const double hi = v[mid];
  if (v.size() % 2) return hi;
  return (*std::max_element(v.begin(), v.begin() + std::ptrdiff_t(mid)) + hi) / 2;
}

svg::Svg loss_chart(const RunMetrics& m) {
  svg::LineChart c{.title = "Training loss",
                   .height = 380,
                   .y_left = {.label = "loss (nats)", .scale = svg::Axis::Scale::kAuto},
                   .empty_note = "no step lines with a finite loss yet"};
  const auto x = step_x(m);
  const auto loss = column(m, [](const StepRecord& s) { return s.loss; });
  const auto main = column(m, [](const StepRecord& s) { return s.main_loss; });
  const bool smooth = m.steps.size() >= 50;
  c.series.push_back({.name = "loss",
                      .color = smooth ? "#9ecae1" : "#1f77b4",
                      .x = x,
                      .y = loss,
                      .stroke_width = smooth ? 1.0 : 1.6});
  if (smooth) {
    const size_t w = std::max<size_t>(5, m.steps.size() / 50);
    c.series.push_back({.name = fmt::format("loss, mean of {}", w),
                        .color = "#08519c",
                        .x = x,
                        .y = trailing_mean(loss, w),
                        .stroke_width = 2.0});
  }
  if (differs(loss, main)) c.series.push_back({.name = "main loss", .color = "#2ca02c", .x = x, .y = main});
  size_t n_mtp = 0;
  for (const auto& s : m.steps) n_mtp = std::max(n_mtp, s.mtp_loss.size());
  for (size_t k = 0; k < n_mtp && k < 8; ++k)
    c.series.push_back({.name = fmt::format("mtp {} loss", k + 1),
                        .color = kPalette[(4 + k) % kPalette.size()],
                        .x = x,
                        .y = column(m, [k](const StepRecord& s) { return k < s.mtp_loss.size() ? s.mtp_loss[k] : kMissing; }),
                        .dashed = true,
                        .stroke_width = 1.2});
  if (!m.evals.empty()) {
    svg::Series val{.name = "val loss", .color = "#d62728", .dots = true, .stroke_width = 1.0};
    for (const auto& e : m.evals) val.x.push_back(double(e.step)), val.y.push_back(e.val_loss);
    c.series.push_back(std::move(val));
  }
  c.markers = event_markers(m, true);
  for (auto& mk : fault_markers(m, true)) c.markers.push_back(std::move(mk));
  return svg::render(c);
}

svg::Svg lr_grad_chart(const RunMetrics& m) {
  svg::LineChart c{.title = "Learning rate and gradient norm",
                   .height = 300,
                   .y_left = {.label = "learning rate", .include = 0.0},
                   .y_right = {.label = "grad norm (before clipping)", .scale = svg::Axis::Scale::kAuto},
                   .empty_note = "no learning-rate or gradient-norm values yet"};
  const auto x = step_x(m);
  c.series.push_back({.name = "lr", .color = "#2ca02c", .x = x, .y = column(m, [](const StepRecord& s) { return s.lr; }),
                      .stroke_width = 1.8});
  c.series.push_back({.name = "grad norm",
                      .color = "#ff7f0e",
                      .x = x,
                      .y = column(m, [](const StepRecord& s) { return s.grad_norm; }),
                      .axis = 1,
                      .stroke_width = 1.2});
  c.markers = event_markers(m, false);
  return svg::render(c);
}

svg::Svg throughput_chart(const RunMetrics& m) {
  svg::LineChart c{.title = "Throughput and memory",
                   .height = 300,
                   .y_left = {.label = "tokens / s", .include = 0.0},
                   .y_right = {.label = "peak RSS (MB)", .include = 0.0},
                   .empty_note = "no throughput values yet"};
  const auto x = step_x(m);
  const auto tps = column(m, [](const StepRecord& s) { return s.skipped ? kMissing : s.tokens_per_s; });
  c.series.push_back({.name = "tokens/s", .color = "#1f77b4", .x = x, .y = tps, .stroke_width = 1.4});
  const double med = median_of(tps);
  if (std::isfinite(med) && !x.empty())
    c.series.push_back({.name = fmt::format("median {}", svg::format_number(med)),
                        .color = "#08306b",
                        .x = {*std::min_element(x.begin(), x.end()), *std::max_element(x.begin(), x.end())},
                        .y = {med, med},
                        .dashed = true,
                        .stroke_width = 1.0});
  c.series.push_back({.name = "peak RSS",
                      .color = "#7f7f7f",
                      .x = x,
                      .y = column(m, [](const StepRecord& s) { return s.rss_mb; }),
                      .axis = 1,
                      .stroke_width = 1.4});
  c.markers = event_markers(m, false);
  return svg::render(c);
}

svg::Svg expert_load_chart(const RunMetrics& m) {
  if (m.last_load.empty()) {
    svg::LineChart none{.title = "Expert load",
                        .height = 120,
                        .empty_note = "no expert_load in metrics.jsonl (dense model, or not recorded yet)"};
    return svg::render(none);
  }
  std::vector<svg::Svg> parts;
  svg::Heatmap load{.title = fmt::format("Expert load at step {} (assignments / mean of the layer)", m.last_load_step),
                    .row_axis = "MoE layer",
                    .col_axis = "routed expert"};
  for (const auto& [layer, counts] : m.last_load) {
    double sum = 0;
    for (int64_t v : counts) sum += double(v);
    const double mean = sum / double(counts.size());
    std::vector<double> row;
    for (int64_t v : counts) row.push_back(mean > 0 ? double(v) / mean : kMissing);
    load.row_labels.push_back(layer_label(layer));
    load.values.push_back(std::move(row));
  }
  parts.push_back(svg::render(load));

  svg::LineChart bal{.title = "Load imbalance: max / mean expert load per layer",
                     .height = 320,
                     .y_left = {.label = "max / mean", .include = 1.0},
                     .empty_note = "no expert_load with assignments yet"};
  const bool name_layers = m.load_balance.size() <= 12;
  std::map<int64_t, std::pair<double, int>> per_step;  // step -> (sum over layers, count)
  size_t k = 0;
  for (const auto& [layer, s] : m.load_balance) {
    svg::Series line{.name = name_layers ? layer_label(layer) : "",
                     .color = kPalette[k++ % kPalette.size()],
                     .stroke_width = 1.0};
    for (size_t i = 0; i < s.steps.size(); ++i) {
      line.x.push_back(double(s.steps[i]));
      line.y.push_back(s.max_over_mean[i]);
      auto& [sum, n] = per_step[s.steps[i]];
      sum += s.max_over_mean[i], ++n;
    }
    bal.series.push_back(std::move(line));
  }
  svg::Series mean{.name = "mean over layers", .color = "#000000", .stroke_width = 2.2};
  for (const auto& [step, sn] : per_step) mean.x.push_back(double(step)), mean.y.push_back(sn.first / sn.second);
  bal.series.push_back(std::move(mean));
  bal.markers = event_markers(m, false);
  parts.push_back(svg::render(bal));

  if (!m.last_router_bias.empty()) {
    svg::Heatmap bias{.title = fmt::format("Router bias (e_score_correction_bias) at step {}", m.last_bias_step),
                      .row_axis = "MoE layer",
                      .col_axis = "routed expert",
                      .scale = svg::Heatmap::Scale::kSigned,
                      .value_format = "{:.3f}"};
    for (const auto& [layer, b] : m.last_router_bias) {
      bias.row_labels.push_back(layer_label(layer));
      bias.values.push_back(b);
    }
    parts.push_back(svg::render(bias));
  }
  return svg::stack(parts);
}

}  // namespace holdfast::train
