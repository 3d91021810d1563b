"""Library code behind the launchers in `launch/` (the binaries there stay thin)."""
