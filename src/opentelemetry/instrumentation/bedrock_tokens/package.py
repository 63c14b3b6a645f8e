"""What this instrumentation instruments; must agree with the ``instruments`` extra."""

_instruments = ("botocore >= 1.40.15, < 2",)
