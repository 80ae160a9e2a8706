"""Redaction of everything collected for a support bundle, before it is written anywhere.

What goes, in this order (each counted by kind; the summary lists the counts, never the values):
  - every secret the inventory knows (vault values, passwords, tokens, keys: khronika.platform's
    support_bundle action collects them by variable name and from Ansible Vault), wherever it appears;
  - private key blocks (PEM / OpenSSH);
  - credentials in URLs (scheme://user:password@host);
  - values after password / token / secret / key words (`password=...`, `"token": "..."`, `Authorization:`);
  - container environment values (`docker inspect`'s Config.Env: the names stay, the values go).
With pseudonyms on, host names and IPv4 addresses are replaced by stable stand-ins (host-01, 10.255.0.1)
that are the same everywhere in one bundle, so the support specialist can still follow one host.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

MARK = "<redacted>"
MIN_SECRET = 4  # shorter values ("no", "1") would blank out ordinary text; they are not secrets anyway
_PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.DOTALL
)
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s:/@]+):(?P<password>[^\s@/]+)@"
)
_SECRET_WORDS = (
    r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"
)
_KEY_VALUE = re.compile(
    rf"(?P<key>\b[\w.-]*{_SECRET_WORDS}[\w.-]*\"?\s*[:=]\s*\"?)(?P<value>[^\s\",;}}]+)", re.IGNORECASE
)
_AUTH_HEADER = re.compile(
    r"(?P<key>\bAuthorization:\s*(?:Basic|Bearer|Token)\s+)(?P<value>\S+)", re.IGNORECASE
)
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")


# Which inventory variables hold secrets (khronika.platform's support_bundle action collects their values):
# a variable named like one, and inside a structure a key named like one (not `secrets`, a catalog's
# list that names vault variables and holds no value).
SECRET_VARIABLE = re.compile(
    r"(^vault_|password|passwd|token|secret|_key$|^key$|private|credential)", re.IGNORECASE
)
SECRET_KEY = re.compile(r"(password|passwd|token|secret$|_key$|^key$|private|credential)", re.IGNORECASE)


def secret_leaves(variables: Mapping[str, Any]) -> list[Any]:
    """The raw (unrendered) values that are secrets in one host's variables: strings, templates or
    vault-encrypted values. Only these are rendered afterwards: a file lookup elsewhere in a structure
    is never evaluated."""
    leaves: list[Any] = []
    for key, raw in variables.items():
        name = str(key)
        if name.startswith(("ansible_", "hostvars", "groups", "omit")) and "pass" not in name:
            continue
        named = bool(SECRET_VARIABLE.search(name))
        if named or isinstance(raw, (dict, list)):
            _leaves(raw, named, name.startswith("vault_"), leaves)
    return leaves


def _leaves(value: Any, named: bool, inherit: bool, out: list[Any], depth: int = 0) -> None:
    """`named`: this value sits under a secret-named variable or key, so its leaves (directly, or in a
    list) are secrets. `inherit`: a vault_* variable, whose whole structure is secret. Elsewhere a
    mapping's leaves count only under secret-named keys."""
    if depth > 8 or value is None or isinstance(value, (bool, int, float)):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _leaves(item, inherit or bool(SECRET_KEY.search(str(key))), inherit, out, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            nested = isinstance(item, (dict, list, tuple))
            _leaves(item, inherit if nested else named, inherit, out, depth + 1)
    elif named:
        out.append(value)


class Redactor:
    def __init__(
        self, secrets: Iterable[str] = (), *, pseudonymize: bool = False, hosts: Iterable[str] = ()
    ) -> None:
        # Longest first: a secret that contains another is replaced whole.
        self.secrets = sorted(
            {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET}, key=len, reverse=True
        )
        self.pseudonymize = pseudonymize
        self.counts: Counter[str] = Counter()
        self.host_names: dict[str, str] = {}
        self.addresses: dict[str, str] = {}
        for host in sorted(set(hosts)):
            self.host_name(host)

    def host_name(self, name: str) -> str:
        if not self.pseudonymize:
            return name
        if name not in self.host_names:
            self.host_names[name] = f"host-{len(self.host_names) + 1:02d}"
        return self.host_names[name]

    def _address(self, match: re.Match[str]) -> str:
        text = match.group(0)
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            return text
        if address.is_loopback or address.is_unspecified or address.is_multicast or text.endswith(".255"):
            return text  # 127.0.0.1, 0.0.0.0 say something about a setting, nothing about the site
        if text not in self.addresses:
            number = len(self.addresses) + 1
            self.addresses[text] = f"10.255.{number // 250}.{number % 250 + 1}"
            self.counts["IPv4 addresses pseudonymised"] += 1
        return self.addresses[text]

    def text(self, content: str) -> str:
        """Every rule of the module, applied to one text."""
        for secret in self.secrets:
            found = content.count(secret)
            if found:
                content = content.replace(secret, MARK)
                self.counts["inventory secrets"] += found
        content, found = _PRIVATE_KEY.subn(f"-----{MARK} PRIVATE KEY-----", content)
        self.counts["private keys"] += found
        content, found = _URL_CREDENTIALS.subn(lambda m: f"{m['scheme']}{m['user']}:{MARK}@", content)
        self.counts["credentials in URLs"] += found
        content = _KEY_VALUE.sub(self._key_value, content)
        content, found = _AUTH_HEADER.subn(lambda m: f"{m['key']}{MARK}", content)
        self.counts["authorization headers"] += found
        if self.pseudonymize:
            for name, stand_in in sorted(
                self.host_names.items(), key=lambda item: len(item[0]), reverse=True
            ):
                found = len(re.findall(rf"(?<![\w-]){re.escape(name)}(?![\w-])", content))
                if found:
                    content = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", stand_in, content)
                    self.counts["host names pseudonymised"] += found
            content = _IPV4.sub(self._address, content)
        return content

    def _key_value(self, match: re.Match[str]) -> str:
        if match["value"] == MARK or match["value"].startswith("<"):
            return match.group(0)
        self.counts["password/token/secret values"] += 1
        return f"{match['key']}{MARK}"

    def docker_inspect(self, content: str) -> str:
        """`docker inspect` output: every Config.Env value goes (the names stay), then the text rules."""
        try:
            containers = json.loads(content)
        except ValueError:
            return self.text(content)
        if isinstance(containers, list):
            for container in containers:
                env = (container.get("Config") or {}).get("Env") if isinstance(container, dict) else None
                if isinstance(env, list):
                    container["Config"]["Env"] = [self._env(item) for item in env]
        return self.text(json.dumps(containers, indent=2))

    def _env(self, item: Any) -> Any:
        if not isinstance(item, str) or "=" not in item:
            return item
        name, _, value = item.partition("=")
        if not value:
            return item
        self.counts["container environment values"] += 1
        return f"{name}={MARK}"

    def leaks(self, content: str) -> list[str]:
        """Which kinds of known secret are still in `content` (the final scan of the bundle)."""
        found = [
            f"inventory secret #{index + 1}" for index, secret in enumerate(self.secrets) if secret in content
        ]
        if self.pseudonymize:
            found += [
                f"host name #{i + 1}"
                for i, name in enumerate(self.host_names)
                if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", content)
            ]
        if _PRIVATE_KEY.search(content.replace(f"-----{MARK} PRIVATE KEY-----", "")):
            found.append("a private key")
        return found
