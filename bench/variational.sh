#!/usr/bin/env bash
# Unnormalised-target benchmark: for every built-in target, fit a flow with `zflow
# fit-target` (the objective and budget below), then estimate log Z with `zflow integrate`
# on N samples of the flow and, on the same N, with plain Monte Carlo (uniform on a bounded
# domain, else a Gaussian around the target's plot box). Reports |log Z error| against the
# exact value, its standard error, ESS, the unweighting efficiency (replica-robust w_max),
# the per-sample relative variance of the weights, and how many times plain Monte Carlo's
# relative variance is the flow's; writes the table into docs/benchmarks.md between the
# variational markers.
#
# Usage: bench/variational.sh [--no-docs | --table]
# Environment:
#   ZFLOW    the zflow binary (default ./build/zflow)
#   TARGETS  which configurations (default: every row of `config` below)
#   N        importance samples per estimate (default 1000000)
#   JOBS     fits run at the same time, one thread each (default: the CPUs)
#   SCALE    multiplies every fit's steps (default 1; 0.1 for a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."
zflow=${ZFLOW:-./build/zflow}
n=${N:-1000000}
jobs=${JOBS:-$(nproc)}
scale=${SCALE:-1}
write_docs=1
run=1
[ "${1:-}" = "--no-docs" ] && write_docs=0
# --table: no runs, the table from the runs kept in out/bench-variational.
[ "${1:-}" = "--table" ] && run=0
[ -x "$zflow" ] || { echo "variational.sh: build zflow first (scripts/build.sh), or set ZFLOW" >&2; exit 1; }

# name: target, then the fit-target options (objective and budget). Chosen by measurement
# (docs/benchmarks.md, "Unnormalised targets").
config() {
  case "$1" in
    u1 | u2 | u3) echo "--target $1 --objective rkl --steps 2000" ;;
    u4) echo "--target u4 --objective rkl --steps 3000" ;;
    gmm40) echo "--target gmm40 --objective fkl --steps 4000" ;;
    funnel) echo "--target funnel --objective rkl --steps 3000" ;;
    many-well-rkl) echo "--target many-well --objective rkl --steps 3000" ;;
    many-well-alpha) echo "--target many-well --objective alpha --steps 3000" ;;
    many-well-fkl) echo "--target many-well --objective fkl --steps 3000" ;;
    camel) echo "--target camel --dim 8 --objective variance --anneal-from 0.01 --anneal-steps 2000 --steps 4000" ;;
    # The flows of variational inference's papers on the 2-D targets: 32 layers, as
    # Rezende & Mohamed 2015 (Fig. 3), with their annealing of the target from beta = 0.01
    # (over half the steps here), and a step size of 0.01 for so few parameters.
    u[1-4]-planar | u[1-4]-radial | u[1-4]-sylvester | gmm40-planar | gmm40-radial | gmm40-sylvester)
      echo "$(config "${1%%-*}") --model ${1#*-} --layers 32 --lr 0.01$(residual_anneal "$1")" ;;
    *) echo "variational.sh: unknown configuration $1" >&2; exit 2 ;;
  esac
}
# The annealing of the u targets' rows with planar, radial and Sylvester flows (gmm40's
# buffered fkl needs none).
residual_anneal() {
  case "$1" in
    u4-*) echo " --anneal-from 0.01 --anneal-steps 1500" ;;
    u*) echo " --anneal-from 0.01 --anneal-steps 1000" ;;
  esac
}
residual_rows=""
for target in u1 u2 u3 u4 gmm40; do
  for model in planar radial sylvester; do residual_rows="$residual_rows $target-$model"; done
done
targets=${TARGETS:-"u1 u2 u3 u4 gmm40 funnel many-well-rkl many-well-alpha many-well-fkl camel$residual_rows"}
# The fitted models and every run's numbers stay in out/bench-variational (a rerun of some
# configurations replaces their files only), for pictures and for a look after a failure.
work=${WORK:-out/bench-variational}
mkdir -p "$work"

run_one() {
  local name=$1 args steps
  args=$(config "$name")
  # SCALE shortens the annealing with the run.
  for option in --steps --anneal-steps; do
    grep -q -- "$option " <<< "$args" || continue
    steps=$(python3 -c 'import sys; print(max(1, round(int(sys.argv[1]) * float(sys.argv[2]))))' \
      "$(sed -E "s/.*$option ([0-9]+).*/\\1/" <<< "$args")" "$scale")
    args=$(sed -E "s/$option [0-9]+/$option $steps/" <<< "$args")
  done
  local start end
  start=$(date +%s.%N)
  # shellcheck disable=SC2086  # the options are a list
  "$zflow" fit-target $args --threads 1 --final-samples 0 --seed 1 \
    --out "$work/$name.safetensors" --quiet 2> "$work/$name.err" || { cat "$work/$name.err" >&2; return 1; }
  end=$(date +%s.%N)
  "$zflow" integrate --model "$work/$name.safetensors" -n "$n" --seed 2 --threads 1 --json --quiet \
    > "$work/$name.flow.json"
  local target proposal
  target=$(sed -E 's/--target ([^ ]+).*/\1/' <<< "$args")
  proposal=normal
  [ "$target" = camel ] && proposal=uniform
  # shellcheck disable=SC2046
  "$zflow" integrate --target "$target" $(grep -o -- '--dim [0-9]*' <<< "$args" || true) \
    --proposal "$proposal" -n "$n" --seed 2 --threads 1 --json --quiet > "$work/$name.plain.json"
  python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$start" "$end" \
    > "$work/$name.seconds"
  echo "$args" > "$work/$name.args"
}

running=0
[ "$run" = 1 ] || targets_to_run=""
for name in ${targets_to_run-$targets}; do
  run_one "$name" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait

# The rows of this run, merged with the rows of other configurations already in
# docs/benchmarks.md (so that TARGETS=gmm40 redoes one row and keeps the others).
table=$(python3 - "$work" "$n" $targets <<'PY'
import json, os, re, sys
work, n, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
order = ["u1", "u2", "u3", "u4", "gmm40", "funnel", "many-well-rkl", "many-well-alpha",
         "many-well-fkl", "camel"]
order += [t + "-" + m for t in ("u1", "u2", "u3", "u4", "gmm40")
          for m in ("planar", "radial", "sylvester")]
def pct(x): return "n/a" if x is None else "%.1f%%" % (100 * x)
def num(x, form="%.4f"): return "n/a" if x is None else form % x
rows = {}
docs = open("docs/benchmarks.md").read()
block = re.search(r"<!-- variational:begin -->(.*?)<!-- variational:end -->", docs, re.S)
for line in (block.group(1).splitlines() if block else []):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) > 2 and cells[0] not in ("run", "") and not cells[0].startswith("-"):
        rows[cells[0]] = line
for name in names:
    f = json.load(open(os.path.join(work, name + ".flow.json")))
    p = json.load(open(os.path.join(work, name + ".plain.json")))
    args = open(os.path.join(work, name + ".args")).read().split()
    secs = float(open(os.path.join(work, name + ".seconds")).read())
    opt = dict(zip(args[::2], args[1::2]))
    exact = f["exact_log_z"]
    dim = opt.get("--dim", {"funnel": "10", "many-well": "32"}.get(opt["--target"], "2"))
    ratio = (p["relative_variance"] / f["relative_variance"]
             if p["relative_variance"] is not None and f["relative_variance"] else None)
    extra = " ".join(k + " " + v for k, v in zip(args[::2], args[1::2])
                     if k not in ("--target", "--objective", "--steps", "--dim"))
    rows[name] = "| %s | %s | %s | %s%s, %s steps, %.0f s | %s ± %s | %s | %s | %s ± %s | %s | %s | %s |" % (
        name, opt["--target"], dim, opt["--objective"], (" " + extra) if extra else "",
        opt["--steps"], secs, num(abs(f["log_z"] - exact)), num(f["log_z_stderr"]), pct(f["ess"]),
        pct(f["unweighting_efficiency"]), num(abs(p["log_z"] - exact)), num(p["log_z_stderr"]),
        pct(p["ess"]), num(p["relative_variance"], "%.3g"), num(ratio, "%.3g"))
print("| run | target | D | fit: objective, steps, time | flow: \\|log Z error\\| ± se | ESS | unweighting | plain MC: \\|log Z error\\| ± se | ESS | relative variance | plain / flow |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name in sorted(rows, key=lambda k: order.index(k) if k in order else len(order)):
    print(rows[name])
PY
)
echo "$table"

if [ "$write_docs" = 1 ]; then
  {
    echo "Measured {date} on {machine} by bench/variational.sh: nsf-coupling (6 layers," \
      "128 hidden; in the rows that name another --model, that model) with batches of 1024" \
      "in float32, fitted with one thread, $jobs fits at a time;" \
      "every estimate with N = $n samples, the flow's and plain Monte Carlo's (uniform on" \
      "the camel's box, else a Gaussian around the target's plot box). Relative variance:" \
      "plain Monte Carlo's var(w)/Z² per sample, and how many times the flow's it is."
    echo
    echo "$table"
  } | python3 bench/docs_block.py variational
fi
