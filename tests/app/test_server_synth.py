"""The explorer's class visualisation and "attack this image" requests, against a real loopback server.

/api/visualize gives the image `minicnn.synthesis.visualise` makes (the same seed, the same
pixels, as the lossless PNG of `minicnn visualize`), kept so that a second view is served
from the cache; /api/attack gives the adversarial PNG `fgsm`/`pgd` make on the same bytes and
the maps `/api/explain` gives on that PNG for the true and the adversarial class. Every
refusal is a 400 (403 for a foreign Origin) with one line naming the field and the cap, and
the work stops at the deadline (503) or when the client leaves.
"""

import base64
import io
import json
import socket
import time

import numpy as np
import pytest
from PIL import Image
from refusals import png_bytes
from server_helpers import api_array, cat_dog_png, library_maps, request, running, server, store  # noqa: F401

import minicnn
from minicnn.errors import InputError
from minicnn.inputs.images import image_from_bytes
from minicnn.inputs.preprocess import preprocess
from minicnn.server import synth
from minicnn.synthesis import ClassScore, fgsm, pgd, visualise
from minicnn.synthesis.visualise import normalisation

#: A tiny visualisation: answered in well under a second by the CIFAR models.
TINY = "model=resnet20_cifar10&class=cat&steps=4&seed=7"


def post(server, path: str, query: str, body: bytes = b"", **kw):
    """(status, JSON answer) of POST path?query with ``body``."""
    status, headers, data = request(server, "POST", f"{path}?{query}", body, **kw)
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(data)


def decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"))


def softmax(y):
    e = np.exp(y - y.max())
    return e / e.sum()


def one_line(answer: dict) -> str:
    assert list(answer) == ["error"] and "\n" not in answer["error"] and "Traceback" not in answer["error"]
    return answer["error"]


# ---------------------------------------------------------------- /api/visualize

def test_visualize_gives_the_image_visualise_makes_and_the_networks_predictions_on_it(server):
    status, answer = post(server, "/api/visualize", TINY)
    assert status == 200, answer
    model = minicnn.load("resnet20_cifar10")
    expected = visualise(model, ClassScore(3), param="fourier", steps=4, seed=7)
    image = decode(answer["image"]["png"])
    assert image.shape == (32, 32, 3) and answer["image"]["shape"] == [32, 32]
    assert np.array_equal(image, np.round(expected.image * 255).astype(np.uint8))       # lossless, same seed
    assert answer["class"] == {"index": 3, "name": "cat"} and (answer["param"], answer["steps"], answer["seed"]) == (
        "fourier", 4, 7)
    assert answer["about"] == ("what the network would draw for 'cat': gradient ascent on the input for its score "
                               "y^c, 4 steps, Fourier parameterisation with decorrelated colour")
    np.testing.assert_allclose(answer["values"], expected.values, rtol=1e-5, atol=1e-5 * np.abs(expected.values).max())
    mean, std = normalisation(model)
    logits = model.forward(((image.transpose(2, 0, 1)[None] / 255 - mean) / std).astype(np.float32))[0]
    top = np.argsort(-logits)[:5]
    assert [p["index"] for p in answer["predictions"]] == top.tolist()
    np.testing.assert_allclose([p["probability"] for p in answer["predictions"]], softmax(logits)[top], rtol=1e-4,
                               atol=1e-6)
    assert answer["final_value"] > answer["first_value"]                      # the ascent rose


def test_a_second_view_comes_from_the_cache_and_other_settings_do_not(store):
    with running(store) as server:
        query = "model=vgg_cifar10&class=ship&steps=6&param=pixel&seed=3"
        status, first = post(server, "/api/visualize", query)
        assert status == 200 and first["cached"] is False and len(server.visualisations) == 1
        status, second = post(server, "/api/visualize", query)
        assert status == 200 and second["cached"] is True
        assert {k: v for k, v in second.items() if k not in ("cached", "seconds")} == \
               {k: v for k, v in first.items() if k not in ("cached", "seconds")}
        assert second["seconds"] < 0.05 and second["computed_seconds"] == first["computed_seconds"]
        # the class by index is the same question: cached; another seed or param is a new one
        assert post(server, "/api/visualize", "model=vgg_cifar10&class=8&steps=6&param=pixel&seed=3")[1]["cached"]
        status, other = post(server, "/api/visualize", "model=vgg_cifar10&class=ship&steps=6&param=pixel&seed=4")
        assert status == 200 and other["cached"] is False and other["image"]["png"] != first["image"]["png"]
        assert len(server.visualisations) == 2


def test_the_cache_keeps_the_newest_answers_only():
    cache = synth.Visualisations(kept=2)
    for k in "abc":
        cache.put((k,), {"k": k})
    assert cache.get(("a",)) is None and cache.get(("b",)) == {"k": "b"} and len(cache) == 2
    cache.put(("d",), {"k": "d"})                           # b was used last: c goes
    assert cache.get(("c",)) is None and cache.get(("b",)) == {"k": "b"}


@pytest.mark.parametrize("query, words", [
    ("model=resnet20_cifar10&class=kat", "did you mean 'cat'"),
    ("model=resnet20_cifar10&class=10", "out of range"),
    ("model=mobilenet_v2&class=goldfsh", "unknown class"),
    ("model=resnet20_cifar10", "name the class to visualise"),
    ("model=resnet21&class=cat", "did you mean 'resnet20_cifar10'"),
    ("class=cat&steps=0", "steps=0 is outside 1..512, the server's cap on visualisation steps"),
    ("class=cat&steps=513", "steps=513 is outside 1..512, the server's cap on visualisation steps"),
    ("class=cat&steps=" + "9" * 30, "steps must be a whole number in 1..512"),
    ("class=cat&steps=-1", "steps must be a whole number"),
    ("class=cat&steps=%D9%A3", "steps must be a whole number"),       # an Arabic-Indic 3: digits, not ASCII
    ("class=cat&seed=4294967296", "seed=4294967296 is outside 0..4294967295"),
    ("class=cat&param=lucid", "param must be one of pixel, fourier"),
    ("class=cat&lr=10", "unknown query parameter 'lr'; /api/visualize takes: model, class, steps, param, seed"),
    ("class=cat&class=dog", "given twice"),
])
def test_visualize_refusals_are_400_with_one_line_before_any_work(server, query, words):
    status, answer = post(server, "/api/visualize", query)
    assert status == 400 and words in one_line(answer), answer
    assert request(server, "GET", "/api/models")[0] == 200


def test_visualize_takes_no_body(server):
    status, answer = post(server, "/api/visualize", TINY, b"an image?")
    assert status == 400 and "/api/visualize takes no request body" in one_line(answer)


# ---------------------------------------------------------------- /api/attack

def test_fgsm_gives_the_adversarial_png_and_the_maps_explain_gives_on_it(server, cat_dog_png):
    status, answer = post(server, "/api/attack", "model=resnet20_cifar10&epsilon=8/255&method=gradcam,saliency",
                          cat_dog_png)
    assert status == 200, answer
    model = minicnn.load("resnet20_cifar10")
    pixels = preprocess(image_from_bytes(cat_dog_png), {**model.meta["preprocessing"], "mean": [0] * 3,
                                                         "std": [1] * 3})
    expected = fgsm(model, pixels, 8 / 255)
    adversarial = decode(answer["adversarial"]["png"])
    assert adversarial.shape == (32, 64, 3) and answer["adversarial"]["shape"] == [32, 64]
    assert np.array_equal(adversarial, np.round(expected.adversarial[0].transpose(1, 2, 0) * 255).astype(np.uint8))
    original = decode(answer["input"]["png"]).astype(int)
    assert np.abs(adversarial.astype(int) - original).max() == answer["adversarial"]["largest_change_255"] <= 9
    assert answer["attack"]["epsilon"] == 8 / 255 and answer["attack"]["epsilon_255"] == 8.0
    true = int(expected.labels[0])
    assert answer["true"]["index"] == true == answer["before"][0]["index"]
    np.testing.assert_allclose([p["probability"] for p in answer["before"]],
                               np.sort(softmax(expected.logits_before[0]))[::-1][:5], rtol=1e-4, atol=1e-6)
    png = png_bytes(Image.fromarray(adversarial))
    after = minicnn.load("resnet20_cifar10")
    mean, std = normalisation(after)
    logits = after.forward(((adversarial.transpose(2, 0, 1)[None] / 255 - mean) / std).astype(np.float32))[0]
    assert answer["after"][0]["index"] == int(logits.argmax()) == answer["adversarial_class"]["index"]
    assert answer["fooled"] == (answer["adversarial_class"]["index"] != true)
    assert answer["fooled"]                                           # 8/255 is plenty on cat|dog
    for role, k in (("true", true), ("adversarial", answer["adversarial_class"]["index"])):
        got = answer["maps"][role]
        assert got["class"]["index"] == k
        want = library_maps(model, png, "gradcam,saliency", k)
        assert list(got["maps"]) == ["gradcam", "gradcam_upsampled", "saliency"]
        for key, entry in got["maps"].items():
            np.testing.assert_allclose(api_array(entry), want[key], rtol=1e-5, atol=1e-5 * np.abs(want[key]).max())


def test_a_targeted_pgd_attack_stays_in_the_ball_and_reaches_its_target(server, cat_dog_png):
    query = "model=vgg_cifar10&attack=pgd&epsilon=0.03&steps=8&target=truck&seed=5&method=guided-backprop"
    status, answer = post(server, "/api/attack", query, cat_dog_png)
    assert status == 200, answer
    assert answer["attack"]["steps"] == 8 and answer["attack"]["target"] == {"index": 9, "name": "truck"}
    assert answer["attack"]["step_size"] == pytest.approx(2.5 * 0.03 / 8)
    model = minicnn.load("vgg_cifar10")
    pixels = preprocess(image_from_bytes(cat_dog_png), {**model.meta["preprocessing"], "mean": [0] * 3,
                                                         "std": [1] * 3})
    expected = pgd(model, pixels, 0.03, steps=8, seed=5, target=9)
    adversarial = decode(answer["adversarial"]["png"]).astype(int)
    want = np.round(expected.adversarial[0].transpose(1, 2, 0) * 255)
    assert (adversarial == want).mean() > 0.99                         # a sign may flip at a float32 tie
    assert np.abs(adversarial - np.round(pixels[0].transpose(1, 2, 0) * 255)).max() <= round(0.03 * 255) + 1
    assert answer["adversarial_class"] == {"index": 9, "name": "truck"} and answer["fooled"]
    assert answer["maps"]["adversarial"]["class"]["name"] == "truck"
    assert list(answer["maps"]["true"]["maps"]) == ["guided_backprop"]
    assert "PGD, 8 projected steps from a random start towards 'truck'" in answer["about"]


def test_an_attack_that_fails_explains_the_one_class_once(server, cat_dog_png):
    status, answer = post(server, "/api/attack", "model=resnet20_cifar10&epsilon=0", cat_dog_png)
    assert status == 200 and not answer["fooled"] and answer["adversarial"]["largest_change_255"] == 0
    assert answer["maps"]["true"] == answer["maps"]["adversarial"]


@pytest.mark.parametrize("query, words", [
    ("epsilon=2", "epsilon must lie in [0, 1]"),
    ("epsilon=-1/255", "epsilon must lie in [0, 1]"),
    ("epsilon=nan", "epsilon must be a number in [0, 1]"),
    ("epsilon=1/0", "epsilon must be a number in [0, 1], e.g. 0.03 or 8/255"),
    ("epsilon=eight", "epsilon must be a number"),
    ("attack=cw", "attack must be one of fgsm, pgd"),
    ("attack=pgd&steps=101", "steps=101 is outside 1..100, the server's cap on PGD steps"),
    ("attack=pgd&steps=0", "steps=0 is outside 1..100"),
    ("attack=fgsm&steps=1000", "steps=1000 is outside 1..100"),
    ("seed=-3", "seed must be a whole number"),
    ("target=kat", "did you mean 'cat'"),
    ("model=mobilenet_v2&target=crane", "shared by 2 classes"),
    ("method=gradcan", "did you mean 'gradcam'"),
    ("layer=layer4", "unknown layer 'layer4'"),
    ("method=integrated-gradients&explain.steps=1000", "explain.NAME): steps=1000 is outside 1..512"),
    ("method=smoothgrad&explain.samples=100000", "cap on samples"),
    ("explain.target=3", "explain.target is not an option of a method"),
    ("explain.colour=red", "unknown query parameter 'colour'"),
    ("colour=red", "unknown query parameter 'colour'; /api/attack takes: model, attack, epsilon"),
    ("empty", "empty"),
    ("not an image", "not an image file"),
])
def test_attack_refusals_are_400_with_one_line_before_any_work(server, cat_dog_png, query, words):
    body = {"empty": b"", "not an image": b"GIF89a but not really"}.get(query, cat_dog_png)
    status, answer = post(server, "/api/attack", "" if query in ("empty", "not an image") else query, body)
    assert status == 400 and words in one_line(answer), answer
    assert request(server, "GET", "/api/models")[0] == 200


@pytest.mark.parametrize("path, query", [("/api/visualize", TINY), ("/api/attack", "model=resnet20_cifar10")])
def test_a_foreign_origin_is_403_and_the_own_origin_is_served(server, cat_dog_png, path, query):
    body = cat_dog_png if path == "/api/attack" else b""
    status, answer = post(server, path, query, body, headers={"Origin": "http://evil.example"})
    assert status == 403 and "not this server's origin" in one_line(answer)
    port = server.server_address[1]
    status, answer = post(server, path, query, body, headers={"Origin": f"http://127.0.0.1:{port}",
                                                              "Host": f"127.0.0.1:{port}"})
    assert status == 200, answer
    assert request(server, "GET", path)[0] == 405


# ---------------------------------------------------------------- the deadline and a client that leaves

#: Requests that work for many seconds if nothing stops them.
SLOW = [("/api/visualize", "model=mobilenet_v2&class=goldfish&steps=512", b""),
        ("/api/attack", "model=mobilenet_v2&attack=pgd&steps=100", None)]


@pytest.mark.parametrize("path, query, body", SLOW, ids=["visualize", "attack"])
def test_work_over_the_deadline_is_503_and_stops_between_steps(store, cat_dog_png, path, query, body):
    with running(store, deadline=1.0) as server:
        started = time.monotonic()
        status, answer = post(server, path, query, cat_dog_png if body is None else body)
        took = time.monotonic() - started
        assert status == 503 and "request deadline of 1 s" in one_line(answer)
        assert took < 6, took                          # stopped between steps (the whole work: ~35 s and ~8 s here)
        assert post(server, "/api/visualize", TINY)[0] == 200


@pytest.mark.parametrize("path, query, body", SLOW, ids=["visualize", "attack"])
def test_a_client_that_leaves_stops_the_work(store, cat_dog_png, path, query, body):
    lines = []
    with running(store, log=lines.append) as server:
        data = cat_dog_png if body is None else body
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=30) as s:
            s.sendall(f"POST {path}?{query} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(data)}\r\n\r\n"
                      .encode() + data)
            time.sleep(0.5)                                               # the work has started
        left = time.monotonic()
        for _ in range(200):
            if any("cancelled: the client closed the connection" in line for line in lines):
                break
            time.sleep(0.05)
        assert sum("cancelled" in line for line in lines) == 1, lines
        assert time.monotonic() - left < 6
        assert len(server.visualisations) == 0                           # nothing half-done was kept


def test_integer_settings_take_their_whole_range_and_nothing_else():
    for text, value in (("1", 1), ("512", 512), ("", 128), ("007", 7)):
        assert synth.integer({"steps": text}, "steps", 128, 1, 512, "the cap") == value
    for text in ("0", "513", "-1", "1.5", "1e3", " 5", "\u0663", "9" * 21):
        with pytest.raises(InputError, match="steps"):
            synth.integer({"steps": text}, "steps", 128, 1, 512, "the cap")


#: Values a random query draws from: valid ones (kept cheap: at most 3 steps, CIFAR models) and hostile ones.
VALUES = ["", "0", "1", "3", "-1", "1e9", "9" * 25, "nan", "inf", "8/255", "1/0", "0.5", "\u0663", "cat", "dog",
          "kat", "fgsm", "pgd", "pixel", "fourier", "gradcam", "saliency,gradcam", "layer2", "features.2", "\x00", "%",
          "a" * 300]
KEYS = {"/api/visualize": ["model", "class", "steps", "param", "seed", "lr"],
        "/api/attack": ["model", "attack", "epsilon", "steps", "target", "seed", "method", "layer", "explain.steps",
                        "explain.samples", "explain.target", "explain.bogus"]}


@pytest.mark.parametrize("path", list(KEYS))
def test_random_queries_are_answered_200_or_400_never_500(server, cat_dog_png, path):
    from urllib.parse import urlencode
    rng = np.random.default_rng(29)
    for _ in range(20):
        keys = rng.choice(KEYS[path], size=rng.integers(0, 5), replace=False)
        query = {k: str(rng.choice(VALUES)) for k in keys}
        query["model"] = str(rng.choice(["resnet20_cifar10", "vgg_cifar10", "resnet21"]))
        if query.get("steps", "").isdigit() and query["steps"].isascii() and len(query["steps"]) < 5:
            query["steps"] = str(min(int(query["steps"]), 3))                   # cheap when valid
        if query.get("explain.steps", "x").isascii() and query.get("explain.steps", "x").isdigit():
            query["explain.steps"] = "2"
        if path == "/api/visualize":
            query.setdefault("class", "cat")
        status, answer = post(server, path, urlencode(query), cat_dog_png if path == "/api/attack" else b"")
        assert status in (200, 400), (query, answer)
        if status == 400:
            one_line(answer)
