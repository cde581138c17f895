"""The per-click core (score the previous list, learn, recommend, monitor) and prequential accuracy."""
