"""Running `predict` beyond one machine (Ray); nothing here is imported unless `--ray` is given."""
