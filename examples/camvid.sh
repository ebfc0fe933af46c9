#!/usr/bin/env bash
# FCN-8s from ImageNet VGG16, trained on CamVid on the CPU and scored on its test set: the run of
# docs/camvid.md, end to end, from the raw CamVid folder and the VGG16 weights.
#
#   bash examples/camvid.sh [CAMVID_DIR] [VGG16_NPZ] [RUN_DIR]
#
# Defaults: $MINIFCN_SHARED (or ../shared)/data/camvid, .../weights/vgg16_imagenet_conv_oihw_bgr.npz,
# runs/camvid. Interrupted (Ctrl-C, or the 148-minute guard)? Run the same line again: it resumes.
set -euo pipefail
cd "$(dirname "$0")/.."

shared=${MINIFCN_SHARED:-../shared}
camvid=${1:-$shared/data/camvid}
vgg=${2:-$shared/weights/vgg16_imagenet_conv_oihw_bgr.npz}
run=${3:-runs/camvid}
init=${run%/}-vgg16.npz  # the converted VGG16 weights, beside the run

[ -f "$init" ] || python -m minifcn.convert "$vgg" "$init"

if [ -f "$run/last.npz" ]; then
    python -m minifcn.train --resume "$run"
else
    # Compact geometry with 1024-channel fc6/fc7 (fc6/fc7 start at random: the weights have none),
    # conv1-conv2 frozen, whole 360x480 images one at a time, Adam, no class weighting:
    # chosen on val with short runs (docs/camvid.md says which and why).
    python -m minifcn.train --data camvid --data-root "$camvid" --init "$init" \
        --geometry compact --fc-channels 1024 --freeze conv2_2 --batch-size 1 \
        --optimizer adam --lr 1e-4 --epochs 10 --eval-every 2 --time-limit 148 --out "$run"
fi

# The checkpoint that scored best on val, on the 233 test images at 360x480; the scores JSON goes
# beside it (best_camvid_scores.json, never overwriting an earlier one).
python -m minifcn.evaluate --weights "$run/best.npz" --data camvid --data-root "$camvid" --split test
