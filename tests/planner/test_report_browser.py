"""The HTML capacity report as a reader sees it: rendered by headless Chromium (Debian's package), every
table and plot laid out, visible and inside the window's width, the at-a-glance table first; the
screenshot is kept as a test artefact (.cache/test-artifacts/capacity-plan.png)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from conftest import REPO

from . import browser
from .helpers import run_cli
from .test_plan import write_catalog, write_history

ARTIFACTS = REPO / ".cache" / "test-artifacts"


def test_every_table_and_plot_is_visible_in_a_browser(tmp_path: Path) -> None:
    history = write_history(tmp_path / "history.csv")
    catalog = write_catalog(tmp_path / "site.yml")
    page = tmp_path / "capacity-plan.html"
    code, _, err = run_cli(
        "plan", "--csv", str(history), "--catalog", str(catalog), "--format", "html", "-o", str(page)
    )
    assert code == 0, err
    source = page.read_text(encoding="utf-8")
    probe = browser.probe(page, tmp_path)
    seen = probe["seen"]
    tables = [item for item in seen if item["kind"] == "table"]
    plots = [item for item in seen if item["kind"] == "plot"]
    assert len(tables) == source.count("<table") and len(plots) == source.count("<figure>") > 0
    for item in seen:
        assert item["shown"] and item["width"] > 50 and item["height"] > 20, item
        assert item["left"] >= 0 and item["right"] <= probe["width"], item  # nothing runs off the side
    assert all(item["rows"] > 0 for item in tables)
    assert all(item["marks"] > 10 for item in plots)  # axes, history, forecast: drawn, not empty boxes
    # The first thing a reader sees: each host, now against what it needs, and why.
    assert probe["first"].startswith("At a glance: 3 hosts")
    glance = tables[0]
    assert glance["rows"] == 3
    # h2 has HDDs now, and its 1,200 IOPS need SSDs: the row says both, and why.
    assert "<tr><td>h2</td><td>8 cores, 32 GiB, 500 GiB hdd</td>" in source
    row = source.split("<tr><td>h2</td>", 1)[1].split("</tr>", 1)[0]
    assert "sata_ssd disks" in row and "change disk class hdd -&gt; sata_ssd" in row and "IOPS" in row

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "capacity-plan.png"
    height = min(int(probe["height"]) + 40, 16000)
    browser.screenshot(page, shot, height)
    shutil.copy(page, ARTIFACTS / "capacity-plan.html")
    import matplotlib.image

    pixels = np.asarray(matplotlib.image.imread(shot))
    assert pixels.shape[0] == height and pixels.shape[1] == browser.WIDTH
    ink = (pixels[..., :3] < 0.9).any(axis=-1).mean()
    assert ink > 0.02, ink  # text, tables and plots drawn: not a blank page
