#!/usr/bin/env bash
# The test registry: Debian's docker-registry (distribution 2.8) with TLS from a self-signed CA this
# script creates, and htpasswd (bcrypt) auth. Test hosts reach it as registry.test:5000 (the docker0
# gateway); this machine pushes to 127.0.0.1:5000. Credentials are also written vault-encrypted, as a
# site would keep them.
#   test-registry.sh start|stop|status
# After start, $STATE/env holds KHRONIKA_TEST_REGISTRY_* variables for the harness.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${KHRONIKA_TEST_REGISTRY_DIR:-$REPO/.cache/test-registry}
PORT=${KHRONIKA_TEST_REGISTRY_PORT:-5000}
# The lab runs its own instance: KHRONIKA_TEST_REGISTRY_DIR/_PORT/_NAME/_USER_NAME (khronika lab up).
NAME=${KHRONIKA_TEST_REGISTRY_NAME:-registry.test}
USER_NAME=${KHRONIKA_TEST_REGISTRY_USER_NAME:-khronika-ci}
VENV=$REPO/.venv

log() { printf '[registry] %s\n' "$*"; }

pid_alive() { [ -f "$STATE/registry.pid" ] && kill -0 "$(cat "$STATE/registry.pid")" 2>/dev/null; }

make_pki() {
  [ -f "$STATE/tls/server.crt" ] && return
  mkdir -p "$STATE/tls"
  local gw
  gw=$(ip -4 -o addr show docker0 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')
  gw=${gw:-172.17.0.1}
  openssl req -x509 -newkey rsa:3072 -nodes -days 30 -subj "/CN=khronika test CA" \
    -keyout "$STATE/tls/ca.key" -out "$STATE/tls/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$NAME" \
    -keyout "$STATE/tls/server.key" -out "$STATE/tls/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1,IP:%s\nextendedKeyUsage=serverAuth\n' "$NAME" "$gw" \
    >"$STATE/tls/ext.cnf"
  openssl x509 -req -in "$STATE/tls/server.csr" -CA "$STATE/tls/ca.crt" -CAkey "$STATE/tls/ca.key" \
    -CAcreateserial -days 30 -extfile "$STATE/tls/ext.cnf" -out "$STATE/tls/server.crt" 2>/dev/null
}

make_auth() {
  [ -f "$STATE/htpasswd" ] && return
  openssl rand -hex 16 >"$STATE/password"
  htpasswd -Bbc "$STATE/htpasswd" "$USER_NAME" "$(cat "$STATE/password")" 2>/dev/null
  openssl rand -hex 24 >"$STATE/vault-pass"
  chmod 600 "$STATE/password" "$STATE/vault-pass"
  # The secrets a site keeps in its vault: the registry password and a module's API token.
  {
    echo "---"
    "$VENV/bin/ansible-vault" encrypt_string --vault-password-file "$STATE/vault-pass" \
      --name vault_test_registry_password "$(cat "$STATE/password")" 2>/dev/null
    "$VENV/bin/ansible-vault" encrypt_string --vault-password-file "$STATE/vault-pass" \
      --name vault_appeals_api_token "$(openssl rand -hex 16)" 2>/dev/null
  } >"$STATE/registry-vault.yml"
}

write_config() {
  mkdir -p "$STATE/data"
  cat >"$STATE/config.yml" <<CFG
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $STATE/data}
  delete: {enabled: true}
http:
  addr: 0.0.0.0:$PORT
  tls: {certificate: $STATE/tls/server.crt, key: $STATE/tls/server.key}
auth:
  htpasswd: {realm: khronika-test, path: $STATE/htpasswd}
CFG
}

# A 2 MB image from busybox-static: enough for pull, run and HTTP checks without any upstream registry.
push_test_image() {
  local image=127.0.0.1:$PORT/khronika-test/busybox:1.0 root
  export DOCKER_CONFIG=$STATE/docker-config
  docker login -u "$USER_NAME" --password-stdin "127.0.0.1:$PORT" <"$STATE/password" >/dev/null 2>&1
  if docker manifest inspect --insecure "$image" >/dev/null 2>&1 || docker pull -q "$image" >/dev/null 2>&1; then
    return
  fi
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/www"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh echo cat ls httpd sleep wget; do ln -s busybox "$root/bin/$applet"; done
  echo "khronika test image" >"$root/www/index.html"
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]' \
    -c 'ENV PATH=/bin' - "$image" >/dev/null
  rm -rf "$root"
  docker push -q "$image" >/dev/null
  log "pushed $image"
}

start() {
  mkdir -p "$STATE"
  make_pki
  make_auth
  write_config
  if ! pid_alive; then
    nohup docker-registry serve "$STATE/config.yml" >"$STATE/registry.log" 2>&1 &
    echo $! >"$STATE/registry.pid"
    for _ in $(seq 1 50); do
      curl -s --cacert "$STATE/tls/ca.crt" -o /dev/null "https://127.0.0.1:$PORT/v2/" && break
      sleep 0.2
    done
    log "started on :$PORT (TLS + htpasswd), pid $(cat "$STATE/registry.pid")"
  fi
  # An unauthenticated request must be refused, or the harness would not test auth at all.
  code=$(curl -s --cacert "$STATE/tls/ca.crt" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/v2/")
  [ "$code" = 401 ] || { log "expected 401 without credentials, got $code"; exit 1; }
  push_test_image
  cat >"$STATE/env" <<ENV
export KHRONIKA_TEST_REGISTRY=$NAME:$PORT
export KHRONIKA_TEST_REGISTRY_DIR=$STATE
export KHRONIKA_TEST_REGISTRY_CA=$STATE/tls/ca.crt
export KHRONIKA_TEST_REGISTRY_USER=$USER_NAME
export KHRONIKA_TEST_REGISTRY_VAULT=$STATE/registry-vault.yml
export KHRONIKA_TEST_VAULT_PASSWORD_FILE=$STATE/vault-pass
export KHRONIKA_TEST_IMAGE=$NAME:$PORT/khronika-test/busybox:1.0
ENV
}

stop() {
  if pid_alive; then
    kill "$(cat "$STATE/registry.pid")"
    log "stopped"
  fi
  rm -f "$STATE/registry.pid"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) pid_alive && echo running || echo stopped ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
