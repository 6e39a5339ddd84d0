"""`minicnn serve`'s JSON API, against a real server on an ephemeral loopback port.

Every endpoint; every refusal (its status, a one-line JSON error, and the
server still serving afterwards); the Host guard; static paths that try to
leave the static folder; the upload limit; maps equal to what `minicnn
explain --save` computes on the same bytes; parallel requests answering
what sequential ones do.
"""

import base64
import io
import json
import socket
import threading

import numpy as np
import pytest
from PIL import Image
from refusals import png_bytes, png_claiming
from server_helpers import api_array, cat_dog_png, explain, get_json, library_maps, request, running, server, store  # noqa: F401

import minicnn
from minicnn import explain as mx
from minicnn.explain import registry
from minicnn.explain.gradcam import weighted_sum
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import sample_images
from minicnn.models.shipped import shipped_models
from minicnn.server import app, hosts, is_loopback


def decode_png(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def still_serving(server):
    status, body = get_json(server, "/api/models")
    assert status == 200 and body["models"]


# ---------------------------------------------------------------- the page and its files

def test_the_page_and_its_files_are_served_from_the_package(server):
    status, headers, body = request(server, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    for asset in ("/static/app.js", "/static/style.css", "/static/favicon.svg"):
        assert asset in page
        status, headers, data = request(server, "GET", asset)
        assert status == 200 and data == (app.STATIC_DIR / asset.split("/")[-1]).read_bytes()
    assert "default-src 'none'" in request(server, "GET", "/")[1]["Content-Security-Policy"]
    assert "http://" not in page and "https://" not in page           # nothing from elsewhere: works offline
    status, headers, body = request(server, "HEAD", "/")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(page.encode())


@pytest.mark.parametrize("path", [
    "/static/../README.md", "/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/%2e%2e/README.md",
    "/static/../../../../../../etc/passwd", "/static//etc/passwd", "/static/", "/static", "/static/static/app.js",
    "/../minicnn/server/app.py", "/static/app.js/..", "/static/APP.JS", "/static/app.js%00.html", "/index.html",
    "/etc/passwd", "//etc/passwd", "/api/samples/../../../weights/manifest.json", "/api/samples/..%2f..%2fcli.py"])
def test_paths_outside_the_static_table_are_404(server, path):
    status, headers, body = request(server, "GET", path)
    assert status == 404 and headers["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert "\n" not in error and ("no such path" in error or "unknown sample" in error)


# ---------------------------------------------------------------- models, methods, samples

def test_models_lists_every_shipped_model_with_classes_layers_and_default_layer(server):
    status, body = get_json(server, "/api/models")
    assert status == 200
    assert sorted(m["name"] for m in body["models"]) == shipped_models()
    assert body["default"] in shipped_models()
    for entry in body["models"]:
        model = minicnn.load(entry["name"])
        assert entry["classes"] == model.classes
        x = np.zeros((1, *model.input_size), np.float32)
        model.forward(x)
        assert [layer["name"] for layer in entry["layers"]] == model.layer_names
        for layer in entry["layers"]:
            assert layer["shape"] == list(model.activations[layer["name"]].shape[1:])
            assert layer["type"] == type(model[layer["name"]]).__name__
        assert entry["default_layer"] == mx.default_layer(model)
    vgg = next(m for m in body["models"] if m["name"] == "vgg_cifar10")
    assert {"name": "features.19", "type": "ReLU", "shape": [128, 8, 8], "depth": 1, "spatial": True} in vgg["layers"]
    assert next(x for x in vgg["layers"] if x["name"] == "classifier.0")["spatial"] is False


def test_methods_are_the_registry_rows_in_order(server):
    status, body = get_json(server, "/api/methods")
    assert status == 200 and body["default"] == "gradcam"
    assert [(m["name"], m["key"], m["title"], m["kind"], m["display"], m["value"]) for m in body["methods"]] == [
        (m.name, m.key, m.title, m.kind, m.display, m.value) for m in registry.METHODS.values()]
    heat = next(m for m in body["methods"] if m["name"] == "gradcam")
    assert heat["colormap"] == "jet" and len(heat["colors"]) > 2


def test_samples_list_and_files(server):
    status, body = get_json(server, "/api/samples")
    assert status == 200
    names = [s["name"] for s in body["samples"]]
    assert names[0] == "cat_dog" and len(names) == len(set(names)) == 3 + len(sample_images())
    status, headers, data = request(server, "GET", "/api/samples/cat_dog")
    assert status == 200 and np.array_equal(np.asarray(Image.open(io.BytesIO(data))), mx.cat_dog_image())
    path, cls = sample_images("cat")[18]
    status, headers, data = request(server, "GET", f"/api/samples/cat_{path.stem}")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and data == path.read_bytes()
    status, headers, data = request(server, "GET", "/api/samples/cat_dgo")
    assert status == 404 and "did you mean 'cat_dog'" in json.loads(data)["error"]


# ---------------------------------------------------------------- explanations

@pytest.mark.parametrize("query, method, target, layer", [
    ("", "gradcam", None, None),
    ("model=resnet20_cifar10&target=dog&layer=layer2", "gradcam", "dog", "layer2"),
    ("model=vgg_cifar10&method=guided-gradcam,saliency,counterfactual&target=3",
     "guided-gradcam,saliency,counterfactual", 3, None),
    # 32 maps: Score-CAM cheap
    ("model=vgg_cifar10&method=all&target=cat&layer=features.2", "all", "cat", "features.2"),
])
def test_explain_returns_the_maps_minicnn_explain_saves(server, cat_dog_png, query, method, target, layer):
    status, body = explain(server, cat_dog_png, query)
    assert status == 200, body
    name = dict(p.split("=") for p in query.split("&") if p).get("model", "resnet20_cifar10")
    model = minicnn.load(name)
    expected = library_maps(model, cat_dog_png, method, target, layer)
    assert body["model"] == name and body["layer"] == (str(expected["layer"]) or None)
    assert body["target"]["index"] == int(expected["target"]) and body["target"]["name"] == str(expected["target_name"])
    keys = [k for k, a in expected.items() if a.ndim >= 2]
    assert list(body["maps"]) == keys
    for key in keys:
        entry = body["maps"][key]
        assert entry["shape"] == list(expected[key].shape)
        assert np.array_equal(api_array(entry), expected[key]), key            # raw, exactly
        picture = decode_png(entry["png"])
        assert picture.shape == (*body["input"]["shape"], 3)
        m = registry.get(key.removesuffix("_upsampled"))
        assert entry["display"] == m.display and entry.get("label", m.value) == m.value
    logits = expected["logits"]
    p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    top = np.argsort(-logits)[:5]
    assert [q["index"] for q in body["predictions"]] == top.tolist()
    assert [q["name"] for q in body["predictions"]] == [model.classes[k] for k in top]
    assert np.allclose([q["probability"] for q in body["predictions"]], p[top], rtol=1e-5)
    assert [q["logit"] for q in body["predictions"]] == [float(v) for v in logits[top]]
    assert decode_png(body["input"]["png"]).shape == (*body["input"]["shape"], 3)
    if method == "all" and name == "vgg_cifar10":
        assert any(n.startswith("cam: skipped") for n in body["notes"])   # VGG has no GAP -> Linear ending


def test_gradcam_steps_are_the_engines_pieces(server, cat_dog_png):
    status, body = explain(server, cat_dog_png, "model=resnet20_cifar10&target=cat")
    steps = body["gradcam_steps"]
    model = minicnn.load("resnet20_cifar10")
    x = preprocess(mx.cat_dog_image(), model.meta["preprocessing"])
    r = mx.gradcam(model, x, "cat")
    A = model.activations["layer3"]
    assert steps["layer"] == "layer3" and steps["K"] == 64 and steps["shape"] == [8, 16]
    assert np.array_equal(np.float32(steps["alpha"]), r.alpha[0])
    S = weighted_sum(r.alpha, A)[0]
    assert np.array_equal(api_array(steps["weighted_sum"]), S)
    assert np.array_equal(api_array(steps["relu"]), r.map[0]) and steps["equal_to_gradcam"]
    contribution = r.alpha[0].astype(np.float64) * A[0].astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(steps["contribution"], contribution, rtol=1e-5, atol=1e-6 * np.abs(contribution).max())
    assert (contribution > 0).sum() > 6 and (contribution < 0).sum() > 2     # both sides have more than are shown
    ranked = np.argsort(-contribution).tolist()
    want = [(k, "for") for k in ranked[:6]] + [(k, "against") for k in ranked[::-1][:2]]
    assert [(m["k"], m["side"]) for m in steps["maps"]] == want
    for m in steps["maps"]:
        assert np.array_equal(api_array(m), A[0, m["k"]])
        assert m["alpha"] == float(r.alpha[0, m["k"]])
        np.testing.assert_allclose(m["mean"], A[0, m["k"]].mean(), rtol=1e-5)


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize("query, body, message", [
    ("", b"", "empty"),
    ("", b"not an image at all", "not an image file"),
    ("", png_claiming(4001, 4000), "over the limit of 16000000 pixels"),
    ("", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "the uploaded image"),
    ("model=resnet21", None, "did you mean 'resnet20_cifar10'"),
    ("method=gradcan", None, "did you mean 'gradcam'"),
    ("method=", None, None),                                # empty: the default, accepted
    ("layer=layer4", None, "unknown layer 'layer4'"),
    ("layer=linear", None, "needs a convolutional feature map"),
    ("target=kat", None, "did you mean 'cat'"),
    ("target=10", None, "out of range"),
    ("method=cam&model=vgg_cifar10", None, "CAM needs"),
    ("colour=red", None, "unknown query parameter 'colour'"),
    ("target=cat&target=dog", None, "given twice"),
    ("target", None, "query string"),
    ("elongated", b"", "crop it nearer to a square"),
])
def test_bad_input_is_a_400_with_one_line_and_the_server_keeps_serving(server, cat_dog_png, query, body, message):
    if query == "elongated":
        query, body = "", png_bytes(Image.new("RGB", (800, 16), (90, 120, 40)))
    status, answer = explain(server, cat_dog_png if body is None else body, query)
    if message is None:
        assert status == 200
    else:
        assert status == 400 and list(answer) == ["error"]
        assert message in answer["error"] and "\n" not in answer["error"] and "Traceback" not in answer["error"]
    still_serving(server)


@pytest.mark.parametrize("verb, path, status, allow", [
    ("GET", "/api/explain", 405, "POST"),
    ("POST", "/api/models", 405, "GET, HEAD"),
    ("PUT", "/", 405, "GET, HEAD"),
    ("DELETE", "/api/samples/cat_dog", 405, "GET, HEAD"),
    ("OPTIONS", "/api/explain", 405, "POST"),
    ("PATCH", "/static/app.js", 405, "GET, HEAD"),
    ("POST", "/api/nothing", 404, None),
    ("GET", "/api", 404, None),
    ("BREW", "/", 501, None),
])
def test_wrong_verbs_and_unknown_paths(server, verb, path, status, allow):
    got, headers, body = request(server, verb, path, b"x" if verb in ("POST", "PUT") else None)
    assert got == status and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] and headers.get("Allow") == allow
    still_serving(server)


def test_uploads_over_the_limit_are_413_before_the_body_is_read(store, cat_dog_png):
    with running(store, max_upload=len(cat_dog_png)) as small:
        assert explain(small, cat_dog_png)[0] == 200                       # exactly the limit: accepted
        status, answer = explain(small, cat_dog_png + b"\0")
        assert status == 413 and "over the limit" in answer["error"]
        still_serving(small)
    with running(store) as server:                                         # the default: 10 MiB
        status, headers, body = request(server, "POST", "/api/explain", b"",
                                        headers={"Content-Length": str(10 * 1024 * 1024 + 1)})
        assert status == 413 and headers.get("Connection") == "close"
        assert "10485761 bytes, over the limit of 10485760" in json.loads(body)["error"]
        status, headers, body = request(server, "POST", "/api/explain", b"", headers={"Content-Length": "many"})
        assert status == 400 and "Content-Length" in json.loads(body)["error"]
        still_serving(server)


def test_a_body_without_length_is_411_and_a_garbled_request_line_is_json(server):
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=30) as s:
        s.sendall(b"POST /api/explain HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        reply = s.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 411") and b'"error"' in reply
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=30) as s:
        s.sendall(b"\x16\x03\x01 garbage\r\n\r\n")                        # e.g. a TLS hello: read as HTTP/0.9
        reply = s.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 400") and b'{"error":"Bad HTTP/0.9 request type' in reply
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=30) as s:
        s.sendall(b"GET / HTTP/1.1 and more\r\nHost: localhost\r\n\r\n")
        reply = s.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 400") and b'{"error":"Bad request version' in reply
    still_serving(server)


# ---------------------------------------------------------------- the Host guard

@pytest.mark.parametrize("host, status", [
    ("evil.example", 403), ("evil.example:{port}", 403), ("127.0.0.1.evil.example", 403), ("", 403),
    ("localhost:{port}", 200), ("127.0.0.1:{port}", 200), ("[::1]:{port}", 200), ("LOCALHOST", 200),
    ("127.0.0.2", 200), ("app.localhost:{port}", 200),
])
def test_a_loopback_server_refuses_other_host_names(server, host, status):
    header = {"Host": host.format(port=server.server_address[1])}
    for verb, path in (("GET", "/"), ("GET", "/api/models"), ("POST", "/api/explain?method=bogus")):
        got, _, body = request(server, verb, path, b"x" if verb == "POST" else None, headers=header)
        assert got == (status if status == 403 else (400 if verb == "POST" else 200))
        if got == 403:
            assert "not this server's" in json.loads(body)["error"]


def test_is_loopback():
    assert all(map(is_loopback, ["127.0.0.1", "localhost", "::1", "[::1]", "127.8.9.10", "a.localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.2", "example.com", "localhost.example.com"]))


def test_host_headers_and_origins_are_parsed_strictly():
    assert hosts.parse_host("localhost:8000") == ("localhost", 8000)
    assert hosts.parse_host("LOCALHOST") == ("localhost", 80)
    assert hosts.parse_host("[::1]:8000") == ("::1", 8000) and hosts.parse_host("127.0.0.1") == ("127.0.0.1", 80)
    for bad in ("localhost:80@evil.example", "localhost:", "localhost:99999", "a b", "", "localhost:8000:1",
                "user@localhost", "localhost/x", "-x", "localhost:+80"):
        assert hosts.parse_host(bad) is None, bad
    assert hosts.origin_of("http://localhost:8000") == ("http", "localhost", 8000)
    assert hosts.origin_of("http://LOCALHOST/page?q=1") == ("http", "localhost", 80)
    assert hosts.origin_of("https://localhost") == ("https", "localhost", 443)
    for bad in ("null", "", "file:///etc/passwd", "http://a@localhost:8000", "http://localhost:99999", "%%%"):
        assert hosts.origin_of(bad) is None, bad


# ---------------------------------------------------------------- threads

def test_parallel_requests_get_the_maps_sequential_ones_get(server, cat_dog_png):
    cases = [("model=resnet20_cifar10&target=cat", "gradcam"), ("model=resnet20_cifar10&target=dog", "gradcam"),
             ("model=vgg_cifar10&target=dog&method=saliency", "saliency"),
             ("model=vgg_cifar10&target=ship&layer=features.12", "gradcam")]
    sequential = {q: explain(server, cat_dog_png, q)[1]["maps"][key]["data"] for q, key in cases}
    answers, errors = [], []

    def client(i):
        try:
            for j in range(2 if i < 2 else 1):       # 6 requests in flight across 4 connections
                q, key = cases[(i + j) % len(cases)]
                status, body = explain(server, cat_dog_png, q)
                answers.append((q, status, body["maps"][key]["data"] if status == 200 else body))
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(answers) == 6
    # Equal to float32 rounding (1e-5 of the map's scale), not bitwise: a request's products need not sum
    # in the same order when other requests run beside it (they did not under CI's Haswell kernel while a
    # request alone could still use two BLAS threads).
    for q, status, data in answers:
        assert status == 200
        expected = np.asarray(sequential[q], dtype=np.float64)
        np.testing.assert_allclose(np.asarray(data, dtype=np.float64), expected, rtol=1e-5,
                                   atol=1e-5 * np.abs(expected).max())


def test_a_body_that_stops_arriving_is_408_and_the_server_keeps_serving(store):
    with running(store, read_timeout=1) as server:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=30) as s:
            s.sendall(b"POST /api/explain HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n" + b"\x89PNG")
            reply = s.makefile("rb").read()
        assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive in full within 1 s" in reply
        still_serving(server)


def test_models_and_answers_carry_estimates_layer_shapes_and_unavailable_methods(server, store, cat_dog_png):
    from minicnn.explain.estimate import estimate_seconds
    status, body = get_json(server, "/api/models")
    assert status == 200
    for m in body["models"]:
        spatial = [li["name"] for li in m["layers"] if li["spatial"]]
        assert set(m["estimates"]) == set(registry.METHODS)
        for name, e in m["estimates"].items():
            if name in ("scorecam", "ablationcam"):                   # one pass per map K: per layer
                assert sorted(e) == sorted(spatial) and all(v > 0 for v in e.values())
            else:
                assert e > 0
        K = {li["name"]: li["shape"][0] for li in m["layers"]}
        first, last = spatial[0], m["default_layer"]
        assert (m["estimates"]["scorecam"][first] < m["estimates"]["scorecam"][last]) == (K[first] < K[last])
        assert len(m["pass_seconds"]) == 2 and all(t > 0 for t in m["pass_seconds"])
        assert m["unavailable"] == ({"cam": m["unavailable"].get("cam")} if m["name"] == "vgg_cifar10" else {})
    vgg = next(m for m in body["models"] if m["name"] == "vgg_cifar10")
    assert "global average pooling" in vgg["unavailable"]["cam"]

    status, answer = explain(server, cat_dog_png, "model=resnet20_cifar10&method=gradcam&layer=layer2")
    assert status == 200 and answer["input"]["shape"] == [32, 64]
    assert answer["layer_shapes"]["layer2"] == [32, 16, 32]                 # C, then h x w for this 64 wide input
    assert answer["layer_shapes"]["layer2"][1:] == answer["maps"]["gradcam"]["shape"]
    shared = store.shared("resnet20_cifar10")
    times = store.pass_times("resnet20_cifar10")
    assert answer["estimates"]["gradcam"] == round(estimate_seconds("gradcam", shared, (32, 64), times), 3)
    assert answer["estimates"]["occlusion"] == round(estimate_seconds("occlusion", shared, (32, 64), times), 3)


@pytest.mark.parametrize("query, status, message", [
    ("model=mobilenet_v2&target=tabyy", 400, "did you mean 'tabby'?"),
    ("model=mobilenet_v2&target=cat", 400, "'cat' begins the names of 5 classes: 287 'cougar' (as 'catamount')"),
    ("model=mobilenet_v2&target=crane", 400, "class name 'crane' is shared by 2 classes: 135 'crane', 518 'crane'"),
])
def test_imagenet_targets_are_refused_by_synonym_before_any_pass(server, cat_dog_png, query, status, message):
    """The server resolves target= as every front end does (any synonym, a unique beginning): refusals name them."""
    code, answer = explain(server, cat_dog_png, query)
    assert code == status and message in answer["error"] and "\n" not in answer["error"]
    still_serving(server)


# ---------------------------------------------------------------- stopping work between batches

def test_watching_calls_check_between_batches_silences_bars_and_stops_the_engine():
    import io as _io

    from minicnn.explain import occlusion
    from minicnn.util.progress import Progress, watching

    calls, stream = [], _io.StringIO()
    with watching(lambda: calls.append(1), quiet=True):
        bar = Progress(3, "work", enabled=True, after=0.0, stream=stream)
        for _ in range(3):
            bar.update(1)
        bar.close()
    assert len(calls) == 4 and stream.getvalue() == ""              # made + 3 updates; nothing drawn
    bar = Progress(3, "work", enabled=True, after=0.0, stream=stream)
    bar.update(3)
    assert "work" in stream.getvalue() and len(calls) == 4          # outside the block: drawn, not watched

    class Stop(Exception):
        pass

    model = minicnn.load("resnet20_cifar10")
    x = preprocess(mx.cat_dog_image(), model.meta["preprocessing"])
    passes = []
    forward = model.forward
    model.forward = lambda *a, **k: passes.append(1) or forward(*a, **k)

    def check():
        if len(passes) > 2:
            raise Stop

    with pytest.raises(Stop), watching(check, quiet=True):
        occlusion(model, x, batch_size=1)                              # 1 + 377 passes if not stopped
    assert len(passes) == 3


def test_the_sampling_methods_are_capped_and_their_features_name_no_file(server, cat_dog_png):
    for query, message in [("method=lime&features=/etc/passwd", "features must be one of grid, slic"),
                           ("method=kernel-shap&grid=33", "the server's cap on grid"),
                           ("method=rise&samples=513", "the server's cap on samples"),
                           ("method=rise&p=1.5", "p must be"), ("method=rise&seed=-1", "seed=-1 is outside")]:
        status, answer = explain(server, cat_dog_png, query)
        assert status == 400 and message in answer["error"], (query, answer)
    status, answer = explain(server, cat_dog_png, "method=rise&samples=6&grid=4&p=0.5&seed=1")
    assert status == 200 and answer["maps"]["rise"]["shape"] == [32, 64]
    still_serving(server)
