// Hand-written SVG charts for the training report (train/report.h): a line chart with a left and an
// optional right y axis (linear or log, nice ticks), dot series, labelled vertical event markers and
// a legend; and a heatmap with a colour bar. Only finite values become coordinates: NaN/Inf and
// (on log axes) non-positive values are gaps. No state, no dependencies beyond fmt.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace holdfast::train::svg {

// A rendered <svg> element (no XML prolog) and its size in pixels.
struct Svg {
  std::string xml;
  int width = 0, height = 0;
};

struct Series {
  std::string name;   // legend text; also the data-series attribute of its polylines/dots
  std::string color;  // CSS colour
  std::vector<double> x, y;
  int axis = 0;          // 0 = left y axis, 1 = right y axis
  bool line = true;      // polyline(s); a new polyline starts at every gap and wherever x does not increase
  bool dots = false;     // a circle per finite point
  bool dashed = false;
  double stroke_width = 1.5;
};

struct Axis {
  std::string label;
  enum class Scale { kLinear, kLog, kAuto } scale = Scale::kLinear;  // kAuto: log when max/min >= 3
  std::optional<double> include;  // a value the range must contain (0 for rates, 1 for ratios)
};

// A vertical line at x. Labelled markers get a short text at the top (staggered over three rows and
// dropped where they would overlap); faint ones are short grey ticks on the x axis. `tooltip` becomes
// the <title> of the mark.
struct Marker {
  double x = 0;
  std::string label, tooltip, color;
  bool faint = false;
  std::string css_class = "event";  // class of the line: "event", or "fault" for a supervisor fault
};

struct LineChart {
  std::string title;
  int width = 900, height = 340;
  std::string x_label = "step";
  Axis y_left, y_right;  // y_right is drawn only when a series uses axis 1
  std::vector<Series> series;
  std::vector<Marker> markers;
  std::string empty_note = "no data";  // shown in place of the plot when no series has a finite point
  int max_points_per_line = 1200;      // longer polylines keep each bucket's min and max (spikes stay)
};

Svg render(const LineChart& chart);

struct Heatmap {
  std::string title;
  std::string row_axis, col_axis;       // axis titles ("MoE layer", "expert")
  std::vector<std::string> row_labels;  // one per row of `values`
  std::vector<std::vector<double>> values;  // [row][col]; NaN = no data (grey); rows may be ragged
  // kRatio: colour = log2(value) clamped to ±2 (0.25x blue .. 1x white .. 4x red), for load / mean load.
  // kSigned: colour = value / max|value| (negative blue, positive red), for the router bias.
  enum class Scale { kRatio, kSigned } scale = Scale::kRatio;
  std::string value_format = "{:.2f}";  // text in the cells when they are large enough
  int max_width = 900;
};

Svg render(const Heatmap& map);

// Several charts one below the other in one <svg> (nested <svg> elements), with `gap` pixels between.
Svg stack(const std::vector<Svg>& parts, int gap = 16);

// A standalone .svg file: the XML prolog, then the element.
std::string document(const Svg& svg);

// Escapes &, <, >, " and ' for XML/HTML text and attribute values.
std::string escape(std::string_view text);

// Compact number text for tick labels and tables: "0", "3.5", "2.2e-5", "12.3k", "1.5M".
std::string format_number(double v);

}  // namespace holdfast::train::svg
