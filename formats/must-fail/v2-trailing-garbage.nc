‰NCR-The quick brown fox jumps over the lazy dog.
jÌPëgarbage