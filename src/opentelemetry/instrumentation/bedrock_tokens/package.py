"""What this instrumentation instruments; must agree with the ``instruments`` extra."""

_instruments = ("botocore >= 1.40.14, < 2",)
