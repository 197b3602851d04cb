"""The study: the protocol, its grids and comparisons, the sweeps and chapter 9's experiment."""
