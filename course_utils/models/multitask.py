"""Multi-task models: how the kit recognises one (notebook 04's students write their own, ``FruitNet``).

A multi-task model is any module with two attributes:

* ``backbone``: a network of the architecture table whose classifier is ``nn.Identity``, so
  that it returns features ``(N, feature_dim)``;
* ``heads``: an ``nn.ModuleDict`` with one ``nn.Linear`` per task, in the order the batches
  carry their labels;

and whose forward returns ``{task: logits (N, num_classes_task)}``. ``layer_groups`` and the
freezing functions see the backbone's groups followed by ``heads``; feature caching runs the
frozen part of the backbone once and then ``heads`` on the features, which is what such a
forward computes (a model whose forward does anything else must be trained uncached).

Example:
    >>> from torch import nn
    >>> class TwoHeads(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.backbone = nn.Identity()
    ...         self.heads = nn.ModuleDict({"fruit": nn.Linear(4, 6), "freshness": nn.Linear(4, 2)})
    >>> is_multitask(TwoHeads()), is_multitask(nn.Linear(4, 2))
    (True, False)
"""

from __future__ import annotations

from torch import nn


def is_multitask(model: nn.Module) -> bool:
    """Whether ``model`` has a ``backbone`` module and ``heads``, an ``nn.ModuleDict`` (see the module notes)."""
    return isinstance(getattr(model, "heads", None), nn.ModuleDict) and isinstance(
        getattr(model, "backbone", None), nn.Module
    )
