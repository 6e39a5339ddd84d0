"""What a method costs: passes through the network, counted, and seconds, measured.

    with counting_passes(model) as passes:
        result = method.run(model, x)
    passes.forwards, passes.backwards        # images sent through forward / backward

Counting wraps the model's own ``forward``, ``backward`` and (where the
model has it) ``forward_from`` for the duration of the block and counts the
images each call carries: a forward of a batch of 50 is 50 forwards. A pass
that runs only part of the network (a backward stopped at a layer, a forward
resumed from one) counts as one pass all the same. Per map, the cost is
``(forwards + backwards) / N`` for a batch of N images.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class PassCount:
    """Images sent through the network by each kind of pass."""

    forwards: int = 0
    backwards: int = 0

    @property
    def total(self) -> int:
        return self.forwards + self.backwards


@contextmanager
def counting_passes(model):
    """Count the images of every forward and backward call on ``model`` inside the block."""
    count = PassCount()
    saved = {name: model.__dict__.get(name) for name in ("forward", "backward", "forward_from")}
    forward, backward = model.forward, model.backward
    forward_from = getattr(model, "forward_from", None)

    def counted_forward(x, *args, **kwargs):
        count.forwards += len(x)
        return forward(x, *args, **kwargs)

    def counted_backward(dlogits, *args, **kwargs):
        count.backwards += len(dlogits)
        return backward(dlogits, *args, **kwargs)

    def counted_forward_from(name, A, *args, **kwargs):
        count.forwards += len(A)
        return forward_from(name, A, *args, **kwargs)

    model.forward, model.backward = counted_forward, counted_backward
    if forward_from is not None:
        model.forward_from = counted_forward_from
    try:
        yield count
    finally:
        for name, own in saved.items():           # the class's methods again (or an outer count's)
            if own is None:
                model.__dict__.pop(name, None)
            else:
                model.__dict__[name] = own
