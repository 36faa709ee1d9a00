"""Deprecated (goes in scratchvae 0.3): ``python -m scratchvae.bench`` is ``scratchvae bench``.

The benchmark harness lives in benchmarks/ now, and ``scratchvae.profile`` holds what the
package keeps of it."""

import sys
import warnings

from .cli import main

if __name__ == "__main__":
    warnings.warn("python -m scratchvae.bench is deprecated and goes in scratchvae 0.3; "
                  "run `scratchvae bench` instead", DeprecationWarning, stacklevel=1)
    sys.exit(main(["bench", *sys.argv[1:]]))
