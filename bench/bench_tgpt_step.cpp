/*
 * bench_tgpt_step.cpp — one training iteration of TGP-T (or of CoOp, the baseline) at CLIP
 * ViT-B/16 shapes with random weights: time per iteration and peak memory, as JSON lines.
 * bench/torch_tgpt_step.py runs the same iteration in PyTorch (tests/golden/tgpt_ref.py, f32).
 *
 * TGP-T iteration (--method tgpt, the order of train/tgpt_replay.cpp):
 *   images [B,3,224,224] -> frozen image encoder without a tape (cls [B,E], tokens [B,197,E])
 *   -> Bonders (Nc / Nn queries) -> text encoder on 2·B prompts ([B,Nc+3,W] and [B,Nn+3,W])
 *   -> losses (cosine-logit CE over C classes, the two fused vocabulary CEs over V = 49408)
 *   -> backward -> AdamW (TGP-T's settings) on every trainable tensor.
 * CoOp iteration (--method coop): images -> frozen image encoder (no tape) -> text encoder on
 *   all C class prompts ("X"·16 + 1–3 random class-name tokens + "."), forward and backward ->
 *   cosine logits, CE -> SGD (momentum 0.9, wd 5e-4; AdamW on CUDA, where SGD is not offered)
 *   on prompt_learner.ctx.
 *
 * Random inputs: images N(0,1); labels, captions and category sentences random token ids (SOT,
 * words, EOT, padding). By default the sentences and captions are long enough that every
 * vocabulary-loss row is a real target (the most work); --sentence-words N / --caption-words N
 * give them N words instead, so that N + 1 targets (words and EOT) are real and the rest padding,
 * as on real data ("a photo of a {name}." is ~7 tokens, a MiniGPT-4 caption ~24).
 *
 * Output (stdout), one JSON object per line:
 *   {"kind":"iter", "i":k, "seconds":s, "phases":{...}}     for every timed iteration
 *   {"kind":"summary", ..., "median_s", "min_s", "phases_median_s", "phases_min_s",
 *    "cpu_s_median" (process CPU time per iteration, all threads: steadier than wall time on a
 *    loaded machine, and with OMP_WAIT_POLICY=passive free of spin-waiting), "peak_rss_mb",
 *    "alloc_peak_mb", ...}
 * Phases (seconds, wall clock): encode_images, forward (Bonders + text encoder forward, with the
 * tape), losses (the vocabulary CEs compute their gradient direction here), backward, optimizer.
 * With --phase-detail the summary also has text_encoder_fwd_notape_s and text_encoder_fwd_bwd_s:
 * the text encoder alone on the two prompt batches without a tape, and forward + backward with
 * one (so the Bonders ≈ forward + backward − that), and sgemm_1576x768x3072_gflops, the rate of
 * one ViT-B/16 MLP GEMM measured right after the iterations (what the shared machine gives now).
 * Memory: peak_rss_mb is the process's VmHWM over the timed iterations (reset through
 * /proc/self/clear_refs before them; over the whole run if the kernel refuses), alloc_peak_mb
 * the engine allocator's peak over the timed iterations (device memory on CUDA: the caching
 * allocator's peak). On CUDA each phase ends by copying one value to the host, which waits for
 * the device.
 *
 * Usage: bench_tgpt_step [--method tgpt|coop] [--device cpu|cuda] [--batch 8] [--classes 1000]
 *          [--category-queries 32] [--content-queries 64] [--warmup 1] [--iters 3]
 *          [--threads N] [--phase-detail] [--val-images N] [--precision f32|bf16]
 *          [--sentence-words N] [--caption-words N]
 * --precision: the frozen CLIP's compute dtype, as tgpt-train's --precision (default f32; bf16 on
 * the CPU runs linear, matmul and the patch convolution as bf16 GEMMs where the CPU has bf16 dot
 * products, kernels/cpu/matmul.h); the trainable tensors, losses and optimizer stay f32.
 * --val-images N (TGP-T): after the iterations, one validation pass over N images in batches
 * of B, timed twice: from the images (frozen image encoder without a tape, then the Bonders, the
 * text encoder and both heads) and from image features encoded before (what the trainer does
 * with its in-memory or on-disk image-feature cache: the Bonders, text encoder and heads only).
 * The summary gets val_pass_images_s, val_pass_cached_s and val_pass_speedup (best of 2 each;
 * decoding and preprocessing, which the cache also saves, are not counted).
 * Threads: --threads sets the engine's OpenMP thread count (default: OMP_NUM_THREADS or all
 * cores); OpenBLAS takes OPENBLAS_NUM_THREADS / OMP_NUM_THREADS from the environment.
 */
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/parallel.h"
#include "bench/clip_bench_weights.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/random.h"
#include "kernels/cpu/blas_setup.h"
#include "models/clip/clip.h"
#include "models/coop/coop.h"
#include "models/tgpt/tgpt.h"

using namespace tgpt;

namespace {

constexpr int64_t kSot = 49406, kEot = 49407, kPeriod = 269, kX = 343;

struct Options {
  std::string method = "tgpt";
  std::string device = "cpu";
  std::string precision = "f32";
  int64_t batch = 8, classes = 1000, category_queries = 32, content_queries = 64;
  int64_t sentence_words = 0, caption_words = 0;  // 0: every target a word
  int warmup = 1, iters = 3, threads = 0;
  int64_t val_images = 0;
  bool phase_detail = false;
};

Options parse(int argc, char** argv) {
  Options o;
  auto need = [&](int& i) -> std::string {
    TGPT_CHECK(i + 1 < argc, "", argv[i], " needs a value");
    return argv[++i];
  };
  auto integer = [&](int& i) -> int64_t {
    const std::string flag = argv[i], v = need(i);
    char* end = nullptr;
    const long long n = std::strtoll(v.c_str(), &end, 10);
    TGPT_CHECK(end && *end == '\0' && !v.empty(), "", flag, " takes an integer, got '", v, "'");
    return n;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--method")
      o.method = need(i);
    else if (a == "--device")
      o.device = need(i);
    else if (a == "--batch")
      o.batch = integer(i);
    else if (a == "--classes")
      o.classes = integer(i);
    else if (a == "--category-queries")
      o.category_queries = integer(i);
    else if (a == "--content-queries")
      o.content_queries = integer(i);
    else if (a == "--sentence-words")
      o.sentence_words = integer(i);
    else if (a == "--caption-words")
      o.caption_words = integer(i);
    else if (a == "--warmup")
      o.warmup = static_cast<int>(integer(i));
    else if (a == "--iters")
      o.iters = static_cast<int>(integer(i));
    else if (a == "--threads")
      o.threads = static_cast<int>(integer(i));
    else if (a == "--phase-detail")
      o.phase_detail = true;
    else if (a == "--val-images")
      o.val_images = integer(i);
    else if (a == "--precision")
      o.precision = need(i);
    else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: bench_tgpt_step [--method tgpt|coop] [--device cpu|cuda] [--batch 8]\n"
          "         [--classes 1000] [--category-queries 32] [--content-queries 64]\n"
          "         [--warmup 1] [--iters 3] [--threads N] [--phase-detail]\n"
          "         [--val-images N] [--precision f32|bf16]\n"
          "         [--sentence-words N] [--caption-words N]\n");
      std::exit(0);
    } else {
      TGPT_CHECK(false, "unknown argument '", a, "' (see --help)");
    }
  }
  TGPT_CHECK(o.method == "tgpt" || o.method == "coop", "--method is tgpt or coop, got '", o.method,
             "'");
  TGPT_CHECK(o.device == "cpu" || o.device == "cuda", "--device is cpu or cuda, got '", o.device,
             "'");
  TGPT_CHECK(o.batch >= 1 && o.classes >= 1 && o.category_queries >= 1 && o.content_queries >= 1 &&
                 o.warmup >= 0 && o.iters >= 1 && o.threads >= 0 && o.val_images >= 0,
             "sizes and --iters must be positive, --warmup, --threads and --val-images >= 0");
  TGPT_CHECK(o.val_images == 0 || o.method == "tgpt", "--val-images needs --method tgpt");
  if (o.sentence_words == 0) o.sentence_words = std::min<int64_t>(o.category_queries, 75);
  if (o.caption_words == 0) o.caption_words = std::min<int64_t>(o.content_queries, 75);
  TGPT_CHECK(o.sentence_words >= 1 && o.sentence_words <= 75 && o.caption_words >= 1 &&
                 o.caption_words <= 75,
             "--sentence-words and --caption-words are 1..75");
  TGPT_CHECK(o.precision == "f32" || o.precision == "bf16", "--precision is f32 or bf16, got '",
             o.precision, "'");
  return o;
}

// CPU time of the whole process (every thread), for comparisons on a loaded machine.
double cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Waits for the device: copying one element to the host follows the work queued before it.
void sync(const Tensor& t) {
  if (t.defined() && t.device() != Device::CPU)
    (void)t.reshape({-1}).slice(0, 0, 1).to(Device::CPU);
}

// Resets the kernel's peak-RSS counter (VmHWM); false when refused.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  return -1;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Token rows [rows, 77] i64: SOT, `words` random word ids, EOT, padding (0).
Tensor sentence_tokens(Generator& gen, int64_t rows, int64_t words) {
  Tensor ids = gen.randint({rows, words}, 1, 49405, DType::i64);
  std::vector<int64_t> t(static_cast<size_t>(rows * 77), 0);
  for (int64_t r = 0; r < rows; ++r) {
    t[r * 77] = kSot;
    for (int64_t w = 0; w < words; ++w) t[r * 77 + 1 + w] = ids.data<int64_t>()[r * words + w];
    t[r * 77 + 1 + words] = kEot;
  }
  return Tensor::from_data(t.data(), {rows, 77});
}

using Phases = std::vector<std::pair<std::string, double>>;

// One timed iteration of either method; returns the phase times in order.
using StepFn = std::function<Phases()>;

void print_phases(const Phases& p) {
  std::printf("{");
  for (size_t i = 0; i < p.size(); ++i)
    std::printf("%s\"%s\":%.4f", i ? "," : "", p[i].first.c_str(), p[i].second);
  std::printf("}");
}

}  // namespace

int main(int argc, char** argv) try {
  select_blas_kernels(argc, argv);  // first: may re-execute with the CPU's BLAS kernels
  const Options o = parse(argc, argv);
  if (o.threads > 0) set_num_threads(o.threads);
  const Device dev = o.device == "cuda" ? Device::CUDA : Device::CPU;
  const ClipConfig cfg = ClipConfig::openai("ViT-B/16");
  const ClipModel clip = ClipModel::from_tensors(bench::random_clip_weights(cfg, 0), cfg, dev,
                                                 o.precision == "bf16" ? DType::bf16 : DType::f32);
  const int64_t B = o.batch, C = o.classes, E = cfg.embed_dim;
  Generator gen(1);
  const Tensor images = gen.randn({B, 3, cfg.image_resolution, cfg.image_resolution}).to(dev);
  const Tensor labels_t = gen.randint({B}, 0, C, DType::i64);
  std::vector<int64_t> labels(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) labels[static_cast<size_t>(b)] = labels_t.data<int64_t>()[b];

  std::unique_ptr<TgptModel> tgpt_model;
  std::unique_ptr<CoopModel> coop_model;
  std::unique_ptr<Optimizer> opt;
  Tensor captions;
  StepFn step;
  int64_t trainable = 0;

  if (o.method == "tgpt") {
    TgptConfig tc;
    tc.num_classes = C;
    tc.category_queries = o.category_queries;
    tc.content_queries = o.content_queries;
    TgptTokenIds ids;
    ids.sot = kSot;
    ids.eot = kEot;
    ids.period = kPeriod;
    tgpt_model = std::make_unique<TgptModel>(clip, tc, ids, gen);
    tgpt_model->set_zeroshot_head(tgpt_zeroshot_head(gen.randn({C, E})));
    tgpt_model->set_category_sentences(sentence_tokens(gen, C, o.sentence_words));
    captions = sentence_tokens(gen, B, o.caption_words);
    std::vector<Tensor> params;
    for (const auto& [name, t] : tgpt_model->parameters().items(true)) params.push_back(t);
    trainable = tgpt_model->parameters().numel(true);
    opt = std::make_unique<AdamW>(params, AdamWOptions::tgpt(1e-4));
    step = [&]() -> Phases {
      Phases p;
      double t = now_s();
      auto mark = [&](const char* name, const Tensor& last) {
        sync(last);
        const double t1 = now_s();
        p.emplace_back(name, t1 - t);
        t = t1;
      };
      opt->zero_grad();
      const TgptModel::ImageFeatures img = tgpt_model->encode_images(images);
      mark("encode_images", img.tokens);
      const TgptModel::Output fw = tgpt_model->forward(img);
      mark("forward", fw.features);
      const TgptModel::Losses l = tgpt_model->losses(fw, labels, captions);
      mark("losses", l.total);
      l.total.backward();
      mark("backward", tgpt_model->parameters().items(true).front().second.grad());
      opt->step();
      mark("optimizer", tgpt_model->parameters().items(true).front().second);
      return p;
    };
  } else {
    // Class prompts: SOT, 16 X's, 1–3 class-name tokens, ".", EOT, padding.
    constexpr int64_t n_ctx = 16;
    const Tensor name_len = gen.randint({C}, 1, 4, DType::i64);
    const Tensor name_ids = gen.randint({C, 3}, 1, 49405, DType::i64);
    std::vector<int64_t> prompt(static_cast<size_t>(C * 77), 0);
    for (int64_t c = 0; c < C; ++c) {
      int64_t* row = prompt.data() + c * 77;
      int64_t k = 0;
      row[k++] = kSot;
      for (int64_t i = 0; i < n_ctx; ++i) row[k++] = kX;
      for (int64_t i = 0; i < name_len.data<int64_t>()[c]; ++i)
        row[k++] = name_ids.data<int64_t>()[c * 3 + i];
      row[k++] = kPeriod;
      row[k++] = kEot;
    }
    CoopOptions co;
    co.n_ctx = n_ctx;
    coop_model = std::make_unique<CoopModel>(
        CoopModel::from_prompt_tokens(clip, Tensor::from_data(prompt.data(), {C, 77}), co));
    std::vector<Tensor> params;
    for (const auto& [name, p] : coop_model->parameters().items(true)) params.push_back(p);
    trainable = coop_model->parameters().numel(true);
    if (dev == Device::CPU)
      opt = std::make_unique<SGD>(params, 0.002, SGDOptions{0.9, 0, 5e-4, false});
    else
      opt = std::make_unique<AdamW>(params, AdamWOptions{0.002, 0.9, 0.999, 1e-8, 5e-4});
    const Tensor labels_dev = labels_t.to(dev);
    step = [&, labels_dev]() -> Phases {
      Phases p;
      double t = now_s();
      auto mark = [&](const char* name, const Tensor& last) {
        sync(last);
        const double t1 = now_s();
        p.emplace_back(name, t1 - t);
        t = t1;
      };
      opt->zero_grad();
      Tensor feats;
      {
        NoGradGuard no_grad;
        feats = clip.encode_image(images);  // [B,E]
      }
      mark("encode_images", feats);
      const Tensor loss = coop_model->loss(feats, labels_dev);  // text encoder on C prompts
      mark("forward_and_loss", loss);
      loss.backward();
      mark("backward", coop_model->ctx().grad());
      opt->step();
      mark("optimizer", coop_model->ctx());
      return p;
    };
  }

  for (int i = 0; i < o.warmup; ++i) step();
  reset_peak_memory(dev);
  const bool rss_reset = reset_peak_rss();
  std::vector<double> seconds, cpu_seconds;
  std::map<std::string, std::vector<double>> phase_times;
  std::vector<std::string> phase_order;
  for (int i = 0; i < o.iters; ++i) {
    const double t0 = now_s(), c0 = cpu_s();
    const Phases p = step();
    const double s = now_s() - t0;
    seconds.push_back(s);
    cpu_seconds.push_back(cpu_s() - c0);
    for (const auto& [name, v] : p) {
      if (!phase_times.count(name)) phase_order.push_back(name);
      phase_times[name].push_back(v);
    }
    std::printf("{\"kind\":\"iter\",\"method\":\"%s\",\"i\":%d,\"seconds\":%.4f,\"phases\":",
                o.method.c_str(), i, s);
    print_phases(p);
    std::printf("}\n");
    std::fflush(stdout);
  }
  const double rss = peak_rss_mb();
  const MemoryStats ms = memory_stats(dev);

  // --phase-detail (TGP-T): the text encoder alone on the two prompt batches, without a tape and
  // forward + backward (best of 5 each), and the rate of one large sgemm right now (the same
  // machine load as the iterations).
  double text_fwd = -1, text_fwd_bwd = -1, gemm_gflops = -1;
  if (o.phase_detail && o.method == "tgpt") {
    const int64_t W = cfg.transformer_width;
    auto text_pass = [&](bool tape) {
      std::vector<double> v;
      for (int r = 0; r < 5; ++r) {
        const double t0 = now_s();
        for (int64_t n : {o.category_queries, o.content_queries}) {
          std::vector<int64_t> eot(static_cast<size_t>(B), n + 2);
          const Tensor eot_t = Tensor::from_data(eot.data(), {B}).to(dev);
          Tensor x = gen.randn({B, n + 3, W}, DType::f32, 0.02).to(dev);
          if (tape) {
            x.set_requires_grad(true);
            sum(clip.encode_text_embeddings(x, eot_t)).backward();
            sync(x.grad());
          } else {
            NoGradGuard no_grad;
            sync(clip.encode_text_embeddings(x, eot_t));
          }
        }
        v.push_back(now_s() - t0);
      }
      return *std::min_element(v.begin(), v.end());
    };
    text_fwd = text_pass(false);
    text_fwd_bwd = text_pass(true);
    NoGradGuard no_grad;
    const Tensor a = gen.randn({1576, 768}).to(dev), w = gen.randn({3072, 768}).to(dev);
    sync(linear(a, w));
    std::vector<double> v;
    for (int r = 0; r < 5; ++r) {
      const double t0 = now_s();
      sync(linear(a, w));
      v.push_back(now_s() - t0);
    }
    gemm_gflops = 2.0 * 1576 * 768 * 3072 / *std::min_element(v.begin(), v.end()) * 1e-9;
  }

  // --val-images: one validation pass from the images and one from cached image features.
  double val_images_s = -1, val_cached_s = -1;
  if (o.val_images > 0) {
    NoGradGuard no_grad;
    const int64_t N = o.val_images;
    std::vector<Tensor> batches;  // [len,3,R,R] each
    for (int64_t b = 0; b < N; b += B)
      batches.push_back(
          gen.randn({std::min(B, N - b), 3, cfg.image_resolution, cfg.image_resolution}).to(dev));
    std::vector<TgptModel::ImageFeatures> cached;
    for (const Tensor& x : batches) cached.push_back(tgpt_model->encode_images(x));
    auto heads = [&](const TgptModel::ImageFeatures& f) {
      const TgptModel::Output fw = tgpt_model->forward(f);
      sync(tgpt_model->logits(fw.features));
      sync(tgpt_model->logits_wiseft(fw.features));
    };
    auto best_of_2 = [&](const std::function<void()>& pass) {
      double best = 1e30;
      for (int r = 0; r < 2; ++r) {
        const double t0 = now_s();
        pass();
        best = std::min(best, now_s() - t0);
      }
      return best;
    };
    val_images_s = best_of_2([&] {
      for (const Tensor& x : batches) heads(tgpt_model->encode_images(x));
    });
    val_cached_s = best_of_2([&] {
      for (const TgptModel::ImageFeatures& f : cached) heads(f);
    });
  }

  std::printf(
      "{\"kind\":\"summary\",\"bench\":\"tgpt_step\",\"impl\":\"tgpt\",\"method\":\"%s\","
      "\"device\":\"%s\",\"precision\":\"%s\",\"threads\":%d,\"B\":%lld,\"C\":%lld,\"Nc\":%lld,"
      "\"Nn\":%lld,\"sentence_words\":%lld,\"caption_words\":%lld,"
      "\"trainable_params\":%lld,\"warmup\":%d,\"iters\":%d,\"median_s\":%.4f,\"min_s\":%.4f,"
      "\"phases_median_s\":{",
      o.method.c_str(), o.device.c_str(), o.precision.c_str(), num_threads(),
      static_cast<long long>(B), static_cast<long long>(C),
      static_cast<long long>(o.category_queries), static_cast<long long>(o.content_queries),
      static_cast<long long>(o.sentence_words), static_cast<long long>(o.caption_words),
      static_cast<long long>(trainable), o.warmup, o.iters, median(seconds),
      *std::min_element(seconds.begin(), seconds.end()));
  for (size_t i = 0; i < phase_order.size(); ++i)
    std::printf("%s\"%s\":%.4f", i ? "," : "", phase_order[i].c_str(),
                median(phase_times[phase_order[i]]));
  std::printf("},\"phases_min_s\":{");
  for (size_t i = 0; i < phase_order.size(); ++i) {
    const std::vector<double>& v = phase_times[phase_order[i]];
    std::printf("%s\"%s\":%.4f", i ? "," : "", phase_order[i].c_str(),
                *std::min_element(v.begin(), v.end()));
  }
  std::printf(
      "},\"cpu_s_median\":%.4f,\"peak_rss_mb\":%.1f,\"peak_rss_over\":\"%s\","
      "\"alloc_peak_mb\":%.1f",
      median(cpu_seconds), rss, rss_reset ? "timed_iterations" : "whole_run",
      static_cast<double>(ms.peak_bytes) / (1024.0 * 1024.0));
  if (text_fwd >= 0)
    std::printf(
        ",\"text_encoder_fwd_notape_s\":%.4f,\"text_encoder_fwd_bwd_s\":%.4f,"
        "\"sgemm_1576x768x3072_gflops\":%.1f",
        text_fwd, text_fwd_bwd, gemm_gflops);
  if (val_images_s >= 0)
    std::printf(
        ",\"val_images\":%lld,\"val_pass_images_s\":%.4f,\"val_pass_cached_s\":%.4f,"
        "\"val_pass_speedup\":%.2f",
        static_cast<long long>(o.val_images), val_images_s, val_cached_s,
        val_images_s / val_cached_s);
  std::printf("}\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_tgpt_step: %s\n", e.what());
  return 1;
}
