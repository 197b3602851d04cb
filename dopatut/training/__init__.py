"""Training: the loop, many models at once, and the jobs that run them."""
