/*
 * summary.h — results over runs: finds the metrics.json of every run folder under some
 * directories, groups the runs by (method, dataset, shots), and gives mean ± std over seeds
 * per dataset and the average over datasets, as Markdown, CSV and an accuracy-vs-shots SVG
 * plot (`tgpt-eval summarize`); and the methods side by side at one shot count, as a Markdown
 * table, a grouped bar chart (SVG) and a JSON summary (`tgpt-eval compare`).
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
 *
 * Comparison at K shots: the runs of every method at K plus the "zeroshot" runs at any shot
 * count (zero-shot CLIP does not depend on K; its runs live in 0shots/). Rows are the datasets
 * any of them has (name order), columns the methods in the order zeroshot, coop, tgpt, then the
 * others by name; a cell is the mean ± std over seeds as above, or empty when the method has no
 * run on the dataset. A method's average is the mean of its cells' means over the datasets it
 * has; a method without a run on some dataset of the table is flagged (its average covers fewer
 * datasets than the others').
 */
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
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

// ---------------------------------------------------------------------------------------------
// Methods side by side at one shot count (`tgpt-eval compare`)

// One (dataset, method) cell: the runs' statistics over seeds.
struct ComparisonCell {
  std::vector<int64_t> seeds;  // ascending
  SeedStats accuracy;
  std::optional<SeedStats> accuracy_wiseft;  // over the seeds that have it, when any does
};
struct ComparisonRow {
  std::string dataset;
  std::vector<std::optional<ComparisonCell>> cells;  // per method of MethodComparison::methods
};
struct MethodAverage {
  double accuracy = 0;                    // mean over the datasets the method has of its cell means
  int64_t datasets = 0;                   // how many datasets that is
  std::vector<std::string> missing;       // datasets of the table without a run of this method
  std::optional<double> accuracy_wiseft;  // when every cell of the method has WiSE-FT
};
struct MethodComparison {
  int64_t shots = 0;
  std::vector<std::string> methods;     // zeroshot, coop, tgpt, then the others by name
  std::vector<ComparisonRow> rows;      // datasets in name order
  std::vector<MethodAverage> averages;  // per method
};
// The comparison at `shots` (>= 0) of the runs (any order). Throws when no run other than a
// zero-shot one is at `shots` (naming the shot counts that have runs), and when two zero-shot
// runs of one dataset and seed sit in different shot folders (naming both files).
MethodComparison compare_methods(const std::vector<RunMetrics>& runs, int64_t shots);

// "## Top-1 accuracy (%), K shots", then one table: Dataset | <method>... with cells
// "mean ± std" (two decimals; the mean alone for one seed; "–" for no run), the Average row last
// (a flagged method's average says "(n of N datasets)"), then notes on the missing cells, the
// WiSE-FT averages when any method has them, and the statistics.
std::string comparison_markdown(const MethodComparison& c);
// A standalone SVG (1.1, with width/height/viewBox): a grouped bar chart, one group per dataset
// and an "Average" group, one bar (<rect class="bar">) per method present in the group ("n/a" where
// a method has no run), colours fixed per method (zeroshot grey, coop orange, tgpt blue, others
// from a palette by name order), each bar's value written above it and a <title> tooltip (mean ±
// std, seeds), a y axis of accuracy 0..100 with a grid, a legend, and the title "Top-1 accuracy, K
// shots". Averages of flagged methods are marked with * and a footnote.
std::string comparison_svg(const MethodComparison& c);
// The JSON summary:
//   {"shots": K, "methods": [...],
//    "datasets": {"<dataset>": {"<method>": {"accuracy": mean, "accuracy_std": std,
//                 "seeds": [...], "accuracy_wiseft": mean, "accuracy_wiseft_std": std}}},
//    "average": {"<method>": mean}, "averaged_datasets": {"<method>": n},
//    "missing_datasets": {"<method>": ["<dataset>", ...]},
//    "average_wiseft": {"<method>": mean}       (only methods with one; the key only if any),
//    "<key>_accuracy": the method's average, for every method,
//    "per_dataset": {"<dataset>": {"<key>_accuracy": mean}}}
// where key is "zero_shot" for the method "zeroshot" and the method name otherwise; a cell
// without a run is absent; the WiSE-FT keys of a cell only when its runs have it. Throws when
// two methods give the same key (e.g. "zero_shot" next to "zeroshot").
nlohmann::json comparison_json(const MethodComparison& c);
// Adds a numeric top-level key to `j` from "KEY=NUMBER" (KEY of letters, digits, '_', '-', '.';
// NUMBER an integer, stored as one, or a finite decimal number). Throws on another form or when
// `j` already has KEY.
void add_json_number_field(nlohmann::json& j, const std::string& key_equals_number);

}  // namespace tgpt
