"""A running explorer server for the tests: loopback only, an ephemeral port, stopped afterwards."""

from __future__ import annotations

import http.client
import json
import threading
from contextlib import contextmanager

import numpy as np
import pytest

from minicnn.explain.run import compute, maps_for_saving
from minicnn.inputs.images import image_from_bytes
from minicnn.inputs.preprocess import preprocess
from minicnn.server import ModelStore, make_server


@contextmanager
def running(store: ModelStore, **kwargs):
    """A server on 127.0.0.1, a port the system picks, serving from a thread until the block ends."""
    server = make_server("127.0.0.1", 0, store=store, **kwargs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 120):
    """(status, headers, body) of one request on a fresh connection (the path is sent as given)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=bool(headers and "Host" in headers), skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None and not (headers and "Content-Length" in headers):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def get_json(server, path: str, **kw):
    status, headers, body = request(server, "GET", path, **kw)
    return status, json.loads(body)


def explain(server, image: bytes, query: str = "", **kw):
    """(status, JSON answer) of POST /api/explain?query with the image bytes."""
    status, headers, body = request(server, "POST", "/api/explain" + ("?" + query if query else ""), image, **kw)
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)


def library_maps(model, image: bytes, method="gradcam", target=None, layer=None) -> dict[str, np.ndarray]:
    """What `minicnn explain --save` writes for these bytes: the maps the API must return."""
    x = preprocess(image_from_bytes(image), model.meta["preprocessing"])
    results = compute(model, x, method, target, layer, log=lambda line: None)
    return maps_for_saving(results, model, x.shape[2:])


def api_array(entry: dict) -> np.ndarray:
    """A map of the API as the float32 array it was made from (JSON numbers read back exactly)."""
    return np.asarray(entry["data"], dtype=np.float32).reshape(entry["shape"])


@pytest.fixture(scope="module")
def store():
    return ModelStore(workers=2)


@pytest.fixture(scope="module")
def server(store):
    with running(store) as s:
        yield s


@pytest.fixture(scope="module")
def cat_dog_png(server):
    status, headers, body = request(server, "GET", "/api/samples/cat_dog")
    assert status == 200 and headers["Content-Type"] == "image/png"
    return body
