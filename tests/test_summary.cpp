/*
 * test_summary.cpp — `tgpt-eval summarize` (train/summary.h): a generated tree of run folders
 * gives exact table values (mean and population std over seeds, the Average row), the CSV parses
 * back to the same numbers, the SVG is well-formed XML (parsed with expat) with one polyline per
 * method and a dashed zero-shot line, and bad trees (duplicate runs, broken JSON, a seed that
 * disagrees with its folder) give errors naming the files.
 */
#include <expat.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "tests/test_files.h"
#include "train/summary.h"

namespace tgpt {
namespace {

namespace fs = std::filesystem;

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

fs::path temp_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("tgpt_test_summary_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Writes <root>/<dataset>/<shots>shots/seed<seed>/metrics.json.
void write_run(const fs::path& root, const nlohmann::json& j, const std::string& dataset, int shots,
               int seed) {
  const fs::path d =
      root / dataset / (std::to_string(shots) + "shots") / ("seed" + std::to_string(seed));
  fs::create_directories(d);
  test::write_file((d / "metrics.json").string(), j.dump(2));
}

// The generated tree: tgpt (with WiSE-FT) and coop at 1 and 16 shots on two datasets, three
// seeds each, under two roots at different depths; zero-shot runs written by tgpt-eval
// ("task" instead of "method"); one metrics.json outside the layout.
struct Tree {
  fs::path dir;
  // accuracy of (method, dataset, shots, seed)
  static double acc(const std::string& method, const std::string& dataset, int shots, int seed) {
    const double base =
        (method == "tgpt" ? 80 : 70) + (dataset == "EuroSAT" ? -10 : 0) + (shots == 16 ? 8 : 0);
    return base + 2.0 * (seed - 2) + (seed == 3 ? 0.25 : 0);
  }
  explicit Tree(const std::string& name) : dir(temp_dir(name)) {
    for (const std::string method : {"tgpt", "coop"})
      for (const std::string dataset : {"OxfordPets", "EuroSAT"})
        for (int shots : {1, 16})
          for (int seed : {1, 2, 3}) {
            nlohmann::json j = {{"method", method},
                                {"dataset", dataset},
                                {"shots", shots},
                                {"seed", seed},
                                {"accuracy", acc(method, dataset, shots, seed)},
                                {"num_images", 100},
                                {"top5_accuracy", 99.0}};
            if (method == "tgpt") j["accuracy_wiseft"] = acc(method, dataset, shots, seed) + 0.5;
            const fs::path root = method == "tgpt" ? dir / "a" / "b" / "output" : dir / "coop_runs";
            write_run(root, j, dataset, shots, seed);
          }
    write_run(dir / "zs", {{"task", "zeroshot"}, {"accuracy", 50.0}}, "OxfordPets", 0, 1);
    write_run(dir / "zs", {{"task", "zeroshot"}, {"accuracy", 40.0}}, "EuroSAT", 0, 1);
    fs::create_directories(dir / "loose");
    test::write_file((dir / "loose" / "metrics.json").string(), R"({"accuracy": 1})");
  }
  ~Tree() { fs::remove_all(dir); }
};

double population_std(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

TEST(Summary, MeanStdIsNumpysDefault) {
  const SeedStats s = mean_std({1, 2, 3, 4});
  EXPECT_EQ(s.n, 4);
  EXPECT_EQ(s.mean, 2.5);
  EXPECT_DOUBLE_EQ(s.std, std::sqrt(1.25));  // numpy.std([1,2,3,4]) = 1.118033988749895
  EXPECT_EQ(mean_std({7.5}).std, 0.0);
  EXPECT_THROW(mean_std({}), Error);
}

TEST(Summary, TablesHaveExactValues) {
  const Tree tree("tables");
  const RunSearch found = find_runs({tree.dir.string()});
  EXPECT_EQ(found.runs.size(), 2u * 2 * 2 * 3 + 2);
  ASSERT_EQ(found.ignored.size(), 1u);
  EXPECT_NE(found.ignored[0].find("loose"), std::string::npos);

  const std::vector<SummaryTable> tables = summarize_runs(found.runs);
  ASSERT_EQ(tables.size(), 5u);  // coop 1, coop 16, tgpt 1, tgpt 16, zeroshot 0
  EXPECT_EQ(tables[0].method, "coop");
  EXPECT_EQ(tables[0].shots, 1);
  EXPECT_EQ(tables[1].shots, 16);
  EXPECT_EQ(tables[4].method, "zeroshot");
  EXPECT_EQ(tables[4].shots, 0);
  for (const SummaryTable& t : tables) {
    if (t.method == "zeroshot") continue;
    ASSERT_EQ(t.rows.size(), 2u);
    EXPECT_EQ(t.rows[0].dataset, "EuroSAT");  // by name
    EXPECT_EQ(t.rows[1].dataset, "OxfordPets");
    double sum = 0, sum_w = 0;
    for (const SummaryRow& r : t.rows) {
      EXPECT_EQ(r.seeds, (std::vector<int64_t>{1, 2, 3}));
      std::vector<double> v;
      for (int seed : {1, 2, 3}) v.push_back(Tree::acc(t.method, r.dataset, int(t.shots), seed));
      const double mean = (v[0] + v[1] + v[2]) / 3;
      EXPECT_EQ(r.accuracy.n, 3);
      EXPECT_DOUBLE_EQ(r.accuracy.mean, mean) << t.method << " " << r.dataset;
      EXPECT_DOUBLE_EQ(r.accuracy.std, population_std(v));
      sum += r.accuracy.mean;
      if (t.method == "tgpt") {
        ASSERT_TRUE(r.accuracy_wiseft.has_value());
        EXPECT_DOUBLE_EQ(r.accuracy_wiseft->mean, mean + 0.5);
        EXPECT_NEAR(r.accuracy_wiseft->std, population_std(v), 1e-12);
        sum_w += r.accuracy_wiseft->mean;
      } else {
        EXPECT_FALSE(r.accuracy_wiseft.has_value());
      }
    }
    EXPECT_DOUBLE_EQ(t.average_accuracy, sum / 2);
    EXPECT_EQ(t.average_wiseft.has_value(), t.method == "tgpt");
    if (t.average_wiseft) {
      EXPECT_DOUBLE_EQ(*t.average_wiseft, sum_w / 2);
    }
  }
  // Numbers by hand for one row: tgpt, OxfordPets, 16 shots: 86, 88, 90.25.
  const SummaryRow& pets16 = tables[3].rows[1];
  EXPECT_DOUBLE_EQ(pets16.accuracy.mean, 88.083333333333333);
  EXPECT_NEAR(pets16.accuracy.std, 1.7360555546666383, 1e-12);  // numpy.std([86, 88, 90.25])
  EXPECT_DOUBLE_EQ(tables[4].average_accuracy, 45.0);

  const std::string md = summary_markdown(tables);
  EXPECT_NE(md.find("## tgpt, 16 shots\n\n| Dataset | Seeds | Accuracy (%) | WiSE-FT (%) |\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| OxfordPets | 1, 2, 3 | 88.08 ± 1.74 | 88.58 ± 1.74 |\n"), std::string::npos)
      << md;
  EXPECT_NE(md.find("## coop, 1 shot\n\n| Dataset | Seeds | Accuracy (%) |\n"), std::string::npos);
  EXPECT_NE(md.find("| **Average** (2 datasets) | | **45.00** |\n"), std::string::npos);
  EXPECT_NE(md.find("numpy's default, ddof=0"), std::string::npos);
}

// Splits CSV text (RFC 4180 quoting) into rows of fields.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1, std::vector<std::string>(1));
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        rows.back().back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        rows.back().back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().emplace_back();
    } else if (c == '\n') {
      rows.emplace_back(1);
    } else {
      rows.back().back() += c;
    }
  }
  if (rows.back().size() == 1 && rows.back()[0].empty()) rows.pop_back();
  return rows;
}

TEST(Summary, CsvParsesBack) {
  const Tree tree("csv");
  // A dataset name that needs quoting.
  write_run(tree.dir / "odd", {{"method", "tgpt"}, {"dataset", "A, \"b\""}, {"accuracy", 12.5}},
            "odd", 2, 7);
  const std::vector<SummaryTable> tables = summarize_runs(find_runs({tree.dir.string()}).runs);
  const auto rows = parse_csv(summary_csv(tables));
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0], (std::vector<std::string>{"method", "shots", "dataset", "num_seeds", "seeds",
                                               "accuracy_mean", "accuracy_std",
                                               "accuracy_wiseft_mean", "accuracy_wiseft_std"}));
  size_t line = 1;
  for (const SummaryTable& t : tables) {
    for (const SummaryRow& r : t.rows) {
      ASSERT_LT(line, rows.size());
      const auto& f = rows[line++];
      ASSERT_EQ(f.size(), 9u);
      EXPECT_EQ(f[0], t.method);
      EXPECT_EQ(std::stoll(f[1]), t.shots);
      EXPECT_EQ(f[2], r.dataset);
      EXPECT_EQ(std::stoll(f[3]), r.accuracy.n);
      std::string seeds;
      for (int64_t s : r.seeds) {
        if (!seeds.empty()) seeds += ' ';
        seeds += std::to_string(s);
      }
      EXPECT_EQ(f[4], seeds);
      EXPECT_EQ(std::strtod(f[5].c_str(), nullptr), r.accuracy.mean);  // shortest round trip
      EXPECT_EQ(std::strtod(f[6].c_str(), nullptr), r.accuracy.std);
      if (r.accuracy_wiseft) {
        EXPECT_EQ(std::strtod(f[7].c_str(), nullptr), r.accuracy_wiseft->mean);
        EXPECT_EQ(std::strtod(f[8].c_str(), nullptr), r.accuracy_wiseft->std);
      } else {
        EXPECT_EQ(f[7], "");
        EXPECT_EQ(f[8], "");
      }
    }
    ASSERT_LT(line, rows.size());
    const auto& avg = rows[line++];
    ASSERT_EQ(avg.size(), 9u);
    EXPECT_EQ(avg[0], t.method);
    EXPECT_EQ(avg[2], "Average");
    EXPECT_EQ(std::strtod(avg[5].c_str(), nullptr), t.average_accuracy);
    EXPECT_EQ(avg[7].empty(), !t.average_wiseft.has_value());
    if (t.average_wiseft) {
      EXPECT_EQ(std::strtod(avg[7].c_str(), nullptr), *t.average_wiseft);
    }
  }
  EXPECT_EQ(line, rows.size());
  bool odd = false;
  for (const auto& f : rows) odd = odd || (f.size() > 2 && f[2] == "A, \"b\"");
  EXPECT_TRUE(odd);
}

// Element counts of an XML document parsed with expat; throws on malformed XML.
struct XmlStats {
  std::string root;
  std::map<std::string, int> elements;
  int dashed_lines = 0;
  int depth = 0;
};

XmlStats parse_xml(const std::string& text) {
  XmlStats st;
  XML_Parser p = XML_ParserCreate("UTF-8");
  XML_SetUserData(p, &st);
  XML_SetElementHandler(
      p,
      [](void* ud, const XML_Char* name, const XML_Char** attrs) {
        auto* s = static_cast<XmlStats*>(ud);
        if (s->depth++ == 0) s->root = name;
        ++s->elements[name];
        if (std::string(name) == "line")
          for (int i = 0; attrs[i]; i += 2)
            if (std::string(attrs[i]) == "stroke-dasharray") ++s->dashed_lines;
      },
      [](void* ud, const XML_Char*) { --static_cast<XmlStats*>(ud)->depth; });
  const XML_Status ok = XML_Parse(p, text.data(), static_cast<int>(text.size()), 1);
  const std::string err = ok == XML_STATUS_OK ? "" : XML_ErrorString(XML_GetErrorCode(p));
  const auto line = XML_GetCurrentLineNumber(p);
  XML_ParserFree(p);
  if (!err.empty()) throw Error("malformed XML at line " + std::to_string(line) + ": " + err);
  return st;
}

TEST(Summary, SvgIsWellFormedWithOnePolylinePerMethod) {
  const Tree tree("svg");
  const std::vector<SummaryTable> tables = summarize_runs(find_runs({tree.dir.string()}).runs);
  const std::string svg = summary_svg(tables);
  XmlStats st;
  ASSERT_NO_THROW(st = parse_xml(svg)) << svg;
  EXPECT_EQ(st.root, "svg");
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_EQ(st.elements["polyline"], 2);        // tgpt, coop; zeroshot is a line
  EXPECT_EQ(st.dashed_lines, 2);                // the zero-shot level and its legend sample
  EXPECT_EQ(st.elements["circle"], 2 * 2 + 2);  // two points per method, legend markers
  EXPECT_NE(svg.find(">tgpt</text>"), std::string::npos);
  EXPECT_NE(svg.find(">coop</text>"), std::string::npos);
  EXPECT_NE(svg.find(">zeroshot</text>"), std::string::npos);
  EXPECT_NE(svg.find("log scale"), std::string::npos);

  // Without zero-shot runs, names that need escaping, and one point of a method averaging
  // other datasets.
  std::vector<RunMetrics> runs;
  for (const RunMetrics& r : find_runs({tree.dir.string()}).runs)
    if (r.method == "tgpt") runs.push_back(r);
  RunMetrics odd = runs[0];
  odd.method = "a<b>&\"c\"";
  runs.push_back(odd);
  RunMetrics extra = runs[0];
  extra.dataset = "Food101";
  runs.push_back(extra);
  const std::string svg2 = summary_svg(summarize_runs(runs));
  ASSERT_NO_THROW(st = parse_xml(svg2)) << svg2;
  EXPECT_EQ(st.elements["polyline"], 2);
  EXPECT_EQ(st.dashed_lines, 0);
  EXPECT_NE(svg2.find("a&lt;b&gt;&amp;&quot;c&quot;"), std::string::npos);
  EXPECT_NE(svg2.find(">tgpt *</text>"), std::string::npos);
  EXPECT_NE(svg2.find("points average different datasets"), std::string::npos);
}

TEST(Summary, BadTreesNameTheFiles) {
  const fs::path dir = temp_dir("bad");
  const nlohmann::json run = {{"method", "tgpt"}, {"accuracy", 80.0}};
  write_run(dir / "r1", run, "OxfordPets", 16, 1);
  write_run(dir / "r2", run, "OxfordPets", 16, 1);
  std::string e = error_of([&] { find_runs({dir.string()}); });
  EXPECT_NE(e.find("two runs of method tgpt, dataset OxfordPets, 16 shots, seed 1"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("r1/OxfordPets/16shots/seed1/metrics.json"), std::string::npos) << e;
  EXPECT_NE(e.find("r2/OxfordPets/16shots/seed1/metrics.json"), std::string::npos) << e;
  // The same folder given twice (or nested) is one run, not a duplicate.
  EXPECT_EQ(find_runs({(dir / "r1").string(), (dir / "r1" / "OxfordPets").string()}).runs.size(),
            1u);

  fs::remove_all(dir / "r2");
  const fs::path broken = dir / "r1" / "EuroSAT" / "1shots" / "seed2" / "metrics.json";
  fs::create_directories(broken.parent_path());
  test::write_file(broken.string(), "{\"method\": \"tgpt\", \"accuracy\": ");
  e = error_of([&] { find_runs({dir.string()}); });
  EXPECT_NE(e.find("metrics file '" + broken.string() + "' is not valid JSON"), std::string::npos)
      << e;
  test::write_file(broken.string(), R"({"method": "tgpt"})");
  e = error_of([&] { find_runs({dir.string()}); });
  EXPECT_NE(e.find("EuroSAT/1shots/seed2/metrics.json': no \"accuracy\""), std::string::npos) << e;
  test::write_file(broken.string(), R"({"method": "tgpt", "accuracy": "high"})");
  e = error_of([&] { find_runs({dir.string()}); });
  EXPECT_NE(e.find("\"accuracy\" must be a number"), std::string::npos) << e;
  test::write_file(broken.string(), R"({"method": "tgpt", "seed": 3, "accuracy": 1})");
  e = error_of([&] { find_runs({dir.string()}); });
  EXPECT_NE(e.find("\"seed\" is 3 but the run folder is seed2"), std::string::npos) << e;
  test::write_file(broken.string(), R"({"accuracy": 1})");
  e = error_of([&] { find_runs({dir.string()}); });
  EXPECT_NE(e.find("no \"method\""), std::string::npos) << e;
  test::write_file(broken.string(), "[1, 2]");
  e = error_of([&] { find_runs({dir.string()}); });
  EXPECT_NE(e.find("is not a JSON object"), std::string::npos) << e;

  const fs::path empty = temp_dir("bad_empty");
  e = error_of([&] { find_runs({empty.string()}); });
  EXPECT_NE(e.find("no run folders"), std::string::npos) << e;
  e = error_of([&] { find_runs({(empty / "missing").string()}); });
  EXPECT_NE(e.find("is not a directory"), std::string::npos) << e;
  fs::remove_all(empty);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tgpt
