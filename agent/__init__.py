"""pbx-agent: a bridge between an Asterisk PBX and CRMs."""

import warnings

# Recent cryptography releases warn when asyncssh merely names its DSA classes at import; the agent never offers DSA
# keys, and the warning would otherwise open every journal of the service.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh(\.|$)")

__version__ = "0.1.0"
