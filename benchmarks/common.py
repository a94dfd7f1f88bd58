"""What the benchmarks share: naming the machine a figure came from."""

import os
import platform


def machine():
    """The GPU's name where JAX sees one, else the processor and its core count."""
    try:
        import jax
        devices = [d for d in jax.devices() if d.platform == "gpu"]
        if devices:
            return devices[0].device_kind
    except Exception:  # no JAX, or no usable device: the CPU is the machine
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
