"""The method registry: one row per method, read by the CLI, --save, figures and every front end."""

import importlib

import numpy as np
import pytest

from minicnn import explain
from minicnn.errors import InputError, UnknownNameError
from minicnn.explain import registry


def test_every_row_is_complete_and_keys_are_unique():
    keys = [m.key for m in registry.METHODS.values()]
    assert len(keys) == len(set(keys))
    for name, m in registry.METHODS.items():
        assert m.name == name and m.key == name.replace("-", "_")
        assert m.kind in registry.KINDS and m.display in registry.DISPLAYS
        assert m.title and m.value and m.family and m.cost
        assert getattr(explain, m.function.__name__) is m.function       # exported by minicnn.explain


def test_names_take_all_one_or_a_list_and_refuse_unknown_names():
    assert registry.names("all") == [m.name for m in registry.METHODS.values() if m.in_all]
    assert registry.names("saliency, gradcam") == ["saliency", "gradcam"]
    assert registry.get("guided_backprop").name == "guided-backprop"
    with pytest.raises(UnknownNameError, match="did you mean 'gradcam'"):
        registry.names("gradcam,gradcan")
    with pytest.raises(InputError, match="no method named"):
        registry.names(" , ")


def test_run_passes_the_layer_only_to_methods_that_use_one(tiny_model):
    model, x = tiny_model
    for m in registry.METHODS.values():
        try:
            r = m.run(model, x, 0, None)
        except InputError as e:
            assert m.optional, (m.name, e)
            continue
        assert r.method == m.name
        n, c, h, w = x.shape
        shape = {"input": (n, c, h, w), "pixels": (n, h, w)}.get(m.kind)
        assert shape is None or r.map.shape == shape, m.name
        if m.kind == "layer":
            assert r.map.ndim == 3 and r.layer


def test_run_refuses_options_a_method_does_not_take(tiny_model):
    model, x = tiny_model
    with pytest.raises(InputError, match="gradcam takes no option 'steps'"):
        registry.get("gradcam").run(model, x, steps=3)


@pytest.fixture
def tiny_model():
    from minicnn.models import zoo
    model = zoo.vgg([4, "M", 8], hidden=(16,), pool_size=(2, 2), num_classes=3)
    zoo.init_weights(model, seed=0)
    return model, np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)


def test_gallery_has_a_row_per_class_and_a_text_panel_where_a_method_does_not_apply():
    from minicnn import load
    from minicnn.explain import cat_dog_image
    from minicnn.figures.gallery import explain_all, gallery_figure
    model = load("vgg_cifar10")                       # no global average pooling: CAM does not apply
    results = explain_all(model, cat_dog_image(), ["cat", "dog"], ["gradcam", "cam"])
    assert isinstance(results["cam"], InputError)
    assert results["gradcam"].map.shape[0] == 2 and list(results["gradcam"].target_names) == ["cat", "dog"]
    fig = gallery_figure(model, cat_dog_image(), ["cat", "dog"], ["gradcam", "cam"], results=results)
    titles = [ax.get_title() for ax in fig.axes]
    assert "CAM\nnot defined here" in titles and sum(t.startswith("Grad-CAM") for t in titles) == 2


def test_smoothgrads_bases_are_the_registrys_input_maps():
    """SmoothGrad keeps its own table of bases (it cannot import the registry that lists it): the same methods."""
    smoothgrad = importlib.import_module("minicnn.explain.smoothgrad")
    expected = {m.name: m.function for m in registry.METHODS.values()
                if m.kind == "input" and m.name not in smoothgrad.KINDS}
    assert smoothgrad.BASES == expected


def test_the_explain_package_exports_every_method_and_its_table_names_it():
    """Adding a method is its function and its registry row: the package's exports and table must follow."""
    table = explain.__doc__.split("(g = dy^c/dA")[0]
    for m in registry.METHODS.values():
        name = m.function.__name__
        assert name in explain.__all__ and getattr(explain, name) is m.function, name
        assert f"``{name}``" in table, f"{name} is missing from the table of minicnn/explain/__init__.py"


def test_the_save_keys_in_the_explain_commands_help_are_the_registrys():
    from minicnn.commands import explain as command
    listed = command.__doc__.split("only the keys of the methods computed")[0]
    for m in registry.METHODS.values():
        assert m.key in listed, f"--save key {m.key} is not described in minicnn/commands/explain.py"


def test_the_demos_galleries_show_every_method_or_say_where_it_is():
    """A new method appears in one of the demo's galleries, or in its list of methods shown elsewhere."""
    from minicnn.figures import demo
    shown = set(demo.CAM_METHODS) | set(demo.ATTRIBUTION) | set(demo.ELSEWHERE)
    assert set(registry.METHODS) - shown == set(), "add the method to a gallery of minicnn/figures/demo.py"
    assert shown - set(registry.METHODS) == set()
