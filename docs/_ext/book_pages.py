"""The book's generated pages: one page per family of the explanation registry, and the API reference.

``write_pages(docs)`` writes, before Sphinx reads the sources,

- ``docs/methods/<family>.rst``: every method of ``minicnn.explain.registry.METHODS`` in that
  family with its name, the function (linked to its API entry), what one value of its map is,
  its cost, its options, a figure of it on one shipped photograph for every shipped model, its
  reference library and the agreement measured now against the recorded reference;
- ``docs/api/<module>.rst``: every public name of the package's public modules.

``method_pages()`` and ``api_pages()`` return the page texts without computing anything, so the
tests can check that they list every registered method and every public name without Sphinx.
"""

from __future__ import annotations

import importlib
import inspect
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

LEARN_INDEX = """\
The lessons
===========

Sixteen lessons, in the order they teach: from a convolution written as loops to Grad-CAM step
by step, training a small CNN with minicnn's own backward passes, the CAM family, LRP,
Integrated Gradients and the sanity checks. Each page below is the lesson's file in
``lessons/``, executed when this book was built: the numbers and figures are its own output,
and every claim it makes is an ``assert`` that held.

Each lesson is a Python file in the jupytext "percent" format: it runs as a script
(``python lessons/04_grad_cam_step_by_step.py``, figures go to ``./lesson-figures/``), reads as
plain text, and opens as a notebook. Every page ends with links to download it as a script or as
a notebook. To open the lessons in JupyterLab from a checkout::

    .venv/bin/pip install -e ".[notebooks]"
    .venv/bin/jupyter lab lessons/      # right-click a .py file: Open With > Jupytext Notebook
"""

#: family -> (page title, introduction)
FAMILIES = {
    "cam": ("Class activation maps", """\
A CAM weights the feature maps :math:`A^k` of one convolutional layer and sums them:
:math:`L^c = \\mathrm{ReLU}(\\sum_k w^c_k A^k)`. The methods differ in the weights: gradients
averaged (Grad-CAM), the classifier's weights (CAM), higher derivatives (Grad-CAM++), scores of
masked or ablated copies (Score-CAM, Ablation-CAM), or a principal component (Eigen-CAM). The maps
live at the layer's resolution and are upsampled to the image for display. Lessons 4, 6, 8 and 10
derive them; each docstring gives the paper's equation, computed literally, and says where
pytorch-grad-cam departs from it."""),
    "gradient": ("Gradients at the input", """\
These maps start from :math:`\\partial y^c / \\partial x`, the gradient of the class score with
respect to every input value: plain (saliency), through modified ReLU rules (Guided Backprop,
DeconvNet), times the input (Input x Gradient), integrated along a path from a baseline
(Integrated Gradients) or averaged over noisy copies (SmoothGrad and its relatives). Lessons 5 and
12 build them from the backward pass."""),
    "relevance": ("Layer-wise relevance propagation", """\
LRP redistributes the score :math:`y^c` backwards, layer by layer, in proportion to each input's
contribution :math:`z_{ij} = x_i w_{ij}` to each output, so that the relevance is (nearly)
conserved. A backward pass is a chain of local rules, one per layer; LRP is another choice of
rules (``model.backward(seed, rules={name: rule})``, rules in ``minicnn/explain/lrp_rules.py``).
Lesson 11 builds it from the backward pass. Excitation Backprop shares a probability instead,
1 at the class, by LRP's z+ rule without the biases, and stops at a layer."""),
    "perturbation": ("Perturbation", """\
Cover part of the image and watch the score: no gradient at all, only forward passes. Lesson 7
slides the patch and compares the map with Grad-CAM. LIME and Kernel SHAP switch superpixels on and
off at random and fit a weighted linear model to the scores; RISE averages random masks weighted by
the probability each one left."""),
}

#: The shipped photograph every method is drawn on, and the models drawn.
IMAGE = "chelsea.png"
MODELS = ("vgg_cifar10", "resnet20_cifar10", "mobilenet_v2")
#: mobilenet_v2 (fully convolutional up to its global average pooling) is drawn at this size, not 224x224.
MOBILENET_SIZE = 112
#: Cheaper settings for mobilenet_v2 (the methods' defaults cost tens of passes there).
MOBILENET_OPTIONS = {"steps": 8, "samples": 4}
#: Methods not drawn for mobilenet_v2: what one map would cost at 224x224.
MOBILENET_SKIPPED = {
    "scorecam": "1 + 1280 forward passes",
    "occlusion": "one forward pass per patch position (hundreds)",
    "fullgrad": "every layer's bias gradient (over a minute on 2 cores)",
}

#: method -> (reference library, what was recorded) for the methods with a recorded peer reference.
REFERENCES = {
    "gradcam": ("PyTorch 2.13.0 autograd (hooks on the layer)", "resnet20_cifar10_torch.npz, vgg_cifar10_torch.npz"),
    "guided-backprop": ("PyTorch 2.13.0, every ReLU's backward replaced by the guided rule (as captum 0.9.0)",
                        "resnet20_cifar10_torch.npz, vgg_cifar10_torch.npz"),
    "guided-gradcam": ("PyTorch 2.13.0, as for Guided Backprop", "resnet20_cifar10_torch.npz, vgg_cifar10_torch.npz"),
    "saliency": ("PyTorch 2.13.0 autograd (the input gradient)", "resnet20_cifar10_torch.npz, vgg_cifar10_torch.npz"),
    "gradcam-plus-plus": ("pytorch-grad-cam 1.5.7", "cam_family_<model>.npz"),
    "xgradcam": ("pytorch-grad-cam 1.5.7", "cam_family_<model>.npz"),
    "hirescam": ("pytorch-grad-cam 1.5.7", "cam_family_<model>.npz"),
    "layercam": ("pytorch-grad-cam 1.5.7", "cam_family_<model>.npz"),
    "scorecam": ("the authors' released code (and pytorch-grad-cam 1.5.7's variant)", "cam_family_<model>.npz"),
    "ablationcam": ("pytorch-grad-cam 1.5.7", "cam_family_<model>.npz"),
    "eigencam": ("pytorch-grad-cam 1.5.7", "cam_family_<model>.npz"),
    "eigengradcam": ("pytorch-grad-cam 1.5.7", "cam_family_<model>.npz"),
    "fullgrad": ("pytorch-grad-cam 1.5.7", "cam_family_<model>.npz"),
    "input-x-gradient": ("captum 0.9.0", "attribution_<model>.npz"),
    "deconvnet": ("captum 0.9.0", "attribution_<model>.npz"),
    "integrated-gradients": ("captum 0.9.0", "attribution_<model>.npz"),
    "smoothgrad": ("captum 0.9.0 (NoiseTunnel, given the same noise)", "attribution_<model>.npz"),
    "smoothgrad-squared": ("captum 0.9.0 (NoiseTunnel, given the same noise)", "attribution_<model>.npz"),
    "vargrad": ("captum 0.9.0 (NoiseTunnel, given the same noise)", "attribution_<model>.npz"),
    "lrp-epsilon": ("zennit 0.5.1", "attribution_<model>.npz"),
    "lrp-epsilon-plus": ("zennit 0.5.1", "attribution_<model>.npz"),
    "lrp-epsilon-gamma-box": ("zennit 0.5.1", "attribution_<model>.npz"),
    "deeplift": ("captum 0.9.0 (DeepLift)", "deeplift_<model>.npz"),
    "deeplift-shap": ("captum 0.9.0 (DeepLiftShap)", "deeplift_<model>.npz"),
    "gradient-shap": ("captum 0.9.0 (GradientShap, given the same draws)", "deeplift_<model>.npz"),
    # Excitation Backprop
    "excitation-backprop": ("TorchRay 1.0.0.2", "excitation_<model>.npz"),
    "contrastive-excitation-backprop": ("TorchRay 1.0.0.2", "excitation_<model>.npz"),
    # sampling methods, given the reference's own draws
    "lime": ("captum 0.9.0 (Lime, its default Lasso, given the same coalitions)", "sampling_resnet20_cifar10.npz"),
    "kernel-shap": ("captum 0.9.0 (KernelShap, given the same coalitions)", "sampling_resnet20_cifar10.npz"),
    "rise": ("the authors' released code, written out (given the same masks)", "sampling_resnet20_cifar10.npz"),
}
#: Methods with no peer library, and what proves them instead.
NO_REFERENCE = {
    "counterfactual": "no peer library; Grad-CAM with the gradient negated, proven by hand on tiny networks",
    "cam": "no peer library; proven equal to Grad-CAM times Z on networks ending in global average pooling "
           "(lesson 6) and by hand",
    "occlusion": "no peer library; proven by hand on tiny networks (each value is a difference of two forward "
                 "passes)",
}


# ---------------------------------------------------------------- the methods pages


def families() -> dict[str, list]:
    """{family: [Method rows]} in the registry's order."""
    from minicnn.explain import registry
    out: dict[str, list] = {f: [] for f in FAMILIES}
    for m in registry.METHODS.values():
        out.setdefault(m.family, []).append(m)
    return {f: ms for f, ms in out.items() if ms}


def _public_path(function) -> str:
    """The name under which the API pages document a method's function (``minicnn.explain.gradcam``)."""
    import minicnn.explain as explain
    if getattr(explain, function.__name__, None) is function:
        return f"minicnn.explain.{function.__name__}"
    return f"{function.__module__}.{function.__name__}"


def _rst_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("`", "\\`")


#: what a map's ``kind`` means, in words
SHAPES = {"layer": "(N, h, w) at a layer", "pixels": "(N, H, W) over the pixels",
          "input": "(N, C, H, W) like the input"}


def method_section(m, figure: str | None = None, agreement: dict | None = None,
                   figure_note: str = "") -> str:
    """One method's section of its family's page."""
    title = _rst_escape(m.title)
    lines = [f".. _method-{m.name}:", "", title, "-" * (len(title) + 4), ""]
    first_line = (inspect.getdoc(m.function) or "").split("\n\n")[0].replace("\n", " ")
    lines += [f"``minicnn explain --method {m.name}`` · :func:`{_public_path(m.function)}` · "
              f"saved as ``{m.key}``", ""]
    if first_line:
        lines += [_rst_escape(first_line), ""]
    lines += [".. list-table::", "   :widths: 25 75", "",
              "   * - one value of the map", f"     - ``{m.value}``",
              "   * - the map", f"     - {SHAPES[m.kind]}; shown as {m.display}",
              "   * - cost per image", f"     - {_rst_escape(m.cost) or 'see the docstring'}",
              "   * - uses ``--layer``", f"     - {'yes' if m.uses_layer else 'no (works on the input)'}"]
    ref = REFERENCES.get(m.name)
    reference = (f"{_rst_escape(ref[0])}, recorded in tests/fixtures/{ref[1]}" if ref
                 else _rst_escape(NO_REFERENCE.get(m.name, "none")))
    lines += ["   * - reference", f"     - {reference}"]
    if agreement:
        lines += ["   * - agreement, measured when this page was built", "     - " + "; ".join(
            f"{model}: relative error {err:.1e}" for model, err in agreement.items())
            + " (:func:`~minicnn.gradcheck.relative_error` against the recorded reference)"]
    lines.append("")
    if m.options:
        lines += [".. list-table:: Options", "   :header-rows: 1", "   :widths: 25 15 60", "",
                  "   * - flag", "     - type", "     - meaning"]
        for o in m.options:
            lines += [f"   * - ``{o.flag}``", f"     - {getattr(o.type, '__name__', str(o.type))}",
                      f"     - {_rst_escape(o.help)}"]
        lines.append("")
    if m.caption:
        lines += [_rst_escape(m.caption), ""]
    if figure:
        lines += [f".. figure:: {figure}", f"   :alt: {m.title} on {IMAGE} for every shipped model", "",
                  f"   {title} on the shipped photograph ``{IMAGE}`` for each shipped model's top class"
                  f"{figure_note}.", ""]
    return "\n".join(lines)


def method_pages(figures: dict | None = None, agreements: dict | None = None, notes: dict | None = None
                 ) -> dict[str, str]:
    """{family: the reST text of its page}; ``figures``/``agreements``/``notes`` are per method name."""
    figures, agreements, notes = figures or {}, agreements or {}, notes or {}
    pages = {}
    for family, methods in families().items():
        title, intro = FAMILIES.get(family, (family.title(), ""))
        text = [f".. _family-{family}:", "", "=" * (len(title) + 2), title, "=" * (len(title) + 2), "", intro, "",
                ".. list-table::", "   :header-rows: 1", "", "   * - method", "     - ``--method``",
                "     - one value of the map"]
        for m in methods:
            text += [f"   * - :ref:`method-{m.name}`", f"     - ``{m.name}``", f"     - ``{m.value}``"]
        text.append("")
        for m in methods:
            text.append(method_section(m, figures.get(m.name), agreements.get(m.name), notes.get(m.name, "")))
        pages[family] = "\n".join(text)
    return pages


def methods_index(pages: dict[str, str]) -> str:
    """The toctree of the family pages (included by docs/methods.md)."""
    return "\n".join([".. toctree::", "   :maxdepth: 2", "", *[f"   methods/{f}" for f in pages], ""])


def _agreement(name: str) -> dict[str, float]:
    """{model: relative error} of the method now against its recorded reference, for the CIFAR models."""
    import numpy as np

    import minicnn
    from minicnn import explain
    from minicnn.gradcheck import relative_error
    out = {}
    for model_name in ("vgg_cifar10", "resnet20_cifar10"):
        model = minicnn.load(model_name)
        cam_file, attr_file = FIXTURES / f"cam_family_{model_name}.npz", FIXTURES / f"attribution_{model_name}.npz"
        torch_file = FIXTURES / f"{model_name}_torch.npz"
        err = None
        if name in ("gradcam", "guided-backprop", "guided-gradcam", "saliency") and torch_file.exists():
            with np.load(torch_file) as z:
                rec = {k.split(".", 1)[1]: z[k] for k in z.files if k.startswith("batch.")}
            x, target = rec["x"], rec["target"]
            layer = next((k.split(":", 1)[1] for k in rec if k.startswith("gradcam:")), None)
            if name == "gradcam" and layer:
                err = relative_error(explain.gradcam(model, x, target, layer=layer).map, rec[f"gradcam:{layer}"])
            elif name == "gradcam":                 # from the recorded activations and gradients at the layer
                layer = next(k.split(":", 1)[1] for k in rec if k.startswith("grad:"))
                A, dA = rec[f"act:{layer}"].astype(np.float64), rec[f"grad:{layer}"].astype(np.float64)
                expected = np.maximum(np.einsum("nk,nkij->nij", dA.mean(axis=(2, 3)), A), 0)
                err = relative_error(explain.gradcam(model, x, target, layer=layer).map, expected)
            elif name == "guided-backprop" and "guided_input_grad" in rec:
                err = relative_error(explain.guided_backprop(model, x, target).map, rec["guided_input_grad"])
            elif name == "guided-gradcam" and layer:
                err = relative_error(explain.guided_gradcam(model, x, target, layer=layer).map,
                                     rec[f"guided_gradcam:{layer}"])
            elif name == "saliency":
                err = relative_error(explain.saliency(model, x, target).map, rec["input_grad"])
        elif name in ("gradcam-plus-plus", "xgradcam", "hirescam", "layercam", "eigencam", "eigengradcam",
                      "ablationcam", "scorecam") and cam_file.exists():
            with np.load(cam_file) as z:
                ref = {k: z[k] for k in z.files}
            layer = json.loads(ref["info"].tobytes())["layers"][0]
            kwargs = {"gradcam-plus-plus": {"eps": 1e-6}, "xgradcam": {"eps": 1e-7}}.get(name, {})
            function = getattr(explain, name.replace("-", "_"))
            if name == "scorecam":
                r = function(model, ref["x"], ref["targets"], layer, relu=False)
            else:
                r = function(model, ref["x"], ref["targets"], layer, relu=False, **kwargs)
            err = relative_error(r.map, ref[f"{layer}:{name.replace('-', '_')}.map"])
        elif name == "fullgrad" and cam_file.exists():
            with np.load(cam_file) as z:
                err = relative_error(explain.fullgrad(model, z["x"], z["targets"], eps=1e-7).map, z["fullgrad.map"])
        elif attr_file.exists() and name in REFERENCES and REFERENCES[name][0].startswith(("captum", "zennit")):
            with np.load(attr_file) as z:
                ref = {k: z[k] for k in z.files}
            x, target = ref["x"], ref["target"]
            info = json.loads(ref["info"].tobytes())
            noise = ref["noise"].astype(np.float64)
            if name == "input-x-gradient":
                err = relative_error(explain.input_x_gradient(model, x, target).map, ref["input_x_gradient"])
            elif name == "deconvnet":
                err = relative_error(explain.deconvnet(model, x, target).map, ref["deconvnet"])
            elif name == "integrated-gradients":
                r = explain.integrated_gradients(model, x[:1], target[:1], steps=info["steps"], progress=False)
                err = relative_error(r.map, ref["ig.gausslegendre"])
            elif name in ("smoothgrad", "smoothgrad-squared", "vargrad"):
                function = getattr(explain, name.replace("-", "_"))
                err = relative_error(function(model, x[:1], target[:1], noise=noise).map, ref[name.replace("-", "_")])
            elif name.startswith("lrp-"):
                composite = name[4:]
                err = relative_error(explain.lrp(model, x, target, composite).map,
                                     ref["lrp." + composite.replace("-", "_")])
        elif name in ("excitation-backprop", "contrastive-excitation-backprop") and \
                (FIXTURES / f"excitation_{model_name}.npz").exists():
            with np.load(FIXTURES / f"excitation_{model_name}.npz") as z:
                layer = json.loads(z["info"].tobytes())["layers"][0][0]
                key = f"{layer}:" + ("excitation" if name == "excitation-backprop" else "contrastive")
                function = getattr(explain, name.replace("-", "_"))
                err = relative_error(function(model, z["x"], z["targets"], layer).map, z[key])
        sampling_file = FIXTURES / f"sampling_{model_name}.npz"
        if name in ("lime", "kernel-shap", "rise") and sampling_file.exists():   # given the reference's draws
            with np.load(sampling_file) as z:
                ref = {k: z[k] for k in z.files}
            x, target = ref["x"].astype(np.float64), ref["target"]
            model = model.astype(np.float64)
            if name == "lime":
                r = explain.lime(model, x, target, features=ref["lime.mask"], coalitions=ref["lime.coalitions"],
                                 progress=False)
            elif name == "kernel-shap":
                r = explain.kernel_shap(model, x[:1], target[:1], features=ref["kernel_shap.mask"][0], baseline=-0.5,
                                        coalitions=ref["kernel_shap.coalitions.0"], progress=False)
            else:
                r = explain.rise(model, x, target, grids=ref["rise.grids"], shifts=ref["rise.shifts"], p=0.3,
                                 progress=False)
            err = relative_error(r.map, ref[f"{name.replace('-', '_')}.map"][:len(r.map)])
        if err is not None:
            out[model_name] = float(err)
    return out


def _figure(m, image, models: dict, out: Path) -> str:
    """Method row ``m`` on ``image`` for each model (top class), one panel per model, saved as ``out``."""
    import numpy as np

    from minicnn.errors import InputError
    from minicnn.explain import resize_bilinear
    from minicnn.explain.run import run_or_refusal
    from minicnn.figures import Panel, grid_figure, method_panel, save_png
    from minicnn.inputs.preprocess import deprocess, preprocess
    panels, note = [], []
    for name, model in models.items():
        meta = model.meta["preprocessing"]
        x = preprocess(image, meta)
        if name == "mobilenet_v2":                    # a quarter of the pixels: the figure costs a quarter
            x = resize_bilinear(x, MOBILENET_SIZE).astype(np.float32)
        picture = deprocess(x[0], meta)
        if name == "mobilenet_v2" and m.name in MOBILENET_SKIPPED:
            panels.append(Panel("text", None, f"{name}: not drawn here\n({MOBILENET_SKIPPED[m.name]})"))
            continue
        options = MOBILENET_OPTIONS if name == "mobilenet_v2" else {}
        r = run_or_refusal(m, model, x, None, None, options)
        if isinstance(r, InputError):
            panels.append(Panel("text", None, f"{name}:\n{r}"))
            continue
        used = {k: v for k, v in options.items() if k in {o.param for o in m.options}}
        if used:
            note.append(f"{name} with " + ", ".join(f"{k}={v}" for k, v in used.items()))
        panels.append(method_panel(r, picture, model_name=name if name != "mobilenet_v2" else
                                   f"{name} at {MOBILENET_SIZE}x{MOBILENET_SIZE}"))
    fig = grid_figure([panels])
    save_png(fig, out, dpi=80)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "; ".join(note)


def write_method_pages(docs: Path, *, draw: bool = True, log=print) -> dict[str, str]:
    """Write docs/methods/: the family pages with their figures and the agreement measured now."""
    out = docs / "methods"
    (out / "images").mkdir(parents=True, exist_ok=True)
    figures, agreements, notes = {}, {}, {}
    if draw:
        import minicnn
        from minicnn.inputs.images import load_image
        from minicnn.inputs.samples import data_path
        image = load_image(data_path("images", IMAGE))
        models = {name: minicnn.load(name) for name in MODELS}
        start = time.perf_counter()
        for ms in families().values():
            for m in ms:
                png = out / "images" / f"{m.key}.png"
                note = _figure(m, image, models, png)
                figures[m.name] = f"images/{png.name}"
                notes[m.name] = f" ({note})" if note else ""
                agreements[m.name] = _agreement(m.name)
        log(f"book: drew {len(figures)} method figures and measured their agreement in "
            f"{time.perf_counter() - start:.0f} s")
    pages = method_pages(figures, agreements, notes)
    for family, text in pages.items():
        _write_if_changed(out / f"{family}.rst", text)
    _write_if_changed(out / "toctree.rst.inc", methods_index(pages))
    return pages


# ---------------------------------------------------------------- the API pages

#: (module, heading) in the order of the layers (CONTRIBUTING.md)
API_MODULES = [
    ("minicnn", "minicnn: load a model"),
    ("minicnn.model", "The model"),
    ("minicnn.layers", "Layers"),
    ("minicnn.gradcheck", "Gradient checks"),
    ("minicnn.windows", "Windows (im2col and padding)"),
    ("minicnn.errors", "Errors"),
    ("minicnn.util.atomic", "Atomic outputs"),
    ("minicnn.inputs.images", "Images"),
    ("minicnn.inputs.datasets", "Datasets"),
    ("minicnn.models.zoo", "Architectures"),
    ("minicnn.models.weights", "Weights files"),
    ("minicnn.explain", "Explanations"),
    ("minicnn.explain.target", "Targets and results"),
    ("minicnn.explain.registry", "The registry of methods"),
    ("minicnn.explain.run", "Running methods"),
    ("minicnn.metrics", "Metrics"),
    ("minicnn.metrics.similarity", "Similarity"),
    ("minicnn.metrics.randomisation", "Randomisation"),
    ("minicnn.metrics.deletion", "Deletion and insertion"),
    ("minicnn.metrics.road", "ROAD"),
    ("minicnn.metrics.agreement", "Agreement with occlusion"),
    ("minicnn.metrics.localisation", "Localisation"),
    ("minicnn.metrics.baselines", "Baselines"),
    ("minicnn.metrics.intervals", "Confidence intervals"),
    ("minicnn.figures", "Figures"),
    ("minicnn.figures.gallery", "Galleries"),
    ("minicnn.figures.metrics", "Metric figures"),
]


def public_names(module_name: str) -> list[str]:
    """The module's public functions and classes: ``__all__`` if it has one, else every name not starting
    with ``_`` that is a function or class defined in minicnn."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and (inspect.isfunction(v) or inspect.isclass(v))
                 and getattr(v, "__module__", "") == module_name]
    return [n for n in names if not n.startswith("__") and not inspect.ismodule(getattr(module, n))]


def documented_elsewhere() -> dict[int, str]:
    """{id(object): the first public name under which API_MODULES documents it}."""
    first: dict[int, str] = {}
    # the façade (minicnn.load, minicnn.Model, ...) last: its names are documented where they are defined
    for module_name, _ in [*API_MODULES[1:], API_MODULES[0]]:
        module = importlib.import_module(module_name)
        for n in public_names(module_name):
            first.setdefault(id(getattr(module, n)), f"{module_name}.{n}")
    return first


def api_pages() -> dict[str, str]:
    """{module name: the reST text of its API page}."""
    first = documented_elsewhere()
    pages = {}
    for module_name, heading in API_MODULES:
        module = importlib.import_module(module_name)
        title = f"{heading} (``{module_name}``)"
        text = ["=" * (len(title) + 2), title, "=" * (len(title) + 2), "",
                f".. automodule:: {module_name}", "   :no-members:", ""]
        own, aliases = [], []
        for n in public_names(module_name):
            obj = getattr(module, n)
            full = f"{module_name}.{n}"
            if first.get(id(obj)) == full:
                own.append((n, obj))
            else:
                aliases.append((n, first[id(obj)]))
        text += [f".. currentmodule:: {module_name}", ""]
        if any(inspect.isclass(obj) or callable(obj) for _, obj in own):
            text += [".. autosummary::", "",
                     *[f"   {n}" for n, obj in own if inspect.isclass(obj) or callable(obj)], ""]
        if aliases:
            text += ["Also here, documented where they are first listed:", ""]
            text += [f"- ``{n}``: :py:obj:`{target}`" for n, target in aliases] + [""]
        constants = [n for n, obj in own if not (inspect.isclass(obj) or callable(obj))]
        own = [(n, obj) for n, obj in own if n not in constants]
        if constants:
            text += ["Constants: " + ", ".join(f"``{n}``" for n in constants) + " (see the module's source).", ""]
        for n, obj in own:
            if inspect.isclass(obj):
                text += [f".. autoclass:: {n}", "   :members:", ""]
            else:
                text += [f".. autofunction:: {n}", ""]
        pages[module_name] = "\n".join(text)
    return pages


def write_api_pages(docs: Path) -> dict[str, str]:
    out = docs / "api"
    out.mkdir(parents=True, exist_ok=True)
    pages = api_pages()
    for module_name, text in pages.items():
        _write_if_changed(out / f"{module_name}.rst", text)
    index = ["API reference", "=============", "",
             "Every public function and class, from the docstrings, in the order of the package's layers "
             "(the engine, inputs, models, explanations, metrics, figures). The docstrings state the "
             "equations and every shape.", "", ".. toctree::", "   :maxdepth: 1", "",
             *[f"   {m}" for m in pages], ""]
    _write_if_changed(out / "index.rst", "\n".join(index))
    return pages


def write_scorecard_tables(docs: Path) -> None:
    """docs/_scorecard_tables/: the scorecard's tables without their "figure:" lines (the page shows the
    figures), a literal | in a cell escaped so that the columns stay in place."""
    import re
    out = docs / "_scorecard_tables"
    out.mkdir(exist_ok=True)
    for table in sorted((docs / "scorecard").glob("*.md")):
        lines = [line for line in table.read_text(encoding="utf-8").splitlines() if not line.startswith("figure:")]
        lines = [re.sub(r"\|(dy/dx)\|", r"\\|\1\\|", line) for line in lines]
        _write_if_changed(out / table.name, "\n".join(lines) + "\n")


def write_included_copies(docs: Path) -> None:
    """docs/_included/weights_README.md: weights/README.md with its links to the licence files (shown on
    the same page, below it) written as the files' names."""
    import re
    out = docs / "_included"
    out.mkdir(exist_ok=True)
    text = (ROOT / "weights" / "README.md").read_text(encoding="utf-8")
    text = re.sub(r"\[([^\]]+)\]\((LICENSE-[\w.-]+\.txt)\)", r"`weights/\2` (below)", text)
    _write_if_changed(out / "weights_README.md", text)


def write_pages(docs: Path, *, draw: bool = True) -> None:
    write_scorecard_tables(docs)
    write_included_copies(docs)
    write_method_pages(docs, draw=draw)
    write_api_pages(docs)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
