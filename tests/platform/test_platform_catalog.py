"""The module catalog: every validation error names the module and the field; the plan is ordered."""

from __future__ import annotations

import pytest
import yaml
from platform_helpers import SAMPLE_CATALOG, SAMPLE_INVENTORY, digest, inventory, module, release_data

from khronika_ops.platform.catalog import (
    CatalogError,
    Inventory,
    catalog_entries,
    check_dependencies,
    find_cycles,
    parse_modules,
    resolve_deployment,
)
from khronika_ops.platform.inventory_file import load_inventory
from khronika_ops.platform.release import parse_release


def problems_of(modules, inv=None, **kwargs) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        resolve_deployment(modules, inv or inventory(), **kwargs)
    return [str(problem) for problem in caught.value.problems]


def assert_problem(problems: list[str], module_name: str, field: str, fragment: str) -> None:
    head = f"module {module_name!r}, field {field!r}: "
    assert any(p.startswith(head) and fragment in p for p in problems), problems


def test_sample_catalog_is_valid_and_ordered():
    plan = resolve_deployment(yaml.safe_load(SAMPLE_CATALOG.read_text()), load_inventory(SAMPLE_INVENTORY))
    assert plan.order == ["classifier", "appeals-api"]  # appeals-api depends on classifier
    assert plan.disabled_modules == ["classifier-gpu"]
    host = plan.hosts["app-01"]
    assert host.container_names == ["classifier-1", "appeals-api-1"]
    appeals = host.containers[1]
    assert appeals.mounts == ["khronika-appeals-api-data:/var/lib/appeals"]
    assert appeals.published_ports == ["18080:8080/tcp"]
    assert appeals.memory == f"{256 * 1024**2}b"
    assert appeals.healthcheck is not None and appeals.healthcheck.interval == "5s"
    assert appeals.secrets[0].vault_variable == "vault_appeals_api_token"
    assert [route.path_prefix for route in plan.gateway_routes] == ["/api/appeals", "/api/classify"]
    assert {(u.host, u.port) for u in plan.gateway_routes[0].upstreams} == {
        ("app-01", 18080),
        ("app-02", 18080),
    }


def test_unknown_key_names_module_and_field():
    problems = problems_of([module("api", ports=[{"container": 80, "hots": 8080}])])
    assert_problem(problems, "api", "ports[0].hots", "unknown key 'hots'")
    problems = problems_of([module("api", colour="blue")])
    assert_problem(problems, "api", "colour", "unknown key")


def test_module_without_name_is_located_by_index():
    problems = problems_of([{"image": "x/y", "placement": {"hosts": ["app-01"]}}])
    assert_problem(problems, "khronika_modules[0]", "name", "is required")


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        ("Example/API", "lowercase"),
        ("example/api:1.0", "must not carry a tag"),
        ("example/api@" + digest("x"), "must not carry a digest"),
        ("example//api", "empty path component"),
    ],
)
def test_bad_image_reference(image, fragment):
    assert_problem(problems_of([module("api", image=image)]), "api", "image", fragment)


def test_duplicate_names():
    assert_problem(problems_of([module("api"), module("api")]), "api", "name", "duplicate module name")


def test_port_clash_on_one_host():
    modules = [
        module("one", ports=[{"container": 80, "host": 8080}]),
        module("two", ports=[{"container": 81, "host": 8080}]),
    ]
    problems = problems_of(modules)
    assert_problem(problems, "two", "ports", "host port 8080/tcp on app-01 is already taken by one-1")


def test_ports_on_different_addresses_or_protocols_do_not_clash():
    modules = [
        module("one", ports=[{"container": 80, "host": 8080, "bind": "10.0.0.1"}]),
        module("two", ports=[{"container": 80, "host": 8080, "bind": "10.0.0.2"}]),
        module("three", ports=[{"container": 80, "host": 8080, "protocol": "udp"}]),
    ]
    assert resolve_deployment(modules, inventory()).hosts["app-01"].container_names == [
        "one-1",
        "three-1",
        "two-1",
    ]


def test_replicas_take_consecutive_host_ports_and_clash_with_the_next():
    modules = [
        module("api", replicas=2, ports=[{"container": 80, "host": 8080}]),
        module("web", ports=[{"container": 80, "host": 8081}]),
    ]
    assert_problem(problems_of(modules), "web", "ports", "8081/tcp on app-01 is already taken by api-2")
    plan = resolve_deployment(modules[:1], inventory())
    assert [c.published_ports for c in plan.hosts["app-01"].containers] == [["8080:80/tcp"], ["8081:80/tcp"]]


def test_gpu_module_on_host_without_gpus():
    problems = problems_of([module("ml", gpus=1, placement={"groups": ["app"]})])
    assert_problem(problems, "ml", "gpus", "placed on app-01, which has none")


def test_gpu_module_needing_more_gpus_than_the_host_has():
    problems = problems_of([module("ml", gpus=4, placement={"groups": ["gpu"]})])
    assert_problem(problems, "ml", "gpus", "needs 4 GPU(s) but gpu-01 has 2")


def test_gpu_device_ids_and_device_requests():
    plan = resolve_deployment(
        [module("ml", gpus={"device_ids": ["1"]}, placement={"hosts": ["gpu-01"]})], inventory()
    )
    assert plan.hosts["gpu-01"].containers[0].device_requests == [
        {"driver": "nvidia", "capabilities": [["gpu"]], "device_ids": ["1"]}
    ]
    problems = problems_of([module("ml", gpus={"device_ids": ["3"]}, placement={"hosts": ["gpu-01"]})])
    assert_problem(problems, "ml", "gpus.device_ids", "GPU 3 does not exist on gpu-01")
    assert_problem(problems_of([module("ml", gpus={})]), "ml", "gpus", "either count or device_ids")


def test_dependency_cycle_reports_the_path():
    modules = [
        module("a", depends_on=["b"]),
        module("b", depends_on=["c"]),
        module("c", depends_on=["a"]),
        module("d"),
    ]
    assert_problem(problems_of(modules), "a", "depends_on", "dependency cycle: a -> b -> c -> a")


def test_find_cycles_reports_each_cycle_once():
    assert find_cycles({"a": ["b"], "b": ["a"], "c": ["c"], "d": ["e"], "e": ["d"]}) == [
        ["a", "b"],
        ["d", "e"],
    ]


def test_depends_on_unknown_disabled_or_self():
    modules = [
        module("api", depends_on=["ghost", "off", "api"]),
        module("off", enabled=False),
    ]
    problems = problems_of(modules)
    assert_problem(problems, "api", "depends_on[0]", "'ghost' is not a module of the catalog")
    assert_problem(problems, "api", "depends_on[1]", "'off' is disabled")
    assert_problem(problems, "api", "depends_on[2]", "cannot depend on itself")


def test_topological_order_with_levels():
    modules = [
        module("web", depends_on=["api", "cache"]),
        module("api", depends_on=["db"]),
        module("cache"),
        module("db"),
    ]
    plan = resolve_deployment(modules, inventory())
    assert plan.order == ["cache", "db", "api", "web"]
    containers = plan.hosts["app-02"].containers
    assert [(c.module, c.level) for c in containers] == [("cache", 0), ("db", 0), ("api", 1), ("web", 2)]
    assert [c.start_order for c in containers] == [0, 1, 2, 3]


def test_placement_against_the_inventory():
    problems = problems_of([module("api", placement={"groups": ["nope"], "hosts": ["ghost-01"]})])
    assert_problem(problems, "api", "placement.groups[0]", "group 'nope' is not in the inventory")
    assert_problem(problems, "api", "placement.hosts[0]", "host 'ghost-01' is not in the inventory")
    assert_problem(problems_of([module("api", placement={})]), "api", "placement", "at least one")


def test_disabled_module_is_not_planned_and_not_checked_against_hosts():
    modules = [module("api"), module("ml", enabled=False, gpus=1, placement={"groups": ["app"]})]
    plan = resolve_deployment(modules, inventory())
    assert plan.disabled_modules == ["ml"]
    assert all(c.module == "api" for host in plan.hosts.values() for c in host.containers)


def test_rolling_needs_two_replicas():
    problems = problems_of([module("api", update="rolling", placement={"hosts": ["app-01"]})])
    assert_problem(problems, "api", "update", "at least 2 replicas")
    assert resolve_deployment([module("api", update="rolling")], inventory()).order == ["api"]


def test_secrets_are_names_of_vault_variables():
    problems = problems_of([module("api", secrets=[{"env": "TOKEN", "vault_variable": "s3cr3t-value"}])])
    assert_problem(problems, "api", "secrets[0].vault_variable", "should match pattern")
    problems = problems_of(
        [
            module(
                "api", environment={"TOKEN": "x"}, secrets=[{"env": "TOKEN", "vault_variable": "vault_token"}]
            )
        ]
    )
    assert_problem(problems, "api", "secrets", "both in environment and in secrets")


def test_volumes_backup_policy_and_mounts():
    problems = problems_of([module("api", volumes=[{"name": "data", "mount": "/d", "backup": "weekly"}])])
    assert_problem(problems, "api", "volumes[0].backup", "'none', 'before-update' or 'daily'")
    problems = problems_of([module("api", volumes=[{"name": "data", "mount": "relative"}])])
    assert_problem(problems, "api", "volumes[0].mount", "absolute path")
    problems = problems_of(
        [module("api", volumes=[{"name": "d", "mount": "/a"}, {"name": "d", "mount": "/b"}])]
    )
    assert_problem(problems, "api", "volumes", "volume 'd' is listed twice")


def test_resources_memory_units():
    plan = resolve_deployment([module("api", resources={"cpus": 0.5, "memory": "2g"})], inventory())
    assert plan.hosts["app-01"].containers[0].memory == f"{2 * 1024**3}b"
    problems = problems_of([module("api", resources={"memory": "lots"})])
    assert_problem(problems, "api", "resources.memory", "not a size")


def test_healthcheck_rules_and_docker_form():
    problems = problems_of([module("api", healthcheck={"http": "/health", "command": ["true"]})])
    assert_problem(problems, "api", "healthcheck", "either http (a path) or command")
    problems = problems_of([module("api", healthcheck={"http": "/health"})])
    assert_problem(problems, "api", "healthcheck.port", "needs a port")
    plan = resolve_deployment(
        [module("api", healthcheck={"command": ["/bin/check"], "interval": "1m30s", "timeout": "500ms"})],
        inventory(),
    )
    check = plan.hosts["app-01"].containers[0].healthcheck
    assert check is not None
    assert (check.test, check.interval, check.timeout) == (["CMD", "/bin/check"], "90s", "500ms")


def test_http_route_needs_a_published_upstream_port_and_unique_prefix():
    problems = problems_of(
        [module("api", ports=[{"container": 80}], http={"path_prefix": "/api", "upstream_port": 80})]
    )
    assert_problem(problems, "api", "http.upstream_port", "not a container port published on the host")
    modules = [
        module("a", ports=[{"container": 80, "host": 8001}], http={"path_prefix": "/x", "upstream_port": 80}),
        module("b", ports=[{"container": 80, "host": 8002}], http={"path_prefix": "/x", "upstream_port": 80}),
    ]
    assert_problem(problems_of(modules), "b", "http.path_prefix", "already routed to a")


def test_min_host_resources_checked_when_the_inventory_knows_them():
    inv = inventory(**{"app-01": {"cores": 2, "memory": "4g"}})
    problems = problems_of([module("api", min_host={"cores": 4, "memory": "8g"})], inv)
    assert_problem(problems, "api", "min_host.cores", "needs 4 cores but app-01 has 2 cores")
    assert_problem(problems, "api", "min_host.memory", "needs 8g but app-01 has 4g")
    assert not any("app-02" in p for p in problems)  # unknown resources: the role's preflight checks facts


def test_release_pins_digests_and_registry_is_prefixed():
    release = parse_release(release_data(api=digest("api")))
    plan = resolve_deployment(
        [module("api", image=None)], inventory(), release=release, default_registry="registry.test:5000"
    )
    assert plan.hosts["app-01"].containers[0].image == f"registry.test:5000/example/api@{digest('api')}"
    plan = resolve_deployment([module("api", image="mirror.example.org/x/api")], inventory(), release=release)
    assert plan.hosts["app-01"].containers[0].image == f"mirror.example.org/x/api@{digest('api')}"
    assert plan.release is not None and plan.release.version == "1.0.0"


def test_enabled_module_missing_from_release():
    release = parse_release(release_data(api=digest("api")))
    problems = problems_of([module("api"), module("extra")], release=release)
    assert_problem(problems, "extra", "name", "release 1.0.0 has no image for it")


def test_release_minimum_resources_checked():
    data = release_data(api=digest("api"))
    data["modules"][0]["min_resources"] = {"memory": "16g"}
    inv = inventory(**{"app-01": {"memory": "8g"}})
    problems = problems_of([module("api")], inv, release=parse_release(data))
    assert_problem(problems, "api", "release.min_resources.memory", "needs 16g but app-01 has 8g")


def test_every_problem_is_reported_at_once():
    modules = [
        module("a", depends_on=["b"]),
        module("b", depends_on=["a"]),
        module("c", image="C/X"),
        module("c"),
    ]
    problems = problems_of(modules)
    assert len(problems) == 3, problems


def test_catalog_file_forms():
    assert catalog_entries({"khronika_modules": [], "other": 1}) == []
    assert catalog_entries([{"name": "x"}]) == [{"name": "x"}]
    with pytest.raises(CatalogError, match="no 'khronika_modules' list"):
        catalog_entries({"modules": []})


def test_inventory_from_an_ansible_inventory(tmp_path):
    (tmp_path / "group_vars" / "gpu").mkdir(parents=True)
    (tmp_path / "group_vars" / "gpu" / "main.yml").write_text("---\nkhronika_gpu_expected_count: 2\n")
    (tmp_path / "hosts.yml").write_text(
        "---\nall:\n  children:\n    app:\n      hosts:\n        app-01:\n    gpu:\n      hosts:\n        gpu-01:\n"
    )
    loaded = load_inventory(tmp_path / "hosts.yml")
    assert loaded.hosts["gpu-01"].gpus == 2 and loaded.hosts["app-01"].gpus == 0
    assert "app" in loaded.hosts["app-01"].groups


def test_inventory_plain_form():
    loaded = Inventory.from_mapping({"hosts": {"h1": {"groups": ["g"], "gpus": 1, "memory": "1g"}}})
    assert loaded.hosts["h1"].gpus == 1 and loaded.hosts["h1"].memory == 1024**3
    assert loaded.groups == {"all", "g"}


def test_dependency_cycles_are_data():
    """Cycles come back as lists of module names, not as text to search for: a dependency whose
    name reads "dependency cycle" is an unknown module, and the rest stays ordered."""
    entries = [
        module("a", depends_on=["b"]),
        module("b", depends_on=["a"]),
        module("c", depends_on=["dependency cycle"]),
    ]
    modules, _ = parse_modules(entries)
    check = check_dependencies({m.name: m for m in modules}, entries)
    assert check.cycles == [["a", "b"]] and not check.acyclic
    only_unknown = check_dependencies({m.name: m for m in modules[2:]}, entries[2:])
    assert only_unknown.cycles == [] and only_unknown.acyclic
    assert [str(p) for p in only_unknown.problems] == [
        "module 'c', field 'depends_on[0]': 'dependency cycle' is not a module of the catalog"
    ]


def test_a_data_check_asks_a_published_port() -> None:
    from khronika_ops.platform.catalog import CatalogError, resolve_deployment
    from khronika_ops.platform.inventory_file import inventory_from_ansible

    inventory = inventory_from_ansible({"all": ["app1"], "khronika_platform": ["app1"]}, {})
    module = {
        "name": "appeals-api",
        "image": "khronika-samples/appeals-api",
        "placement": {"hosts": ["app1"]},
        "ports": [{"container": 8080, "host": 18080}],
        "http": {"path_prefix": "/api/appeals", "upstream_port": 8080},
        "data_check": {"create": "/appeals", "body": {"text": "check"}},
    }
    plan = resolve_deployment([module], inventory)
    [container] = plan.hosts["app1"].containers
    assert container.data_check is not None and container.data_check.port == 18080
    assert container.data_check.location_field == "location"
    with pytest.raises(CatalogError, match="asks container port 9000, which is not published"):
        resolve_deployment([module | {"data_check": module["data_check"] | {"port": 9000}}], inventory)
