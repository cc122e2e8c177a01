#!/usr/bin/env bash
# L1 certification of LeNet on real MNIST (Levine & Feizi 2021): DSSN, randomized SSN and uniform
# noise, each trained with noise augmentation (3 epochs) at sigma 0.5 and 1.0 and certified on 500
# test images (every 20th). DSSN is exact (all L offsets); SSN and uniform use n0=64, n=10,000,
# alpha=0.001 (one-sided).
# Usage: bash scripts/reproduce_mnist_l1.sh DATA_ROOT [OUT_DIR]   (DATA_ROOT holds the MNIST idx files)
# Every step resumes if interrupted: rerun the same command.
set -euo pipefail
root=${1:?usage: reproduce_mnist_l1.sh DATA_ROOT [OUT_DIR]}
out=${2:-results/mnist_l1}
mkdir -p "$out"
common=(--arch lenet --dataset mnist --data-root "$root" --batch 128 --lr 0.05 --weight-decay 5e-4 --no-progress)
cert=(--dataset mnist --data-root "$root" --batch 1000 --skip 20 --no-progress)
mc=(--n0 64 --n 10000 --alpha 0.001)
tsvs=()
for s in 0.50 1.00; do
  for noise in dssn ssn uniform; do
    name="$out/lenet_${noise}_${s}"
    smoothcert train --method gaussian --noise "$noise" --sigma "$s" --epochs 3 "${common[@]}" --out "$name.pt"
    if [ "$noise" = dssn ]; then
      smoothcert certify --model "$name.pt" --noise dssn --sigma "$s" "${cert[@]}" --out "$name.tsv"
    else
      smoothcert certify --model "$name.pt" --noise "$noise" --sigma "$s" "${mc[@]}" "${cert[@]}" --out "$name.tsv"
    fi
    tsvs+=("$name.tsv")
  done
done
smoothcert analyze "${tsvs[@]}" --radii 0 0.25 0.5 0.75 1.0 1.25 1.5 --out-table "$out/summary.md" \
  --best "DSSN best sigma=lenet_dssn_0.50,lenet_dssn_1.00" \
  --best "SSN best sigma=lenet_ssn_0.50,lenet_ssn_1.00" \
  --best "uniform best sigma=lenet_uniform_0.50,lenet_uniform_1.00" \
  --plot "$out/certified_accuracy.png" --title "LeNet/MNIST, L1: DSSN exact; SSN, uniform n=10k"
