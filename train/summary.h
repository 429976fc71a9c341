/*
 * summary.h — results over runs: finds the metrics.json of every run folder under some
 * directories, groups the runs by (method, dataset, shots), and gives mean ± std over seeds
 * per dataset and the average over datasets, as Markdown, CSV and an accuracy-vs-shots SVG
 * plot (`tgpt-eval summarize`).
 *
 * Run folders: <root>/<dataset>/<K>shots/seed<S>/metrics.json at any depth under each
 * directory (other metrics.json files are listed as ignored). A run's metrics.json (written by
 * tgpt-train; train/evaluator.h write_metrics plus these keys) holds:
 *   "method"   "tgpt", "coop", "zeroshot", ...  (without it, "task" as tgpt-eval writes it)
 *   "dataset"  DATASET.NAME                     (default: the <dataset> folder name)
 *   "shots"    K, "seed" S                      (default: from the folder names; when present
 *                                                they must agree with the folder names)
 *   "accuracy" top-1 of the plain head on the test set, percent (required)
 *   "accuracy_wiseft"  the WiSE-FT(0.5) head's, percent (optional)
 * Two runs with the same (method, dataset, shots, seed), broken JSON, or a missing or
 * non-numeric accuracy: tgpt::Error naming the file(s).
 *
 * Statistics over the seeds of one (method, dataset, shots): mean = Σx/n and
 * std = sqrt(Σ(x - mean)²/n), the population standard deviation (numpy's default, ddof=0).
 * The Average row of a (method, shots) table is the mean over its datasets of their means; its
 * WiSE-FT average exists only when every dataset has WiSE-FT runs.
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tgpt {

// One run's numbers from its metrics.json.
struct RunMetrics {
  std::string path;  // the metrics.json file
  std::string method, dataset;
  int64_t shots = 0, seed = 0;
  double accuracy = 0;
  std::optional<double> accuracy_wiseft;
};

// Mean and population std (ddof=0) of n >= 1 values.
struct SeedStats {
  int64_t n = 0;
  double mean = 0, std = 0;
};
SeedStats mean_std(const std::vector<double>& values);

// Reads one run; `dataset_dir`, `shots_dir` and `seed_dir` are its folder names (e.g.
// "OxfordPets", "16shots", "seed1"), the defaults and checks of the header comment.
RunMetrics read_run_metrics(const std::string& metrics_json, const std::string& dataset_dir,
                            const std::string& shots_dir, const std::string& seed_dir);

struct RunSearch {
  std::vector<RunMetrics> runs;      // sorted by method, dataset, shots, seed
  std::vector<std::string> ignored;  // metrics.json files outside the run-folder layout
};
// Every run under the directories (each must exist). Throws on duplicates (naming both files),
// unreadable or broken files, and when no run is found at all.
RunSearch find_runs(const std::vector<std::string>& dirs);

struct SummaryRow {
  std::string dataset;
  std::vector<int64_t> seeds;  // ascending
  SeedStats accuracy;
  std::optional<SeedStats> accuracy_wiseft;  // over the seeds that have it, when any does
};
struct SummaryTable {
  std::string method;
  int64_t shots = 0;
  std::vector<SummaryRow> rows;          // datasets in name order
  double average_accuracy = 0;           // mean over rows of accuracy.mean
  std::optional<double> average_wiseft;  // when every row has WiSE-FT
};
// Tables ordered by method, then shots.
std::vector<SummaryTable> summarize_runs(const std::vector<RunMetrics>& runs);

// One Markdown section per table ("## <method>, <K> shots": Dataset | Seeds | Accuracy (%) |
// WiSE-FT (%) when any run has it), cells "mean ± std" with two decimals, the Average row last,
// and a note on the statistics.
std::string summary_markdown(const std::vector<SummaryTable>& tables);
// Header then one line per row and one Average line per table:
//   method,shots,dataset,num_seeds,seeds,accuracy_mean,accuracy_std,accuracy_wiseft_mean,
//   accuracy_wiseft_std
// seeds space-separated; numbers in shortest round-trip form; empty fields where a value does
// not exist (the Average line's num_seeds, seeds and std fields; absent WiSE-FT).
std::string summary_csv(const std::vector<SummaryTable>& tables);
// A standalone SVG (1.1, with width/height/viewBox): the Average accuracy against shots (log2
// axis when every shot count is positive), one polyline with point markers per method except
// "zeroshot", which is a dashed horizontal line at the mean over its tables' averages; axes,
// ticks, grid, axis labels, title and a legend. A method whose points do not all average the
// same datasets is marked with * and a footnote.
std::string summary_svg(const std::vector<SummaryTable>& tables);

}  // namespace tgpt
