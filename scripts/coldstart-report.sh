#!/usr/bin/env bash
# Print the boot timeline of a stack's EC2 host: ./scripts/coldstart-report.sh STACK
#
# Reads the stack's logGroup, instanceId and region outputs, fetches the host's
# "localai-boot:" lines (localai-timeline writes them to the stream <instance id>/boot) with
# the AWS CLI, and prints one row per phase of the latest boot: seconds since boot, the
# time since the previous phase, and the phase's details.
set -euo pipefail

die() { printf 'coldstart-report: %s\n' "$*" >&2; exit 1; }
[[ $# -eq 1 ]] || die "usage: $0 STACK"
stack=$1
command -v pulumi >/dev/null 2>&1 || die "the Pulumi CLI is needed (scripts/deploy.sh installs it)"
command -v aws >/dev/null 2>&1 || die "the AWS CLI is needed"
output() { pulumi stack output --stack "$stack" "$1" 2>/dev/null || die "stack $stack has no output $1 (an AWS stack?)"; }
group=$(output logGroup)
instance=$(output instanceId)
region=$(output region)

lines=$(aws logs filter-log-events --region "$region" --log-group-name "$group" \
    --log-stream-names "$instance/boot" --filter-pattern '"localai-boot:"' \
    --query 'events[].message' --output text | tr '\t' '\n') ||
    die "cannot read stream $instance/boot of $group"
[[ -n "$lines" ]] || die "no boot timeline yet for $instance in $group"

printf '%s\n' "$lines" | awk '
    /^localai-boot: / {
        delete f
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = substr($i, length(kv[1]) + 2) }
        if (f["boot"] != boot) { boot = f["boot"]; n = 0 }
        n++; phase[n] = f["phase"]; t[n] = f["t"] + 0; detail[n] = ""
        for (i = 2; i <= NF; i++) if ($i !~ /^(boot|phase|t)=/) detail[n] = detail[n] " " $i
    }
    END {
        if (!n) exit 1
        printf "boot %s\n%-18s %9s %9s  %s\n", boot, "phase", "t (s)", "+ (s)", "details"
        for (i = 1; i <= n; i++)
            printf "%-18s %9.1f %9.1f %s\n", phase[i], t[i], (i > 1 ? t[i] - t[i-1] : t[i]), detail[i]
    }'
