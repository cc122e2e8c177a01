#!/usr/bin/env bash
# Second-order (SoS) and dipole smoothing, Levine et al. (seed-003), on real 7x7 MNIST (d = 49: the
# 28x28 images 4x4 average-pooled, as in the paper). The paper's network (Conv 1->4 k2, FC100, FC10)
# trained by smoothcert train with Gaussian noise at each certification sigma, Cohen's schedule
# (90 epochs, SGD lr 0.1 x0.1 at 30/60, momentum 0.9, wd 1e-4, batch 400).
# Certified with n0 = 100, alpha = 0.001 (2 CPU cores: ~0.15 s per image per 1e5 samples):
#   N = 1e5: sigma in {0.12, 0.25, 0.5}, 500 test images (every 20th);
#   N = 1e6: sigma 0.25 on the same 500 images; sigma 0.12 and 0.5 on 100 (every 100th);
#   N = 1e7: sigma 0.25 on 100 images (every 100th).
#   sos_*.tsv     second-order radius, and Cohen's first-order one from the same samples (fo_*)
#   dipole_*.tsv  dipole radius from independent antithetic draws (stream 8), no extra baseline pass
# Usage: bash scripts/reproduce_sos.sh MNIST_ROOT [OUT_DIR]   (every step resumes: rerun the same command)
set -euo pipefail
root=${1:?usage: reproduce_sos.sh MNIST_ROOT [OUT_DIR]}
out=${2:-results/mnist7_sos}
mkdir -p "$out"
data=(--dataset mnist-7x7 --data-root "$root")
for s in 0.12 0.25 0.5; do
  smoothcert train --method gaussian --arch smallconv "${data[@]}" --sigma "$s" --epochs 90 --batch 400 --lr 0.1 \
    --momentum 0.9 --weight-decay 1e-4 --schedule step --milestones 30 60 --lr-gamma 0.1 --no-progress \
    --out "$out/smallconv_$s.pt"
done
[ "${SOS_TRAIN_ONLY:-0}" = 1 ] && exit 0
cert() {  # sigma N skip certificate [extra...]
  local s=$1 n=$2 skip=$3 kind=$4; shift 4
  smoothcert certify --model "$out/smallconv_$s.pt" "${data[@]}" --sigma "$s" --certificate "$kind" \
    --n0 100 --n "$n" --alpha 0.001 --batch 20000 --skip "$skip" --no-progress --out "$out/${kind}_${s}_N$n.tsv" "$@"
}
both() { cert "$@" sos; cert "$1" "$2" "$3" dipole --no-first-order; }
for s in 0.12 0.25 0.5; do both "$s" 100000 20; done
both 0.25 1000000 20
both 0.12 1000000 100
both 0.5 1000000 100
both 0.25 10000000 100
[ "${SOS_CERTIFY_ONLY:-0}" = 1 ] && exit 0
# One section per (sigma, N): certified accuracy of the first-order (fo_* of the sos file),
# second-order and dipole certificates, then the paper's ratio histograms against first order.
radii=(0 0.125 0.25 0.375 0.5 0.75)
: > "$out/summary.md"
for run in 0.12_N100000 0.25_N100000 0.5_N100000 0.12_N1000000 0.25_N1000000 0.5_N1000000 0.25_N10000000; do
  printf '## sigma %s, N = %s\n\n' "${run%%_N*}" "${run##*_N}" >> "$out/summary.md"
  smoothcert analyze "$out/sos_$run.tsv" "$out/dipole_$run.tsv" --labels "sos_$run" "dipole_$run" \
    --radii "${radii[@]}" --ratio-baseline "$out/sos_$run.tsv" --ratio-plot "$out/ratios_$run.png" \
    --plot "$out/certified_accuracy_$run.png" --title "7x7 MNIST, sigma ${run%%_N*}, N = ${run##*_N}" \
    --out-table "$out/summary_$run.md" > /dev/null
  cat "$out/summary_$run.md" >> "$out/summary.md" && rm "$out/summary_$run.md"
  printf '\n' >> "$out/summary.md"
done
