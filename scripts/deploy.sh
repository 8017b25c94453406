#!/usr/bin/env bash
# Deploy one stack: ./scripts/deploy.sh [STACK] [extra `pulumi up` flags]
#
# STACK defaults to `local` (LocalAI on this machine's Docker daemon). On a fresh
# machine this installs the pinned Pulumi CLI when none is on PATH (scripts/
# install-pulumi.sh: verified by SHA-256, into ~/.local/share/localai/tools, no sudo),
# creates the Python virtualenv, uses a local state backend (no Pulumi Cloud account
# needed) with a generated passphrase kept in ~/.config/localai, creates the stack if it
# is missing, runs `pulumi up`, and prints how to use the endpoint.
set -euo pipefail

stack="${1:-local}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

if [ ! -f "stacks/Pulumi.${stack}.yaml" ]; then
  known=""
  for file in stacks/Pulumi.*.yaml; do
    name="${file#stacks/Pulumi.}"
    known="${known} ${name%.yaml}"
  done
  die "no stacks/Pulumi.${stack}.yaml; the stacks are:${known}"
fi
if grep -Eq '^[[:space:]]*localai:target:[[:space:]]*docker' "stacks/Pulumi.${stack}.yaml"; then
  command -v docker >/dev/null 2>&1 || die "the local stack needs Docker: install Docker Engine or Docker Desktop"
  docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable (is it running? can this user use it?)"
fi

# The CLI's version check asks the internet on every command: off, so that a local stack
# whose image and weights are present deploys with no network (README, "Offline").
export PULUMI_SKIP_UPDATE_CHECK="${PULUMI_SKIP_UPDATE_CHECK:-true}"

# The Pulumi CLI: the one on PATH, else the pinned release (verified, user-owned, no sudo).
if ! command -v pulumi >/dev/null 2>&1; then
  pulumi_dir="$(bash scripts/install-pulumi.sh)" || die "could not install the Pulumi CLI (see above)"
  export PATH="$pulumi_dir:$PATH"
fi

# Python dependencies, reinstalled only when requirements.txt changes.
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -r requirements.txt
  printf '%s\n' "$want" >"$stamp"
fi

# State: a local backend unless the user chose one (PULUMI_BACKEND_URL or `pulumi login`).
if [ -z "${PULUMI_BACKEND_URL:-}" ] && ! pulumi whoami >/dev/null 2>&1; then
  state_dir="${XDG_STATE_HOME:-$HOME/.local/state}/localai/pulumi-state"
  mkdir -p "$state_dir"
  export PULUMI_BACKEND_URL="file://${state_dir}"
  echo "deploy: using the local state backend ${PULUMI_BACKEND_URL}"
fi
# Secrets in a local backend are encrypted with a passphrase: generate one, once.
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  passphrase_file="${XDG_CONFIG_HOME:-$HOME/.config}/localai/pulumi-passphrase"
  if [ ! -s "$passphrase_file" ]; then
    mkdir -p "$(dirname "$passphrase_file")"
    (umask 077 && head -c 32 /dev/urandom | base64 >"$passphrase_file")
    echo "deploy: generated a state passphrase in $passphrase_file (keep it: it decrypts the stack's secrets)"
  fi
  export PULUMI_CONFIG_PASSPHRASE_FILE="$passphrase_file"
fi

pulumi stack select --create "$stack" >/dev/null
pulumi up --yes --stack "$stack" "$@"

echo
echo "Endpoint ready."
if [ -n "${pulumi_dir:-}" ] || [ -n "${PULUMI_BACKEND_URL:-}" ] ||
  [ -n "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  echo "For other pulumi commands in this shell:"
  [ -z "${pulumi_dir:-}" ] || echo "  export PATH=\"${pulumi_dir}:\$PATH\""
  [ -z "${PULUMI_BACKEND_URL:-}" ] || echo "  export PULUMI_BACKEND_URL=\"${PULUMI_BACKEND_URL}\""
  [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ] ||
    echo "  export PULUMI_CONFIG_PASSPHRASE_FILE=\"${PULUMI_CONFIG_PASSPHRASE_FILE}\""
fi
cat <<EOT
Use it from any OpenAI SDK:
  export \$(pulumi stack output --stack ${stack} --shell --show-secrets)
  .venv/bin/pip install -r examples/python/requirements.txt   # the openai SDK, once
  .venv/bin/python examples/python/chat.py "Say hello"
Tear down:  pulumi destroy --stack ${stack}   (model weights are kept; see README)
EOT
