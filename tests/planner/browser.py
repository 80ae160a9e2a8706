"""Headless Chromium (Debian's package) on an HTML report: what a reader's browser lays out, probed from
inside the page (every table and plot: its box, whether it shows, what it draws), and a screenshot."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from conftest import require_service

WIDTH = 1280
# Runs where the page's last element is: every table and plot, its box, its style and what it draws.
_PROBE = """<script>
(() => {
  const seen = [];
  const look = (element, kind) => {
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    seen.push({kind, left: box.left, right: box.right, width: box.width, height: box.height,
               shown: style.display !== "none" && style.visibility !== "hidden" && Number(style.opacity) > 0,
               rows: element.querySelectorAll("tbody tr").length, marks: element.querySelectorAll("path").length,
               heading: (element.closest("figure") ? element.closest("figure").innerText :
                         (element.previousElementSibling || {}).innerText || "").slice(0, 120)});
  };
  document.querySelectorAll("table").forEach((t) => look(t, "table"));
  document.querySelectorAll("figure svg").forEach((s) => look(s, "plot"));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({width: window.innerWidth, height: document.documentElement.scrollHeight,
                                    first: document.body.firstElementChild.innerText, seen});
  document.body.appendChild(out);
})();
</script>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    require_service(
        found is not None, "headless Chromium (Debian package chromium; scripts/setup.sh installs it)"
    )
    assert found is not None
    return found


def _browser(*args: str) -> subprocess.CompletedProcess[str]:
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def probe(page: Path, work: Path) -> dict[str, Any]:
    """The page as Chromium lays it out at WIDTH: {width, height, first (the first element's text), seen}."""
    probed = work / ("probed-" + page.name)
    probed.write_text(
        page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8"
    )
    dumped = _browser(
        f"--window-size={WIDTH},900", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()
    )
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    match = re.search(r'<pre id="probe">(.*?)</pre>', dumped.stdout, re.DOTALL)
    assert match, dumped.stdout[-2000:]
    found: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return found


def screenshot(page: Path, shot: Path, height: int) -> None:
    taken = _browser(f"--window-size={WIDTH},{height}", f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
