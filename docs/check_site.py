#!/usr/bin/env python3
"""Check the built book in headless Chromium: every page loads cleanly and the site is self-contained.

    python docs/check_site.py [docs/_build/html]

The site is served on 127.0.0.1 (a free port) and every HTML page of it is opened in headless
Chromium (Debian's chromium and chromium-driver, through Selenium; Selenium Manager is never
asked). On every page:

- no console message of level SEVERE (a JavaScript error, a file that failed to load);
- every ``<img>`` has loaded (``naturalWidth > 0``), lazy images included;
- every link into the site names a file that exists, and its ``#fragment`` an id in that file;
- every resource the page requested (``performance`` resource entries, and every ``src``/``href``
  of a script, stylesheet, image or frame in the page) comes from the site itself;
- on the lesson pages (``learn/NN_*.html``) and every page with math, MathJax has typeset it
  (``mjx-container`` elements present once ``MathJax.startup.promise`` resolved).

Exits 0 when all pages pass, 1 with one line per failure otherwise, and 0 with a line saying
why when Chromium, its driver or Selenium is missing (like the browser test of the explorer).
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = ("_static", "_sources", "_downloads", "_images", "_modules")


def missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "Selenium is not installed (pip install -e '.[browser]')"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")) or not shutil.which("chromedriver"):
        return "Chromium or its driver is not installed (apt-get install chromium chromium-driver)"
    return None


def pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if not any(part in SKIP_DIRS for part in p.relative_to(site).parts))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(site: Path):
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


@functools.cache
def ids_in(path: Path) -> frozenset[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return frozenset(re.findall(r'\b(?:id|name)="([^"]+)"', text))


def target_file(site: Path, origin: str, url: str) -> Path | None:
    """The file a same-origin URL names (a folder means its index.html), or None."""
    path = unquote(urlparse(url).path)
    file = site / path.lstrip("/")
    if path.endswith("/") or file.is_dir():
        file = file / "index.html"
    return file if file.is_file() else None


#: Everything a page needs from the browser, read once MathJax (if any) has finished.
PROBE = """
const done = arguments[arguments.length - 1];
(async () => {
  for (const img of document.images) { img.loading = "eager"; }
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const math = document.querySelectorAll(".math, span.math, div.math").length;
  done({
    images: [...document.images].map(img => [img.currentSrc || img.src, img.naturalWidth]),
    links: [...document.querySelectorAll("a[href]")].map(a => a.href),
    requested: performance.getEntriesByType("resource").map(e => e.name),
    referenced: [...document.querySelectorAll("script[src], link[href], img[src], iframe[src], source[src]")]
                  .map(e => e.src || e.href),
    mathSource: math,
    mathTypeset: document.querySelectorAll("mjx-container").length,
  });
})();
"""


def check(site: Path) -> list[str]:
    server = serve(site)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    failures: list[str] = []
    driver = browser()
    try:
        for page in pages(site):
            rel = page.relative_to(site).as_posix()
            url = f"{origin}/{rel}"
            driver.get(url)
            facts = driver.execute_async_script(PROBE)
            for entry in driver.get_log("browser"):
                if entry.get("level") == "SEVERE":
                    failures.append(f"{rel}: console error: {entry.get('message', '')[:200]}")
            for src, width in facts["images"]:
                if not width:
                    failures.append(f"{rel}: image did not load: {src}")
            for resource in facts["requested"] + facts["referenced"]:
                if resource and not resource.startswith(origin + "/") and not resource.startswith("data:"):
                    failures.append(f"{rel}: requested from outside the site: {resource[:200]}")
            for link in set(facts["links"]):
                if not link.startswith(origin + "/"):
                    continue                               # a link out (not a request) or mailto:
                base, fragment = urldefrag(link)
                target = target_file(site, origin, base)
                if target is None:
                    failures.append(f"{rel}: broken link: {link[len(origin):]}")
                elif fragment and target.suffix == ".html" and unquote(fragment) not in ids_in(target):
                    failures.append(f"{rel}: link to a missing anchor: {link[len(origin):]}")
            is_lesson = re.fullmatch(r"learn/\d\d_\w+\.html", rel) is not None
            if (is_lesson or facts["mathSource"]) and not facts["mathTypeset"]:
                failures.append(f"{rel}: math was not typeset (no MathJax output on the page)")
            if is_lesson and not facts["mathSource"]:
                failures.append(f"{rel}: a lesson page without math")
            print(f"check_site: {rel}: {len(facts['images'])} images, {len(set(facts['links']))} links, "
                  f"{facts['mathTypeset']} formulas typeset", flush=True)
    finally:
        driver.quit()
        server.shutdown()
    return failures


def main(argv: list[str]) -> int:
    site = Path(argv[0]) if argv else ROOT / "docs" / "_build" / "html"
    if not (site / "index.html").is_file():
        print(f"check_site: {site} holds no built book (index.html); build it first", file=sys.stderr)
        return 1
    reason = missing()
    if reason:
        print(f"check_site: skipped: {reason}")
        return 0
    try:
        failures = check(site)
    except Exception as e:   # a Chromium that cannot start here: say why, as the browser test does
        if "session not created" in str(e) or "Chrome failed to start" in str(e):
            print(f"check_site: skipped: Chromium did not start: {str(e).splitlines()[0]}")
            return 0
        raise
    for line in failures:
        print(f"check_site: FAILED: {line}")
    n = len(pages(site))
    print(f"check_site: {n} pages checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
