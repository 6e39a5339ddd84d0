"""The explorer in a real browser: headless Chromium (Debian's chromium and chromium-driver) through Selenium.

Loads the page from a test server, picks the cat|dog sample, explains 'cat'
and then 'dog', and reads the Grad-CAM overlay back from the page's canvas:
its hot (red) half must move from the left to the right. Nothing is
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
