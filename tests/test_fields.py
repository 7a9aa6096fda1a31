"""Tests of the reaction-diffusion solver (niche.core.fields / niche.kernels.diffusion)."""

import contextlib
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from niche.core.fields import FieldSolver
from niche.kernels import diffusion as K

REPO_ROOT = Path(__file__).resolve().parents[1]


def solver(shape, n=1, D=100.0, k=0.0, dx=10.0, dt=1.0, dtype=np.float64, **kw):
    names = [f"s{i}" for i in range(n)]
    D = np.broadcast_to(np.asarray(D, float), (n,))
    k = np.broadcast_to(np.asarray(k, float), (n,))
    return FieldSolver(shape, names, D, k, dx, dt, dtype=dtype, **kw)


# ----------------------------------------------------------------------------
# dense reference: reaction, then one dense 1D implicit solve per grid line
def reference_step(c, src, upt, vmax, solid, dirm, r, dt, k, km, dval, don):
    c = c.astype(np.float64).copy()
    for s in range(c.shape[0]):
        a = c[s]
        term = k[s] + upt[s]
        if np.isfinite(km[s]):
            term = term + vmax[s] / (km[s] + a)
        a = (a + dt * src[s]) / (1 + dt * term)
        a[solid == 1] = 0
        held = (dirm == 1) & (solid == 0) & bool(don[s])
        a[held] = dval[s]
        for ax in range(3):
            a = np.moveaxis(a, ax, -1).copy()
            sol = np.moveaxis(solid, ax, -1)
            hd = np.moveaxis(held, ax, -1)
            n = a.shape[-1]
            out = np.empty_like(a)
            for idx in np.ndindex(a.shape[:-1]):
                M = np.eye(n)
                for i in range(n):
                    if sol[idx][i] or hd[idx][i]:
                        continue
                    for j in (i - 1, i + 1):
                        if 0 <= j < n and not sol[idx][j]:
                            M[i, i] += r[s]
                            M[i, j] -= r[s]
                out[idx] = np.linalg.solve(M, a[idx])
            a = np.moveaxis(out, -1, ax)
        c[s] = a
    return c


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("shape", [(7, 6, 9), (5, 17, 16), (4, 9, 1), (3, 1, 19), (1, 10, 8), (1, 1, 1)])
def test_step_matches_dense_reference(dtype, tol, shape):
    rng = np.random.default_rng(sum(shape))
    D = np.array([70.0, 500.0, 0.0])
    dx, dt = 10.0, 1.0
    km = np.array([0.5, np.inf, 2.0])
    dval = np.array([1.5, 2.0, 3.0])
    don = np.array([True, False, True])
    fs = FieldSolver(shape, ["a", "b", "c"], D, [0.1, 0.0, 0.2], dx, dt, km=km,
                     dirichlet_value=dval, dirichlet_on=don, dtype=dtype)
    solid = (rng.random(shape) < 0.25).astype(np.uint8)
    dirm = (rng.random(shape) < 0.1).astype(np.uint8)
    fs.set_solid(solid)
    fs.set_dirichlet(dirm)
    fs.c[:] = rng.random(fs.c.shape)
    fs.source[:] = rng.random(fs.c.shape)
    fs.uptake[:] = rng.random(fs.c.shape)
    fs.vmax[:] = rng.random(fs.c.shape)
    c0 = fs.c.copy()
    expect = reference_step(c0, fs.source, fs.uptake, fs.vmax, solid, dirm,
                            D * dt / dx ** 2, dt, fs.decay, km, dval, don)
    fs.step()
    assert np.abs(fs.c - expect).max() <= tol * max(1.0, np.abs(expect).max())


def test_result_independent_of_partitioning():
    rng = np.random.default_rng(1)
    shape = (12, 21, 19)
    S = 3
    c = rng.random((S,) + shape).astype(np.float32)
    src, upt, vmax = (rng.random((S,) + shape).astype(np.float32) for _ in range(3))
    solid = (rng.random(shape) < 0.2).astype(np.uint8)
    dirm = (rng.random(shape) < 0.05).astype(np.uint8)
    fz = np.empty((2,) + shape, np.uint8)
    fy = np.empty_like(fz)
    fxt = np.empty((2, shape[0], shape[2], shape[1]), np.uint8)
    K.build_flags(solid, dirm, fz, fy, fxt)
    coef = np.zeros((S, K.NCOEF), np.float32)
    coef[:, K.C_R] = [0.5, 40.0, 3.0]
    coef[:, K.C_DT] = 2.0
    coef[:, K.C_K] = 0.01
    coef[:, K.C_KM] = [1.0, 1.0, 0.3]
    coef[:, K.C_DVAL] = 2.0
    opts = np.zeros((S, K.NOPT), np.int64)
    opts[:, K.O_MM] = [0, 0, 1]
    opts[:, K.O_DIR] = [1, 0, 1]
    results = []
    for block, nchunk, group in [(64, 1, 3), (100, 2, 1), (1000, 3, 2), (37, 7, 3)]:
        cc = c.copy()
        for _ in range(3):
            K.step(cc, src, upt, vmax, fz, fy, fxt, coef, opts, block, nchunk, group)
        results.append(cc.tobytes())
    assert all(r == results[0] for r in results)


# ----------------------------------------------------------------------------
# 1. free-space Gaussian vs analytic
def gaussian_run(n, box_um=320.0, D=100.0, sigma0=40.0, T=10.0, dt_factor=0.1):
    """Evolve a sampled Gaussian; compare with the exact solution in the box
    (no-flux walls via first-order image sources), normalised to the
    discrete mass.  Returns the relative L2 error."""
    dx = box_um / n
    dt = dt_factor * dx * dx / D
    steps = int(round(T / dt))
    fs = solver((n, n, n), D=D, dx=dx, dt=dt)
    xc = (np.arange(n) + 0.5) * dx
    x0 = box_um / 2

    def profile(var):
        g = np.zeros(n)
        for img in (x0, -x0, 2 * box_um - x0):   # source and its wall images
            g += np.exp(-(xc - img) ** 2 / (2 * var))
        return g

    g0 = np.exp(-(xc - x0) ** 2 / (2 * sigma0 ** 2))
    fs.c[0] = g0[:, None, None] * g0[None, :, None] * g0[None, None, :]
    m0 = fs.c.sum()
    fs.step(steps)
    g = profile(sigma0 ** 2 + 2 * D * steps * dt)
    ref = g[:, None, None] * g[None, :, None] * g[None, None, :]
    ref *= m0 / ref.sum()
    return np.sqrt(((fs.c[0] - ref) ** 2).sum() / (ref ** 2).sum())


def test_gaussian_matches_analytic_32():
    err = gaussian_run(32)
    assert err < 0.01, err


def test_gaussian_second_order_in_space():
    # dt ~ dx^2, so the first-order temporal (and splitting) error falls
    # like dx^2 as well: the total error should fall at second order.
    errs = [gaussian_run(n) for n in (16, 32, 64)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 1.6) & (orders < 2.6)), (errs, orders)


# ----------------------------------------------------------------------------
# 2. conservation, positivity, solid stays zero (float32, huge dt)
def test_mass_conservation_float32_large_dt():
    rng = np.random.default_rng(3)
    n = 24
    # r = D dt / dx^2 = 60 and 3: far beyond the explicit limit 1/6
    fs = solver((n, n, n), n=2, D=[100.0, 5.0], dx=10.0, dt=60.0, dtype=np.float32)
    solid = rng.random((n, n, n)) < 0.2
    fs.c[:] = rng.random(fs.c.shape)
    fs.set_solid(solid)
    c_init = fs.c.copy()
    m0 = fs.total_mass()
    for _ in range(1000):
        fs.step()
        assert not fs.c[:, solid].any()
    assert fs.c.min() >= 0
    drift = np.abs(fs.total_mass() / m0 - 1)
    assert drift.max() < 1e-5, drift
    # and it did diffuse (the field is far from its random start)
    assert np.abs(fs.c - c_init).max() > 0.2


# ----------------------------------------------------------------------------
# 3. pure decay
def test_pure_decay_matches_discrete_and_continuous():
    rng = np.random.default_rng(4)
    k, dt, n = 1e-3, 1.0, 1000
    fs = solver((6, 7, 8), n=1, D=50.0, k=k, dt=dt)
    solid = rng.random((6, 7, 8)) < 0.1
    fs.c[:] = 1.0
    fs.set_solid(solid)
    fs.step(n)
    marrow = fs.c[0][~solid]
    discrete = (1.0 / (1.0 + k * dt)) ** n
    assert np.abs(marrow / discrete - 1).max() < 1e-12
    # vs exp(-k t): ratio = exp(n (x - log(1 + x))), x = k dt, and
    # x^2/2 - x^3/3 <= x - log(1 + x) <= x^2/2, so the relative error lies in
    # [n (x^2/2 - x^3/3), exp(n x^2 / 2) - 1]: ~5e-4 here (first order in dt).
    x = k * dt
    rel = marrow / np.exp(-k * n * dt) - 1
    assert np.all(rel <= np.expm1(n * x * x / 2))
    assert np.all(rel >= n * (x * x / 2 - x ** 3 / 3))


# ----------------------------------------------------------------------------
# 4. steady states
def test_steady_state_dirichlet_with_uptake():
    D, dx, dt, lam, c0 = 100.0, 10.0, 0.2, 100.0, 1.0
    u = D / lam ** 2
    X = 64
    fs = solver((2, 2, X), n=1, D=D, dx=dx, dt=dt, dirichlet_value=[c0])
    vessel = np.zeros((2, 2, X), np.uint8)
    vessel[:, :, 0] = 1
    fs.set_dirichlet(vessel)
    fs.uptake[:] = u
    fs.step(15000)
    prof = fs.c[0, 0, 0].copy()
    assert np.abs(fs.c[0] - prof).max() < 1e-12       # uniform across y, z
    # exact steady state of the split scheme: (I - dt D L) c = c / (1 + u dt)
    r = D * dt / dx ** 2
    A = np.zeros((X, X))
    b = np.zeros(X)
    A[0, 0], b[0] = 1.0, c0
    for i in range(1, X):
        A[i, i] = 1 + r * (2 if i < X - 1 else 1) - 1 / (1 + u * dt)
        A[i, i - 1] = -r
        if i < X - 1:
            A[i, i + 1] = -r
    exact = np.linalg.solve(A, b)
    assert np.abs(prof / exact - 1).max() < 1e-9
    # continuous profile, Dirichlet at the centre of voxel 0, no-flux face at
    # (X - 1/2) dx.  Expected deviation: lambda is stretched by the time
    # splitting, sqrt(1 + u dt) - 1 = 1e-3, and by the discrete Laplacian,
    # (dx/lambda)^2 / 24 = 4e-4, which accumulates to < 1 % at x = 6.4 lambda.
    xs = np.arange(X) * dx
    L = (X - 0.5) * dx
    cont = c0 * np.cosh((L - xs) / lam) / np.cosh(L / lam)
    sel = cont > 1e-3 * c0
    assert np.abs(prof[sel] / cont[sel] - 1).max() < 0.02


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_steady_state_uniform_source_and_uptake(dtype, tol):
    rng = np.random.default_rng(5)
    shape = (4, 5, 6)
    fs = solver(shape, n=2, D=[30.0, 300.0], k=[0.0, 0.1], dt=1.0, dtype=dtype)
    solid = rng.random(shape) < 0.2
    fs.set_solid(solid)
    S0 = np.array([2.0, 0.3])
    u = np.array([0.5, 0.2])
    fs.source[:] = S0[:, None, None, None]
    fs.uptake[:] = u[:, None, None, None]
    fs.step(150)
    expect = S0 / (u + fs.decay)
    for s in range(2):
        assert np.abs(fs.c[s][~solid] / expect[s] - 1).max() < tol
        assert not fs.c[s][solid].any()


# ----------------------------------------------------------------------------
# 5. Michaelis-Menten
def mm_run(dt, T=2.0, c0=2.0, V=1.0, km=0.5):
    fs = solver((3, 3, 3), n=1, D=10.0, dt=dt, km=[km])
    fs.c[:] = c0
    fs.vmax[:] = V
    fs.step(int(round(T / dt)))
    assert np.ptp(fs.c) < 1e-10
    return fs.c[0, 0, 0, 0]


def rk4_mm(T=2.0, c0=2.0, V=1.0, km=0.5, h=1e-4):
    f = lambda c: -V * c / (km + c)  # noqa: E731
    c = c0
    for _ in range(int(round(T / h))):
        k1 = f(c)
        k2 = f(c + h / 2 * k1)
        k3 = f(c + h / 2 * k2)
        k4 = f(c + h * k3)
        c += h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return c


def test_michaelis_menten_uptake():
    exact = rk4_mm()
    e1 = mm_run(1e-3) - exact
    e2 = mm_run(2e-3) - exact
    # The semi-implicit update c/(1 + dt V/(Km + c)) has local error
    # dt^2 * (f^2/c - f f'/2) <= 0.5 dt^2 here (V = 1, Km = 0.5, c <= 2), so
    # the global error is below 0.5 * T * dt = 1e-3; it is first order.
    assert abs(e1) < 1e-3
    assert 1.8 < e2 / e1 < 2.2


# ----------------------------------------------------------------------------
# 6. bone impermeability and geometry changes
def test_bone_is_impermeable_and_set_solid_accounts_mass():
    n = 16
    dt = 30.0
    fs = solver((n, n, n), n=1, D=100.0, dx=10.0, dt=dt, dtype=np.float32)
    solid = np.zeros((n, n, n), bool)
    solid[5:11, 5:11, 5:11] = True
    fs.set_solid(solid)
    fs.source[0, 5:11, 5:11, 4] = 1.0          # marrow layer touching the block
    vol = fs.voxel_volume_um3
    steps = 200
    for _ in range(steps):
        fs.step()
        assert not fs.c[0][solid].any()
    assert fs.c.min() >= 0
    added = steps * dt * fs.source.sum(dtype=np.float64) * vol
    assert abs(fs.total_mass()[0] / added - 1) < 1e-5
    # the far side of the block is reached only around it
    assert fs.c[0, 8, 8, 11] < fs.c[0, 8, 8, 4]

    # change the bone: grow one layer (where there is mass) and open another
    new = solid.copy()
    new[5:11, 5:11, 4] = True                   # includes the source voxels
    new[5:11, 5:11, 10] = False
    before = fs.total_mass()
    newly_solid = new & ~solid
    held = fs.c[0][newly_solid].sum(dtype=np.float64) * vol
    removed = fs.set_solid(new)
    after = fs.total_mass()
    assert removed.shape == (1,)
    assert removed[0] == pytest.approx(held, rel=1e-12)
    assert removed[0] > 0
    assert before[0] == pytest.approx(after[0] + removed[0], rel=1e-12)
    assert not fs.c[0][new].any()
    opened = solid & ~new
    assert not fs.c[0][opened].any()
    assert np.array_equal(fs.solid, new.astype(np.uint8))
    for _ in range(50):
        fs.step()
        assert not fs.c[0][new].any()
    assert (fs.c[0][opened] > 0).all()           # opened voxels join transport


def test_dirichlet_per_substrate():
    shape = (3, 4, 5)
    fs = solver(shape, n=2, D=[10.0, 10.0], dirichlet_value=[2.0, 5.0],
                dirichlet_on=[True, False])
    vessel = np.zeros(shape, np.uint8)
    vessel[1, 2, 3] = 1
    fs.set_dirichlet(vessel)
    assert fs.c[0, 1, 2, 3] == 2.0 and fs.c[1, 1, 2, 3] == 0.0
    fs.c[1, 1, 2, 3] = 1.0
    m1 = fs.total_mass()[1]
    fs.step(10)
    assert fs.c[0, 1, 2, 3] == 2.0
    assert fs.c[0].sum() > 2.0 and fs.c[0].min() > 0   # the vessel supplies
    assert fs.c[1, 1, 2, 3] < 1.0                       # ordinary marrow
    assert fs.total_mass()[1] == pytest.approx(m1, rel=1e-12)


# ----------------------------------------------------------------------------
# 7. determinism across thread counts
DETERMINISM_SCRIPT = textwrap.dedent("""
    import hashlib, numpy as np, numba
    from niche.core.fields import FieldSolver
    rng = np.random.default_rng(7)
    shape = (20, 24, 28)
    fs = FieldSolver(shape, ["a", "b", "c"], [100.0, 800.0, 20.0], [1e-3, 0.0, 1e-2],
                     10.0, 30.0, km=[np.inf, 0.5, 2.0], dirichlet_value=[1.0, 0.0, 3.0],
                     dirichlet_on=[True, False, True], dtype=np.float32)
    fs.set_solid(rng.random(shape) < 0.15)
    fs.set_dirichlet(rng.random(shape) < 0.02)
    fs.c[:] = rng.random(fs.c.shape)
    fs.set_solid(fs.solid)
    fs.source[:] = rng.random(fs.c.shape) * (rng.random(fs.c.shape) < 0.05)
    fs.uptake[:] = 1e-3
    fs.vmax[:] = 0.01
    fs.step(20)
    print(numba.get_num_threads(), hashlib.sha256(fs.c.tobytes()).hexdigest())
""")


def test_bit_identical_across_thread_counts():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    out = {}
    for nt in ("1", "2"):
        env["NUMBA_NUM_THREADS"] = nt
        res = subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT], env=env,
                             capture_output=True, text=True, timeout=300, cwd=str(REPO_ROOT))
        assert res.returncode == 0, res.stderr
        threads, digest = res.stdout.split()[-2:]
        assert threads == nt
        out[nt] = digest
    assert out["1"] == out["2"]
    # and in this process (any thread count)
    ns = {}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(DETERMINISM_SCRIPT, ns)
    assert buf.getvalue().split()[-1] == out["1"]


# ----------------------------------------------------------------------------
# 8. argument validation
GOOD = dict(shape_zyx=(4, 4, 4), names=["a", "b"], diffusivity_um2_per_s=[1.0, 2.0],
            decay_per_s=[0.0, 0.1], dx_um=10.0, dt_s=1.0)


@pytest.mark.parametrize("change,match", [
    (dict(diffusivity_um2_per_s=[1.0, -2.0]), "diffusivity_um2_per_s must be >= 0"),
    (dict(decay_per_s=[-0.1, 0.0]), "decay_per_s must be >= 0"),
    (dict(diffusivity_um2_per_s=[1.0]), "diffusivity_um2_per_s must have one entry per"),
    (dict(decay_per_s=[0.0, 0.0, 0.0]), "decay_per_s must have one entry per"),
    (dict(dt_s=0.0), "dt_s must be positive"),
    (dict(dt_s=-1.0), "dt_s must be positive"),
    (dict(dx_um=0.0), "dx_um must be positive"),
    (dict(dx_um=float("nan")), "dx_um must be positive"),
    (dict(dtype=np.int32), "dtype must be float32 or float64"),
    (dict(dtype="float16"), "dtype must be float32 or float64"),
    (dict(dtype="nonsense"), "dtype must be float32 or float64"),
    (dict(km=[1.0, 0.0]), "km must be > 0"),
    (dict(km=[1.0]), "km must have one entry per"),
    (dict(dirichlet_value=[1.0, -1.0]), "dirichlet_value must be >= 0"),
    (dict(dirichlet_on=[True]), "dirichlet_on must have one entry per"),
    (dict(names=["a", "a"]), "names must be unique"),
    (dict(names="ab"), "names must be a sequence"),
    (dict(shape_zyx=(4, 0, 4)), "shape_zyx must be three positive integers"),
    (dict(shape_zyx=(4, 4)), "shape_zyx must be three positive integers"),
    (dict(diffusivity_um2_per_s=[1.0, float("inf")]), "diffusivity_um2_per_s must be finite"),
])
def test_constructor_validation(change, match):
    with pytest.raises(ValueError, match=match):
        FieldSolver(**{**GOOD, **change})


def test_api_basics():
    fs = FieldSolver(**GOOD)
    assert fs.names == ("a", "b")
    assert fs.index("b") == 1
    with pytest.raises(KeyError, match="unknown substrate"):
        fs.index("zz")
    for a in (fs.c, fs.source, fs.uptake, fs.vmax):
        assert a.shape == (2, 4, 4, 4) and a.dtype == np.float32 and not a.any()
    assert fs.solid.dtype == np.uint8 and fs.dirichlet.dtype == np.uint8
    fs.c[1, 0, 0, 0] = 3.0
    assert fs.total_mass().dtype == np.float64
    np.testing.assert_allclose(fs.total_mass(), [0.0, 3000.0])
    with pytest.raises(ValueError, match="solid mask must have shape"):
        fs.set_solid(np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="n_steps must be >= 0"):
        fs.step(-1)
    fs.step(0)
    assert fs.time_s == 0.0
    fs.step(3)
    assert fs.time_s == 3.0
    assert FieldSolver(**{**GOOD, "dtype": "float64"}).c.dtype == np.float64


# ----------------------------------------------------------------------------
# 9. cell coupling kernels
def test_scatter_clear_sample():
    shape = (3, 4, 5)
    fs = solver(shape, n=2, dtype=np.float32)
    z = np.array([0, 2, 0])
    y = np.array([1, 3, 1])
    x = np.array([2, 4, 2])
    sec = np.array([[1.0, 2.0], [3.0, 4.0], [0.5, 0.25]], np.float32)
    upt = sec * 10
    vm = sec * 100
    K.scatter_cells(fs.source, fs.uptake, fs.vmax, z, y, x, sec, upt, vm)
    assert fs.source[0, 0, 1, 2] == 1.5 and fs.source[1, 0, 1, 2] == 2.25
    assert fs.uptake[1, 2, 3, 4] == 40.0 and fs.vmax[0, 2, 3, 4] == 300.0
    assert fs.source.sum() == sec.sum() and np.count_nonzero(fs.source) == 4
    fs.scatter(z, y, x, sec, upt, vm)
    assert fs.source[0, 0, 1, 2] == 3.0
    with pytest.raises(IndexError):
        K.scatter_cells(fs.source, fs.uptake, fs.vmax, np.array([3]), np.array([0]),
                        np.array([0]), sec[:1], upt[:1], vm[:1])
    K.clear_sources(fs.source, fs.uptake, fs.vmax)
    assert not fs.source.any() and not fs.uptake.any() and not fs.vmax.any()
    fs.source[:] = 1
    K.clear(fs.source)
    assert not fs.source.any()

    fs.c[:] = np.arange(fs.c.size, dtype=np.float32).reshape(fs.c.shape)
    out = np.zeros((3, 2))
    K.sample_at(fs.c, z, y, x, out)
    np.testing.assert_array_equal(out, fs.c[:, z, y, x].T)
    np.testing.assert_array_equal(fs.sample(z, y, x), out)
    with pytest.raises(IndexError):
        K.sample_at(fs.c, np.array([0]), np.array([-1]), np.array([0]), out[:1])


def test_gradient_at():
    shape = (5, 6, 7)
    fs = solver(shape, n=2, dx=2.0)
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    fs.c[1] = 3.0 * zz - 2.0 * yy + 0.5 * xx + 10.0
    z, y, x = (a.ravel() for a in (zz, yy, xx))
    g = np.zeros((z.size, 3))
    K.gradient_at(fs.c, 1, z, y, x, g)            # per voxel; walls one-sided
    np.testing.assert_allclose(g, np.tile([3.0, -2.0, 0.5], (z.size, 1)), atol=1e-12)
    np.testing.assert_allclose(fs.gradient("s1", z, y, x), g / 2.0)   # per um
    np.testing.assert_allclose(fs.gradient(1, z, y, x, per_um=False), g)

    # a quadratic in x: central difference in the interior, one-sided at walls
    fs.c[0] = (xx.astype(float)) ** 2
    pz, py, px = np.array([2, 2, 2]), np.array([3, 3, 3]), np.array([0, 3, 6])
    g = np.zeros((3, 3))
    K.gradient_at(fs.c, 0, pz, py, px, g)
    np.testing.assert_allclose(g[:, 2], [1.0, 6.0, 11.0])
    np.testing.assert_allclose(g[:, :2], 0.0)

    # solid neighbours: no difference across a bone face
    solid = np.zeros(shape, np.uint8)
    solid[2, 3, 4] = 1        # +x neighbour of (2, 3, 3)
    solid[2, 4, 3] = 1        # +y neighbour
    solid[2, 2, 3] = 1        # -y neighbour
    fs.set_solid(solid)
    fs.c[1] = 3.0 * zz - 2.0 * yy + 0.5 * xx + 10.0
    fs.c[1][solid == 1] = 0.0                          # as the solver holds it
    g = np.zeros((2, 3))
    K.gradient_at(fs.c, 1, np.array([2, 2]), np.array([3, 3]), np.array([3, 4]), g,
                  fs.solid)
    np.testing.assert_allclose(g[0], [3.0, 0.0, 0.5])   # x one-sided, y closed
    np.testing.assert_allclose(g[1], [0.0, 0.0, 0.0])   # cell inside bone
    np.testing.assert_allclose(fs.gradient(1, np.array([2]), np.array([3]),
                                           np.array([3]), per_um=False), g[:1])
    # without the mask the bone zeros would be differenced
    K.gradient_at(fs.c, 1, np.array([2]), np.array([3]), np.array([3]), g[:1])
    assert g[0, 2] != 0.5


def test_gradient_into_writes_the_gradient_at_slots():
    """The slot-indexed form writes exactly gradient(per_um=False), cast to the store's
    float32, into the chosen slots and leaves the others alone."""
    shape = (6, 7, 5)
    fs = solver(shape, n=2, dx=2.0)
    rng = np.random.default_rng(3)
    fs.c[1] = rng.random(shape).astype(fs.c.dtype) * 100
    solid = (rng.random(shape) < 0.2).astype(np.uint8)
    fs.set_solid(solid)
    cap = 40
    z, y, x = (rng.integers(0, n, cap).astype(np.int32) for n in shape)
    slots = np.array([3, 17, 0, 39, 22, 8])
    out = np.full((3, cap), -7.0, np.float32)
    fs.gradient_into(1, slots, z, y, x, out)
    want = fs.gradient(1, z[slots], y[slots], x[slots], per_um=False)
    np.testing.assert_array_equal(out[:, slots], want.T.astype(np.float32))
    rest = np.setdiff1d(np.arange(cap), slots)
    assert (out[:, rest] == -7.0).all()
    assert np.abs(want).max() > 0
    with pytest.raises(ValueError, match="substrate index 2"):
        fs.gradient_into(2, slots, z, y, x, out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 8), (16, 24), (13, 7), (1, 9), (30, 17)])
def test_transpose2d(dtype, shape):
    a = np.random.default_rng(0).random(shape).astype(dtype)
    b = np.empty(shape[::-1], dtype)
    K.transpose2d(a, b)
    np.testing.assert_array_equal(b, a.T)


def test_build_flags():
    solid = np.zeros((3, 4, 5), np.uint8)
    solid[1, 2, 3] = 1
    dirm = np.zeros_like(solid)
    dirm[1, 1, 3] = 1
    fz = np.empty((2, 3, 4, 5), np.uint8)
    fy = np.empty_like(fz)
    fxt = np.empty((2, 3, 5, 4), np.uint8)
    K.build_flags(solid, dirm, fz, fy, fxt)
    assert fz[0, 1, 2, 3] == K.V_SOLID and fy[0, 1, 2, 3] == 0 and fxt[0, 1, 3, 2] == 0
    assert fz[0, 0, 0, 0] == K.L_UP and fy[0, 0, 0, 0] == K.K_UP and fxt[0, 0, 0, 0] == K.K_UP
    assert fz[0, 2, 3, 4] == K.L_LO and fy[0, 2, 3, 4] == K.K_LO and fxt[0, 2, 4, 3] == K.K_LO
    # the vessel voxel's +y neighbour is bone; its own row is identity in variant 1
    assert fy[0, 1, 1, 3] == K.K_LO and fxt[0, 1, 3, 1] == K.K_BOTH
    assert fz[0, 1, 1, 3] == K.L_LO | K.L_UP | K.V_DIR
    assert fz[1, 1, 1, 3] == K.V_DIR and fy[1, 1, 1, 3] == 0 and fxt[1, 1, 3, 1] == 0
    # its neighbours keep their links to it in both variants
    assert fy[1, 1, 0, 3] == K.K_UP and fz[1, 0, 1, 3] == K.L_UP


def test_sparse_cell_reaction_matches_dense_scatter():
    """react_cells (sparse, dense_rates=False) equals scatter + dense reaction when there
    is no decay (the two splittings then coincide), and dense arrays are then ignored."""
    rng = np.random.default_rng(5)
    shape = (12, 10, 14)
    kw = dict(diffusivity_um2_per_s=[50.0, 10.0], decay_per_s=[0.0, 0.0], dx_um=10.0,
              dt_s=60.0, km=[np.inf, 5.0], dtype=np.float64)
    dense = FieldSolver(shape, ["a", "b"], **kw)
    sparse = FieldSolver(shape, ["a", "b"], dense_rates=False, **kw)
    c0 = rng.random((2,) + shape)
    dense.c[...] = c0
    sparse.c[...] = c0
    flat = rng.choice(np.prod(shape), 40, replace=False)
    z, y, x = (a.astype(np.int32) for a in np.unravel_index(flat, shape))
    sec, upt, vmx = (rng.random((40, 2)) * f for f in (0.1, 1e-3, 0.05))
    for _ in range(5):
        dense.clear_rates()
        dense.scatter(z, y, x, sec, upt, vmx)
        dense.step(1)
        sparse.source[...] = 99.0  # must be ignored
        sparse.react_cells(z, y, x, sec, upt, vmx)
        sparse.step(1)
    np.testing.assert_allclose(sparse.c, dense.c, rtol=1e-12, atol=1e-14)


def react_cells_reference(c, z, y, x, sec, upt, vmax, dt, km):
    """The cell-by-cell loop (cells outer, substrates inner) in plain Python, in the
    field dtype: the arithmetic :func:`K.react_cells` must reproduce bit for bit."""
    c = c.copy()
    ft = c.dtype.type
    one, dt = ft(1), ft(dt)
    sec, upt, vmax = (np.asarray(a, c.dtype) for a in (sec, upt, vmax))
    for n in range(len(z)):
        for s in range(c.shape[0]):
            sr, ur, vr = sec[n, s], upt[n, s], vmax[n, s]
            if sr == 0 and ur == 0 and vr == 0:
                continue
            a = c[s, z[n], y[n], x[n]]
            d = one + dt * ur
            if np.isfinite(km[s]):
                d += dt * vr / (ft(km[s]) + a)
            c[s, z[n], y[n], x[n]] = (a + dt * sr) / d
    return c


def _cell_rates(rng, n, S, dtype):
    """Rates with many exact zeros: whole rows, single entries, and a zero-rate substrate."""
    rates = []
    for f in (0.5, 2e-3, 0.3):
        a = (rng.random((n, S)) * f).astype(dtype)
        a[rng.random((n, S)) < 0.4] = 0
        a[rng.random(n) < 0.15] = 0
        a[:, 2] = 0
        rates.append(a)
    return rates


@pytest.mark.parametrize("dtype,rate_dtype", [(np.float32, np.float32),
                                              (np.float64, np.float64),
                                              (np.float64, np.float32)])
def test_react_cells_bit_identical_to_cell_loop(dtype, rate_dtype):
    """Substrate-major, parallel react_cells equals the serial cell loop exactly: many
    cells per voxel, zero rates, Michaelis-Menten substrates; gathered arrays or store
    arrays with slots (in any order); any chunking and thread count."""
    import numba
    rng = np.random.default_rng(11)
    shape, S, n = (6, 7, 9), 5, 400
    km = np.array([np.inf, 0.4, 3.0, np.inf, 1.0])
    fs = solver(shape, n=S, dtype=dtype, km=km, dense_rates=False, dt=45.0)
    c0 = (rng.random(fs.c.shape) * 2).astype(dtype)
    # 400 cells on 30 voxels: most voxels hold many cells
    flat = rng.choice(np.prod(shape), 30, replace=False)[rng.integers(0, 30, n)]
    z, y, x = (a.astype(np.int32) for a in np.unravel_index(flat, shape))
    sec, upt, vmx = _cell_rates(rng, n, S, rate_dtype)
    ref = react_cells_reference(c0, z, y, x, sec, upt, vmx, fs.dt_s, km)
    assert not np.array_equal(ref, c0)
    # a cell store: the cells in shuffled slots among dead rows (voxel -1, junk rates)
    cap = 2 * n + 7
    slots = rng.permutation(cap)[:n]
    zs, ys, xs = (np.full(cap, -1, np.int32) for _ in range(3))
    zs[slots], ys[slots], xs[slots] = z, y, x
    store = []
    for a in (sec, upt, vmx):
        b = rng.random((cap, S)).astype(rate_dtype)
        b[slots] = a
        store.append(b)
    threads = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
    saved = numba.get_num_threads()
    try:
        for nt in threads:
            numba.set_num_threads(nt)
            fs.c[...] = c0
            fs.react_cells(z, y, x, sec, upt, vmx)
            assert fs.c.tobytes() == ref.tobytes(), nt
            fs.c[...] = c0
            fs.react_cells(zs, ys, xs, *store, slots=slots)
            assert fs.c.tobytes() == ref.tobytes(), nt
            args = [np.ascontiguousarray(a, dtype) for a in store]
            kmk = np.where(np.isfinite(km), km, 1.0).astype(dtype)
            for nchunk in (1, 2, 3, 7, 1000):
                c = c0.copy()
                K.react_cells(c, slots, zs, ys, xs, *args, dtype(fs.dt_s), kmk,
                              np.isfinite(km), nchunk)
                assert c.tobytes() == ref.tobytes(), (nt, nchunk)
    finally:
        numba.set_num_threads(saved)
    # the order of the slots is the order in which cells act on a shared voxel
    fs.c[...] = c0
    fs.react_cells(zs, ys, xs, *store, slots=slots[::-1])
    back = react_cells_reference(c0, z[::-1], y[::-1], x[::-1], sec[::-1], upt[::-1],
                                 vmx[::-1], fs.dt_s, km)
    assert fs.c.tobytes() == back.tobytes()
    # no cells: nothing changes
    fs.c[...] = c0
    fs.react_cells(zs, ys, xs, *store, slots=np.zeros(0, np.int64))
    assert fs.c.tobytes() == c0.tobytes()


def test_react_cells_validation():
    fs = solver((3, 4, 5), n=2, dense_rates=False)
    z = np.array([0, 2], np.int32)
    y = np.array([1, 3], np.int32)
    x = np.array([4, 0], np.int32)
    r = np.ones((2, 2))
    with pytest.raises(ValueError, match=r"uptake must have shape \(2, 2\), got \(2, 3\)"):
        fs.react_cells(z, y, x, r, np.ones((2, 3)), r)
    with pytest.raises(ValueError, match="z, y and x must have the same length"):
        fs.react_cells(z, y[:1], x, r, r, r)
    with pytest.raises(ValueError, match="slots must be a 1-D integer array"):
        fs.react_cells(z, y, x, r, r, r, slots=np.array([0.0, 1.0]))
    c0 = fs.c.copy()
    with pytest.raises(IndexError, match="slot outside the cell arrays"):
        fs.react_cells(z, y, x, r, r, r, slots=np.array([0, 2]))
    with pytest.raises(IndexError, match="slot outside the cell arrays"):
        fs.react_cells(z, y, x, r, r, r, slots=np.array([-1]))
    bad = np.array([0, 3], np.int32)  # z = 3 is outside the grid
    with pytest.raises(IndexError, match="cell voxel outside the grid"):
        fs.react_cells(bad, y, x, r, r, r)
    with pytest.raises(IndexError, match="cell voxel outside the grid"):
        fs.react_cells(z, y, np.array([4, 5], np.int32), r, r, r, slots=np.array([0, 1]))
    np.testing.assert_array_equal(fs.c, c0)  # nothing applied before the errors


def test_gradient_at_slots_parallel_equals_serial():
    """The parallel per-cell gradient gives the serial kernel's values for any task count,
    and refuses a cell outside the grid."""
    from niche.kernels import diffusion as dk

    r = np.random.default_rng(3)
    c = r.random((2, 12, 10, 9)).astype(np.float32)
    solid = (r.random((12, 10, 9)) < 0.2).astype(np.uint8)
    n = 600
    z = r.integers(0, 12, n).astype(np.int32)
    y = r.integers(0, 10, n).astype(np.int32)
    x = r.integers(0, 9, n).astype(np.int32)
    slots = r.permutation(n)[:450]
    want = np.zeros((3, n), np.float32)
    dk.gradient_at_slots(c, 1, slots, z, y, x, want[0], want[1], want[2], solid)
    assert np.abs(want).sum() > 0
    for nchunk in (1, 2, 5):
        got = np.zeros((3, n), np.float32)
        dk.gradient_at_slots_parallel(c, 1, slots, z, y, x, got[0], got[1], got[2], solid,
                                      nchunk)
        assert np.array_equal(got, want)
    z[slots[-1]] = 12
    with pytest.raises(IndexError, match="outside the grid"):
        dk.gradient_at_slots_parallel(c, 1, slots, z, y, x, got[0], got[1], got[2], solid, 2)


def test_idle_substrates_are_skipped_and_results_unchanged():
    """A substrate that is zero everywhere, with no cell acting on it and no non-zero held
    value, is left out of a step (it would stay exactly zero), and the others come out
    bit for bit as when every substrate is solved."""
    shape = (10, 9, 8)
    kw = dict(diffusivity_um2_per_s=[50.0, 80.0, 20.0, 10.0], decay_per_s=[1e-3] * 4,
              dx_um=10.0, dt_s=600.0, km=[np.inf, 5.0, np.inf, np.inf],
              dirichlet_value=[0.0, 0.0, 3.0, 0.0], dirichlet_on=[False, False, True, True],
              dense_rates=False)
    names = ["A", "B", "C", "D"]
    a, b = FieldSolver(shape, names, **kw), FieldSolver(shape, names, **kw)
    vessel = np.zeros(shape, np.uint8)
    vessel[:, 0, 0] = 1
    solid = np.zeros(shape, np.uint8)
    solid[0, 4:, 4:] = 1
    for f in (a, b):
        f.set_solid(solid)
        f.set_dirichlet(vessel)
    n = 5
    z, y, x = np.array([2, 5, 7, 8, 3]), np.array([3, 1, 6, 2, 7]), np.array([1, 4, 2, 7, 5])
    sec = np.zeros((n, 4), np.float32)
    sec[:, 0] = 2.0          # A has cell sources; B has none until later; D is held at 0
    upt = np.zeros((n, 4), np.float32)
    vmax = np.zeros((n, 4), np.float32)
    assert [r for r in a._active_runs()] == [(2, 3)]   # only C (held at 3) before any cell acts
    for step in range(6):
        if step == 3:
            sec[1, 1] = 4.0  # B starts now
        a.react_cells(z, y, x, sec, upt, vmax)
        b.react_cells(z, y, x, sec, upt, vmax)
        runs = a._active_runs()
        want_b = step >= 3
        assert any(s0 <= 1 < s1 for s0, s1 in runs) == want_b
        assert not any(s0 <= 3 < s1 for s0, s1 in runs)   # D: zero, held at 0, no cells
        a.step(1)
        b._active_runs = lambda: [(0, 4)]                  # b solves every substrate
        b.step(1)
        assert np.array_equal(a.c, b.c)
    assert a.c[0].sum() > 0 and a.c[1].sum() > 0 and not a.c[3].any()
