"""AWS Security Incident Response imitation: boto3's ``security-ir`` client talks to it over loopback."""

from connectors.sandbox.sir.app import SirSandbox

__all__ = ["SirSandbox"]
