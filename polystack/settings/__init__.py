"""Settings split by purpose: base (shared), local, test and production."""
