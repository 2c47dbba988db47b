"""What the commands do: augment, batches and streams, features, stats, split, preview."""
