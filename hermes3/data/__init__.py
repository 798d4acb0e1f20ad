"""The data stage: synthetic Hermes-style tasks with checkers, the five filters, the
mixture builder (Table 1) and ``hermes3 data build``."""
