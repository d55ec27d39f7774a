#!/usr/bin/env bash
# `make demo`: record runs of the examples in a scratch repository, and show them.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
project="$(mktemp -d "${TMPDIR:-/tmp}/gitexp-demo.XXXXXX")/project"
mkdir -p "$project"
cp "$here/train.py" "$here/train_torch.py" "$project/"
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

# A real PyTorch script that logs its loss from inside, with gitexp.init and run.log:
# once launched by `gitexp run`, once on its own.
git checkout -q -- train.py
step gitexp run --name torch-baseline --seed 0 -- python train_torch.py --epochs 30
step python train_torch.py --seed 1 --epochs 30 --hidden 16

step gitexp log
step gitexp show torch-baseline
step git status --short

printf '\nThe demo repository is %s: explore it with gitexp and git.\n' "$project"
