"""daemon.json layering and validation (khronika_ops.docker_config)."""

from __future__ import annotations

import pytest

from khronika_ops import docker_config

ROLE = docker_config.ROLE_LAYER


def test_later_layer_wins_and_conflict_is_reported():
    result = docker_config.merge_layers(
        [
            (ROLE, {"log-driver": "json-file", "log-opts": {"max-size": "50m", "max-file": "5"}}),
            ("docker_daemon_json_host", {"log-opts": {"max-file": "3"}}),
        ]
    )
    assert result.config == {"log-driver": "json-file", "log-opts": {"max-size": "50m", "max-file": "3"}}
    assert result.conflicts == [
        "log-opts.max-file: docker_daemon_json_host sets '3', replacing '5' from role settings"
    ]


def test_contribution_survives_user_layers():
    result = docker_config.merge_layers(
        [
            (ROLE, {"live-restore": True}),
            ("contribution nvidia.json", {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}),
            ("docker_daemon_json_group", {"runtimes": {"crun": {"path": "/usr/bin/crun"}}}),
            ("docker_daemon_json_host", {"default-runtime": "nvidia"}),
        ]
    )
    assert set(result.config["runtimes"]) == {"nvidia", "crun"}
    assert result.config["default-runtime"] == "nvidia"
    assert docker_config.validate(result.config) == []


def test_lists_are_unioned_in_order():
    result = docker_config.merge_layers(
        [
            (ROLE, {"insecure-registries": ["a:5000"]}),
            ("group", {"insecure-registries": ["b:5000", "a:5000"]}),
        ]
    )
    assert result.config["insecure-registries"] == ["a:5000", "b:5000"]
    assert result.sources["insecure-registries"] == f"{ROLE}+group"


def test_empty_values_leave_dockerd_defaults():
    result = docker_config.merge_layers(
        [(ROLE, {"data-root": "", "log-opts": {}, "x": None}), ("host", None)]
    )
    assert result.config == {"log-opts": {}}


def test_layers_do_not_share_state():
    layer = {"log-opts": {"max-size": "1m"}}
    docker_config.merge_layers([(ROLE, layer), ("host", {"log-opts": {"max-size": "2m"}})])
    assert layer == {"log-opts": {"max-size": "1m"}}


def test_non_mapping_layer_is_refused():
    with pytest.raises(TypeError, match="docker_daemon_json_host"):
        docker_config.merge_layers([("docker_daemon_json_host", ["not", "a", "dict"])])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"log-driver": "jsonfile"}, "log-driver: unknown log driver 'jsonfile'"),
        ({"log-opts": {"max-size": "ten"}}, "log-opts.max-size: 'ten' is not a size"),
        ({"log-opts": {"max-file": 5}}, "log-opts.max-file: dockerd only accepts strings"),
        ({"log-opts": {"max-file": "0"}}, "log-opts.max-file: '0' must be a positive whole number"),
        ({"registry-mirrors": ["mirror.example.org"]}, "needs a scheme"),
        ({"insecure-registries": ["http://r:5000"]}, "without a scheme"),
        ({"default-address-pools": [{"base": "10.0.0.1/16", "size": 24}]}, "default-address-pools[0].base"),
        ({"default-address-pools": [{"base": "10.0.0.0/16", "size": 8}]}, "default-address-pools[0].size"),
        (
            {
                "default-address-pools": [
                    {"base": "10.0.0.0/16", "size": 24},
                    {"base": "10.0.0.0/8", "size": 24},
                ]
            },
            "overlaps",
        ),
        ({"bip": "10.200.0.0/24"}, "bip: '10.200.0.0/24' must be the bridge address"),
        ({"bip": "10.200.0.1"}, "bip: '10.200.0.1' must be the bridge address"),
        ({"data-root": "var/lib/docker"}, "data-root: 'var/lib/docker' must be an absolute path"),
        ({"live-restore": "yes"}, "live-restore: must be true or false"),
        ({"default-runtime": "nvidia"}, "default-runtime: 'nvidia' is not defined"),
    ],
)
def test_validation_names_the_key(config, fragment):
    errors = docker_config.validate(config)
    assert any(fragment in error for error in errors), errors


def test_plugin_log_driver_is_accepted():
    assert docker_config.validate({"log-driver": "loki:latest"}) == []


def test_errors_name_the_variable_that_set_the_key():
    result = docker_config.merge_layers(
        [
            (ROLE, {"log-driver": "bogus", "log-opts": {"max-size": "ten"}}),
            ("docker_daemon_json_group", {"data-root": "relative"}),
        ]
    )
    explained = docker_config.explain_errors(result)
    assert any(e.startswith("docker_log_driver → log-driver") for e in explained), explained
    assert any(e.startswith("docker_log_max_size → log-opts.max-size") for e in explained), explained
    assert any(e.startswith("docker_daemon_json_group → data-root") for e in explained), explained
