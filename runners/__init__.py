"""One module per runner. Kept import-free: the measuring worker imports only what it runs."""
