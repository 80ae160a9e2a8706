"""The full plan: long CSV history + site catalog -> placement, N-1, reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from khronika_ops.planner.catalog import load_catalog
from khronika_ops.planner.place import Replica, candidate_bins, check_n_minus_1, first_fit_decreasing, place

from .helpers import run_cli

GIB = 1024**3


def write_history(path: Path, days: float = 3.0, step: int = 600) -> Path:
    rng = np.random.default_rng(3)
    t = np.arange(int(days * 86400 / step))
    daily = np.sin(2 * np.pi * t * step / 86400)
    rows = ["timestamp,metric,labels,value"]
    for i, stamp in enumerate(1_700_000_000 + t * step):
        web = 3 + 1.5 * daily[i] + rng.normal(0, 0.2)
        rows += [
            f"{stamp},khronika_container_cpu_cores,host=h1;container=web,{max(web, 0):.4f}",
            f"{stamp},khronika_container_memory_bytes,host=h1;container=web,{2.5 * GIB + 1e6 * i:.0f}",
            f"{stamp},khronika_container_cpu_cores,host=h2;container=db,{1.2 + 0.3 * daily[i]:.4f}",
            f"{stamp},khronika_container_memory_bytes,host=h2;container=db,{6 * GIB:.0f}",
            f"{stamp},khronika_module_requests_per_second,module=web,{200 + 80 * daily[i]:.2f}",
            f"{stamp},khronika_filesystem_used_bytes,host=h2;mount=/var/lib/khronika,{400 * GIB + 2 * GIB * i * step / 86400:.0f}",
            f"{stamp},khronika_disk_iops,host=h2;device=sda,{900 + 300 * daily[i]:.1f}",
        ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_catalog(path: Path) -> Path:
    catalog = {
        "hosts": [
            {"name": "h1", "cores": 8, "memory_gib": 32, "disk_gib": 500, "disk_class": "hdd"},
            {"name": "h2", "cores": 8, "memory_gib": 32, "disk_gib": 500, "disk_class": "hdd",
             "mounts": {"/var/lib/khronika": 450}},
        ],
        "modules": [
            {"name": "web", "replicas": 2, "host": "h1", "cpu_seconds_per_request": 0.02, "latency_target_seconds": 0.05},
            {"name": "db", "replicas": 1, "host": "h2"},
            {"name": "infer", "replicas": 1, "gpu_requests_per_second": 40, "gpu_vram_gib": 14},
        ],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(catalog), encoding="utf-8")
    return path


def test_full_plan_json(tmp_path: Path) -> None:
    history = write_history(tmp_path / "history.csv")
    catalog = write_catalog(tmp_path / "site.yml")
    code, out, err = run_cli(
        "plan", "--csv", str(history), "--catalog", str(catalog), "--format", "json", "--horizon", "30d"
    )
    assert code == 0, err
    plan = json.loads(out)
    web = next(m for m in plan["modules"] if m["name"] == "web")
    assert "Erlang C" in web["reasons"]["cpu"]  # 200-280 req/s x 20 ms needs more than the percentile size
    infer = next(m for m in plan["modules"] if m["name"] == "infer")
    assert infer["gpu_model"] is not None and infer["gpus_per_replica"] >= 1
    assert plan["placement"]["solver"] == "cp-sat"
    assert set(plan["placement"]["assignment"]) == {"web#0", "web#1", "db#0", "infer#0"}
    h2 = next(h for h in plan["hosts"] if h["name"] == "h2")
    assert h2["disk_class"] == "sata_ssd"  # 1,200 IOPS is beyond an HDD
    assert any("change disk class" in change for change in h2["changes"])
    assert plan["host_vars"]["h2"]["khronika_capacity"]["disk_class"] == "sata_ssd"
    assert any(h["new"] and h["gpus"] for h in plan["hosts"])  # the GPU module needs a bought GPU host


def test_plan_is_deterministic_and_renders_all_formats(tmp_path: Path) -> None:
    history = write_history(tmp_path / "history.csv")
    catalog = write_catalog(tmp_path / "site.yml")
    args = ("plan", "--csv", str(history), "--catalog", str(catalog), "--format", "json")
    assert run_cli(*args)[1] == run_cli(*args)[1]
    for fmt, marker in (("md", "## Inventory fragment"), ("table", "Modules"), ("html", "<svg")):
        output = tmp_path / f"plan.{fmt}"
        code, _, err = run_cli(
            "plan", "--csv", str(history), "--catalog", str(catalog), "--format", fmt, "-o", str(output)
        )
        assert code == 0, err
        assert marker in output.read_text()
    page = (tmp_path / "plan.html").read_text()
    assert "<th>Module</th>" in page and "<td class='CRITICAL'>CRITICAL</td>" in page  # real tables
    assert "<pre>" in page and "khronika_capacity:" in page  # the host_vars fragment stays verbatim


def test_the_reports_show_the_sizing_rule_and_its_target(tmp_path: Path) -> None:
    history = write_history(tmp_path / "history.csv")
    catalog = write_catalog(tmp_path / "site.yml")
    base = ("plan", "--csv", str(history), "--catalog", str(catalog))
    code, out, err = run_cli(*base, "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["target_under"] == 0.01 and "own history" in plan["sizing"]
    code, out, err = run_cli(*base, "--format", "json", "--target-under", "0.5%")
    assert code == 0, err
    stricter = json.loads(out)
    assert stricter["target_under"] == 0.005 and "0.50%" in stricter["sizing"]
    web = next(m for m in stricter["modules"] if m["name"] == "web")
    assert any("0.50% under-provisioning target" in figure["method"] for figure in web["figures"])
    code, _, err = run_cli(*base, "--format", "html,md", "-o", str(tmp_path / "reports"))
    assert code == 0, err
    page = (tmp_path / "reports" / "capacity-plan.html").read_text()
    assert "horizon 90 days, at most 1.00% of samples above each size</h2>" in page
    markdown = (tmp_path / "reports" / "capacity-plan.md").read_text()
    assert "- Sizing: CPU, memory and request rates calibrated on each series' own history" in markdown
    code, _, err = run_cli(*base, "--format", "json", "--target-under", "none")
    assert code != 0 and "--target-under" in err and "a percentage above 0 and below 50" in err


def test_plan_needs_a_source() -> None:
    code, _, err = run_cli("plan", "--format", "json")
    assert code != 0 and "--prometheus" in err


def _replicas(count: int, cores: float, memory: float, module: str = "m") -> list[Replica]:
    return [Replica(module=f"{module}{i}", index=0, cores=cores, memory_gib=memory) for i in range(count)]


def test_exact_packing_beats_or_matches_ffd_and_respects_anti_affinity(tmp_path: Path) -> None:
    catalog = load_catalog(None)
    replicas = _replicas(6, 5, 10) + [Replica(module="ha", index=i, cores=1, memory_gib=1) for i in range(3)]
    exact = place(replicas, catalog)
    greedy = first_fit_decreasing(replicas, candidate_bins(catalog))
    assert exact.solver == "cp-sat" and exact.cost <= greedy.cost
    ha_hosts = {exact.assignment[f"ha#{i}"] for i in range(3)}
    assert len(ha_hosts) == 3


def test_large_inputs_fall_back_to_ffd() -> None:
    catalog = load_catalog(None)
    result = place(_replicas(40, 1, 1), catalog, exact_limit=10)
    assert result.solver == "first-fit-decreasing" and not result.unplaced


def test_n_minus_1_detects_a_host_that_cannot_be_drained() -> None:
    catalog = load_catalog(None).model_copy(
        update={"max_new_hosts_per_shape": 1, "host_shapes": load_catalog(None).host_shapes[:1]}
    )
    replicas = _replicas(1, 7, 10)
    placement = place(replicas, catalog)
    checks = check_n_minus_1(replicas, placement, catalog)
    assert checks and not checks[0].holds


def write_exporter_export(path: Path, days: float = 3.0, step: int = 300) -> Path:
    """A wide CSV as Prometheus/Grafana exports write it: exporter names, labels in the headers,
    counters as raw totals. h1 runs at a known 1.5 Gbit/s on eth0 against a 1 Gbit/s NIC."""
    t = np.arange(int(days * 86400 / step)) * step
    columns = {
        'node_cpu_seconds_total{instance="h1:9100",cpu="0",mode="user"}': 0.6 * t,
        'node_cpu_seconds_total{instance="h1:9100",cpu="0",mode="idle"}': 0.4 * t,
        'node_cpu_seconds_total{instance="h1:9100",cpu="1",mode="system"}': 0.5 * t,
        'node_network_receive_bytes_total{instance="h1:9100",device="eth0"}': 1.5e9 / 8 * t,
        'node_network_receive_bytes_total{instance="h1:9100",device="veth1a2b"}': 1.5e9 / 8 * t,
        'node_disk_reads_completed_total{instance="h1:9100",device="sda"}': 40.0 * t,
        'node_disk_writes_completed_total{instance="h1:9100",device="sda"}': 10.0 * t,
        'node_disk_written_bytes_total{instance="h1:9100",device="sda"}': 2e6 * t,
        'node_filesystem_size_bytes{instance="h1:9100",mountpoint="/srv",fstype="xfs"}': np.full(t.size, 100.0 * GIB),
        'node_filesystem_free_bytes{instance="h1:9100",mountpoint="/srv",fstype="xfs"}': 60.0 * GIB - t * (GIB / 86400),
        'container_cpu_usage_seconds_total{instance="h1:8080",name="web"}': 2.0 * t,
        'container_memory_working_set_bytes{instance="h1:8080",name="web"}': np.full(t.size, 3.0 * GIB),
        'DCGM_FI_DEV_GPU_UTIL{instance="h1:9400",gpu="0",modelName="NVIDIA L4"}': np.full(t.size, 80.0),
        'DCGM_FI_DEV_FB_USED{instance="h1:9400",gpu="0",modelName="NVIDIA L4"}': np.full(t.size, 22.0 * 1024),
    }  # fmt: skip
    header = "timestamp," + ",".join('"' + name.replace('"', '""') + '"' for name in columns)
    rows = [header] + [
        f"{1_700_000_000 + stamp}," + ",".join(f"{values[i]:.1f}" for values in columns.values())
        for i, stamp in enumerate(t)
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_plan_from_an_exporter_export(tmp_path: Path) -> None:
    history = write_exporter_export(tmp_path / "export.csv")
    catalog = tmp_path / "site.yml"
    site = {
        "hosts": [
            {"name": "h1", "cores": 4, "memory_gib": 16, "disk_gib": 100, "nic_gbps": 1, "disk_class": "hdd",
             "gpus": 1, "gpu_model": "nvidia-l4", "mounts": {"/srv": 100}},
        ],
        "modules": [
            {"name": "web", "host": "h1"},
            {"name": "infer", "host": "h1", "gpu_requests_per_second": 40, "gpu_vram_gib": 14},
        ],
    }  # fmt: skip
    catalog.write_text(yaml.safe_dump(site), encoding="utf-8")
    code, out, err = run_cli("plan", "--csv", str(history), "--catalog", str(catalog), "--format", "json")
    assert code == 0, err
    plan = json.loads(out)
    web = next(m for m in plan["modules"] if m["name"] == "web")
    cpu = next(f for f in web["figures"] if f["series"].startswith("khronika_container_cpu_cores"))
    assert cpu["demand"]["max"] == pytest.approx(2.0, rel=1e-5)  # rate of container_cpu_usage_seconds_total
    memory = next(f for f in web["figures"] if f["series"].startswith("khronika_container_memory_bytes"))
    assert memory["observed"]["max"] == pytest.approx(3.0 * GIB, rel=1e-5)
    h1 = next(h for h in plan["hosts"] if h["name"] == "h1")
    # 1.5 Gbit/s on eth0 (the veth copy left out) exceeds 70 % of the 1 Gbit/s NIC.
    assert "p99 1.5 Gbit/s" in h1["network_reason"] and h1["network_over_limit"]
    assert any(change.startswith("network:") for change in h1["changes"])
    # Traffic is sized as what it is, not as requests.
    assert (h1["network"]["resource"], h1["network"]["method"].split(":")[0]) == ("network", "network")
    io = {figure["resource"]: figure for figure in h1["disk_io"]}
    assert set(io) == {"disk_iops", "disk_throughput"}
    assert io["disk_iops"]["demand"]["max"] == pytest.approx(50.0, rel=1e-5)  # reads + writes per second
    assert io["disk_throughput"]["demand"]["max"] == pytest.approx(2e6, rel=1e-5)
    assert h1["disk_class"] == "hdd" and "hdd" in h1["disk_class_reason"]  # 50 IOPS: a disk spins
    assert h1["downtime"] == "host stop (NIC change)"
    srv = next(d for d in h1["disk"] if d["extra"]["mount"] == "/srv")
    assert srv["observed"]["max"] > 40 * GIB  # used = size - free, growing by 1 GiB a day
    assert h1["gpu_observed"]["utilisation_max"] == 0.8
    assert h1["gpu_observed"]["memory_used_gib_max"] == pytest.approx(22.0, rel=1e-5)
    infer = next(m for m in plan["modules"] if m["name"] == "infer")
    assert "on h1 observed" in infer["reasons"]["gpu"]
    assert "WARNING: observed VRAM use 22.0 GiB" in infer["reasons"]["gpu"]  # an L4 holds 24 / 1.2 = 20


def test_bad_series_header_names_the_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('timestamp,"node_cpu_seconds_total{mode=idle}"\n1,2\n', encoding="utf-8")
    code, _, err = run_cli("plan", "--csv", str(path), "--format", "json")
    assert code == 2
    assert "bad.csv, line 1" in err and "node_cpu_seconds_total{mode=idle}" in err


def test_an_unusable_series_is_a_warning_not_a_failed_plan(tmp_path: Path) -> None:
    history = write_history(tmp_path / "history.csv")
    empty = tmp_path / "idle.csv"
    empty.write_text(
        "timestamp,metric,labels,value\n"
        "1700000000,khronika_module_request_duration_seconds,module=web,nan\n"
        "1700000600,khronika_module_request_duration_seconds,module=web,nan\n",
        encoding="utf-8",
    )
    code, out, err = run_cli("plan", "--csv", str(history), "--csv", str(empty), "--format", "json")
    assert code == 0, err
    warnings = json.loads(out)["warnings"]
    assert any("khronika_module_request_duration_seconds" in w and "no numeric values" in w for w in warnings)
    code, _, err = run_cli("plan", "--csv", str(empty), "--format", "json")
    assert code == 2 and "no usable series" in err


def test_table_prints_warnings_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # a report file carries no colour codes even then
    history = write_exporter_export(tmp_path / "export.csv", days=2.0)
    catalog = tmp_path / "site.yml"
    site = {
        "hosts": [{"name": "h1", "cores": 4, "memory_gib": 16, "disk_gib": 100}],
        "modules": [{"name": "web", "host": "h1"}],
        "notes": ["h9: [red]unreachable[/] (no facts)"],
    }
    catalog.write_text(yaml.safe_dump(site), encoding="utf-8")
    report = tmp_path / "plan.txt"
    code, _, err = run_cli(
        "plan", "--csv", str(history), "--catalog", str(catalog), "--format", "table", "-o", str(report)
    )
    assert code == 0, err
    text = report.read_text(encoding="utf-8")
    assert "warning: h9: [red]unreachable[/] (no facts)" in text
    assert "\x1b[" not in text
