"""The session-kNN family: the incremental neighbour index, its compiled kernel, SKNN, V-SKNN, STAN, VSTAN."""
