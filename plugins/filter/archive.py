"""Filters of khronika.platform for playbooks/install-offline.yml: thin adapters over khronika_ops.archive.

khronika_archive_load(images, manifest)
    -> [{name, image_id}]: for each image a plan runs from the archive (khronika_image_source archive),
       the image ID the archive's images.tar loads for it; AnsibleFilterError names any the archive lacks.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from khronika_ops.ansible_data import plain
    from khronika_ops.lazy import lazy
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    raise AnsibleFilterError(
        "khronika.platform needs the Python package khronika-ops on the controller: pip install khronika-ops"
    ) from exc

layout = lazy("khronika_ops.archive.layout")
validation = lazy("khronika_ops.validation")


def khronika_archive_load(images: Any, manifest: Any) -> list[dict[str, str]]:
    try:
        parsed = layout.ArchiveManifest.model_validate(plain(manifest))
        return list(layout.load_tags(parsed, [str(image) for image in plain(images) or []]))
    except ValueError as exc:
        raise AnsibleFilterError(f"khronika_archive_load: {validation.readable(exc)}") from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"khronika_archive_load": khronika_archive_load}
