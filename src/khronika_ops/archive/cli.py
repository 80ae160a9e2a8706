"""`khronika archive build|verify`: the offline installation archive (docs/offline.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from khronika_ops.console import make_console, styled

archive_app = typer.Typer(
    help="Offline installation archives: build one for a release, verify one before it is installed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_stdout = make_console()
_stderr = make_console(stderr=True)


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return str(count)


@archive_app.command("build")
def build_command(  # noqa: PLR0917 - typer passes options as arguments
    release: Annotated[
        str, typer.Option("--release", help="The release to pack (a manifest in --releases-dir).")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The archive file (default khronika-<release>.tar here)."),
    ] = None,
    releases_dir: Annotated[
        Path | None,
        typer.Option("--releases-dir", help="Folder of release manifests (default releases/ of --source)."),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="Registry (host[:port]) to pull images that name none from."),
    ] = None,
    source: Annotated[Path, typer.Option("--source", help="The khronika-ops checkout to pack.")] = Path(),
    without: Annotated[
        list[str] | None,
        typer.Option(
            "--without",
            help="Leave a component out: collection, collections, wheels, docs or os-packages (repeatable).",
        ),
    ] = None,
    os_profile: Annotated[
        list[str] | None,
        typer.Option(
            "--os-profile",
            help="Host profile whose OS packages go in (repeatable; default debian-12 and debian-13).",
        ),
    ] = None,
    os_image: Annotated[
        list[str] | None,
        typer.Option("--os-image", help="PROFILE=IMAGE: the base image that resolves a profile's packages."),
    ] = None,
    sign: Annotated[
        str | None, typer.Option("--sign", help="Sign SHA256SUMS: gpg:KEY_ID or minisign:SECRET_KEY_FILE.")
    ] = None,
) -> None:
    """Build the installation archive of a release: images saved by digest, collection, wheels, docs."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from khronika_ops.archive import os_repo
    from khronika_ops.archive.build import BuildError, BuildOptions, build
    from khronika_ops.archive.signing import Signer, SigningError

    images: dict[str, str] = {}
    for item in os_image or []:
        profile, sep, base_image = item.partition("=")
        if not sep or not profile or not base_image:
            _stderr.print(f"archive build: --os-image takes PROFILE=IMAGE, not {item!r}", markup=False)
            raise typer.Exit(code=2)
        images[profile] = base_image
    try:
        signer = Signer.parse(sign) if sign else None
        options = BuildOptions(
            release=release,
            source=source.resolve(),
            releases_dir=(releases_dir or source / "releases").resolve(),
            output=output,
            registry=registry,
            without=set(without or []),
            signer=signer,
            os_profiles=list(os_profile) if os_profile else list(os_repo.DEFAULT_PROFILES),
            os_images=images,
        )
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
        with Progress(*columns, console=_stderr, transient=True) as bar:
            task = bar.add_task("starting", total=None)

            def progress(step: str, done: int, total: int) -> None:
                bar.update(task, description=step, completed=done, total=total or None)

            result = build(options, progress)
    except (BuildError, SigningError) as exc:
        _stderr.print(styled(f"archive build: {exc}", "bold red"))
        raise typer.Exit(code=1) from None
    manifest = result.manifest
    _stdout.print(f"archive {result.path}")
    _stdout.print(
        f"  release {manifest.release} ({manifest.kind}), {_size(result.bytes)}, built in {result.seconds} s"
    )
    _stdout.print(
        f"  components: {', '.join(manifest.components)}; signature: {manifest.signature or 'none'}"
    )
    for image in manifest.images:
        _stdout.print(f"  image {image.module}: {image.reference} ({_size(image.size)})")
    if manifest.wheels:
        _stdout.print(f"  wheels: {len(manifest.wheels)} for Python {manifest.python}")
    for repo in manifest.os_repositories:
        debs = sum(1 for name in repo.files if name.endswith(".deb"))
        _stdout.print(
            f"  OS packages {repo.profile}: {len(repo.packages)} asked, {debs} files with dependencies, "
            f"{_size(repo.bytes)}{', InRelease signed' if repo.signed else ''}"
        )
    _stdout.print("  steps: " + ", ".join(f"{name} {seconds} s" for name, seconds in result.steps.items()))


@archive_app.command("verify")
def verify_command(
    archive: Annotated[Path, typer.Argument(help="The archive file.")],
    release: Annotated[
        str | None, typer.Option("--release", help="Refuse an archive of any other release.")
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="The site's trusted key (a gpg keyring file or a minisign public key file): the archive "
            "must carry a valid signature by it.",
        ),
    ] = None,
    allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned",
            help="Without --key: accept the archive with its signature unchecked (said loudly).",
        ),
    ] = False,
    require_signature: Annotated[
        bool,
        typer.Option("--require-signature", hidden=True, help="The default: kept for older scripts."),
    ] = False,
) -> None:
    """Check every member's checksum and the signature against --key; name each member that is wrong.
    Without --key the archive is refused unless --allow-unsigned."""
    from khronika_ops.archive.verify import UNCHECKED, ArchiveError, verify

    if allow_unsigned and require_signature:
        raise typer.BadParameter("--allow-unsigned and --require-signature contradict each other")
    try:
        verified = verify(archive, release=release, key=key, allow_unsigned=allow_unsigned)
    except ArchiveError as exc:
        _stderr.print(styled(f"{exc.path}: REFUSED", "bold red"))
        for problem in exc.problems:
            _stderr.print(f"  - {problem}")
        raise typer.Exit(code=1) from None
    manifest = verified.manifest
    total = sum(verified.sizes.values())
    _stdout.print(styled(f"{archive}: OK", "bold green"))
    _stdout.print(
        f"  release {manifest.release} ({manifest.kind}), built {manifest.built_at} by khronika-ops {manifest.built_by}"
    )
    _stdout.print(f"  {len(verified.sums)} members checked ({_size(total)}), signature: {verified.signature}")
    _stdout.print(f"  images: {', '.join(image.module for image in manifest.images)}")
    if verified.signature.startswith(UNCHECKED):
        _stderr.print(
            styled(
                f"WARNING: the signature was NOT checked (--allow-unsigned): anyone who could change {archive} "
                "could have changed what it installs. Give the site's trusted key with --key.",
                "bold yellow",
            )
        )
