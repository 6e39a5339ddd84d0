"""minicnn: a from-scratch NumPy CNN engine that shows its work.

    import minicnn
    model = minicnn.load("resnet20_cifar10")
    logits = model.forward(x)                 # x: (N, 3, H, W) float32
    model.activations["layer3"]               # any layer's output, by PyTorch name
    model.backward(onehot)                    # dy^c/d(logits) -> dy^c/dx
    model.gradients["layer3"]                 # dy^c/dA
    minicnn.gradcheck(model, x)               # proven against finite differences
"""

from .errors import MinicnnError
from .gradcheck import gradcheck
from .model import Model
from .models.zoo import build_architecture

__version__ = "0.3.0.dev0"


def load(name_or_path) -> Model:
    """A Model from a shipped model name (see ``minicnn models``) or a converted weights file."""
    from .models.weights import load as _load  # lazy: zipfile, json, hashlib slow `import minicnn`
    return _load(name_or_path)


__all__ = ["Model", "MinicnnError", "build_architecture", "gradcheck", "load", "__version__"]
