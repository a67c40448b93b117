// SVG line charts and heatmaps for the training report. Coordinates are written with one decimal;
// every number that reaches an attribute has passed std::isfinite, so "nan"/"inf" never appear.
#include "train/report_svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace holdfast::train::svg {

namespace {

constexpr const char* kFont = R"(font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11")";
constexpr double kCharW = 6.2;   // estimated width of one 11px character
constexpr double kHuge = 1e200;  // larger magnitudes are treated as non-finite (their range would overflow)

bool usable(double v) { return std::isfinite(v) && std::fabs(v) < kHuge; }
double text_width(std::string_view s, double char_w = kCharW) { return char_w * double(s.size()); }

// A y (or x) axis range with its ticks; maps values to pixels between p0 (lo) and p1 (hi).
struct Range {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;
  double p0 = 0, p1 = 1;

  double t(double v) const { return log ? std::log10(v) : v; }
  bool valid(double v) const { return usable(v) && (!log || v > 0); }
  double px(double v) const {
    const double a = t(lo), b = t(hi);
    const double f = (t(v) - a) / (b - a);
    return std::clamp(p0 + f * (p1 - p0), std::min(p0, p1) - 2.0, std::max(p0, p1) + 2.0);
  }
};

double nice_step(double span, int target) {
  const double raw = span / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / mag;
  return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
}

std::vector<double> linear_ticks(double lo, double hi, int target) {
  std::vector<double> ticks;
  if (!(hi > lo)) return ticks;
  const double step = nice_step(hi - lo, target);
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9 && ticks.size() < 50; k += 1)
    ticks.push_back(std::fabs(k * step) < step * 1e-9 ? 0.0 : k * step);
  return ticks;
}

Range make_linear(double lo, double hi, std::optional<double> include, int target) {
  if (include) lo = std::min(lo, *include), hi = std::max(hi, *include);
  if (!(hi - lo > std::max(std::fabs(lo), std::fabs(hi)) * 1e-9)) {
    const double pad = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double step = nice_step(hi - lo, target);
  Range r{.lo = std::floor(lo / step) * step, .hi = std::ceil(hi / step) * step};
  if (r.hi <= r.lo) r.hi = r.lo + step;
  r.ticks = linear_ticks(r.lo, r.hi, target);
  return r;
}

Range make_log(double lo, double hi) {
  double a = std::log10(lo), b = std::log10(hi);
  if (b - a < 1e-9) a -= 0.1, b += 0.1;
  const double pad = (b - a) * 0.03;
  Range r{.lo = std::pow(10.0, a - pad), .hi = std::pow(10.0, b + pad), .log = true};
  static constexpr std::array<std::array<int, 9>, 3> kMantissas = {{{1, 2, 3, 4, 5, 6, 7, 8, 9},
                                                                   {1, 2, 5, 0, 0, 0, 0, 0, 0},
                                                                   {1, 0, 0, 0, 0, 0, 0, 0, 0}}};
  for (const auto& set : kMantissas) {
    std::vector<double> ticks;
    for (int e = int(std::floor(a - pad)); e <= int(std::ceil(b + pad)); ++e)
      for (int m : set)
        if (m != 0) {
          const double v = m * std::pow(10.0, e);
          if (v >= r.lo * (1 - 1e-9) && v <= r.hi * (1 + 1e-9)) ticks.push_back(v);
        }
    if (ticks.size() <= 9 || &set == &kMantissas.back()) {
      r.ticks = std::move(ticks);
      break;
    }
  }
  while (r.ticks.size() > 9) {  // many decades: keep every other one
    std::vector<double> thinned;
    for (size_t i = 0; i < r.ticks.size(); i += 2) thinned.push_back(r.ticks[i]);
    r.ticks = std::move(thinned);
  }
  if (r.ticks.size() < 2) r.ticks = linear_ticks(r.lo, r.hi, 4);  // less than one mantissa step
  return r;
}

// Range over the finite values of the series on one axis. Returns nullopt when there are none.
std::optional<Range> axis_range(const std::vector<const std::vector<double>*>& columns, const Axis& axis,
                                int target) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, pos_lo = lo;
  for (const auto* col : columns)
    for (double v : *col)
      if (usable(v)) {
        lo = std::min(lo, v), hi = std::max(hi, v);
        if (v > 0) pos_lo = std::min(pos_lo, v);
      }
  if (!(lo <= hi)) return std::nullopt;
  const bool positive = pos_lo <= hi;
  bool log = axis.scale == Axis::Scale::kLog && positive;
  if (axis.scale == Axis::Scale::kAuto) log = lo > 0 && hi / lo >= 3;
  if (log) return make_log(axis.scale == Axis::Scale::kLog ? pos_lo : lo, hi);
  return make_linear(lo, hi, axis.include, target);
}

// Points of one series split into runs of finite, x-increasing points.
std::vector<std::vector<std::pair<double, double>>> segments(const Series& s, const Range& xr, const Range& yr) {
  std::vector<std::vector<std::pair<double, double>>> out;
  std::vector<std::pair<double, double>> cur;
  double last_x = -std::numeric_limits<double>::infinity();
  const size_t n = std::min(s.x.size(), s.y.size());
  for (size_t i = 0; i < n; ++i) {
    const bool ok = usable(s.x[i]) && yr.valid(s.y[i]);
    if (!ok || s.x[i] <= last_x) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    }
    if (ok) cur.emplace_back(xr.px(s.x[i]), yr.px(s.y[i]));
    if (usable(s.x[i])) last_x = s.x[i];
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// Keeps the min-y and max-y point of each bucket, in x order, so spikes survive thinning.
std::vector<std::pair<double, double>> decimate(const std::vector<std::pair<double, double>>& pts, int max_points) {
  if (int(pts.size()) <= max_points || max_points < 4) return pts;
  const size_t bucket = (pts.size() + size_t(max_points / 2) - 1) / size_t(max_points / 2);
  std::vector<std::pair<double, double>> out;
  for (size_t b = 0; b < pts.size(); b += bucket) {
    const size_t e = std::min(pts.size(), b + bucket);
    size_t lo = b, hi = b;
    for (size_t i = b; i < e; ++i) {
      if (pts[i].second < pts[lo].second) lo = i;
      if (pts[i].second > pts[hi].second) hi = i;
    }
    out.push_back(pts[std::min(lo, hi)]);
    if (lo != hi) out.push_back(pts[std::max(lo, hi)]);
  }
  return out;
}

std::string tick_label_x(double v) { return format_number(v); }

// Pixel positions of labels already placed on each of the three marker rows.
struct LabelRows {
  std::array<double, 3> end{-1e9, -1e9, -1e9};
  int place(double x, double w) {
    for (int r = 0; r < 3; ++r)
      if (x > end[size_t(r)] + 4) {
        end[size_t(r)] = x + w;
        return r;
      }
    return -1;
  }
};

}  // namespace

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') out += ' ';
        else out += c;
    }
  }
  return out;
}

std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  const double a = std::fabs(v);
  if (a == 0) return "0";
  if (a >= 1e9) return fmt::format("{:.3g}G", v / 1e9);
  if (a >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  if (a >= 1e4) return fmt::format("{:.3g}k", v / 1e3);
  if (a < 1e-2) {
    int e = int(std::floor(std::log10(a)));
    double m = v / std::pow(10.0, e);
    if (std::fabs(std::round(m * 100) / 100) >= 10) m /= 10, e += 1;
    return fmt::format("{:.3g}e{}", m, e);
  }
  return fmt::format("{:.4g}", v);
}

Svg render(const LineChart& c) {
  const bool has_right = std::any_of(c.series.begin(), c.series.end(), [](const Series& s) { return s.axis == 1; });
  // Legend rows (wrapped) after the title.
  struct LegendItem { const Series* s; double x; int row; };
  std::vector<LegendItem> legend;
  const double title_end = 16 + text_width(c.title, 8.2) + 24;
  double lx = title_end;
  int lrow = 0;
  for (const auto& s : c.series) {
    if (s.name.empty()) continue;
    const double w = 22 + text_width(s.name) + 14;
    if (lx + w > c.width - 10 && lx > title_end) lx = 16, ++lrow;
    legend.push_back({&s, lx, lrow});
    lx += w;
  }
  const double top = 34 + 16 * lrow + 8, bottom = c.height - 44.0;
  const double left = 68, right = c.width - (has_right ? 68.0 : 24.0);

  std::vector<const std::vector<double>*> ycols[2], xcols;
  for (const auto& s : c.series) {
    ycols[s.axis == 1 ? 1 : 0].push_back(&s.y);
    xcols.push_back(&s.x);
  }
  std::vector<double> marker_x;
  for (const auto& m : c.markers) marker_x.push_back(m.x);
  xcols.push_back(&marker_x);
  auto yl = axis_range(ycols[0], c.y_left, 5);
  auto yr = axis_range(ycols[1], c.y_right, 5);
  auto xr = axis_range(xcols, Axis{.include = 0.0}, 8);

  std::string o = fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" {}>)",
                              c.width, c.height, c.width, c.height, kFont);
  o += fmt::format(R"(<rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/>)", c.width, c.height);
  o += fmt::format(R"(<text x="16" y="20" font-size="13" font-weight="bold" fill="#222">{}</text>)", escape(c.title));
  for (const auto& it : legend) {
    const double y = 16 + 16.0 * it.row;
    o += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="2.5"{}/>)", it.x,
                     y, it.x + 18, y, it.s->color, it.s->dashed ? R"( stroke-dasharray="5,3")" : "");
    if (it.s->dots && !it.s->line)
      o += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)", it.x + 9, y, it.s->color);
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" fill="#333">{}</text>)", it.x + 22, y + 4, escape(it.s->name));
  }
  if (!yl && !yr) {
    o += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#fafafa" stroke="#ddd"/>)", left,
                     top, right - left, bottom - top);
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" fill="#888" font-size="13">{}</text>)",
                     (left + right) / 2, (top + bottom) / 2, escape(c.empty_note));
    o += "</svg>";
    return {o, c.width, c.height};
  }
  xr->p0 = left, xr->p1 = right;
  for (auto* r : {&yl, &yr})
    if (*r) (*r)->p0 = bottom, (*r)->p1 = top;
  const Range& ymain = yl ? *yl : *yr;

  o += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="#fcfcfc" stroke="#ccc"/>)", left,
                   top, right - left, bottom - top);
  for (double t : ymain.ticks) {
    const double y = ymain.px(t);
    o += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#ececec"/>)", left, y, right, y);
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="end" fill="#444">{}</text>)", left - 6, y + 4,
                     format_number(t));
  }
  if (yl && yr) {
    const std::string color = [&] {
      for (const auto& s : c.series)
        if (s.axis == 1) return s.color;
      return std::string("#444");
    }();
    for (double t : yr->ticks)
      o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" fill="{}">{}</text>)", right + 6, yr->px(t) + 4, color,
                       format_number(t));
  }
  for (double t : xr->ticks) {
    const double x = xr->px(t);
    o += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#ececec"/>)", x, top, x, bottom);
    o += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#888"/>)", x, bottom, x, bottom + 4);
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" fill="#444">{}</text>)", x, bottom + 16,
                     tick_label_x(t));
  }
  o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" fill="#333">{}</text>)", (left + right) / 2,
                   bottom + 34, escape(c.x_label));
  const double mid = (top + bottom) / 2;
  const Axis& left_axis = yl ? c.y_left : c.y_right;
  o += fmt::format(R"~(<text x="16" y="{:.1f}" text-anchor="middle" fill="#333" transform="rotate(-90 16 {:.1f})">{}{}</text>)~",
                   mid, mid, escape(left_axis.label), ymain.log ? ", log scale" : "");
  if (yl && yr)
    o += fmt::format(R"~(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" fill="#333" transform="rotate(90 {:.1f} {:.1f})">{}{}</text>)~",
                     c.width - 14.0, mid, c.width - 14.0, mid, escape(c.y_right.label), yr->log ? ", log scale" : "");

  // Event markers under the data.
  LabelRows rows;
  for (const auto& m : c.markers) {
    if (!usable(m.x) || m.x < xr->lo || m.x > xr->hi) continue;
    const double x = xr->px(m.x);
    const std::string title = m.tooltip.empty() ? "" : fmt::format("<title>{}</title>", escape(m.tooltip));
    if (m.faint) {
      o += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="2">{}</line>)", x,
                       bottom - 6, x, bottom, m.color.empty() ? "#999" : m.color, title);
      continue;
    }
    o += fmt::format(R"(<line class="{}" x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-dasharray="4,3" stroke-width="1.2">{}</line>)",
                     escape(m.css_class), x, top, x, bottom, m.color, title);
    if (m.label.empty()) continue;
    const double w = text_width(m.label, 5.6);
    const double tx = std::min(x + 3, right - w - 2);
    const int row = rows.place(tx, w);
    if (row >= 0)
      o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="10" fill="{}">{}</text>)", tx, top + 11 + 11.0 * row,
                       m.color, escape(m.label));
  }
  for (const auto& s : c.series) {
    const Range* y = s.axis == 1 ? (yr ? &*yr : nullptr) : (yl ? &*yl : nullptr);
    if (!y) continue;
    const std::string attrs = fmt::format(R"(data-series="{}")", escape(s.name));
    for (const auto& seg : segments(s, *xr, *y)) {
      if (s.line && seg.size() >= 2) {
        o += fmt::format(R"(<polyline {} fill="none" stroke="{}" stroke-width="{}" stroke-linejoin="round"{} points=")",
                         attrs, s.color, s.stroke_width, s.dashed ? R"( stroke-dasharray="5,3")" : "");
        bool first = true;
        for (const auto& [px, py] : decimate(seg, c.max_points_per_line)) {
          o += fmt::format("{}{:.1f},{:.1f}", first ? "" : " ", px, py);
          first = false;
        }
        o += "\"/>";
      } else if (s.line && !s.dots) {
        o += fmt::format(R"(<circle {} cx="{:.1f}" cy="{:.1f}" r="1.8" fill="{}"/>)", attrs, seg[0].first, seg[0].second,
                         s.color);
      }
      if (s.dots)
        for (const auto& [px, py] : seg)
          o += fmt::format(R"(<circle {} cx="{:.1f}" cy="{:.1f}" r="3.2" fill="{}" stroke="#fff" stroke-width="0.8"/>)",
                           attrs, px, py, s.color);
    }
  }
  o += "</svg>";
  return {o, c.width, c.height};
}

namespace {

// RdBu-like diverging palette, t in [-1, 1]: blue, white, red.
std::string diverging(double t) {
  static constexpr std::array<std::array<double, 3>, 5> kStops = {
      {{33, 102, 172}, {146, 197, 222}, {247, 247, 247}, {244, 165, 130}, {178, 24, 43}}};
  t = std::clamp(t, -1.0, 1.0);
  const double f = (t + 1) * 2;  // 0..4
  const int i = std::min(3, int(f));
  const double u = f - i;
  std::array<int, 3> rgb{};
  for (int k = 0; k < 3; ++k)
    rgb[size_t(k)] = int(std::lround(kStops[size_t(i)][size_t(k)] * (1 - u) + kStops[size_t(i) + 1][size_t(k)] * u));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

}  // namespace

Svg render(const Heatmap& h) {
  const int rows = int(h.values.size());
  int cols = 0;
  double max_abs = 0;
  for (const auto& r : h.values) {
    cols = std::max(cols, int(r.size()));
    for (double v : r)
      if (usable(v)) max_abs = std::max(max_abs, std::fabs(v));
  }
  const double left = 84, top = 50, bar_w = 110;
  const double cell_w = cols ? std::clamp((h.max_width - left - bar_w - 16) / cols, 2.0, 46.0) : 40;
  const double cell_h = rows ? std::clamp(420.0 / rows, 5.0, 24.0) : 24;
  const double grid_w = cell_w * std::max(cols, 1), grid_h = cell_h * std::max(rows, 1);
  const int width = int(std::ceil(left + grid_w + bar_w + 16));
  const int height = int(std::ceil(top + std::max(grid_h, 150.0) + 40));
  auto color_of = [&](double v) -> std::string {
    if (!usable(v)) return "#d9d9d9";
    if (h.scale == Heatmap::Scale::kRatio) return diverging(v <= 0 ? -1.0 : std::log2(v) / 2);
    return diverging(max_abs > 0 ? v / max_abs : 0);
  };

  std::string o = fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" {}>)",
                              width, height, width, height, kFont);
  o += fmt::format(R"(<rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/>)", width, height);
  o += fmt::format(R"(<text x="16" y="20" font-size="13" font-weight="bold" fill="#222">{}</text>)", escape(h.title));
  const bool titles = int64_t(rows) * cols <= 4096;
  const bool texts = cell_w >= 30 && cell_h >= 14;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < int(h.values[size_t(r)].size()); ++c) {
      const double v = h.values[size_t(r)][size_t(c)];
      const double x = left + c * cell_w, y = top + r * cell_h;
      const std::string value = usable(v) ? fmt::format(fmt::runtime(h.value_format), v) : "no data";
      o += fmt::format(R"(<rect class="cell" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}" stroke="#fff" stroke-width="{}")",
                       x, y, cell_w, cell_h, color_of(v), cell_w >= 6 ? 0.5 : 0);
      if (titles)
        o += fmt::format("><title>{} {}, {} {}: {}</title></rect>", escape(h.row_axis),
                         escape(h.row_labels.size() > size_t(r) ? h.row_labels[size_t(r)] : std::to_string(r)),
                         escape(h.col_axis), c, value);
      else
        o += "/>";
      if (texts && usable(v)) {
        const double t = h.scale == Heatmap::Scale::kRatio ? (v <= 0 ? 1.0 : std::fabs(std::log2(v)) / 2)
                                                           : (max_abs > 0 ? std::fabs(v) / max_abs : 0);
        o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" font-size="9.5" fill="{}">{}</text>)",
                         x + cell_w / 2, y + cell_h / 2 + 3.5, t > 0.6 ? "#fff" : "#222", value);
      }
    }
  // Row labels (thinned so they stay >= 11px apart) and column labels (>= 22px apart).
  const int row_every = std::max(1, int(std::ceil(11.0 / cell_h)));
  for (int r = 0; r < rows; r += row_every)
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="end" fill="#444">{}</text>)", left - 6,
                     top + r * cell_h + cell_h / 2 + 4,
                     escape(h.row_labels.size() > size_t(r) ? h.row_labels[size_t(r)] : std::to_string(r)));
  const int col_every = std::max(1, int(std::ceil(22.0 / cell_w)));
  for (int c = 0; c < cols; c += col_every)
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" fill="#444">{}</text>)",
                     left + c * cell_w + cell_w / 2, top - 6, c);
  o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" fill="#333">{}</text>)", left + grid_w / 2,
                   top + grid_h + 22, escape(h.col_axis));
  const double mid = top + grid_h / 2;
  o += fmt::format(R"~(<text x="16" y="{:.1f}" text-anchor="middle" fill="#333" transform="rotate(-90 16 {:.1f})">{}</text>)~",
                   mid, mid, escape(h.row_axis));
  if (rows == 0)
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" fill="#888">no data</text>)", left, top + 16);

  // Colour bar: 40 bands from the top (most loaded / most positive) down.
  const double bx = left + grid_w + 24, bh = 150, bw = 16;
  for (int i = 0; i < 40; ++i) {
    const double t = 1 - (i + 0.5) / 20.0;
    o += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"/>)", bx, top + i * bh / 40,
                     bw, bh / 40 + 0.3, diverging(t));
  }
  o += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="none" stroke="#999"/>)", bx, top,
                   bw, bh);
  std::vector<std::pair<double, std::string>> labels;  // (t, text)
  if (h.scale == Heatmap::Scale::kRatio)
    labels = {{1, ">=4x"}, {0.5, "2x"}, {0, "1x mean"}, {-0.5, "0.5x"}, {-1, "<=0.25x"}};
  else
    labels = {{1, format_number(max_abs)}, {0, "0"}, {-1, format_number(-max_abs)}};
  for (const auto& [t, text] : labels) {
    const double y = top + (1 - t) / 2 * bh;
    o += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#666"/>)", bx + bw, y, bx + bw + 4, y);
    o += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" fill="#444">{}</text>)", bx + bw + 7, y + 4, escape(text));
  }
  o += "</svg>";
  return {o, width, height};
}

Svg stack(const std::vector<Svg>& parts, int gap) {
  int width = 0, height = 0;
  for (const auto& p : parts) width = std::max(width, p.width), height += p.height;
  if (!parts.empty()) height += gap * int(parts.size() - 1);
  std::string o = fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}">)",
                              width, height, width, height);
  o += fmt::format(R"(<rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/>)", width, height);
  int y = 0;
  for (const auto& p : parts) {
    o += fmt::format(R"(<svg x="0" y="{}")", y) + p.xml.substr(4);  // p.xml starts with "<svg"
    y += p.height + gap;
  }
  o += "</svg>";
  return {o, width, height};
}

std::string document(const Svg& svg) { return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + svg.xml + "\n"; }

}  // namespace holdfast::train::svg
