#!/usr/bin/env bash
# Second-order and dipole smoothing on Levine et al.'s 2-D Swiss roll (their §3, Fig. 2):
# make_swiss_roll(1000, noise 1.0, random_state 1) for training, (100, 1.0, 2) for testing,
# features (x, z) / 10, label 1[t > 3 pi]; MLP 2-10-10-2 trained by smoothcert train with Gaussian
# noise at sigma 0.5 (300 epochs, SGD lr 0.05 cosine, batch 50); certified at sigma 0.5, n0 = 100,
# alpha = 0.001, N = 1e7 (the paper: 1e8) on all 100 test points.
# Usage: bash scripts/reproduce_swiss_roll.sh [OUT_DIR]   (resumes: rerun the same command)
set -euo pipefail
out=${1:-results/swiss_roll}
n=${SWISS_N:-10000000}
mkdir -p "$out"
smoothcert train --method gaussian --arch mlp10 --dataset swiss-roll --sigma 0.5 --epochs 300 --batch 50 --lr 0.05 \
  --momentum 0.9 --weight-decay 0 --schedule cosine --no-progress --out "$out/mlp10_0.5.pt"
for kind in sos dipole; do
  extra=(); [ "$kind" = dipole ] && extra=(--no-first-order)
  smoothcert certify --model "$out/mlp10_0.5.pt" --dataset swiss-roll --sigma 0.5 --certificate "$kind" --n0 100 \
    --n "$n" --alpha 0.001 --batch 200000 --no-progress --out "$out/${kind}_N$n.tsv" "${extra[@]}"
done
smoothcert analyze "$out/sos_N$n.tsv" "$out/dipole_N$n.tsv" --labels sos dipole --radii 0 0.125 0.25 0.375 0.5 0.75 \
  --ratio-baseline "$out/sos_N$n.tsv" --ratio-plot "$out/ratios_N$n.png" --plot "$out/certified_accuracy_N$n.png" \
  --title "Swiss roll, sigma 0.5, N = $n" --out-table "$out/summary.md" > /dev/null
