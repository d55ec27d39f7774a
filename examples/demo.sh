#!/usr/bin/env bash
# `make demo`: record runs of the examples in a scratch repository, and show them.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
project="$(mktemp -d "${TMPDIR:-/tmp}/gitexp-demo.XXXXXX")/project"
mkdir -p "$project"
cp "$here/train.py" "$here/train_torch.py" "$here/make_data.py" "$project/"
cd "$project"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

git init -q -b main
git config user.name "gitexp demo"
git config user.email "demo@example.com"
git add train.py train_torch.py
git commit -q -m "Two small training jobs"

step gitexp run --name baseline --tag demo --seed 0 -- python train.py --lr 0.05 --epochs 5
# An uncommitted edit: gitexp records it exactly, as a snapshot commit and code.diff.
sed -i.bak 's/default=200/default=400/' train.py && rm train.py.bak
step gitexp run --name more-data --tag demo --seed 0 -- python train.py --lr 0.05 --epochs 5
# A failing run is recorded too, and gitexp exits with its status.
step gitexp run --name too-fast --tag demo --seed 0 -- python train.py --lr 50 --epochs 5 || true

step git log --first-parent --format='%h %s' gitexp/runs
snapshots=($(git log --first-parent --format='%P' gitexp/runs -n 3 | awk '{print $2}'))
step git diff --stat "${snapshots[2]}" "${snapshots[1]}"
# Compare runs one axis at a time: the edited default alone is a valid comparison (one
# change, config.samples, shown in the code and in the config)...
step gitexp diff --no-pager baseline more-data
# ...the edit and the learning rate together are not: gitexp refuses (exit 3), names both,
# and points at the run that differs from the baseline on one of them alone.
step gitexp diff --no-pager baseline too-fast || echo "(exit $?)"

# Data: `gitexp init` sets up DVC with a directory remote; the dataset is pinned by DVC.
git checkout -q -- train.py
step gitexp init --remote "$(dirname "$project")/dvc-remote"
python make_data.py data/spirals.csv
step dvc add -q data/spirals.csv
# The same bytes the project itself pins in examples/data/spirals.csv.dvc:
diff <(grep md5 data/spirals.csv.dvc) <(grep md5 "$here/data/spirals.csv.dvc") && echo "md5 matches examples/data/spirals.csv.dvc"
git add -A && git commit -q -m "The spirals dataset, pinned by DVC"

# A real PyTorch script that logs its loss from inside (gitexp.init, run.log) and saves
# checkpoints into the DVC cache: once launched by `gitexp run`, once on its own.
step gitexp run --name torch-baseline --seed 0 -- python train_torch.py --epochs 30 --dataset data/spirals.csv
step python train_torch.py --seed 1 --epochs 30 --hidden 16 --dataset data/spirals.csv

# Edited data is refused (exit 3) unless allowed; then its new md5 is recorded.
echo "0.5,0.5,1" >> data/spirals.csv
step gitexp run -- python train_torch.py --epochs 1 --dataset data/spirals.csv || echo "(exit $?)"
step gitexp run --name edited-data --allow-unpinned-data -- python train_torch.py --epochs 1 --dataset data/spirals.csv
# Lost data comes back, byte for byte, from the DVC cache.
rm data/spirals.csv
step gitexp checkout torch-baseline data/spirals.csv
# A run that reads another run's checkpoint records it: lineage.
best=$(git show "gitexp/runs:experiments/$(gitexp log --name torch-baseline --json | python -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')/artifacts.yaml" | python -c 'import sys; from ruamel.yaml import YAML; print([a["path"] for a in YAML(typ="safe").load(sys.stdin)["artifacts"] if a["role"] == "best"][-1])')
step gitexp run --name evaluate --data "$best" -- python -c "import torch; print(sorted(torch.load('$best')))"

step gitexp log
step gitexp show evaluate
# Replay a run on its exact code, data and seed (in a worktree of its own), and compare;
# then the same run with one change, which `gitexp diff` shows as that one axis.
step gitexp reproduce --yes torch-baseline
step gitexp rerun --yes torch-baseline -p epochs=40
step gitexp diff --no-pager --stat torch-baseline @
# Two changes at once prove nothing (`diff` refuses them); `explain` makes the runs that
# take each change alone from the baseline (the rerun above is one already), and says
# which change moved the loss.
step gitexp run --name wider-longer --seed 0 -- python train_torch.py --epochs 40 --hidden 16 --dataset data/spirals.csv
step gitexp explain --yes -m train/loss torch-baseline wider-longer
# Code review: a Markdown report for the pull request, and the records it rests on copied
# onto a code branch (the records are unsigned here: configure a signing key to sign them).
step gitexp report --baseline torch-baseline torch-baseline @
step gitexp publish torch-baseline @ --to review
step git show --stat --format=%s review
# A sweep to look at: three learning rates by three seeds. `gitexp ui` serves the runs table,
# each run's page and comparisons (a seed group as its mean and a band) on 127.0.0.1 until
# Ctrl-C; `report --html` writes the same views of chosen runs into one file that needs no
# network, to attach to a pull request or carry across an air gap.
for lr in 0.01 0.03 0.1; do
  for seed in 0 1 2; do
    gitexp run --name "sweep-lr$lr" --tag sweep --seed "$seed" -- \
      python train_torch.py --lr "$lr" --epochs 10 --dataset data/spirals.csv >/dev/null
  done
done
step gitexp log -w tag=sweep -c name,config.lr,train/loss.last,train/accuracy.last -s config.lr
step gitexp report --where tag=sweep --html "$(dirname "$project")/sweep.html"
# The air gap: every run, its code and its data in one file.
step gitexp bundle create "$(dirname "$project")/stick.gxb"
step git status --short

printf '\nThe demo repository is %s: explore it with gitexp and git,\n' "$project"
printf 'in a browser with `cd %s && gitexp ui`, or open %s.\n' "$project" "$(dirname "$project")/sweep.html"
