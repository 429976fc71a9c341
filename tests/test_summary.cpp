/*
 * test_summary.cpp — `tgpt-eval summarize` (train/summary.h): a generated tree of run folders
 * gives exact table values (mean and population std over seeds, the Average row), the CSV parses
 * back to the same numbers, the SVG is well-formed XML (parsed with expat) with one polyline per
 * method and a dashed zero-shot line, and bad trees (duplicate runs, broken JSON, a seed that
 * disagrees with its folder) give errors naming the files.
 * `tgpt-eval compare` (compare_methods and its renderings): a tree of zero-shot (0shots), CoOp
 * and TGP-T (16shots) runs, two seeds on one dataset, CoOp missing one dataset and a 4-shot run
 * that must be left out gives exact cells, averages, column order, JSON and Markdown; the bar
 * chart is well-formed XML with one bar per (dataset, method) and per method's average; errors
 * for no run at K and bad --field values; and the tool itself on the same tree.
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
#include "tests/tool_test_util.h"
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
  std::map<std::string, int> classes;  // "<element>.<class attribute>" -> count
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
        for (int i = 0; attrs[i]; i += 2) {
          if (std::string(name) == "line" && std::string(attrs[i]) == "stroke-dasharray")
            ++s->dashed_lines;
          if (std::string(attrs[i]) == "class")
            ++s->classes[std::string(name) + "." + attrs[i + 1]];
        }
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

// ---------------------------------------------------------------------------------------------
// tgpt-eval compare

// The main job's layout <root>/<method>/<dataset>/<K>shots/seed<S>: zero-shot runs ("task", as
// tgpt-eval zeroshot writes it) in 0shots on three datasets; CoOp at 16 shots on two of them;
// TGP-T (with WiSE-FT) at 16 shots on all three, two seeds on SynthShapes, and one 4-shot run.
// Values are exact in binary so the expected numbers are exact.
struct CompareTree {
  fs::path dir;
  explicit CompareTree(const std::string& name) : dir(temp_dir(name)) {
    const fs::path zs = dir / "zeroshot", coop = dir / "coop", tgpt = dir / "tgpt";
    write_run(zs, {{"task", "zeroshot"}, {"accuracy", 40.5}}, "SynthColors", 0, 1);
    write_run(zs, {{"task", "zeroshot"}, {"accuracy", 30.25}}, "SynthScenes", 0, 1);
    write_run(zs, {{"task", "zeroshot"}, {"accuracy", 50.0}}, "SynthShapes", 0, 1);
    write_run(coop, {{"method", "coop"}, {"accuracy", 60.0}}, "SynthColors", 16, 1);
    write_run(coop, {{"method", "coop"}, {"accuracy", 70.5}}, "SynthShapes", 16, 1);
    auto tgpt_run = [](double acc) {
      return nlohmann::json{{"method", "tgpt"}, {"accuracy", acc}, {"accuracy_wiseft", acc + 1}};
    };
    write_run(tgpt, tgpt_run(75.0), "SynthColors", 16, 1);
    write_run(tgpt, tgpt_run(55.5), "SynthScenes", 16, 1);
    write_run(tgpt, tgpt_run(80.0), "SynthShapes", 16, 1);
    write_run(tgpt, tgpt_run(82.5), "SynthShapes", 16, 2);
    write_run(tgpt, tgpt_run(10.0), "SynthShapes", 4, 1);  // another shot count: left out
  }
  ~CompareTree() { fs::remove_all(dir); }
};

TEST(Compare, CellsAveragesAndOrder) {
  const CompareTree tree("compare_cells");
  const MethodComparison c = compare_methods(find_runs({tree.dir.string()}).runs, 16);
  EXPECT_EQ(c.shots, 16);
  EXPECT_EQ(c.methods, (std::vector<std::string>{"zeroshot", "coop", "tgpt"}));
  ASSERT_EQ(c.rows.size(), 3u);
  EXPECT_EQ(c.rows[0].dataset, "SynthColors");
  EXPECT_EQ(c.rows[1].dataset, "SynthScenes");
  EXPECT_EQ(c.rows[2].dataset, "SynthShapes");
  for (const ComparisonRow& r : c.rows) ASSERT_EQ(r.cells.size(), 3u);
  // zeroshot
  EXPECT_EQ(c.rows[0].cells[0]->accuracy.mean, 40.5);
  EXPECT_EQ(c.rows[1].cells[0]->accuracy.mean, 30.25);
  EXPECT_EQ(c.rows[2].cells[0]->seeds, (std::vector<int64_t>{1}));
  EXPECT_FALSE(c.rows[2].cells[0]->accuracy_wiseft.has_value());
  // coop: no SynthScenes
  EXPECT_EQ(c.rows[0].cells[1]->accuracy.mean, 60.0);
  EXPECT_FALSE(c.rows[1].cells[1].has_value());
  EXPECT_EQ(c.rows[2].cells[1]->accuracy.mean, 70.5);
  // tgpt: two seeds on SynthShapes (80, 82.5); the 4-shot run is not there
  const ComparisonCell& shapes = *c.rows[2].cells[2];
  EXPECT_EQ(shapes.seeds, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(shapes.accuracy.n, 2);
  EXPECT_EQ(shapes.accuracy.mean, 81.25);
  EXPECT_EQ(shapes.accuracy.std, 1.25);
  ASSERT_TRUE(shapes.accuracy_wiseft.has_value());
  EXPECT_EQ(shapes.accuracy_wiseft->mean, 82.25);
  EXPECT_EQ(shapes.accuracy_wiseft->std, 1.25);
  EXPECT_EQ(c.rows[0].cells[2]->accuracy.std, 0.0);

  ASSERT_EQ(c.averages.size(), 3u);
  EXPECT_EQ(c.averages[0].accuracy, (40.5 + 30.25 + 50.0) / 3);
  EXPECT_EQ(c.averages[0].datasets, 3);
  EXPECT_TRUE(c.averages[0].missing.empty());
  EXPECT_FALSE(c.averages[0].accuracy_wiseft.has_value());
  EXPECT_EQ(c.averages[1].accuracy, 65.25);
  EXPECT_EQ(c.averages[1].datasets, 2);
  EXPECT_EQ(c.averages[1].missing, (std::vector<std::string>{"SynthScenes"}));
  EXPECT_EQ(c.averages[2].accuracy, (75.0 + 55.5 + 81.25) / 3);
  EXPECT_EQ(c.averages[2].datasets, 3);
  ASSERT_TRUE(c.averages[2].accuracy_wiseft.has_value());
  EXPECT_EQ(*c.averages[2].accuracy_wiseft, (76.0 + 56.5 + 82.25) / 3);

  // The 4-shot comparison: tgpt alone next to zero-shot, on the one dataset it has.
  const MethodComparison c4 = compare_methods(find_runs({tree.dir.string()}).runs, 4);
  EXPECT_EQ(c4.methods, (std::vector<std::string>{"zeroshot", "tgpt"}));
  ASSERT_EQ(c4.rows.size(), 3u);
  EXPECT_EQ(c4.averages[1].accuracy, 10.0);
  EXPECT_EQ(c4.averages[1].missing, (std::vector<std::string>{"SynthColors", "SynthScenes"}));

  // Other methods after zeroshot, coop, tgpt, by name; no zero-shot column without its runs.
  std::vector<RunMetrics> runs;
  for (const char* m : {"zsclip", "tgpt", "linear_probe", "coop", "b"}) {
    RunMetrics r;
    r.method = m;
    r.dataset = "D";
    r.shots = 2;
    r.seed = 1;
    r.accuracy = 50;
    runs.push_back(r);
  }
  EXPECT_EQ(compare_methods(runs, 2).methods,
            (std::vector<std::string>{"coop", "tgpt", "b", "linear_probe", "zsclip"}));
}

TEST(Compare, JsonKeysAndValues) {
  const CompareTree tree("compare_json");
  const nlohmann::json j =
      comparison_json(compare_methods(find_runs({tree.dir.string()}).runs, 16));
  const double zs = (40.5 + 30.25 + 50.0) / 3, tg = (75.0 + 55.5 + 81.25) / 3;
  const nlohmann::json expected = {
      {"shots", 16},
      {"methods", {"zeroshot", "coop", "tgpt"}},
      {"datasets",
       {{"SynthColors",
         {{"zeroshot", {{"accuracy", 40.5}, {"accuracy_std", 0.0}, {"seeds", {1}}}},
          {"coop", {{"accuracy", 60.0}, {"accuracy_std", 0.0}, {"seeds", {1}}}},
          {"tgpt",
           {{"accuracy", 75.0},
            {"accuracy_std", 0.0},
            {"seeds", {1}},
            {"accuracy_wiseft", 76.0},
            {"accuracy_wiseft_std", 0.0}}}}},
        {"SynthScenes",
         {{"zeroshot", {{"accuracy", 30.25}, {"accuracy_std", 0.0}, {"seeds", {1}}}},
          {"tgpt",
           {{"accuracy", 55.5},
            {"accuracy_std", 0.0},
            {"seeds", {1}},
            {"accuracy_wiseft", 56.5},
            {"accuracy_wiseft_std", 0.0}}}}},
        {"SynthShapes",
         {{"zeroshot", {{"accuracy", 50.0}, {"accuracy_std", 0.0}, {"seeds", {1}}}},
          {"coop", {{"accuracy", 70.5}, {"accuracy_std", 0.0}, {"seeds", {1}}}},
          {"tgpt",
           {{"accuracy", 81.25},
            {"accuracy_std", 1.25},
            {"seeds", {1, 2}},
            {"accuracy_wiseft", 82.25},
            {"accuracy_wiseft_std", 1.25}}}}}}},
      {"average", {{"zeroshot", zs}, {"coop", 65.25}, {"tgpt", tg}}},
      {"averaged_datasets", {{"zeroshot", 3}, {"coop", 2}, {"tgpt", 3}}},
      {"missing_datasets",
       {{"zeroshot", nlohmann::json::array()},
        {"coop", {"SynthScenes"}},
        {"tgpt", nlohmann::json::array()}}},
      {"average_wiseft", {{"tgpt", (76.0 + 56.5 + 82.25) / 3}}},
      {"zero_shot_accuracy", zs},
      {"coop_accuracy", 65.25},
      {"tgpt_accuracy", tg},
      {"per_dataset",
       {{"SynthColors",
         {{"zero_shot_accuracy", 40.5}, {"coop_accuracy", 60.0}, {"tgpt_accuracy", 75.0}}},
        {"SynthScenes", {{"zero_shot_accuracy", 30.25}, {"tgpt_accuracy", 55.5}}},
        {"SynthShapes",
         {{"zero_shot_accuracy", 50.0}, {"coop_accuracy", 70.5}, {"tgpt_accuracy", 81.25}}}}},
  };
  EXPECT_EQ(j, expected) << j.dump(2);
  // The method list keeps the column order (a JSON object's keys do not).
  EXPECT_EQ(j["methods"].dump(), R"(["zeroshot","coop","tgpt"])");

  // Extra numeric keys.
  nlohmann::json k = j;
  add_json_number_field(k, "main_job_seconds=512.3");
  add_json_number_field(k, "num_runs=9");
  add_json_number_field(k, "delta=-1.5e-3");
  EXPECT_EQ(k["main_job_seconds"], 512.3);
  EXPECT_TRUE(k["num_runs"].is_number_integer());
  EXPECT_EQ(k["num_runs"], 9);
  EXPECT_EQ(k["delta"], -1.5e-3);
  for (const char* bad : {"main_job_seconds", "=1", "x=", "x=abc", "x=1.5s", "x= 1", "x=inf",
                          "x=nan", "a b=1", "x=1,5"}) {
    const std::string e = error_of([&] { add_json_number_field(k, bad); });
    EXPECT_NE(e.find("--field '" + std::string(bad) + "'"), std::string::npos) << bad << ": " << e;
  }
  for (const char* taken : {"tgpt_accuracy=1", "shots=3", "num_runs=2", "average=1"}) {
    const std::string e = error_of([&] { add_json_number_field(k, taken); });
    EXPECT_NE(e.find("is already in the JSON summary"), std::string::npos) << taken << ": " << e;
  }
  EXPECT_EQ(k["shots"], 16);  // unchanged

  // Two methods reported under one key.
  std::vector<RunMetrics> runs(2);
  runs[0].method = "zeroshot";
  runs[1].method = "zero_shot";
  for (RunMetrics& r : runs) r.dataset = "D", r.shots = 1, r.seed = 1, r.accuracy = 5;
  const std::string e = error_of([&] { comparison_json(compare_methods(runs, 1)); });
  EXPECT_NE(e.find("would both be reported as \"zero_shot_accuracy\""), std::string::npos) << e;
}

TEST(Compare, MarkdownOfASmallCase) {
  const CompareTree tree("compare_md");
  const std::string md =
      comparison_markdown(compare_methods(find_runs({tree.dir.string()}).runs, 16));
  EXPECT_EQ(md,
            "## Top-1 accuracy (%), 16 shots\n"
            "\n"
            "| Dataset | zeroshot | coop | tgpt |\n"
            "|:--|--:|--:|--:|\n"
            "| SynthColors | 40.50 | 60.00 | 75.00 |\n"
            "| SynthScenes | 30.25 | – | 55.50 |\n"
            "| SynthShapes | 50.00 | 70.50 | 81.25 ± 1.25 |\n"
            "| **Average** | **40.25** | **65.25** (2 of 3 datasets) | **70.58** |\n"
            "\n"
            "- coop has no run on SynthScenes; its average is over 2 of 3 datasets.\n"
            "- tgpt with the WiSE-FT head: average 71.58.\n"
            "- zeroshot: CLIP zero-shot, which does not depend on the shot count.\n"
            "- Top-1 accuracy on the test set, mean ± standard deviation over seeds (the "
            "population one, numpy's default, ddof=0), the mean alone for one seed; Average: the "
            "mean of a method's per-dataset means.\n");
}

TEST(Compare, SvgIsWellFormedWithOneBarPerCell) {
  const CompareTree tree("compare_svg");
  const MethodComparison c = compare_methods(find_runs({tree.dir.string()}).runs, 16);
  const std::string svg = comparison_svg(c);
  XmlStats st;
  ASSERT_NO_THROW(st = parse_xml(svg)) << svg;
  EXPECT_EQ(st.root, "svg");
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("viewBox=\"0 0 "), std::string::npos);
  // 3 zeroshot + 2 coop + 3 tgpt cells, and the three methods' averages; a legend swatch each.
  EXPECT_EQ(st.classes["rect.bar"], 3 + 2 + 3 + 3) << svg;
  EXPECT_EQ(st.classes["rect.legend"], 3);
  EXPECT_NE(svg.find(">Top-1 accuracy, 16 shots</text>"), std::string::npos);
  for (const char* s : {">SynthColors</text>", ">SynthScenes</text>", ">SynthShapes</text>",
                        ">Average</text>", ">zeroshot</text>", ">coop *</text>", ">tgpt</text>",
                        ">100</text>", ">0</text>", "* average over fewer datasets",
                        "<title>tgpt, SynthShapes: 81.25 ± 1.25% (seeds 1, 2); WiSE-FT "
                        "82.25 ± 1.25%</title>",
                        "<title>coop, SynthScenes: no run</title>",
                        "<title>coop, Average over 2 of 3 datasets: 65.25% (no run on "
                        "SynthScenes)</title>",
                        ">81.2</text>", ">65.2*</text>", "fill=\"#1f77b4\"", "fill=\"#ff7f0e\"",
                        "fill=\"#7f7f7f\""})
    EXPECT_NE(svg.find(s), std::string::npos) << s << "\n" << svg;

  // Names that need escaping, one shot, no flag.
  std::vector<RunMetrics> runs(2);
  runs[0].method = "a<b>&\"c\"";
  runs[1].method = "tgpt";
  for (RunMetrics& r : runs) r.dataset = "x & y", r.shots = 1, r.seed = 1, r.accuracy = 120;
  const std::string svg2 = comparison_svg(compare_methods(runs, 1));
  ASSERT_NO_THROW(st = parse_xml(svg2)) << svg2;
  EXPECT_EQ(st.classes["rect.bar"], 2 + 2);
  EXPECT_NE(svg2.find(">Top-1 accuracy, 1 shot</text>"), std::string::npos);
  EXPECT_NE(svg2.find("a&lt;b&gt;&amp;&quot;c&quot;"), std::string::npos);
  EXPECT_NE(svg2.find(">x &amp; y</text>"), std::string::npos);
  EXPECT_EQ(svg2.find("fewer datasets"), std::string::npos);
}

TEST(Compare, NoRunAtTheShotCount) {
  const CompareTree tree("compare_errors");
  const std::vector<RunMetrics> runs = find_runs({tree.dir.string()}).runs;
  std::string e = error_of([&] { compare_methods(runs, 8); });
  EXPECT_NE(e.find("no run at 8 shots other than zero-shot ones; the runs have shot counts 4, 16"),
            std::string::npos)
      << e;
  // Zero-shot runs alone.
  std::vector<RunMetrics> zs;
  for (const RunMetrics& r : runs)
    if (r.method == "zeroshot") zs.push_back(r);
  e = error_of([&] { compare_methods(zs, 16); });
  EXPECT_NE(e.find("no runs other than zero-shot ones"), std::string::npos) << e;
  e = error_of([&] { compare_methods(runs, -1); });
  EXPECT_NE(e.find("must be >= 0"), std::string::npos) << e;
  // One zero-shot seed in two shot folders.
  write_run(tree.dir / "zeroshot", {{"task", "zeroshot"}, {"accuracy", 41.0}}, "SynthColors", 16,
            1);
  e = error_of([&] { compare_methods(find_runs({tree.dir.string()}).runs, 16); });
  EXPECT_NE(e.find("two runs of method zeroshot, dataset SynthColors, seed 1"), std::string::npos)
      << e;
  EXPECT_NE(e.find("SynthColors/0shots/seed1/metrics.json"), std::string::npos) << e;
  EXPECT_NE(e.find("SynthColors/16shots/seed1/metrics.json"), std::string::npos) << e;
}

TEST(Compare, Tool) {
  const fs::path bin = test::tool_path("tgpt-eval");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-eval not built next to the tests";
  const CompareTree tree("compare_tool");
  const fs::path out = tree.dir / "out" / "sub";
  auto q = [](const fs::path& p) { return test::shell_quote(p); };
  const std::string base = q(bin) + " compare " + q(tree.dir / "zeroshot") + " " +
                           q(tree.dir / "coop") + " " + q(tree.dir / "tgpt") + " --shots 16";
  std::string log;
  ASSERT_EQ(test::run_command(base + " --markdown " + q(out / "table.md") + " --svg " +
                                  q(out / "bars.svg") + " --json " + q(out / "summary.json") +
                                  " --field main_job_seconds=512.3 --field num_datasets=3",
                              tree.dir, &log),
            0)
      << log;
  const MethodComparison c = compare_methods(find_runs({tree.dir.string()}).runs, 16);
  const std::string md = comparison_markdown(c);
  EXPECT_NE(log.find(md), std::string::npos) << log;  // stdout
  EXPECT_EQ(test::read_file((out / "table.md").string()), md);
  EXPECT_EQ(test::read_file((out / "bars.svg").string()), comparison_svg(c));
  nlohmann::json expected = comparison_json(c);
  expected["main_job_seconds"] = 512.3;
  expected["num_datasets"] = 3;
  EXPECT_EQ(nlohmann::json::parse(test::read_file((out / "summary.json").string())), expected);

  // Errors: exit 1 with the reason, nothing written.
  ASSERT_EQ(test::run_command(base + " --json " + q(out / "bad.json") + " --field tgpt_accuracy=1",
                              tree.dir, &log),
            1)
      << log;
  EXPECT_NE(log.find("tgpt-eval compare: --field 'tgpt_accuracy=1'"), std::string::npos) << log;
  ASSERT_EQ(test::run_command(base + " --json " + q(out / "bad.json") + " --field seconds",
                              tree.dir, &log),
            1)
      << log;
  EXPECT_NE(log.find("expected KEY=NUMBER"), std::string::npos) << log;
  ASSERT_EQ(test::run_command(
                q(bin) + " compare " + q(tree.dir) + " --shots 2 --json " + q(out / "bad.json"),
                tree.dir, &log),
            1)
      << log;
  EXPECT_NE(
      log.find("no run at 2 shots other than zero-shot ones; the runs have shot counts 4, 16"),
      std::string::npos)
      << log;
  EXPECT_FALSE(fs::exists(out / "bad.json"));
  EXPECT_NE(test::run_command(q(bin) + " compare " + q(tree.dir), tree.dir, &log), 0) << log;
  EXPECT_NE(log.find("--shots"), std::string::npos) << log;
}

}  // namespace
}  // namespace tgpt
