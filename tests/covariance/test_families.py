"""The covariance families: M steps, parameter counts, structure, names (bgmm.covariance)."""

import re
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.mixture import GaussianMixture

from bgmm import GaussianMixtureEM, SingularCovarianceError, fit_em, load_old_faithful, simulate
from bgmm.covariance import FAMILIES, SKLEARN_NAMES, UNIVARIATE, get_family
from bgmm.selection import n_parameters
from tests.conftest import make_params

NAMES = list(FAMILIES)


def m_step_fn(family, k, d, n_steps=None, previous=False):
    nk = pt.tensor("nk", shape=(k,))
    scatter = pt.tensor("scatter", shape=(k, d, d))
    prev = pt.tensor("previous", shape=(k, d, d)) if previous else None
    out = family.m_step(nk, scatter, prev, n_steps=n_steps)
    inputs = [nk, scatter] + ([prev] if previous else [])
    return pytensor.function(inputs, out, mode="JAX", on_unused_input="ignore")


def random_statistics(k, d, seed):
    """N_k and scatter matrices W_k of differently shaped, differently oriented clusters."""
    rng = np.random.default_rng(seed)
    nk = rng.uniform(15.0, 60.0, size=k)
    scatter = []
    for n in nk:
        a = rng.normal(size=(d, d + 5)) * rng.uniform(0.3, 3.0, size=(d, 1))
        scatter.append(a @ a.T * n / (d + 5))
    return nk, np.array(scatter)


def q_sigma(nk, scatter, covariances):
    """The covariance part of Q: -sum_k [N_k/2 ln|S_k| + tr(S_k^-1 W_k)/2]."""
    _, logdet = np.linalg.slogdet(covariances)
    trace = np.einsum("kij,kji->k", np.linalg.inv(covariances), scatter)
    return float(-(0.5 * nk * logdet + 0.5 * trace).sum())


def cayley(values, d):
    s = np.zeros((d, d))
    s[np.tril_indices(d, -1)] = values
    s = s - s.T
    return (np.eye(d) - s) @ np.linalg.inv(np.eye(d) + s)


def family_perturbation(name, covariances):
    """Sigma_k = lambda_k D_k A_k D_k^T moved within the family: (size, build(phi)).

    Volumes on the log scale, shapes on the log scale with |A_k| = 1, orientations by a
    Cayley rotation; E parameters are shared, V ones per component, I ones absent. phi = 0
    gives ``covariances`` back, and the size is the family's free-parameter count.
    """
    k, d, _ = covariances.shape
    volume, shape, orientation = name
    if orientation == "E":  # one orthogonal D diagonalises every Sigma_k
        mix = sum((1.0 + 0.618 * j) * covariances[j] for j in range(k))
        frames = [np.linalg.eigh(mix)[1]] * k
    else:
        frames = [np.linalg.eigh(c)[1] for c in covariances]
    diagonals = np.array([np.diag(f.T @ c @ f) for f, c in zip(frames, covariances, strict=True)])
    volumes = np.exp(np.log(diagonals).mean(axis=1))
    shapes = diagonals / volumes[:, None]
    n_vol = {"E": 1, "V": k}[volume]
    n_shape = {"I": 0, "E": d - 1, "V": k * (d - 1)}[shape]
    m = d * (d - 1) // 2
    n_orient = {"I": 0, "E": m, "V": k * m}[orientation]

    def build(phi):
        v, a, o = phi[:n_vol], phi[n_vol : n_vol + n_shape], phi[n_vol + n_shape :]
        out = []
        for j in range(k):
            lam = volumes[j] * np.exp(v[0 if volume == "E" else j])
            shape_j = shapes[j]
            if shape != "I":
                free = a[: d - 1] if shape == "E" else a[j * (d - 1) : (j + 1) * (d - 1)]
                log_a = np.append(free, 0.0)
                shape_j = shape_j * np.exp(log_a - log_a.mean())
            frame = frames[j]
            if orientation != "I":
                free = o[:m] if orientation == "E" else o[j * m : (j + 1) * m]
                frame = frame @ cayley(free, d)
            out.append(lam * (frame * shape_j) @ frame.T)
        return np.array(out)

    return n_vol + n_shape + n_orient, build


# ---------------------------------------------------------------- parameter counts

# mclust's nVarParams for d = 4, G = 3 (Scrucca et al. 2016, table 3).
MCLUST_DF = {
    "EII": 1,
    "VII": 3,
    "EEI": 4,
    "VEI": 3 + 3,
    "EVI": 1 + 3 * 3,
    "VVI": 12,
    "EEE": 10,
    "VEE": 3 + 10 - 1,
    "EVE": 1 + 3 * 3 + 6,
    "VVE": 12 + 6,
    "EEV": 1 + 3 + 3 * 6,
    "VEV": 3 + 3 + 3 * 6,
    "EVV": 1 + 3 * 9,
    "VVV": 30,
}


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_match_mclust(name):
    assert FAMILIES[name].n_parameters(3, 4) == MCLUST_DF[name]
    assert n_parameters(3, 4, name) == MCLUST_DF[name] + 3 * 4 + 2
    # the count is the dimension of the family (volumes, shapes, orientations)
    size, _ = family_perturbation(name, np.stack([np.eye(4)] * 3))
    assert size == MCLUST_DF[name]


def test_sklearn_names_count_as_sklearn_does():
    for name, family in SKLEARN_NAMES.items():
        sk = GaussianMixture(3, covariance_type=name)
        sk.means_ = np.zeros((3, 4))
        assert sk._n_parameters() == n_parameters(3, 4, name), (name, family)
    assert n_parameters(3, 2) == 17  # full, the default


# ---------------------------------------------------------------- M steps


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("k", "d"), [(3, 3), (2, 4)])
def test_m_step_maximises_q_within_the_family(name, k, d):
    """No move within the family raises Q_Sigma above the M step's (scipy from phi = 0)."""
    nk, scatter = random_statistics(k, d, seed=10 * k + d)
    family = FAMILIES[name]
    covariances = np.asarray(m_step_fn(family, k, d)(nk, scatter))
    np.testing.assert_allclose(covariances, covariances.transpose(0, 2, 1), atol=1e-10)
    size, build = family_perturbation(name, covariances)
    np.testing.assert_allclose(build(np.zeros(size)), covariances, rtol=1e-9, atol=1e-12)
    best = q_sigma(nk, scatter, covariances)
    found = minimize(lambda phi: -q_sigma(nk, scatter, build(phi)), np.zeros(size))
    assert -found.fun <= best + 1e-8 * abs(best)


@pytest.mark.parametrize("name", [n for n in NAMES if FAMILIES[n].iterative])
def test_inner_iterations_never_lower_q(name):
    k, d = 3, 3
    nk, scatter = random_statistics(k, d, seed=5)
    family = FAMILIES[name]
    step = m_step_fn(family, k, d, n_steps=1, previous=True)
    covariances = np.asarray(m_step_fn(family, k, d, n_steps=0)(nk, scatter))
    values = [q_sigma(nk, scatter, covariances)]
    for _ in range(25):
        covariances = np.asarray(step(nk, scatter, covariances))
        values.append(q_sigma(nk, scatter, covariances))
    assert np.all(np.diff(values) >= -1e-9 * abs(values[0]))
    assert values[-1] > values[0]  # the closed-form start is not already the maximum


@pytest.mark.parametrize("name", NAMES)
def test_one_component_has_the_closed_form(name):
    """K = 1: the family's structure applied to the sample covariance S = W / N."""
    _, scatter = random_statistics(1, 3, seed=7)
    s = scatter[0] / 40.0
    got = np.asarray(m_step_fn(FAMILIES[name], 1, 3)(np.array([40.0]), scatter))[0]
    if name[1] == "I":  # spherical: the mean variance
        want = np.trace(s) / 3 * np.eye(3)
    elif name[2] == "I":  # diagonal: the variances
        want = np.diag(np.diag(s))
    else:  # one ellipsoid: S itself
        want = s
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- EM with every family


@pytest.fixture(scope="module")
def three_clusters():
    return simulate(make_params(3, 3, seed=4, spread=3.0), 450, random_state=5).data


@pytest.fixture(scope="module")
def family_fits(three_clusters):
    return {
        name: fit_em(three_clusters, 3, covariance_type=name, random_state=1, reg_covar=1e-3)
        for name in NAMES
    }


@pytest.mark.parametrize("name", NAMES)
def test_em_never_lowers_the_log_likelihood_and_keeps_the_bound(family_fits, name):
    res = family_fits[name]
    assert res.converged and res.covariance_type == name
    h = res.history
    ll = np.concatenate([[res.log_likelihood_init], h["log_likelihood"]])
    roundoff = 1e-9 * np.maximum(450, np.abs(ll[:-1]))
    assert np.all(np.diff(ll) >= -(h["regularization_gap"] + roundoff))
    np.testing.assert_allclose(
        h["log_likelihood"], h["lower_bound"] + h["kl"], rtol=1e-9, atol=1e-8
    )
    assert np.all(h["kl"] >= -1e-8) and np.all(h["regularization_gap"] >= -1e-9)


def volumes(cov):
    return np.exp(np.linalg.slogdet(cov)[1] / cov.shape[-1])


@pytest.mark.parametrize("name", NAMES)
def test_fitted_covariances_have_the_family_structure(family_fits, name):
    """E letters are equal across components, I letters are the identity (reg_covar too)."""
    cov = family_fits[name].covariances
    k, d, _ = cov.shape
    vol = volumes(cov)
    unit = cov / vol[:, None, None]
    volume, shape, orientation = name
    if volume == "E":
        np.testing.assert_allclose(vol, vol[0], rtol=1e-9)
    else:
        assert np.ptp(vol) > 1e-3 * vol.max()
    if orientation == "I":
        np.testing.assert_allclose(cov, cov * np.eye(d), atol=1e-14)
    if orientation == "E":  # a common eigenbasis: the matrices commute
        for j in range(1, k):
            np.testing.assert_allclose(cov[0] @ cov[j], cov[j] @ cov[0], atol=1e-9)
    if shape == "I":
        np.testing.assert_allclose(unit, np.broadcast_to(np.eye(d), unit.shape), atol=1e-12)
    if shape == "E":  # equal normalised eigenvalues
        eig = np.linalg.eigvalsh(unit)
        np.testing.assert_allclose(eig, np.broadcast_to(eig[0], eig.shape), rtol=1e-8)
    if shape + orientation == "EE":
        np.testing.assert_allclose(unit, np.broadcast_to(unit[0], unit.shape), rtol=1e-8)
    if name[1:] == "VV" or shape == "V":
        eig = np.linalg.eigvalsh(unit)
        assert np.ptp(eig, axis=0).max() > 1e-3


def test_richer_families_fit_at_least_as_well(three_clusters, family_fits):
    """Nested families (EII in VII in VVI in VVV, ...) from the best start: ln p ordered."""
    ll = {name: res.log_likelihood for name, res in family_fits.items()}
    for small, big in [("EII", "VII"), ("EEI", "VVI"), ("EEE", "VVV"), ("EII", "EEE")]:
        assert ll[small] <= ll[big] + 1e-6


# ---------------------------------------------------------------- on a Dask cluster


@pytest.fixture(scope="module")
def cluster_data(three_clusters):
    """The same rows as a Dask array on a LocalCluster of two worker processes."""
    import dask.array as da
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster),
    ):
        yield da.from_array(np.array(three_clusters.values), chunks=(100, 3)).persist()


def assert_same_steps(got, want, rtol=1e-10):
    assert got.n_iter == want.n_iter
    for a, b in [(got.weights, want.weights), (got.means, want.means)]:
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    scale = np.abs(want.covariances).max()
    np.testing.assert_allclose(got.covariances, want.covariances, rtol=rtol, atol=rtol * scale)
    nats = np.abs(want.history["log_likelihood"]).max()
    for field in want.history.dtype.names:
        np.testing.assert_allclose(got.history[field], want.history[field], atol=rtol * nats)


@pytest.mark.slow  # 30 s; the CLI test fits on a LocalCluster, test_dask on threads
def test_families_take_the_in_memory_steps_on_a_local_cluster(three_clusters, cluster_data):
    """Five iterations of one family per structure, to 1e-10 (all 14 fits: the slow test).

    The statistics are the same for every family, so each worker compiles the per-block
    function once for each block shape (100 rows, and the last 50), whatever the family.
    """
    from distributed import get_client

    from bgmm.em import solver

    kw = {"random_state": 1, "reg_covar": 1e-3, "max_iter": 5, "tol": 0.0}
    for name in ["EII", "VVI", "EEE", "VEV", "VVV"]:  # spherical, diagonal, tied, iterative
        want = fit_em(three_clusters, 3, covariance_type=name, **kw)
        got = fit_em(cluster_data, 3, covariance_type=name, **kw)
        assert_same_steps(got, want)
    info = get_client().run(lambda: solver._compile_statistics.cache_info())
    assert len(info) == 2  # two worker processes
    assert sum(i.hits + i.misses for i in info.values()) == 5 * 6 * 5  # families, E steps, blocks
    assert all(i.misses <= 2 for i in info.values())  # compiled once per worker and shape


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_family_converges_as_in_memory_on_a_local_cluster(family_fits, cluster_data, name):
    got = fit_em(cluster_data, 3, covariance_type=name, random_state=1, reg_covar=1e-3)
    assert got.converged
    assert_same_steps(got, family_fits[name])


# ---------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("name", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("n_iter", [1, 15])
def test_matches_sklearn_from_same_start(name, n_iter):
    data = simulate(make_params(3, 3, seed=11, spread=3.0), 300, random_state=12).data
    start = make_params(3, 3, seed=13, spread=2.0)
    family = SKLEARN_NAMES[name]
    # the start in the family's structure, in scikit-learn's shapes
    cov = {
        "full": start.covariances,
        "tied": start.covariances[0],
        "diag": np.diagonal(start.covariances, axis1=1, axis2=2),
        "spherical": np.diagonal(start.covariances, axis1=1, axis2=2).mean(axis=1),
    }[name]
    precisions = np.linalg.inv(cov) if name in ("full", "tied") else 1.0 / cov
    reg = 1e-4
    res = fit_em(
        data,
        3,
        covariance_type=name,
        max_iter=n_iter,
        tol=0.0,
        reg_covar=reg,
        weights_init=start.weights,
        means_init=start.means,
        covariances_init=cov,
    )
    sk = GaussianMixture(
        3,
        covariance_type=name,
        max_iter=n_iter,
        tol=0.0,
        reg_covar=reg,
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=precisions,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)  # tol=0: it cannot converge
        sk.fit(data.values)
    np.testing.assert_allclose(res.weights, sk.weights_, rtol=1e-8)
    np.testing.assert_allclose(res.means, sk.means_, rtol=1e-8)
    np.testing.assert_allclose(family.compact(res.covariances), sk.covariances_, rtol=1e-8)
    np.testing.assert_allclose(res.resp, sk.predict_proba(data.values), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(
        res.log_likelihood, sk.score(data.values) * data.n_samples, rtol=1e-10
    )


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("full", (2, 2, 2)),
        ("tied", (2, 2)),
        ("diag", (2, 2)),
        ("spherical", (2,)),
        ("EEV", (2, 2, 2)),
    ],
)
def test_estimator_keeps_sklearn_shapes_and_counts(name, shape):
    data = load_old_faithful()
    m = GaussianMixtureEM(2, covariance_type=name, random_state=0).fit(data.values)
    assert m.covariances_.shape == shape
    sk = GaussianMixture(2, covariance_type=name if name != "EEV" else "full")
    sk.means_ = m.means_
    assert m._n_parameters() == n_parameters(2, 2, name)
    if name != "EEV":
        assert m._n_parameters() == sk._n_parameters()
    # predict/score use the full matrices of the family
    np.testing.assert_allclose(m.score(data.values) * 272, m.log_likelihood_, rtol=1e-10)


# ---------------------------------------------------------------- names, shapes, messages


def test_names_and_aliases():
    assert get_family("full") is FAMILIES["VVV"] and get_family("vvv") is FAMILIES["VVV"]
    assert get_family("tied").name == "EEE" and get_family("diag").name == "VVI"
    assert get_family("spherical").name == "VII"
    assert get_family("E", 1) is UNIVARIATE["E"]
    with pytest.raises(ValueError, match=re.escape("got 'ful'")):
        get_family("ful")
    with pytest.raises(ValueError, match="'E' is mclust's one-feature model, but the data have 2"):
        get_family("E", 2)
    with pytest.raises(TypeError, match="covariance_type must be a string"):
        get_family(3)


def test_univariate_models_e_and_v():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 150), rng.normal(6, 3, 150)])[:, None]
    e = fit_em(x, 2, covariance_type="E", random_state=0, reg_covar=0.0)
    v = fit_em(x, 2, covariance_type="V", random_state=0, reg_covar=0.0)
    assert e.covariances[0, 0, 0] == pytest.approx(e.covariances[1, 0, 0], rel=1e-12)
    assert v.covariances[1, 0, 0] / v.covariances[0, 0, 0] > 4
    assert e.n_parameters == 1 + 2 + 1 and v.n_parameters == 2 + 2 + 1
    vvv = fit_em(x, 2, random_state=0, reg_covar=0.0)
    np.testing.assert_allclose(v.log_likelihood, vvv.log_likelihood, rtol=1e-10)


def test_covariances_init_in_compact_shapes():
    data = load_old_faithful()
    start = fit_em(data, 2, covariance_type="diag", random_state=0, max_iter=2, tol=0.0)
    compact = np.diagonal(start.covariances, axis1=1, axis2=2)
    kwargs = {"weights_init": start.weights, "means_init": start.means}
    a = fit_em(data, 2, covariance_type="diag", covariances_init=compact, **kwargs)
    b = fit_em(data, 2, covariance_type="diag", covariances_init=start.covariances, **kwargs)
    np.testing.assert_allclose(a.covariances, b.covariances, rtol=1e-12)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "covariances_init must have shape (2, 2) or (2, 2, 2) for covariance_type='diag', "
            "got (3,)"
        ),
    ):
        fit_em(data, 2, covariance_type="diag", covariances_init=[1.0, 2.0, 3.0])


def test_singular_shared_covariance_names_the_family():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 1))
    X = np.hstack([x, 2.0 * x])  # a duplicated feature: every covariance is singular
    with pytest.raises(
        SingularCovarianceError,
        match=re.escape("the covariance shared by every component (covariance_type='EEE')"),
    ) as info:
        fit_em(X, 2, covariance_type="tied", reg_covar=0.0, random_state=0)
    assert "use a family with fewer parameters (EEI or EII)" in str(info.value)


@pytest.mark.parametrize("name", ["VEI", "EVE"])
def test_float32_agrees_with_float64(three_clusters, name):
    kw = {"covariance_type": name, "random_state": 1, "max_iter": 40, "tol": 0.0}
    a = fit_em(three_clusters, 3, **kw)
    b = fit_em(three_clusters, 3, dtype="float32", **kw)
    np.testing.assert_allclose(b.covariances, a.covariances, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(b.log_likelihood, a.log_likelihood, rtol=1e-5)
