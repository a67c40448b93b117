// report.html: summary table, the charts of train/report_charts.h inline, the events list; and the
// standalone loss.svg / expert_load.svg. All text from the metrics file is escaped.
#include "train/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "train/report_charts.h"
#include "train/report_faults.h"

namespace holdfast::train {

namespace {

constexpr size_t kMaxEventRows = 300;

constexpr const char* kCss = R"(body{font-family:system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;
margin:24px auto;max-width:960px;padding:0 12px;color:#222;background:#fff}
h1{font-size:21px;margin:0 0 2px}h2{font-size:16px;margin:30px 0 8px;padding-bottom:4px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 12px 3px 0;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}th{color:#555;font-weight:600}.summary th{width:210px}
.muted{color:#777;font-size:12.5px}.bad{color:#b30000}.warn{color:#a35200}
svg{display:block;max-width:100%;height:auto;margin:6px 0}
tr.nan_skip td,tr.spike_skip td{color:#a35200}tr.nan_rollback td,tr.spike_rollback td,tr.fault td{color:#b30000}
)";

std::string esc(std::string_view s) { return svg::escape(s); }
bool finite(double v) { return std::isfinite(v); }
std::string plural(int64_t n, const char* one, const char* many) { return fmt::format("{} {}", n, n == 1 ? one : many); }
std::string num(double v, const char* f = "{:.4f}") { return finite(v) ? fmt::format(fmt::runtime(f), v) : "—"; }

// Latest step record with a finite value of f, or nullptr.
template <typename F>
const StepRecord* last_with(const RunMetrics& m, F f) {
  for (auto it = m.steps.rbegin(); it != m.steps.rend(); ++it)
    if (!it->skipped && finite(f(*it))) return &*it;
  return nullptr;
}

std::string summary_table(const RunMetrics& m) {
  std::vector<std::pair<std::string, std::string>> rows;
  int64_t last_step = -1, skipped = 0;
  double peak_rss = kMissing, best = kMissing;
  int64_t best_step = -1;
  std::vector<double> tps, step_s, recent, grad_norms;
  for (size_t i = 0; i < m.steps.size(); ++i) {
    const auto& s = m.steps[i];
    last_step = std::max(last_step, s.step);
    skipped += s.skipped;
    if (finite(s.rss_mb) && !(s.rss_mb <= peak_rss)) peak_rss = s.rss_mb;
    if (!s.skipped && finite(s.loss) && !(s.loss >= best)) best = s.loss, best_step = s.step;
    grad_norms.push_back(s.grad_norm);
    if (!s.skipped && i > 0) tps.push_back(s.tokens_per_s), step_s.push_back(s.step_s);  // step 1 warms up
  }
  if (m.steps.size() == 1) tps.push_back(m.steps[0].tokens_per_s), step_s.push_back(m.steps[0].step_s);
  for (auto it = m.steps.rbegin(); it != m.steps.rend() && recent.size() < 10; ++it)
    if (!it->skipped && finite(it->loss)) recent.push_back(it->loss);

  rows.emplace_back("Steps", m.steps.empty() ? "no step lines yet"
                                             : fmt::format("{} (last step), {}, {}", last_step,
                                                           plural(int64_t(m.steps.size()), "step line", "step lines"),
                                                           plural(skipped, "skipped update", "skipped updates")));
  if (const auto* s = last_with(m, [](const StepRecord& r) { return r.tokens; }))
    rows.emplace_back("Tokens", fmt::format("{} ({:.0f})", svg::format_number(s->tokens), s->tokens));
  if (const auto* s = last_with(m, [](const StepRecord& r) { return r.loss; })) {
    std::string extra;
    if (finite(s->main_loss) && std::fabs(s->main_loss - s->loss) > 1e-12) extra += " · main " + num(s->main_loss);
    for (size_t k = 0; k < s->mtp_loss.size(); ++k) extra += fmt::format(" · mtp {} {}", k + 1, num(s->mtp_loss[k]));
    if (finite(s->balance_loss) && s->balance_loss != 0) extra += " · balance " + num(s->balance_loss, "{:.3g}");
    rows.emplace_back("Final loss", fmt::format("{} at step {}{}", num(s->loss), s->step, extra));
    double sum = 0;
    for (double v : recent) sum += v;
    rows.emplace_back("Mean loss, last steps", fmt::format("{} over the last {}", num(sum / double(recent.size())),
                                                           recent.size()));
    rows.emplace_back("Best loss", fmt::format("{} at step {}", num(best), best_step));
  } else {
    rows.emplace_back("Final loss", "—");
  }
  const EvalRecord *last_val = nullptr, *best_val = nullptr;
  for (const auto& e : m.evals)
    if (finite(e.val_loss)) {
      last_val = &e;
      if (!best_val || e.val_loss < best_val->val_loss) best_val = &e;
    }
  rows.emplace_back("Validation loss", last_val ? fmt::format("{} at step {} · best {} at step {} · {} evals",
                                                              num(last_val->val_loss), last_val->step,
                                                              num(best_val->val_loss), best_val->step, m.evals.size())
                                                : "none recorded");
  if (const auto* s = last_with(m, [](const StepRecord& r) { return r.lr; }))
    rows.emplace_back("Learning rate", fmt::format("{} at step {}", svg::format_number(s->lr), s->step));
  if (const auto* s = last_with(m, [](const StepRecord& r) { return r.grad_norm; }))
    rows.emplace_back("Grad norm", fmt::format("{} at step {} · median {}", num(s->grad_norm, "{:.4g}"), s->step,
                                               num(median_of(grad_norms), "{:.4g}")));
  const double med_tps = median_of(tps), med_step = median_of(step_s);
  rows.emplace_back("Tokens/s (median)", finite(med_tps) ? fmt::format("{:.1f} · step time {} s (first step excluded)",
                                                                        med_tps, num(med_step, "{:.3f}"))
                                                          : "—");
  rows.emplace_back("Peak RSS", finite(peak_rss) ? fmt::format("{:.0f} MB", peak_rss) : "—");
  if (const auto* s = last_with(m, [](const StepRecord& r) { return r.elapsed_s; }))
    rows.emplace_back("Elapsed", fmt::format("{:.1f} s since the last start/resume", s->elapsed_s));
  std::map<std::string, int> counts;
  for (const auto& e : m.events) ++counts[e.event];
  std::string ev;
  for (const auto& [name, n] : counts) ev += fmt::format("{}{} ×{}", ev.empty() ? "" : ", ", esc(name), n);
  rows.emplace_back("Events", ev.empty() ? "none" : ev);
  if (!m.faults.empty()) {
    int64_t recovered = 0;
    for (const auto& f : m.faults) recovered += f.steps_lost >= 0;
    rows.emplace_back("Faults (events.jsonl)", fmt::format("{}, {} with a recorded recovery",
                                                           plural(int64_t(m.faults.size()), "fault", "faults"), recovered));
  }

  std::string lines = fmt::format("{} lines", m.n_lines);
  if (m.n_bad_lines) {
    std::string where;
    for (int64_t n : m.bad_line_numbers) where += fmt::format("{}{}", where.empty() ? "" : ", ", n);
    lines += fmt::format(" · <span class=\"bad\">{} skipped (line {}{})</span>",
                         plural(m.n_bad_lines, "malformed line", "malformed lines"), where,
                         m.n_bad_lines > int64_t(m.bad_line_numbers.size()) ? ", …" : "");
  }
  if (m.n_unknown_kind)
    lines += fmt::format(" · {} ignored", plural(m.n_unknown_kind, "line of unknown kind", "lines of unknown kind"));
  if (m.n_nonfinite) lines += fmt::format(" · <span class=\"warn\">{}</span>", plural(m.n_nonfinite, "NaN/Inf/null value", "NaN/Inf/null values"));
  rows.emplace_back("metrics.jsonl", lines);

  std::string o = "<table class=\"summary\">\n";
  for (const auto& [k, v] : rows) o += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", esc(k), v);
  return o + "</table>\n";
}

std::string events_table(const RunMetrics& m) {
  if (m.events.empty()) return "<p class=\"muted\">No events recorded.</p>\n";
  std::string o;
  size_t begin = 0;
  if (m.events.size() > kMaxEventRows) {
    begin = m.events.size() - kMaxEventRows;
    o += fmt::format("<p class=\"muted\">The last {} of {} events.</p>\n", kMaxEventRows, m.events.size());
  }
  o += "<table class=\"events\">\n<tr><th>step</th><th>event</th><th>detail</th></tr>\n";
  for (size_t i = begin; i < m.events.size(); ++i) {
    const auto& e = m.events[i];
    o += fmt::format("<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>\n", esc(e.event), e.step, esc(e.event),
                     esc(e.detail));
  }
  return o + "</table>\n";
}

std::string faults_table(const RunMetrics& m) {
  if (m.faults.empty()) return "";
  std::string o = fmt::format("<h2>Faults</h2>\n<p class=\"muted\">{} from events.jsonl (the supervisor's log); "
                              "marked on the loss chart.</p>\n",
                              plural(int64_t(m.faults.size()), "fault", "faults"));
  size_t begin = m.faults.size() > kMaxEventRows ? m.faults.size() - kMaxEventRows : 0;
  o += "<table class=\"faults\">\n<tr><th>step</th><th>fault</th><th>rank</th><th>detail</th></tr>\n";
  for (size_t i = begin; i < m.faults.size(); ++i) {
    const FaultMark& f = m.faults[i];
    o += fmt::format("<tr class=\"fault\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", f.step,
                     esc(f.kind.empty() ? f.event : f.kind), f.rank >= 0 ? std::to_string(f.rank) : "",
                     esc(describe_fault(f)));
  }
  return o + "</table>\n";
}

void write_atomically(const std::filesystem::path& path, const std::string& content) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(fmt::format("{}: cannot create: {}", tmp.string(), std::strerror(errno)));
    out.write(content.data(), std::streamsize(content.size()));
    out.close();
    if (!out) throw Error(fmt::format("{}: write failed: {}", tmp.string(), std::strerror(errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(fmt::format("{}: rename from {} failed: {}", path.string(), tmp.string(), std::strerror(errno)));
}

}  // namespace

ReportFiles render_report(const RunMetrics& m, const std::string& run_name) {
  const svg::Svg loss = loss_chart(m), experts = expert_load_chart(m);
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += fmt::format("<title>holdfast run {}</title>\n<style>\n{}</style>\n</head>\n<body>\n", esc(run_name), kCss);
  h += fmt::format("<h1>Training run <code>{}</code></h1>\n", esc(run_name));
  h += "<p class=\"muted\">Rendered by holdfast from metrics.jsonl (docs/metrics_format.md). Hover a chart mark for "
       "its value or event detail.</p>\n";
  h += "<h2>Summary</h2>\n" + summary_table(m);
  h += "<h2>Loss</h2>\n" + loss.xml + "\n";
  h += "<h2>Learning rate and gradient norm</h2>\n" + lr_grad_chart(m).xml + "\n";
  h += "<h2>Throughput and memory</h2>\n" + throughput_chart(m).xml + "\n";
  h += "<h2>Expert load</h2>\n<p class=\"muted\">Colour = (token, slot) assignments of an expert / the layer's mean; "
       "white is perfectly balanced. The line chart shows whether balancing improves over the run.</p>\n" +
       experts.xml + "\n";
  h += "<h2>Events</h2>\n" + events_table(m);
  h += faults_table(m);
  h += "</body>\n</html>\n";
  return {std::move(h), svg::document(loss), svg::document(experts)};
}

void write_report(const std::string& run_dir) {
  const std::filesystem::path dir(run_dir);
  RunMetrics m = read_metrics((dir / "metrics.jsonl").string());
  m.faults = read_fault_marks((dir / "events.jsonl").string());
  std::string name = std::filesystem::weakly_canonical(dir).filename().string();
  if (name.empty()) name = run_dir;
  const ReportFiles f = render_report(m, name);
  write_atomically(dir / "loss.svg", f.loss_svg);
  write_atomically(dir / "expert_load.svg", f.expert_load_svg);
  write_atomically(dir / "report.html", f.html);
}

}  // namespace holdfast::train
