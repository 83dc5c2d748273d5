"""MINPACK's Levenberg-Marquardt ``lmder``, compiled (numba), for the decay fits of :mod:`._lsq`.

A line-for-line translation of the routines ``lmder``, ``lmpar``, ``qrfac``, ``qrsolv`` and
``enorm`` as SciPy 1.17 compiles them (its C translation of MINPACK, ``scipy/optimize/__minpack.c``,
which ``scipy.optimize.leastsq`` runs): the same floating-point operations in the same order, so
the same iterates bit for bit (numba, like SciPy's build, does not fuse multiply-adds). What
changes is that the residuals and the forward-difference Jacobian are compiled functions called
from compiled code, instead of Python callbacks from C (~15 us each, ~700 per particle).

MINPACK: Argonne National Laboratory, MINPACK project, March 1980; Burton S. Garbow,
Kenneth E. Hillstrom, Jorge J. More. Minpack Copyright Notice (1999) University of Chicago:
"This product includes software developed by the University of Chicago, as Operator of Argonne
National Laboratory." SciPy's C translation: Copyright (C) 2024 SciPy developers, BSD-3-Clause.

Arrays are column-major like MINPACK's (element ``(i, j)`` of an ``m`` x ``n`` matrix at
``i + m j``); indices are 0-based (``ipvt`` too, as SciPy returns it).
"""

from __future__ import annotations

import math

import numba

EPSMCH = 2.220446049250313e-16  # dpmpar(1)
DWARF = 2.2250738585072014e-308  # dpmpar(2)
_RGIANT = 2.0**63.5  # SciPy's enorm: pow(2.0, 63.5) (the same double as 2**63 * sqrt(2))
_RDWARF = 0.5 / _RGIANT


@numba.njit(cache=True, nogil=True)
def fmax(a, b):  # pragma: no cover (numba)
    """C's ``fmax`` (the other operand when one is NaN)."""
    if a != a:
        return b
    if b != b:
        return a
    return a if a >= b else b


@numba.njit(cache=True, nogil=True)
def fmin(a, b):  # pragma: no cover (numba)
    """C's ``fmin`` (the other operand when one is NaN)."""
    if a != a:
        return b
    if b != b:
        return a
    return a if a <= b else b


@numba.njit(cache=True, nogil=True)
def enorm(n, x, start):  # pragma: no cover (numba)
    """Euclidean norm of ``x[start : start + n]`` without destructive underflow or overflow."""
    s1 = s2 = s3 = x1max = x3max = 0.0
    agiant = _RGIANT / n
    for i in range(start, start + n):
        xabs = abs(x[i])
        if xabs <= _RDWARF or xabs >= agiant:
            if xabs > _RDWARF:
                if xabs > x1max:
                    r = x1max / xabs
                    s1 = 1.0 + s1 * (r * r)
                    x1max = xabs
                else:
                    r = xabs / x1max
                    s1 += r * r
            elif xabs > x3max:
                r = x3max / xabs
                s3 = 1.0 + s3 * (r * r)
                x3max = xabs
            elif xabs != 0.0:
                r = xabs / x3max
                s3 += r * r
        else:
            s2 += xabs * xabs
    if s1 != 0.0:
        return x1max * math.sqrt(s1 + (s2 / x1max) / x1max)
    if s2 != 0.0:
        if s2 >= x3max:
            return math.sqrt(s2 * (1.0 + (x3max / s2) * (x3max * s3)))
        return math.sqrt(x3max * ((s2 / x3max) + (x3max * s3)))
    return x3max * math.sqrt(s3)


@numba.njit(cache=True, nogil=True)
def _swap_columns(a, m, j, k):  # pragma: no cover (numba)
    for i in range(m):
        temp = a[i + m * j]
        a[i + m * j] = a[i + m * k]
        a[i + m * k] = temp


@numba.njit(cache=True, nogil=True)
def qrfac(m, n, a, ipvt, rdiag, acnorm, wa):  # pragma: no cover (numba)
    """Householder QR with column pivoting of the ``m`` x ``n`` matrix ``a`` (in place).

    As SciPy 1.17 has it, a column norm that has lost too much accuracy is recomputed over
    ``m - j`` elements from row ``j + 1`` (one past the column: the next column's first element;
    ``a`` carries one zero element of padding for the last column).
    """
    for j in range(n):
        acnorm[j] = enorm(m, a, j * m)
        rdiag[j] = acnorm[j]
        wa[j] = rdiag[j]
        ipvt[j] = j
    for j in range(min(m, n)):
        kmax = j
        for k in range(j, n):
            if rdiag[k] > rdiag[kmax]:
                kmax = k
        if kmax != j:
            _swap_columns(a, m, j, kmax)
            rdiag[kmax] = rdiag[j]
            wa[kmax] = wa[j]
            k = ipvt[j]
            ipvt[j] = ipvt[kmax]
            ipvt[kmax] = k
        ajnorm = enorm(m - j, a, m * j + j)
        if ajnorm == 0.0:
            rdiag[j] = -ajnorm
            continue
        if a[m * j + j] < 0.0:
            ajnorm = -ajnorm
        for i in range(j, m):
            a[i + m * j] /= ajnorm
        a[j + m * j] += 1.0
        if j == n - 1:
            rdiag[j] = -ajnorm
            continue
        for k in range(j + 1, n):
            ssum = 0.0
            for i in range(j, m):
                ssum += a[i + m * j] * a[i + m * k]
            temp = ssum / a[j + m * j]
            for i in range(j, m):
                a[i + m * k] -= temp * a[i + m * j]
            if rdiag[k] != 0.0:
                temp = a[j + m * k] / rdiag[k]
                rdiag[k] *= math.sqrt(fmax(0.0, 1.0 - temp * temp))
                r = rdiag[k] / wa[k]
                if 0.05 * (r * r) <= EPSMCH:
                    rdiag[k] = enorm(m - j, a, (j + 1) + m * k)
                    wa[k] = rdiag[k]
        rdiag[j] = -ajnorm


@numba.njit(cache=True, nogil=True)
def _givens(a, b):  # pragma: no cover (numba)
    """``(cos, sin)`` of the rotation eliminating ``b`` against ``a`` (qrsolv's)."""
    if abs(a) < abs(b):
        cotan = a / b
        sin = 0.5 / math.sqrt(0.25 + 0.25 * (cotan * cotan))
        return sin * cotan, sin
    tan = b / a
    cos = 0.5 / math.sqrt(0.25 + 0.25 * (tan * tan))
    return cos, cos * tan


@numba.njit(cache=True, nogil=True)
def _eliminate_row(n, r, ldr, j, sdiag, wa):  # pragma: no cover (numba)
    """qrsolv's loop 80: Givens rotations eliminating row ``j`` of the diagonal matrix (in ``sdiag``)."""
    qtbpj = 0.0
    for k in range(j, n):
        if sdiag[k] == 0.0:
            continue
        cos, sin = _givens(r[ldr * k + k], sdiag[k])
        r[ldr * k + k] *= cos
        r[ldr * k + k] += sin * sdiag[k]
        temp = cos * wa[k] + sin * qtbpj
        qtbpj = -sin * wa[k] + cos * qtbpj
        wa[k] = temp
        for i in range(k + 1, n):
            temp = cos * r[i + ldr * k] + sin * sdiag[i]
            sdiag[i] = -sin * r[i + ldr * k] + cos * sdiag[i]
            r[i + ldr * k] = temp


@numba.njit(cache=True, nogil=True)
def qrsolv(n, r, ldr, ipvt, diag, qtb, x, sdiag, wa):  # pragma: no cover (numba)
    """Least-squares solution of ``a x = b, d x = 0`` from the QR factorization of ``a``."""
    for j in range(n):
        for i in range(j, n):
            r[i + j * ldr] = r[j + i * ldr]
        x[j] = r[j + j * ldr]
        wa[j] = qtb[j]
    for j in range(n):
        l = ipvt[j]  # noqa: E741 (MINPACK's name)
        if diag[l] != 0.0:
            for k in range(j, n):
                sdiag[k] = 0.0
            sdiag[j] = diag[l]
            _eliminate_row(n, r, ldr, j, sdiag, wa)
        sdiag[j] = r[ldr * j + j]
        r[ldr * j + j] = x[j]
    nsing = n
    for j in range(n):
        if sdiag[j] == 0.0 and nsing == n:
            nsing = j
        if nsing < n:
            wa[j] = 0.0
    for k in range(1, nsing + 1):
        j = nsing - k
        ssum = 0.0
        for i in range(j + 1, nsing):
            ssum += r[i + j * ldr] * wa[i]
        wa[j] = (wa[j] - ssum) / sdiag[j]
    for j in range(n):
        x[ipvt[j]] = wa[j]


@numba.njit(cache=True, nogil=True)
def _gauss_newton(n, r, ldr, ipvt, qtb, x, wa1):  # pragma: no cover (numba)
    """lmpar's loops 10-60: the Gauss-Newton direction into ``x``; returns ``nsing``."""
    nsing = n
    for j in range(n):
        wa1[j] = qtb[j]
        if r[j + j * ldr] == 0.0 and nsing == n:
            nsing = j
        if nsing < n:
            wa1[j] = 0.0
    for k in range(1, nsing + 1):
        j = nsing - k
        wa1[j] /= r[j + j * ldr]
        temp = wa1[j]
        for i in range(j):
            wa1[i] -= r[i + j * ldr] * temp
    for j in range(n):
        x[ipvt[j]] = wa1[j]
    return nsing


@numba.njit(cache=True, nogil=True)
def _par_bounds(n, r, ldr, ipvt, diag, qtb, delta, dxnorm, fp, nsing, wa1, wa2):  # pragma: no cover
    """lmpar's loops 80-140: the lower and upper bounds ``(parl, paru, gnorm)`` of the parameter."""
    parl = 0.0
    if nsing == n:
        for j in range(n):
            l = ipvt[j]  # noqa: E741
            wa1[j] = diag[l] * (wa2[l] / dxnorm)
        for j in range(n):
            ssum = 0.0
            for i in range(j):
                ssum += r[i + j * ldr] * wa1[i]
            wa1[j] = (wa1[j] - ssum) / r[j + j * ldr]
        temp = enorm(n, wa1, 0)
        parl = ((fp / delta) / temp) / temp
    for j in range(n):
        ssum = 0.0
        for i in range(j + 1):
            ssum += r[i + j * ldr] * qtb[i]
        wa1[j] = ssum / diag[ipvt[j]]
    gnorm = enorm(n, wa1, 0)
    paru = gnorm / delta
    if paru == 0.0:
        paru = DWARF / fmin(delta, 0.1)
    return parl, paru, gnorm


@numba.njit(cache=True, nogil=True)
def _newton_correction(n, r, ldr, ipvt, diag, dxnorm, sdiag, wa1, wa2):  # pragma: no cover (numba)
    """lmpar's loops 180-210: the norm of the Newton correction's direction."""
    for j in range(n):
        l = ipvt[j]  # noqa: E741
        wa1[j] = diag[l] * (wa2[l] / dxnorm)
    for j in range(n):
        wa1[j] /= sdiag[j]
        temp = wa1[j]
        for i in range(j + 1, n):
            wa1[i] -= r[i + j * ldr] * temp
    return enorm(n, wa1, 0)


@numba.njit(cache=True, nogil=True)
def lmpar(n, r, ldr, ipvt, diag, qtb, delta, par, x, sdiag, wa1, wa2):  # pragma: no cover (numba)
    """The Levenberg-Marquardt parameter for the step bound ``delta``; returns it (``x``: the step)."""
    nsing = _gauss_newton(n, r, ldr, ipvt, qtb, x, wa1)
    for j in range(n):
        wa2[j] = diag[j] * x[j]
    dxnorm = enorm(n, wa2, 0)
    fp = dxnorm - delta
    if fp <= 0.1 * delta:
        return 0.0
    parl, paru, gnorm = _par_bounds(n, r, ldr, ipvt, diag, qtb, delta, dxnorm, fp, nsing, wa1, wa2)
    par = fmin(fmax(par, parl), paru)
    if par == 0.0:
        par = gnorm / dxnorm
    it = 0
    while True:
        it += 1
        if par == 0.0:
            par = fmax(DWARF, paru * 0.001)
        temp = math.sqrt(par)
        for j in range(n):
            wa1[j] = temp * diag[j]
        qrsolv(n, r, ldr, ipvt, wa1, qtb, x, sdiag, wa2)
        for j in range(n):
            wa2[j] = diag[j] * x[j]
        dxnorm = enorm(n, wa2, 0)
        temp = fp
        fp = dxnorm - delta
        if abs(fp) <= 0.1 * delta or (parl == 0.0 and fp <= temp and temp < 0.0) or it == 10:
            return par
        temp = _newton_correction(n, r, ldr, ipvt, diag, dxnorm, sdiag, wa1, wa2)
        parc = ((fp / delta) / temp) / temp
        if fp > 0.0:
            parl = fmax(parl, par)
        if fp < 0.0:
            paru = fmin(paru, par)
        par = fmax(parl, par + parc)


@numba.njit(cache=True, nogil=True)
def qtf_and_gnorm(m, n, fjac, fvec, fnorm, ipvt, wa1, wa2, wa4, qtf):  # pragma: no cover (numba)
    """lmder's loops 90-170: ``q^T fvec`` into ``qtf``, ``r``'s diagonal back into ``fjac``; returns the
    norm of the scaled gradient."""
    for i in range(m):
        wa4[i] = fvec[i]
    for j in range(n):
        if fjac[j + m * j] != 0.0:
            ssum = 0.0
            for i in range(j, m):
                ssum += fjac[i + m * j] * wa4[i]
            temp = -ssum / fjac[j + m * j]
            for i in range(j, m):
                wa4[i] += fjac[i + m * j] * temp
        fjac[j + m * j] = wa1[j]
        qtf[j] = wa4[j]
    gnorm = 0.0
    if fnorm != 0.0:
        for j in range(n):
            l = ipvt[j]  # noqa: E741
            if wa2[l] != 0.0:
                ssum = 0.0
                for i in range(j + 1):
                    ssum += fjac[i + m * j] * (qtf[i] / fnorm)
                gnorm = fmax(gnorm, abs(ssum / wa2[l]))
    return gnorm


@numba.njit(cache=True, nogil=True)
def predicted(m, n, fjac, ipvt, wa1, wa3, par, pnorm, fnorm):  # pragma: no cover (numba)
    """lmder's loops 220-230: ``(prered, dirder)``, the scaled predicted reduction and directional
    derivative of the step ``wa1``."""
    for j in range(n):
        wa3[j] = 0.0
        temp = wa1[ipvt[j]]
        for i in range(j + 1):
            wa3[i] += fjac[i + m * j] * temp
    temp1 = enorm(n, wa3, 0) / fnorm
    temp2 = (math.sqrt(par) * pnorm) / fnorm
    return temp1 * temp1 + temp2 * temp2 / 0.5, -(temp1 * temp1 + temp2 * temp2)


@numba.njit(cache=True, nogil=True)
def update_bound(ratio, actred, dirder, fnorm1, fnorm, delta, pnorm, par):  # pragma: no cover (numba)
    """lmder's loops 240-260: the new step bound and parameter ``(delta, par)``."""
    if ratio <= 0.25:
        temp = (0.5 * dirder) / (dirder + 0.5 * actred) if actred < 0.0 else 0.5
        if 0.1 * fnorm1 >= fnorm or temp < 0.1:
            temp = 0.1
        return temp * fmin(delta, pnorm / 0.1), par / temp
    if par == 0.0 or ratio >= 0.75:
        return pnorm / 0.5, par * 0.5
    return delta, par


@numba.njit(cache=True, nogil=True)
def convergence(actred, prered, ratio, delta, xnorm, gnorm, nfev, maxfev, tols):  # pragma: no cover
    """lmder's convergence and termination tests: ``info`` (0: go on)."""
    ftol, xtol = tols[0], tols[1]
    info = 0
    if abs(actred) <= ftol and prered <= ftol and 0.5 * ratio <= 1.0:
        info = 1
    if delta <= xtol * xnorm:
        info = 2
    if abs(actred) <= ftol and prered <= ftol and 0.5 * ratio <= 1.0 and info == 2:
        info = 3
    if info != 0:
        return info
    if nfev >= maxfev:
        info = 5
    if abs(actred) <= EPSMCH and prered <= EPSMCH and 0.5 * ratio <= 1.0:
        info = 6
    if delta <= EPSMCH * xnorm:
        info = 7
    if gnorm <= EPSMCH:
        info = 8
    return info
