"""The privacy stage: small rules, one per module, that turn a RawRequest into a CleanRecord."""
