"""``minicnn serve``: the explorer in the browser, served by minicnn itself.

A learner chooses an image, a model, a layer, a class and the methods, and
watches the maps (and Grad-CAM's own pieces: A^k, alpha_k, the weighted
sum, the ReLU) change. The standard library's HTTP server, the shipped
models loaded once, a plain HTML/CSS/JavaScript page shipped in
``static/`` (no build step, nothing from the network).

- ``models.py``  : the shipped models, loaded once; a fresh pass per request
- ``api.py``     : what each JSON endpoint answers (reusing ``minicnn explain``'s steps)
- ``synth.py``   : the class visualisation and the "attack this image" endpoints (``minicnn.synthesis``)
- ``overlay.py`` : maps as PNG overlays, in the figures' colours and ranges
- ``app.py``     : HTTP: the routes, the static files, ``make_server``
- ``guards.py``  : what every request passes: the Host guard, the Origin rule, the limits, JSON errors
- ``connections.py``, ``hosts.py``: the connection cap and read deadline; Host and Origin values

    from minicnn.server import make_server
    server = make_server("127.0.0.1", 0)     # models loaded, port chosen
    print(server.url); server.serve_forever()
"""

from .app import SERVER_MAX_PIXELS, Server, make_server
from .connections import DEFAULT_MAX_UPLOAD
from .hosts import is_loopback
from .models import ModelStore

__all__ = ["DEFAULT_MAX_UPLOAD", "SERVER_MAX_PIXELS", "ModelStore", "Server", "is_loopback", "make_server"]
