#!/usr/bin/env bash
# Forward the API port of a private AWS stack to this machine through SSM Session
# Manager: ./scripts/port-forward.sh [STACK]   (default: the selected stack)
# Then OPENAI_BASE_URL=http://127.0.0.1:<port>/v1 reaches the endpoint. Needs the AWS
# CLI with the Session Manager plugin, and credentials for the stack's account.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stack_args=()
if [ -n "${1:-}" ]; then
  stack_args=(--stack "$1")
fi

output() { pulumi stack output "${stack_args[@]}" "$1"; }
instance="$(output instanceId)"
region="$(output region)"
port="$(output OPENAI_BASE_URL | sed -E 's#^https?://[^:/]+:([0-9]+)/.*#\1#')"
case "$port" in
  ''|*[!0-9]*) echo "port-forward: cannot read the port from OPENAI_BASE_URL" >&2; exit 1 ;;
esac

command -v aws >/dev/null 2>&1 || { echo "port-forward: install the AWS CLI v2" >&2; exit 1; }
command -v session-manager-plugin >/dev/null 2>&1 ||
  { echo "port-forward: install the AWS Session Manager plugin" >&2; exit 1; }

set -x
exec aws ssm start-session --region "$region" --target "$instance" \
  --document-name AWS-StartPortForwardingSession \
  --parameters "portNumber=${port},localPortNumber=${port}"
