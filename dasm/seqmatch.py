"""SeqMatch's per-segment mechanics, shared by ``seq`` and DASM (they differ only in the windows).

Reference: shqii1j/seqmatch (Du et al., NeurIPS 2023), ``seqmatch-idc/condense_new.py``
``condense()`` and ``seqmatch-idc/run.sh``. For segment k (base IDC):

- budgets (``run.sh``: ``--ipcs=[25,25] --inner_loop=[50,100] --niters=[2000,4000]``, with
  ``n_iter = niter * 100 // inner_loop``, line 530): relative to IDC's own config (inner loop
  100, 2000 outer iterations), segment k runs ``inner_loop * inner_loop_scales[k]`` inner loops
  and keeps ``niter_scales[k]`` times IDC's image updates, i.e.
  ``iterations = niter_scales[k] * iterations * inner_loop / inner_loop_k`` (CIFAR-10: 4000 x 50,
  then 4000 x 100); the last scale repeats for further segments;
- the matching network: every ``fix_iter`` (50) iterations a fresh network is trained on the
  earlier segments, chained over their cumulative unions S1, S1+S2, ... (lines 557-563), and
  every iteration matches with a copy of it (line 565); segment 1's is a fresh random network;
- the image checkpoint kept: every ``checkpoint_every`` (``--it_eval=100``) iterations, a network
  trained through the same chain and then on earlier segments + the candidate is scored, and
  the best candidate is kept (lines 645-666). SeqMatch scores on the TEST split (its
  ``val_loader`` is the test set); we score the last-epoch accuracy on the VALIDATION split, and
  every candidate of a segment starts from the same chained network (less selection noise).

The network updates between matches use real data only, and IDC's 128-decoded-image cap
applies to each segment separately: both live in :mod:`baselines.idc`, which honours
:class:`bench.methods.registry.SegmentHooks`. Only IDC has a SeqMatch variant here (:data:`SEQMATCH_BASES`);
other bases run sequentially with ``frozen`` alone, and base ``mtt`` is refused
(:func:`check_sequential_base`).

Example::

    hooks = segment_hooks(request, config, earlier=[segment_1], seed=0)
    cfg = segment_budget(base_cfg, k=2, config=config)
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from torch import nn

from bench.errors import BenchError
from bench.methods.registry import DistillRequest, SegmentHooks
from bench.protocols import EvalProtocol
from bench.store.synthetic import SyntheticSet
from bench.train.evaluation import accuracy, train_network
from bench.train.models import create_model

SEQMATCH_BASES = frozenset({"idc"})  # bases with SeqMatch's mechanics (seqmatch-idc)


def check_sequential_base(base: str) -> None:
    """One-line refusal of base ``mtt`` for the sequential methods (SeqMatch item: MTT experts)."""
    if base == "mtt":
        raise BenchError("base 'mtt' is not supported by dasm/seq/dasm-reverse: SeqMatch-MTT retrains the expert "
                         "trajectories of every later segment from a network trained on the earlier segments "
                         "(shqii1j/seqmatch, seqmatch-mtt/buffer.py --reparam_syn), which baselines/mtt's expert "
                         "buffer does not do; use base idc (or dc, dsa, dm)")


def parse_scales(text: str, name: str) -> tuple[float, ...]:
    """``"0.5,1"`` -> (0.5, 1.0); one-line error unless every value is a positive number."""
    try:
        values = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise BenchError(f"{name} expects comma-separated positive numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise BenchError(f"{name} expects comma-separated positive numbers, got {text!r}")
    return values


def _scale(values: tuple[float, ...], k: int) -> float:
    return values[min(k, len(values)) - 1]


def segment_budget(base_config: Any, k: int, inner_loop_scales: str, niter_scales: str, fix_iter: int) -> Any:
    """The base IDC config for segment ``k`` (1-based) under SeqMatch's ``run.sh`` budgets.

    Example::

        cfg = segment_budget(IDCConfig(), 2, "0.5,1", "1,2", 50)   # inner_loop 100, 4000 iterations
    """
    inner = max(1, round(base_config.inner_loop * _scale(parse_scales(inner_loop_scales, "inner_loop_scales"), k)))
    updates = _scale(parse_scales(niter_scales, "niter_scales"), k) * base_config.iterations * base_config.inner_loop
    iterations = max(1, round(updates / inner)) if base_config.iterations > 0 else 0
    return dataclasses.replace(base_config, inner_loop=inner, iterations=iterations, fix_iter=fix_iter)


def _train_chain(net: nn.Module, earlier: list[SyntheticSet], protocol: EvalProtocol, seed: int,
                 request: DistillRequest) -> nn.Module:
    """Train ``net`` in place on S1, then S1+S2, ... (the cumulative unions of ``earlier``), as
    condense_new.py's ``for last_syn_com in best_synthesizer_com: ... .test(model1=init_model)``."""
    g = torch.Generator()
    g.manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for j in range(1, len(earlier) + 1):
            images, labels = SyntheticSet.concat(earlier[:j], metadata={}).decode()
            train_network(net, images.detach(), labels.detach(), protocol, g, request.device, request.data.name)
    return net.train()


def segment_hooks(request: DistillRequest, earlier: list[SyntheticSet], protocol: EvalProtocol, arch: str,
                  checkpoint_every: int, seed: int) -> SegmentHooks:
    """SeqMatch's hooks for the segment after ``earlier``: warm-up on, and scoring after, them.

    ``protocol`` trains every network involved (the ranking model's: the base's evaluation protocol
    at ``difficulty_epochs``); ``arch`` is the scoring network; scores are validation accuracy (%).
    """
    data = request.data
    if len(data.val) == 0:
        raise BenchError(f"{data.name} has no validation split; SeqMatch's checkpoint selection needs one")
    prefix: list[nn.Module] = []  # the chained scoring network, built once per segment

    def warm_up(net: nn.Module, net_seed: int) -> None:
        if earlier:
            _train_chain(net, earlier, protocol, net_seed, request)

    def score(candidate: SyntheticSet) -> float:
        if not prefix:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = create_model(arch, data.channels, data.num_classes, data.image_size).to(request.device)
            prefix.append(_train_chain(net, earlier, protocol, seed + 1, request))
        net = copy.deepcopy(prefix[0])
        _train_chain(net, [SyntheticSet.concat(earlier + [candidate], metadata={})], protocol, seed + 2, request)
        return accuracy(net, data.val, request.device)

    return SegmentHooks(warm_up=warm_up, score=score, score_every=checkpoint_every)
