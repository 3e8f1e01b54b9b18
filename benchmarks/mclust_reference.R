suppressMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
out <- NULL
for (path in args[-1]) {
  x <- as.matrix(read.csv(path))
  n <- nrow(x); d <- ncol(x)
  models <- if (d == 1) c("E", "V") else mclust.options("emModelNames")
  t0 <- Sys.time()
  bic <- mclustBIC(x, G = 1:5, modelNames = models, verbose = FALSE)
  elapsed <- as.numeric(Sys.time() - t0, units = "secs")
  for (m in models) for (g in 1:5) {
    b <- bic[as.character(g), m]
    df <- nMclustParams(m, d, g)
    out <- rbind(out, data.frame(dataset = basename(path), k = g, family = m,
      bic = b, df = df, log_likelihood = (b + df * log(n)) / 2, seconds = elapsed))
  }
}
write.csv(out, args[1], row.names = FALSE)
