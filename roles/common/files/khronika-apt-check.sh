#!/bin/bash
# Pre-flight of an offline install: can apt install PACKAGES from the archive's repository (unpacked in
# SCRATCH/repo), alone or with the host's own sources (SOURCES: archive | archive+host), as the install
# will? Works only inside SCRATCH (its own sources, lists, cache and preferences): the host's apt
# configuration and state are read, never written.
#   khronika-apt-check.sh SCRATCH SUITE SIGNED_BY|trusted SOURCES PACKAGE...
# Exit 0: resolvable; 3: the archive's repository was not accepted by apt (signature); else apt's status.
set -u
scratch=$1 suite=$2 trust=$3 sources=$4
shift 4
mkdir -p "$scratch/parts" "$scratch/lists/partial" "$scratch/cache/archives/partial" "$scratch/prefs.d"
if [ "$sources" = archive+host ]; then
  cp -a /etc/apt/sources.list.d/. "$scratch/parts/" 2>/dev/null || true
  rm -f "$scratch/parts/khronika-archive.sources"
  if [ -f /etc/apt/sources.list ]; then cp /etc/apt/sources.list "$scratch/parts/zz-host.list"; fi
fi
cp -a /etc/apt/preferences.d/. "$scratch/prefs.d/" 2>/dev/null || true
cp -a /var/lib/apt/lists/. "$scratch/lists/" 2>/dev/null || true
rm -f "$scratch/lists/lock"
if [ "$trust" = trusted ]; then trust_line="Trusted: yes"; else trust_line="Signed-By: $trust"; fi
printf 'Types: deb\nURIs: file:%s/repo\nSuites: %s\n%s\n' "$scratch" "$suite" "$trust_line" \
  > "$scratch/parts/khronika-archive.sources"
printf 'Package: *\nPin: release o=khronika-ops\nPin-Priority: 100\n' > "$scratch/prefs.d/khronika-archive"
options=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$scratch/parts"
  -o "Dir::State::Lists=$scratch/lists" -o "Dir::Cache=$scratch/cache" -o Dir::Etc::Preferences=/dev/null
  -o "Dir::Etc::PreferencesParts=$scratch/prefs.d" -o Acquire::Retries=0 -o Acquire::http::Timeout=10
  -o Acquire::https::Timeout=10 -o Debug::NoLocking=1)
# The host's own sources may be unreachable (a closed network): their lists stay as they were.
LC_ALL=C apt-get "${options[@]}" update > "$scratch/update.log" 2>&1
if ! ls "$scratch/lists" | grep -q "_repo_${suite//\//_}Packages$"; then
  echo "apt did not accept the archive's repository:"
  grep -E "$scratch/repo|NO_PUBKEY|not signed|signature" "$scratch/update.log" | head -20
  exit 3
fi
LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get "${options[@]}" -s install "$@" 2>&1
