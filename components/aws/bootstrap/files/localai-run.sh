#!/usr/bin/env bash
# localai-run [serve|watch-key|retry-gpu]
#  serve (ExecStart of localai.service; ends by exec'ing `docker run` in the foreground). At
#    every start: check the weights volume is mounted; make sure Docker is installed and
#    answers (installing docker.io itself if cloud-init's install failed); read the API key
#    and its version from SSM (SecureString) into 0600 files (never on a command line, never
#    logged); choose GPU (CUDA image, --gpus all) only if nvidia-smi and a --gpus probe
#    container work, else CPU (recorded, for retry-gpu); install that model YAML set into
#    <mount>/models; pull the image only if it is missing (bounded); replace the container.
#    Every failure exits non-zero with the reason; systemd restarts the unit (Restart=always).
#  watch-key (localai-key-watch.timer): restart localai.service when the SSM key's version
#    differs from the one it loaded, so `pulumi up` with a new localai:apiKey reaches it.
#  retry-gpu (localai-gpu-retry.timer): while a GPU host serves on CPU, log it loudly and
#    restart localai.service on the GPU as soon as the GPU path works.
# Settings: $LOCALAI_CONF (default /etc/localai/localai.conf, non-secret KEY=value lines).
set -euo pipefail
umask 077

readonly PROG=localai-run CONTAINER=localai
command=${1:-serve}
conf=${LOCALAI_CONF:-/etc/localai/localai.conf}
instance_id_file=${LOCALAI_INSTANCE_ID_FILE:-/var/lib/cloud/data/instance-id}
ssm_attempts=${LOCALAI_SSM_ATTEMPTS:-8}
pull_attempts=${LOCALAI_PULL_ATTEMPTS:-3}
pull_timeout_s=${LOCALAI_PULL_TIMEOUT_S:-1800}
docker_wait_s=${LOCALAI_DOCKER_WAIT_S:-120}
docker_config=${LOCALAI_DOCKER_CONFIG:-/etc/docker/daemon.json}
PATH="$PATH:/snap/bin" # the aws CLI is a snap on Ubuntu

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
retry() { # retry ATTEMPTS COMMAND...: backoff 5, 10, 20, 40, 60... seconds
    local attempts=$1 delay=5 n=1
    shift
    until "$@"; do
        ((n < attempts)) || return 1
        log "'${*:1:3}' failed (attempt $n/$attempts); retrying in ${delay}s"
        sleep "$delay"
        n=$((n + 1))
        delay=$((delay < 30 ? delay * 2 : 60))
    done
}

[[ -r "$conf" ]] || die "cannot read $conf"
# shellcheck source=/dev/null
. "$conf"
for var in LOCALAI_MOUNT_POINT LOCALAI_PORT LOCALAI_CPU_IMAGE LOCALAI_GPU_CAPABLE \
    LOCALAI_API_KEY_PARAMETER LOCALAI_REGION LOCALAI_MODEL_SRC_DIR LOCALAI_RUN_DIR \
    LOCALAI_CPUS LOCALAI_MEMORY_MB LOCALAI_THREADS LOCALAI_PARALLEL_REQUESTS \
    LOCALAI_WEIGHTS_MANIFEST; do
    [[ -n "${!var:-}" ]] || die "$var is not set in $conf"
done
for var in LOCALAI_PORT LOCALAI_MEMORY_MB LOCALAI_THREADS LOCALAI_PARALLEL_REQUESTS; do
    [[ "${!var}" =~ ^[0-9]+$ ]] || die "$var must be a whole number in $conf: '${!var}'"
done

install -d -m 0700 -- "$LOCALAI_RUN_DIR"
key_version_file="$LOCALAI_RUN_DIR/api-key.version"
accelerator_file="$LOCALAI_RUN_DIR/accelerator"

timeline() { localai-timeline "$@" || true; } # the boot timeline (coldstart-report.sh)
image_source=kept
ecr_login() { # egress none: the stack's own registry, with a 12-hour token for the role
    [[ -n "${LOCALAI_ECR_REGISTRY:-}" ]] || return 0
    aws ecr get-login-password --region "$LOCALAI_REGION" |
        docker login --username AWS --password-stdin "$LOCALAI_ECR_REGISTRY" >/dev/null
}
pull() { ecr_login && timeout "$pull_timeout_s" docker pull --quiet "$1" >/dev/null; }
ensure_image() { # IMAGE: use the local copy; pull only when missing, each attempt bounded
    docker image inspect "$1" >/dev/null 2>&1 && return 0
    image_source=pulled
    log "pulling $1"
    retry "$pull_attempts" pull "$1"
}
gpu_reason=""
gpu_usable() { # the probe container decides: --gpus all needs no nvidia entry in `docker info`
    nvidia-smi -L 2>/dev/null | grep -q '^GPU ' || {
        gpu_reason="nvidia-smi finds no GPU"
        log "GPU: $gpu_reason"
        return 1
    }
    ensure_image "$LOCALAI_GPU_IMAGE" || {
        gpu_reason="cannot pull $LOCALAI_GPU_IMAGE"
        log "GPU: $gpu_reason"
        return 1
    }
    timeout 300 docker run --rm --gpus all --log-driver none --entrypoint nvidia-smi \
        "$LOCALAI_GPU_IMAGE" -L >/dev/null 2>&1 || {
        gpu_reason="a --gpus all container cannot use the GPU"
        log "GPU: $gpu_reason"
        return 1
    }
}
ssm_key_version() {
    aws ssm get-parameter --region "$LOCALAI_REGION" --name "$LOCALAI_API_KEY_PARAMETER" \
        --query Parameter.Version --output text
}

case "$command" in
serve) ;;
watch-key)
    current=$(head -n 1 -- "$key_version_file" 2>/dev/null) || {
        log "no key loaded yet"
        exit 0
    }
    latest=$(ssm_key_version) || {
        log "cannot read the version of $LOCALAI_API_KEY_PARAMETER; will try again"
        exit 0
    }
    [[ "$latest" != "$current" ]] || exit 0
    spread=${LOCALAI_KEY_RESTART_SPREAD_S:-0}
    [[ "$spread" =~ ^[0-9]+$ ]] || die "LOCALAI_KEY_RESTART_SPREAD_S must be a whole number of seconds (got '$spread')"
    delay=$((spread > 0 ? RANDOM % (spread + 1) : 0))
    log "the API key changed (version $current -> $latest): restarting localai.service in ${delay}s"
    sleep "$delay"
    exec systemctl restart --no-block localai.service
    ;;
retry-gpu)
    [[ "$LOCALAI_GPU_CAPABLE" == 1 ]] || exit 0
    state=$(head -n 1 -- "$accelerator_file" 2>/dev/null) || exit 0
    [[ "$state" == cpu-fallback* ]] || exit 0
    log "WARNING: serving on CPU although this host has a GPU (${state#cpu-fallback: }); trying the GPU again"
    if gpu_usable; then
        log "the GPU works now: restarting localai.service on it"
        exec systemctl restart --no-block localai.service
    fi
    log "WARNING: still serving on CPU: $gpu_reason"
    exit 0
    ;;
*) die "usage: $PROG [serve|watch-key|retry-gpu] (got '$command')" ;;
esac

# 1. Never write weights to the root disk.
mountpoint -q -- "$LOCALAI_MOUNT_POINT" ||
    die "$LOCALAI_MOUNT_POINT is not a mount point (weights volume not mounted); refusing to start"
timeline volume_ready

# 2. Docker: cloud-init installs it, but a failed apt run (an address change mid-install)
#    must not leave the host without it; this unit retries until Docker answers.
if ! command -v docker >/dev/null; then
    [[ "${LOCALAI_INSTALL_DOCKER:-0}" == 1 ]] || die "docker is not installed (this AMI ships it)"
    log "docker is missing: installing docker.io"
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io
    }
    retry 5 apt_install || die "could not install docker.io"
fi
#    Its images live on the weights volume (data-root <mount>/docker), so a replacement
#    host starts with the image already there. The key is merged into daemon.json (the
#    DLAMI's NVIDIA settings stay), with the classic image store (Docker 29+ defaults a fresh
#    install to containerd's, outside data-root); docker.service's drop-in keeps it from starting before
#    the volume is mounted; a daemon that came up with another root is restarted.
data_root="$LOCALAI_MOUNT_POINT/docker"
install -d -m 0710 -- "$data_root"
merged=$(python3 - "$docker_config" "$data_root" <<'PY'
import json, os, sys
path, root = sys.argv[1], sys.argv[2]
config = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
features = dict(config.get("features") or {})
changed = config.get("data-root") != root or features.get("containerd-snapshotter") is not False
config["data-root"] = root
# Docker Engine 29+ keeps a fresh install's images in containerd's own root (the containerd
# image store), not under data-root: the classic store keeps them on the volume.
features["containerd-snapshotter"] = False
config["features"] = features
print("changed" if changed else "same")
if changed:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(config, f, indent=2)
    os.replace(path + ".tmp", path)
PY
) || die "cannot set Docker's data-root in $docker_config"
docker_root() { docker info --format '{{.DockerRootDir}}' 2>/dev/null; }
if command -v systemctl >/dev/null; then
    if [[ "$merged" == changed ]] || { docker info >/dev/null 2>&1 && [[ "$(docker_root)" != "$data_root" ]]; }; then
        log "Docker's data-root is $data_root (on the weights volume): restarting docker"
        systemctl restart docker.service || true
    else
        systemctl start docker.service || true
    fi
fi
waited=0
until docker info >/dev/null 2>&1; do
    ((waited < docker_wait_s)) || die "the Docker daemon did not answer within ${docker_wait_s}s"
    sleep 2
    waited=$((waited + 2))
done
[[ "$(docker_root)" == "$data_root" ]] ||
    log "WARNING: Docker keeps its images in $(docker_root), not on the weights volume"
timeline docker_ready

# 3. API key: SSM SecureString -> 0600 files in a 0700 directory. printf is a builtin, so
#    the key is never in any process's argv. Its version goes beside it for watch-key.
if ! command -v aws >/dev/null; then
    [[ -z "${LOCALAI_ECR_REGISTRY:-}" ]] ||
        die "no aws CLI on this AMI, and a host with egress none cannot install one"
    command -v snap >/dev/null || die "no aws CLI and no snap to install it"
    log "installing the aws CLI snap"
    timeout 600 snap wait system seed.loaded || true # snapd may still be seeding at first boot
    retry 5 snap install aws-cli --classic || die "could not install the aws CLI"
fi
key=""
version=""
# A new instance profile can take a moment to work: retry.
for ((attempt = 1; attempt <= ssm_attempts; attempt++)); do
    out=$(aws ssm get-parameter --region "$LOCALAI_REGION" --name "$LOCALAI_API_KEY_PARAMETER" \
        --with-decryption --query 'Parameter.[Version,Value]' --output text) && {
        version=${out%%$'\t'*}
        key=${out#*$'\t'}
        [[ -n "$key" && "$version" =~ ^[0-9]+$ && "$out" == *$'\t'* ]]
    } && break
    key=""
    log "cannot read SSM parameter $LOCALAI_API_KEY_PARAMETER (attempt $attempt/$ssm_attempts)"
    ((attempt == ssm_attempts)) || sleep $((attempt * 5))
done
unset out
[[ -n "$key" ]] || die "no API key from SSM parameter $LOCALAI_API_KEY_PARAMETER ($LOCALAI_REGION)"
[[ "$key" != *[[:space:]]* ]] || die "the API key in $LOCALAI_API_KEY_PARAMETER contains whitespace"
write_secret() { # PATH CONTENT
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    printf '%s\n' "$2" >"$tmp"
    chmod 0600 -- "$tmp"
    mv -f -- "$tmp" "$1"
}
write_secret "$LOCALAI_RUN_DIR/api-key.env" "LOCALAI_API_KEY=$key"
write_secret "$LOCALAI_RUN_DIR/auth.header" "Authorization: Bearer $key"
unset key
write_secret "$key_version_file" "$version"
log "API key version $version read from SSM parameter $LOCALAI_API_KEY_PARAMETER"

# 3b. Weights: the fetcher runs in parallel with the image pulls below; LocalAI starts
#     only once every file is present and verified (step 5).
#     A gated model's token (SSM SecureString) goes into the fetcher's environment only.
install -d -m 0755 -- "$LOCALAI_MOUNT_POINT/models"
# The fetcher's and the config sync's state (stamps, downloads in progress, the list of
# installed configs) lives beside models/, on the same volume, where the container (which
# writes models/) cannot plant links for these root scripts to follow.
host_state="$LOCALAI_MOUNT_POINT/.localai-state"
[[ ! -L "$host_state" ]] || die "$host_state is a symbolic link"
install -d -m 0700 -- "$host_state"
hf_token=""
if [[ -n "${LOCALAI_HF_TOKEN_PARAMETER:-}" ]]; then
    hf_token=$(aws ssm get-parameter --region "$LOCALAI_REGION" --name "$LOCALAI_HF_TOKEN_PARAMETER" \
        --with-decryption --query Parameter.Value --output text) ||
        die "cannot read the Hugging Face token from SSM parameter $LOCALAI_HF_TOKEN_PARAMETER"
fi
fetch_summary="$LOCALAI_RUN_DIR/fetch-summary"
rm -f -- "$fetch_summary"
retire_dir=""
[[ "${LOCALAI_KEEP_REMOVED_WEIGHTS:-0}" != 1 ]] || retire_dir="$host_state/removed-weights"
FETCH_RETIRE_DIR="$retire_dir" FETCH_STATE_DIR="$host_state/fetch" FETCH_SUMMARY_FILE="$fetch_summary" HF_TOKEN="$hf_token" localai-fetch-weights "$LOCALAI_WEIGHTS_MANIFEST" "$LOCALAI_MOUNT_POINT/models" &
fetch_pid=$!
unset hf_token

# 4. Accelerator, decided at every start: a host whose GPU is gone still serves on CPU, and
#    retry-gpu moves it back once the GPU path works.
accelerator=cpu
# shellcheck disable=SC2153 # set by the sourced $conf (checked above)
image=$LOCALAI_CPU_IMAGE
if [[ "$LOCALAI_GPU_CAPABLE" == 1 ]]; then
    if gpu_usable; then
        accelerator=gpu
        image=$LOCALAI_GPU_IMAGE
    else
        log "WARNING: GPU not usable ($gpu_reason): falling back to CPU; localai-gpu-retry.timer tries again"
        timeline gpu_fallback
    fi
fi
[[ "$accelerator" == gpu ]] || ensure_image "$image" || die "cannot pull $image"
if [[ "$LOCALAI_GPU_CAPABLE" == 1 && "$accelerator" == cpu ]]; then
    printf 'cpu-fallback: %s\n' "$gpu_reason" >"$accelerator_file"
else
    printf '%s\n' "$accelerator" >"$accelerator_file"
fi
log "accelerator: $accelerator, image: $image"
image_bytes=$(docker image inspect --format '{{.Size}}' "$image" 2>/dev/null || echo 0)
timeline image_present "source=$image_source" "bytes=${image_bytes//[^0-9]/}" "accelerator=$accelerator"

# 5. Model YAMLs for that accelerator (configs a previous start installed that this set
#    lacks are removed; files we did not install are never touched), then the weights the
#    fetcher started in step 3 must all be present and verified.
models="$LOCALAI_MOUNT_POINT/models"
localai-sync-configs "$LOCALAI_MODEL_SRC_DIR/$accelerator" "$models" "$host_state/configs" || die "cannot install the model configs"
if ! wait "$fetch_pid"; then
    timeline fetch_failed
    die "the model weights are not all present and verified (see localai-fetch above); retrying"
fi
fetched=0 verified=0 fetch_s=0
if [[ -r "$fetch_summary" ]]; then
    read -r fetched verified fetch_s < <(sed 's/[a-z_]*=//g' "$fetch_summary")
fi
mb_per_s=$(awk -v b="$fetched" -v s="$fetch_s" 'BEGIN { printf "%.1f", (s > 0 ? b / s / 1e6 : 0) }')
if ((fetched > 0)); then
    timeline weights_present source=fetched "bytes=$fetched" "mb_per_s=$mb_per_s" "verified_bytes=$verified"
else
    timeline weights_present source=verified "bytes=$verified"
fi

# 6. Logs: CloudWatch (stream = instance id) plus docker's bounded local cache, so
#    `docker logs` works; only the local driver when no log group is set.
instance_id=$(head -n 1 -- "$instance_id_file" 2>/dev/null || true)
if [[ -z "$instance_id" ]]; then
    token=$(curl -sf --max-time 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
        http://169.254.169.254/latest/api/token || true)
    instance_id=$(curl -sf --max-time 2 -H "X-aws-ec2-metadata-token: $token" \
        http://169.254.169.254/latest/meta-data/instance-id || hostname)
fi
if [[ -n "${LOCALAI_LOG_GROUP:-}" ]]; then
    log_args=(--log-driver awslogs --log-opt "awslogs-region=$LOCALAI_REGION"
        --log-opt "awslogs-group=$LOCALAI_LOG_GROUP" --log-opt "awslogs-stream=$instance_id"
        --log-opt mode=non-blocking --log-opt max-buffer-size=4m
        --log-opt cache-disabled=false --log-opt cache-max-size=20m
        --log-opt cache-max-file=5 --log-opt cache-compress=true)
else
    log_args=(--log-driver local --log-opt max-size=20m --log-opt max-file=5)
fi

# 7. The container.
args=(--env-file "$LOCALAI_RUN_DIR/api-key.env" -e "THREADS=$LOCALAI_THREADS")
if ((LOCALAI_PARALLEL_REQUESTS > 1)); then
    args+=(-e PARALLEL_REQUESTS=true -e "LLAMACPP_PARALLEL=$LOCALAI_PARALLEL_REQUESTS")
fi
if [[ -n "${LOCALAI_EXTRA_ENV_FILE:-}" ]]; then args+=(--env-file "$LOCALAI_EXTRA_ENV_FILE"); fi
if [[ "$accelerator" == gpu ]]; then args+=(--gpus all); fi
docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
log "starting $CONTAINER: port $LOCALAI_PORT, cpus $LOCALAI_CPUS, memory ${LOCALAI_MEMORY_MB}m, threads $LOCALAI_THREADS, parallel $LOCALAI_PARALLEL_REQUESTS"
# A second start in one boot is a restart (the run dir is in /run, emptied at boot): an
# alarm counts them.
started="$LOCALAI_RUN_DIR/started"
[[ ! -e "$started" ]] || timeline localai_restart
: >"$started"
timeline container_start
exec docker run --rm --name "$CONTAINER" --init --pull never --security-opt no-new-privileges \
    -p "$LOCALAI_PORT:8080" -v "$models:/build/models" \
    --cpus "$LOCALAI_CPUS" --cpu-shares 512 --memory "${LOCALAI_MEMORY_MB}m" \
    "${args[@]}" "${log_args[@]}" "$image"
