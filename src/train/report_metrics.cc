// metrics.jsonl reader: one nlohmann::json parse per line (exceptions off), a second try with bare
// NaN/Infinity tokens quoted (Python's json.dumps writes them), then a kind-specific extraction.
#include "train/report_metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"

namespace holdfast::train {

namespace {

using nlohmann::json;

// Quotes the bare tokens NaN, Infinity, -Infinity, nan, inf, -inf outside strings so the line parses;
// number() turns such strings back into non-finite values.
std::string quote_nonfinite(const std::string& line) {
  std::string out;
  out.reserve(line.size() + 16);
  bool in_string = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < line.size()) out += line[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      continue;
    }
    const bool neg = c == '-' && i + 1 < line.size() && std::isalpha(static_cast<unsigned char>(line[i + 1]));
    if (neg || std::isalpha(static_cast<unsigned char>(c))) {
      size_t j = i + (neg ? 1 : 0);
      while (j < line.size() && std::isalpha(static_cast<unsigned char>(line[j]))) ++j;
      const std::string word = line.substr(i, j - i);
      const std::string bare = neg ? word.substr(1) : word;
      if (bare == "NaN" || bare == "nan" || bare == "Infinity" || bare == "inf") out += '"' + word + '"';
      else out += word;
      i = j - 1;
      continue;
    }
    out += c;
  }
  return out;
}

// The value of a non-finite spelling ("NaN", "-Infinity", "inf", ...), or nullopt for any other text.
std::optional<double> nonfinite_spelling(const std::string& s) {
  if (s == "NaN" || s == "nan" || s == "-NaN" || s == "-nan") return std::numeric_limits<double>::quiet_NaN();
  if (s == "Infinity" || s == "inf" || s == "+Infinity" || s == "+inf") return std::numeric_limits<double>::infinity();
  if (s == "-Infinity" || s == "-inf") return -std::numeric_limits<double>::infinity();
  return std::nullopt;
}

// A numeric value: absent or wrong type -> kMissing; null / NaN / Inf (also as strings) are counted.
double number(const json& v, int64_t& nonfinite) {
  if (v.is_number()) {
    const double x = v.get<double>();
    if (!std::isfinite(x)) ++nonfinite;
    return x;
  }
  if (v.is_null()) {
    ++nonfinite;
    return kMissing;
  }
  if (v.is_string())
    if (const auto x = nonfinite_spelling(v.get_ref<const std::string&>())) {
      ++nonfinite;
      return *x;
    }
  return kMissing;
}

double field(const json& obj, const char* key, int64_t& nonfinite) {
  const auto it = obj.find(key);
  return it == obj.end() ? kMissing : number(*it, nonfinite);
}

// The required "step": a non-negative integer (an integral float is accepted).
bool step_of(const json& obj, int64_t& step) {
  const auto it = obj.find("step");
  if (it == obj.end()) return false;
  if (it->is_number_integer()) {
    step = it->get<int64_t>();
    return step >= 0;
  }
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (!std::isfinite(d) || d < 0 || d > 9e15 || d != std::floor(d)) return false;
    step = int64_t(d);
    return true;
  }
  return false;
}

bool layer_of(const std::string& key, int& layer) {
  const char* end = key.data() + key.size();
  const auto r = std::from_chars(key.data(), end, layer);
  return r.ec == std::errc() && r.ptr == end && layer >= 0;
}

void read_expert_load(const json& obj, int64_t step, RunMetrics& m) {
  const auto it = obj.find("expert_load");
  if (it == obj.end() || !it->is_object()) return;
  std::map<int, std::vector<int64_t>> load;
  for (const auto& [key, arr] : it->items()) {
    int layer = 0;
    if (!layer_of(key, layer) || !arr.is_array() || arr.empty()) continue;
    std::vector<int64_t> counts;
    counts.reserve(arr.size());
    for (const auto& v : arr) {
      if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0) {
        counts.clear();
        break;
      }
      counts.push_back(int64_t(v.get<double>()));
    }
    if (counts.empty()) continue;
    int64_t sum = 0, max = 0;
    for (int64_t c : counts) sum += c, max = std::max(max, c);
    if (sum > 0) {
      auto& series = m.load_balance[layer];
      series.steps.push_back(step);
      series.max_over_mean.push_back(double(max) * double(counts.size()) / double(sum));
    }
    load[layer] = std::move(counts);
  }
  if (!load.empty()) {
    m.last_load = std::move(load);
    m.last_load_step = step;
  }
}

void read_router_bias(const json& obj, int64_t step, RunMetrics& m) {
  const auto it = obj.find("router_bias");
  if (it == obj.end() || !it->is_object()) return;
  std::map<int, std::vector<double>> bias;
  for (const auto& [key, arr] : it->items()) {
    int layer = 0;
    if (!layer_of(key, layer) || !arr.is_array() || arr.empty()) continue;
    std::vector<double> b;
    b.reserve(arr.size());
    int64_t ignored = 0;
    for (const auto& v : arr) b.push_back(number(v, ignored));
    bias[layer] = std::move(b);
  }
  if (!bias.empty()) {
    m.last_router_bias = std::move(bias);
    m.last_bias_step = step;
  }
}

bool read_step(const json& o, int64_t step, RunMetrics& m) {
  StepRecord r;
  r.step = step;
  int64_t& nf = m.n_nonfinite;
  r.loss = field(o, "loss", nf);
  r.main_loss = field(o, "main_loss", nf);
  r.balance_loss = field(o, "balance_loss", nf);
  r.lr = field(o, "lr", nf);
  r.grad_norm = field(o, "grad_norm", nf);
  r.tokens = field(o, "tokens", nf);
  r.tokens_per_s = field(o, "tokens_per_s", nf);
  r.step_s = field(o, "step_s", nf);
  r.elapsed_s = field(o, "elapsed_s", nf);
  r.rss_mb = field(o, "rss_mb", nf);
  if (const auto it = o.find("mtp_loss"); it != o.end() && it->is_array())
    for (const auto& v : *it) r.mtp_loss.push_back(number(v, nf));
  if (const auto it = o.find("skipped"); it != o.end() && it->is_boolean()) r.skipped = it->get<bool>();
  read_expert_load(o, step, m);
  read_router_bias(o, step, m);
  m.steps.push_back(std::move(r));
  return true;
}

bool read_eval(const json& o, int64_t step, RunMetrics& m) {
  if (!o.contains("val_loss")) return false;
  EvalRecord r;
  r.step = step;
  r.val_loss = field(o, "val_loss", m.n_nonfinite);
  r.val_tokens = field(o, "val_tokens", m.n_nonfinite);
  m.evals.push_back(r);
  return true;
}

bool read_event(const json& o, int64_t step, RunMetrics& m) {
  const auto ev = o.find("event");
  if (ev == o.end() || !ev->is_string()) return false;
  EventRecord r;
  r.step = step;
  r.event = ev->get<std::string>();
  if (const auto d = o.find("detail"); d != o.end()) r.detail = d->is_string() ? d->get<std::string>() : d->dump();
  m.events.push_back(std::move(r));
  return true;
}

// One line; returns false when it has to be skipped as malformed.
bool read_line(const std::string& line, RunMetrics& m) {
  json o = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (o.is_discarded()) o = json::parse(quote_nonfinite(line), nullptr, false);
  if (o.is_discarded() || !o.is_object()) return false;
  const auto kind = o.find("kind");
  if (kind == o.end() || !kind->is_string()) return false;
  const std::string& k = kind->get_ref<const std::string&>();
  if (k != "step" && k != "eval" && k != "event") {
    ++m.n_unknown_kind;
    return true;
  }
  int64_t step = 0;
  if (!step_of(o, step)) return false;
  if (k == "step") return read_step(o, step, m);
  if (k == "eval") return read_eval(o, step, m);
  return read_event(o, step, m);
}

}  // namespace

RunMetrics parse_metrics(std::istream& in) {
  RunMetrics m;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (std::all_of(line.begin(), line.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }))
      continue;
    ++m.n_lines;
    if (!read_line(line, m)) {
      ++m.n_bad_lines;
      if (m.bad_line_numbers.size() < 20) m.bad_line_numbers.push_back(line_no);
    }
  }
  return m;
}

RunMetrics read_metrics(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open the metrics file: {}", path, std::strerror(errno)));
  return parse_metrics(in);
}

}  // namespace holdfast::train
