"""The joint whole-trace fit's covariance, block by block, equals the one from the dense Jacobian."""

from __future__ import annotations

import numpy as np

from plscope.kinetics.trace_fit import _covariance, _covariance_from_blocks


def _block_arrow_jacobian(seed: int, sizes: list[int], n_rows: list[int]):
    """A random Jacobian with the joint fit's structure (data rows per particle, then 3 prior rows per
    particle: its shape parameter and the population mean), as its dense data blocks, its prior rows and
    the whole dense matrix."""
    rng = np.random.default_rng(seed)
    n_par = sum(sizes) + 3
    blocks = [
        rng.normal(size=(nr, size)) * rng.uniform(0.1, 10.0, (nr, 1)) for size, nr in zip(sizes, n_rows)
    ]
    blocks[0][:, 5] = 0.0  # particle 0 has an undetermined parameter (a flat direction)
    prior = np.zeros((3 * len(sizes), n_par))
    offs = np.cumsum([0, *sizes])
    for i in range(len(sizes)):
        for k in range(3):
            prior[3 * i + k, [offs[i] + 1 + k, n_par - 3 + k]] = rng.uniform(0.1, 10.0) * np.array(
                [1.0, -1.0]
            )
    dense = np.zeros((sum(n_rows), n_par))
    r = 0
    for i, b in enumerate(blocks):
        dense[r : r + b.shape[0], offs[i] : offs[i + 1]] = b
        r += b.shape[0]
    return blocks, prior, np.vstack([dense, prior])


def test_block_covariance_equals_the_dense_one():
    # the per-particle blocks from the Schur complement of the population mean (linear in particles)
    # against the SVD of the whole Jacobian, flat direction included
    sizes, n_rows = [11, 11, 14, 11, 11], [150, 90, 200, 120, 60]
    blocks, prior, j = _block_arrow_jacobian(0, sizes, n_rows)
    dense = _covariance(j, 1.0)
    covs = _covariance_from_blocks(blocks, prior, sizes)
    offs = np.cumsum([0, *sizes])
    for i, cov in enumerate(covs):
        ref = dense[offs[i] : offs[i + 1], offs[i] : offs[i + 1]]
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(np.isfinite(cov), finite)
        scale = np.sqrt(np.abs(np.outer(np.diag(ref), np.diag(ref))))
        assert np.max(np.abs(cov - ref)[finite] / scale[finite]) < 1e-10
    assert not np.isfinite(covs[0][5, 5]) and np.isfinite(covs[0][0, 0])
