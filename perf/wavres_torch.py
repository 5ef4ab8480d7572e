#!/usr/bin/python3
"""Independent PyTorch implementation of the wavres routing spec (docs/routing-spec.md).

This file is the reference the C++ library is checked against, so it follows the spec literally and
leaves every gradient to autograd: no hand-written backward, no fused kernels, no "improvements".
Parameter names and shapes mirror /params/... of docs/checkpoint-layout.md, so a dump or checkpoint
loads one-to-one (`load_params_from_h5`) and gradients can be compared path by path (`named_tensors`).

Needs Debian's python (/usr/bin/python3) with python3-torch, python3-h5py and python3-numpy.
"""
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F

VARIANTS = ("prenorm", "full_attnres", "block_attnres", "wav_v1")
RMS_EPS = 1e-6

# Source kinds of the depth mixer; phase/split take their logit bias from detail_bias columns 0/1.
KIND_SUMMARY, KIND_PHASE, KIND_SPLIT = 0, 1, 2


def default_block_sublayers(n_layer):
    """Spec §4: pinned S for 12/24/48 layers, otherwise the multiple of 4 nearest to L/8 dividing L.

    The generic rule is tied for 24 layers (L/8 = 6: 4 and 8 are equally near) and the pinned value
    there is 8, so ties go to the larger S; the pinned table is applied first anyway.
    """
    pinned = {12: 4, 24: 8, 48: 12}
    if n_layer in pinned:
        return pinned[n_layer]
    L = 2 * n_layer
    candidates = [s for s in range(4, L + 1, 4) if L % s == 0]
    if not candidates:
        raise ValueError(f"no block size: L = {L} has no divisor that is a multiple of 4")
    return min(candidates, key=lambda s: (abs(s - L / 8.0), -s))


class Config:
    """Model shape, with the same field names as the /config attributes of a checkpoint."""

    def __init__(self, variant, n_layer, block_sublayers=None, d_model=256, n_head=4, d_ff=704,
                 vocab_size=27, seq_len=256):
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
        self.variant = variant
        self.n_layer = int(n_layer)
        self.d_model = int(d_model)
        self.n_head = int(n_head)
        self.d_ff = int(d_ff)
        self.vocab_size = int(vocab_size)
        self.seq_len = int(seq_len)
        if variant in ("block_attnres", "wav_v1"):
            S = default_block_sublayers(self.n_layer) if not block_sublayers else int(block_sublayers)
        else:
            S = 0  # the layout stores 0 for the variants without blocks
        self.block_sublayers = S
        self._validate()

    @property
    def n_sublayers(self):
        return 2 * self.n_layer

    @property
    def routed(self):
        return self.variant != "prenorm"

    def _validate(self):
        if self.d_model % self.n_head:
            raise ValueError("d_model must be divisible by n_head")
        L, S = self.n_sublayers, self.block_sublayers
        if self.variant in ("block_attnres", "wav_v1"):
            if S <= 0 or S % 2 or L % S:
                raise ValueError(f"block size S={S} must be even and divide L={L}")
            if self.variant == "wav_v1" and S < 4:
                raise ValueError("wav_v1 needs S >= 4 (at S = 2 phase and split coincide)")

    @classmethod
    def from_h5(cls, h5file):
        """Reads the /config attributes; h5py may hand strings back as bytes."""
        a = h5file["config"].attrs

        def text(v):
            if isinstance(v, bytes):
                return v.decode("utf-8")
            if hasattr(v, "item"):  # 0-d numpy object/bytes array
                return text(v.item())
            return str(v)

        return cls(variant=text(a["variant"]), n_layer=int(a["n_layer"]),
                   block_sublayers=int(a["block_sublayers"]), d_model=int(a["d_model"]),
                   n_head=int(a["n_head"]), d_ff=int(a["d_ff"]), vocab_size=int(a["vocab_size"]),
                   seq_len=int(a["seq_len"]))

    def to_dict(self):
        return {k: getattr(self, k) for k in ("variant", "n_layer", "block_sublayers", "d_model",
                                              "n_head", "d_ff", "vocab_size", "seq_len")}


def rho(x):
    """ρ(x) = sqrt(mean_d x_d² + 1e-6), per token (keeps the last axis for broadcasting)."""
    return torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + RMS_EPS)


def _module_with(**params):
    """A bare Module holding Parameters, so named_parameters() spells the layout paths."""
    m = torch.nn.Module()
    for name, p in params.items():
        setattr(m, name, torch.nn.Parameter(p))
    return m


class Layer(torch.nn.Module):
    """One layer = attention sublayer + MLP sublayer; the routing lives in WavresModel."""

    def __init__(self, cfg):
        super().__init__()
        D, F_ = cfg.d_model, cfg.d_ff
        e = torch.empty
        self.attn_norm = _module_with(gain=torch.ones(D))
        self.attn = _module_with(wq=e(D, D), wk=e(D, D), wv=e(D, D), wo=e(D, D))
        self.mlp_norm = _module_with(gain=torch.ones(D))
        self.mlp = _module_with(w_gate=e(F_, D), w_up=e(F_, D), w_down=e(D, F_))
        self.n_head = cfg.n_head

    def attention(self, h):
        x = rmsnorm(h, self.attn_norm.gain)
        B, T, D = x.shape
        H = self.n_head
        hd = D // H
        a = self.attn
        q = (x @ a.wq.t()).view(B, T, H, hd).transpose(1, 2)
        k = (x @ a.wk.t()).view(B, T, H, hd).transpose(1, 2)
        v = (x @ a.wv.t()).view(B, T, H, hd).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        future = torch.ones(T, T, dtype=torch.bool, device=h.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        o = torch.softmax(scores, dim=-1) @ v
        return o.transpose(1, 2).reshape(B, T, D) @ a.wo.t()

    def mlp_fn(self, h):
        x = rmsnorm(h, self.mlp_norm.gain)
        m = self.mlp
        return (F.silu(x @ m.w_gate.t()) * (x @ m.w_up.t())) @ m.w_down.t()


def rmsnorm(x, g):
    return g * (x / rho(x))


class _Source:
    """A mixer source: its raw value v, its key u = v/ρ(v) (computed once, reused by every
    consumer that sees the source), its kind (for the detail bias) and its label."""

    __slots__ = ("v", "u", "kind", "label")

    def __init__(self, v, kind, label):
        self.v = v
        self.u = v / rho(v)
        self.kind = kind
        self.label = label


class WavresModel(torch.nn.Module):
    """Decoder-only char Transformer with the four residual routings of the spec (§0–§5)."""

    def __init__(self, cfg, routing_init="zeros", seed=None):
        super().__init__()
        self.cfg = cfg
        V, T, D, L = cfg.vocab_size, cfg.seq_len, cfg.d_model, cfg.n_sublayers
        self.embed = _module_with(token=torch.empty(V, D), position=torch.empty(T, D))
        self.layers = torch.nn.ModuleList([Layer(cfg) for _ in range(cfg.n_layer)])
        if cfg.routed:
            r = dict(query=torch.zeros(L + 1, D), key_gain=torch.ones(L + 1, D))
            if cfg.variant == "wav_v1":
                r["detail_bias"] = torch.full((L + 1, 2), -2.0)
            self.routing = _module_with(**r)
        self.final_norm = _module_with(gain=torch.ones(D))
        self.lm_head = torch.nn.Parameter(torch.empty(V, D))
        self.reset_parameters(routing_init, seed)

    # ---------------------------------------------------------------- parameters

    def reset_parameters(self, routing_init="zeros", seed=None):
        """Spec §6 init. routing_init: 'zeros' (the spec default) or 'normal:STD' for the queries,
        which tests use to get away from the uniform-average point where the key path is dead."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        cfg = self.cfg
        std_out = 0.02 / math.sqrt(2 * cfg.n_layer)  # residual-writing projections
        with torch.no_grad():
            for path, p in self.named_tensors().items():
                leaf = path.rsplit("/", 1)[-1]
                if path.startswith("routing/"):
                    if leaf == "query":
                        if routing_init == "zeros":
                            p.zero_()
                        elif routing_init.startswith("normal:"):
                            p.copy_(_normal(p.shape, float(routing_init.split(":", 1)[1]), gen))
                        else:
                            raise ValueError(f"routing_init {routing_init!r}: use zeros or normal:STD")
                    elif leaf == "key_gain":
                        p.fill_(1.0)
                    else:  # detail_bias
                        p.fill_(-2.0)
                elif leaf == "gain":
                    p.fill_(1.0)
                elif leaf in ("wo", "w_down"):
                    p.copy_(_normal(p.shape, std_out, gen))
                else:
                    p.copy_(_normal(p.shape, 0.02, gen))

    def named_tensors(self):
        """Layout path ('embed/token', 'layers/0/attn/wq', 'routing/query', ...) -> Parameter."""
        return OrderedDict((n.replace(".", "/"), p) for n, p in self.named_parameters())

    # ---------------------------------------------------------------- routing

    def _mix(self, c, sources, alpha_out):
        """Spec §2 depth mixer for consumer row c (0-based: row l-1 = sublayer l, row L = output)."""
        r = self.routing
        qhat = r.query[c] * r.key_gain[c]
        # Per-source products instead of stacking the [n,B,T,D] sources: stacking copies every source
        # once per consumer (and einsum lowered it to slow batched GEMMs), which dominated the CPU
        # step time; only the small logits are stacked, sources last ([B,T,n]) so the softmax runs along
        # contiguous memory.
        logits = torch.stack([s.u @ qhat for s in sources], dim=-1)
        kinds = [s.kind for s in sources]
        if any(k != KIND_SUMMARY for k in kinds):
            db = r.detail_bias[c]
            zero = torch.zeros((), dtype=db.dtype, device=db.device)
            beta = torch.stack([zero if k == KIND_SUMMARY else db[k - 1] for k in kinds])
            logits = logits + beta
        # torch.softmax subtracts the max internally (the spec's stabilisation).
        alpha = torch.softmax(logits, dim=-1)
        if alpha_out is not None:
            alpha_out[c] = (alpha.detach().double().mean(dim=(0, 1)), [s.label for s in sources])
        h = alpha[..., 0:1] * sources[0].v
        for j in range(1, len(sources)):
            h = h + alpha[..., j:j + 1] * sources[j].v
        return h

    def _sublayer(self, l, h):
        """l is 1-based: odd = attention, even = MLP of layer (l-1)//2."""
        layer = self.layers[(l - 1) // 2]
        return layer.attention(h) if l % 2 == 1 else layer.mlp_fn(h)

    def hidden_out(self, tokens_in, alpha_out=None):
        """h_out, the input of the final norm. alpha_out, if a dict, receives per consumer row
        (alpha averaged over (b,t), source labels)."""
        cfg = self.cfg
        L = cfg.n_sublayers
        T = tokens_in.shape[1]
        x0 = self.embed.token[tokens_in] + self.embed.position[:T]

        if cfg.variant == "prenorm":  # §1
            h = x0
            for l in range(1, L + 1):
                h = h + self._sublayer(l, h)
            return h

        if cfg.variant == "full_attnres":  # §3: sources are x_0 and each sublayer's own update
            sources = [_Source(x0, KIND_SUMMARY, "x0")]
            for l in range(1, L + 1):
                y = self._sublayer(l, self._mix(l - 1, sources, alpha_out))
                sources.append(_Source(y, KIND_SUMMARY, f"y{l}"))
            return self._mix(L, sources, alpha_out)

        # §4 Block AttnRes and §5 WAV v1: same skeleton; WAV adds two detail sources per completed block.
        S = cfg.block_sublayers
        wav = cfg.variant == "wav_v1"
        completed = [_Source(x0, KIND_SUMMARY, "b0")]  # b_0 is permanent, never folded into a block
        partial = phase = split = None
        for l in range(1, L + 1):
            n = (l - 1) // S + 1
            i = (l - 1) % S + 1
            sources = completed if i == 1 else completed + [_Source(partial, KIND_SUMMARY, "partial")]
            y = self._sublayer(l, self._mix(l - 1, sources, alpha_out))
            if i == 1:  # b_n^1 = 0 + y (exact), and both signed accumulators start at +y
                partial = y
                if wav:
                    phase, split = y, y
            else:
                partial = partial + y
                if wav:
                    phase = phase + y if i % 2 == 1 else phase - y  # +attention (odd i), −MLP
                    split = split + y if i <= S // 2 else split - y  # +early half, −late half
            if i == S:
                b_n = partial
                completed.append(_Source(b_n, KIND_SUMMARY, f"b{n}"))
                if wav:
                    # Detached RMS matching: the factor κ is a constant in backward, so nothing
                    # flows into b_n through it.
                    rb = rho(b_n)
                    completed.append(_Source((rb / rho(phase)).detach() * phase, KIND_PHASE, f"phase{n}"))
                    completed.append(_Source((rb / rho(split)).detach() * split, KIND_SPLIT, f"split{n}"))
                partial = phase = split = None
        return self._mix(L, completed, alpha_out)

    # ---------------------------------------------------------------- outputs

    def logits(self, tokens_in, alpha_out=None):
        h = self.hidden_out(tokens_in, alpha_out)
        return rmsnorm(h, self.final_norm.gain) @ self.lm_head.t()

    def forward(self, tokens_in, targets):
        """Mean cross-entropy in nats over all B·T positions."""
        logits = self.logits(tokens_in)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def loss_and_alpha(self, tokens_in, targets):
        """(loss, alpha_mean [L+1, n_max] NaN padded, labels [L+1][n_c]); alpha is empty for prenorm."""
        rows = {}
        logits = self.logits(tokens_in, rows if self.cfg.routed else None)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        if not self.cfg.routed:
            return loss, None, None
        L = self.cfg.n_sublayers
        n_max = max(len(rows[c][1]) for c in range(L + 1))
        alpha = torch.full((L + 1, n_max), float("nan"), dtype=torch.float64)
        labels = []
        for c in range(L + 1):
            a, lab = rows[c]
            alpha[c, : a.numel()] = a.double().cpu()
            labels.append(lab)
        return loss, alpha, labels

    def source_labels(self):
        """Per consumer row, the canonical source labels (cheap: runs on a 1-token batch)."""
        if not self.cfg.routed:
            return None
        with torch.no_grad():
            tok = torch.zeros(1, 1, dtype=torch.long, device=self.lm_head.device)
            return self.loss_and_alpha(tok, tok)[2]


def _normal(shape, std, gen):
    return torch.randn(*shape, generator=gen) * std


# -------------------------------------------------------------------- I/O

def load_params_from_h5(model, h5file, strict=True):
    """Copies /params/<path> into the model (converting to the model's dtype, float64 after
    model.double()). Returns the list of /params paths the model does not have."""
    import numpy as np

    grp = h5file["params"]
    present = _dataset_paths(grp)
    tensors = model.named_tensors()
    missing = [p for p in tensors if p not in present]
    if missing and strict:
        raise KeyError(f"/params lacks {len(missing)} tensor(s), first: /params/{missing[0]}")
    with torch.no_grad():
        for path, p in tensors.items():
            if path not in present:
                continue
            arr = np.asarray(grp[path][()])
            if tuple(arr.shape) != tuple(p.shape):
                raise ValueError(f"/params/{path}: shape {tuple(arr.shape)}, expected {tuple(p.shape)}")
            p.copy_(torch.from_numpy(arr).to(p.dtype))
    return [p for p in present if p not in tensors]


def _dataset_paths(group):
    """All dataset paths under an h5py group, relative to it, '/'-separated."""
    import h5py

    out = []
    group.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return out


# -------------------------------------------------------------------- training (§6)

def param_groups(model, weight_decay=0.1):
    """Decay rank-2 weights and embeddings (incl. lm_head); not gains, not routing parameters
    (query/key_gain/detail_bias are rank 2 too, so they are excluded by path, not by rank)."""
    decay, no_decay = [], []
    for path, p in model.named_tensors().items():
        (decay if p.dim() == 2 and not path.startswith("routing/") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model, lr=1e-3, weight_decay=0.1):
    # torch's AdamW decays decoupled and scaled by lr: p ← p − lr·wd·p (then the Adam step).
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.95), eps=1e-8)


def lr_at(step, total_steps, peak=1e-3, warmup_frac=0.05, final_frac=0.1):
    """lr of 0-based step: linear warm-up over W = max(1, round(warmup_frac·total)) steps reaching
    the peak at step W-1, then cosine from the peak (step W) towards final_frac·peak (at step = total)."""
    W = max(1, int(math.floor(warmup_frac * total_steps + 0.5)))
    if step < W:
        return peak * (step + 1) / W
    progress = min(1.0, (step - W) / max(1, total_steps - W))
    floor = final_frac * peak
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def clip_grad_norm(params, max_norm=1.0):
    """Global L2 clip, scale = min(1, max_norm/‖g‖) (no epsilon, unlike torch's helper)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    if norm > max_norm:
        scale = (max_norm / norm).item()
        for g in grads:
            g.mul_(scale)
    return norm.item()


def train_step(model, opt, tokens_in, targets, lr):
    """One optimizer step (forward, backward, clip, AdamW). Returns (loss, pre-clip grad norm)."""
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss = model(tokens_in, targets)
    loss.backward()
    gnorm = clip_grad_norm(list(model.parameters()), 1.0)
    opt.step()
    return loss.item(), gnorm
