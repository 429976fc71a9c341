"""Our own PyTorch reference of CoOp (unified context, class token at the end) on clip_ref.py.

Written from KaiyangZhou/CoOp's PromptLearner / CustomCLIP (trainers/coop.py) as described in
models/coop/coop.h, with plain torch ops on a state dict under OpenAI's names:

  prompt_texts(classnames, n_ctx, init_text) -> ["X X ... X name." per class] ('_' -> ' ' in the
      names; the init text replaces the X's and n_ctx is its word count)
  prompts(sd, tokens, n_ctx, ctx, dt) -> [C,77,W] = cat(emb[:, :1], ctx expanded, emb[:, 1+n_ctx:])
  text_features(sd, cfg, tokens, n_ctx, ctx, dt) -> [C,E], pooled at argmax(tokens)
  logits(image_features, text_features, logit_scale, dt) -> [B,C]
      = exp(logit_scale) * (img / ||img||) @ (txt / ||txt||)^T
  forward(sd, cfg, tokens, n_ctx, ctx, image_features, labels, dt) -> (text, logits, loss, dctx),
      loss = mean cross-entropy, dctx = d loss / d ctx.
"""
import torch
import torch.nn.functional as F

import clip_ref


def prompt_texts(classnames, n_ctx, init_text=""):
    if init_text:
        prefix = init_text.replace("_", " ")
    else:
        prefix = " ".join(["X"] * n_ctx)
    return [prefix + " " + name.replace("_", " ") + "." for name in classnames]


def prompts(sd, tokens, n_ctx, ctx, dt):
    emb = clip_ref.embed_tokens(sd, tokens, dt)  # [C,77,W]
    C = emb.shape[0]
    prefix = emb[:, :1, :]  # SOT
    suffix = emb[:, 1 + n_ctx:, :]  # class name, '.', EOT, padding
    ctx = ctx.to(dt).unsqueeze(0).expand(C, -1, -1)  # [C,n_ctx,W]
    return torch.cat([prefix, ctx, suffix], dim=1)


def text_features(sd, cfg, tokens, n_ctx, ctx, dt):
    x = prompts(sd, tokens, n_ctx, ctx, dt)
    return clip_ref.text_from_embeddings(sd, cfg, x, clip_ref.eot_positions(tokens), dt)


def logits(image_features, text_feats, logit_scale, dt):
    img = image_features.to(dt)
    img = img / img.norm(dim=-1, keepdim=True)
    txt = text_feats / text_feats.norm(dim=-1, keepdim=True)
    return logit_scale.to(dt).exp() * img @ txt.t()


def forward(sd, cfg, tokens, n_ctx, ctx, image_features, labels, dt):
    leaf = ctx.detach().to(dt).clone().requires_grad_(True)
    txt = text_features(sd, cfg, tokens, n_ctx, leaf, dt)
    lg = logits(image_features, txt, sd["logit_scale"], dt)
    loss = F.cross_entropy(lg, labels.long())
    loss.backward()
    return txt.detach(), lg.detach(), loss.detach(), leaf.grad
