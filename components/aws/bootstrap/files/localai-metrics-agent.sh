#!/usr/bin/env bash
# localai-metrics-agent: ExecStart of localai-metrics-agent.service (oneshot, at every boot).
# Installs Amazon's CloudWatch agent when it is absent and starts it with this host's
# configuration, written by cloud-init (components/aws/bootstrap/metrics_agent.py): CPU,
# memory, the weights volume's disk use and, on a GPU host, the GPU.
# The .deb comes over HTTPS from the agent's regional S3 bucket (anonymous: a sealed host
# reaches it through the stack's S3 gateway endpoint) and is installed only when gpg finds
# a valid signature by Amazon's agent key, whose fingerprint is pinned below. Exit 0 once
# the agent runs; 1 otherwise (the unit retries; the boot timeline says metrics_agent
# result=failed, which the stack's alarm counts).
# Env (tests): LOCALAI_CONF, LOCALAI_CW_AGENT_BASE_URL (https:// only), LOCALAI_CW_AGENT_CTL.
set -euo pipefail
umask 022

readonly PROG=localai-metrics-agent
# The CloudWatch agent's signing key (Amazon's installation guide, "Verify the signature of
# the CloudWatch agent package"): the primary key of any key that signs the package.
readonly AGENT_KEY_FINGERPRINT=937616F3450B7D806CBD9725D58167303B789C72
conf=${LOCALAI_CONF:-/etc/localai/localai.conf}
ctl=${LOCALAI_CW_AGENT_CTL:-/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
timeline() { localai-timeline "$@" || true; }
fail() {
    log "error: $*"
    timeline metrics_agent result=failed
    exit 1
}

[[ -r "$conf" ]] || fail "cannot read $conf"
# shellcheck source=/dev/null
. "$conf"
[[ "${LOCALAI_REGION:-}" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] ||
    fail "bad LOCALAI_REGION '${LOCALAI_REGION:-}' in $conf"
config=${conf%/*}/cloudwatch-agent.json
if [[ "${LOCALAI_GPU_CAPABLE:-0}" == 1 && -r "${conf%/*}/cloudwatch-agent-gpu.json" ]]; then
    config=${conf%/*}/cloudwatch-agent-gpu.json
fi
[[ -r "$config" ]] || fail "cannot read $config"
base=${LOCALAI_CW_AGENT_BASE_URL:-https://amazoncloudwatch-agent-$LOCALAI_REGION.s3.$LOCALAI_REGION.amazonaws.com}
[[ "$base" =~ ^https://[^[:space:]]+$ ]] || fail "the agent's base URL must be https://: '$base'"

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

get() { # KEY FILE: one object of the agent's bucket, retried on transient errors
    curl -fsS --proto '=https' --retry 3 --retry-delay 5 --connect-timeout 30 --max-time 900 \
        -o "$work/$2" "$base/$1" || fail "could not download $base/$1"
}

install_agent() {
    local arch status signer
    arch=$(dpkg --print-architecture)
    [[ "$arch" =~ ^(amd64|arm64)$ ]] || fail "no CloudWatch agent package for $arch"
    log "installing the CloudWatch agent ($arch) from $base"
    get assets/amazon-cloudwatch-agent.gpg agent-key.gpg
    get "ubuntu/$arch/latest/amazon-cloudwatch-agent.deb" agent.deb
    get "ubuntu/$arch/latest/amazon-cloudwatch-agent.deb.sig" agent.deb.sig
    export GNUPGHOME="$work/gnupg"
    mkdir -m 0700 "$GNUPGHOME"
    gpg --batch --quiet --import "$work/agent-key.gpg" 2>/dev/null ||
        fail "the agent's key does not import"
    # VALIDSIG's last field is the signing key's primary key: it must be the pinned one,
    # whatever else the downloaded key file holds.
    status=$(gpg --batch --status-fd 1 --verify "$work/agent.deb.sig" "$work/agent.deb" \
        2>/dev/null) || fail "the agent package's signature does not verify"
    signer=$(awk '$2 == "VALIDSIG" { print $NF }' <<<"$status")
    [[ "$signer" == "$AGENT_KEY_FINGERPRINT" ]] ||
        fail "the agent package is signed by '${signer:-nobody}', not the agent's key"
    dpkg -i -E "$work/agent.deb" >&2 || fail "dpkg could not install the agent"
}

[[ -x "$ctl" ]] || install_agent
[[ -x "$ctl" ]] || fail "no $ctl after the install"
"$ctl" -a fetch-config -m ec2 -s -c "file:$config" >&2 || fail "the agent did not start with $config"
version=$(head -n 1 "${ctl%/*}/CWAGENT_VERSION" 2>/dev/null || true)
log "the CloudWatch agent ${version:-(version unknown)} runs with $config"
timeline metrics_agent result=started "version=${version//[^A-Za-z0-9._-]/}"
