"""The explorer in a real browser: headless Chromium (Debian's chromium and chromium-driver) through Selenium.

Loads the page from a test server, picks the cat|dog sample, explains 'cat'
and then 'dog', and reads the Grad-CAM overlay back from the page's canvas:
its hot (red) half must move from the left to the right. Then, on every
shipped model, ticks and unticks every method alone and in pairs (each
method beside a layer method and beside a layer-free one): never an error
banner, never a console error, one drawn map per ticked method; a layer
move recomputes only the methods that use the layer. Nothing is
downloaded: the browser and its driver are the system's (Selenium Manager
is never asked). Skipped, with the reason, where Chromium, its driver or
Selenium is not installed (`.ci/run` installs them).
"""

import shutil
import time

import numpy as np
import pytest
from server_helpers import running, store  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "Selenium is not installed (pip install -e '.[browser]')"
    if not CHROMIUM or not DRIVER:
        return "Chromium or its driver is not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        print(f"skipping the browser test: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,1000", "--hide-scrollbars", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    except Exception as e:  # a Chromium that cannot start here (no display libraries, ...): say why
        print(f"skipping the browser test: Chromium did not start: {e}")
        pytest.skip(f"Chromium did not start: {str(e).splitlines()[0]}")
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition: str, timeout: float = 120):
    """Poll a JavaScript expression until it is truthy; return its value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(f"return {condition}")
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"the page never reached: {condition}; error shown: "
                         + driver.execute_script("return document.getElementById('error').textContent"))


def explained(driver, target: str) -> str:
    return wait_for(driver, f"document.body.dataset.busy === '0' && "
                            f"document.getElementById('maps').dataset.target === '{target}' && '{target}'")


def hot_halves(driver) -> tuple[float, float]:
    """Mean of red minus blue over the left and right halves of the Grad-CAM canvas (jet: red is high)."""
    rgba = driver.execute_script("""
        const c = document.querySelector('#maps canvas[data-key="gradcam"]');
        return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];""")
    w, h, data = rgba
    a = np.asarray(data, dtype=np.float64).reshape(h, w, 4)
    hot = a[..., 0] - a[..., 2]
    return float(hot[:, :w // 2].mean()), float(hot[:, w // 2:].mean())


def test_switching_the_target_from_cat_to_dog_moves_the_gradcam_heat_from_left_to_right(browser, store, tmp_path):
    with running(store) as server:
        browser.get(server.url)
        wait_for(browser, "document.querySelector('[data-sample=cat_dog]')")
        browser.find_element("css selector", "[data-sample=cat_dog]").click()
        wait_for(browser, "document.body.dataset.busy === '0' && document.getElementById('maps').dataset.target")
        # the overlay alone (opacity 100%), so the canvas holds the colour-mapped Grad-CAM
        browser.execute_script("const o = document.getElementById('opacity'); o.value = 100;"
                               "o.dispatchEvent(new Event('input'));")
        browser.execute_script("document.getElementById('target').value = 'cat';"
                               "document.getElementById('target').dispatchEvent(new Event('change'));")
        explained(browser, "cat")
        assert browser.execute_script("return document.getElementById('maps').dataset.model") == "resnet20_cifar10"
        cat_left, cat_right = hot_halves(browser)
        browser.find_element("css selector", ".prediction[data-class=dog]").click()
        explained(browser, "dog")
        dog_left, dog_right = hot_halves(browser)
        browser.execute_script("const o = document.getElementById('opacity'); o.value = 50;"
                               "o.dispatchEvent(new Event('input'));")
        browser.save_screenshot(str(tmp_path / "explorer.png"))
        assert browser.execute_script("return document.getElementById('error').hidden")
        assert not browser.execute_script("return document.getElementById('steps').hidden")
    assert cat_left > cat_right + 20, (cat_left, cat_right)
    assert dog_right > dog_left + 20, (dog_left, dog_right)
    assert (tmp_path / "explorer.png").stat().st_size > 10_000


# ---------------------------------------------------------------- every method, alone and in pairs, on every model

#: Options that keep the many-pass methods short in the browser test (the page sends them with the request).
FAST_OPTIONS = {"integrated-gradients": {"steps": 4}, "smoothgrad": {"samples": 3},
                "smoothgrad-squared": {"samples": 3}, "vargrad": {"samples": 3},
                "lime": {"samples": 6, "grid": 2}, "kernel-shap": {"samples": 6, "grid": 2},
                "rise": {"samples": 6, "grid": 2}}
#: MobileNetV2 explained at 64x64 instead of 224x224 (it is fully convolutional up to its pooling; 2x2 at
#: 'features'), and at a layer of 16 maps, so Score-CAM's 1 + K passes stay few.
SMALL_INPUT = {"mobilenet_v2": [64, 64]}
LAYER = {"mobilenet_v2": "features.1"}


@pytest.fixture(scope="module")
def small_store():
    from minicnn.server import ModelStore
    s = ModelStore(workers=2)
    for name, size in SMALL_INPUT.items():
        if name in s.models:
            m = s.models[name]
            m.meta = {**m.meta, "preprocessing": {**m.meta["preprocessing"], "size": size}}
    return s


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def tick_only(driver, names: list[str]) -> None:
    """Click the method checkboxes as a user would: tick ``names`` first, then untick the others."""
    driver.execute_script("""
        const want = new Set(arguments[0]);
        const boxes = [...document.querySelectorAll('#methods input')];
        for (const b of boxes) if (want.has(b.value) && !b.checked) b.click();
        for (const b of boxes) if (!want.has(b.value) && b.checked) b.click();""", names)


SHOWN = """
    const n = arguments[0];
    const figs = [...document.querySelectorAll('#maps figure.map')];
    if (document.body.dataset.busy !== '0' || figs.length !== n || figs.some((f) => f.dataset.state === 'pending')) {
      return null;                                       // not settled yet
    }
    const maps = figs.map((f) => {
      const c = f.querySelector('canvas');
      let drawn = false;
      if (c) {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) { drawn = true; break; }
      }
      return [f.dataset.method, f.dataset.state, drawn];
    });
    const e = document.getElementById('error');
    return {maps, error: e.hidden ? '' : e.textContent, status: document.getElementById('status').textContent,
            steps_hidden: document.getElementById('steps').hidden};"""


def check_shown(driver, names: list[str], order: list[str], where: str, timeout: float = 60) -> None:
    """The page shows one drawn map per ticked method, in the registry's order, and no error anywhere."""
    end = time.monotonic() + timeout
    while (shown := driver.execute_script(SHOWN, len(names))) is None:
        assert time.monotonic() < end, (where, driver.execute_script(
            "return [document.getElementById('status').textContent,"
            " [...document.querySelectorAll('#maps figure.map')].map((f) => f.dataset.state)]"))
        time.sleep(0.02)
    expected = sorted(names, key=order.index)
    assert [tuple(m) for m in shown["maps"]] == [(m, "done", True) for m in expected], (where, shown)
    assert shown["error"] == "", (where, shown["error"])
    assert "refused" not in shown["status"] and "fault" not in shown["status"], (where, shown["status"])
    assert shown["steps_hidden"] == ("gradcam" not in names), (where, shown)
    assert console_errors(driver) == [], where


def test_every_method_alone_and_in_pairs_on_every_model(browser, small_store):
    from minicnn.explain import registry
    started = time.monotonic()
    with running(small_store) as server:
        browser.get(server.url)
        wait_for(browser, "document.body.dataset.busy === '0' && document.getElementById('maps').dataset.target")
        browser.execute_script("Object.assign(state.options, arguments[0])", FAST_OPTIONS)
        # sizes written one way (minicnn.inputs.preprocess.size_text), the layer hint for the input shown
        caption = browser.execute_script("return document.getElementById('input-caption').textContent")
        assert caption == "cat | dog: 64 wide x 32 high, seen by resnet20_cifar10 as 64 wide x 32 high", caption
        hint = browser.execute_script("return document.getElementById('layer-hint').textContent")
        assert hint.startswith("layer3: Sequential, 64 maps of 16 wide x 8 high "
                               "for this input of 64 wide x 32 high"), hint
        # from here a 32x32 CIFAR-10 test image: half the pixels of cat|dog, fewer occlusion positions
        browser.execute_script("chooseSample(state.samples.find((s) => s.group === 'CIFAR-10 test'))")
        wait_for(browser, "document.body.dataset.busy === '0' && "
                          "document.getElementById('input-caption').textContent.includes('32 wide x 32 high, seen')")
        order = list(registry.METHODS)
        models = browser.execute_script("return state.models.map((m) => [m.name, Object.keys(m.unavailable)])")
        assert sorted(name for name, _ in models) == sorted(small_store.names)
        for name, unavailable in models:
            browser.execute_script("const s = document.getElementById('model'); s.value = arguments[0];"
                                   "s.dispatchEvent(new Event('change'));", name)
            if name in LAYER:
                browser.execute_script("const s = document.getElementById('layer'); s.value = arguments[0];"
                                       "s.dispatchEvent(new Event('change'));", LAYER[name])
            check_shown(browser, ["gradcam"], order, f"{name}: after choosing it")
            layered = browser.execute_script(
                "return state.methods.filter((m) => usesLayer(m)).map((m) => m.name)")
            usable = [m for m in order if m not in unavailable]
            assert unavailable == (["cam"] if name == "vgg_cifar10" else []), (name, unavailable)
            L = [m for m in usable if m in layered]
            F = [m for m in usable if m not in layered]
            pairs = [(L[i % len(L)], F[i % len(F)]) for i in range(max(len(L), len(F)))]
            pairs += [(L[i], L[(i + 1) % len(L)]) for i in range(len(L))]
            pairs += [(F[i], F[(i + 1) % len(F)]) for i in range(len(F))]
            for m in usable:
                tick_only(browser, [m])
                check_shown(browser, [m], order, f"{name}: {m} alone")
            for pair in pairs:
                tick_only(browser, list(pair))
                check_shown(browser, list(pair), order, f"{name}: {pair}")
            # a layer move recomputes the layer method only: occlusion's answer is reused
            tick_only(browser, ["occlusion", "gradcam"])
            check_shown(browser, ["occlusion", "gradcam"], order, f"{name}: occlusion and gradcam")
            before = browser.execute_script("return state.requests")
            browser.execute_script("const s = document.getElementById('layer-slider');"
                                   "s.value = String(Number(s.value) + 1); s.dispatchEvent(new Event('input'));")
            wait_for(browser, f"state.requests > {before}", timeout=10)
            check_shown(browser, ["occlusion", "gradcam"], order, f"{name}: after a layer move")
            assert browser.execute_script("return state.requests") == before + 1, name
            # a class chosen while occlusion computes abandons (aborts) its request for the old class
            aborted = browser.execute_script("return state.aborted")
            browser.execute_script("""
                const t = document.getElementById('target');
                t.value = t.options[2].value; t.dispatchEvent(new Event('change'));
                t.value = t.options[3].value; t.dispatchEvent(new Event('change'));""")
            check_shown(browser, ["occlusion", "gradcam"], order, f"{name}: after two classes")
            assert browser.execute_script("return state.aborted") >= aborted + 2, name
            target = browser.execute_script("return document.getElementById('target').value")
            assert browser.execute_script("return document.getElementById('maps').dataset.target") == target
            tick_only(browser, ["gradcam"])
    print(f"every method alone and in pairs on {len(models)} models: {time.monotonic() - started:.1f} s")


def test_a_refusal_and_a_fault_in_the_page_are_told_apart(browser, store):
    """The server refusing a request says so with its message; a fault in the page's own drawing says that."""
    with running(store) as server:
        browser.get(server.url)
        wait_for(browser, "document.body.dataset.busy === '0' && document.getElementById('maps').dataset.target")
        banner = "const e = document.getElementById('error'); return e.hidden ? '' : e.textContent"
        status = "return document.getElementById('status').textContent"
        browser.execute_script("state.options.saliency = {bogus: '1'}")            # the server answers 400
        tick_only(browser, ["saliency"])
        wait_for(browser, "!document.getElementById('error').hidden")
        assert browser.execute_script(banner).startswith(
            "the server refused Saliency |dy/dx| (HTTP 400): unknown query parameter 'bogus'")
        assert browser.execute_script(status) == "the server refused Saliency |dy/dx|"
        browser.execute_script("state.options = {}; window.drawPicture = () => { throw new Error('boom'); }")
        tick_only(browser, ["occlusion"])
        wait_for(browser, "document.body.dataset.busy === '0' && "
                          "document.getElementById('error').textContent.includes('boom')")
        assert browser.execute_script(banner) == "a fault in this page's own code (not a refusal by the server): boom"
        assert "refused" not in browser.execute_script(status)
        assert any("boom" in line for line in console_errors(browser))


# ---------------------------------------------------------------- what the network would draw; attack this image

def drawn(driver, selector: str) -> bool:
    """Whether the canvas at ``selector`` has any pixel drawn."""
    return driver.execute_script("""
        const c = document.querySelector(arguments[0]);
        if (!c || !c.width) return false;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
        return false;""", selector)


def test_the_class_visualisation_and_the_attack_button_show_their_images_and_maps(browser, store, tmp_path):
    from selenium.webdriver.common.keys import Keys
    with running(store) as server:
        browser.get(server.url)
        wait_for(browser, "document.body.dataset.busy === '0' && document.getElementById('maps').dataset.target")
        explained = browser.execute_script("return document.getElementById('maps').dataset.target")
        tick_only(browser, ["gradcam", "guided-backprop"])
        check_shown(browser, ["gradcam", "guided-backprop"], ["gradcam", "guided-backprop"], "before the attack")
        # the class visualisation of the class explained above, 8 steps
        browser.execute_script("document.getElementById('vis-steps').value = '8'")
        browser.find_element("id", "vis-go").click()
        wait_for(browser, "document.getElementById('visualise').dataset.state === 'done'", timeout=60)
        about = browser.execute_script("return document.getElementById('vis-about').textContent")
        assert about.startswith(f"what the network would draw for '{explained}': gradient ascent on the input"), about
        assert "8 steps, Fourier parameterisation" in about and drawn(browser, "#vis-canvas")
        assert drawn(browser, "#vis-curve")
        # again, from the keyboard: the same question is answered from the server's cache
        button = browser.find_element("id", "vis-go")
        button.send_keys(Keys.ENTER)
        wait_for(browser, "document.getElementById('vis-status').textContent.includes(\"from the server's cache\")",
                 timeout=30)
        # attack this image: the adversarial image, the predictions before and after, two maps per method
        browser.find_element("id", "atk-go").click()
        wait_for(browser, "document.getElementById('attack').dataset.state === 'done'", timeout=60)
        for canvas in ("#atk-original", "#atk-adversarial", "#atk-difference"):
            assert drawn(browser, canvas), canvas
        figures = browser.execute_script("""
            return [...document.querySelectorAll('#atk-maps figure.map')].map((f) =>
              [f.dataset.method, [...f.querySelectorAll('figure[data-role]')].map((g) => g.dataset.role)]);""")
        assert figures == [["gradcam", ["true", "adversarial"]], ["guided-backprop", ["true", "adversarial"]]]
        for canvas in browser.execute_script(
                "return [...document.querySelectorAll('#atk-maps canvas')].map((c) => c.dataset.key)"):
            assert drawn(browser, f'#atk-maps canvas[data-key="{canvas}"]'), canvas
        assert browser.execute_script("return document.querySelectorAll('#atk-before li').length") == 5
        caption = browser.execute_script("return document.getElementById('atk-adv-caption').textContent")
        assert caption.startswith("after: fooled, the network says"), caption
        assert browser.execute_script("return document.getElementById('atk-error').hidden")
        browser.save_screenshot(str(tmp_path / "attack.png"))
        assert console_errors(browser) == []
        # a refusal is one line in the panel (the browser logs the 400 itself), and the page keeps working
        browser.execute_script("document.getElementById('atk-epsilon').value = '2'")
        browser.find_element("id", "atk-go").click()
        wait_for(browser, "!document.getElementById('atk-error').hidden", timeout=30)
        error = browser.execute_script("return document.getElementById('atk-error').textContent")
        assert error.startswith("the server refused (HTTP 400): epsilon must lie in [0, 1]") and "\n" not in error
        assert browser.execute_script("return document.getElementById('error').hidden")
        assert [e for e in console_errors(browser) if "status of 400" not in e] == []
    assert (tmp_path / "attack.png").stat().st_size > 10_000
