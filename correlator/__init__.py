"""correlator: event correlation and alert routing in the tradition of Netcool."""

__version__ = "0.1.0"
