"""Scoring tables in batches, with the server's decoding and enforcement: files streamed by
`sigserve predict`, and the Arrow batches Spark and Ray hand to `sigserve.spark` and `sigserve.ray`."""
