"""Independent forward model of a plscope measurement.

Nothing here imports plscope: particle images are rendered by brute force
(supersampled shapes convolved with a sampled PSF, binned to pixels), the
camera is a per-pixel sCMOS model, and the PL response and the DAQ log are
written from their definitions. A run folder follows docs/run-folder.md.
"""

from .imaging import MovieSpec, ParticleSpec, render_movie
from .psf import airy_sigma_nm, psf_kernel
from .runfolder import write_run_folder
from .shapes import shape_mask

__all__ = [
    "MovieSpec",
    "ParticleSpec",
    "airy_sigma_nm",
    "psf_kernel",
    "render_movie",
    "shape_mask",
    "write_run_folder",
]
