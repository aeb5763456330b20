#!/usr/bin/env bash
# Build a virtual environment with the *lowest* versions pyproject.toml allows for the
# packages whose floors matter most (torch, transformers, mlflow, optuna), so the test
# suite can be run against them.
#
#   scripts/floors_venv.sh VENV_DIR [--test] [--keep]
#
# * The four floors are read from the ">=" bounds in [project].dependencies.
# * torch is installed only from local wheels (--no-index, $WHEELS_DIR, default
#   /opt/wheels): a torch from PyPI is a multi-GB CUDA build. If the floor's CPU wheel
#   is not on disk the script fails; TORCH_VERSION=2.13.0 overrides the floor.
# * Everything else (the project's other dependencies, the [dev] extra) resolves
#   normally, with the four packages held at their floors by a constraints file.
# * The project itself is installed editable from this checkout.
# * --test runs the core test files one at a time with the new venv.
# * --keep reuses VENV_DIR if it exists (default: it is removed and rebuilt).
#
# Environment: PYTHON (default python3.11), TORCH_VERSION, WHEELS_DIR, EXTRAS (default
# "dev"; empty for none).
# Exit status: 0 on success, 1 on a failed install or failed tests, 2 on bad usage or
# a torch floor with no local wheel.
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

VENV=""
RUN_TESTS=0
KEEP=0
for arg in "$@"; do
    case "$arg" in
        --test) RUN_TESTS=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) usage ;;
        -*) echo "unknown option: $arg" >&2; usage ;;
        *) [[ -z "$VENV" ]] || usage; VENV="$arg" ;;
    esac
done
[[ -n "$VENV" ]] || usage

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
WHEELS_DIR="${WHEELS_DIR:-/opt/wheels}"
EXTRAS="${EXTRAS-dev}"
START=$SECONDS
step() { printf '[%4ds] %s\n' "$((SECONDS - START))" "$*"; }

# --- floors from pyproject.toml --------------------------------------------------------
FLOORS="$("$PYTHON" - "$ROOT/pyproject.toml" <<'PY'
import re, sys, tomllib

deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
wanted = ["torch", "transformers", "mlflow", "optuna"]
found = {}
for dep in deps:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(.*)", dep)
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    if name in wanted:
        floor = re.search(r">=\s*([^,;\s]+)", m.group(3))
        if floor is None:
            sys.exit(f"pyproject.toml: {dep!r} has no '>=' floor")
        found[name] = (floor.group(1), m.group(2) or "")
missing = [n for n in wanted if n not in found]
if missing:
    sys.exit(f"pyproject.toml: no dependency on {', '.join(missing)}")
for name in wanted:
    print(name, found[name][0], found[name][1])
PY
)" || { echo "could not read the floors from $ROOT/pyproject.toml" >&2; exit 2; }

declare -A FLOOR EXTRA
while read -r name version extra; do
    FLOOR[$name]="$version"
    EXTRA[$name]="${extra:-}"
done <<<"$FLOORS"
[[ -n "${TORCH_VERSION:-}" ]] && FLOOR[torch]="$TORCH_VERSION"
step "floors: torch==${FLOOR[torch]} transformers==${FLOOR[transformers]}" \
     "mlflow${EXTRA[mlflow]}==${FLOOR[mlflow]} optuna==${FLOOR[optuna]}"

# --- venv ------------------------------------------------------------------------------
if [[ -d "$VENV" && $KEEP -eq 0 ]]; then
    rm -rf "$VENV"
fi
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# The machine's pip.conf names file:// indexes that may lack a package: drop that noise.
quiet() { grep -v "^WARNING: Location 'file://" || true; }

CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
for name in torch transformers mlflow optuna; do
    echo "$name==${FLOOR[$name]}" >>"$CONSTRAINTS"
done

step "installing torch==${FLOOR[torch]} from $WHEELS_DIR (no index)"
if ! "${PIP[@]}" install -q --no-index --find-links "$WHEELS_DIR" --no-deps \
        "torch==${FLOOR[torch]}" 2>&1 | quiet; then
    :
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; \
v = m.version('torch').split('+')[0]; sys.exit(v != sys.argv[1] and \
v != sys.argv[1] + '.0')" "${FLOOR[torch]}" 2>/dev/null; then
    echo "no local CPU wheel for torch==${FLOOR[torch]} in $WHEELS_DIR; on disk:" >&2
    ls "$WHEELS_DIR" 2>/dev/null | grep -i '^torch-' >&2 || echo "  (none)" >&2
    echo "set TORCH_VERSION to one of those to build the other floors" >&2
    exit 2
fi
# torch's own dependencies (filelock, sympy, ...) come from the index as usual.
"${PIP[@]}" install -q -c "$CONSTRAINTS" "torch==${FLOOR[torch]}" 2>&1 | quiet

SPEC="$ROOT"
[[ -n "$EXTRAS" ]] && SPEC="$ROOT[$EXTRAS]"
step "installing transformers, mlflow, optuna at their floors, the project and its deps"
set +e
"${PIP[@]}" install -q -c "$CONSTRAINTS" \
    "transformers==${FLOOR[transformers]}" \
    "mlflow${EXTRA[mlflow]}==${FLOOR[mlflow]}" \
    "optuna==${FLOOR[optuna]}" \
    -e "$SPEC" 2>&1 | quiet
rc=${PIPESTATUS[0]}
set -e
if [[ $rc -ne 0 ]]; then
    echo "pip could not install the floors (exit $rc)" >&2
    exit 1
fi
"${PIP[@]}" check 2>&1 | quiet || { echo "pip check found broken requirements" >&2; exit 1; }

step "installed versions"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as m

for name in ("torch", "transformers", "tokenizers", "huggingface-hub", "mlflow", "optuna",
             "sqlalchemy", "alembic", "numpy", "pandas", "pyarrow", "sentence-transformers",
             "psy-agents-noaug"):
    try:
        print(f"  {name:24s} {m.version(name)}")
    except m.PackageNotFoundError:
        print(f"  {name:24s} (not installed)")
PY
step "venv ready: $VENV"

if [[ $RUN_TESTS -eq 1 ]]; then
    failed=0
    for f in test_metric_sink test_run_ends test_trainer test_cli_train test_hpo_runner \
             test_registry test_serving; do
        t0=$SECONDS
        if (cd "$ROOT" && PYTHONPATH="$ROOT/src" "$VENV/bin/python" -m pytest -q \
                -p no:cacheprovider "tests/$f.py" >"$VENV/$f.log" 2>&1); then
            status=ok
        else
            status=FAILED
            failed=1
        fi
        step "$f: $status in $((SECONDS - t0))s ($(tail -n 1 "$VENV/$f.log"))"
    done
    [[ $failed -eq 0 ]] || { echo "some core tests failed: logs in $VENV/*.log" >&2; exit 1; }
fi
step "done"
