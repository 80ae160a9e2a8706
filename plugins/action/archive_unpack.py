"""Action plugin khronika.platform.archive_unpack: a thin wrapper around khronika_ops.archive.verify."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

try:
    from khronika_ops.archive import layout, os_repo
    from khronika_ops.archive.verify import UNCHECKED, ArchiveError, extract, verify
except ImportError:  # the controller lacks the package: say how to fix it when the task runs
    layout = None

DOCUMENTATION = r"""
---
module: archive_unpack
short_description: Verify an installation archive on the controller and unpack what the hosts need
description:
  - Runs on the controller, before any host changes. Checks every member of the archive against its
    SHA256SUMS, that the archive holds the release asked for, and its signature when a key is given (or
    required); any problem fails the task naming each member that is wrong.
  - Then puts the release manifest into O(releases_dir) (refusing a different manifest already there for
    the same release) and the images' tar into O(dest). Both are written only after their bytes hashed to
    the listed sums; a file already there with the right sum is left alone (not changed).
  - The archive's OS packages (a flat apt repository per host profile) are unpacked the same way into
    O(dest)/os, and each profile's files packed into one tar O(dest)/os-<profile>.tar for one copy per host.
  - All logic lives in the C(khronika-ops) Python package (C(khronika_ops.archive)); docs/offline.md.
options:
  path:
    description: The archive (C(khronika archive build)).
    type: path
    required: true
  release:
    description: The release the archive must hold.
    type: str
    required: true
  releases_dir:
    description: Folder of release manifests the deployment reads (C(khronika_releases_dir)).
    type: path
    required: true
  dest:
    description: Folder on the controller for the images' tar (C(<dest>/<release>/images.tar)).
    type: path
    required: true
  key:
    description:
      - A gpg keyring file or minisign public key file that the signature is checked with. Given, a valid
        signature is required (an archive whose signature was removed is refused).
      - Without it the archive is refused unless O(allow_unsigned) is true.
    type: path
  allow_unsigned:
    description:
      - Accept an archive whose signature is not checked (no O(key)); the task then warns that it did.
    type: bool
    default: false
author: khronika-ops maintainers
"""

RETURN = r"""
os_repositories:
  description: Per host profile the archive carries OS packages for, C(bundle) (the tar of its repository),
    C(bundle_sha256), C(release_sha256) (its Release file), C(suite), C(packages) (what the roles install)
    and C(signed) (InRelease signed with the archive's GPG key).
  type: dict
  returned: always
release:
  description: The archive's release.
  type: str
releases_dir:
  description: Where the release manifest is.
  type: str
images_tar:
  description: The images' tar on the controller.
  type: str
images_sha256:
  description: Its sha256, for the check on each host.
  type: str
signature:
  description: What the signature check said (C(not signed) when there is none).
  type: str
manifest:
  description: The archive's manifest (archive.json).
  type: dict
"""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        if layout is None:
            raise AnsibleActionFail(
                "archive_unpack needs the Python package khronika-ops on the controller: pip install khronika-ops"
            )
        args = self._task.args
        missing = [name for name in ("path", "release", "releases_dir", "dest") if not args.get(name)]
        if missing:
            raise AnsibleActionFail(f"archive_unpack: {', '.join(missing)} must be given")
        unknown = set(args) - {"path", "release", "releases_dir", "dest", "key", "allow_unsigned"}
        if unknown:
            raise AnsibleActionFail(f"archive_unpack: unknown options {', '.join(sorted(unknown))}")
        release = str(args["release"])
        try:
            verified = verify(
                Path(str(args["path"])).expanduser(),
                release=release,
                key=Path(str(args["key"])).expanduser() if args.get("key") else None,
                # boolean(): the string "false" (from -e or a template) is false, not a non-empty string.
                allow_unsigned=boolean(args.get("allow_unsigned", False), strict=True),
            )
        except ArchiveError as exc:
            raise AnsibleActionFail(
                f"the archive is refused before any host changes: {exc.path}: " + "; ".join(exc.problems)
            ) from exc
        manifest_member = layout.release_member(release)
        releases_dir = Path(str(args["releases_dir"])).expanduser()
        known = releases_dir / f"{release}.yml"
        if (
            known.is_file()
            and hashlib.sha256(known.read_bytes()).hexdigest() != verified.sums[manifest_member]
        ):
            raise AnsibleActionFail(
                f"{known} differs from the manifest of release {release} in the archive: a release number names "
                "one set of images; move the other file away if the archive's is the right one"
            )
        dest = Path(str(args["dest"])).expanduser() / release
        written: list[str] = []
        os_repositories: dict[str, dict[str, Any]] = {}
        if not self._task.check_mode:
            try:
                _, written = extract(verified, [layout.IMAGES], dest)
                for repo in verified.manifest.os_repositories:
                    _, done = extract(verified, repo.files, dest)
                    written += done
                    bundle = dest / f"os-{repo.profile}.tar"
                    os_repositories[repo.profile] = {
                        "bundle": str(bundle),
                        "bundle_sha256": os_repo.host_bundle(dest / os_repo.ROOT, repo.files, bundle),
                        "release_sha256": verified.sums[f"{os_repo.suite_dir(repo.profile)}/Release"],
                        "suite": f"dists/{repo.profile}/",
                        "packages": repo.packages,
                        "signed": repo.signed,
                    }
                if not known.is_file():
                    manifests, _ = extract(verified, [manifest_member], dest)
                    releases_dir.mkdir(parents=True, exist_ok=True)
                    manifests[manifest_member].replace(known)
                    written.append(manifest_member)
            except ArchiveError as exc:
                raise AnsibleActionFail(f"{exc.path}: " + "; ".join(exc.problems)) from exc
        if verified.signature.startswith(UNCHECKED):
            result["warnings"] = [
                f"INSTALLING AN UNCHECKED ARCHIVE: {verified.path}: signature {verified.signature}. Anyone who "
                "could change the file could have changed what it installs; set khronika_archive_key to the "
                "site's trusted key to check it."
            ]
        result.update(
            changed=bool(written),
            release=verified.manifest.release,
            releases_dir=str(releases_dir),
            images_tar=str(dest / layout.IMAGES),
            images_sha256=verified.sums[layout.IMAGES],
            signature=verified.signature,
            manifest=verified.manifest.model_dump(mode="json"),
            os_repositories=os_repositories,
        )
        return result
