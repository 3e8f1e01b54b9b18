"""The settings of a whole analysis, chosen once: the library and ``bgmm`` both read them.

:func:`bgmm.workflow.analyse`, :func:`bgmm.bayes.sample_posterior` and the command line's
``--n-init``, ``--chains``, ``--draws`` and ``--tune`` take their defaults from here, so a
notebook that calls the library and a shell that calls ``bgmm fit`` run the same
computation. The scikit-learn estimator and :func:`bgmm.fit_em` keep scikit-learn's
``n_init=1``: they are single fits, used inside pipelines and searches that multiply their
cost.
"""

from __future__ import annotations

__all__ = ["CHAINS", "DRAWS", "N_INIT", "TUNE"]

#: EM restarts of an analysis.
#:
#: The best restart starts the chains and labels the draws, so
#: a restart stuck at a poorer local maximum would start every chain in the wrong place and
#: make the comparison report a disagreement that is EM's, not the model's; five restarts
#: (scikit-learn users know ``n_init``) cost five EM fits, seconds beside the sampler.
N_INIT = 5

#: Independent chains.
#:
#: The rank-normalised r_hat threshold of 1.01 (Vehtari et al. 2021)
#: was designed for at least four chains: with two chains of 500 draws it fired on 22 of
#: 100 clean simulation-based-calibration runs (README, "Calibration"). Four is also
#: PyMC's and Stan's default.
CHAINS = 4

#: Draws kept per chain.
#:
#: 4000 in all with four chains, enough for the 100 effective draws per chain the
#: diagnostics ask for on the mixtures bgmm samples.
DRAWS = 1000

#: Tuning steps per chain (discarded), PyMC's and Stan's default.
TUNE = 1000
