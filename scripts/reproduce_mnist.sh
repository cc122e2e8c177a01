#!/usr/bin/env bash
# LeNet on real MNIST: gaussian (sigma 0.25, 0.5), smoothadv and macer (sigma 0.25),
# each certified on 500 test images (every 20th) with n0=100, n=10,000, alpha=0.001.
# Usage: bash scripts/reproduce_mnist.sh DATA_ROOT [OUT_DIR]   (DATA_ROOT holds the MNIST idx files)
# Every step resumes if interrupted: rerun the same command.
set -euo pipefail
root=${1:?usage: reproduce_mnist.sh DATA_ROOT [OUT_DIR]}
out=${2:-results/mnist}
mkdir -p "$out"
common=(--arch lenet --dataset mnist --data-root "$root" --batch 128 --lr 0.05 --weight-decay 5e-4 --no-progress)
cert=(--dataset mnist --data-root "$root" --n0 100 --n 10000 --alpha 0.001 --batch 1000 --skip 20 --no-progress)
smoothcert train --method gaussian --sigma 0.25 --epochs 3 "${common[@]}" --out "$out/lenet_gaussian_0.25.pt"
smoothcert certify --model "$out/lenet_gaussian_0.25.pt" --sigma 0.25 "${cert[@]}" --out "$out/lenet_gaussian_0.25.tsv"
smoothcert train --method gaussian --sigma 0.5 --epochs 2 "${common[@]}" --out "$out/lenet_gaussian_0.50.pt"
smoothcert certify --model "$out/lenet_gaussian_0.50.pt" --sigma 0.5 "${cert[@]}" --out "$out/lenet_gaussian_0.50.tsv"
smoothcert train --method smoothadv --sigma 0.25 --epochs 1 --m 1 --pgd-steps 2 --epsilon 0.25 --warmup 1 \
  "${common[@]}" --out "$out/lenet_smoothadv_0.25.pt"
smoothcert certify --model "$out/lenet_smoothadv_0.25.pt" --sigma 0.25 "${cert[@]}" --out "$out/lenet_smoothadv_0.25.tsv"
smoothcert train --method macer --sigma 0.25 --epochs 1 --k 4 --lbd 12 --macer-gamma 8 --beta 16 \
  "${common[@]}" --out "$out/lenet_macer_0.25.pt"
smoothcert certify --model "$out/lenet_macer_0.25.pt" --sigma 0.25 "${cert[@]}" --out "$out/lenet_macer_0.25.tsv"
smoothcert analyze "$out"/lenet_gaussian_0.25.tsv "$out"/lenet_gaussian_0.50.tsv "$out"/lenet_smoothadv_0.25.tsv \
  "$out"/lenet_macer_0.25.tsv --radii 0 0.25 0.5 0.75 1.0 1.25 --out-table "$out/summary.md" --plot "$out/certified_accuracy.png" \
  --title "LeNet on MNIST, n = 10,000, alpha = 0.001"
