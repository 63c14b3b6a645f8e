"""What this instrumentation instruments; must agree with the ``instruments`` extra."""

_instruments = ("botocore >= 1.34.116, < 2",)
