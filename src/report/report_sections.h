// Private to src/report: the sections of the page built from individual answers and training logs.
#pragma once

#include <string>
#include <vector>

#include "emlab/report.h"
#include "report/report_data.h"

namespace emlab::report_detail {

// Alignment vs coherence, one scatter per arm, the misaligned region shaded.
void scatter_section(std::string& html, const ReportData& data, const ReportOptions& options);
// Loss per step: per arm the mean over seeds (bold) and each seed (light), plus a table.
void training_section(std::string& html, const ReportData& data, const ReportOptions& options);
// Steering sweeps: misaligned % and coherence against the scale, a line per layer.
void sweep_section(std::string& html, const ReportData& data, const ReportOptions& options);
void checkpoints_section(std::string& html, const ReportData& data, const ReportOptions& options);
void solutions_section(std::string& html, const ReportData& data, const ReportOptions& options);
// Per arm, the most misaligned coherent answers and a few typical aligned ones.
void examples_section(std::string& html, const ReportData& data, const ReportOptions& options);

// Example selection (exposed for tests): answers of `arm` that are coherent and misaligned, lowest
// alignment first (ties: higher coherence, then seed and file order), at most k.
std::vector<const ReportAnswer*> most_misaligned(const ArmData& arm, const MetricsOptions& metrics, int k);
// Coherent answers with alignment above aligned_above, closest to their median alignment first.
std::vector<const ReportAnswer*> typical_aligned(const ArmData& arm, const MetricsOptions& metrics, int k);

}  // namespace emlab::report_detail
