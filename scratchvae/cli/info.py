"""`scratchvae info`: version, backend and device, which path training runs, the data cache."""

from __future__ import annotations

from .. import __version__, backend, datasets, kernels
from .common import chosen_dtype, training_path


def threads_line(b) -> str:
    """What the thread policy will do here, before a run measures anything."""
    from .. import threads

    if b.name == "cupy":
        return "not applied: the matrix products run on the GPU"
    try:
        setting = threads.parse_setting(None)
    except ValueError as exc:  # info reports; train refuses
        return f"{exc}: training will refuse to start until {threads.ENV} is fixed"
    if setting != "auto":
        return f"{setting} (set by {threads.ENV})"
    return (f"auto: BLAS has {threads.blas_threads()} here; a training run gives products under "
            f"{threads.SMALL_PRODUCT_FLOPS:.0e} flops one thread, else measures 1 against "
            f"{threads.blas_threads()} on its first steps ({threads.ENV} or --threads overrides)")


def info(args) -> int:
    from ..datasets import mnist

    b = backend.use(args.backend, dtype=chosen_dtype(args) or "float32")
    info = backend.info()
    print(f"scratchvae {__version__}")
    print(f"backend:     {b.name} on {b.device} ({b.dtype_name})")
    print(f"cupy:        {info['cupy']}")
    print(f"numpy:       {info['numpy']}, array-api-compat {info['array_api_compat']}")
    fused = kernels.status()
    print(f"kernels:     NumPy: {fused['numpy']}")
    print(f"             CuPy: {fused['cupy']}")
    print(f"training:    {training_path(b)}")
    print(f"threads:     {threads_line(b)}")
    print(f"data cache:  {mnist.default_data_dir()}  (set SCRATCHVAE_DATA to move it)")
    print(f"data sets:   {', '.join(datasets.available())}")
    return 0
