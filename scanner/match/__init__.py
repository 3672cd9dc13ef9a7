"""Match stage: TLSA records against certificate chains (RFC 6698, 7671, 7672)."""
