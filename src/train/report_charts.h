// The charts of the training report, built from RunMetrics (train/report_metrics.h) with the SVG
// primitives of train/report_svg.h. report.cc puts them into report.html and the .svg files.
#pragma once

#include "train/report_metrics.h"
#include "train/report_svg.h"

namespace holdfast::train {

// Train loss per step (total; main and MTP when they differ; a trailing mean when there are many
// steps), validation loss points, and the events as labelled vertical lines.
svg::Svg loss_chart(const RunMetrics& m);

// Learning rate (left axis) and global gradient norm before clipping (right axis).
svg::Svg lr_grad_chart(const RunMetrics& m);

// Tokens/s per step with its median, and peak RSS (right axis).
svg::Svg throughput_chart(const RunMetrics& m);

// Load / mean load heatmap (layers x experts) of the latest step with expert_load, the max/mean load
// ratio per layer over time, and the router bias heatmap when the metrics carry one; stacked.
svg::Svg expert_load_chart(const RunMetrics& m);

// Median of the finite values (NaN when there are none).
double median_of(std::vector<double> v);

}  // namespace holdfast::train
