/*
 * batch_prefetcher.cpp — the worker threads, the bounded queue of batches and in-order hand-out
 * (data/batch_prefetcher.h).
 */
#include "data/batch_prefetcher.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "base/error.h"
#include "base/parallel.h"
#include "data/preprocess.h"

namespace tgpt {

namespace {

// Empty f32 [B, image_shape...].
Tensor empty_batch(int64_t B, const std::vector<int64_t>& image_shape) {
  std::vector<int64_t> shape = {B};
  shape.insert(shape.end(), image_shape.begin(), image_shape.end());
  return Tensor::empty(Shape(shape), DType::f32);
}

// Prepares image j of the request into dst; "" or what went wrong (never throws).
std::string prepare_image(const BatchPrefetcher::PrepareFn& prepare, const BatchRequest& request,
                          int64_t j, float* dst) {
  try {
    prepare(request, j, dst);
    return {};
  } catch (const std::exception& e) {
    return e.what()[0] ? e.what() : "unknown error";
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

Tensor prepare_batch(const std::vector<int64_t>& image_shape,
                     const BatchPrefetcher::PrepareFn& prepare, const BatchRequest& request,
                     const std::string& what) {
  const int64_t B = static_cast<int64_t>(request.items.size());
  Tensor images = empty_batch(B, image_shape);
  const int64_t per_image = B > 0 ? images.numel() / B : 0;
  float* dst = B > 0 ? images.data<float>() : nullptr;
  // Exceptions must not leave the OpenMP region: failures are collected and thrown below.
  std::vector<std::string> errors(static_cast<size_t>(B));
  parallel_for(B, [&](int64_t j) {
    errors[static_cast<size_t>(j)] = prepare_image(prepare, request, j, dst + j * per_image);
  });
  const std::string msg = batch_failure_message(what, errors);
  if (!msg.empty()) throw Error(msg);
  return images;
}

int default_loader_threads(bool gpu_training) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // On the GPU the CPU only prepares batches: every core but the one feeding the GPU (at most 8,
  // beyond which decoding is rarely the bottleneck). On the CPU the model's OpenMP team uses
  // every core, and a worker beside it takes cycles from that team (whose threads then wait for
  // each other at every barrier): on an idle 2-core VM CLIP pretraining ran 0.114-0.125 s per
  // step with batches made on the training thread (in parallel over the cores between steps)
  // and 0.138-0.144 s with one worker. So none there.
  if (gpu_training) return std::clamp(cores - 1, 1, 8);
  return 0;
}

BatchPrefetcher::BatchPrefetcher(std::vector<int64_t> image_shape, PlanFn plan, PrepareFn prepare,
                                 const BatchPrefetcherOptions& options)
    : image_shape_(std::move(image_shape)),
      plan_(std::move(plan)),
      prepare_(std::move(prepare)),
      options_(options) {
  TGPT_CHECK(options_.threads >= 1 && options_.threads <= 256,
             "batch loader: threads must be in [1, 256], got ", options_.threads);
  TGPT_CHECK(options_.depth >= 1, "batch loader: depth must be >= 1, got ", options_.depth);
  TGPT_CHECK(plan_ && prepare_, "batch loader: no plan or prepare function");
  for (int64_t d : image_shape_) {
    TGPT_CHECK(d >= 1, "batch loader: bad image shape dimension ", d);
    image_numel_ *= d;
  }
  if (options_.max_batches == 0) predicting_ = false;
  workers_.reserve(static_cast<size_t>(options_.threads));
  try {
    for (int t = 0; t < options_.threads; ++t) workers_.emplace_back([this] { work(); });
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (std::thread& w : workers_) w.join();
    throw;
  }
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& w : workers_) w.join();
}

bool BatchPrefetcher::prefetching() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return predicting_;
}

std::shared_ptr<BatchPrefetcher::Slot> BatchPrefetcher::make_slot(BatchRequest request) const {
  auto slot = std::make_shared<Slot>();
  slot->size = static_cast<int64_t>(request.items.size());
  slot->images = empty_batch(slot->size, image_shape_);
  slot->errors.resize(request.items.size());
  slot->request = std::move(request);
  return slot;
}

void BatchPrefetcher::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    // The oldest batch with an image nobody has taken yet.
    std::shared_ptr<Slot> slot;
    for (const std::shared_ptr<Slot>& s : queue_)
      if (s->taken < s->size) {
        slot = s;
        break;
      }
    if (!slot) {
      const bool room = static_cast<int64_t>(queue_.size()) < options_.depth &&
                        (options_.max_batches < 0 || planned_ < options_.max_batches);
      if (predicting_ && room) {
        // Plan the next batch (in order: we hold the lock).
        ++planned_;
        std::shared_ptr<Slot> planned;
        try {
          planned = make_slot(plan_());
        } catch (const std::exception& e) {
          planned = std::make_shared<Slot>();
          planned->plan_error = e.what();
        }
        queue_.push_back(std::move(planned));
        ready_cv_.notify_all();
        continue;
      }
      work_cv_.wait(lock);
      continue;
    }
    const int64_t j = slot->taken++;
    lock.unlock();
    std::string error =
        prepare_image(prepare_, slot->request, j, slot->images.data<float>() + j * image_numel_);
    lock.lock();
    slot->errors[static_cast<size_t>(j)] = std::move(error);
    if (++slot->finished == slot->size) ready_cv_.notify_all();
  }
}

Tensor BatchPrefetcher::next(const BatchRequest& request) {
  std::unique_lock<std::mutex> lock(mutex_);
  std::shared_ptr<Slot> slot;
  if (predicting_) {
    // The predicted batch: wait until a worker has planned it.
    work_cv_.notify_one();
    ready_cv_.wait(lock, [&] {
      return !queue_.empty() || (options_.max_batches >= 0 && planned_ >= options_.max_batches);
    });
    if (!queue_.empty() && queue_.front()->plan_error.empty() &&
        queue_.front()->request == request) {
      slot = queue_.front();
    } else {
      // Another batch than predicted: no more prediction; what was planned is dropped
      // (workers finish the images they are on, into slots nobody reads).
      predicting_ = false;
      queue_.clear();
    }
  }
  if (!slot) {
    slot = make_slot(request);
    queue_.push_back(slot);
    work_cv_.notify_all();
  } else {
    work_cv_.notify_all();
  }
  ready_cv_.wait(lock, [&] { return slot->finished == slot->size; });
  queue_.pop_front();
  work_cv_.notify_all();  // room to plan another batch
  lock.unlock();
  const std::string msg = batch_failure_message(options_.what, slot->errors);
  if (!msg.empty()) throw Error(msg);
  return slot->images;
}

BatchPrefetcher::PrepareFn train_image_prepare(std::vector<std::string> paths, int64_t n,
                                               TrainTransform transform) {
  auto shared_paths = std::make_shared<const std::vector<std::string>>(std::move(paths));
  return [shared_paths, n, transform](const BatchRequest& r, int64_t j, float* dst) {
    const int64_t item = r.items[static_cast<size_t>(j)];
    TGPT_CHECK(item >= 0 && item < static_cast<int64_t>(shared_paths->size()),
               "batch loader: item ", item, " outside [0, ", shared_paths->size(), ")");
    const std::string& path = (*shared_paths)[static_cast<size_t>(item)];
    try {
      preprocess_batch_image_into(path, j, n, true, r.seed, transform, dst);
    } catch (const std::exception& e) {
      throw Error(image_error_message(path, e.what()));
    }
  };
}

}  // namespace tgpt
