"""The boxloop CDK app: one stack composed of plain constructs, one per concern."""
