/*
 * autograd.cpp — the thread-local tape, grad mode, and backward().
 */
#include "engine/autograd.h"

#include "engine/ops.h"

namespace tgpt {

namespace {

struct Tape {
  std::vector<std::shared_ptr<Node>> nodes;
};

thread_local bool t_grad_enabled = true;
thread_local Tape t_tape;

// Adds g into the gradient slot of `t` (leaf: .grad; intermediate: its node's grad_output).
void accumulate(const Tensor& t, const Tensor& g) {
  TGPT_CHECK(g.shape() == t.shape(), "internal: gradient ", g.shape().str(), " for tensor ",
             t.shape().str());
  Tensor gg = g.dtype() == t.dtype() ? g : g.to(t.dtype());
  if (Node* n = t.grad_fn()) {
    n->grad_output = n->grad_output.defined() ? add(n->grad_output, gg) : gg;
  } else {
    Tensor cur = t.grad();
    t.impl().grad = (cur.defined() ? add(cur, gg) : gg).impl_ptr();
  }
}

}  // namespace

bool grad_enabled() {
  return t_grad_enabled;
}
void set_grad_enabled(bool enabled) {
  t_grad_enabled = enabled;
}

Tensor gradient_route(const Tensor& t) {
  if (!t.defined() || t.is_leaf()) return t;
  // One zero-byte external storage per device, shared by every route: device() answers, nothing
  // is allocated or kept.
  static const std::shared_ptr<const void> kNoOwner = std::make_shared<int>(0);
  static const std::shared_ptr<Storage> kNoData[2] = {
      std::make_shared<Storage>(nullptr, 0, Device::CPU, kNoOwner),
      std::make_shared<Storage>(nullptr, 0, Device::CUDA, kNoOwner)};
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = kNoData[t.device() == Device::CPU ? 0 : 1];
  impl->shape = t.shape();
  impl->strides = t.strides();
  impl->dtype = t.dtype();
  impl->requires_grad = t.requires_grad();
  impl->grad_fn = t.impl().grad_fn;
  return Tensor(std::move(impl));
}

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record(Tensor& out, std::shared_ptr<Node> node) {
  TensorImpl& impl = out.impl();
  impl.requires_grad = true;
  impl.grad_fn = node;
  t_tape.nodes.push_back(std::move(node));
}

size_t tape_size() {
  return t_tape.nodes.size();
}

void clear_tape() {
  for (auto& n : t_tape.nodes) {
    n->release();
    n->inputs.clear();
    n->grad_output = Tensor();
    n->released = true;
  }
  t_tape.nodes.clear();  // keeps capacity for the next step
}

void run_backward(const Tensor& root, const Tensor& grad) {
  TGPT_CHECK(root.requires_grad(), "backward() on a tensor that does not require grad");
  TGPT_CHECK(grad.shape() == root.shape(), "backward(): gradient ", grad.shape().str(),
             " for output ", root.shape().str());
  NoGradGuard no_grad;  // gradients themselves are not recorded
  if (root.is_leaf()) {
    accumulate(root, grad);
    return;
  }
  Node* root_node = root.grad_fn();
  TGPT_CHECK(!root_node->released,
             "backward() through a graph that was already released by an earlier backward()");
  accumulate(root, grad);
  std::vector<Tensor> grad_inputs;
  auto& nodes = t_tape.nodes;
  for (size_t k = nodes.size(); k-- > 0;) {
    Node* n = nodes[k].get();
    if (!n->grad_output.defined()) continue;
    grad_inputs.assign(n->inputs.size(), Tensor());
    n->backward(n->grad_output, grad_inputs);
    n->grad_output = Tensor();
    for (size_t i = 0; i < grad_inputs.size(); ++i) {
      if (!n->needs_grad(i)) continue;
      TGPT_CHECK(grad_inputs[i].defined(), "internal: op ", n->name(),
                 " produced no gradient for input ", i);
      accumulate(n->inputs[i], grad_inputs[i]);
    }
  }
  clear_tape();
}

Tensor sum_to_shape(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  int gd = grad.dim(), sd = shape.size();
  TGPT_CHECK(gd >= sd, "internal: sum_to_shape ", grad.shape().str(), " -> ", shape.str());
  std::vector<int> dims;
  for (int i = 0; i < gd; ++i) {
    int j = i - (gd - sd);
    if (j < 0 || (shape[j] == 1 && grad.shape()[i] != 1)) dims.push_back(i);
  }
  Tensor r = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return r.reshape(shape);
}

}  // namespace tgpt
