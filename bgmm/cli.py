"""The ``bgmm`` command line. It holds no logic that the library lacks.

Bad input ends with exit code 2 and one message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

EXIT_USAGE = 2


def _fmt_matrix(m: np.ndarray, fmt: str = "{:.4g}") -> str:
    return "[" + ", ".join("[" + ", ".join(fmt.format(v) for v in row) + "]" for row in m) + "]"


def _fmt_vector(v: np.ndarray, fmt: str = "{:.4g}") -> str:
    return "[" + ", ".join(fmt.format(x) for x in v) + "]"


def cmd_explain(args: argparse.Namespace) -> int:
    """Print the worked example's first EM iteration the way the document does."""
    from bgmm.datasets import load_worked_example
    from bgmm.em import fit_em, log_component_densities
    from bgmm.exceptions import SingularCovarianceWarning

    ex = load_worked_example()
    X, names = np.asarray(ex.data.values), ex.data.obs_names
    (f1, f2), comps, init = ex.data.feature_names, ex.component_names, ex.initial
    d = ex.data.n_features
    out = []
    out.append("Worked example: one EM iteration by hand (six people, two clusters)")
    out.append("")
    out.append(f"Data ({f1}, {f2}):")
    out += [f"  {n}  {x[0]:>5g}  {x[1]:>5g}" for n, x in zip(names, X, strict=True)]
    out.append("")
    out.append("Initial parameters:")
    for k, c in enumerate(comps):
        out.append(
            f"  {c:<6} mu = {_fmt_vector(init.means[k])}  "
            f"Sigma = {_fmt_matrix(init.covariances[k])}  pi = {init.weights[k]:g}"
        )
    log_phi = log_component_densities(init, ex.data)
    log_det = np.linalg.slogdet(init.covariances)[1]
    norm = np.exp(0.5 * (d * np.log(2 * np.pi) + log_det))
    mahalanobis = -2.0 * log_phi - d * np.log(2 * np.pi) - log_det[None, :]
    out.append("")
    out.append("Gaussian densities N(x | mu_k, Sigma_k):")
    out.append(
        f"  1 / ((2 pi)^(d/2) |Sigma|^(1/2)) = 1 / {norm[0]:.2f}   (exact 1 / {norm[0]:.6g})"
    )
    for k, c in enumerate(comps):
        # The document's hand arithmetic: exp(.) rounded to the digits it shows, times 1/62.83.
        e = float(np.exp(-0.5 * mahalanobis[0, k]))
        e_shown = float(f"{e:.4g}" if e > 1e-4 else f"{e:.2g}")
        out.append(
            f"  {names[0]} to {c:<6} Mahalanobis = {mahalanobis[0, k]:.6g}   "
            f"N({names[0]}|{c}) = 1/{norm[0]:.2f} exp({-0.5 * mahalanobis[0, k]:.6g}) "
            f"= 1/{norm[0]:.2f} x {e_shown:.4g} = {e_shown / round(norm[0], 2):.3g}   "
            f"(exact {np.exp(log_phi[0, k]):.6g})"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SingularCovarianceWarning)
        res = fit_em(
            ex.data,
            2,
            max_iter=1,
            tol=0.0,
            reg_covar=0.0,
            weights_init=init.weights,
            means_init=init.means,
            covariances_init=init.covariances,
        )
    resp = np.exp(log_phi + np.log(init.weights)[None, :])
    resp /= resp.sum(axis=1, keepdims=True)
    out.append("")
    out.append("E step: responsibilities r_ic = pi_c N(x_i|c) / sum_j pi_j N(x_i|j):")
    out.append(f"  Person  {f1:>6}  {f2:>6}  " + "  ".join(f"{c:>12}" for c in comps))
    for n, x, r in zip(names, X, resp, strict=True):
        cells = "  ".join(f"{v:>12.10g}" for v in r)
        out.append(f"  {n:<6}  {x[0]:>6g}  {x[1]:>6g}  {cells}")
    nk = resp.sum(axis=0)
    out.append("")
    out.append("M step:")
    out.append(
        "  1. m_c = sum_i r_ic:         "
        + ", ".join(f"{c} {m:.4g} ({m:.10g})" for c, m in zip(comps, nk, strict=True))
    )
    out.append(
        "  2. pi_c = m_c / m:           "
        + ", ".join(f"{c} {w:.4g} ({w:.10g})" for c, w in zip(comps, res.weights, strict=True))
    )
    out.append(
        "  3. mu_c = sum_i r_ic x_i / m_c: "
        + ", ".join(
            f"{c} {_fmt_vector(m, '{:.6g}')}" for c, m in zip(comps, res.means, strict=True)
        )
    )
    out.append("  4. Sigma_c = sum_i r_ic (x_i - mu_c)(x_i - mu_c)^T / m_c:")
    for c, s in zip(comps, res.covariances, strict=True):
        out.append(f"     {c:<6} {_fmt_matrix(s, '{:.2f}')}   (exact {_fmt_matrix(s, '{:.9g}')})")
    if caught:
        out.append("")
        out.append(
            "Note: both new covariances are singular (each cluster lies on a line), so a "
            "second E step is undefined without regularisation; bgmm stops there with an "
            "error unless reg_covar > 0."
        )
    print("\n".join(out))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """EM on the embedded Old Faithful data: print the fit, write a plot."""
    from bgmm.datasets import load_old_faithful
    from bgmm.em import GaussianMixtureEM
    from bgmm.plots import plot_fit, save_figure

    data = load_old_faithful()
    model = GaussianMixtureEM(args.k, n_init=args.n_init, random_state=args.seed).fit(data)
    print(f"Old Faithful ({data.n_samples} eruptions), EM with K={args.k}")
    print(
        f"converged: {model.converged_} after {model.n_iter_} iterations; "
        f"log-likelihood {model.log_likelihood_:.6f}"
    )
    for k in range(args.k):
        print(
            f"  component {k}: weight {model.weights_[k]:.4f}  "
            f"mean {_fmt_vector(model.means_[k], '{:.4f}')}  "
            f"covariance {_fmt_matrix(model.covariances_[k], '{:.4f}')}"
        )
    fig = plot_fit(
        data,
        model.result_.params,
        labels=model.result_.resp.argmax(axis=1),
        title=f"Old Faithful: EM, K={args.k}",
    )
    path = save_figure(fig, Path(args.output) / "faithful_em.png")
    print(f"plot written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bgmm`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="bgmm",
        description="Gaussian mixture models: EM as PyTensor graphs, checked against MCMC.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "explain",
        help="print the worked example's first EM iteration",
        description="Reproduce the worked example (six people) one step at a time.",
    )
    p.set_defaults(func=cmd_explain)
    p = sub.add_parser(
        "demo",
        help="fit the embedded Old Faithful data and write a plot",
        description="EM on Old Faithful (272 x 2); prints the parameters, writes a PNG.",
    )
    p.add_argument("--output", default="demo-output", help="output directory")
    p.add_argument("-k", type=int, default=2, help="number of components (default 2)")
    p.add_argument("--n-init", type=int, default=5, help="EM restarts (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bgmm``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        # PyTensor's C backend warns that pip gave it no BLAS; bgmm compiles with numba.
        warnings.filterwarnings("ignore", message=".*PyTensor could not link to a BLAS.*")
        try:
            return args.func(args)
        except (ValueError, TypeError) as exc:
            print(f"bgmm {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:
            print(f"bgmm {args.command}: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
            return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
