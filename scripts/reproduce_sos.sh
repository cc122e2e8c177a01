#!/usr/bin/env bash
# Second-order (SoS) and dipole smoothing, Levine et al. (Tight Second-Order Certificates, §5), on
# real 7x7 MNIST (d = 49: the 28x28 images 4x4 average-pooled, as in the paper), or another 7x7
# dataset. The network of the authors' released code (Conv 1->4 k2, FC100, FC10) trained by
# smoothcert train with Gaussian noise at each certification sigma, Cohen's schedule (90 epochs, SGD
# lr 0.1 x0.1 at 30/60, momentum 0.9, wd 1e-4, batch 400).
# Certified with n0 = 100, alpha = 0.001 (2 CPU cores: ~0.15 s per image per 1e5 samples):
#   N = 1e5: sigma in {0.12, 0.25, 0.5}, 500 test images (every 20th);
#   N = 1e6: sigma 0.25 on the same 500 images; sigma 0.12 and 0.5 on 100 (every 100th);
#   N = 1e7: sigma 0.25 on 100 images (every 100th).
# (SOS_PLAN=quick: the N = 1e5 runs only.)
#   sos_*.tsv     second-order radius, and Cohen's first-order one from the same samples (fo_*)
#   dipole_*.tsv  dipole radius from independent antithetic draws (stream 8), no extra baseline pass
# Usage: bash scripts/reproduce_sos.sh DATA_ROOT [OUT_DIR] [DATASET]   (every step resumes: rerun it)
#   e.g. SOS_PLAN=quick bash scripts/reproduce_sos.sh /usr/share/datasets/fashion-mnist \
#          results/fmnist7_sos fashion-mnist-7x7
set -euo pipefail
root=${1:?usage: reproduce_sos.sh DATA_ROOT [OUT_DIR] [DATASET]}
out=${2:-results/mnist7_sos}
dataset=${3:-mnist-7x7}
mkdir -p "$out"
data=(--dataset "$dataset" --data-root "$root")
for s in 0.12 0.25 0.5; do
  smoothcert train --method gaussian --arch smallconv "${data[@]}" --sigma "$s" --epochs 90 --batch 400 --lr 0.1 \
    --momentum 0.9 --weight-decay 1e-4 --schedule step --milestones 30 60 --lr-gamma 0.1 --no-progress \
    --out "$out/smallconv_$s.pt"
done
[ "${SOS_TRAIN_ONLY:-0}" = 1 ] && exit 0
# sigma:N:skip of every run
runs=(0.12:100000:20 0.25:100000:20 0.5:100000:20)
[ "${SOS_PLAN:-full}" = full ] && runs+=(0.12:1000000:100 0.25:1000000:20 0.5:1000000:100 0.25:10000000:100)
for run in "${runs[@]}"; do
  IFS=: read -r s n skip <<< "$run"
  for kind in sos dipole; do
    extra=(); [ "$kind" = dipole ] && extra=(--no-first-order)
    smoothcert certify --model "$out/smallconv_$s.pt" "${data[@]}" --sigma "$s" --certificate "$kind" \
      --n0 100 --n "$n" --alpha 0.001 --batch 20000 --skip "$skip" --no-progress \
      --out "$out/${kind}_${s}_N$n.tsv" "${extra[@]}"
  done
done
[ "${SOS_CERTIFY_ONLY:-0}" = 1 ] && exit 0
# One section per run: certified accuracy of the first-order (fo_* of the sos file), second-order
# and dipole certificates, then the paper's ratio histograms against first order.
: > "$out/summary.md"
for run in "${runs[@]}"; do
  IFS=: read -r s n skip <<< "$run"
  printf '## sigma %s, N = %s, every %sth test image\n\n' "$s" "$n" "$skip" >> "$out/summary.md"
  smoothcert analyze "$out/sos_${s}_N$n.tsv" "$out/dipole_${s}_N$n.tsv" --labels "sos_${s}_N$n" "dipole_${s}_N$n" \
    --radii 0 0.125 0.25 0.375 0.5 0.75 --ratio-baseline "$out/sos_${s}_N$n.tsv" \
    --ratio-plot "$out/ratios_${s}_N$n.png" --plot "$out/certified_accuracy_${s}_N$n.png" \
    --title "$dataset, sigma $s, N = $n" --out-table "$out/summary_run.md" > /dev/null
  cat "$out/summary_run.md" >> "$out/summary.md" && rm "$out/summary_run.md"
  printf '\n' >> "$out/summary.md"
done
