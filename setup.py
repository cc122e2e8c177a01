"""Builds smoothcert and its operator library smoothcert._C.

CPU kernels always build. CUDA kernels build when torch itself has CUDA
(torch.version.cuda), nvcc is found (CUDA_HOME), and a GPU is visible or
FORCE_CUDA=1. Environment: SMOOTHCERT_FORCE_CPU=1, FORCE_CUDA=1, DEBUG=1,
NVCC_FLAGS, TORCH_CUDA_ARCH_LIST (e.g. "9.0" on H100/H200), MAX_JOBS.
"""
import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.getenv("DEBUG", "0") == "1"
FORCE_CPU = os.getenv("SMOOTHCERT_FORCE_CPU", "0") == "1"
FORCE_CUDA = os.getenv("FORCE_CUDA", "0") == "1"
# The supported torch range lives in _version.py; read it without importing the
# package, whose extension is what this file builds.
VERSION = {}
with open(os.path.join(HERE, "python", "smoothcert", "_version.py")) as f:
    exec(f.read(), VERSION)
try:
    _torch_warning = VERSION["check_torch"](torch.__version__)
except ValueError as e:
    raise SystemExit(f"smoothcert build: {e}") from None
if _torch_warning:
    print(f"smoothcert build: warning: {_torch_warning}")
WITH_CUDA = (not FORCE_CPU and torch.version.cuda is not None and CUDA_HOME is not None
             and (torch.cuda.is_available() or FORCE_CUDA))
LIMITED_API = torch.__version__ >= (2, 6, 0)  # TorchVersion compares numerically
# at::parallel_for is a header template: without -fopenmp our kernels would run
# on one thread. Linking -fopenmp names libgomp.so.1, which resolves to the
# copy torch has already loaded, so there is one OpenMP runtime in the process.
OPENMP = "OpenMP" in torch.__config__.parallel_info() and os.name == "posix"


def rel(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def extension():
    sources = rel("csrc/*.cpp") + rel("csrc/cpu/*.cpp")
    cxx = (["-O0", "-g"] if DEBUG else ["-O3"]) + ["-fopenmp-simd", "-fno-math-errno", "-ffp-contract=off"]
    link = ["-fopenmp"] if OPENMP else []
    cxx += link
    macros = []
    if LIMITED_API:
        macros.append(("Py_LIMITED_API", "0x03090000"))
    if not WITH_CUDA:
        return CppExtension("smoothcert._C", sources, extra_compile_args={"cxx": cxx},
                            extra_link_args=link, define_macros=macros, py_limited_api=LIMITED_API)
    sources += rel("csrc/cuda/*.cpp") + rel("csrc/cuda/*.cu")
    major, minor = (int(v) for v in torch.version.cuda.split(".")[:2])
    macros += [("SMOOTHCERT_WITH_CUDA", None), ("SMOOTHCERT_CUDA_VERSION", str(1000 * major + 10 * minor))]
    # No FMA contraction: the noise math must round exactly like the CPU build.
    nvcc = (["-O0", "-g", "-lineinfo"] if DEBUG else ["-O3"]) + ["--fmad=false"]
    import sys  # the guard lives beside setup.py so tests can import it without building
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from tools.nvcc_flags import checked_nvcc_flags
    nvcc += checked_nvcc_flags(os.getenv("NVCC_FLAGS", ""))
    return CUDAExtension("smoothcert._C", sources, extra_compile_args={"cxx": cxx, "nvcc": nvcc},
                         extra_link_args=link, define_macros=macros, py_limited_api=LIMITED_API)


print(f"smoothcert build: torch {torch.__version__}, torch CUDA {torch.version.cuda}, "
      f"CUDA_HOME {CUDA_HOME}, WITH_CUDA {WITH_CUDA}, OpenMP {OPENMP}, DEBUG {DEBUG}, limited API {LIMITED_API}")

setup(
    name="smoothcert",
    version=VERSION["__version__"],
    description="Fast, sound randomized-smoothing certification for PyTorch classifiers",
    package_dir={"": "python"},
    packages=find_packages("python"),
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    options={"bdist_wheel": {"py_limited_api": "cp39"}} if LIMITED_API else {},
    python_requires=">=3.10",
    install_requires=[f"torch>={VERSION['TORCH_MIN']}", "numpy", "scipy>=1.11", "tqdm", "matplotlib", "scikit-learn"],
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": ["smoothcert = smoothcert.cli:main"]},
)
