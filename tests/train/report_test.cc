// Training report (train/report.h) on synthetic metrics.jsonl files: the three files are written,
// the SVG/HTML tags balance, polylines have one point per finite step, events and validation points
// appear, malformed lines are skipped and counted, and NaN/Inf never reach a coordinate.
// gcc 12 reports a false -Wmaybe-uninitialized inside libstdc++ <regex> at -O2 with ASan (build-asan).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "train/report.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.h"
#include "train/report_svg.h"

namespace holdfast::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / fmt::format("holdfast_report_{}_{}", name, getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// Tags balance: every <x ...> is closed by </x> in order; <x/>, <?...?>, <!...> and HTML void
// elements stand alone. Returns "" or a description of the first problem.
std::string tag_problem(const std::string& xml) {
  static const std::set<std::string> kVoid = {"meta", "br", "hr", "img", "link", "input"};
  std::vector<std::string> stack;
  for (size_t i = xml.find('<'); i != std::string::npos; i = xml.find('<', i + 1)) {
    const size_t end = xml.find('>', i);
    if (end == std::string::npos) return fmt::format("unterminated tag at {}", i);
    const std::string tag = xml.substr(i + 1, end - i - 1);
    if (tag.empty()) return fmt::format("empty tag at {}", i);
    if (tag[0] == '?' || tag[0] == '!') continue;
    if (std::count(tag.begin(), tag.end(), '"') % 2) return fmt::format("odd quotes in <{}>", tag);
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name)
        return fmt::format("</{}> closes <{}>", name, stack.empty() ? "nothing" : stack.back());
      stack.pop_back();
      continue;
    }
    const std::string name = tag.substr(0, tag.find_first_of(" \n\t/"));
    if (tag.back() == '/' || kVoid.count(name)) continue;
    stack.push_back(name);
  }
  return stack.empty() ? "" : fmt::format("<{}> never closed", stack.back());
}

// Point counts of the polylines with data-series="<series>", in document order.
std::vector<size_t> polyline_points(const std::string& xml, const std::string& series) {
  std::vector<size_t> out;
  const std::string key = fmt::format("<polyline data-series=\"{}\"", series);
  for (size_t i = xml.find(key); i != std::string::npos; i = xml.find(key, i + 1)) {
    const size_t p = xml.find("points=\"", i) + 8, e = xml.find('"', p);
    std::istringstream pts(xml.substr(p, e - p));
    size_t n = 0;
    for (std::string tok; pts >> tok;) ++n;
    out.push_back(n);
  }
  return out;
}

std::vector<std::pair<double, double>> first_polyline(const std::string& xml, const std::string& series) {
  std::vector<std::pair<double, double>> out;
  const size_t i = xml.find(fmt::format("<polyline data-series=\"{}\"", series));
  if (i == std::string::npos) return out;
  const size_t p = xml.find("points=\"", i) + 8, e = xml.find('"', p);
  std::istringstream pts(xml.substr(p, e - p));
  for (std::string tok; pts >> tok;) {
    const size_t comma = tok.find(',');
    out.emplace_back(std::stod(tok.substr(0, comma)), std::stod(tok.substr(comma + 1)));
  }
  return out;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

// Every numeric attribute (coordinates, sizes, points) parses completely as a finite number.
std::string nonfinite_attribute(const std::string& xml) {
  static const std::regex kAttr(R"re( (x|y|x1|x2|y1|y2|cx|cy|r|width|height|points)="([^"]*)")re");
  for (auto it = std::sregex_iterator(xml.begin(), xml.end(), kAttr); it != std::sregex_iterator(); ++it) {
    std::string v = (*it)[2];
    std::replace(v.begin(), v.end(), ',', ' ');
    std::istringstream in(v);
    for (std::string tok; in >> tok;) {
      char* end = nullptr;
      const double d = std::strtod(tok.c_str(), &end);
      if (*end != '\0' || !std::isfinite(d) || tok.find_first_of("nN") != std::string::npos)
        return fmt::format("{}=\"{}\"", std::string((*it)[1]), std::string((*it)[2]).substr(0, 80));
    }
  }
  return "";
}

json step_line(int step, double loss) {
  return {{"kind", "step"},     {"step", step},          {"loss", loss + 0.05},  {"main_loss", loss},
          {"mtp_loss", json::array({loss + 0.3})},                    {"balance_loss", 0.0},  {"lr", 3e-4 * std::min(1.0, step / 10.0)},
          {"grad_norm", 2.0 / step}, {"tokens", step * 2048}, {"tokens_per_s", 400.0 + step % 7},
          {"step_s", 5.0},      {"elapsed_s", step * 5.0}, {"rss_mb", 900.0 + step}, {"skipped", false}};
}

// 40 steps with MTP, evals every 10 steps, events, 3 MoE layers x 8 experts whose imbalance shrinks,
// a router bias; plus four malformed lines, one unknown kind and a blank line.
std::string synthetic_run() {
  std::string s;
  auto add = [&](const json& j) { s += j.dump() + "\n"; };
  add({{"kind", "event"}, {"step", 0}, {"event", "start"}, {"detail", "fresh run"}});
  for (int step = 1; step <= 40; ++step) {
    json j = step_line(step, 9.0 * std::exp(-step / 20.0) + 2.0);
    if (step == 15) {
      j["loss"] = std::nan(""), j["main_loss"] = std::nan(""), j["mtp_loss"] = json::array({std::nan("")});
      j["skipped"] = true;
    }
    json load, bias;
    for (int layer = 1; layer <= 3; ++layer) {
      std::vector<int> l(8, 512);
      l[size_t(layer)] += 2000 / step, l[0] = std::max(0, 512 - 2000 / step);
      load[std::to_string(layer)] = l;
      std::vector<double> b(8);
      for (int e = 0; e < 8; ++e) b[size_t(e)] = 0.001 * step * (e % 2 ? 1 : -1);
      bias[std::to_string(layer)] = b;
    }
    j["expert_load"] = load, j["router_bias"] = bias;
    add(j);
    if (step % 10 == 0) {
      add({{"kind", "eval"}, {"step", step}, {"val_loss", 9.0 * std::exp(-step / 20.0) + 2.1}, {"val_tokens", 4096}});
      add({{"kind", "event"}, {"step", step}, {"event", "checkpoint"}, {"detail", "saved"}});
    }
    if (step == 15) add({{"kind", "event"}, {"step", 15}, {"event", "nan_skip"}, {"detail", "loss is NaN"}});
    if (step == 25) add({{"kind", "event"}, {"step", 25}, {"event", "resume"}, {"detail", "from <checkpoint> 20 & on"}});
    if (step == 33) add({{"kind", "event"}, {"step", 33}, {"event", "fault"}, {"detail", "worker 1 lost"}});
    if (step == 7) s += "this is not json\n";
    if (step == 8) s += "[1, 2, 3]\n";
    if (step == 9) s += "{\"kind\":\"step\",\"loss\":1.0}\n";  // no step
    if (step == 12) s += "{\"kind\":\"hello\",\"step\":12}\n\n";
  }
  add({{"kind", "event"}, {"step", 40}, {"event", "done"}, {"detail", ""}});
  s += "{\"kind\":\"step\",\"step\":41,\"loss\":2.";  // a half-written last line
  return s;
}

TEST(TrainReport, WritesFilesWithChartsEventsAndHeatmaps) {
  const fs::path dir = fresh_dir("full");
  spit(dir / "metrics.jsonl", synthetic_run());
  write_report(dir.string());
  for (const char* f : {"report.html", "loss.svg", "expert_load.svg"}) {
    ASSERT_TRUE(fs::exists(dir / f)) << f;
    EXPECT_FALSE(fs::exists(dir / (std::string(f) + ".tmp"))) << f;
  }
  const std::string html = slurp(dir / "report.html"), loss = slurp(dir / "loss.svg"),
                    experts = slurp(dir / "expert_load.svg");
  for (const auto* doc : {&html, &loss, &experts}) {
    EXPECT_EQ(tag_problem(*doc), "");
    EXPECT_EQ(nonfinite_attribute(*doc), "");
  }
  EXPECT_EQ(loss.rfind("<?xml", 0), 0u);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);

  // 40 steps, step 15 is NaN: the loss line has a gap there, 14 + 25 points.
  EXPECT_EQ(polyline_points(loss, "loss"), (std::vector<size_t>{14, 25}));
  EXPECT_EQ(polyline_points(loss, "main loss"), (std::vector<size_t>{14, 25}));
  EXPECT_EQ(polyline_points(loss, "mtp 1 loss"), (std::vector<size_t>{14, 25}));
  EXPECT_EQ(count(loss, "<circle data-series=\"val loss\""), 4u);
  // Events: labelled lines on the loss chart, checkpoints as ticks; all of them in the HTML table.
  for (const char* e : {">nan_skip<", ">resume<", ">fault<", ">start<", ">done<"}) EXPECT_NE(loss.find(e), std::string::npos) << e;
  EXPECT_EQ(count(loss, "class=\"event\""), 5u);
  EXPECT_NE(html.find("<td>nan_skip</td>"), std::string::npos);
  EXPECT_NE(html.find("from &lt;checkpoint&gt; 20 &amp; on"), std::string::npos);
  EXPECT_EQ(html.find("<checkpoint>"), std::string::npos);
  EXPECT_EQ(count(html, "<tr class=\"checkpoint\">"), 4u);
  // The HTML inlines the charts: loss, LR/grad, throughput, three expert-load parts.
  EXPECT_EQ(polyline_points(html, "lr"), (std::vector<size_t>{40}));
  EXPECT_EQ(polyline_points(html, "grad norm"), (std::vector<size_t>{40}));
  EXPECT_EQ(polyline_points(html, "tokens/s"), (std::vector<size_t>{14, 25}));  // the skipped step has none
  // Heatmaps: 3 layers x 8 experts of load, same of router bias; the imbalance series per layer.
  EXPECT_EQ(count(experts, "class=\"cell\""), 48u);
  EXPECT_NE(experts.find("Router bias"), std::string::npos);
  EXPECT_EQ(polyline_points(experts, "layer 2"), (std::vector<size_t>{40}));
  EXPECT_EQ(polyline_points(experts, "mean over layers"), (std::vector<size_t>{40}));
  // Imbalance shrinks: the ratio line ends lower (larger y pixel) than it starts.
  const auto bal = first_polyline(experts, "mean over layers");
  ASSERT_EQ(bal.size(), 40u);
  EXPECT_GT(bal.back().second, bal.front().second + 50);
  // Summary: malformed lines are counted with their line numbers.
  EXPECT_NE(html.find("4 malformed lines skipped"), std::string::npos) << html.substr(0, 3000);
  EXPECT_NE(html.find("1 line of unknown kind ignored"), std::string::npos);
  EXPECT_NE(html.find("40 (last step), 40 step lines, 1 skipped update"), std::string::npos);

  std::istringstream in(synthetic_run());
  const RunMetrics m = parse_metrics(in);
  EXPECT_EQ(m.steps.size(), 40u);
  EXPECT_EQ(m.evals.size(), 4u);
  EXPECT_EQ(m.events.size(), 9u);
  EXPECT_EQ(m.n_bad_lines, 4);
  EXPECT_EQ(m.n_unknown_kind, 1);
  EXPECT_EQ(m.n_lines, 40 + 4 + 9 + 4 + 1);
  EXPECT_EQ(m.n_nonfinite, 3);  // step 15: loss, main_loss, mtp_loss[0]
  EXPECT_EQ(m.last_load_step, 40);
  ASSERT_EQ(m.last_load.size(), 3u);
  EXPECT_EQ(m.last_load.at(2)[2], 512 + 2000 / 40);
  fs::remove_all(dir);
}

TEST(TrainReport, OnePolylinePointPerStepAndLowerLossIsLower) {
  const fs::path dir = fresh_dir("points");
  std::string s;
  for (int step = 1; step <= 37; ++step) s += step_line(step, 10.0 - 0.2 * step).dump() + "\n";
  spit(dir / "metrics.jsonl", s);
  write_report(dir.string());
  const std::string loss = slurp(dir / "loss.svg");
  EXPECT_EQ(polyline_points(loss, "loss"), (std::vector<size_t>{37}));
  const auto pts = first_polyline(loss, "loss");
  ASSERT_EQ(pts.size(), 37u);
  for (size_t i = 1; i < pts.size(); ++i) {
    EXPECT_GT(pts[i].first, pts[i - 1].first) << i;   // x grows with the step
    EXPECT_GT(pts[i].second, pts[i - 1].second) << i;  // falling loss goes down the chart
  }
  EXPECT_EQ(polyline_points(loss, "main loss"), (std::vector<size_t>{37}));  // differs from the total by 0.05
  fs::remove_all(dir);
}

TEST(TrainReport, EmptyAndGarbageOnlyFilesStillRender) {
  const fs::path dir = fresh_dir("empty");
  spit(dir / "metrics.jsonl", "");
  write_report(dir.string());
  std::string html = slurp(dir / "report.html");
  EXPECT_EQ(tag_problem(html), "");
  EXPECT_EQ(tag_problem(slurp(dir / "loss.svg")), "");
  EXPECT_EQ(tag_problem(slurp(dir / "expert_load.svg")), "");
  EXPECT_NE(html.find("no step lines yet"), std::string::npos);
  EXPECT_NE(slurp(dir / "loss.svg").find("no step lines with a finite loss yet"), std::string::npos);

  spit(dir / "metrics.jsonl", "\x01\x02garbage\n{\"kind\":\n{}\n{\"kind\":\"eval\",\"step\":\"x\"}\n");
  write_report(dir.string());
  html = slurp(dir / "report.html");
  EXPECT_EQ(tag_problem(html), "");
  EXPECT_NE(html.find("4 malformed lines skipped (line 1, 2, 3, 4)"), std::string::npos);
  fs::remove_all(dir);
}

TEST(TrainReport, MissingMetricsFileIsAnInputErrorNamingIt) {
  const fs::path dir = fresh_dir("missing");
  try {
    write_report(dir.string());
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(TrainReport, NanAndInfinityNeverBecomeCoordinates) {
  const fs::path dir = fresh_dir("nan");
  std::string s;
  for (int step = 1; step <= 20; ++step)  // bare NaN / Infinity tokens, as Python's json.dumps writes them
    s += fmt::format("{{\"kind\":\"step\",\"step\":{},\"loss\":NaN,\"main_loss\":NaN,\"lr\":0.001,"
                     "\"grad_norm\":{},\"tokens_per_s\":-Infinity,\"rss_mb\":null}}\n",
                     step, step % 2 ? "Infinity" : "1.5");
  s += "{\"kind\":\"eval\",\"step\":20,\"val_loss\":NaN}\n";
  spit(dir / "metrics.jsonl", s);
  write_report(dir.string());
  for (const char* f : {"report.html", "loss.svg", "expert_load.svg"}) {
    const std::string doc = slurp(dir / f);
    EXPECT_EQ(tag_problem(doc), "") << f;
    EXPECT_EQ(nonfinite_attribute(doc), "") << f;
  }
  const std::string html = slurp(dir / "report.html");
  EXPECT_TRUE(polyline_points(html, "loss").empty());
  EXPECT_EQ(polyline_points(html, "lr"), (std::vector<size_t>{20}));
  EXPECT_EQ(count(html, "<circle data-series=\"grad norm\""), 10u);  // isolated finite points become dots
  EXPECT_NE(html.find("91 NaN/Inf/null values"), std::string::npos);
  EXPECT_EQ(html.find("malformed"), std::string::npos);
  fs::remove_all(dir);
}

TEST(TrainReport, LongRunsAreThinnedButKeepSpikes) {
  std::string s;
  for (int step = 1; step <= 6000; ++step) {
    json j = step_line(step, step == 3000 ? 60.0 : 8.0 - step * 0.0005);
    json load;
    for (int layer = 1; layer <= 7; ++layer) load[std::to_string(layer)] = std::vector<int>(16, 256 + step % 5);
    j["expert_load"] = load;
    s += j.dump() + "\n";
  }
  std::istringstream in(s);
  const auto t0 = std::chrono::steady_clock::now();
  const ReportFiles f = render_report(parse_metrics(in), "long");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("parse + render of %zu bytes, 6000 steps: %.3f s; html %zu bytes\n", s.size(), secs, f.html.size());
  const auto pts = first_polyline(f.loss_svg, "loss");
  EXPECT_LE(pts.size(), 1200u);
  EXPECT_GE(pts.size(), 600u);
  // The spike (loss 60 at step 3000) survives thinning: one point far above every other.
  double top = 1e9, second = 1e9;
  for (const auto& p : pts) {
    if (p.second < top) second = top, top = p.second;
    else second = std::min(second, p.second);
  }
  EXPECT_LT(top + 100, second);
  EXPECT_LT(f.html.size(), 2'000'000u);
  EXPECT_EQ(tag_problem(f.html), "");
}

TEST(TrainReport, NumberLabels) {
  EXPECT_EQ(svg::format_number(0), "0");
  EXPECT_EQ(svg::format_number(3e-4), "3e-4");
  EXPECT_EQ(svg::format_number(2.2e-5), "2.2e-5");
  EXPECT_EQ(svg::format_number(12345), "12.3k");
  EXPECT_EQ(svg::format_number(3.5), "3.5");
  EXPECT_EQ(svg::format_number(2.5e6), "2.5M");
  EXPECT_EQ(svg::escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
}

}  // namespace
}  // namespace holdfast::train
