/*
 * autograd.h — the tape: nodes recorded in forward order, replayed in reverse by backward().
 *
 * An op whose inputs include a tensor with requires_grad (and with grad mode on) creates a Node
 * holding its inputs' gradient routes and whatever it saved for backward, and pushes it on the
 * thread's tape; the output tensor points to that node. backward() seeds the gradient of the
 * output, walks the tape from the newest node to the oldest, calls each node that received a
 * gradient, and hands the results to the inputs: a leaf accumulates into .grad(), an intermediate
 * passes it to its own node. Afterwards the tape is cleared (its capacity is kept) and every node
 * releases what it saved. Inputs that do not require grad get no gradient, and nodes use
 * needs_grad(i) to skip the work (e.g. a linear layer with a frozen weight skips the
 * weight-gradient GEMM).
 *
 * A gradient route (gradient_route below) is the input itself for a leaf and a storage-less
 * stand-in for an intermediate: nodes read only their inputs' shape, dtype and device, and an op
 * whose backward needs an input's values saves them explicitly (mul saves both factors, linear
 * its input, ...). So the tape keeps alive exactly what backward will read, and an intermediate
 * no node saved is freed as soon as the forward code drops it (e.g. the f32 copies and results
 * of the CPU's bf16 ops computed in f32: a cast saves nothing).
 *
 * Every node has exactly one output. Tensor buffers come from the caching allocators, so a
 * training step with the same shapes as the previous one takes no new memory from the system.
 */
#pragma once

#include <memory>
#include <vector>

#include "engine/tensor.h"

namespace tgpt {

struct Node {
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // Computes the gradients of the inputs from the gradient of the output. grad_inputs has
  // inputs.size() undefined entries on entry; fill entry i only when needs_grad(i).
  virtual void backward(const Tensor& grad_output, std::vector<Tensor>& grad_inputs) = 0;
  // Drops saved tensors (called after backward ran or when the tape is cleared).
  virtual void release() {}

  bool needs_grad(size_t i) const {
    return i < inputs.size() && inputs[i].defined() && inputs[i].requires_grad();
  }

  std::vector<Tensor> inputs;  // gradient_route of each tensor input (undefined entries allowed)
  Tensor grad_output;          // gradient of the output, accumulated during backward
  bool released = false;
};

// Grad mode (thread-local). Ops record nodes only when it is on (default) and an input requires
// grad.
bool grad_enabled();
void set_grad_enabled(bool enabled);

class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// What a node keeps of input t: t itself when it is a leaf (backward accumulates into its .grad)
// or undefined; otherwise a tensor with t's shape, strides, dtype, device, requires_grad and
// producing node but no storage (its data pointer is null), through which backward routes the
// gradient exactly as through t.
Tensor gradient_route(const Tensor& t);

// True when an op with these inputs must be recorded.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);

// Creates node type N with the given inputs when recording is needed, else returns nullptr.
// Usage in an op:
//   if (auto node = make_node<MyNode>({&x, &w})) { node->saved = ...; record(out, node); }
template <typename N>
std::shared_ptr<N> make_node(std::initializer_list<const Tensor*> inputs) {
  if (!grad_enabled() || !any_requires_grad(inputs)) return nullptr;
  auto node = std::make_shared<N>();
  node->inputs.reserve(inputs.size());
  for (const Tensor* t : inputs) node->inputs.push_back(t ? gradient_route(*t) : Tensor());
  return node;
}

// Marks `out` as produced by `node` (requires_grad = true) and pushes the node on the tape.
void record(Tensor& out, std::shared_ptr<Node> node);

// Runs backward from `root` seeded with `grad` (same shape as root). Called by Tensor::backward.
void run_backward(const Tensor& root, const Tensor& grad);

// Number of nodes on this thread's tape, and clearing it without running backward (e.g. after an
// evaluation forward that recorded by mistake).
size_t tape_size();
void clear_tape();

// Reduces a gradient of a broadcast result back to `shape` (sums over broadcast dims).
Tensor sum_to_shape(const Tensor& grad, const Shape& shape);

}  // namespace tgpt
