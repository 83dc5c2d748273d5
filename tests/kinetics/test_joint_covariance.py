"""The joint whole-trace fit's covariance from the reduced Jacobian equals the one from the dense Jacobian."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from plscope.kinetics.trace_fit import _covariance, _joint_sparsity, _reduced_jacobian


def _block_arrow_jacobian(seed: int, sizes: list[int], n_rows: list[int]) -> csr_matrix:
    """A random Jacobian with the joint fit's sparsity (data rows per particle, then prior rows)."""
    rng = np.random.default_rng(seed)
    s = _joint_sparsity(sizes, n_rows)
    row_scale = np.repeat(rng.uniform(0.1, 10.0, s.shape[0]), np.diff(s.indptr))
    j = csr_matrix((rng.normal(size=s.nnz) * row_scale, s.indices, s.indptr), shape=s.shape).tolil()
    j[0 : n_rows[0], 5] = 0.0  # particle 0 has an undetermined parameter (a flat direction)
    return j.tocsr()


def test_reduced_jacobian_gives_the_dense_covariance():
    sizes, n_rows = [11, 11, 14, 11, 11], [150, 90, 200, 120, 60]
    j = _block_arrow_jacobian(0, sizes, n_rows)
    reduced = _reduced_jacobian(j, sizes, n_rows)
    assert reduced.shape[0] == sum(sizes) + 3 * len(sizes)
    np.testing.assert_allclose(reduced.T @ reduced, (j.T @ j).toarray(), rtol=1e-10, atol=1e-9)
    dense, small = _covariance(j.toarray(), 2.0), _covariance(reduced, 2.0)
    finite = np.isfinite(dense)
    np.testing.assert_array_equal(np.isfinite(small), finite)
    assert not finite[5, 5] and finite[0, 0]  # the flat direction has no error either way
    scale = np.sqrt(np.abs(np.outer(np.diag(dense), np.diag(dense))))
    assert np.max(np.abs(small - dense)[finite] / scale[finite]) < 1e-10


def test_block_covariance_equals_the_dense_one():
    # the per-particle blocks from the Schur complement of the population mean (linear in particles)
    # against the SVD of the whole Jacobian, flat direction included
    from plscope.kinetics.trace_fit import _joint_covariance_blocks

    sizes, n_rows = [11, 11, 14, 11, 11], [150, 90, 200, 120, 60]
    j = _block_arrow_jacobian(0, sizes, n_rows)
    dense = _covariance(j.toarray(), 1.0)
    blocks = _joint_covariance_blocks(j, sizes, n_rows)
    offs = np.cumsum([0, *sizes])
    for i, cov in enumerate(blocks):
        ref = dense[offs[i] : offs[i + 1], offs[i] : offs[i + 1]]
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(np.isfinite(cov), finite)
        scale = np.sqrt(np.abs(np.outer(np.diag(ref), np.diag(ref))))
        assert np.max(np.abs(cov - ref)[finite] / scale[finite]) < 1e-10
    assert not np.isfinite(blocks[0][5, 5]) and np.isfinite(blocks[0][0, 0])
