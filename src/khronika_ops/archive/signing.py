"""Signing SHA256SUMS (which names every other member, archive.json included): GPG or minisign.

GPG signs with `gpg --detach-sign --armor` (the key: a key ID, fingerprint or e-mail in the signer's
keyring, GNUPGHOME as usual) and is checked with `gpgv` against a keyring file of trusted public keys
(`gpg --export KEY > trusted.gpg`). minisign signs with a secret key file (`minisign -G`; it asks for
the key's password on the terminal, none for a key made with -W) and is checked with the public key file. Both programs are called, never reimplemented.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from khronika_ops.archive.layout import SIGNATURES

Scheme = Literal["gpg", "minisign"]


class SigningError(RuntimeError):
    """Signing or checking a signature failed; the message says why (the tool's own words)."""


@dataclass(frozen=True)
class Signer:
    scheme: Scheme
    key: str  # gpg: key ID, fingerprint or user ID; minisign: the secret key file

    @classmethod
    def parse(cls, text: str) -> Signer:
        """'gpg:KEY' or 'minisign:SECRET_KEY_FILE'."""
        scheme, sep, key = text.partition(":")
        if not sep or scheme not in SIGNATURES or not key:
            raise SigningError(f"--sign takes gpg:KEY or minisign:SECRET_KEY_FILE, not {text!r}")
        if scheme == "minisign" and not Path(key).is_file():
            raise SigningError(f"minisign secret key file {key} does not exist")
        return cls(scheme, key)  # type: ignore[arg-type]

    def sign(self, checksums: Path) -> Path:
        """Writes the signature beside `checksums` and returns its path."""
        target = checksums.with_name(SIGNATURES[self.scheme])
        if self.scheme == "gpg":
            command = [_tool("gpg"), "--batch", "--yes", "--armor", "--detach-sign", "--local-user", self.key]
            command += ["--output", str(target), str(checksums)]
        else:
            command = [_tool("minisign"), "-S", "-s", self.key, "-m", str(checksums), "-x", str(target)]
        _run(command, "signing")
        return target

    def clear_sign(self, source: Path, target: Path) -> None:
        """An OpenPGP clear-signed copy of `source` at `target` (an apt repository's InRelease); only GPG
        keys can: apt does not read minisign signatures."""
        if self.scheme != "gpg":
            raise SigningError("only a GPG key can sign an apt repository (InRelease)")
        command = [_tool("gpg"), "--batch", "--yes", "--armor", "--clearsign", "--local-user", self.key]
        _run([*command, "--output", str(target), str(source)], "signing the apt repository")


def verify_signature(scheme: Scheme, checksums: Path, signature: Path, key: Path) -> str:
    """Checks `signature` of `checksums` with `key` (gpg: a keyring file; minisign: a public key file);
    returns the tool's statement of who signed, or raises SigningError."""
    if not key.is_file():
        raise SigningError(f"the public key file {key} does not exist")
    if scheme == "gpg":
        command = [_tool("gpgv"), "--keyring", str(key.resolve()), str(signature), str(checksums)]
    else:
        command = [_tool("minisign"), "-V", "-p", str(key), "-m", str(checksums), "-x", str(signature)]
    return _run(command, "the signature check")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = {"gpg": "gnupg", "gpgv": "gpgv", "minisign": "minisign"}[name]
        raise SigningError(f"{name} is not installed (Debian package {package})")
    return path


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=120, env={**os.environ, "LC_ALL": "C"}
    )
    said = (done.stderr + done.stdout).strip()
    if done.returncode != 0:
        raise SigningError(f"{what} failed: {said or f'{command[0]} exited with {done.returncode}'}")
    return said
