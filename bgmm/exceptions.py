"""Warnings and errors raised by bgmm."""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

__all__ = [
    "InputError",
    "InputTypeError",
    "InputValueError",
    "ConvergenceWarning",
    "DataWarning",
    "LikelihoodDecreaseError",
    "SingularCovarianceError",
    "SingularCovarianceWarning",
    "SingularInformationError",
]


class InputError(Exception):
    """The input cannot be used as given: data, a setting, a file. The message says how to fix it.

    Every error bgmm raises about what the user passed derives from this class and from
    ``ValueError`` or ``TypeError`` (:class:`InputValueError`, :class:`InputTypeError`), so
    ``except ValueError`` keeps working; the command line turns exactly these into exit
    code 2 and one line on stderr, and lets anything else (a bug) show its traceback.
    """


class InputValueError(InputError, ValueError):
    """A value that cannot be used: wrong shape, NaN or inf, out of range, a missing file."""


class InputTypeError(InputError, TypeError):
    """A value of the wrong type: text where numbers belong, an object bgmm cannot read."""


class ConvergenceWarning(SklearnConvergenceWarning):
    """EM stopped at ``max_iter`` before the log-likelihood settled within ``tol``.

    A subclass of scikit-learn's ``ConvergenceWarning`` (itself a ``UserWarning``), so a
    filter written for scikit-learn's mixtures also catches bgmm's.
    """


class DataWarning(UserWarning):
    """The data were read with a change the caller did not ask for (columns or rows left out).

    :func:`bgmm.as_data` on a CSV file leaves out text, identifier and constant columns
    (:func:`bgmm.data.read_csv`) and says which, with this warning.
    """


class SingularCovarianceWarning(UserWarning):
    """A returned covariance is singular: its density and the log-likelihood are undefined."""


class SingularCovarianceError(InputValueError):
    """A covariance became singular, so the next E step is undefined."""


class SingularInformationError(InputValueError):
    """The observed information is not positive definite, so EM's standard errors do not exist.

    The estimate is not a strict local maximum: EM stopped early, a component is empty or
    singular, a feature is constant, or there are more components than the data support.
    :func:`bgmm.workflow.analyse` keeps the fit and reports it without standard errors.
    """


class LikelihoodDecreaseError(RuntimeError):
    """The log-likelihood decreased by more than round-off: EM guarantees it cannot."""
