# Reference permutations from R's label.switching (Papastamoulis 2016, J. Stat. Softw. 69(1))
# for tests/bayes/test_relabel.py::test_matches_label_switching_reference.
#
# Run from the repository root:  Rscript validation/label_switching_reference.R
# Needs label.switching 1.8 (it imports combinat and lpSolve) and jsonlite. Without CRAN:
# apt-get install r-cran-combinat r-cran-lpsolve r-cran-jsonlite, then R CMD INSTALL the
# package source (github.com/cran/label.switching) and set R_LIBS_USER. Writes
# tests/bayes/data/label_switching_reference.json with the inputs (labels 1-based, as R
# gives them) and the permutations of stephens(), ecr() and ecr.iterative.1().
#
# label.switching's permutations[s, k] is the sampled component that takes label k
# (permute.mcmc takes mcmc[s, permutations[s, ], ]): bgmm's `source` convention, 1-based.

suppressPackageStartupMessages({
  library(label.switching)
  library(jsonlite)
})

set.seed(2016)
K <- 3
N <- 24
S <- 40
mu <- c(-2, 0, 2.5)
w <- c(0.3, 0.4, 0.3)
truth <- sample(1:K, N, replace = TRUE, prob = w)
x <- rnorm(N, mu[truth], 1)

# Draws around the truth, as a sampler would give them: the first half keep one
# labelling (a chain), the second half switch at every draw. Sampled component j of
# draw s is true component switched[s, j].
p <- array(0, dim = c(S, N, K))
z <- matrix(0L, S, N)
switched <- matrix(0L, S, K)
chain_perm <- sample(K)
for (s in 1:S) {
  perm <- if (s <= S / 2) chain_perm else sample(K)
  switched[s, ] <- perm
  m <- mu[perm] + rnorm(K, 0, 0.3)
  dens <- sapply(1:K, function(j) w[perm[j]] * dnorm(x, m[j], 1))
  # rounded here so that R and Python work on the very same numbers
  p[s, , ] <- round(dens / rowSums(dens), 4)
  z[s, ] <- apply(p[s, , ], 1, function(pr) sample(1:K, 1, prob = pr))
}
zpivot <- z[1, ]

ste <- stephens(p)
ecr_once <- ecr(zpivot, z, K)
ecr_iter <- ecr.iterative.1(z, K)

out <- list(
  r_version = R.version.string,
  label_switching_version = as.character(packageVersion("label.switching")),
  K = K,
  probabilities = p,
  allocations = z,
  pivot = zpivot,
  switched = switched,
  stephens = list(
    permutations = ste$permutations, iterations = ste$iterations, status = ste$status
  ),
  ecr = list(permutations = ecr_once$permutations),
  ecr_iterative_1 = list(
    permutations = ecr_iter$permutations, iterations = ecr_iter$iterations,
    status = ecr_iter$status
  )
)
dir.create("tests/bayes/data", showWarnings = FALSE, recursive = TRUE)
write_json(out, "tests/bayes/data/label_switching_reference.json",
           auto_unbox = TRUE, digits = NA)
cat("wrote tests/bayes/data/label_switching_reference.json\n")
