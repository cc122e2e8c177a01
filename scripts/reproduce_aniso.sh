#!/usr/bin/env bash
# Non-uniform (per-element sigma) smoothing, Tecot et al. (Robustness Verification with Non-Uniform
# Randomized Smoothing), on real MNIST and Fashion-MNIST.
# LeNet base models trained with Gaussian noise (sigma 0.25); sigma fitted on 20,000 training images
# (1,000 others held out), two c0 per dataset in standardised units as the paper's; each fitted sigma
# certified on 500 test images (every 20th), n0=100, n=10,000, alpha=0.001, against isotropic sigma at
# its arithmetic and geometric mean.
# Usage: bash scripts/reproduce_aniso.sh MNIST_ROOT FASHION_MNIST_ROOT [OUT_PREFIX]
# Every step resumes if interrupted: rerun the same command.
set -euo pipefail
mnist=${1:?usage: reproduce_aniso.sh MNIST_ROOT FASHION_MNIST_ROOT [OUT_PREFIX]}
fashion=${2:?usage: reproduce_aniso.sh MNIST_ROOT FASHION_MNIST_ROOT [OUT_PREFIX]}
prefix=${3:-results}
fit=(--units standardized --fit-count 20000 --val 1000 --sub-epochs 5 --samples 32 --lr 3e-3 --decay 0.5
     --batch 128 --eval-n0 64 --eval-n 512 --no-progress)
cert=(--n0 100 --n 10000 --alpha 0.001 --batch 1000 --skip 20 --no-progress)
stat() { python3 -c "from smoothcert.sigma import load_sigma; s=load_sigma('$1')[0].double(); \
print(repr(float(s.mean())) if '$2' == 'mean' else repr(float(s.log().mean().exp())))"; }

run_dataset() {  # name root model out c0...
  local name=$1 root=$2 model=$3 out=$4; shift 4
  mkdir -p "$out"
  smoothcert fit-sigma --model "$model" --dataset "$name" --data-root "$root" --out "$out/fit" --c0 "$@" "${fit[@]}"
  local files=() labels=()
  for c0 in "$@"; do
    local s="$out/fit/c0_$(python3 -c "print(f'{float($c0):g}')")/sigma.pt"  # fit-sigma names dirs by %g
    smoothcert certify --model "$model" --dataset "$name" --data-root "$root" --sigma-file "$s" "${cert[@]}" \
      --out "$out/aniso_c0_$c0.tsv"
    for kind in mean geomean; do
      smoothcert certify --model "$model" --dataset "$name" --data-root "$root" --sigma "$(stat "$s" $kind)" \
        "${cert[@]}" --out "$out/iso_${kind}_c0_$c0.tsv"
    done
    files+=("$out/aniso_c0_$c0.tsv" "$out/iso_mean_c0_$c0.tsv" "$out/iso_geomean_c0_$c0.tsv")
    labels+=("aniso_c0_$c0" "iso_mean_c0_$c0" "iso_geomean_c0_$c0")
  done
  smoothcert analyze "${files[@]}" --labels "${labels[@]}" --radii 0 0.25 0.5 0.75 1.0 \
    --volumes -1500 -1000 -750 -500 -250 --out-table "$out/summary.md" --plot "$out/certified_accuracy_l2.png" \
    --volume-plot "$out/certified_accuracy_volume.png" --title "LeNet on $name, n = 10,000, alpha = 0.001"
}

smoothcert train --method gaussian --sigma 0.25 --epochs 3 --arch lenet --dataset fashion-mnist --data-root "$fashion" \
  --batch 128 --lr 0.05 --weight-decay 5e-4 --no-progress --out "$prefix/fmnist_aniso/lenet_gaussian_0.25.pt"
run_dataset mnist "$mnist" "$prefix/mnist/lenet_gaussian_0.25.pt" "$prefix/mnist_aniso" 0.8 1.2
run_dataset fashion-mnist "$fashion" "$prefix/fmnist_aniso/lenet_gaussian_0.25.pt" "$prefix/fmnist_aniso" 0.7 1.0
