"""The package version and the torch versions the extension supports.

setup.py reads this file without importing the package (the extension is not
built yet), so it holds only constants and a pure function.
"""
__version__ = "0.1.0"

# Oldest torch: the extension's limited-API build (setup.py's LIMITED_API) and
# torch.library.register_fake / opcheck (2.4) need 2.6. Newest tested: the
# version install.sh installs and CI runs.
TORCH_MIN = "2.6"
TORCH_TESTED = "2.13"


def _major_minor(version):
    """``"2.13.0+cpu"`` -> ``(2, 13)``."""
    parts = version.split("+")[0].split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        raise ValueError(f"cannot read torch version {version!r}") from None


def check_torch(version):
    """Checks a torch version string against the supported range.

    Returns None when ``TORCH_MIN <= version <= TORCH_TESTED`` (major.minor), a
    warning string when it is newer than the newest tested, and raises
    ValueError (one line naming the version and the range) when it is older.
    """
    have, low, high = _major_minor(version), _major_minor(TORCH_MIN), _major_minor(TORCH_TESTED)
    if have < low:
        raise ValueError(f"smoothcert needs torch >= {TORCH_MIN} (tested up to {TORCH_TESTED}); "
                         f"torch {version} is installed")
    if have > high:
        return (f"smoothcert is tested with torch {TORCH_MIN} to {TORCH_TESTED}; torch {version} "
                f"is newer and may not build or behave the same")
    return None
