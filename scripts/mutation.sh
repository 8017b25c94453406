#!/usr/bin/env bash
# Mutation testing, one module at a time: scripts/mutation.sh MODULE [TEST...]
#
#   MODULE  a Python module (components/settings.py) or a shipped bash script
#           (components/aws/bootstrap/files/localai-prepare-volume.sh)
#   TEST    the pytest paths that must notice a change to MODULE; default: the ones
#           scripts/mutation/targets.txt lists for MODULE, else the mirrored test module
#           (components/x/y.py -> tests/components/x/test_y.py)
#
# Python modules go through two operator sets, each scored on its own: cosmic-ray (every
# operator it has, decorated validators and module constants included; one http worker per
# core, each in its own copy of the tree), then scripts/mutation/ast_mutants.py (what
# cosmic-ray does not make: string literals, sorted -> list, deleted raise and return,
# return x -> return None, keyword arguments' values). MUTATION_SETS picks them
# (default "cosmic-ray ast").
# A bash script has no such tool: scripts/mutation/<script>.mutants lists hand-made
# mutants (one sed expression each, every guard removed or loosened in turn), run one by
# one. Either way the tree is copied first (tracked and untracked files, as they are now),
# so the checkout is never modified, and the mutants run against that copy.
#
# Prints every surviving mutant that scripts/mutation/equivalent.txt does not explain,
# and the score: killed / (all - equivalent), per operator set. Exit 0 when every score is
# at least MUTATION_MIN_SCORE (default 95), 1 below it, 2 on a usage or setup error.
# Env: MUTATION_JOBS (cosmic-ray workers, default: cores; bash mutants run one at a time:
# loop devices and ports), MUTATION_KEEP=1 (keep the work dir: it is printed at the end).
# MUTATION_RESCORE=DIR (Python modules): after tests were added for a run's survivors, run
# again only the mutants that survived in DIR (a run kept with MUTATION_KEEP=1), against the
# tests as they are now; refused when the module itself changed since (score it afresh).
# It trusts that no test was weakened in between: a full run is the reference.
# Slow (minutes per module on two cores): not part of CI; run it when you change a
# module's logic or its tests (README, Tests).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
here="$root/scripts/mutation"
py="${PYTHON:-$root/.venv/bin/python}"
usage() { echo "usage: scripts/mutation.sh MODULE [TEST...]  (see the header of $0)" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
module=${1#./}
shift
[[ -f "$root/$module" ]] || { echo "mutation: no such file: $module" >&2; exit 2; }
[[ -x "$py" ]] || { echo "mutation: $py missing: run scripts/test.sh once (it builds .venv)" >&2; exit 2; }

tests=("$@")
if [[ ${#tests[@]} -eq 0 ]]; then
    listed=$(awk -v m="$module" '$1 == m":" { $1 = ""; print }' "$here/targets.txt")
    if [[ -n "$listed" ]]; then
        read -r -a tests <<<"$listed"
    else
        mirror="tests/$(dirname "$module")/test_$(basename "$module" .py).py"
        [[ -f "$root/$mirror" ]] || { echo "mutation: no tests given and no $mirror" >&2; exit 2; }
        tests=("$mirror")
    fi
fi
for t in "${tests[@]}"; do [[ -e "$root/${t%%::*}" ]] || { echo "mutation: no such test: $t" >&2; exit 2; }; done

jobs=${MUTATION_JOBS:-$(nproc)}
rescore=${MUTATION_RESCORE:-}
if [[ -n "$rescore" ]]; then
    [[ "$module" == *.py ]] || { echo "mutation: MUTATION_RESCORE is for Python modules" >&2; exit 2; }
    work=$(cd "$rescore" && pwd)
    [[ -f "$work/session.sqlite" && -f "$work/ast.tsv" ]] || { echo "mutation: $rescore is not a kept run of both sets" >&2; exit 2; }
    cmp -s "$work/tree0/$module" "$root/$module" || { echo "mutation: $module changed since $rescore was scored: run it afresh" >&2; exit 2; }
    rm -rf -- "$work/tree0" "$work"/tree[0-9]* "$work"/ast-tree*
    MUTATION_KEEP=1
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/localai-mutation.XXXXXX")
fi
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ "${MUTATION_KEEP:-0}" == 1 ]]; then echo "mutation: work dir kept: $work"; else rm -rf -- "$work"; fi
}
trap cleanup EXIT

copy_tree() { # DEST: the tree as it is now (tracked + untracked, not ignored) and the schema cache
    mkdir -p "$1"
    (cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - --no-recursion 2>/dev/null) |
        tar -xf - -C "$1"
    if [[ -d "$root/.cache" ]]; then cp -a "$root/.cache" "$1/.cache"; fi
}

pytest_cmd=("$py" -m pytest -x -q -p no:cacheprovider "${tests[@]}")
copy_tree "$work/tree0"
echo "mutation: $module against ${tests[*]}"
start=$(date +%s.%N)
if ! (cd "$work/tree0" && "${pytest_cmd[@]}" >"$work/baseline.log" 2>&1); then
    tail -n 30 "$work/baseline.log"
    echo "mutation: the tests fail on the unmutated tree; fix them first" >&2
    exit 2
fi
baseline=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
timeout=$(awk -v b="$baseline" 'BEGIN { t = b * 4 + 10; printf "%d", t }')
echo "mutation: baseline green in ${baseline}s; a mutant that runs over ${timeout}s counts as killed"

sets=${MUTATION_SETS:-cosmic-ray ast}
status=0
case $module in
*.py)
    if [[ " $sets " == *" ast "* ]]; then
        ast_command=run
        [[ -z "$rescore" ]] || ast_command=rescore
        "$py" "$here/ast_mutants.py" "$ast_command" "$module" "$work/ast.tsv" "$work" "$timeout" "$jobs" -- "${pytest_cmd[@]}" |
            grep -v '^ast: [0-9]*/[0-9]* .*: killed$' || true
        "$py" "$here/report.py" --module "$module" --equivalent "$here/equivalent.txt" \
            --source "$root/$module" --ast-results "$work/ast.tsv" --label " (ast operators)" || status=1
    fi
    [[ " $sets " == *" cosmic-ray "* ]] || exit "$status"
    "$py" -c 'import cosmic_ray' 2>/dev/null || { echo "mutation: cosmic-ray missing: pip install -r requirements-dev.txt" >&2; exit 2; }
    urls=()
    ports=()
    for i in $(seq 1 "$jobs"); do
        copy_tree "$work/tree$i"
        port=$((20000 + RANDOM % 20000))
        (cd "$work/tree$i" && exec "$py" -m cosmic_ray.cli http-worker --port "$port" >"$work/worker$i.log" 2>&1) &
        pids+=($!)
        ports+=("$port")
        urls+=("\"http://127.0.0.1:$port\"")
    done
    command_line="${pytest_cmd[*]}" # shlex-split by cosmic-ray: no spaces in these paths
    cat >"$work/config.toml" <<TOML
[cosmic-ray]
module-path = "$module"
timeout = $timeout
excluded-modules = []
test-command = "$command_line"

[cosmic-ray.distributor]
name = "http"

[cosmic-ray.distributor.http]
worker-urls = [$(IFS=,; echo "${urls[*]}")]
TOML
    if [[ -n "$rescore" ]]; then # the survivors go back to pending; the rest keep their result
        "$py" - "$work/session.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
gone = db.execute("DELETE FROM work_results WHERE lower(worker_outcome) = 'normal' AND lower(test_outcome) = 'survived'").rowcount
db.commit()
print(f"mutation: {gone} surviving cosmic-ray mutants run again")
PY
    else
        (cd "$work/tree0" && "$py" -m cosmic_ray.cli init "$work/config.toml" "$work/session.sqlite")
        (cd "$work/tree0" && "$py" "$here/skip_annotations.py" "$work/session.sqlite" "$root/$module")
    fi
    for _ in $(seq 1 50); do # until every worker accepts connections
        ok=1
        for port in "${ports[@]}"; do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || ok=0
        done
        ((ok)) && break
        sleep 0.2
    done
    (cd "$work/tree0" && "$py" -m cosmic_ray.cli exec "$work/config.toml" "$work/session.sqlite")
    "$py" "$here/report.py" --module "$module" --equivalent "$here/equivalent.txt" \
        --source "$root/$module" --session "$work/session.sqlite" --label " (cosmic-ray)" || status=1
    exit "$status"
    ;;
*.sh)
    mutants="$here/$(basename "$module").mutants"
    [[ -f "$mutants" ]] || { echo "mutation: no mutant list $mutants" >&2; exit 2; }
    results="$work/results.tsv"
    : >"$results"
    while IFS= read -r line; do
        [[ -z "$line" || "$line" == \#* ]] && continue
        name=${line%% *}
        expr=${line#"$name"}
        expr=${expr#"${expr%%[![:space:]]*}"}
        rm -rf "$work/m" && cp -a "$work/tree0" "$work/m"
        sed -e "$expr" "$work/tree0/$module" >"$work/m/$module"
        if cmp -s "$work/tree0/$module" "$work/m/$module"; then
            echo "mutation: mutant '$name' changes nothing (stale sed expression: $expr)" >&2
            exit 2
        fi
        if (cd "$work/m" && timeout "$timeout" "${pytest_cmd[@]}" >"$work/$name.log" 2>&1); then
            printf '%s\tsurvived\t%s\n' "$name" "$expr" >>"$results"
            echo "mutation: $name survived"
        else
            printf '%s\tkilled\t%s\n' "$name" "$expr" >>"$results"
            echo "mutation: $name killed"
        fi
    done <"$mutants"
    "$py" "$here/report.py" --module "$module" --equivalent "$here/equivalent.txt" --results "$results"
    ;;
*) usage ;;
esac
