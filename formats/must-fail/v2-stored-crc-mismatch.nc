‰NCR-The Quick brown fox jumps over the lazy dog.
jÌPë