"""What is checked about the host rather than measured on it: doctor (can each runner run here),
verify (our numbers against independent tools), clean (leftovers of a killed run), hostinfo (the
fingerprint and versions a run records). They iterate the runner registry and name no runner."""
