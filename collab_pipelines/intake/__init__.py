"""Pattern 5, flexible intake: SFTP uploads validated and ingested, or quarantined with a reason."""
