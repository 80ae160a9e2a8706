#!/usr/bin/env bash
# Prints the Debian mirror this machine's apt is configured with (the URIs: line of
# /etc/apt/sources.list.d/debian.sources, else the first non-security `deb` line of
# /etc/apt/sources.list); prints nothing when there is none. The one place the scripts read it:
# no mirror host name is ever written into the repository.
set -euo pipefail
uri=""
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
  uri=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
echo "$uri"
