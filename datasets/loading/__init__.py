"""Getting items to the training loop: the decode-once cache, collation and worker memory."""
