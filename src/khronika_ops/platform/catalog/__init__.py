"""The module catalog: which modules a site runs, where, and how; validated and resolved into the
deployment the `platform` and `gateway` roles carry out.

An inventory's catalog is the list `khronika_modules` (e.g. `group_vars/all/khronika_modules.yml`).
`resolve_deployment` reads it (`schema`), checks every rule a schema cannot express against the
inventory and the release (`rules`: ports on one host, GPUs, dependencies, placement, the release
having every enabled module) and returns the `DeployPlan` (`deployment`, made by `resolve`), or a
CatalogError with every problem found, each located by module and field.
"""

from khronika_ops.platform.catalog.deployment import (
    DeployPlan,
    GatewayRoute,
    HostDeployment,
    PlannedContainer,
)
from khronika_ops.platform.catalog.inventory import Inventory, InventoryHost
from khronika_ops.platform.catalog.resolve import resolve_deployment, update_strategies, volume_docker_name
from khronika_ops.platform.catalog.rules import DependencyCheck, check_dependencies, find_cycles
from khronika_ops.platform.catalog.schema import (
    CATALOG_KEY,
    CatalogError,
    CatalogModule,
    catalog_entries,
    load_yaml_file,
    parse_modules,
)

__all__ = [
    "CATALOG_KEY",
    "CatalogError",
    "CatalogModule",
    "DependencyCheck",
    "DeployPlan",
    "GatewayRoute",
    "HostDeployment",
    "Inventory",
    "InventoryHost",
    "PlannedContainer",
    "catalog_entries",
    "check_dependencies",
    "find_cycles",
    "load_yaml_file",
    "parse_modules",
    "resolve_deployment",
    "update_strategies",
    "volume_docker_name",
]
