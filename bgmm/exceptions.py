"""Warnings and errors raised by bgmm."""

from __future__ import annotations

__all__ = [
    "ConvergenceWarning",
    "LikelihoodDecreaseError",
    "SingularCovarianceError",
    "SingularCovarianceWarning",
]


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood settled within ``tol``."""


class SingularCovarianceWarning(UserWarning):
    """A returned covariance is singular: its density and the log-likelihood are undefined."""


class SingularCovarianceError(ValueError):
    """A covariance became singular, so the next E step is undefined."""


class LikelihoodDecreaseError(RuntimeError):
    """The log-likelihood decreased by more than round-off: EM guarantees it cannot."""
