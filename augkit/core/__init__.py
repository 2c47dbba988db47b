"""The bottom layer: errors, files, seeds, failure rows, words; every other layer may import it."""
