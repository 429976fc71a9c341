/*
 * summary.cpp — finding run folders, statistics over seeds, the Markdown, CSV and SVG
 * renderings of `tgpt-eval summarize`, and the methods-side-by-side comparison of
 * `tgpt-eval compare` (Markdown, grouped bar chart, JSON) (summary.h).
 */
#include "train/summary.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string_view>
#include <tuple>

#include "base/error.h"

namespace tgpt {

namespace fs = std::filesystem;

SeedStats mean_std(const std::vector<double>& values) {
  TGPT_CHECK(!values.empty(), "mean_std: no values");
  SeedStats s;
  s.n = static_cast<int64_t>(values.size());
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(s.n);
  double sq = 0;
  for (double v : values) sq += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(sq / static_cast<double>(s.n));
  return s;
}

// ---------------------------------------------------------------------------------------------
// Reading runs

namespace {

// "16shots" -> 16 (prefix "", suffix "shots"), "seed1" -> 1 (prefix "seed", suffix ""): the name
// is prefix, 1-9 ASCII digits, suffix; nullopt when it is not of that form.
std::optional<int64_t> folder_number(const std::string& name, std::string_view prefix,
                                     std::string_view suffix) {
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix))
    return std::nullopt;
  const std::string_view digits =
      std::string_view(name).substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  int64_t v = 0;
  const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (r.ec != std::errc()) return std::nullopt;
  return v;
}

std::optional<int64_t> shots_folder_number(const std::string& name) {
  return folder_number(name, "", "shots");
}
std::optional<int64_t> seed_folder_number(const std::string& name) {
  return folder_number(name, "seed", "");
}

// An integer key of metrics.json that must agree with its folder's number.
int64_t json_int_or_folder(const nlohmann::json& j, const char* key, int64_t folder,
                           const std::string& folder_name, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return folder;
  const nlohmann::json& v = j[key];
  TGPT_CHECK(v.is_number_integer(), "metrics file '", path, "': \"", key,
             "\" must be an integer, got ", v.dump());
  const int64_t x = v.get<int64_t>();
  TGPT_CHECK(x == folder, "metrics file '", path, "': \"", key, "\" is ", x,
             " but the run folder is ", folder_name);
  return x;
}

std::optional<double> json_percent(const nlohmann::json& j, const char* key,
                                   const std::string& path, bool required) {
  if (!j.contains(key) || j[key].is_null()) {
    TGPT_CHECK(!required, "metrics file '", path, "': no \"", key, "\"");
    return std::nullopt;
  }
  const nlohmann::json& v = j[key];
  TGPT_CHECK(v.is_number(), "metrics file '", path, "': \"", key, "\" must be a number, got ",
             v.dump());
  const double x = v.get<double>();
  TGPT_CHECK(std::isfinite(x), "metrics file '", path, "': \"", key, "\" is not finite");
  return x;
}

}  // namespace

RunMetrics read_run_metrics(const std::string& metrics_json, const std::string& dataset_dir,
                            const std::string& shots_dir, const std::string& seed_dir) {
  const std::optional<int64_t> folder_shots = shots_folder_number(shots_dir);
  const std::optional<int64_t> folder_seed = seed_folder_number(seed_dir);
  TGPT_CHECK(folder_shots && folder_seed && !dataset_dir.empty(), "metrics file '", metrics_json,
             "' is not in a <dataset>/<K>shots/seed<S>/ folder");
  std::ifstream f(metrics_json, std::ios::binary);
  TGPT_CHECK(f, "cannot read metrics file '", metrics_json, "'");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    TGPT_FAIL("metrics file '", metrics_json, "' is not valid JSON: ", e.what());
  }
  TGPT_CHECK(j.is_object(), "metrics file '", metrics_json, "' is not a JSON object");

  RunMetrics r;
  r.path = metrics_json;
  for (const char* key : {"method", "task"}) {
    if (!j.contains(key)) continue;
    TGPT_CHECK(j[key].is_string() && !j[key].get<std::string>().empty(), "metrics file '",
               metrics_json, "': \"", key, "\" must be a non-empty string, got ", j[key].dump());
    r.method = j[key].get<std::string>();
    break;
  }
  TGPT_CHECK(!r.method.empty(), "metrics file '", metrics_json,
             "': no \"method\" (e.g. \"tgpt\", \"coop\", \"zeroshot\")");
  r.dataset = dataset_dir;
  if (j.contains("dataset") && !j["dataset"].is_null()) {
    TGPT_CHECK(j["dataset"].is_string() && !j["dataset"].get<std::string>().empty(),
               "metrics file '", metrics_json, "': \"dataset\" must be a non-empty string");
    r.dataset = j["dataset"].get<std::string>();
  }
  r.shots = json_int_or_folder(j, "shots", *folder_shots, shots_dir, metrics_json);
  r.seed = json_int_or_folder(j, "seed", *folder_seed, seed_dir, metrics_json);
  r.accuracy = *json_percent(j, "accuracy", metrics_json, true);
  r.accuracy_wiseft = json_percent(j, "accuracy_wiseft", metrics_json, false);
  return r;
}

RunSearch find_runs(const std::vector<std::string>& dirs) {
  TGPT_CHECK(!dirs.empty(), "find_runs: no directories given");
  // By canonical path (overlapping directories find a file once), the path as found.
  std::map<fs::path, fs::path> files;
  RunSearch out;
  for (const std::string& d : dirs) {
    std::error_code ec;
    TGPT_CHECK(fs::is_directory(d, ec), "'", d, "' is not a directory");
    try {
      for (fs::recursive_directory_iterator it(d, fs::directory_options::skip_permission_denied),
           end;
           it != end; ++it) {
        if (it->path().filename() != "metrics.json" || !it->is_regular_file()) continue;
        files.emplace(fs::weakly_canonical(it->path()), it->path());
      }
    } catch (const fs::filesystem_error& e) {
      TGPT_FAIL("cannot search '", d, "': ", e.what());
    }
  }
  std::map<std::tuple<std::string, std::string, int64_t, int64_t>, std::string> seen;
  for (const auto& [canonical, p] : files) {
    const fs::path seed_dir = p.parent_path();
    const fs::path shots_dir = seed_dir.parent_path();
    const fs::path dataset_dir = shots_dir.parent_path();
    if (!seed_folder_number(seed_dir.filename().string()) ||
        !shots_folder_number(shots_dir.filename().string()) || dataset_dir.filename().empty() ||
        dataset_dir == dataset_dir.root_path()) {
      out.ignored.push_back(p.string());
      continue;
    }
    RunMetrics r = read_run_metrics(p.string(), dataset_dir.filename().string(),
                                    shots_dir.filename().string(), seed_dir.filename().string());
    const auto key = std::make_tuple(r.method, r.dataset, r.shots, r.seed);
    const auto [it, fresh] = seen.emplace(key, r.path);
    TGPT_CHECK(fresh, "two runs of method ", r.method, ", dataset ", r.dataset, ", ", r.shots,
               " shots, seed ", r.seed, ": '", it->second, "' and '", r.path, "'");
    out.runs.push_back(std::move(r));
  }
  std::string where;
  for (const std::string& d : dirs) where += (where.empty() ? "'" : ", '") + d + "'";
  const std::string others = out.ignored.empty()
                                 ? ""
                                 : " (only " + std::to_string(out.ignored.size()) +
                                       " metrics.json files outside that layout, e.g. '" +
                                       out.ignored.front() + "')";
  TGPT_CHECK(!out.runs.empty(), "no run folders <dataset>/<K>shots/seed<S>/metrics.json under ",
             where, others);
  std::sort(out.runs.begin(), out.runs.end(), [](const RunMetrics& a, const RunMetrics& b) {
    return std::tie(a.method, a.dataset, a.shots, a.seed) <
           std::tie(b.method, b.dataset, b.shots, b.seed);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tables

namespace {

// The seeds (ascending) and the statistics of the runs of one (method, dataset, shots); sorts
// `rs` by seed.
void stats_over_seeds(std::vector<const RunMetrics*>& rs, std::vector<int64_t>& seeds,
                      SeedStats& accuracy, std::optional<SeedStats>& accuracy_wiseft) {
  std::sort(rs.begin(), rs.end(),
            [](const RunMetrics* a, const RunMetrics* b) { return a->seed < b->seed; });
  std::vector<double> acc, wiseft;
  for (const RunMetrics* r : rs) {
    seeds.push_back(r->seed);
    acc.push_back(r->accuracy);
    if (r->accuracy_wiseft) wiseft.push_back(*r->accuracy_wiseft);
  }
  accuracy = mean_std(acc);
  if (!wiseft.empty()) accuracy_wiseft = mean_std(wiseft);
}

}  // namespace

std::vector<SummaryTable> summarize_runs(const std::vector<RunMetrics>& runs) {
  std::map<std::pair<std::string, int64_t>, std::map<std::string, std::vector<const RunMetrics*>>>
      groups;
  for (const RunMetrics& r : runs) groups[{r.method, r.shots}][r.dataset].push_back(&r);
  std::vector<SummaryTable> tables;
  for (auto& [method_shots, datasets] : groups) {
    SummaryTable t;
    t.method = method_shots.first;
    t.shots = method_shots.second;
    bool all_wiseft = true;
    double sum = 0, sum_wiseft = 0;
    for (auto& [dataset, rs] : datasets) {
      SummaryRow row;
      row.dataset = dataset;
      stats_over_seeds(rs, row.seeds, row.accuracy, row.accuracy_wiseft);
      sum += row.accuracy.mean;
      if (row.accuracy_wiseft)
        sum_wiseft += row.accuracy_wiseft->mean;
      else
        all_wiseft = false;
      t.rows.push_back(std::move(row));
    }
    const double n = static_cast<double>(t.rows.size());
    t.average_accuracy = sum / n;
    if (all_wiseft) t.average_wiseft = sum_wiseft / n;
    tables.push_back(std::move(t));
  }
  return tables;
}

namespace {

std::string fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string shortest(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string join_seeds(const std::vector<int64_t>& seeds, const char* sep) {
  std::string out;
  for (size_t k = 0; k < seeds.size(); ++k) {
    if (k) out += sep;
    out += std::to_string(seeds[k]);
  }
  return out;
}

// A Markdown table cell: '|' escaped.
std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
          out += ' ';
        else
          out += c;
    }
  }
  return out;
}

}  // namespace

std::string summary_markdown(const std::vector<SummaryTable>& tables) {
  std::ostringstream md;
  for (const SummaryTable& t : tables) {
    bool wiseft = false;
    for (const SummaryRow& r : t.rows) wiseft = wiseft || r.accuracy_wiseft.has_value();
    md << "## " << md_cell(t.method) << ", " << t.shots << (t.shots == 1 ? " shot" : " shots")
       << "\n\n";
    md << "| Dataset | Seeds | Accuracy (%) |" << (wiseft ? " WiSE-FT (%) |" : "") << "\n";
    md << "|:--|:--|--:|" << (wiseft ? "--:|" : "") << "\n";
    for (const SummaryRow& r : t.rows) {
      md << "| " << md_cell(r.dataset) << " | " << join_seeds(r.seeds, ", ") << " | "
         << fixed2(r.accuracy.mean) << " ± " << fixed2(r.accuracy.std) << " |";
      if (wiseft) {
        if (r.accuracy_wiseft) {
          md << ' ' << fixed2(r.accuracy_wiseft->mean) << " ± " << fixed2(r.accuracy_wiseft->std);
          if (r.accuracy_wiseft->n != r.accuracy.n) md << " (" << r.accuracy_wiseft->n << " seeds)";
          md << " |";
        } else {
          md << " – |";
        }
      }
      md << "\n";
    }
    md << "| **Average** (" << t.rows.size() << (t.rows.size() == 1 ? " dataset" : " datasets")
       << ") | | **" << fixed2(t.average_accuracy) << "** |";
    if (wiseft)
      md << (t.average_wiseft ? " **" + fixed2(*t.average_wiseft) + "** |"
                              : std::string(" – (not every dataset has WiSE-FT) |"));
    md << "\n\n";
  }
  md << "Top-1 accuracy on the test set, mean ± standard deviation over seeds; the standard "
        "deviation is the population one (numpy's default, ddof=0). Average: the mean of the "
        "per-dataset means.\n";
  return md.str();
}

std::string summary_csv(const std::vector<SummaryTable>& tables) {
  std::ostringstream csv;
  csv << "method,shots,dataset,num_seeds,seeds,accuracy_mean,accuracy_std,accuracy_wiseft_mean,"
         "accuracy_wiseft_std\n";
  for (const SummaryTable& t : tables) {
    for (const SummaryRow& r : t.rows) {
      csv << csv_field(t.method) << ',' << t.shots << ',' << csv_field(r.dataset) << ','
          << r.accuracy.n << ',' << join_seeds(r.seeds, " ") << ',' << shortest(r.accuracy.mean)
          << ',' << shortest(r.accuracy.std) << ',';
      if (r.accuracy_wiseft)
        csv << shortest(r.accuracy_wiseft->mean) << ',' << shortest(r.accuracy_wiseft->std);
      else
        csv << ',';
      csv << '\n';
    }
    csv << csv_field(t.method) << ',' << t.shots << ",Average,,," << shortest(t.average_accuracy)
        << ",," << (t.average_wiseft ? shortest(*t.average_wiseft) : std::string()) << ",\n";
  }
  return csv.str();
}

// ---------------------------------------------------------------------------------------------
// SVG plot

namespace {

struct Series {
  std::string method;
  std::vector<std::pair<int64_t, double>> points;  // (shots, average accuracy), by shots
  std::vector<size_t> datasets;                    // per point: how many datasets it averages
  bool mixed_datasets = false;  // the points do not all average the same datasets
};

// A "nice" tick step (1, 2, 2.5 or 5 times a power of ten) giving about `target` intervals.
double nice_step(double range, int target) {
  const double raw = range / target;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Line and bar colours (matplotlib's tab10).
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string tick_label(double v, double step) {
  char buf[32];
  const int decimals = step >= 1 ? 0 : step >= 0.1 ? 1 : 2;
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace

std::string summary_svg(const std::vector<SummaryTable>& tables) {
  // Series: one per method; zeroshot is a level.
  std::map<std::string, std::vector<const SummaryTable*>> by_method;
  for (const SummaryTable& t : tables) by_method[t.method].push_back(&t);
  std::vector<Series> series;
  std::optional<double> zeroshot;
  bool zeroshot_mixed = false;
  std::set<size_t> dataset_counts;
  for (const auto& [method, ts] : by_method) {
    Series s;
    s.method = method;
    std::set<std::set<std::string>> dataset_sets;
    double sum = 0;
    for (const SummaryTable* t : ts) {
      std::set<std::string> names;
      for (const SummaryRow& r : t->rows) names.insert(r.dataset);
      dataset_sets.insert(names);
      dataset_counts.insert(names.size());
      s.points.emplace_back(t->shots, t->average_accuracy);
      s.datasets.push_back(names.size());
      sum += t->average_accuracy;
    }
    s.mixed_datasets = dataset_sets.size() > 1;
    if (method == "zeroshot") {
      zeroshot = sum / static_cast<double>(ts.size());
      zeroshot_mixed = s.mixed_datasets;
    } else {
      series.push_back(std::move(s));
    }
  }

  // Axes' ranges.
  std::set<int64_t> xs;
  double ymin = INFINITY, ymax = -INFINITY;
  for (const Series& s : series)
    for (const auto& [x, y] : s.points) {
      xs.insert(x);
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  if (zeroshot) {
    ymin = std::min(ymin, *zeroshot);
    ymax = std::max(ymax, *zeroshot);
  }
  if (!std::isfinite(ymin)) ymin = 0, ymax = 100;
  const double yspan = std::max(ymax - ymin, 2.0);
  const double step = nice_step(yspan * 1.1, 6);
  const double ylo = std::floor((ymin - 0.05 * yspan) / step) * step;
  const double yhi = std::ceil((ymax + 0.05 * yspan) / step) * step;
  const bool log_x = !xs.empty() && *xs.begin() > 0;
  auto ux = [&](int64_t x) { return log_x ? std::log2(static_cast<double>(x)) : double(x); };
  double umin = xs.empty() ? 0 : ux(*xs.begin()), umax = xs.empty() ? 1 : ux(*xs.rbegin());
  if (umax - umin < 1e-9) umin -= 1, umax += 1;

  const double width = 760, height = 480;
  const double left = 70, right = width - 210, top = 56, bottom = height - 64;
  const double pad = 0.05 * (right - left);
  auto px = [&](int64_t x) {
    return left + pad + (ux(x) - umin) / (umax - umin) * (right - left - 2 * pad);
  };
  auto py = [&](double y) { return bottom - (y - ylo) / (yhi - ylo) * (bottom - top); };

  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << width
      << "\" height=\"" << height << "\" viewBox=\"0 0 " << width << ' ' << height
      << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">\n";
  svg << "<rect x=\"0\" y=\"0\" width=\"" << width << "\" height=\"" << height
      << "\" fill=\"white\"/>\n";
  std::string title = "Average top-1 accuracy over datasets";
  if (dataset_counts.size() == 1)
    title = "Average top-1 accuracy over " + std::to_string(*dataset_counts.begin()) +
            (*dataset_counts.begin() == 1 ? " dataset" : " datasets");
  svg << "<text x=\"" << num((left + right) / 2) << "\" y=\"30\" text-anchor=\"middle\" "
      << "font-size=\"16\">" << xml_escape(title) << "</text>\n";

  // Grid and y ticks.
  svg << "<g stroke=\"#dddddd\" stroke-width=\"1\">\n";
  const int nticks = static_cast<int>(std::lround((yhi - ylo) / step));
  for (int k = 0; k <= nticks; ++k) {
    const double y = py(ylo + k * step);
    svg << "<line x1=\"" << num(left) << "\" y1=\"" << num(y) << "\" x2=\"" << num(right)
        << "\" y2=\"" << num(y) << "\"/>\n";
  }
  svg << "</g>\n<g text-anchor=\"end\">\n";
  for (int k = 0; k <= nticks; ++k) {
    const double v = ylo + k * step;
    svg << "<text x=\"" << num(left - 8) << "\" y=\"" << num(py(v) + 4) << "\">"
        << tick_label(v, step) << "</text>\n";
  }
  svg << "</g>\n";
  // Axes and x ticks.
  svg << "<g stroke=\"black\" stroke-width=\"1\">\n"
      << "<line x1=\"" << num(left) << "\" y1=\"" << num(bottom) << "\" x2=\"" << num(right)
      << "\" y2=\"" << num(bottom) << "\"/>\n"
      << "<line x1=\"" << num(left) << "\" y1=\"" << num(top) << "\" x2=\"" << num(left)
      << "\" y2=\"" << num(bottom) << "\"/>\n";
  for (int64_t x : xs)
    svg << "<line x1=\"" << num(px(x)) << "\" y1=\"" << num(bottom) << "\" x2=\"" << num(px(x))
        << "\" y2=\"" << num(bottom + 5) << "\"/>\n";
  svg << "</g>\n<g text-anchor=\"middle\">\n";
  for (int64_t x : xs)
    svg << "<text x=\"" << num(px(x)) << "\" y=\"" << num(bottom + 20) << "\">" << x << "</text>\n";
  svg << "</g>\n";
  svg << "<text x=\"" << num((left + right) / 2) << "\" y=\"" << num(height - 20)
      << "\" text-anchor=\"middle\">shots per class" << (log_x ? " (log scale)" : "")
      << "</text>\n";
  svg << "<text x=\"18\" y=\"" << num((top + bottom) / 2) << "\" text-anchor=\"middle\" "
      << "transform=\"rotate(-90 18 " << num((top + bottom) / 2) << ")\">accuracy (%)</text>\n";

  // Zero-shot level, then one polyline per method.
  if (zeroshot)
    svg << "<line x1=\"" << num(left) << "\" y1=\"" << num(py(*zeroshot)) << "\" x2=\""
        << num(right) << "\" y2=\"" << num(py(*zeroshot))
        << "\" stroke=\"#444444\" stroke-width=\"2\" stroke-dasharray=\"6 4\"><title>zeroshot: "
        << fixed2(*zeroshot) << "%</title></line>\n";
  for (size_t m = 0; m < series.size(); ++m) {
    const Series& s = series[m];
    const char* color = kColors[m % std::size(kColors)];
    svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (size_t k = 0; k < s.points.size(); ++k)
      svg << (k ? " " : "") << num(px(s.points[k].first)) << ',' << num(py(s.points[k].second));
    svg << "\"/>\n";
    for (size_t k = 0; k < s.points.size(); ++k)
      svg << "<circle cx=\"" << num(px(s.points[k].first)) << "\" cy=\""
          << num(py(s.points[k].second)) << "\" r=\"4\" fill=\"" << color << "\"><title>"
          << xml_escape(s.method) << ", " << s.points[k].first
          << " shots: " << fixed2(s.points[k].second) << "% (" << s.datasets[k]
          << " datasets)</title></circle>\n";
  }

  // Legend.
  double ly = top + 10;
  bool footnote = false;
  const double lx = right + 20;
  for (size_t m = 0; m < series.size(); ++m) {
    const char* color = kColors[m % std::size(kColors)];
    svg << "<line x1=\"" << num(lx) << "\" y1=\"" << num(ly) << "\" x2=\"" << num(lx + 28)
        << "\" y2=\"" << num(ly) << "\" stroke=\"" << color << "\" stroke-width=\"2\"/>\n"
        << "<circle cx=\"" << num(lx + 14) << "\" cy=\"" << num(ly) << "\" r=\"4\" fill=\"" << color
        << "\"/>\n"
        << "<text x=\"" << num(lx + 36) << "\" y=\"" << num(ly + 4) << "\">"
        << xml_escape(series[m].method) << (series[m].mixed_datasets ? " *" : "") << "</text>\n";
    footnote = footnote || series[m].mixed_datasets;
    ly += 22;
  }
  if (zeroshot) {
    svg << "<line x1=\"" << num(lx) << "\" y1=\"" << num(ly) << "\" x2=\"" << num(lx + 28)
        << "\" y2=\"" << num(ly)
        << "\" stroke=\"#444444\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
        << "<text x=\"" << num(lx + 36) << "\" y=\"" << num(ly + 4) << "\">zeroshot"
        << (zeroshot_mixed ? " *" : "") << "</text>\n";
    footnote = footnote || zeroshot_mixed;
    ly += 22;
  }
  if (footnote)
    svg << "<text x=\"" << num(lx) << "\" y=\"" << num(ly + 8) << "\" font-size=\"11\">"
        << "* points average different datasets</text>\n";
  svg << "</svg>\n";
  return svg.str();
}

// ---------------------------------------------------------------------------------------------
// Methods side by side at one shot count

namespace {

// Column order: zeroshot, coop, tgpt, then the others by name.
bool method_before(const std::string& a, const std::string& b) {
  auto rank = [](const std::string& m) {
    return m == "zeroshot" ? 0 : m == "coop" ? 1 : m == "tgpt" ? 2 : 3;
  };
  return std::make_pair(rank(a), a) < std::make_pair(rank(b), b);
}

std::string shots_words(int64_t shots) {
  return std::to_string(shots) + (shots == 1 ? " shot" : " shots");
}

// "zero_shot" for the method "zeroshot", the method name otherwise (JSON "<key>_accuracy").
std::string result_key(const std::string& method) {
  return method == "zeroshot" ? "zero_shot" : method;
}

std::string datasets_words(int64_t n) {
  return std::to_string(n) + (n == 1 ? " dataset" : " datasets");
}

// "12.34 ± 0.56", or "12.34" for one seed.
std::string cell_text(const SeedStats& s) {
  return s.n == 1 ? fixed2(s.mean) : fixed2(s.mean) + " ± " + fixed2(s.std);
}

// "SynthColors, SynthShapes"
std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

MethodComparison compare_methods(const std::vector<RunMetrics>& runs, int64_t shots) {
  TGPT_CHECK(shots >= 0, "compare: the shot count must be >= 0, got ", shots);
  // method -> dataset -> runs
  std::map<std::string, std::map<std::string, std::vector<const RunMetrics*>>> groups;
  std::set<int64_t> shot_counts;  // of the runs other than zero-shot ones
  bool any_zeroshot = false;
  for (const RunMetrics& r : runs) {
    if (r.method == "zeroshot") {
      groups[r.method][r.dataset].push_back(&r);
      any_zeroshot = true;
      continue;
    }
    shot_counts.insert(r.shots);
    if (r.shots == shots) groups[r.method][r.dataset].push_back(&r);
  }
  if (groups.size() == (any_zeroshot ? 1u : 0u)) {
    TGPT_CHECK(!shot_counts.empty(), "compare: no runs other than zero-shot ones (",
               any_zeroshot ? "only \"zeroshot\" runs were found" : "no runs were given",
               "); nothing to compare at ", shots_words(shots));
    std::string have;
    for (int64_t k : shot_counts) have += (have.empty() ? "" : ", ") + std::to_string(k);
    TGPT_FAIL("compare: no run at ", shots_words(shots),
              " other than zero-shot ones; the runs have shot counts ", have);
  }

  MethodComparison c;
  c.shots = shots;
  std::set<std::string> datasets;
  for (const auto& [method, by_dataset] : groups) {
    c.methods.push_back(method);
    for (const auto& [dataset, rs] : by_dataset) datasets.insert(dataset);
  }
  std::stable_sort(c.methods.begin(), c.methods.end(), method_before);
  c.averages.resize(c.methods.size());
  std::vector<bool> all_wiseft(c.methods.size(), true);
  std::vector<double> sum(c.methods.size(), 0), sum_wiseft(c.methods.size(), 0);
  for (const std::string& dataset : datasets) {
    ComparisonRow row;
    row.dataset = dataset;
    for (size_t m = 0; m < c.methods.size(); ++m) {
      MethodAverage& avg = c.averages[m];
      auto& by_dataset = groups[c.methods[m]];
      const auto it = by_dataset.find(dataset);
      if (it == by_dataset.end()) {
        row.cells.emplace_back();
        avg.missing.push_back(dataset);
        continue;
      }
      ComparisonCell cell;
      stats_over_seeds(it->second, cell.seeds, cell.accuracy, cell.accuracy_wiseft);
      // Zero-shot runs of several shot folders: one seed must not be there twice.
      for (size_t k = 1; k < it->second.size(); ++k)
        TGPT_CHECK(it->second[k]->seed != it->second[k - 1]->seed, "two runs of method ",
                   c.methods[m], ", dataset ", dataset, ", seed ", it->second[k]->seed, ": '",
                   it->second[k - 1]->path, "' and '", it->second[k]->path, "'");
      ++avg.datasets;
      sum[m] += cell.accuracy.mean;
      if (cell.accuracy_wiseft)
        sum_wiseft[m] += cell.accuracy_wiseft->mean;
      else
        all_wiseft[m] = false;
      row.cells.push_back(std::move(cell));
    }
    c.rows.push_back(std::move(row));
  }
  for (size_t m = 0; m < c.methods.size(); ++m) {
    MethodAverage& avg = c.averages[m];
    const double n = static_cast<double>(avg.datasets);
    avg.accuracy = sum[m] / n;
    if (all_wiseft[m]) avg.accuracy_wiseft = sum_wiseft[m] / n;
  }
  return c;
}

std::string comparison_markdown(const MethodComparison& c) {
  const size_t num_datasets = c.rows.size();
  std::ostringstream md;
  md << "## Top-1 accuracy (%), " << shots_words(c.shots) << "\n\n| Dataset |";
  for (const std::string& m : c.methods) md << ' ' << md_cell(m) << " |";
  md << "\n|:--|";
  for (size_t m = 0; m < c.methods.size(); ++m) md << "--:|";
  md << "\n";
  for (const ComparisonRow& r : c.rows) {
    md << "| " << md_cell(r.dataset) << " |";
    for (const std::optional<ComparisonCell>& cell : r.cells)
      md << ' ' << (cell ? cell_text(cell->accuracy) : std::string("–")) << " |";
    md << "\n";
  }
  md << "| **Average** |";
  for (const MethodAverage& a : c.averages) {
    md << " **" << fixed2(a.accuracy) << "**";
    if (!a.missing.empty()) md << " (" << a.datasets << " of " << num_datasets << " datasets)";
    md << " |";
  }
  md << "\n\n";
  for (size_t m = 0; m < c.methods.size(); ++m) {
    const MethodAverage& a = c.averages[m];
    if (a.missing.empty()) continue;
    md << "- " << md_cell(c.methods[m]) << " has no run on " << md_cell(join_names(a.missing))
       << "; its average is over " << a.datasets << " of " << datasets_words(num_datasets) << ".\n";
  }
  for (size_t m = 0; m < c.methods.size(); ++m) {
    bool any = false;
    for (const ComparisonRow& r : c.rows) any = any || (r.cells[m] && r.cells[m]->accuracy_wiseft);
    if (!any) continue;
    md << "- " << md_cell(c.methods[m]) << " with the WiSE-FT head: average "
       << (c.averages[m].accuracy_wiseft ? fixed2(*c.averages[m].accuracy_wiseft)
                                         : std::string("– (not every dataset has WiSE-FT runs)"))
       << ".\n";
  }
  if (!c.methods.empty() && c.methods.front() == "zeroshot")
    md << "- zeroshot: CLIP zero-shot, which does not depend on the shot count.\n";
  md << "- Top-1 accuracy on the test set, mean ± standard deviation over seeds (the population "
        "one, numpy's default, ddof=0), the mean alone for one seed; Average: the mean of a "
        "method's per-dataset means.\n";
  return md.str();
}

namespace {

// Fixed colours: zeroshot grey, coop orange, tgpt blue, the others from the rest of the palette.
std::vector<std::string> method_colors(const std::vector<std::string>& methods) {
  static const char* kOthers[] = {"#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                  "#e377c2", "#bcbd22", "#17becf"};
  std::vector<std::string> colors;
  size_t other = 0;
  for (const std::string& m : methods) {
    if (m == "zeroshot")
      colors.push_back(kColors[7]);
    else if (m == "coop")
      colors.push_back(kColors[1]);
    else if (m == "tgpt")
      colors.push_back(kColors[0]);
    else
      colors.push_back(kOthers[other++ % std::size(kOthers)]);
  }
  return colors;
}

}  // namespace

std::string comparison_svg(const MethodComparison& c) {
  const std::vector<std::string> colors = method_colors(c.methods);
  const size_t num_methods = c.methods.size(), num_groups = c.rows.size() + 1;
  const double bar_w = 26, group_gap = 30, group_w = num_methods * bar_w + group_gap;
  const double left = 70, top = 60, bottom = 380;
  const double right = left + num_groups * group_w;
  const double width = std::max(480.0, right + 190), height = 420;
  auto py = [&](double v) { return bottom - std::clamp(v, 0.0, 100.0) / 100 * (bottom - top); };
  auto bar_x = [&](size_t g, size_t m) { return left + g * group_w + group_gap / 2 + m * bar_w; };

  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << num(width)
      << "\" height=\"" << num(height) << "\" viewBox=\"0 0 " << num(width) << ' ' << num(height)
      << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">\n";
  svg << "<rect x=\"0\" y=\"0\" width=\"" << num(width) << "\" height=\"" << num(height)
      << "\" fill=\"white\"/>\n";
  svg << "<text x=\"" << num((left + right) / 2) << "\" y=\"30\" text-anchor=\"middle\" "
      << "font-size=\"16\">Top-1 accuracy, " << shots_words(c.shots) << "</text>\n";

  // Grid, y ticks every 10 %, axes.
  svg << "<g stroke=\"#dddddd\" stroke-width=\"1\">\n";
  for (int v = 10; v <= 100; v += 10)
    svg << "<line x1=\"" << num(left) << "\" y1=\"" << num(py(v)) << "\" x2=\"" << num(right)
        << "\" y2=\"" << num(py(v)) << "\"/>\n";
  svg << "</g>\n<g text-anchor=\"end\">\n";
  for (int v = 0; v <= 100; v += 10)
    svg << "<text x=\"" << num(left - 8) << "\" y=\"" << num(py(v) + 4) << "\">" << v
        << "</text>\n";
  svg << "</g>\n";
  svg << "<text x=\"18\" y=\"" << num((top + bottom) / 2) << "\" text-anchor=\"middle\" "
      << "transform=\"rotate(-90 18 " << num((top + bottom) / 2) << ")\">accuracy (%)</text>\n";
  // The Average group apart from the datasets.
  const double sep = left + c.rows.size() * group_w;
  svg << "<line x1=\"" << num(sep) << "\" y1=\"" << num(top) << "\" x2=\"" << num(sep) << "\" y2=\""
      << num(bottom) << "\" stroke=\"#bbbbbb\" stroke-width=\"1\"/>\n";

  // Bars, one group per dataset, then the Average group.
  auto bar = [&](size_t g, size_t m, double mean, std::optional<double> std_dev,
                 const std::string& label, const std::string& tooltip) {
    const double x = bar_x(g, m), y = py(mean);
    svg << "<rect class=\"bar\" x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\""
        << num(bar_w - 2) << "\" height=\"" << num(bottom - y) << "\" fill=\"" << colors[m]
        << "\"><title>" << xml_escape(tooltip) << "</title></rect>\n";
    double label_y = y;
    if (std_dev && *std_dev > 0) {
      const double cx = x + (bar_w - 2) / 2;
      const double y_lo = py(mean - *std_dev), y_hi = py(mean + *std_dev);
      svg << "<g stroke=\"black\" stroke-width=\"1\"><line x1=\"" << num(cx) << "\" y1=\""
          << num(y_lo) << "\" x2=\"" << num(cx) << "\" y2=\"" << num(y_hi) << "\"/><line x1=\""
          << num(cx - 4) << "\" y1=\"" << num(y_hi) << "\" x2=\"" << num(cx + 4) << "\" y2=\""
          << num(y_hi) << "\"/></g>\n";
      label_y = std::min(label_y, y_hi);
    }
    svg << "<text x=\"" << num(x + (bar_w - 2) / 2) << "\" y=\"" << num(label_y - 4)
        << "\" text-anchor=\"middle\" font-size=\"10\">" << xml_escape(label) << "</text>\n";
  };
  for (size_t g = 0; g < c.rows.size(); ++g) {
    const ComparisonRow& r = c.rows[g];
    for (size_t m = 0; m < num_methods; ++m) {
      if (!r.cells[m]) {
        svg << "<text x=\"" << num(bar_x(g, m) + (bar_w - 2) / 2) << "\" y=\"" << num(bottom - 4)
            << "\" text-anchor=\"middle\" font-size=\"10\" fill=\"#888888\">"
            << "n/a<title>" << xml_escape(c.methods[m] + ", " + r.dataset + ": no run")
            << "</title></text>\n";
        continue;
      }
      const ComparisonCell& cell = *r.cells[m];
      std::string tooltip = c.methods[m] + ", " + r.dataset + ": " + cell_text(cell.accuracy) +
                            "% (" + (cell.seeds.size() == 1 ? "seed " : "seeds ") +
                            join_seeds(cell.seeds, ", ") + ")";
      if (cell.accuracy_wiseft) tooltip += "; WiSE-FT " + cell_text(*cell.accuracy_wiseft) + "%";
      bar(g, m, cell.accuracy.mean,
          cell.accuracy.n > 1 ? std::optional<double>(cell.accuracy.std) : std::nullopt,
          num(cell.accuracy.mean), tooltip);
    }
  }
  bool flagged = false;
  for (size_t m = 0; m < num_methods; ++m) {
    const MethodAverage& a = c.averages[m];
    const bool fewer = !a.missing.empty();
    flagged = flagged || fewer;
    std::string tooltip = c.methods[m] + ", Average over " +
                          (fewer ? std::to_string(a.datasets) + " of " : std::string()) +
                          datasets_words(static_cast<int64_t>(c.rows.size())) + ": " +
                          fixed2(a.accuracy) + "%";
    if (fewer) tooltip += " (no run on " + join_names(a.missing) + ")";
    bar(c.rows.size(), m, a.accuracy, std::nullopt, num(a.accuracy) + (fewer ? "*" : ""), tooltip);
  }

  // Axis and group labels.
  svg << "<line x1=\"" << num(left) << "\" y1=\"" << num(bottom) << "\" x2=\"" << num(right)
      << "\" y2=\"" << num(bottom) << "\" stroke=\"black\" stroke-width=\"1\"/>\n"
      << "<line x1=\"" << num(left) << "\" y1=\"" << num(top) << "\" x2=\"" << num(left)
      << "\" y2=\"" << num(bottom) << "\" stroke=\"black\" stroke-width=\"1\"/>\n";
  svg << "<g text-anchor=\"middle\">\n";
  for (size_t g = 0; g < num_groups; ++g)
    svg << "<text x=\"" << num(left + (g + 0.5) * group_w) << "\" y=\"" << num(bottom + 20) << "\""
        << (g == c.rows.size() ? " font-weight=\"bold\"" : "") << ">"
        << xml_escape(g < c.rows.size() ? c.rows[g].dataset : std::string("Average"))
        << "</text>\n";
  svg << "</g>\n";

  // Legend.
  const double lx = right + 20;
  double ly = top + 10;
  for (size_t m = 0; m < num_methods; ++m) {
    svg << "<rect class=\"legend\" x=\"" << num(lx) << "\" y=\"" << num(ly - 7)
        << "\" width=\"14\" height=\"14\" fill=\"" << colors[m] << "\"/>\n"
        << "<text x=\"" << num(lx + 22) << "\" y=\"" << num(ly + 4) << "\">"
        << xml_escape(c.methods[m]) << (c.averages[m].missing.empty() ? "" : " *") << "</text>\n";
    ly += 22;
  }
  if (flagged)
    svg << "<text x=\"" << num(lx) << "\" y=\"" << num(ly + 8) << "\" font-size=\"11\">"
        << "* average over fewer datasets</text>\n";
  svg << "</svg>\n";
  return svg.str();
}

nlohmann::json comparison_json(const MethodComparison& c) {
  nlohmann::json j = nlohmann::json::object();
  j["shots"] = c.shots;
  j["methods"] = c.methods;
  std::map<std::string, std::string> key_of;  // "<key>_accuracy" -> method
  for (const std::string& m : c.methods) {
    const std::string key = result_key(m) + "_accuracy";
    const auto [it, fresh] = key_of.emplace(key, m);
    TGPT_CHECK(fresh, "compare: methods \"", it->second, "\" and \"", m,
               "\" would both be reported as \"", key, "\"");
  }
  nlohmann::json datasets = nlohmann::json::object(), per_dataset = nlohmann::json::object();
  for (const ComparisonRow& r : c.rows) {
    nlohmann::json cells = nlohmann::json::object(), keys = nlohmann::json::object();
    for (size_t m = 0; m < c.methods.size(); ++m) {
      if (!r.cells[m]) continue;
      const ComparisonCell& cell = *r.cells[m];
      nlohmann::json e = {{"accuracy", cell.accuracy.mean},
                          {"accuracy_std", cell.accuracy.std},
                          {"seeds", cell.seeds}};
      if (cell.accuracy_wiseft) {
        e["accuracy_wiseft"] = cell.accuracy_wiseft->mean;
        e["accuracy_wiseft_std"] = cell.accuracy_wiseft->std;
      }
      cells[c.methods[m]] = std::move(e);
      keys[result_key(c.methods[m]) + "_accuracy"] = cell.accuracy.mean;
    }
    datasets[r.dataset] = std::move(cells);
    per_dataset[r.dataset] = std::move(keys);
  }
  j["datasets"] = std::move(datasets);
  nlohmann::json average = nlohmann::json::object(), counts = nlohmann::json::object(),
                 missing = nlohmann::json::object(), wiseft = nlohmann::json::object();
  for (size_t m = 0; m < c.methods.size(); ++m) {
    const MethodAverage& a = c.averages[m];
    average[c.methods[m]] = a.accuracy;
    counts[c.methods[m]] = a.datasets;
    missing[c.methods[m]] = a.missing;
    if (a.accuracy_wiseft) wiseft[c.methods[m]] = *a.accuracy_wiseft;
    j[result_key(c.methods[m]) + "_accuracy"] = a.accuracy;
  }
  j["average"] = std::move(average);
  j["averaged_datasets"] = std::move(counts);
  j["missing_datasets"] = std::move(missing);
  if (!wiseft.empty()) j["average_wiseft"] = std::move(wiseft);
  j["per_dataset"] = std::move(per_dataset);
  return j;
}

void add_json_number_field(nlohmann::json& j, const std::string& key_equals_number) {
  const size_t eq = key_equals_number.find('=');
  TGPT_CHECK(eq != std::string::npos, "--field '", key_equals_number,
             "': expected KEY=NUMBER (e.g. main_job_seconds=512.3)");
  const std::string key = key_equals_number.substr(0, eq);
  const std::string value = key_equals_number.substr(eq + 1);
  const bool key_ok = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
  TGPT_CHECK(key_ok, "--field '", key_equals_number, "': the key \"", key,
             "\" must be letters, digits, '_', '-' or '.'");
  TGPT_CHECK(j.is_object() && !j.contains(key), "--field '", key_equals_number, "': the key \"",
             key, "\" is already in the JSON summary");
  const char* first = value.data();
  const char* last = value.data() + value.size();
  int64_t integer = 0;
  if (const auto r = std::from_chars(first, last, integer);
      !value.empty() && r.ec == std::errc() && r.ptr == last) {
    j[key] = integer;
    return;
  }
  double number = 0;
  const auto r = std::from_chars(first, last, number);
  TGPT_CHECK(!value.empty() && r.ec == std::errc() && r.ptr == last && std::isfinite(number),
             "--field '", key_equals_number, "': \"", value, "\" is not a finite number");
  j[key] = number;
}

}  // namespace tgpt
