/*
 * batch_prefetcher.h — training batches prepared ahead on worker threads and handed out in order.
 *
 * The trainer keeps drawing every batch exactly as before: the sampler's indices, then the
 * batch's augmentation seed from its own generator (so checkpoints, resume and every number stay
 * the same). The prefetcher predicts those draws from its own copies of the sampler and the
 * generator (the PlanFn, made when training starts or resumes) and prepares up to `depth`
 * batches ahead: each image of a batch is a task (PrepareFn(request, j, dst)) taken by the next
 * free worker, oldest batch first. next(request) hands out the batch the trainer drew: the
 * prepared one when it is the one predicted (waiting for its last images if needed). An image
 * depends only on (request, j), never on which thread runs it or when, so the batches are
 * bit-identical to preparing them inline, for any thread count.
 *
 * A request that differs from the prediction (something else drew from the generator) is not an
 * error: the prediction is dropped for good and from then on each request is prepared when it
 * is asked for (still on the workers, no longer ahead); prefetching() says which.
 *
 * Errors: every image's failure is recorded (PrepareFn's message, which names the file) and
 * next() throws one tgpt::Error listing every failed image of that batch when the trainer asks
 * for it (batch_failure_message); batches after it are unaffected. The destructor stops the
 * workers (each finishes the image it is on) and joins them; so an early stop (Ctrl-C, an error)
 * leaves nothing running.
 *
 * Layout: next() returns f32 [B, image_shape...] on the CPU, B = request.items.size().
 */
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/preprocess.h"
#include "engine/tensor.h"

namespace tgpt {

// One training batch as the trainer draws it.
struct BatchRequest {
  std::vector<int64_t> items;  // [B] dataset indices (the sampler's batch)
  uint64_t seed = 0;           // the batch's augmentation seed
  bool operator==(const BatchRequest&) const = default;
};

struct BatchPrefetcherOptions {
  int threads = 1;           // worker threads, >= 1
  int64_t depth = 3;         // batches prepared ahead at most, >= 1
  int64_t max_batches = -1;  // batches predicted at most (the iterations left); -1: no limit
  std::string what = "training batch";  // names the batch in error messages
};

// The worker count tgpt-train uses when none is given (--loader-threads): on the GPU every core
// but the one feeding it, at most 8; on the CPU 0, batches made on the training thread (the
// model's OpenMP team uses every core; a worker beside it slows it down).
int default_loader_threads(bool gpu_training);

class BatchPrefetcher {
 public:
  // The next request the trainer will draw; called in order, under the prefetcher's lock.
  using PlanFn = std::function<BatchRequest()>;
  // Image j of `request` into dst (f32, image_shape); called from worker threads, concurrently
  // for different (request, j); throws on failure with a message naming the file.
  using PrepareFn = std::function<void(const BatchRequest& request, int64_t j, float* dst)>;

  BatchPrefetcher(std::vector<int64_t> image_shape, PlanFn plan, PrepareFn prepare,
                  const BatchPrefetcherOptions& options);
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // The batch for `request`: f32 [B, image_shape...]. Throws tgpt::Error listing the images of
  // it that failed.
  Tensor next(const BatchRequest& request);

  bool prefetching() const;
  int threads() const { return static_cast<int>(workers_.size()); }

 private:
  struct Slot {
    BatchRequest request;
    Tensor images;                    // f32 [B, image_shape...]
    int64_t size = 0;                 // B
    int64_t taken = 0, finished = 0;  // images handed to workers / done
    std::vector<std::string> errors;  // [B], "" where the image worked
    std::string plan_error;           // the PlanFn threw
  };
  std::shared_ptr<Slot> make_slot(BatchRequest request) const;
  void work();

  std::vector<int64_t> image_shape_;
  int64_t image_numel_ = 1;
  PlanFn plan_;
  PrepareFn prepare_;
  BatchPrefetcherOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;          // workers: a task or a batch to plan, or stop
  std::condition_variable ready_cv_;         // next(): the front batch finished or planned
  std::deque<std::shared_ptr<Slot>> queue_;  // in hand-out order
  int64_t planned_ = 0;
  bool predicting_ = true;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

// The batch of `request` prepared on the calling thread's OpenMP team (one image per task), with
// next()'s errors (one tgpt::Error listing every failed image, named by `what`): f32
// [B, image_shape...], the same values as the prefetcher's.
Tensor prepare_batch(const std::vector<int64_t>& image_shape,
                     const BatchPrefetcher::PrepareFn& prepare, const BatchRequest& request,
                     const std::string& what);

// The PrepareFn of training images exactly as preprocess_image_files(paths of the batch's items,
// n, true, request.seed, transform) makes them (image j from its generator seeded from (seed,
// j)): f32 [3, n, n]. paths[item] is the file of dataset item `item`; errors name the file.
BatchPrefetcher::PrepareFn train_image_prepare(std::vector<std::string> paths, int64_t n,
                                               TrainTransform transform);

}  // namespace tgpt
