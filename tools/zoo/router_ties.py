"""Router ties of mixture-of-experts programs: which routing the compiled program took where eager's was a tie.

A tie is a token of a router (the `gate` of a module with an int `top_k`) whose k-th and (k+1)-th scores are at
most TIE_ULPS ulps of the scores' dtype apart, the ulp taken at the magnitude of the scores' dot products
(Σ_i |x_i|·|w_ji|, the larger of the two experts'): the program's router inputs differ from eager's by a few
roundings, and a score's rounding error scales with that sum, not with the score (a score near 0 made of large
terms is as uncertain as a large one). There, a program that rounds in another order may select the (k+1)-th
expert instead of the k-th — a different, equally valid computation whose logits, through the KV cache and the
recurrent states, can move by far more than the dtype's rounding. So a teacher-forced comparison after a tie is
not against eager's one routing but against eager with the program's choice at each tie: `resolve` re-runs eager
on the reference's calls and, call by call, tries flips of that call's ties (the (k+1)-th expert selected instead
of the k-th, every other token routed as eager routes it), keeping the BEAM routings whose logits are nearest the
program's (by the worst step so far). The program's logits are then held to the entry's usual bound against the
best of them. Flips happen only at ties, so a wrong expert weight, a wrong routing at a clear margin or any other
bug still shows up (`zoo mutate NAME expert|router` shows both).

Limits, stated: a search, not a proof — a correct program whose tie choices the beam does not find fails (never
the reverse); the ties of a call are found on the routing kept so far with none of that call's flips applied (a
flip in one layer moves the next layers' scores by rounding-sized amounts); a call with more than FULL_SUBSETS
ties (a prompt) tries at most two flips among its FULL_SUBSETS + 2 closest ties; only the k-th/(k+1)-th boundary.
"""

from __future__ import annotations

import copy
import itertools
import os

import numpy as np
import torch

# The tie rule: the k-th and (k+1)-th router scores at most TIE_ULPS ulps of bf16 apart at the scale of their dot
# products. Eager rounds the router's inputs per op in bf16 and the compiled program once per fused kernel, so the
# hidden states entering the router differ by a few bf16 ulps per element and each score by about as many ulps of
# Σ|x||w|; 8 leaves room for that without admitting a clear choice. ZOO_TIE_ULPS / ZOO_TIE_BEAM override (to study).
TIE_ULPS = float(os.environ.get("ZOO_TIE_ULPS", 8))
# ties.json also lists gaps up to this many ulps (diagnosis only: no flip is tried above TIE_ULPS)
SHOWN_ULPS = float(os.environ.get("ZOO_SHOWN_ULPS", 0))
FULL_SUBSETS = 6
BEAM = int(os.environ.get("ZOO_TIE_BEAM", 6))


def dot_scale(gate, x: torch.Tensor) -> torch.Tensor:
    """Σ_i |x_i|·|w_ji| per row of x [N, C] and expert j: the magnitude a dot product's rounding error scales
    with (a score near 0 made of large terms is as uncertain as a large one)."""
    w = gate.weight
    w = w.dequantize() if hasattr(w, "dequantize") else w
    return x.detach().float().abs().reshape(-1, x.shape[-1]) @ w.detach().float().abs().t()


def ulp_gap(scores: torch.Tensor, k: int, scale: torch.Tensor = None):
    """Per row of `scores` [N, E]: (gap of the k-th to the (k+1)-th score in ulps of the scores' dtype, the k-th
    expert, the (k+1)-th). The ulp is taken at `scale` (dot_scale: the larger of the two experts'), else at the
    k-th score."""
    top = torch.topk(scores.detach().float(), k + 1, dim=-1)
    kth, next_ = top.values[:, k - 1], top.values[:, k]
    at = kth.abs()
    if scale is not None:
        at = torch.maximum(scale.gather(1, top.indices[:, k - 1:k]), scale.gather(1, top.indices[:, k:k + 1])).flatten()
    eps, tiny = torch.finfo(scores.dtype).eps, torch.finfo(scores.dtype).tiny
    spacing = torch.clamp(torch.exp2(torch.floor(torch.log2(at.clamp_min(tiny)))) * eps, min=tiny)
    return (kth - next_) / spacing, top.indices[:, k - 1], top.indices[:, k]


class Routers:
    """Forward hooks on every router of a module. In the order the routers run within a call (layer index L),
    `events` collects the ties [(L, row, gap)] and `flips` {(L, row)} makes the (k+1)-th expert replace the k-th
    in that row (the k-th scored below every other, so each selected expert keeps its own score). The hooks name
    routers by index, so they act the same on deep copies of the module."""

    def __init__(self, mod):
        self.events, self.flips, self.count = [], set(), 0
        index = 0
        for m in mod.modules():
            k, gate = getattr(m, "top_k", None), getattr(m, "gate", None)
            if isinstance(k, int) and isinstance(gate, torch.nn.Module):
                gate.register_forward_hook(self.hook(index, k))
                index += 1
        self.routers = index

    def hook(self, layer, k):
        def route(module, inputs, out):
            scores = out[0] if isinstance(out, (tuple, list)) else out
            if not torch.is_tensor(scores) or scores.shape[-1] <= k:
                return None
            flat = scores.reshape(-1, scores.shape[-1])
            gaps, kth, _ = ulp_gap(flat, k, dot_scale(module, inputs[0]))
            for row in torch.nonzero(gaps <= max(TIE_ULPS, SHOWN_ULPS)).flatten().tolist():
                self.events.append((layer, row, float(gaps[row])))
            rows = [row for (lay, row) in self.flips if lay == layer]
            if not rows:
                return None
            changed = flat.clone()
            for row in rows:
                changed[row, kth[row]] = torch.finfo(flat.dtype).min
            return changed.reshape(scores.shape) if not isinstance(out, (tuple, list)) else \
                type(out)([changed.reshape(scores.shape), *out[1:]])
        return route

    def run(self, mod, call, c, flips):
        """Call `c` of `mod` with `flips` applied → (its last position's logits, the ties seen)."""
        self.events, self.flips = [], set(flips)
        try:
            last = call(mod, c)
        finally:
            self.flips = set()
        return last, self.events


def flip_sets(events):
    """The subsets of a call's ties to try: all of them up to FULL_SUBSETS ties (a decode call: one token per
    router), else those of at most two flips among the FULL_SUBSETS + 2 closest ties (a prompt)."""
    ties = sorted((gap, layer, row) for layer, row, gap in events if gap <= TIE_ULPS)
    if len(ties) > FULL_SUBSETS:
        ties, most = ties[:FULL_SUBSETS + 2], 2
    else:
        most = len(ties)
    ties = [(layer, row) for _, layer, row in ties]
    return [list(c) for n in range(most + 1) for c in itertools.combinations(ties, n)]


def resolve(mod, call, calls, first, program_logits):
    """Beam search over the ties of each call. `call(mod, c)` runs the reference's call `c` (of `calls`: the
    prompt's chunks, then one greedy token each) and returns the last position's logits (float32 tensor);
    call `first` gives step 0's logits; `program_logits[s]` are the program's at step s.
    → {"errors": per step, "worst", "flips": [{"call", "layer", "row"}], "ties": [ties seen per call], "logits"}"""
    routers = Routers(mod)
    if routers.routers == 0:
        raise RuntimeError("no router (a `gate` beside an int `top_k`) in the module")

    def err(last, s):  # as zoo check measures: max |program - eager| / max |eager|
        eager = last.numpy().astype(np.float32)
        return float(np.abs(program_logits[s] - eager).max() / max(np.abs(eager).max(), 1e-30))

    # A beam entry: (worst error so far, sum of errors, module state, flips so far, errors, logits, ties per call)
    beam = [(0.0, 0.0, mod, [], [], [], [])]
    for c in range(len(calls)):
        nxt = []
        for worst, total, state, flips, errors, logits, ties in beam:
            base = copy.deepcopy(state)
            last, events = routers.run(base, call, c, [])
            for subset in flip_sets(events):
                if subset:
                    m = copy.deepcopy(state)
                    last_s, _ = routers.run(m, call, c, subset)
                else:
                    m, last_s = base, last
                e = err(last_s, c - first) if c >= first else 0.0
                s_err = errors + ([e] if c >= first else [])
                s_log = logits + ([last_s.numpy().astype(np.float32)] if c >= first else [])
                s_flips = flips + [{"call": c, "layer": layer, "row": row} for layer, row in subset]
                s_ties = ties + [[{"layer": layer, "row": row, "gap_ulps": round(gap, 2)} for layer, row, gap in events]]
                nxt.append((max(worst, e), total + e, m, s_flips, s_err, s_log, s_ties))
        # Nearest first; among equals, fewer flips (eager's own routing wins a tie of ties).
        nxt.sort(key=lambda b: (b[0], b[1], len(b[3])))
        beam = nxt[:BEAM]
    worst, _, _, flips, errors, logits, ties = beam[0]
    return {"errors": errors, "worst": worst, "flips": flips, "ties": ties, "logits": logits}
