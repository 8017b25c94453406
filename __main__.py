"""Pulumi entry point: validated settings -> one target component -> the output contract."""

import pulumi

from components.program import build_from_stack_config

for key, value in build_from_stack_config().items():
    pulumi.export(key, value)
