"""phigate: an outbound mail relay that keeps Protected Health Information safe."""

__version__ = "0.1.0"
