"""The NVCC_FLAGS guard: the CUDA kernels match the CPU ones bit for bit only because every float
operation rounds as written (``--fmad=false``, IEEE division and square root, denormals kept), so
flags that relax this are refused instead of silently breaking CPU = CUDA certificates."""

_REFUSED = {"--use_fast_math", "-use_fast_math", "--fmad=true", "-fmad=true", "--ftz=true", "-ftz=true",
            "--prec-div=false", "-prec-div=false", "--prec-sqrt=false", "-prec-sqrt=false"}


def checked_nvcc_flags(text: str) -> list:
    """The words of ``NVCC_FLAGS``; ValueError naming the first flag that breaks bit identity."""
    words = text.split()
    for i, w in enumerate(words):
        pair = w + "=" + words[i + 1] if w in ("--fmad", "-fmad", "--ftz", "-ftz", "--prec-div", "-prec-div",
                                                  "--prec-sqrt", "-prec-sqrt") and i + 1 < len(words) else w
        if w in _REFUSED or pair in _REFUSED:
            raise ValueError(f"NVCC_FLAGS contains {pair!r}, which breaks CPU = CUDA bit identity "
                             "(the kernels need --fmad=false and exact division/sqrt); remove it")
    return words
