"""The peer libraries of ``minicnn bench --peers``: which are installed, what to install, and stand-ins.

pytorch-grad-cam imports names from torchvision, OpenCV and scikit-learn at import time (and
calls ``cv2.resize`` to scale its maps to the input); zennit's package imports torchvision's
ResNet blocks. Where those packages are not installed, ``install_stand_ins`` writes stand-ins
(``STAND_INS``) to a folder and puts it first on ``sys.path``: torchvision's and
scikit-learn's names, which raise if called (no timed call uses them), and a ``cv2`` whose
``resize`` is PyTorch's bilinear interpolation with half-pixel centres (OpenCV's
INTER_LINEAR). A missing peer library is one line (``missing_message``), never a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

#: The peer libraries: (module to import, what to install).
LIBRARIES = {"pytorch-grad-cam": ("pytorch_grad_cam", "grad-cam==1.5.7"),
             "captum": ("captum", "captum==0.9.0"),
             "zennit": ("zennit", "zennit==0.5.1")}

#: Stand-in modules for names the peer libraries import where the real package is absent (module docstring).
STAND_INS = {
    "torchvision": {
        "torchvision/__init__.py": "from . import models, transforms\n",
        "torchvision/transforms/__init__.py": (
            "def _absent(*args, **kwargs):\n"
            "    raise RuntimeError('torchvision stand-in of minicnn bench --peers: not available')\n"
            "Compose = Normalize = ToTensor = Resize = _absent\n"),
        "torchvision/transforms/functional.py": "from . import _absent as resize\n",
        "torchvision/models/__init__.py": "from . import resnet\n",
        "torchvision/models/resnet.py": "class Bottleneck:\n    pass\n\n\nclass BasicBlock:\n    pass\n",
    },
    "sklearn": {
        "sklearn/__init__.py": "",
        "sklearn/decomposition/__init__.py": (
            "def _absent(*args, **kwargs):\n"
            "    raise RuntimeError('scikit-learn stand-in of minicnn bench --peers: not available')\n"
            "NMF = KernelPCA = _absent\n"),
    },
    "cv2": {
        "cv2/__init__.py": (
            '"""Stand-in of minicnn bench --peers: resize (bilinear, half-pixel centres) only."""\n'
            "import numpy as np\nimport torch\n\nCOLORMAP_JET = 2\nINTER_LINEAR = 1\n\n\n"
            "def resize(image, size, interpolation=INTER_LINEAR):\n"
            "    t = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]\n"
            "    out = torch.nn.functional.interpolate(t, size=(size[1], size[0]), mode='bilinear', "
            "align_corners=False)\n"
            "    return out[0, 0].numpy()\n"),
    },
}


def missing_message(library: str) -> str:
    """The one line that says a peer library is missing and what to install."""
    _, pip_name = LIBRARIES[library]
    return (f"{library} is not installed: its methods are timed without it "
            f"(pip install {pip_name}; needs torch==2.13.0)")


def available_libraries() -> tuple[dict[str, object], list[str]]:
    """({library: module} for those importable, [the missing-library lines]); stand-ins put in place first."""
    modules, notes = {}, []
    for library, (module, _) in LIBRARIES.items():
        if importlib.util.find_spec(module) is None:
            notes.append(missing_message(library))
            continue
        try:
            modules[library] = importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 -- a broken install is reported in one line, the run goes on
            notes.append(f"{library} could not be imported ({type(e).__name__}: {e}); its methods are timed "
                         f"without it")
    return modules, notes


def install_stand_ins(folder: Path) -> list[str]:
    """Write the stand-ins of the absent packages under ``folder`` and put it first on sys.path; their names."""
    used = []
    for package, files in STAND_INS.items():
        if importlib.util.find_spec(package) is not None:
            continue
        for rel, text in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        used.append(package)
    if used:
        sys.path.insert(0, str(folder))
        importlib.invalidate_caches()
    return used


def no_torch_message() -> str:
    return ("minicnn bench --peers needs PyTorch and the peer libraries: pip install torch==2.13.0 "
            "captum==0.9.0 grad-cam==1.5.7 zennit==0.5.1")


def version_of(library: str, module) -> str | None:
    if module is None:
        return None
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    from importlib import metadata  # lazy: only for a library without __version__
    try:
        return metadata.version(LIBRARIES[library][1].split("==")[0])
    except metadata.PackageNotFoundError:
        return None
