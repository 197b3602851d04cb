"""Analysis: attribution, statistics, pruning and what the explorer computes."""
